package domain

import "github.com/google/uuid"

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
		rcpt.LastCode, rcpt.LastReply = reply.Code, reply.Text
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
}
