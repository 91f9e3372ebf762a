package smtprelay

import (
	"context"

	"github.com/mailgate/mailgate/domain"
)

// Sender runs one SMTP transaction, or what stands for one: a relay
// Transport or a CaptureTransport.
type Sender interface {
	Send(ctx context.Context, env Envelope, data []byte) []domain.RecipientReply
}

var (
	_ Sender = (*Transport)(nil)
	_ Sender = (*CaptureTransport)(nil)
)

// ReplyObserver counts replies, one per recipient (code 0: no reply).
type ReplyObserver interface {
	ObserveReply(code int)
}

// Deliverer hands rendered messages to a Sender in the shape the delivery
// worker asks for, and counts every reply. It is safe for concurrent use
// when its Sender and observer are.
type Deliverer struct {
	sender   Sender
	observer ReplyObserver
}

// NewDeliverer returns a Deliverer sending through sender; observer may be
// nil when replies are not counted.
func NewDeliverer(sender Sender, observer ReplyObserver) *Deliverer {
	return &Deliverer{sender: sender, observer: observer}
}

// Deliver sends msg from the reverse path from to each of to in one
// transaction (see Transport.Send for the replies and for beforeData, which
// is Envelope.BeforeData).
func (d *Deliverer) Deliver(ctx context.Context, from string, to []string, msg domain.RenderedMessage, beforeData func(ctx context.Context, accepted []string) error) []domain.RecipientReply {
	replies := d.sender.Send(ctx, Envelope{From: from, To: to, BeforeData: beforeData, Downgraded: msg.Downgraded}, msg.Data)
	if d.observer != nil {
		for _, r := range replies {
			d.observer.ObserveReply(r.Code)
		}
	}
	return replies
}
