package domain

import (
	"reflect"
	"testing"
	"time"

	"github.com/google/uuid"
)

// everyState is every known state and an unknown one.
var everyState = []MessageState{StateDraft, StateQueued, StateSending, StateSent, StatePartiallySent,
	StateFailed, StateCancelled, StateReceived, "bogus"}

// fire runs the lifecycle method of event e on m, as the store does.
func fire(m *Message, e LifecycleEvent, now time.Time) (LifecycleChange, error) {
	switch e {
	case LifecycleEdit:
		return LifecycleChange{Event: e}, m.apply(e, StateDraft)
	case LifecycleSend:
		return LifecycleChange{Event: e}, m.apply(e, StateQueued)
	case LifecycleCancel:
		return m.Cancel(JobStatus{Exists: true, State: JobAvailable}, now)
	case LifecycleRetry:
		return m.Retry(RetryFilter{Bounced: true}, nil, now)
	case LifecycleInterrupt:
		return m.Interrupt(now)
	case LifecycleRequeue:
		return m.Requeue(now)
	case LifecycleGiveUp:
		return m.GiveUp()
	case LifecycleAttempt:
		_, err := m.BeginAttempt([]string{"lost@example.net"}, now)
		return LifecycleChange{Event: e}, err
	case LifecycleSettle:
		return LifecycleChange{Event: e}, m.Settle(SettledState(m.Recipients))
	}
	panic("no method for " + e)
}

// TestEveryStateEventPair enumerates every (state, event) pair: the machine
// permits exactly the pairs below, each permitted event's method succeeds
// and moves the message along an edge CanTransition allows, and each
// refused one is a conflict that leaves the message as it was.
func TestEveryStateEventPair(t *testing.T) {
	t.Parallel()
	type pair struct {
		state MessageState
		event LifecycleEvent
	}
	// The permitted pairs and where each leads (with the recipients below).
	permitted := map[pair]MessageState{
		{StateDraft, LifecycleEdit}:          StateDraft,
		{StateDraft, LifecycleSend}:          StateQueued,
		{StateQueued, LifecycleCancel}:       StateCancelled,
		{StateFailed, LifecycleRetry}:        StateQueued,
		{StatePartiallySent, LifecycleRetry}: StateQueued,
		{StateSending, LifecycleInterrupt}:   StateQueued,
		{StateQueued, LifecycleRequeue}:      StateQueued,
		{StateSending, LifecycleRequeue}:     StateQueued,
		{StateQueued, LifecycleGiveUp}:       StatePartiallySent,
		{StateSending, LifecycleGiveUp}:      StatePartiallySent,
		{StateQueued, LifecycleAttempt}:      StateSending,
		{StateSending, LifecycleAttempt}:     StateSending,
		{StateQueued, LifecycleSettle}:       StateQueued,
		{StateSending, LifecycleSettle}:      StateQueued,
	}
	now := time.Date(2026, 12, 2, 9, 0, 0, 0, time.UTC)
	for _, st := range everyState {
		for _, ev := range LifecycleEvents() {
			t.Run(string(st)+"/"+string(ev), func(t *testing.T) {
				t.Parallel()
				want, ok := permitted[pair{st, ev}]
				if got := ev.Permits(st); got != ok {
					t.Fatalf("Permits = %v, want %v", got, ok)
				}
				m := &Message{ID: uuid.New(), State: st, Version: 3, Recipients: []Recipient{
					{Position: 0, Email: "got@example.net", Status: RecipientDelivered},
					{Position: 1, Email: "lost@example.net", Status: RecipientFailed, LastCode: 550},
				}}
				if st == StateQueued || st == StateSending {
					m.Recipients[1].Status = RecipientDeferred
				}
				before := cloneMessage(m)
				ch, err := fire(m, ev, now)
				if !ok {
					if ErrorCodeOf(err) != CodeConflict || AsError(err).Message == "" {
						t.Fatalf("want a conflict that says why, got %v", err)
					}
					if !reflect.DeepEqual(m, before) {
						t.Fatalf("a refused %s changed the message: %+v", ev, m)
					}
					return
				}
				if err != nil {
					t.Fatalf("%s in %s: %v", ev, st, err)
				}
				if m.State != want || ch.Event != ev {
					t.Fatalf("state %s after %s (change %s), want %s", m.State, ev, ch.Event, want)
				}
				if m.State != st && !CanTransition(st, m.State) {
					t.Fatalf("%s moved %s to %s against the state machine", ev, st, m.State)
				}
			})
		}
	}
	if ev := LifecycleEvent("unknown"); len(ev.Sources()) != 0 || ev.Permits(StateDraft) || ev.Refusal(StateDraft) == "" {
		t.Fatal("an unknown event happens nowhere and says so")
	}
}

