package domain

import (
	"fmt"
	"time"

	"github.com/google/uuid"
)

// Verdict is what a delivery job does with a message it picked up, decided
// before anything goes to the relay.
type Verdict int

// The verdicts, in the order they are checked.
const (
	// VerdictDone: nothing to deliver (a final state, or a draft); the job ends.
	VerdictDone Verdict = iota
	// VerdictHold: the tenant is suspended; the message waits, neither sent
	// nor failed, until reinstatement or a cancel.
	VerdictHold
	// VerdictRefuse: the sender is no longer authorised; the message fails
	// with the reason instead of going out.
	VerdictRefuse
	// VerdictDeliver: go ahead.
	VerdictDeliver
)

// DeliveryVerdict decides whether msg may be delivered now, and why not.
// Authority is checked again at delivery because a tenant can be suspended,
// or lose a sender domain or account, between accept and send.
func DeliveryVerdict(msg *Message, dc DeliveryContext) (Verdict, string) {
	if msg.State.Final() || msg.State == StateDraft {
		return VerdictDone, ""
	}
	if dc.TenantStatus != TenantActive {
		return VerdictHold, "the subscription is " + dc.TenantStatus + "; delivery is held until it is reinstated"
	}
	if msg.SenderAccountID != uuid.Nil && !dc.SenderAccountExists {
		return VerdictRefuse, "sender not authorised: the sender account was deleted"
	}
	if !dc.SenderDomainVerified {
		return VerdictRefuse, fmt.Sprintf("sender not authorised: %s is no longer a verified domain of the subscription", DomainOf(msg.SenderEmail))
	}
	return VerdictDeliver, ""
}

// RefuseAll fails every unsettled recipient with reason and returns the record
// to write; used when the sender lost its authority.
func (m *Message) RefuseAll(reason string) AttemptRecord {
	var changed []Recipient
	for i := range m.Recipients {
		r := &m.Recipients[i]
		if r.Status.Final() {
			continue
		}
		r.Status, r.LastCode, r.LastReply = RecipientFailed, 0, reason
		r.InFlightSince = time.Time{}
		changed = append(changed, *r)
	}
	return AttemptRecord{MessageID: m.ID, Changed: changed, State: SettledState(m.Recipients), LastError: reason}
}

// BeginAttempt is the attempt journal's rule: it marks the recipients in
// emails as handed to the relay at now and returns them, to be written
// durably before their data goes out. A recipient still marked from an
// earlier attempt was in one that died (a crash, a kill, a lost database)
// before its outcome was written: the relay may have accepted it, so the
// resend is flagged as a possible duplicate. Recipients that were only
// picked up, and never handed over, carry no mark and are not flagged. The
// message moves to sending, as the state machine allows: a message no
// longer waiting for delivery (cancelled, settled) is a conflict, and
// nothing is sent.
func (m *Message) BeginAttempt(emails []string, now time.Time) ([]Recipient, error) {
	if err := m.apply(LifecycleAttempt, StateSending); err != nil {
		return nil, err
	}
	want := make(map[string]bool, len(emails))
	for _, e := range emails {
		want[e] = true
	}
	var journal []Recipient
	for i := range m.Recipients {
		r := &m.Recipients[i]
		if !want[r.Email] || r.Status.Final() {
			continue
		}
		if !r.InFlightSince.IsZero() {
			r.PossibleDuplicate = true
		}
		r.InFlightSince = now
		journal = append(journal, *r)
	}
	return journal, nil
}

// Interrupted returns the recipients an earlier attempt handed to the relay
// without recording their outcome.
func (m *Message) Interrupted() []Recipient {
	var out []Recipient
	for _, r := range m.Recipients {
		if !r.InFlightSince.IsZero() && !r.Status.Final() {
			out = append(out, r)
		}
	}
	return out
}

// StallAction is what the reconciler does with an unsettled message.
type StallAction int

// The reconciler's actions.
const (
	// StallNone: the message has a live job (or one River will rescue).
	StallNone StallAction = iota
	// StallReset: the message says sending but no attempt runs: back to queued.
	StallReset
	// StallRequeue: the message's job is gone or finished; insert a new one.
	StallRequeue
	// StallGiveUp: as StallRequeue, but the message is past its delivery age.
	StallGiveUp
)

// JobStatus is what the reconciler knows of a message's delivery job.
type JobStatus struct {
	// Exists is false when the job row is gone (pruned or deleted).
	Exists bool
	// State is River's job state: one of the Job* constants.
	State string
}

