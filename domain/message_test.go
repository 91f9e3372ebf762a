package domain_test

import (
	"testing"

	"github.com/mailgate/mailgate/domain"
)

var allStates = []domain.MessageState{
	domain.StateDraft,
	domain.StateQueued,
	domain.StateSending,
	domain.StateSent,
	domain.StatePartiallySent,
	domain.StateFailed,
	domain.StateCancelled,
}

func TestCanTransition(t *testing.T) {
	t.Parallel()
	type pair struct{ from, to domain.MessageState }
	allowed := map[pair]bool{
		{domain.StateDraft, domain.StateDraft}:           true,
		{domain.StateDraft, domain.StateQueued}:          true,
		{domain.StateQueued, domain.StateSending}:        true,
		{domain.StateQueued, domain.StateCancelled}:      true,
		{domain.StateQueued, domain.StateSent}:           true,
		{domain.StateQueued, domain.StatePartiallySent}:  true,
		{domain.StateQueued, domain.StateFailed}:         true,
		{domain.StateSending, domain.StateQueued}:        true,
		{domain.StateSending, domain.StateSent}:          true,
		{domain.StateSending, domain.StatePartiallySent}: true,
		{domain.StateSending, domain.StateFailed}:        true,
		{domain.StatePartiallySent, domain.StateQueued}:  true,
		{domain.StateFailed, domain.StateQueued}:         true,
	}
	// Every pair of known states, plus an unknown one on either side.
	states := append(append([]domain.MessageState{}, allStates...), "bogus", "")
	for _, from := range states {
		for _, to := range states {
			want := allowed[pair{from, to}]
			t.Run(string(from)+"->"+string(to), func(t *testing.T) {
				t.Parallel()
				if got := domain.CanTransition(from, to); got != want {
					t.Fatalf("CanTransition(%q, %q) = %v, want %v", from, to, got, want)
				}
			})
		}
	}
}

func TestMessageStateProperties(t *testing.T) {
	t.Parallel()
	tests := []struct {
		state      domain.MessageState
		wantFinal  bool
		wantDelete bool
		wantValid  bool
	}{
		{domain.StateDraft, false, true, true},
		{domain.StateQueued, false, false, true},
		{domain.StateSending, false, false, true},
		{domain.StateSent, true, true, true},
		{domain.StatePartiallySent, true, true, true},
		{domain.StateFailed, true, true, true},
		{domain.StateCancelled, true, true, true},
		{"bogus", false, true, false},
		{"", false, true, false},
	}
	for _, tt := range tests {
		t.Run("State="+string(tt.state), func(t *testing.T) {
			t.Parallel()
			if got := tt.state.Final(); got != tt.wantFinal {
				t.Errorf("Final() = %v, want %v", got, tt.wantFinal)
			}
			if got := tt.state.CanDelete(); got != tt.wantDelete {
				t.Errorf("CanDelete() = %v, want %v", got, tt.wantDelete)
			}
			if got := tt.state.Valid(); got != tt.wantValid {
				t.Errorf("Valid() = %v, want %v", got, tt.wantValid)
			}
			m := &domain.Message{State: tt.state}
			if got := m.CanDelete(); got != tt.wantDelete {
				t.Errorf("Message.CanDelete() = %v, want %v", got, tt.wantDelete)
			}
		})
	}
}

// A final message has no outgoing transition except a retry back to queued.
func TestFinalStatesOnlyRequeue(t *testing.T) {
	t.Parallel()
	for _, from := range allStates {
		if !from.Final() {
			continue
		}
		for _, to := range allStates {
			if to != domain.StateQueued && domain.CanTransition(from, to) {
				t.Errorf("final state %q may move to %q", from, to)
			}
		}
	}
}

func TestRecipientStatusFinal(t *testing.T) {
	t.Parallel()
	tests := []struct {
		status domain.RecipientStatus
		want   bool
	}{
		{domain.RecipientPending, false},
		{domain.RecipientDeferred, false},
		{domain.RecipientDelivered, true},
		{domain.RecipientBounced, true},
		{domain.RecipientFailed, true},
		{domain.RecipientSuppressed, true},
	}
	for _, tt := range tests {
		t.Run(string(tt.status), func(t *testing.T) {
			t.Parallel()
			if got := tt.status.Final(); got != tt.want {
				t.Fatalf("%q.Final() = %v, want %v", tt.status, got, tt.want)
			}
		})
	}
}

