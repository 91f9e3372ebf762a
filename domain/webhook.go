package domain

import (
	"fmt"
	"time"

	"github.com/google/uuid"
)

// Webhook statuses: an endpoint that keeps failing is disabled.
const (
	WebhookActive   = "active"
	WebhookDisabled = "disabled"
)

// WebhookRetryWindow is how long an event is retried against an endpoint
// before the endpoint is disabled.
const WebhookRetryWindow = 24 * time.Hour

// Webhook is an endpoint a tenant registered to receive its events.
type Webhook struct {
	ID         uuid.UUID
	URL        string
	EventTypes []string
	Status     string
	// Secrets sign deliveries: the current one, then a previous one during a rotation.
	Secrets             [][]byte
	DisabledReason      string
	ConsecutiveFailures int
	CreatedAt           time.Time
}

// DefaultWebhookMaxEndpoints is how many endpoints a tenant may register
// unless configured otherwise: each one multiplies the tenant's deliveries.
const DefaultWebhookMaxEndpoints = 10

// WebhookJob is one event to deliver to one endpoint.
type WebhookJob struct {
	WebhookID uuid.UUID
	EventID   int64
	// QueueTag is the job's place in the webhook queue, interleaved with
	// other tenants' jobs so no tenant's backlog holds up another's; zero
	// leaves the job in insertion order.
	QueueTag time.Time
}

// WebhookLimitError is the refusal of an endpoint beyond a tenant's cap.
func WebhookLimitError(limit int) *Error {
	return &Error{Code: CodeLimitExceeded, Field: "url",
		Message: fmt.Sprintf("a tenant may register at most %d webhook endpoints; delete one before adding another", limit)}
}

// WebhookRequest is one event signed and posted to one endpoint: what the
// webhook worker asks of the sender that speaks HTTP.
type WebhookRequest struct {
	URL string
	// Secrets sign the body: the current secret first and, during a rotation
	// grace period, the previous one. One or two, none empty.
	Secrets   [][]byte
	EventID   string
	WebhookID string
	// Body is the JSON event, sent as is.
	Body []byte
}

// WebhookResult is the outcome of one attempt to post a WebhookRequest.
type WebhookResult struct {
	// StatusCode is the endpoint's HTTP status, or 0 when none was received.
	StatusCode int
	// Err is nil exactly when the endpoint answered 2xx.
	Err error
	// Permanent marks failures a retry will not fix as things stand: a 4xx
	// other than 408, 409, 425 and 429, an invalid request, or an endpoint
	// whose address is refused. The caller decides whether to retry anyway.
	Permanent bool
	// Duration is how long the attempt took.
	Duration time.Duration
}
