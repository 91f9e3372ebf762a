package httpapi

import (
	"cmp"
	"context"
	"encoding/json"
	"maps"
	"net/http"
	"slices"
	"strings"
	"time"

	"github.com/gin-gonic/gin"
	"github.com/google/uuid"

	"github.com/mailgate/mailgate/domain"
)

// AdminStore is what the operator endpoints manage: tenants, their verified
// sender domains and their accounts.
type AdminStore interface {
	CreateTenant(ctx context.Context, name string, domains []string) (domain.Tenant, error)
	ListTenants(ctx context.Context) ([]domain.Tenant, error)
	GetTenant(ctx context.Context, id uuid.UUID) (domain.Tenant, error)
	SetTenantStatus(ctx context.Context, id uuid.UUID, status string) (domain.Tenant, error)
	AddSenderDomain(ctx context.Context, tenant uuid.UUID, name string) (domain.Tenant, error)
	RemoveSenderDomain(ctx context.Context, tenant uuid.UUID, name string) (domain.Tenant, error)
	CreateAccount(ctx context.Context, tenant uuid.UUID, email, displayName string) (domain.Account, error)
	ListAccounts(ctx context.Context, tenant uuid.UUID) ([]domain.Account, error)
	SetSandbox(ctx context.Context, tenant uuid.UUID, on bool) error
	SetDeliveryPolicy(ctx context.Context, tenant uuid.UUID, p domain.DeliveryPolicy) (domain.Tenant, error)
	// RetryAcrossTenants requeues, tenant by tenant, the messages the
	// filter selects (an operator's bulk retry after an incident).
	RetryAcrossTenants(ctx context.Context, f domain.RetryFilter) (map[uuid.UUID][]uuid.UUID, error)
}

type tenantView struct {
	SubscriptionID uuid.UUID `json:"subscription_id"`
	Name           string    `json:"name"`
	Status         string    `json:"status"`
	SenderDomains  []string  `json:"sender_domains"`
	CreatedAt      time.Time `json:"created_at"`
	// DeliveryWeight and MaxSendRate are the tenant's delivery plan.
	DeliveryWeight float64 `json:"delivery_weight"`
	MaxSendRate    float64 `json:"max_send_rate"`
	// Sandbox is named as in PUT .../sandbox, request and answer alike.
	Sandbox bool `json:"sandbox"`
}

func newTenantView(t domain.Tenant) tenantView {
	domains := t.SenderDomains
	if domains == nil {
		domains = []string{}
	}
	return tenantView{SubscriptionID: t.ID, Name: t.Name, Status: t.Status, SenderDomains: domains, CreatedAt: t.CreatedAt,
		DeliveryWeight: t.Delivery.Weight, MaxSendRate: t.Delivery.MaxSendRate, Sandbox: t.Sandbox}
}

type accountView struct {
	AccountID      uuid.UUID `json:"account_id"`
	SubscriptionID uuid.UUID `json:"subscription_id"`
	Email          string    `json:"email"`
	DisplayName    string    `json:"display_name"`
	CreatedAt      time.Time `json:"created_at"`
}

func newAccountView(a domain.Account) accountView {
	return accountView{AccountID: a.ID, SubscriptionID: a.SubscriptionID, Email: a.Email, DisplayName: a.DisplayName, CreatedAt: a.CreatedAt}
}

// registerAdmin adds the operator endpoints; every one needs a token with the admin claim.
func (s *Server) registerAdmin(api *gin.RouterGroup) {
	admin := api.Group("/admin", s.requireAdmin)
	admin.POST("/tenants", s.createTenant)
	admin.GET("/tenants", s.listTenants)
	admin.GET("/tenants/:id", s.getTenant)
	admin.POST("/tenants/:id/suspend", s.setTenantStatus(domain.TenantSuspended))
	admin.POST("/tenants/:id/resume", s.setTenantStatus(domain.TenantActive))
	admin.POST("/tenants/:id/domains", s.addSenderDomain)
	admin.DELETE("/tenants/:id/domains/:domain", s.removeSenderDomain)
	admin.POST("/tenants/:id/accounts", s.createAccount)
	admin.GET("/tenants/:id/accounts", s.listAccounts)
	admin.PUT("/tenants/:id/sandbox", s.setSandbox)
	admin.PUT("/tenants/:id/delivery", s.setDeliveryPolicy)
	admin.POST("/messages/retry", s.retryAcrossTenants)
}

func (s *Server) requireAdmin(c *gin.Context) {
	if !principalOf(c).Admin {
		s.writeError(c, domain.Errorf(domain.CodeForbidden, "this endpoint needs an operator (admin) token"))
		return
	}
	if s.admin == nil {
		s.writeError(c, domain.Errorf(domain.CodeNotFound, "no such endpoint"))
		return
	}
	c.Next()
}

