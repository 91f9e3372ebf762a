package domain

import (
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

// WebhookJob is one event to deliver to one endpoint.
type WebhookJob struct {
	WebhookID uuid.UUID
	EventID   int64
}
