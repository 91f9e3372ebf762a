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
