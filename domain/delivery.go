package domain

import (
	"strings"
	"time"

	"github.com/google/uuid"
)

// MaxDeliveryAge is how long a message is retried after it was queued before
// its deferred recipients fail.
const MaxDeliveryAge = 48 * time.Hour

// ReplyOutcome is what one SMTP reply means for a recipient.
type ReplyOutcome int

// The reply classes: 2xx delivered, 4xx (or no reply) retry later, 5xx bounced.
const (
	OutcomeDelivered ReplyOutcome = iota
	OutcomeDeferred
	OutcomeBounced
)

// ClassifyReply maps an SMTP reply code to its outcome. A code of 0 means no
// reply was read (connection lost, timeout) and is retried like a 4xx.
func ClassifyReply(code int) ReplyOutcome {
	switch {
	case code >= 200 && code < 300:
		return OutcomeDelivered
	case code >= 500 && code < 600:
		return OutcomeBounced
	default:
		return OutcomeDeferred
	}
}

// RenderedMessage is a message as built for SMTP DATA, ready for the relay.
type RenderedMessage struct {
	Data []byte
	// Downgraded is the message with its UTF-8 header addresses in 7 bits,
	// for a relay without SMTPUTF8 (RFC 6531); nil when the message has none.
	Downgraded []byte
}

// RecipientReply is the relay's answer for one recipient in one attempt.
type RecipientReply struct {
	Email string
	Code  int
	Text  string
	// PossibleDuplicate is set when the connection was lost after the
	// message data was sent and before the relay answered: it may have been
	// delivered, so a retry could deliver it twice.
	PossibleDuplicate bool
}

// MaxReplyLength bounds a relay's reply text as stored on a recipient; RFC
// 5321 allows 512 octets a reply line, and some relays send many lines.
const MaxReplyLength = 2000

// StorableReply makes a relay's reply text safe to store and show (see
// boundedText), at most MaxReplyLength bytes. A relay's bytes are not ours
// to trust, and an outcome that can't be written (PostgreSQL text can't
// hold a NUL) would leave its recipients in flight, to be sent again.
func StorableReply(text string) string { return boundedText(text, MaxReplyLength) }

// ApplyReplies records one attempt's replies on the message's recipients and
// returns the recipients that changed. On the last allowed attempt a deferral
// becomes a failure, so the message settles. Recipients already final are
// never touched, so a delivered recipient can't be sent to or reset again.
func (m *Message) ApplyReplies(replies []RecipientReply, lastAttempt bool) []Recipient {
	byEmail := make(map[string]RecipientReply, len(replies))
	for _, r := range replies {
		byEmail[r.Email] = r
	}
	var changed []Recipient
	for i := range m.Recipients {
		rcpt := &m.Recipients[i]
		reply, ok := byEmail[rcpt.Email]
		if !ok || rcpt.Status.Final() {
			continue
		}
		rcpt.Attempts++
		rcpt.LastCode, rcpt.LastReply = reply.Code, StorableReply(reply.Text)
		rcpt.PossibleDuplicate = rcpt.PossibleDuplicate || reply.PossibleDuplicate
		// The attempt's outcome is known: the journal mark is settled.
		rcpt.InFlightSince = time.Time{}
		switch ClassifyReply(reply.Code) {
		case OutcomeDelivered:
			rcpt.Status = RecipientDelivered
		case OutcomeBounced:
			rcpt.Status = RecipientBounced
		default:
			rcpt.Status = RecipientDeferred
			if lastAttempt {
				rcpt.Status = RecipientFailed
			}
		}
		changed = append(changed, *rcpt)
	}
	return changed
}

// AttemptRecord is what one delivery attempt changed, written atomically with
// the job's completion when State is final.
type AttemptRecord struct {
	MessageID uuid.UUID
	// Changed holds the recipients whose status this attempt changed.
	Changed []Recipient
	// State is the message's state after the attempt.
	State MessageState
	// LastError explains a failed or partially sent message.
	LastError string
	// MailboxAccounts are the accounts whose inbox now holds the message.
	MailboxAccounts []uuid.UUID
	// Suppress lists hard-bounced recipients to add to the suppression list.
	Suppress []Suppression
	// ExpectedVersion, when not 0, is the version the message must still
	// have for the record to be written: the version the attempt loaded,
	// plus its own journal. Another writer during the attempt (a bounce
	// report after the fact) makes the store refuse the record with
	// CodeVersionMismatch, and the worker decides again on the message as
	// it is now, instead of overwriting what that writer decided.
	ExpectedVersion Version
}

// Suppress marks the pending recipients on the suppression list as
// suppressed, a final status, and returns them.
func (m *Message) Suppress(suppressed map[string]bool) []Recipient {
	var changed []Recipient
	for i := range m.Recipients {
		r := &m.Recipients[i]
		if r.Status.Final() || !suppressed[strings.ToLower(r.Email)] {
			continue
		}
		r.Status, r.LastCode, r.LastReply = RecipientSuppressed, 0, "the address is on the suppression list"
		changed = append(changed, *r)
	}
	return changed
}

// HardBounces returns suppressions for the recipients in changed that hard-bounced.
func HardBounces(changed []Recipient, now time.Time) []Suppression {
	var out []Suppression
	for _, r := range changed {
		if r.Status == RecipientBounced && IsHardBounce(r.LastCode, r.LastReply) {
			out = append(out, Suppression{Email: strings.ToLower(r.Email), Reason: r.LastReply, Source: SuppressionBounce, SMTPCode: r.LastCode, CreatedAt: now})
		}
	}
	return out
}

// ScheduledDelivery is a delivery job to enqueue: a message, at a time (zero: now).
type ScheduledDelivery struct {
	MessageID uuid.UUID
	At        time.Time
}

// StalledMessage is a message waiting for delivery whose job vanished,
// finished without settling it, or got stuck.
type StalledMessage struct {
	SubscriptionID uuid.UUID
	ID             uuid.UUID
	QueuedAt       time.Time
}

// StallSearch is one reconciler pass's search for stalled messages, in
// three parts whose cost doesn't grow with a healthy backlog: every
// sending message (few: one per attempt running now), the messages whose
// job was cancelled or discarded since FinishedSince (River's index on
// finished jobs), and a bounded sweep of at most SweepRows queued
// messages from SweepAfter on, for a job that vanished or completed
// without settling its message. A pass continues the sweep where the one
// before it stopped, so a backlog of any size is swept in turn while each
// pass stays cheap; with fewer queued messages than SweepRows, every pass
// sees them all.
type StallSearch struct {
	// Grace skips messages written this recently: a write in progress is
	// not a stall.
	Grace time.Duration
	// Limit caps the messages each part returns.
	Limit int
	// FinishedSince bounds the finished jobs looked at; zero looks at
	// none (the sweep still finds their messages in turn).
	FinishedSince time.Time
	// JobKind is the delivery jobs' kind in River.
	JobKind string
	// SweepAfter is where the sweep continues (zero: from the oldest).
	SweepAfter SweepKey
	// SweepRows bounds the queued messages the sweep reads.
	SweepRows int
}

// SweepKey is a position in the sweep of queued messages, which reads
// them in (updated_at, id) order.
type SweepKey struct {
	UpdatedAt time.Time
	ID        uuid.UUID
}

// StallPass is what a search found, and where the next sweep continues:
// the zero key once this one reached the newest queued message.
type StallPass struct {
	Stalled   []StalledMessage
	SweepNext SweepKey
}
