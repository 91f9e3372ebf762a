package domain

import (
	"strconv"
	"time"

	"github.com/google/uuid"
)

// EventPayload is an event as tenants receive it, in the feed and as a
// webhook body. It is the public event schema, so it carries its JSON names.
type EventPayload struct {
	ID             string    `json:"id"`
	Type           string    `json:"type"`
	CreatedAt      time.Time `json:"created_at"`
	SubscriptionID uuid.UUID `json:"subscription_id"`
	MessageID      string    `json:"message_id,omitempty"`
	Recipient      string    `json:"recipient,omitempty"`
	SMTPCode       int       `json:"smtp_code,omitempty"`
	Detail         string    `json:"detail,omitempty"`
}

// Payload renders e in the public event schema.
func (e Event) Payload() EventPayload {
	p := EventPayload{ID: strconv.FormatInt(e.Sequence, 10), Type: e.Type, CreatedAt: e.CreatedAt, SubscriptionID: e.SubscriptionID,
		Recipient: e.Recipient, SMTPCode: e.SMTPCode, Detail: e.Detail}
	if e.MessageID != uuid.Nil {
		p.MessageID = e.MessageID.String()
	}
	return p
}
