// Package httpapi is Mailgate's public HTTP API on gin: the seed's
// sendmessage endpoint, the message resources, health checks, bearer-token
// authentication, and the single mapping from domain errors to problem details.
package httpapi

import (
	"cmp"
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"log/slog"
	"net/http"
	"time"

	"github.com/gin-gonic/gin"
	"github.com/google/uuid"

	"github.com/mailgate/mailgate/domain"
)

// MaxRequestBytes caps a request body before it is read; the body and its
// encoding overhead fit comfortably.
const MaxRequestBytes = 12 << 20

// MessageReader reads a tenant's messages.
type MessageReader interface {
	GetMessage(ctx context.Context, tenant, id uuid.UUID) (*domain.Message, error)
	ListMessages(ctx context.Context, tenant uuid.UUID, f domain.MessageFilter) (domain.MessagePage, error)
	MessageEvents(ctx context.Context, tenant, id uuid.UUID) ([]domain.Event, error)
}

// Composer creates, updates, sends and deletes messages.
type Composer interface {
	Compose(ctx context.Context, tenant uuid.UUID, req domain.ComposeRequest) (*domain.Message, error)
	Send(ctx context.Context, tenant, id uuid.UUID, expected *domain.Version) (*domain.Message, error)
	Delete(ctx context.Context, tenant, id uuid.UUID, expected *domain.Version) error
}

// AttachmentStore keeps uploaded files.
type AttachmentStore interface {
	CreateAttachment(ctx context.Context, a *domain.Attachment, data []byte) error
	GetAttachment(ctx context.Context, tenant, id uuid.UUID) (domain.Attachment, error)
	AttachmentContent(ctx context.Context, tenant, id uuid.UUID) (domain.AttachmentContent, error)
}

// RequestObserver records finished requests and accepted messages, for metrics.
type RequestObserver interface {
	ObserveRequest(method, route string, status int, elapsed time.Duration)
	ObserveAccepted(tenant uuid.UUID, n int)
}

// Deps are the ports the API needs.
type Deps struct {
	Verifier    TokenVerifier
	Composer    Composer
	Messages    MessageReader
	Attachments AttachmentStore
	// Admin serves the operator endpoints; nil leaves them out.
	Admin        AdminStore
	Suppressions SuppressionStore
	Webhooks     WebhookStore
	Control      MessageControl
	Idempotency  IdempotencyStore
	Batch        BatchComposer
	// Mailbox serves the internal recipients' mailboxes.
	Mailbox MailboxStore
	// MailboxAttachments serves the attachments mailbox entries carry; nil
	// answers their routes 404.
	MailboxAttachments MailboxAttachmentStore
	// InboundAdmin is the operator's view of stored inbound mail; nil (no
	// inbound side) answers its routes 404.
	InboundAdmin InboundAdminStore
	// ValidateWebhookURL refuses endpoints the gateway must not call (SSRF).
	ValidateWebhookURL func(raw string) error
	// WebhookMaxEndpoints caps each tenant's registered endpoints; 0 takes
	// domain.DefaultWebhookMaxEndpoints.
	WebhookMaxEndpoints int
	// RateLimiter limits requests per tenant; nil means unlimited.
	RateLimiter RateLimiter
	// AttachmentPolicy refuses uploads by type or name.
	AttachmentPolicy domain.AttachmentPolicy
	// Ready reports whether the gateway can serve traffic (database, schema).
	Ready func(ctx context.Context) error
	// Bounds are the deadline and body pace every request is held to.
	Bounds Bounds
	// Unavailable tells failures of the database (unreachable, restarting,
	// out of connections, a statement timed out) from bugs, so they are
	// answered 503 with Retry-After rather than 500.
	Unavailable func(error) bool
	Observer    RequestObserver
	Logger      *slog.Logger
}

