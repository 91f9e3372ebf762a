package domain

import (
	"time"
)

// LifecycleEvent is something that happens to a message and may move it
// along the state machine: a tenant's edit, send, cancel or retry, or the
// reconciler's repair of a delivery that stalled. Every change of state the
// gateway decides outside a delivery attempt is one of these, checked by
// Permits and CanTransition before it happens.
type LifecycleEvent string

// The lifecycle events.
const (
	// LifecycleEdit changes a draft; it stays a draft.
	LifecycleEdit LifecycleEvent = "edit"
	// LifecycleSend queues a draft for delivery.
	LifecycleSend LifecycleEvent = "send"
	// LifecycleCancel stops a queued message before a worker has it.
	LifecycleCancel LifecycleEvent = "cancel"
	// LifecycleRetry requeues a failed or partially sent message.
	LifecycleRetry LifecycleEvent = "retry"
	// LifecycleInterrupt returns a message whose attempt died to queued,
	// for its job's next attempt.
	LifecycleInterrupt LifecycleEvent = "interrupt"
	// LifecycleRequeue gives a message whose job was lost a new job.
	LifecycleRequeue LifecycleEvent = "requeue"
	// LifecycleGiveUp settles a message whose job was lost once it is past
	// its delivery age: its unsettled recipients fail.
	LifecycleGiveUp LifecycleEvent = "give_up"
	// LifecycleAttempt hands a message to the relay: an attempt is running
	// now (its journal is written before the data).
	LifecycleAttempt LifecycleEvent = "attempt"
	// LifecycleSettle records an attempt's outcome: the message waits for
	// its next attempt (queued) or is settled.
	LifecycleSettle LifecycleEvent = "settle"
)

// LifecycleEvents lists every lifecycle event, for code that walks the
// state machine.
func LifecycleEvents() []LifecycleEvent {
	return []LifecycleEvent{LifecycleEdit, LifecycleSend, LifecycleCancel, LifecycleRetry,
		LifecycleInterrupt, LifecycleRequeue, LifecycleGiveUp, LifecycleAttempt, LifecycleSettle}
}

// Sources returns the states in which e may happen; none for an unknown event.
func (e LifecycleEvent) Sources() []MessageState {
	switch e {
	case LifecycleEdit, LifecycleSend:
		return []MessageState{StateDraft}
	case LifecycleCancel:
		return []MessageState{StateQueued}
	case LifecycleRetry:
		return []MessageState{StateFailed, StatePartiallySent}
	case LifecycleInterrupt:
		return []MessageState{StateSending}
	case LifecycleRequeue, LifecycleGiveUp, LifecycleAttempt, LifecycleSettle:
		return []MessageState{StateQueued, StateSending}
	}
	return nil
}

// Permits reports whether e may happen to a message in state s.
func (e LifecycleEvent) Permits(s MessageState) bool { return stateIn(s, e.Sources()) }

// stateIn reports whether s is one of states.
func stateIn(s MessageState, states []MessageState) bool {
	for _, t := range states {
		if t == s {
			return true
		}
	}
	return false
}

// Refusal says why e can't happen to a message in state s, in the words the
// API has always answered with.
func (e LifecycleEvent) Refusal(s MessageState) string {
	switch e {
	case LifecycleEdit:
		return "only drafts can be changed; this message is " + string(s)
	case LifecycleSend:
		return "only drafts can be sent; this message is " + string(s)
	case LifecycleCancel:
		return "only a queued or scheduled message can be cancelled; this one is " + string(s)
	case LifecycleRetry:
		return "only failed or partially sent messages can be retried; this one is " + string(s)
	}
	return "the " + string(e) + " event can't happen to a message that is " + string(s)
}