// decodeStrict reads a small JSON object, refusing unknown fields.
func decodeStrict(c *gin.Context, v any) error {
	dec := json.NewDecoder(c.Request.Body)
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		return jsonErrorFor(err, requestModels[c.Request.Method+" "+c.FullPath()])
	}
	return nil
}

// requestModels names the body each JSON endpoint reads, as the OpenAPI
// document does, so an error names the endpoint's own model.
var requestModels = map[string]string{
	"POST /api/admin/tenants":              "NewTenant",
	"POST /api/admin/tenants/:id/domains":  "NewSenderDomain",
	"POST /api/admin/tenants/:id/accounts": "NewAccount",
	"PUT /api/admin/tenants/:id/sandbox":   "SandboxSetting",
	"PUT /api/admin/tenants/:id/delivery":  "DeliveryPolicy",
	"POST /api/suppressions":               "NewSuppression",
	"POST /api/webhooks":                   "NewWebhook",
	"POST /api/messages/retry":             "RetryRequest",
	"POST /api/admin/messages/retry":       "BulkRetryRequest",
	"POST /api/messages/batch":             "BatchRequest",
	"POST /api/messages/sendmessage":       "MessageComposeModel",
	"PATCH /api/mailbox/:id":               "MailboxChange",
	"PATCH /api/messages/:id":              "MessageComposeModel",
	"PUT /api/messages/:id":                "MessageComposeModel",
}

func (s *Server) createTenant(c *gin.Context) {
	var body struct {
		Name          string   `json:"name"`
		SenderDomains []string `json:"sender_domains"`
	}
	if err := decodeStrict(c, &body); err != nil {
		s.writeError(c, err)
		return
	}
	if err := domain.CheckHeaderText("name", body.Name, 200); err != nil {
		s.writeError(c, err)
		return
	}
	for i, d := range body.SenderDomains {
		body.SenderDomains[i] = asciiDomain(d)
	}
	t, err := s.admin.CreateTenant(c.Request.Context(), body.Name, body.SenderDomains)
	if err != nil {
		s.writeError(c, err)
		return
	}
	c.Header("Location", "/api/admin/tenants/"+t.ID.String())
	c.PureJSON(http.StatusCreated, newTenantView(t))
}

func (s *Server) listTenants(c *gin.Context) {
	tenants, err := s.admin.ListTenants(c.Request.Context())
	if err != nil {
		s.writeError(c, err)
		return
	}
	items := mapViews(tenants, newTenantView)
	c.PureJSON(http.StatusOK, gin.H{"items": items})
}

func (s *Server) getTenant(c *gin.Context) {
	id, ok := s.pathID(c)
	if !ok {
		return
	}
	t, err := s.admin.GetTenant(c.Request.Context(), id)
	if err != nil {
		s.writeError(c, err)
		return
	}
	c.PureJSON(http.StatusOK, newTenantView(t))
}

func (s *Server) setTenantStatus(status string) gin.HandlerFunc {
	return func(c *gin.Context) {
		id, ok := s.pathID(c)
		if !ok {
			return
		}
		t, err := s.admin.SetTenantStatus(c.Request.Context(), id, status)
		if err != nil {
			s.writeError(c, err)
			return
		}
		c.PureJSON(http.StatusOK, newTenantView(t))
	}
}

func (s *Server) addSenderDomain(c *gin.Context) {
	id, ok := s.pathID(c)
	if !ok {
		return
	}
	var body struct {
		Domain string `json:"domain"`
	}
	if err := decodeStrict(c, &body); err != nil {
		s.writeError(c, err)
		return
	}
	t, err := s.admin.AddSenderDomain(c.Request.Context(), id, asciiDomain(body.Domain))
	if err != nil {
		s.writeError(c, err)
		return
	}
	c.PureJSON(http.StatusOK, newTenantView(t))
}

func (s *Server) removeSenderDomain(c *gin.Context) {
	id, ok := s.pathID(c)
	if !ok {
		return
	}
	t, err := s.admin.RemoveSenderDomain(c.Request.Context(), id, asciiDomain(c.Param("domain")))
	if err != nil {
		s.writeError(c, err)
		return
	}
	c.PureJSON(http.StatusOK, newTenantView(t))
}

func (s *Server) createAccount(c *gin.Context) {
	id, ok := s.pathID(c)
	if !ok {
		return
	}
	var body struct {
		Email       string `json:"email"`
		DisplayName string `json:"display_name"`
	}
	if err := decodeStrict(c, &body); err != nil {
		s.writeError(c, err)
		return
	}
	if _, err := s.admin.GetTenant(c.Request.Context(), id); err != nil {
		s.writeError(c, err)
		return
	}
	a, err := s.admin.CreateAccount(c.Request.Context(), id, asciiAddress(body.Email), body.DisplayName)
	if err != nil {
		s.writeError(c, err)
		return
	}
	c.PureJSON(http.StatusCreated, newAccountView(a))
}