// Server is the public API.
type Server struct {
	verifier           TokenVerifier
	composer           Composer
	messages           MessageReader
	files              AttachmentStore
	admin              AdminStore
	suppressions       SuppressionStore
	webhooks           WebhookStore
	control            MessageControl
	idem               IdempotencyStore
	batch              BatchComposer
	mailbox            MailboxStore
	mailboxFiles       MailboxAttachmentStore
	inboundAdmin       InboundAdminStore
	validateWebhookURL func(string) error
	maxWebhooks        int
	limiter            RateLimiter
	policy             domain.AttachmentPolicy
	ready              func(ctx context.Context) error
	bounds             Bounds
	unavailable        func(error) bool
	observer           RequestObserver
	logger             *slog.Logger
	engine             *gin.Engine
	handler            http.Handler
}

// New builds the API's router.
func New(d Deps) *Server {
	gin.SetMode(gin.ReleaseMode)
	s := &Server{verifier: d.Verifier, composer: d.Composer, messages: d.Messages, files: d.Attachments, admin: d.Admin, suppressions: d.Suppressions, webhooks: d.Webhooks, control: d.Control, idem: d.Idempotency, batch: d.Batch, mailbox: d.Mailbox, mailboxFiles: d.MailboxAttachments, inboundAdmin: d.InboundAdmin, validateWebhookURL: d.ValidateWebhookURL, maxWebhooks: cmp.Or(d.WebhookMaxEndpoints, domain.DefaultWebhookMaxEndpoints), limiter: d.RateLimiter, policy: d.AttachmentPolicy, ready: d.Ready, bounds: d.Bounds, unavailable: d.Unavailable, observer: d.Observer, logger: d.Logger}
	if s.logger == nil {
		s.logger = slog.Default()
	}
	e := gin.New()
	e.HandleMethodNotAllowed = true
	e.Use(s.requestLog, s.mount(s.recoverPanics), s.boundRequest)
	e.NoRoute(s.mount(noSuchEndpoint))
	e.NoMethod(s.mount(methodNotAllowed))
	root := router{server: s, group: &e.RouterGroup}
	root.handle(http.MethodGet, "/healthz", healthz)
	root.handle(http.MethodGet, "/readyz", s.readyz)
	root.handle(http.MethodGet, "/api/openapi.json", serveOpenAPI)
	root.handle(http.MethodGet, "/help", s.helpHandler())

	api := root.subgroup("/api", s.limitBody, s.authenticate, s.rateLimit, s.idempotency)
	api.handle(http.MethodPost, "/messages/sendmessage", s.sendMessage)
	api.handle(http.MethodGet, "/messages", s.listMessages)
	api.handle(http.MethodGet, "/messages/:id", s.getMessage)
	api.handle(http.MethodPut, "/messages/:id", s.putMessage)
	api.handle(http.MethodPatch, "/messages/:id", s.patchMessage)
	api.handle(http.MethodDelete, "/messages/:id", s.deleteMessage)
	api.handle(http.MethodPost, "/messages/:id/send", s.sendDraft)
	api.handle(http.MethodGet, "/messages/:id/events", s.messageEvents)
	api.handle(http.MethodPost, "/attachments", s.uploadAttachment)
	api.handle(http.MethodGet, "/attachments/:id", s.getAttachment)
	api.handle(http.MethodGet, "/attachments/:id/content", s.attachmentContent)
	s.registerAdmin(api)
	s.registerSuppressions(api)
	s.registerWebhooks(api)
	s.registerControl(api)
	s.registerMailbox(api)
	s.registerMailboxAttachments(api)
	s.registerInboundAdmin(api)
	s.engine = e
	s.handler = newRouteWords(e).handler(e)
	return s
}

// Handler returns the http.Handler serving the API; paths match
// case-insensitively and with or without a trailing slash.
func (s *Server) Handler() http.Handler { return s.handler }

// healthz answers the liveness probe: the process serves requests.
func healthz(*gin.Context) (*answer, error) {
	return jsonAnswer(http.StatusOK, gin.H{"status": "ok"}), nil
}