// apply moves m to state to on event e when the machine allows both the
// event in m's state and the move; a refused move leaves m as it was. An
// event that leaves the state as it is (a requeue of a queued message)
// changes no state, so only the event table decides it.
func (m *Message) apply(e LifecycleEvent, to MessageState) error {
	if !e.Permits(m.State) || (to != m.State && !CanTransition(m.State, to)) {
		return &Error{Code: CodeConflict, Message: e.Refusal(m.State)}
	}
	m.State = to
	return nil
}

// Settle moves m to the state an attempt's outcome gives it (queued for
// the next attempt, or settled), as the state machine allows: only a
// message waiting for delivery or being delivered has an outcome to record.
func (m *Message) Settle(to MessageState) error { return m.apply(LifecycleSettle, to) }

// JobAction is what a lifecycle change does to the message's delivery job.
type JobAction int

// The job actions.
const (
	// JobUntouched leaves the job as it is.
	JobUntouched JobAction = iota
	// JobCancel cancels the job (through the queue's own client).
	JobCancel
	// JobEnqueue inserts a new delivery job, due now.
	JobEnqueue
)

// LifecycleChange is what a lifecycle method decided, for the store to
// write in the transaction that loaded (and locked) the message. The
// message itself already carries its new state, last error, queue time and
// update time; the zero change (no Event) writes nothing.
type LifecycleChange struct {
	Event LifecycleEvent
	// From is the state the message had before the change.
	From MessageState
	// Recipients are the recipients the change rewrote.
	Recipients []Recipient
	// Timeline holds the entries the change adds to the message's events
	// (Type, Recipient and Detail are set).
	Timeline []Event
	// Job is what becomes of the message's delivery job.
	Job JobAction
	// Attempt, when set, settles the message the way a delivery attempt's
	// outcome does (recipients, state and events written together); the
	// fields above are then empty.
	Attempt *AttemptRecord
}

// Cancel stops a queued message whose job has not started: it becomes
// cancelled and its job, if one exists, is cancelled with it.
func (m *Message) Cancel(job JobStatus, now time.Time) (LifecycleChange, error) {
	if !LifecycleCancel.Permits(m.State) {
		return LifecycleChange{}, &Error{Code: CodeConflict, Message: LifecycleCancel.Refusal(m.State)}
	}
	if job.Exists && job.State == JobRunning {
		return LifecycleChange{}, &Error{Code: CodeConflict, Message: "delivery has started; the message can't be cancelled"}
	}
	from := m.State
	if err := m.apply(LifecycleCancel, StateCancelled); err != nil {
		return LifecycleChange{}, err
	}
	m.UpdatedAt = now
	ch := LifecycleChange{Event: LifecycleCancel, From: from, Timeline: []Event{{Type: string(StateCancelled)}}}
	if job.Exists {
		ch.Job = JobCancel
	}
	return ch, nil
}

// retrySuppressedReply is the last reply of a recipient a retry left out
// because its address is suppressed.
const retrySuppressedReply = "not retried: the address is on the suppression list"

// Retry requeues a failed or partially sent message: the recipients f
// takes go back to pending, or become suppressed when their address is in
// suppressed (the recipients' addresses, as the message spells them, that
// are on the suppression list now). Delivered recipients never go back. A
// retry that would leave nobody pending is refused and changes nothing.
func (m *Message) Retry(f RetryFilter, suppressed map[string]bool, now time.Time) (LifecycleChange, error) {
	if !LifecycleRetry.Permits(m.State) {
		return LifecycleChange{}, &Error{Code: CodeConflict, Message: LifecycleRetry.Refusal(m.State)}
	}
	var (
		changed  []Recipient
		at       []int // changed[k] is m.Recipients[at[k]]
		timeline []Event
		pending  int
	)
	for i, r := range m.Recipients {
		if !f.takes(r) {
			continue
		}
		r.UpdatedAt = now
		if suppressed[r.Email] {
			r.Status, r.LastReply = RecipientSuppressed, retrySuppressedReply
			timeline = append(timeline, Event{Type: string(RecipientSuppressed), Recipient: r.Email, Detail: retrySuppressedReply})
		} else {
			r.Status = RecipientPending
			pending++
		}
		changed, at = append(changed, r), append(at, i)
	}
	if pending == 0 {
		what := "failed"
		if f.Bounced {
			what = "failed or bounced"
		}
		return LifecycleChange{}, &Error{Code: CodeConflict, Message: "no recipient is left to retry: none is " + what + " (and matches the filter) and off the suppression list"}
	}
	from := m.State
	if err := m.apply(LifecycleRetry, StateQueued); err != nil {
		return LifecycleChange{}, err
	}
	for k, r := range changed {
		m.Recipients[at[k]] = r
	}
	m.LastError, m.QueuedAt, m.UpdatedAt = "", now, now
	timeline = append(timeline, Event{Type: string(StateQueued), Detail: "retry requested"})
	return LifecycleChange{Event: LifecycleRetry, From: from, Recipients: changed, Timeline: timeline, Job: JobEnqueue}, nil
}

