package domain

import (
	"strings"
	"time"
)

// Suppression sources.
const (
	SuppressionBounce = "bounce"
	SuppressionManual = "manual"
	// SuppressionComplaint is a recipient who reported the tenant's mail as spam.
	SuppressionComplaint = "complaint"
)

// Suppression is an address a tenant no longer sends to.
type Suppression struct {
	Email     string
	Reason    string
	Source    string
	SMTPCode  int
	CreatedAt time.Time
}

// IsHardBounce reports whether a 5xx reply says the mailbox itself is bad
// (unknown, disabled, bad syntax), as opposed to a policy or content refusal
// that says nothing about the address. Only hard bounces suppress.
func IsHardBounce(code int, text string) bool {
	if code < 500 || code > 599 {
		return false
	}
	fields := strings.Fields(text)
	if len(fields) > 0 && strings.Count(fields[0], ".") == 2 && fields[0][0] == '5' {
		enhanced := fields[0]
		return strings.HasPrefix(enhanced, "5.1.") || enhanced == "5.2.1"
	}
	return code == 550 || code == 551 || code == 553
}

// DeliveryContext is what a delivery attempt needs to know besides the message.
type DeliveryContext struct {
	// Suppressed holds the lower-cased recipient addresses on the tenant's suppression list.
	Suppressed map[string]bool
	// Sandbox tenants' mail is accepted and evented but never leaves the gateway.
	Sandbox bool
	// DKIM is the signing key of the sender's domain; nil when it has none.
	DKIM *DKIMKey
	// TenantStatus is the tenant's status now (TenantActive or suspended).
	TenantStatus string
	// SenderDomainVerified is whether the sender's domain is still one of
	// the tenant's verified domains.
	SenderDomainVerified bool
	// SenderAccountExists is whether the sender account, when the message
	// has one, still exists.
	SenderAccountExists bool
	// MaxSendRate is the tenant's maximum send rate in messages a second (0: none).
	MaxSendRate float64
	// ReturnPathDomain is the tenant's own return-path domain ("" for the
	// gateway's bounce domain), so SPF aligns with its From domain.
	ReturnPathDomain string
	// ReplyRouting is whether the tenant's mail carries a Reply-To that
	// routes replies back to the sender account's inbox.
	ReplyRouting bool
	// Sending is how many of the tenant's messages are being delivered now,
	// across every worker; only read when a concurrency cap is set.
	Sending int
}

// DKIMKey signs a tenant's mail from one domain.
type DKIMKey struct {
	Domain     string
	Selector   string
	Algorithm  string
	PrivateKey []byte
}