func (s *Server) listAccounts(c *gin.Context) {
	id, ok := s.pathID(c)
	if !ok {
		return
	}
	if _, err := s.admin.GetTenant(c.Request.Context(), id); err != nil {
		s.writeError(c, err)
		return
	}
	accounts, err := s.admin.ListAccounts(c.Request.Context(), id)
	if err != nil {
		s.writeError(c, err)
		return
	}
	items := mapViews(accounts, newAccountView)
	c.PureJSON(http.StatusOK, gin.H{"items": items})
}

// setSandbox turns a tenant's sandbox mode on or off: mail is accepted,
// stored and evented, but nothing leaves the gateway.
func (s *Server) setSandbox(c *gin.Context) {
	id, ok := s.pathID(c)
	if !ok {
		return
	}
	var body struct {
		Sandbox *bool `json:"sandbox"`
		// Enabled is the name earlier versions took; answers say sandbox.
		Enabled *bool `json:"enabled"`
	}
	if err := decodeStrict(c, &body); err != nil {
		s.writeError(c, err)
		return
	}
	on := cmp.Or(body.Sandbox, body.Enabled)
	switch {
	case on == nil:
		s.writeError(c, domain.FieldError("sandbox", "is required (true or false)"))
		return
	case body.Sandbox != nil && body.Enabled != nil && *body.Sandbox != *body.Enabled:
		s.writeError(c, domain.FieldError("sandbox", "differs from enabled, its former name; send sandbox alone"))
		return
	}
	if err := s.admin.SetSandbox(c.Request.Context(), id, *on); err != nil {
		s.writeError(c, err)
		return
	}
	c.PureJSON(http.StatusOK, gin.H{"subscription_id": id, "sandbox": *on})
}

// setDeliveryPolicy sets a tenant's fair-share weight and maximum send rate;
// a member left out keeps its current value.
func (s *Server) setDeliveryPolicy(c *gin.Context) {
	id, ok := s.pathID(c)
	if !ok {
		return
	}
	var body struct {
		Weight      *float64 `json:"delivery_weight"`
		MaxSendRate *float64 `json:"max_send_rate"`
	}
	if err := decodeStrict(c, &body); err != nil {
		s.writeError(c, err)
		return
	}
	current, err := s.admin.GetTenant(c.Request.Context(), id)
	if err != nil {
		s.writeError(c, err)
		return
	}
	p := current.Delivery
	if body.Weight != nil {
		p.Weight = *body.Weight
	}
	if body.MaxSendRate != nil {
		p.MaxSendRate = *body.MaxSendRate
	}
	t, err := s.admin.SetDeliveryPolicy(c.Request.Context(), id, p)
	if err != nil {
		s.writeError(c, err)
		return
	}
	c.PureJSON(http.StatusOK, newTenantView(t))
}

// retryAcrossTenants is the operator's bulk retry: after a relay-wide
// incident, the recipients that bounced with its reply code in its time
// window are requeued in every tenant (or the one named), each checked
// against its tenant's suppression list at that moment. The window is
// required, so a retry never sweeps a tenant's whole history by accident.
func (s *Server) retryAcrossTenants(c *gin.Context) {
	body, err := decodeRetryRequest(c)
	if err != nil {
		s.writeError(c, err)
		return
	}
	if body.RepliedAfter == "" || body.RepliedBefore == "" {
		s.writeError(c, domain.FieldError("replied_after", "and replied_before are required: the incident's time window"))
		return
	}
	f, err := body.filter()
	if err != nil {
		s.writeError(c, err)
		return
	}
	var results map[uuid.UUID][]uuid.UUID
	if body.SubscriptionID != "" {
		tenant, err := parseGUID("subscription_id", body.SubscriptionID)
		if err != nil || tenant == uuid.Nil {
			s.writeError(c, domain.FieldError("subscription_id", "is not a valid GUID"))
			return
		}
		if _, err := s.admin.GetTenant(c.Request.Context(), tenant); err != nil {
			s.writeError(c, err)
			return
		}
		ids, err := s.control.RetryMessages(c.Request.Context(), tenant, f)
		if err != nil {
			s.writeError(c, err)
			return
		}
		results = map[uuid.UUID][]uuid.UUID{tenant: ids}
	} else if results, err = s.admin.RetryAcrossTenants(c.Request.Context(), f); err != nil {
		s.writeError(c, err)
		return
	}
	type tenantRetry struct {
		SubscriptionID uuid.UUID   `json:"subscription_id"`
		IDs            []uuid.UUID `json:"ids"`
	}
	items, total := []tenantRetry{}, 0
	for _, tenant := range slices.SortedFunc(maps.Keys(results), func(a, b uuid.UUID) int { return strings.Compare(a.String(), b.String()) }) {
		if len(results[tenant]) == 0 {
			continue
		}
		items = append(items, tenantRetry{SubscriptionID: tenant, IDs: results[tenant]})
		total += len(results[tenant])
	}
	c.PureJSON(http.StatusOK, gin.H{"requeued": total, "tenants": items})
}