func rcpts(statuses ...domain.RecipientStatus) []domain.Recipient {
	out := make([]domain.Recipient, len(statuses))
	for i, s := range statuses {
		out[i] = domain.Recipient{Kind: domain.KindTo, Position: i, Email: string(rune('a'+i)) + "@example.com", Status: s}
	}
	return out
}

func TestSettledState(t *testing.T) {
	t.Parallel()
	const (
		pending    = domain.RecipientPending
		deferred   = domain.RecipientDeferred
		delivered  = domain.RecipientDelivered
		bounced    = domain.RecipientBounced
		failed     = domain.RecipientFailed
		suppressed = domain.RecipientSuppressed
	)
	tests := []struct {
		name string
		in   []domain.Recipient
		want domain.MessageState
	}{
		{"OneDelivered", rcpts(delivered), domain.StateSent},
		{"AllDelivered", rcpts(delivered, delivered, delivered), domain.StateSent},
		{"OneBounced", rcpts(bounced), domain.StateFailed},
		{"NoneDelivered", rcpts(bounced, failed, suppressed), domain.StateFailed},
		{"AllSuppressed", rcpts(suppressed, suppressed), domain.StateFailed},
		{"DeliveredAndBounced", rcpts(delivered, bounced), domain.StatePartiallySent},
		{"DeliveredAndFailed", rcpts(failed, delivered), domain.StatePartiallySent},
		{"DeliveredAndSuppressed", rcpts(delivered, suppressed), domain.StatePartiallySent},
		{"OnePending", rcpts(pending), domain.StateQueued},
		{"OneDeferred", rcpts(deferred), domain.StateQueued},
		{"DeliveredAndPending", rcpts(delivered, delivered, pending), domain.StateQueued},
		{"BouncedAndDeferred", rcpts(bounced, deferred), domain.StateQueued},
		{"PendingFirst", rcpts(pending, delivered, bounced), domain.StateQueued},
		{"MixedWithDeferredLast", rcpts(delivered, bounced, failed, deferred), domain.StateQueued},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			if got := domain.SettledState(tt.in); got != tt.want {
				t.Fatalf("SettledState = %q, want %q", got, tt.want)
			}
		})
	}
}

func TestMessageRecipientsOfAndPending(t *testing.T) {
	t.Parallel()
	m := &domain.Message{Recipients: []domain.Recipient{
		{Kind: domain.KindTo, Position: 0, Email: "a@example.com", Status: domain.RecipientDelivered},
		{Kind: domain.KindCc, Position: 1, Email: "b@example.com", Status: domain.RecipientPending},
		{Kind: domain.KindTo, Position: 2, Email: "c@example.com", Status: domain.RecipientDeferred},
		{Kind: domain.KindBcc, Position: 3, Email: "d@example.com", Status: domain.RecipientBounced},
	}}
	emails := func(rs []domain.Recipient) []string {
		var out []string
		for _, r := range rs {
			out = append(out, r.Email)
		}
		return out
	}
	tests := []struct {
		name string
		got  []domain.Recipient
		want []string
	}{
		{"To", m.RecipientsOf(domain.KindTo), []string{"a@example.com", "c@example.com"}},
		{"Cc", m.RecipientsOf(domain.KindCc), []string{"b@example.com"}},
		{"Bcc", m.RecipientsOf(domain.KindBcc), []string{"d@example.com"}},
		{"Unknown", m.RecipientsOf("reply-to"), nil},
		{"Pending", m.Pending(), []string{"b@example.com", "c@example.com"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			got := emails(tt.got)
			if len(got) != len(tt.want) {
				t.Fatalf("got %v, want %v", got, tt.want)
			}
			for i := range got {
				if got[i] != tt.want[i] {
					t.Fatalf("got %v, want %v", got, tt.want)
				}
			}
		})
	}
}
