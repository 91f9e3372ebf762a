// Package app is Mailgate's composition root: configuration, wiring of the
// adapters and workers, and the operator CLI. Nothing imports it.
package app

import (
	"fmt"

	"strconv"
	"time"

	"github.com/mailgate/mailgate/db"
	"github.com/mailgate/mailgate/domain"
	"github.com/mailgate/mailgate/jobs"
)

// DefaultDatabaseURL is the database used when MAILGATE_DATABASE_URL is unset.
const DefaultDatabaseURL = "postgres://postgres@127.0.0.1:5432/mailgate?sslmode=disable"

// Config is everything the gateway reads from its environment, loaded once.
type Config struct {
	DatabaseURL string
	// MigrationDatabaseURL connects as the schema owner for migrate; it
	// defaults to DatabaseURL.
	MigrationDatabaseURL string
	// DatabaseRole is the runtime role the gateway works as, so row-level
	// security applies even when DatabaseURL logs in as the owner.
	DatabaseRole  string
	HTTPAddr      string
	AdminAddr     string
	SMTPURL       string
	JWTSecret     string
	JWTPublicKeys string
	JWTIssuer     string
	JWTAudience   string
	Workers       int
	RetryBase     time.Duration
	// MaxDeliveryAge is how long a message is retried before its deferred
	// recipients fail (MAILGATE_MAX_DELIVERY_AGE, default 48h).
	MaxDeliveryAge time.Duration
	ShutdownGrace  time.Duration
	// DrainDelay is how long a SIGTERM'd process keeps serving with /readyz
	// failing before it shuts down (MAILGATE_DRAIN_DELAY, default 5s; 0: none).
	DrainDelay     time.Duration
	FetchCooldown  time.Duration
	FetchPollEvery time.Duration
	// AllowExecutables turns off the default refusal of programs and
	// scripts as attachments (MAILGATE_ATTACHMENTS_ALLOW_EXECUTABLES=true).
	AllowExecutables bool
	// RateLimit is each tenant's sustained API request rate (per second) and
	// RateBurst its burst; 0 turns limiting off.
	RateLimit float64
	// TenantMaxDeliveries caps one tenant's concurrent deliveries across
	// every worker process (MAILGATE_TENANT_MAX_DELIVERIES, default 0: no
	// cap; tenants share the workers by weight without it).
	TenantMaxDeliveries int
	// SMTPTimeout bounds each SMTP step and SMTPDataTimeout the wait for the
	// reply after the message data (MAILGATE_SMTP_TIMEOUT, default 30s;
	// MAILGATE_SMTP_DATA_TIMEOUT, default 10m as RFC 5321 recommends).
	SMTPTimeout time.Duration
	// SMTPMaxConns caps the connections open to the relay at once
	// (MAILGATE_SMTP_MAX_CONNECTIONS, default 50). Workers beyond it load,
	// render and record deliveries while others talk SMTP, so database
	// waits don't leave connections or the CPU idle.
	SMTPMaxConns    int
	SMTPDataTimeout time.Duration
	// DeliveryTimeout bounds one delivery attempt end to end
	// (MAILGATE_DELIVERY_TIMEOUT; default: the SMTP steps added up).
	DeliveryTimeout time.Duration
	RateBurst       int
	// WebhookAllowPrivate lets webhooks reach private and loopback addresses
	// (tests, or endpoints inside the cluster).
	WebhookAllowPrivate bool
	// WebhookTimeout bounds one webhook POST (MAILGATE_WEBHOOK_TIMEOUT,
	// default 5s), and so how long a slow endpoint holds a worker.
	WebhookTimeout time.Duration
	// WebhookMaxEndpoints caps each tenant's registered webhook endpoints
	// (MAILGATE_WEBHOOK_MAX_ENDPOINTS, default 10).
	WebhookMaxEndpoints int
	// RiverUIUsername and RiverUIPassword open the River UI with basic auth
	// (an admin token works too).
	RiverUIUsername string
	RiverUIPassword string
	// MetricsTenantLabels bounds how many tenants get their own metrics label.
	MetricsTenantLabels int
	// RequestTimeout is every API request's server-side deadline, database
	// calls included (MAILGATE_REQUEST_TIMEOUT, default 30s); past it the
	// answer is 503 with Retry-After.
	RequestTimeout time.Duration
	// BodyMinRate (bytes a second) and BodyGrace pace request bodies: once
	// the grace has passed, a body that arrives slower is cut with a 408
	// (MAILGATE_REQUEST_BODY_MIN_RATE, default 1024; MAILGATE_REQUEST_BODY_GRACE, default 5s).
	BodyMinRate int64
	BodyGrace   time.Duration
	// HeaderTimeout bounds reading a request's headers (MAILGATE_HTTP_HEADER_TIMEOUT, default 10s).
	HeaderTimeout time.Duration
	// Inbound is the bounce and reply side (MAILGATE_BOUNCE_DOMAIN,
	// MAILGATE_REPLY_DOMAIN, MAILGATE_VERP_KEYS, MAILGATE_INBOUND_*).
	Inbound InboundConfig
	// CaptureDir, when set and SMTPURL is empty, keeps outgoing mail as .eml
	// files instead of sending it (mailgate dev).
	CaptureDir string
}

