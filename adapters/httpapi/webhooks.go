package httpapi

import (
	"context"
	"crypto/rand"
	"encoding/base64"
	"net/http"
	"strconv"
	"time"

	"github.com/gin-gonic/gin"
	"github.com/google/uuid"

	"github.com/mailgate/mailgate/domain"
)

// WebhookStore keeps a tenant's webhook endpoints and its event feed.
type WebhookStore interface {
	// CreateWebhook refuses with domain.CodeLimitExceeded when the tenant
	// already has maxEndpoints endpoints.
	CreateWebhook(ctx context.Context, tenant uuid.UUID, w domain.Webhook, maxEndpoints int) (domain.Webhook, error)
	ListWebhooks(ctx context.Context, tenant uuid.UUID) ([]domain.Webhook, error)
	GetWebhook(ctx context.Context, tenant, id uuid.UUID) (domain.Webhook, error)
	DeleteWebhook(ctx context.Context, tenant, id uuid.UUID) error
	RotateWebhookSecret(ctx context.Context, tenant, id uuid.UUID, secret []byte, grace time.Duration) (domain.Webhook, error)
	EventFeed(ctx context.Context, tenant uuid.UUID, after string, limit int) ([]domain.Event, string, error)
}

// webhookSecretGrace is how long a rotated-out secret keeps signing.
const webhookSecretGrace = 24 * time.Hour

// knownEventTypes are the event types a webhook may subscribe to.
var knownEventTypes = map[string]bool{ //nolint:gochecknoglobals // read-only: a fixed set
	"created": true, "updated": true, "queued": true, "attempt": true, "delivered": true, "deferred": true,
	"bounced": true, "failed": true, "suppressed": true, "sent": true, "partially_sent": true, "cancelled": true,
	"deleted": true, "suppression.added": true, "suppression.removed": true, "webhook.disabled": true,
	// Inbound: DSNs, complaints and replies.
	domain.EventDelayed: true, domain.EventDSNDelivered: true, domain.EventDSNRelayed: true,
	domain.EventComplained: true, domain.EventInboundReceived: true,
}

type webhookView struct {
	ID                  uuid.UUID `json:"id"`
	URL                 string    `json:"url"`
	EventTypes          []string  `json:"event_types"`
	Status              string    `json:"status"`
	DisabledReason      string    `json:"disabled_reason,omitempty"`
	ConsecutiveFailures int       `json:"consecutive_failures"`
	CreatedAt           time.Time `json:"created_at"`
	// Secret is shown only when created or rotated.
	Secret string `json:"secret,omitempty"`
}

func newWebhookView(w domain.Webhook, showSecret bool) webhookView {
	v := webhookView{ID: w.ID, URL: w.URL, EventTypes: w.EventTypes, Status: w.Status, DisabledReason: w.DisabledReason,
		ConsecutiveFailures: w.ConsecutiveFailures, CreatedAt: w.CreatedAt}
	if v.EventTypes == nil {
		v.EventTypes = []string{}
	}
	if showSecret && len(w.Secrets) > 0 {
		v.Secret = "whsec_" + base64.RawURLEncoding.EncodeToString(w.Secrets[0])
	}
	return v
}

func (s *Server) registerWebhooks(r router) {
	r.handle(http.MethodPost, "/webhooks", s.createWebhook)
	r.handle(http.MethodGet, "/webhooks", s.listWebhooks)
	r.handle(http.MethodGet, "/webhooks/:id", s.getWebhook)
	r.handle(http.MethodDelete, "/webhooks/:id", s.deleteWebhook)
	r.handle(http.MethodPost, "/webhooks/:id/rotate-secret", s.rotateWebhookSecret)
	r.handle(http.MethodGet, "/events", s.eventFeed)
}

func newWebhookSecret() ([]byte, error) {
	b := make([]byte, 32)
	_, err := rand.Read(b)
	return b, err
}

func (s *Server) createWebhook(c *gin.Context) (*answer, error) {
	var body struct {
		URL        string   `json:"url"`
		EventTypes []string `json:"event_types"`
	}
	if err := decodeStrict(c, &body); err != nil {
		return nil, err
	}
	if s.validateWebhookURL != nil {
		if err := s.validateWebhookURL(body.URL); err != nil {
			return nil, domain.FieldError("url", "%s", err.Error())
		}
	}
	if len(body.EventTypes) == 0 {
		body.EventTypes = nil // no filter: every event
	}
	for i, t := range body.EventTypes {
		if !knownEventTypes[t] {
			return nil, domain.FieldError("event_types["+strconv.Itoa(i)+"]", "%q is not an event type", t)
		}
	}
	secret, err := newWebhookSecret()
	if err != nil {
		return nil, err
	}
	w, err := s.webhooks.CreateWebhook(c.Request.Context(), principalOf(c).SubscriptionID,
		domain.Webhook{URL: body.URL, EventTypes: body.EventTypes, Secrets: [][]byte{secret}}, s.maxWebhooks)
	if err != nil {
		return nil, err
	}
	return jsonAnswer(http.StatusCreated, newWebhookView(w, true)).with("Location", "/api/webhooks/"+w.ID.String()), nil
}

func (s *Server) listWebhooks(c *gin.Context) (*answer, error) {
	hooks, err := s.webhooks.ListWebhooks(c.Request.Context(), principalOf(c).SubscriptionID)
	if err != nil {
		return nil, err
	}
	items := mapViews(hooks, func(w domain.Webhook) webhookView { return newWebhookView(w, false) })
	return jsonAnswer(http.StatusOK, gin.H{"items": items}), nil
}

func (s *Server) getWebhook(c *gin.Context) (*answer, error) {
	id, err := pathID(c)
	if err != nil {
		return nil, err
	}
	w, err := s.webhooks.GetWebhook(c.Request.Context(), principalOf(c).SubscriptionID, id)
	if err != nil {
		return nil, err
	}
	return jsonAnswer(http.StatusOK, newWebhookView(w, false)), nil
}

func (s *Server) deleteWebhook(c *gin.Context) (*answer, error) {
	id, err := pathID(c)
	if err != nil {
		return nil, err
	}
	if err := s.webhooks.DeleteWebhook(c.Request.Context(), principalOf(c).SubscriptionID, id); err != nil {
		return nil, err
	}
	return emptyAnswer(http.StatusNoContent), nil
}

func (s *Server) rotateWebhookSecret(c *gin.Context) (*answer, error) {
	id, err := pathID(c)
	if err != nil {
		return nil, err
	}
	secret, err := newWebhookSecret()
	if err != nil {
		return nil, err
	}
	w, err := s.webhooks.RotateWebhookSecret(c.Request.Context(), principalOf(c).SubscriptionID, id, secret, webhookSecretGrace)
	if err != nil {
		return nil, err
	}
	return jsonAnswer(http.StatusOK, newWebhookView(w, true)), nil
}

// eventFeed pages through the tenant's events in commit order; a consumer
// stores next_after and resumes from it after an outage.
func (s *Server) eventFeed(c *gin.Context) (*answer, error) {
	limit, err := parseLimit(c, "after")
	if err != nil {
		return nil, err
	}
	events, next, err := s.webhooks.EventFeed(c.Request.Context(), principalOf(c).SubscriptionID, c.Query("after"), limit)
	if err != nil {
		return nil, err
	}
	items := mapViews(events, domain.Event.Payload)
	return negotiatedAnswer(http.StatusOK, gin.H{"items": items, "next_after": next}, func() ([]byte, error) {
		return encodeEventFeedXML(items, next)
	}), nil
}
