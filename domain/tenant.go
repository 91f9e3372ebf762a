package domain

import (
	"time"

	"github.com/google/uuid"
)

// Tenant statuses: a suspended tenant's tokens are refused.
const (
	TenantActive    = "active"
	TenantSuspended = "suspended"
)

// Tenant is a subscription: a SaaS product sending through the gateway.
type Tenant struct {
	ID            uuid.UUID
	Name          string
	Status        string
	SenderDomains []string
	CreatedAt     time.Time
	// Delivery is the tenant's share of the workers and send rate.
	Delivery DeliveryPolicy
	// Sandbox keeps the tenant's mail inside the gateway: accepted, stored
	// and evented, never sent.
	Sandbox bool
}

// DeliveryPolicy is a tenant's delivery plan.
type DeliveryPolicy struct {
	// Weight is the tenant's share when tenants compete for workers (1 is
	// the default plan; 2 gets twice the share). A tenant alone uses every
	// worker whatever its weight.
	Weight float64
	// MaxSendRate caps the tenant's deliveries in messages a second across
	// every worker (0: no cap), like a hosted API's sending quota.
	MaxSendRate float64
}

// Validate checks the policy's bounds.
func (p DeliveryPolicy) Validate() error {
	if p.Weight <= 0 || p.Weight > 1000 {
		return FieldError("delivery_weight", "must be greater than 0 and at most 1000")
	}
	if p.MaxSendRate < 0 || p.MaxSendRate > 1e6 {
		return FieldError("max_send_rate", "must be from 0 (no cap) to 1000000 messages a second")
	}
	return nil
}

// Account is a tenant's user: a sender identity and a mailbox.
type Account struct {
	ID             uuid.UUID
	SubscriptionID uuid.UUID
	Email          string
	DisplayName    string
	CreatedAt      time.Time
}

// TenantClock is a tenant's shared fair-queuing clock and its weight.
type TenantClock struct {
	VirtualTime time.Time
	Weight      float64
}