// DefaultRequestTimeout is the API's request deadline when
// MAILGATE_REQUEST_TIMEOUT is unset.
const DefaultRequestTimeout = 30 * time.Second

const (
	defaultBodyGrace     = 5 * time.Second
	defaultHeaderTimeout = 10 * time.Second
)

// LoadConfig reads the MAILGATE_* variables through getenv.
func LoadConfig(getenv func(string) string) (Config, error) {
	cfg := Config{
		DatabaseURL:         or(getenv("MAILGATE_DATABASE_URL"), DefaultDatabaseURL),
		DatabaseRole:        or(getenv("MAILGATE_DATABASE_ROLE"), db.DefaultRuntimeRole),
		HTTPAddr:            or(getenv("MAILGATE_HTTP_ADDR"), ":8080"),
		AdminAddr:           or(getenv("MAILGATE_ADMIN_ADDR"), ":9090"),
		SMTPURL:             getenv("MAILGATE_SMTP_URL"),
		JWTSecret:           getenv("MAILGATE_JWT_SECRET"),
		JWTPublicKeys:       getenv("MAILGATE_JWT_PUBLIC_KEYS"),
		JWTIssuer:           getenv("MAILGATE_JWT_ISSUER"),
		JWTAudience:         getenv("MAILGATE_JWT_AUDIENCE"),
		Workers:             200,
		SMTPMaxConns:        50,
		RetryBase:           time.Minute,
		ShutdownGrace:       25 * time.Second,
		DrainDelay:          5 * time.Second,
		RateLimit:           50,
		RiverUIUsername:     getenv("MAILGATE_RIVER_UI_USERNAME"),
		RiverUIPassword:     getenv("MAILGATE_RIVER_UI_PASSWORD"),
		MetricsTenantLabels: 50,
		RateBurst:           100,
		WebhookTimeout:      jobs.DefaultWebhookAttemptTimeout,
		WebhookMaxEndpoints: domain.DefaultWebhookMaxEndpoints,
		RequestTimeout:      DefaultRequestTimeout,
		BodyMinRate:         1024,
		BodyGrace:           defaultBodyGrace,
		HeaderTimeout:       defaultHeaderTimeout,
	}
	if v := getenv("MAILGATE_REQUEST_BODY_MIN_RATE"); v != "" {
		n, err := strconv.ParseInt(v, 10, 64)
		if err != nil || n < 0 {
			return cfg, fmt.Errorf("MAILGATE_REQUEST_BODY_MIN_RATE must be bytes a second (0 for no minimum), got %q", v)
		}
		cfg.BodyMinRate = n
	}
	if v := getenv("MAILGATE_ATTACHMENTS_ALLOW_EXECUTABLES"); v != "" {
		allow, err := strconv.ParseBool(v)
		if err != nil {
			return cfg, fmt.Errorf("MAILGATE_ATTACHMENTS_ALLOW_EXECUTABLES must be true or false, got %q", v)
		}
		cfg.AllowExecutables = allow
	}
	if v := getenv("MAILGATE_TENANT_MAX_DELIVERIES"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 0 {
			return cfg, fmt.Errorf("MAILGATE_TENANT_MAX_DELIVERIES must be a whole number (0 for no cap), got %q", v)
		}
		cfg.TenantMaxDeliveries = n
	}
	if v := getenv("MAILGATE_METRICS_TENANT_LABELS"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 0 || n > 10000 {
			return cfg, fmt.Errorf("MAILGATE_METRICS_TENANT_LABELS must be from 0 to 10000, got %q", v)
		}
		cfg.MetricsTenantLabels = n
	}
	if v := getenv("MAILGATE_RATE_LIMIT"); v != "" {
		r, err := strconv.ParseFloat(v, 64)
		if err != nil || r < 0 {
			return cfg, fmt.Errorf("MAILGATE_RATE_LIMIT must be requests per second (0 for none), got %q", v)
		}
		cfg.RateLimit = r
	}
	if v := getenv("MAILGATE_RATE_BURST"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 1 {
			return cfg, fmt.Errorf("MAILGATE_RATE_BURST must be a positive whole number, got %q", v)
		}
		cfg.RateBurst = n
	}
	if v := getenv("MAILGATE_WEBHOOK_ALLOW_PRIVATE"); v != "" {
		allow, err := strconv.ParseBool(v)
		if err != nil {
			return cfg, fmt.Errorf("MAILGATE_WEBHOOK_ALLOW_PRIVATE must be true or false, got %q", v)
		}
		cfg.WebhookAllowPrivate = allow
	}
	if v := getenv("MAILGATE_WEBHOOK_MAX_ENDPOINTS"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 1 || n > 10000 {
			return cfg, fmt.Errorf("MAILGATE_WEBHOOK_MAX_ENDPOINTS must be a whole number from 1 to 10000, got %q", v)
		}
		cfg.WebhookMaxEndpoints = n
	}
	inbound, err := loadInboundConfig(getenv)
	if err != nil {
		return cfg, err
	}
	cfg.Inbound = inbound
	cfg.MigrationDatabaseURL = or(getenv("MAILGATE_MIGRATION_DATABASE_URL"), cfg.DatabaseURL)
	if !db.ValidRoleName(cfg.DatabaseRole) {
		return cfg, fmt.Errorf("MAILGATE_DATABASE_ROLE must be a lower-case identifier, got %q", cfg.DatabaseRole)
	}
	for _, setting := range []struct {
		name string
		dst  *int
	}{
		{"MAILGATE_WORKERS", &cfg.Workers},
		{"MAILGATE_SMTP_MAX_CONNECTIONS", &cfg.SMTPMaxConns},
	} {
		if v := getenv(setting.name); v != "" {
			n, err := strconv.Atoi(v)
			if err != nil || n < 1 || n > 10000 {
				return cfg, fmt.Errorf("%s must be a whole number from 1 to 10000, got %q", setting.name, v)
			}
			*setting.dst = n
		}
	}
	durations := []struct {
		name string
		dst  *time.Duration
	}{
		{"MAILGATE_RETRY_BASE", &cfg.RetryBase},
		{"MAILGATE_MAX_DELIVERY_AGE", &cfg.MaxDeliveryAge},
		{"MAILGATE_SHUTDOWN_GRACE", &cfg.ShutdownGrace},
		{"MAILGATE_FETCH_COOLDOWN", &cfg.FetchCooldown},
		{"MAILGATE_FETCH_POLL_INTERVAL", &cfg.FetchPollEvery},
		{"MAILGATE_SMTP_TIMEOUT", &cfg.SMTPTimeout},
		{"MAILGATE_SMTP_DATA_TIMEOUT", &cfg.SMTPDataTimeout},
		{"MAILGATE_DELIVERY_TIMEOUT", &cfg.DeliveryTimeout},
		{"MAILGATE_WEBHOOK_TIMEOUT", &cfg.WebhookTimeout},
		{"MAILGATE_REQUEST_TIMEOUT", &cfg.RequestTimeout},
		{"MAILGATE_REQUEST_BODY_GRACE", &cfg.BodyGrace},
		{"MAILGATE_HTTP_HEADER_TIMEOUT", &cfg.HeaderTimeout},
	}
	for _, d := range durations {
		if v := getenv(d.name); v != "" {
			parsed, err := time.ParseDuration(v)
			if err != nil || parsed <= 0 {
				return cfg, fmt.Errorf("%s must be a positive duration such as 30s, got %q", d.name, v)
			}
			*d.dst = parsed
		}
	}
	if v := getenv("MAILGATE_DRAIN_DELAY"); v != "" {
		parsed, err := time.ParseDuration(v)
		if err != nil || parsed < 0 {
			return cfg, fmt.Errorf("MAILGATE_DRAIN_DELAY must be a duration such as 5s (0 for none), got %q", v)
		}
		cfg.DrainDelay = parsed
	}
	if cfg.SMTPTimeout == 0 {
		cfg.SMTPTimeout = 30 * time.Second
	}
	if cfg.SMTPDataTimeout == 0 {
		cfg.SMTPDataTimeout = 10 * time.Minute
	}
	steps := cfg.SMTPStepsTotal()
	if cfg.DeliveryTimeout == 0 {
		cfg.DeliveryTimeout = steps
	}
	if cfg.DeliveryTimeout < steps {
		return cfg, fmt.Errorf("MAILGATE_DELIVERY_TIMEOUT (%s) must cover the SMTP steps added up (%s: 10 × MAILGATE_SMTP_TIMEOUT + MAILGATE_SMTP_DATA_TIMEOUT)", cfg.DeliveryTimeout, steps)
	}
	return cfg, nil
}

// SMTPStepsTotal is every SMTP step timeout of one pipelined transaction
// added up: connect, greeting, EHLO, STARTTLS, the TLS handshake, EHLO
// again, AUTH, the pipelined MAIL/RCPT/DATA, the message data and QUIT
// (10 × SMTPTimeout), plus the wait for the reply to the data.
func (c Config) SMTPStepsTotal() time.Duration {
	return 10*c.SMTPTimeout + c.SMTPDataTimeout
}

func or(v, fallback string) string {
	if v == "" {
		return fallback
	}
	return v
}

func (c Config) attachmentPolicy() domain.AttachmentPolicy {
	if c.AllowExecutables {
		return domain.AttachmentPolicy{}
	}
	return domain.DefaultAttachmentPolicy()
}
