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

	"github.com/mailgate/mailgate/adapters/httpapi/wire"
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
func (s *Server) registerAdmin(r router) {
	admin := r.subgroup("/admin", s.requireAdmin)
	admin.handle(http.MethodPost, "/tenants", s.createTenant)
	admin.handle(http.MethodGet, "/tenants", s.listTenants)
	admin.handle(http.MethodGet, "/tenants/:id", s.getTenant)
	admin.handle(http.MethodPost, "/tenants/:id/suspend", s.setTenantStatus(domain.TenantSuspended))
	admin.handle(http.MethodPost, "/tenants/:id/resume", s.setTenantStatus(domain.TenantActive))
	admin.handle(http.MethodPost, "/tenants/:id/domains", s.addSenderDomain)
	admin.handle(http.MethodDelete, "/tenants/:id/domains/:domain", s.removeSenderDomain)
	admin.handle(http.MethodPost, "/tenants/:id/accounts", s.createAccount)
	admin.handle(http.MethodGet, "/tenants/:id/accounts", s.listAccounts)
	admin.handle(http.MethodPut, "/tenants/:id/sandbox", s.setSandbox)
	admin.handle(http.MethodPut, "/tenants/:id/delivery", s.setDeliveryPolicy)
	admin.handle(http.MethodPost, "/messages/retry", s.retryAcrossTenants)
}

func (s *Server) requireAdmin(c *gin.Context) (*answer, error) {
	if !principalOf(c).Admin {
		return nil, domain.Errorf(domain.CodeForbidden, "this endpoint needs an operator (admin) token")
	}
	if s.admin == nil {
		return nil, domain.Errorf(domain.CodeNotFound, "no such endpoint")
	}
	return nil, nil
}

// decodeStrict reads a small JSON object, refusing unknown fields.
func decodeStrict(c *gin.Context, v any) error {
	dec := json.NewDecoder(c.Request.Body)
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		return wire.JSONError(err, requestModels[c.Request.Method+" "+c.FullPath()])
	}
	return nil
}