// River's job states, as the lifecycle rules read them.
const (
	JobAvailable = "available"
	JobScheduled = "scheduled"
	JobRetryable = "retryable"
	JobPending   = "pending"
	JobRunning   = "running"
	JobCompleted = "completed"
	JobCancelled = "cancelled"
	JobDiscarded = "discarded"
)

// LiveJobStates are the job states in which River will still run a job;
// in the others (completed, cancelled, discarded) it is finished.
func LiveJobStates() []string {
	return []string{JobAvailable, JobScheduled, JobRetryable, JobPending, JobRunning}
}

// live reports whether River will still run the job.
func (j JobStatus) live() bool {
	if !j.Exists {
		return false
	}
	for _, s := range LiveJobStates() {
		if j.State == s {
			return true
		}
	}
	return false
}

// DecideStall is the reconciler's rule. A message waiting for delivery must
// have exactly one live job; sending means an attempt runs now, so a message
// in sending whose job is not running was interrupted. A running job whose
// worker died is River's to rescue (after the delivery timeout), never a
// reason for a second job.
func DecideStall(state MessageState, job JobStatus, queuedAt, now time.Time, maxAge time.Duration) StallAction {
	if !stateIn(state, DeliveryStates()) {
		return StallNone
	}
	if job.live() {
		if state == StateSending && job.State != JobRunning {
			return StallReset
		}
		return StallNone
	}
	if !queuedAt.IsZero() && now.Sub(queuedAt) > maxAge {
		return StallGiveUp
	}
	return StallRequeue
}

// RetryFilter selects which messages and recipients a retry requeues.
// Delivered recipients never go back; a recipient whose address is on the
// suppression list at retry time becomes suppressed instead of pending.
type RetryFilter struct {
	// State is failed or partially_sent; "" takes both.
	State MessageState
	// CreatedAfter and CreatedBefore bound the messages' creation; zero is open.
	CreatedAfter, CreatedBefore time.Time
	// Bounced requeues bounced and suppressed recipients too, not only
	// failed ones: after a relay-wide 5xx incident, say, once its
	// suppressions are removed.
	Bounced bool
	// ReplyCode, when not 0, takes only recipients whose last SMTP reply had
	// this code (such as 550).
	ReplyCode int
	// RepliedAfter and RepliedBefore bound when recipients got their last
	// reply, the incident's time window; zero is open.
	RepliedAfter, RepliedBefore time.Time
	// Limit caps the messages one bulk retry requeues.
	Limit int
}

// Check refuses a filter that can't be meant.
func (f RetryFilter) Check() error {
	switch {
	case f.State != "" && f.State != StateFailed && f.State != StatePartiallySent:
		return FieldError("state", "must be failed or partially_sent")
	case f.ReplyCode != 0 && (f.ReplyCode < 400 || f.ReplyCode > 599):
		return FieldError("reply_code", "must be a 4xx or 5xx SMTP reply code")
	case !f.CreatedAfter.IsZero() && !f.CreatedBefore.IsZero() && !f.CreatedBefore.After(f.CreatedAfter):
		return FieldError("created_before", "must be after created_after")
	case !f.RepliedAfter.IsZero() && !f.RepliedBefore.IsZero() && !f.RepliedBefore.After(f.RepliedAfter):
		return FieldError("replied_before", "must be after replied_after")
	case f.Limit < 1 || f.Limit > 1000:
		return FieldError("limit", "must be from 1 to 1000")
	}
	return nil
}

// MessageStates are the message states a retry with f may start from: the
// retry event's sources, narrowed to f.State when it is set.
func (f RetryFilter) MessageStates() []MessageState {
	if f.State != "" {
		return []MessageState{f.State}
	}
	return LifecycleRetry.Sources()
}

// takes reports whether a retry with f requeues r: its status is one f
// requeues, and its last reply matches f's code and window.
func (f RetryFilter) takes(r Recipient) bool {
	statusTaken := false
	for _, s := range f.RecipientStatuses() {
		statusTaken = statusTaken || string(r.Status) == s
	}
	switch {
	case !statusTaken, f.ReplyCode != 0 && r.LastCode != f.ReplyCode:
		return false
	case !f.RepliedAfter.IsZero() && r.UpdatedAt.Before(f.RepliedAfter):
		return false
	case !f.RepliedBefore.IsZero() && !r.UpdatedAt.Before(f.RepliedBefore):
		return false
	}
	return true
}

// RecipientStatuses are the recipient statuses the filter requeues. With
// Bounced, suppressed ones are taken too: their address may have come off
// the list since (the retry checks it again).
func (f RetryFilter) RecipientStatuses() []string {
	if f.Bounced {
		return []string{string(RecipientFailed), string(RecipientBounced), string(RecipientSuppressed)}
	}
	return []string{string(RecipientFailed)}
}
