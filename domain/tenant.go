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
}

// Account is a tenant's user: a sender identity and a mailbox.
type Account struct {
	ID             uuid.UUID
	SubscriptionID uuid.UUID
	Email          string
	DisplayName    string
	CreatedAt      time.Time
}
