// Package httpapi is Mailgate's public HTTP API on gin: the seed's
// sendmessage endpoint, the message resources, health checks, bearer-token
// authentication, and the single mapping from domain errors to problem details.
package httpapi

import (
	"cmp"
	"context"
	"crypto/rand"
	"encoding/hex"
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
	s := &Server{verifier: d.Verifier, composer: d.Composer, messages: d.Messages, files: d.Attachments, admin: d.Admin, suppressions: d.Suppressions, webhooks: d.Webhooks, control: d.Control, idem: d.Idempotency, batch: d.Batch, mailbox: d.Mailbox, validateWebhookURL: d.ValidateWebhookURL, maxWebhooks: cmp.Or(d.WebhookMaxEndpoints, domain.DefaultWebhookMaxEndpoints), limiter: d.RateLimiter, policy: d.AttachmentPolicy, ready: d.Ready, bounds: d.Bounds, unavailable: d.Unavailable, observer: d.Observer, logger: d.Logger}
	if s.logger == nil {
		s.logger = slog.Default()
	}
	e := gin.New()
	e.HandleMethodNotAllowed = true
	e.Use(s.requestLog, s.recoverPanics, s.boundRequest)
	e.NoRoute(func(c *gin.Context) { s.writeError(c, domain.Errorf(domain.CodeNotFound, "no such endpoint")) })
	e.NoMethod(func(c *gin.Context) {
		s.writeErrorStatus(c, http.StatusMethodNotAllowed, "method_not_allowed", "this endpoint does not take "+c.Request.Method)
	})
	e.GET("/healthz", func(c *gin.Context) { c.JSON(http.StatusOK, gin.H{"status": "ok"}) })
	e.GET("/readyz", s.readyz)
	e.GET("/api/openapi.json", serveOpenAPI)
	e.GET("/help", s.helpHandler())

	api := e.Group("/api", s.limitBody, s.authenticate, s.rateLimit, s.idempotency)
	api.POST("/messages/sendmessage", s.sendMessage)
	api.GET("/messages", s.listMessages)
	api.GET("/messages/:id", s.getMessage)
	api.PUT("/messages/:id", s.putMessage)
	api.PATCH("/messages/:id", s.patchMessage)
	api.DELETE("/messages/:id", s.deleteMessage)
	api.POST("/messages/:id/send", s.sendDraft)
	api.GET("/messages/:id/events", s.messageEvents)
	api.POST("/attachments", s.uploadAttachment)
	api.GET("/attachments/:id", s.getAttachment)
	api.GET("/attachments/:id/content", s.attachmentContent)
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

func (s *Server) readyz(c *gin.Context) {
	if s.ready != nil {
		ctx, cancel := context.WithTimeout(c.Request.Context(), 2*time.Second)
		defer cancel()
		if err := s.ready(ctx); err != nil {
			s.logger.WarnContext(ctx, "not ready", "error", err)
			c.JSON(http.StatusServiceUnavailable, gin.H{"status": "unavailable"})
			return
		}
	}
	c.JSON(http.StatusOK, gin.H{"status": "ready"})
}

func (s *Server) limitBody(c *gin.Context) {
	if c.Request.ContentLength > MaxRequestBytes {
		s.writeError(c, &domain.Error{Code: domain.CodeTooLarge, Message: "the request body is larger than the gateway accepts"})
		return
	}
	c.Request.Body = http.MaxBytesReader(c.Writer, c.Request.Body, MaxRequestBytes)
	c.Next()
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

func (s *Server) recoverPanics(c *gin.Context) {
	defer func() {
		if r := recover(); r != nil {
			if r == http.ErrAbortHandler {
				panic(r)
			}
			s.logger.ErrorContext(c.Request.Context(), "panic serving request", "panic", r, "request_id", c.GetString(ctxRequestID))
			s.writeError(c, domain.Errorf(domain.CodeInternal, "internal error"))
		}
	}()
	c.Next()
}

func (s *Server) writeErrorStatus(c *gin.Context, status int, code, detail string) {
	c.Header("Content-Type", "application/problem+json")
	c.AbortWithStatusJSON(status, Problem{
		Type: "https://mailgate.dev/problems/" + code, Title: http.StatusText(status), Status: status,
		Detail: detail, Instance: c.Request.URL.Path, Code: code, RequestID: c.GetString(ctxRequestID),
	})
}

// rateLimit applies the per-tenant token bucket and always reports the
// tenant's budget in RateLimit headers.
func (s *Server) rateLimit(c *gin.Context) {
	if s.limiter == nil {
		c.Next()
		return
	}
	d, err := s.limiter.Take(c.Request.Context(), principalOf(c).SubscriptionID)
	if err != nil {
		s.writeError(c, err)
		return
	}
	for k, v := range d.Headers() {
		c.Header(k, v)
	}
	if !d.Allowed {
		s.writeError(c, &domain.Error{Code: domain.CodeRateLimited, Message: "too many requests for this subscription; retry after the Retry-After delay"})
		return
	}
	c.Next()
}
