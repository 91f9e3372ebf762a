package domain

import (
	"testing"
	"time"

	"github.com/google/uuid"
)

func journalMessage() *Message {
	return &Message{
		ID: uuid.New(), SenderEmail: "a@example.com", State: StateQueued,
		Recipients: []Recipient{
			{Position: 0, Email: "one@example.net", Status: RecipientPending},
			{Position: 1, Email: "two@example.net", Status: RecipientPending},
			{Position: 2, Email: "done@example.net", Status: RecipientDelivered},
		},
	}
}

func TestBeginAttemptFlagsOnlyInterruptedRecipients(t *testing.T) {
	t.Parallel()
	now := time.Date(2026, 12, 1, 10, 0, 0, 0, time.UTC)
	m := journalMessage()
	first, err := m.BeginAttempt([]string{"one@example.net", "done@example.net"}, now)
	if err != nil || m.State != StateSending {
		t.Fatalf("begin: %v, state %s", err, m.State)
	}
	if len(first) != 1 || first[0].Email != "one@example.net" || first[0].PossibleDuplicate {
		t.Fatalf("a first attempt journals the pending recipient unflagged: %+v", first)
	}
	if m.Recipients[1].InFlightSince != (time.Time{}) {
		t.Fatal("a recipient the relay did not accept carries no journal mark")
	}
	// The attempt dies: its outcome is never written. The next attempt
	// resends to both; only the one that was handed over is flagged.
	second, err := m.BeginAttempt([]string{"one@example.net", "two@example.net"}, now.Add(time.Minute))
	if err != nil {
		t.Fatal(err)
	}
	if len(second) != 2 || !second[0].PossibleDuplicate || second[1].PossibleDuplicate {
		t.Fatalf("resend after an interrupted attempt: %+v", second)
	}
	if got := m.Interrupted(); len(got) != 2 {
		t.Fatalf("both are in flight now: %+v", got)
	}
	changed := m.ApplyReplies([]RecipientReply{{Email: "one@example.net", Code: 250}, {Email: "two@example.net", Code: 451}}, false)
	if len(changed) != 2 || !changed[0].InFlightSince.IsZero() || !changed[1].InFlightSince.IsZero() {
		t.Fatalf("an answered attempt clears the journal marks: %+v", changed)
	}
	if !m.Recipients[0].PossibleDuplicate || m.Recipients[1].PossibleDuplicate {
		t.Fatal("the flag stays on the recipient that may have it twice, and only there")
	}
}

func TestDeliveryVerdict(t *testing.T) {
	t.Parallel()
	ok := DeliveryContext{TenantStatus: TenantActive, SenderDomainVerified: true, SenderAccountExists: true}
	account := uuid.New()
	cases := []struct {
		name    string
		state   MessageState
		account uuid.UUID
		dc      func(DeliveryContext) DeliveryContext
		want    Verdict
	}{
		{"Deliver", StateQueued, uuid.Nil, nil, VerdictDeliver},
		{"DeliverResumedSending", StateSending, account, nil, VerdictDeliver},
		{"DoneWhenFinal", StateSent, uuid.Nil, nil, VerdictDone},
		{"DoneWhenCancelled", StateCancelled, uuid.Nil, nil, VerdictDone},
		{"DoneWhenDraft", StateDraft, uuid.Nil, nil, VerdictDone},
		{"HoldWhenSuspended", StateQueued, uuid.Nil, func(d DeliveryContext) DeliveryContext { d.TenantStatus = TenantSuspended; return d }, VerdictHold},
		{"HoldBeatsRefusal", StateQueued, uuid.Nil, func(d DeliveryContext) DeliveryContext {
			d.TenantStatus, d.SenderDomainVerified = TenantSuspended, false
			return d
		}, VerdictHold},
		{"RefuseRemovedDomain", StateQueued, uuid.Nil, func(d DeliveryContext) DeliveryContext { d.SenderDomainVerified = false; return d }, VerdictRefuse},
		{"RefuseAccountOnRemovedDomain", StateQueued, account, func(d DeliveryContext) DeliveryContext { d.SenderDomainVerified = false; return d }, VerdictRefuse},
		{"RefuseDeletedAccount", StateQueued, account, func(d DeliveryContext) DeliveryContext { d.SenderAccountExists = false; return d }, VerdictRefuse},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			dc := ok
			if c.dc != nil {
				dc = c.dc(dc)
			}
			m := &Message{State: c.state, SenderAccountID: c.account, SenderEmail: "a@example.com"}
			got, reason := DeliveryVerdict(m, dc)
			if got != c.want {
				t.Fatalf("verdict %v (%s), want %v", got, reason, c.want)
			}
			if (got == VerdictHold || got == VerdictRefuse) && reason == "" {
				t.Fatal("a hold or refusal says why")
			}
		})
	}
}

func TestRefuseAllFailsOnlyUnsettledRecipients(t *testing.T) {
	t.Parallel()
	m := journalMessage()
	rec := m.RefuseAll("sender not authorised")
	if len(rec.Changed) != 2 || rec.State != StatePartiallySent || rec.LastError != "sender not authorised" {
		t.Fatalf("%+v", rec)
	}
	for _, r := range rec.Changed {
		if r.Status != RecipientFailed || r.LastReply != "sender not authorised" {
			t.Fatalf("%+v", r)
		}
	}
}

// TestDecideStallEveryPair enumerates every message state against every job
// state (and a missing job) and checks the reconciler's rule.
func TestDecideStallEveryPair(t *testing.T) {
	t.Parallel()
	now := time.Now()
	states := []MessageState{StateDraft, StateQueued, StateSending, StateSent, StatePartiallySent, StateFailed, StateCancelled}
	jobs := []JobStatus{{}, {true, "available"}, {true, "scheduled"}, {true, "retryable"}, {true, "pending"}, {true, "running"},
		{true, "completed"}, {true, "cancelled"}, {true, "discarded"}}
	for _, st := range states {
		for _, job := range jobs {
			for _, old := range []bool{false, true} {
				queued := now.Add(-time.Minute)
				if old {
					queued = now.Add(-72 * time.Hour)
				}
				got := DecideStall(st, job, queued, now, MaxDeliveryAge)
				want := StallNone
				switch {
				case st != StateQueued && st != StateSending:
				case job.Exists && job.State != "completed" && job.State != "cancelled" && job.State != "discarded":
					if st == StateSending && job.State != "running" {
						want = StallReset
					}
				case old:
					want = StallGiveUp
				default:
					want = StallRequeue
				}
				if got != want {
					t.Errorf("message %s, job %+v, old %v: got %v, want %v", st, job, old, got, want)
				}
				if got == StallRequeue && job.live() {
					t.Errorf("a second job beside a live one for %s/%+v", st, job)
				}
			}
		}
	}
}