// requestModels names the body each JSON endpoint reads, as the OpenAPI
// document does, so an error names the endpoint's own model.
var requestModels = map[string]string{ //nolint:gochecknoglobals // read-only: the OpenAPI model names
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

func (s *Server) createTenant(c *gin.Context) (*answer, error) {
	var body struct {
		Name          string   `json:"name"`
		SenderDomains []string `json:"sender_domains"`
	}
	if err := decodeStrict(c, &body); err != nil {
		return nil, err
	}
	if err := domain.CheckHeaderText("name", body.Name, 200); err != nil {
		return nil, err
	}
	for i, d := range body.SenderDomains {
		body.SenderDomains[i] = wire.ASCIIDomain(d)
	}
	t, err := s.admin.CreateTenant(c.Request.Context(), body.Name, body.SenderDomains)
	if err != nil {
		return nil, err
	}
	return jsonAnswer(http.StatusCreated, newTenantView(t)).with("Location", "/api/admin/tenants/"+t.ID.String()), nil
}

func (s *Server) listTenants(c *gin.Context) (*answer, error) {
	tenants, err := s.admin.ListTenants(c.Request.Context())
	if err != nil {
		return nil, err
	}
	items := mapViews(tenants, newTenantView)
	return jsonAnswer(http.StatusOK, gin.H{"items": items}), nil
}

func (s *Server) getTenant(c *gin.Context) (*answer, error) {
	id, err := pathID(c)
	if err != nil {
		return nil, err
	}
	t, err := s.admin.GetTenant(c.Request.Context(), id)
	if err != nil {
		return nil, err
	}
	return jsonAnswer(http.StatusOK, newTenantView(t)), nil
}

func (s *Server) setTenantStatus(status string) handler {
	return func(c *gin.Context) (*answer, error) {
		id, err := pathID(c)
		if err != nil {
			return nil, err
		}
		t, err := s.admin.SetTenantStatus(c.Request.Context(), id, status)
		if err != nil {
			return nil, err
		}
		return jsonAnswer(http.StatusOK, newTenantView(t)), nil
	}
}

func (s *Server) addSenderDomain(c *gin.Context) (*answer, error) {
	id, err := pathID(c)
	if err != nil {
		return nil, err
	}
	var body struct {
		Domain string `json:"domain"`
	}
	if err := decodeStrict(c, &body); err != nil {
		return nil, err
	}
	t, err := s.admin.AddSenderDomain(c.Request.Context(), id, wire.ASCIIDomain(body.Domain))
	if err != nil {
		return nil, err
	}
	return jsonAnswer(http.StatusOK, newTenantView(t)), nil
}

func (s *Server) removeSenderDomain(c *gin.Context) (*answer, error) {
	id, err := pathID(c)
	if err != nil {
		return nil, err
	}
	t, err := s.admin.RemoveSenderDomain(c.Request.Context(), id, wire.ASCIIDomain(c.Param("domain")))
	if err != nil {
		return nil, err
	}
	return jsonAnswer(http.StatusOK, newTenantView(t)), nil
}

func (s *Server) createAccount(c *gin.Context) (*answer, error) {
	id, err := pathID(c)
	if err != nil {
		return nil, err
	}
	var body struct {
		Email       string `json:"email"`
		DisplayName string `json:"display_name"`
	}
	if err := decodeStrict(c, &body); err != nil {
		return nil, err
	}
	if _, err := s.admin.GetTenant(c.Request.Context(), id); err != nil {
		return nil, err
	}
	a, err := s.admin.CreateAccount(c.Request.Context(), id, wire.ASCIIAddress(body.Email), body.DisplayName)
	if err != nil {
		return nil, err
	}
	return jsonAnswer(http.StatusCreated, newAccountView(a)), nil
}

func (s *Server) listAccounts(c *gin.Context) (*answer, error) {
	id, err := pathID(c)
	if err != nil {
		return nil, err
	}
	if _, err := s.admin.GetTenant(c.Request.Context(), id); err != nil {
		return nil, err
	}
	accounts, err := s.admin.ListAccounts(c.Request.Context(), id)
	if err != nil {
		return nil, err
	}
	items := mapViews(accounts, newAccountView)
	return jsonAnswer(http.StatusOK, gin.H{"items": items}), nil
}

// setSandbox turns a tenant's sandbox mode on or off: mail is accepted,
// stored and evented, but nothing leaves the gateway.
func (s *Server) setSandbox(c *gin.Context) (*answer, error) {
	id, err := pathID(c)
	if err != nil {
		return nil, err
	}
	var body struct {
		Sandbox *bool `json:"sandbox"`
		// Enabled is the name earlier versions took; answers say sandbox.
		Enabled *bool `json:"enabled"`
	}
	if err := decodeStrict(c, &body); err != nil {
		return nil, err
	}
	on := cmp.Or(body.Sandbox, body.Enabled)
	switch {
	case on == nil:
		return nil, domain.FieldError("sandbox", "is required (true or false)")
	case body.Sandbox != nil && body.Enabled != nil && *body.Sandbox != *body.Enabled:
		return nil, domain.FieldError("sandbox", "differs from enabled, its former name; send sandbox alone")
	}
	if err := s.admin.SetSandbox(c.Request.Context(), id, *on); err != nil {
		return nil, err
	}
	return jsonAnswer(http.StatusOK, gin.H{"subscription_id": id, "sandbox": *on}), nil
}

// setDeliveryPolicy sets a tenant's fair-share weight and maximum send rate;
// a member left out keeps its current value.
func (s *Server) setDeliveryPolicy(c *gin.Context) (*answer, error) {
	id, err := pathID(c)
	if err != nil {
		return nil, err
	}
	var body struct {
		Weight      *float64 `json:"delivery_weight"`
		MaxSendRate *float64 `json:"max_send_rate"`
	}
	if err := decodeStrict(c, &body); err != nil {
		return nil, err
	}
	current, err := s.admin.GetTenant(c.Request.Context(), id)
	if err != nil {
		return nil, err
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
		return nil, err
	}
	return jsonAnswer(http.StatusOK, newTenantView(t)), nil
}

// retryAcrossTenants is the operator's bulk retry: after a relay-wide
// incident, the recipients that bounced with its reply code in its time
// window are requeued in every tenant (or the one named), each checked
// against its tenant's suppression list at that moment. The window is
// required, so a retry never sweeps a tenant's whole history by accident.
func (s *Server) retryAcrossTenants(c *gin.Context) (*answer, error) {
	body, err := decodeRetryRequest(c)
	if err != nil {
		return nil, err
	}
	if body.RepliedAfter == "" || body.RepliedBefore == "" {
		return nil, domain.FieldError("replied_after", "and replied_before are required: the incident's time window")
	}
	f, err := body.filter()
	if err != nil {
		return nil, err
	}
	var results map[uuid.UUID][]uuid.UUID
	if body.SubscriptionID != "" {
		tenant, err := parseGUID("subscription_id", body.SubscriptionID)
		if err != nil || tenant == uuid.Nil {
			return nil, domain.FieldError("subscription_id", "is not a valid GUID")
		}
		if _, err := s.admin.GetTenant(c.Request.Context(), tenant); err != nil {
			return nil, err
		}
		ids, err := s.control.RetryMessages(c.Request.Context(), tenant, f)
		if err != nil {
			return nil, err
		}
		results = map[uuid.UUID][]uuid.UUID{tenant: ids}
	} else if results, err = s.admin.RetryAcrossTenants(c.Request.Context(), f); err != nil {
		return nil, err
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
	return jsonAnswer(http.StatusOK, gin.H{"requeued": total, "tenants": items}), nil
}