func cloneMessage(m *Message) *Message {
	c := *m
	c.Recipients = append([]Recipient(nil), m.Recipients...)
	return &c
}

func TestCancel(t *testing.T) {
	t.Parallel()
	now := time.Date(2026, 12, 2, 9, 0, 0, 0, time.UTC)
	t.Run("OKWithoutJob", func(t *testing.T) {
		t.Parallel()
		m := &Message{State: StateQueued}
		ch, err := m.Cancel(JobStatus{}, now)
		if err != nil || m.State != StateCancelled || ch.Job != JobUntouched || !m.UpdatedAt.Equal(now) || ch.From != StateQueued {
			t.Fatalf("%+v %v", ch, err)
		}
		if len(ch.Timeline) != 1 || ch.Timeline[0].Type != "cancelled" {
			t.Fatalf("timeline %+v", ch.Timeline)
		}
	})
	t.Run("OKCancelsWaitingJob", func(t *testing.T) {
		t.Parallel()
		for _, js := range []string{JobAvailable, JobScheduled, JobRetryable, JobCompleted} {
			m := &Message{State: StateQueued}
			ch, err := m.Cancel(JobStatus{Exists: true, State: js}, now)
			if err != nil || ch.Job != JobCancel {
				t.Fatalf("job %s: %+v %v", js, ch, err)
			}
		}
	})
	t.Run("ErrRunning", func(t *testing.T) {
		t.Parallel()
		m := &Message{State: StateQueued}
		_, err := m.Cancel(JobStatus{Exists: true, State: JobRunning}, now)
		if ErrorCodeOf(err) != CodeConflict || m.State != StateQueued {
			t.Fatalf("a running delivery can't be cancelled: %v, %s", err, m.State)
		}
	})
	t.Run("ErrNotQueued", func(t *testing.T) {
		t.Parallel()
		m := &Message{State: StateSent}
		_, err := m.Cancel(JobStatus{}, now)
		if ErrorCodeOf(err) != CodeConflict || AsError(err).Message != "only a queued or scheduled message can be cancelled; this one is sent" {
			t.Fatalf("%v", err)
		}
	})
}

func retryMessage() *Message {
	replied := time.Date(2026, 12, 1, 12, 0, 0, 0, time.UTC)
	return &Message{State: StatePartiallySent, LastError: "some failed", Recipients: []Recipient{
		{Position: 0, Email: "ok@example.net", Status: RecipientDelivered, LastCode: 250, UpdatedAt: replied},
		{Position: 1, Email: "Later@example.net", Status: RecipientFailed, LastCode: 451, LastReply: "try later", UpdatedAt: replied},
		{Position: 2, Email: "gone@example.net", Status: RecipientBounced, LastCode: 550, LastReply: "no such user", UpdatedAt: replied},
		{Position: 3, Email: "listed@example.net", Status: RecipientSuppressed, LastReply: "the address is on the suppression list", UpdatedAt: replied},
	}}
}