// Interrupt returns a message whose attempt died (it says sending, but its
// job is not running) to queued; its job's next attempt resumes it.
func (m *Message) Interrupt(now time.Time) (LifecycleChange, error) {
	from := m.State
	if err := m.apply(LifecycleInterrupt, StateQueued); err != nil {
		return LifecycleChange{}, err
	}
	m.UpdatedAt = now
	return LifecycleChange{Event: LifecycleInterrupt, From: from,
		Timeline: []Event{{Type: string(StateQueued), Detail: "reconciler: the attempt was interrupted; waiting for its retry"}}}, nil
}

// Requeue gives a waiting message whose job is gone or finished a new job.
// It keeps its queue time, so the delivery age still counts from the
// original queueing.
func (m *Message) Requeue(now time.Time) (LifecycleChange, error) {
	from := m.State
	if err := m.apply(LifecycleRequeue, StateQueued); err != nil {
		return LifecycleChange{}, err
	}
	m.UpdatedAt = now
	return LifecycleChange{Event: LifecycleRequeue, From: from, Job: JobEnqueue,
		Timeline: []Event{{Type: string(StateQueued), Detail: "reconciler: the delivery job was lost; requeued"}}}, nil
}

// giveUpReason is why a message the reconciler gave up on failed.
const giveUpReason = "delivery gave up: the delivery job was lost and the message is past its delivery age"

// GiveUp settles a waiting message whose job was lost and which is past
// its delivery age: its unsettled recipients fail, and the message takes
// the state its recipients add up to.
func (m *Message) GiveUp() (LifecycleChange, error) {
	if !LifecycleGiveUp.Permits(m.State) {
		return LifecycleChange{}, &Error{Code: CodeConflict, Message: LifecycleGiveUp.Refusal(m.State)}
	}
	from := m.State
	before := append([]Recipient(nil), m.Recipients...)
	rec := m.RefuseAll(giveUpReason)
	if err := m.apply(LifecycleGiveUp, rec.State); err != nil {
		m.Recipients = before
		return LifecycleChange{}, err
	}
	m.LastError = rec.LastError
	return LifecycleChange{Event: LifecycleGiveUp, From: from, Attempt: &rec}, nil
}

// Reconcile is the reconciler's rule applied to m (see DecideStall): it
// returns the action taken and the change to write; StallNone changes
// nothing.
func (m *Message) Reconcile(job JobStatus, now time.Time, maxAge time.Duration) (StallAction, LifecycleChange, error) {
	action := DecideStall(m.State, job, m.QueuedAt, now, maxAge)
	var (
		ch  LifecycleChange
		err error
	)
	switch action {
	case StallReset:
		ch, err = m.Interrupt(now)
	case StallRequeue:
		ch, err = m.Requeue(now)
	case StallGiveUp:
		ch, err = m.GiveUp()
	}
	return action, ch, err
}