// readyz answers the readiness probe. Not being ready is the probe's
// answer, not a failed request: it is a plain status body, not a problem.
func (s *Server) readyz(c *gin.Context) (*answer, error) {
	if s.ready != nil {
		ctx, cancel := context.WithTimeout(c.Request.Context(), 2*time.Second)
		defer cancel()
		if err := s.ready(ctx); err != nil {
			s.logger.WarnContext(ctx, "not ready", "error", err)
			return jsonAnswer(http.StatusServiceUnavailable, gin.H{"status": "unavailable"}), nil
		}
	}
	return jsonAnswer(http.StatusOK, gin.H{"status": "ready"}), nil
}

func (s *Server) limitBody(c *gin.Context) (*answer, error) {
	if c.Request.ContentLength > MaxRequestBytes {
		return nil, &domain.Error{Code: domain.CodeTooLarge, Message: "the request body is larger than the gateway accepts"}
	}
	c.Request.Body = http.MaxBytesReader(c.Writer, c.Request.Body, MaxRequestBytes)
	return nil, nil
}

// requestLog assigns the request id and writes one log line per request.
func (s *Server) requestLog(c *gin.Context) {
	start := time.Now()
	id := c.GetHeader("X-Request-ID")
	if id == "" || len(id) > 128 || domain.CheckHeaderText("X-Request-ID", id, 128) != nil {
		b := make([]byte, 12)
		_, _ = rand.Read(b)
		id = hex.EncodeToString(b)
	}
	c.Set(ctxRequestID, id)
	c.Header("X-Request-ID", id)
	c.Next()
	route := c.FullPath()
	if route == "" {
		route = "unmatched"
	}
	elapsed := time.Since(start)
	status := c.Writer.Status()
	// Probes come every few seconds from every kubelet: they are neither API
	// traffic for the metrics nor worth a line at info (a failing /readyz
	// logs its reason at warn).
	probe := isProbe(route)
	if s.observer != nil && !probe {
		s.observer.ObserveRequest(c.Request.Method, route, status, elapsed)
	}
	attrs := []any{"request_id", id, "method", c.Request.Method, "route", route, "status", status, "latency_ms", float64(elapsed.Microseconds()) / 1000}
	if p := principalOf(c); p.SubscriptionID != uuid.Nil {
		attrs = append(attrs, "subscription_id", p.SubscriptionID)
	}
	level := slog.LevelInfo
	if probe {
		level = slog.LevelDebug
	}
	s.logger.Log(c.Request.Context(), level, "request", attrs...)
}

// isProbe tells the health endpoints the orchestrator polls.
func isProbe(route string) bool { return route == "/healthz" || route == "/readyz" }

// recoverPanics runs the rest of the chain and turns a panic in it into
// an internal error, answered by mount like any other.
func (s *Server) recoverPanics(c *gin.Context) (a *answer, err error) {
	defer func() {
		if r := recover(); r != nil {
			if err, ok := r.(error); ok && errors.Is(err, http.ErrAbortHandler) {
				panic(r)
			}
			s.logger.ErrorContext(c.Request.Context(), "panic serving request", "panic", r, "request_id", c.GetString(ctxRequestID))
			err = domain.Errorf(domain.CodeInternal, "internal error")
		}
	}()
	c.Next()
	return nil, nil
}

// rateLimit applies the per-tenant token bucket and always reports the
// tenant's budget in RateLimit headers.
func (s *Server) rateLimit(c *gin.Context) (*answer, error) {
	if s.limiter == nil {
		return nil, nil
	}
	d, err := s.limiter.Take(c.Request.Context(), principalOf(c).SubscriptionID)
	if err != nil {
		return nil, err
	}
	for k, v := range d.Headers() {
		c.Header(k, v)
	}
	if !d.Allowed {
		return nil, &domain.Error{Code: domain.CodeRateLimited, Message: "too many requests for this subscription; retry after the Retry-After delay"}
	}
	return nil, nil
}