func TestRetry(t *testing.T) {
	t.Parallel()
	now := time.Date(2026, 12, 2, 9, 0, 0, 0, time.UTC)
	statuses := func(m *Message) []RecipientStatus {
		var out []RecipientStatus
		for _, r := range m.Recipients {
			out = append(out, r.Status)
		}
		return out
	}
	t.Run("OKFailedOnly", func(t *testing.T) {
		t.Parallel()
		m := retryMessage()
		ch, err := m.Retry(RetryFilter{}, nil, now)
		if err != nil {
			t.Fatal(err)
		}
		want := []RecipientStatus{RecipientDelivered, RecipientPending, RecipientBounced, RecipientSuppressed}
		if !reflect.DeepEqual(statuses(m), want) || m.State != StateQueued || m.LastError != "" || !m.QueuedAt.Equal(now) {
			t.Fatalf("statuses %v state %s error %q queued %v", statuses(m), m.State, m.LastError, m.QueuedAt)
		}
		if len(ch.Recipients) != 1 || ch.Recipients[0].Position != 1 || !ch.Recipients[0].UpdatedAt.Equal(now) ||
			ch.Recipients[0].LastReply != "try later" || ch.Job != JobEnqueue {
			t.Fatalf("change %+v", ch)
		}
		if len(ch.Timeline) != 1 || ch.Timeline[0].Type != "queued" || ch.Timeline[0].Detail != "retry requested" {
			t.Fatalf("timeline %+v", ch.Timeline)
		}
	})
	t.Run("OKBouncedChecksSuppressions", func(t *testing.T) {
		t.Parallel()
		m := retryMessage()
		ch, err := m.Retry(RetryFilter{Bounced: true}, map[string]bool{"listed@example.net": true}, now)
		if err != nil {
			t.Fatal(err)
		}
		want := []RecipientStatus{RecipientDelivered, RecipientPending, RecipientPending, RecipientSuppressed}
		if !reflect.DeepEqual(statuses(m), want) || len(ch.Recipients) != 3 {
			t.Fatalf("statuses %v, changed %+v", statuses(m), ch.Recipients)
		}
		if m.Recipients[3].LastReply != "not retried: the address is on the suppression list" {
			t.Fatalf("the suppressed one says why: %q", m.Recipients[3].LastReply)
		}
		if len(ch.Timeline) != 2 || ch.Timeline[0].Type != "suppressed" || ch.Timeline[0].Recipient != "listed@example.net" {
			t.Fatalf("timeline %+v", ch.Timeline)
		}
	})
	t.Run("OKReplyCodeAndWindow", func(t *testing.T) {
		t.Parallel()
		replied := time.Date(2026, 12, 1, 12, 0, 0, 0, time.UTC)
		cases := []struct {
			name string
			f    RetryFilter
			want int // recipients changed; 0: refused
		}{
			{"Code550", RetryFilter{Bounced: true, ReplyCode: 550}, 1},
			{"Code421", RetryFilter{Bounced: true, ReplyCode: 421}, 0},
			{"InWindow", RetryFilter{Bounced: true, RepliedAfter: replied, RepliedBefore: replied.Add(time.Second)}, 3},
			{"AfterWindow", RetryFilter{Bounced: true, RepliedBefore: replied}, 0},
			{"BeforeWindow", RetryFilter{Bounced: true, RepliedAfter: replied.Add(time.Nanosecond)}, 0},
		}
		for _, c := range cases {
			m := retryMessage()
			ch, err := m.Retry(c.f, nil, now)
			if c.want == 0 {
				if ErrorCodeOf(err) != CodeConflict {
					t.Errorf("%s: want a conflict, got %v", c.name, err)
				}
				continue
			}
			if err != nil || len(ch.Recipients) != c.want {
				t.Errorf("%s: %d changed, %v", c.name, len(ch.Recipients), err)
			}
		}
	})
	t.Run("ErrAllSuppressedChangesNothing", func(t *testing.T) {
		t.Parallel()
		m := retryMessage()
		before := cloneMessage(m)
		_, err := m.Retry(RetryFilter{}, map[string]bool{"Later@example.net": true}, now)
		if ErrorCodeOf(err) != CodeConflict || !reflect.DeepEqual(m, before) {
			t.Fatalf("%v; message %+v", err, m)
		}
	})
	t.Run("ErrState", func(t *testing.T) {
		t.Parallel()
		m := retryMessage()
		m.State = StateSent
		_, err := m.Retry(RetryFilter{}, nil, now)
		if ErrorCodeOf(err) != CodeConflict || AsError(err).Message != "only failed or partially sent messages can be retried; this one is sent" {
			t.Fatalf("%v", err)
		}
	})
}

func TestRetryFilterMessageStates(t *testing.T) {
	t.Parallel()
	if got := (RetryFilter{}).MessageStates(); !reflect.DeepEqual(got, LifecycleRetry.Sources()) {
		t.Fatalf("an open filter takes every state a retry may start from: %v", got)
	}
	if got := (RetryFilter{State: StateFailed}).MessageStates(); !reflect.DeepEqual(got, []MessageState{StateFailed}) {
		t.Fatalf("%v", got)
	}
}

func TestReconcilerMethods(t *testing.T) {
	t.Parallel()
	now := time.Date(2026, 12, 2, 9, 0, 0, 0, time.UTC)
	t.Run("InterruptOK", func(t *testing.T) {
		t.Parallel()
		m := &Message{State: StateSending, LastError: "kept"}
		ch, err := m.Interrupt(now)
		if err != nil || m.State != StateQueued || ch.Job != JobUntouched || m.LastError != "kept" || len(ch.Timeline) != 1 {
			t.Fatalf("%+v %v", ch, err)
		}
	})
	t.Run("InterruptErrQueued", func(t *testing.T) {
		t.Parallel()
		m := &Message{State: StateQueued}
		if _, err := m.Interrupt(now); ErrorCodeOf(err) != CodeConflict {
			t.Fatalf("%v", err)
		}
	})
	t.Run("RequeueOKKeepsQueueTime", func(t *testing.T) {
		t.Parallel()
		queued := now.Add(-time.Hour)
		m := &Message{State: StateSending, QueuedAt: queued}
		ch, err := m.Requeue(now)
		if err != nil || m.State != StateQueued || ch.Job != JobEnqueue || !m.QueuedAt.Equal(queued) {
			t.Fatalf("%+v %v", ch, err)
		}
	})
	t.Run("RequeueErrFinal", func(t *testing.T) {
		t.Parallel()
		m := &Message{State: StateFailed}
		if _, err := m.Requeue(now); ErrorCodeOf(err) != CodeConflict || m.State != StateFailed {
			t.Fatalf("%v", err)
		}
	})
	t.Run("GiveUpOK", func(t *testing.T) {
		t.Parallel()
		m := journalMessage()
		ch, err := m.GiveUp()
		if err != nil || ch.Attempt == nil || m.State != StatePartiallySent || ch.Attempt.State != StatePartiallySent ||
			len(ch.Attempt.Changed) != 2 || m.LastError == "" {
			t.Fatalf("%+v %v", ch, err)
		}
	})
	t.Run("GiveUpErrDraft", func(t *testing.T) {
		t.Parallel()
		m := journalMessage()
		m.State = StateDraft
		before := cloneMessage(m)
		if _, err := m.GiveUp(); ErrorCodeOf(err) != CodeConflict || !reflect.DeepEqual(m, before) {
			t.Fatalf("%v", err)
		}
	})
	t.Run("ReconcileFollowsDecideStall", func(t *testing.T) {
		t.Parallel()
		cases := []struct {
			state  MessageState
			job    JobStatus
			queued time.Time
			want   StallAction
			then   MessageState
		}{
			{StateSending, JobStatus{Exists: true, State: JobRetryable}, now, StallReset, StateQueued},
			{StateQueued, JobStatus{}, now, StallRequeue, StateQueued},
			{StateQueued, JobStatus{Exists: true, State: JobCompleted}, now.Add(-72 * time.Hour), StallGiveUp, StatePartiallySent},
			{StateQueued, JobStatus{Exists: true, State: JobAvailable}, now, StallNone, StateQueued},
			{StateSent, JobStatus{}, now, StallNone, StateSent},
		}
		for _, c := range cases {
			m := journalMessage()
			m.State, m.QueuedAt = c.state, c.queued
			action, ch, err := m.Reconcile(c.job, now, MaxDeliveryAge)
			if err != nil || action != c.want || m.State != c.then {
				t.Errorf("%s/%+v: action %v, state %s, %v", c.state, c.job, action, m.State, err)
			}
			if (action == StallNone) != (ch.Event == "") {
				t.Errorf("%s/%+v: a change %q for action %v", c.state, c.job, ch.Event, action)
			}
		}
	})
}
