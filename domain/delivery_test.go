package domain_test

import (
	"strconv"
	"strings"
	"testing"
	"unicode/utf8"

	"github.com/mailgate/mailgate/domain"
)

func TestClassifyReply(t *testing.T) {
	t.Parallel()
	tests := []struct {
		code int
		want domain.ReplyOutcome
	}{
		{0, domain.OutcomeDeferred},
		{-1, domain.OutcomeDeferred},
		{199, domain.OutcomeDeferred},
		{200, domain.OutcomeDelivered},
		{250, domain.OutcomeDelivered},
		{251, domain.OutcomeDelivered},
		{299, domain.OutcomeDelivered},
		{300, domain.OutcomeDeferred},
		{354, domain.OutcomeDeferred},
		{421, domain.OutcomeDeferred},
		{450, domain.OutcomeDeferred},
		{451, domain.OutcomeDeferred},
		{452, domain.OutcomeDeferred},
		{499, domain.OutcomeDeferred},
		{500, domain.OutcomeBounced},
		{550, domain.OutcomeBounced},
		{554, domain.OutcomeBounced},
		{599, domain.OutcomeBounced},
		{600, domain.OutcomeDeferred},
		{999, domain.OutcomeDeferred},
	}
	for _, tt := range tests {
		t.Run(strconv.Itoa(tt.code), func(t *testing.T) {
			t.Parallel()
			if got := domain.ClassifyReply(tt.code); got != tt.want {
				t.Fatalf("ClassifyReply(%d) = %v, want %v", tt.code, got, tt.want)
			}
		})
	}
}

func TestApplyReplies(t *testing.T) {
	t.Parallel()

	// want describes one recipient after ApplyReplies.
	type want struct {
		status   domain.RecipientStatus
		attempts int
		code     int
		reply    string
	}
	rcpt := func(email string, status domain.RecipientStatus, attempts, code int, reply string) domain.Recipient {
		return domain.Recipient{Kind: domain.KindTo, Email: email, Status: status, Attempts: attempts, LastCode: code, LastReply: reply}
	}
	const (
		a = "a@example.com"
		b = "b@example.com"
		c = "c@example.com"
	)
	tests := []struct {
		name        string
		recipients  []domain.Recipient
		replies     []domain.RecipientReply
		lastAttempt bool
		want        []want
		wantChanged []string
	}{
		{
			name: "MixedReplies",
			recipients: []domain.Recipient{
				rcpt(a, domain.RecipientPending, 0, 0, ""),
				rcpt(b, domain.RecipientPending, 0, 0, ""),
				rcpt(c, domain.RecipientPending, 0, 0, ""),
			},
			replies: []domain.RecipientReply{
				{Email: c, Code: 550, Text: "5.1.1 no such user"},
				{Email: a, Code: 250, Text: "2.0.0 ok"},
				{Email: b, Code: 450, Text: "4.2.0 greylisted"},
			},
			want: []want{
				{domain.RecipientDelivered, 1, 250, "2.0.0 ok"},
				{domain.RecipientDeferred, 1, 450, "4.2.0 greylisted"},
				{domain.RecipientBounced, 1, 550, "5.1.1 no such user"},
			},
			wantChanged: []string{a, b, c},
		},
		{
			name:        "NoReplyCodeDefers",
			recipients:  []domain.Recipient{rcpt(a, domain.RecipientPending, 0, 0, "")},
			replies:     []domain.RecipientReply{{Email: a, Code: 0, Text: "i/o timeout"}},
			want:        []want{{domain.RecipientDeferred, 1, 0, "i/o timeout"}},
			wantChanged: []string{a},
		},
		{
			name:        "NoReplyCodeOnLastAttemptFails",
			recipients:  []domain.Recipient{rcpt(a, domain.RecipientDeferred, 24, 421, "busy")},
			replies:     []domain.RecipientReply{{Email: a, Code: 0, Text: "connection refused"}},
			lastAttempt: true,
			want:        []want{{domain.RecipientFailed, 25, 0, "connection refused"}},
			wantChanged: []string{a},
		},
		{
			name: "LastAttempt",
			recipients: []domain.Recipient{
				rcpt(a, domain.RecipientDeferred, 3, 451, "later"),
				rcpt(b, domain.RecipientDeferred, 3, 451, "later"),
				rcpt(c, domain.RecipientDeferred, 3, 451, "later"),
			},
			replies: []domain.RecipientReply{
				{Email: a, Code: 250, Text: "ok"},
				{Email: b, Code: 451, Text: "still later"},
				{Email: c, Code: 554, Text: "rejected"},
			},
			lastAttempt: true,
			want: []want{
				{domain.RecipientDelivered, 4, 250, "ok"},
				{domain.RecipientFailed, 4, 451, "still later"},
				{domain.RecipientBounced, 4, 554, "rejected"},
			},
			wantChanged: []string{a, b, c},
		},
		{
			name:        "DeferredAgainCountsAttempts",
			recipients:  []domain.Recipient{rcpt(a, domain.RecipientDeferred, 2, 421, "busy")},
			replies:     []domain.RecipientReply{{Email: a, Code: 452, Text: "mailbox full"}},
			want:        []want{{domain.RecipientDeferred, 3, 452, "mailbox full"}},
			wantChanged: []string{a},
		},
		{
			name: "FinalRecipientsUntouched",
			recipients: []domain.Recipient{
				rcpt(a, domain.RecipientDelivered, 1, 250, "ok"),
				rcpt(b, domain.RecipientBounced, 2, 550, "unknown"),
				rcpt(c, domain.RecipientSuppressed, 0, 0, ""),
			},
			replies: []domain.RecipientReply{
				{Email: a, Code: 550, Text: "now refused"},
				{Email: b, Code: 250, Text: "now ok"},
				{Email: c, Code: 250, Text: "ok"},
			},
			lastAttempt: true,
			want: []want{
				{domain.RecipientDelivered, 1, 250, "ok"},
				{domain.RecipientBounced, 2, 550, "unknown"},
				{domain.RecipientSuppressed, 0, 0, ""},
			},
			wantChanged: nil,
		},
		{
			name: "DeliveredStaysDeliveredWhenRepliedAgain",
			recipients: []domain.Recipient{
				rcpt(a, domain.RecipientDelivered, 1, 250, "ok"),
				rcpt(b, domain.RecipientDeferred, 1, 421, "busy"),
			},
			replies: []domain.RecipientReply{
				{Email: a, Code: 250, Text: "ok again"},
				{Email: b, Code: 250, Text: "ok"},
			},
			want: []want{
				{domain.RecipientDelivered, 1, 250, "ok"},
				{domain.RecipientDelivered, 2, 250, "ok"},
			},
			wantChanged: []string{b},
		},
		{
			name: "FailedIsFinal",
			recipients: []domain.Recipient{
				rcpt(a, domain.RecipientFailed, 25, 421, "gave up"),
			},
			replies:     []domain.RecipientReply{{Email: a, Code: 250, Text: "ok"}},
			want:        []want{{domain.RecipientFailed, 25, 421, "gave up"}},
			wantChanged: nil,
		},
		{
			name: "RecipientWithoutReplyUntouched",
			recipients: []domain.Recipient{
				rcpt(a, domain.RecipientPending, 0, 0, ""),
				rcpt(b, domain.RecipientPending, 0, 0, ""),
			},
			replies: []domain.RecipientReply{{Email: b, Code: 250, Text: "ok"}},
			want: []want{
				{domain.RecipientPending, 0, 0, ""},
				{domain.RecipientDelivered, 1, 250, "ok"},
			},
			wantChanged: []string{b},
		},
		{
			name:        "ReplyForUnknownAddressIgnored",
			recipients:  []domain.Recipient{rcpt(a, domain.RecipientPending, 0, 0, "")},
			replies:     []domain.RecipientReply{{Email: "stranger@example.com", Code: 250}},
			want:        []want{{domain.RecipientPending, 0, 0, ""}},
			wantChanged: nil,
		},
		{
			name:        "NoReplies",
			recipients:  []domain.Recipient{rcpt(a, domain.RecipientDeferred, 1, 421, "busy")},
			replies:     nil,
			want:        []want{{domain.RecipientDeferred, 1, 421, "busy"}},
			wantChanged: nil,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			m := &domain.Message{Recipients: tt.recipients}
			changed := m.ApplyReplies(tt.replies, tt.lastAttempt)
			for i, w := range tt.want {
				r := m.Recipients[i]
				got := want{r.Status, r.Attempts, r.LastCode, r.LastReply}
				if got != w {
					t.Errorf("recipient %s = %+v, want %+v", r.Email, got, w)
				}
			}
			if len(changed) != len(tt.wantChanged) {
				t.Fatalf("changed %d recipients (%+v), want %v", len(changed), changed, tt.wantChanged)
			}
			for i, email := range tt.wantChanged {
				if changed[i].Email != email {
					t.Errorf("changed[%d] = %s, want %s", i, changed[i].Email, email)
				}
			}
			// Changed holds copies of the updated recipients, not stale values.
			for _, c := range changed {
				for _, r := range m.Recipients {
					if r.Email == c.Email && (r.Status != c.Status || r.Attempts != c.Attempts) {
						t.Errorf("changed entry %+v differs from recipient %+v", c, r)
					}
				}
			}
		})
	}
}

// Applying the same successful replies twice must not count a second attempt.
func TestApplyRepliesIdempotentForDelivered(t *testing.T) {
	t.Parallel()
	m := &domain.Message{Recipients: []domain.Recipient{{Email: "a@example.com", Status: domain.RecipientPending}}}
	replies := []domain.RecipientReply{{Email: "a@example.com", Code: 250, Text: "ok"}}
	if got := m.ApplyReplies(replies, false); len(got) != 1 {
		t.Fatalf("first apply changed %d recipients, want 1", len(got))
	}
	if got := m.ApplyReplies(replies, true); len(got) != 0 {
		t.Fatalf("second apply changed %d recipients, want 0", len(got))
	}
	if r := m.Recipients[0]; r.Status != domain.RecipientDelivered || r.Attempts != 1 {
		t.Fatalf("recipient = %+v, want delivered after 1 attempt", r)
	}
	if got := domain.SettledState(m.Recipients); got != domain.StateSent {
		t.Fatalf("SettledState = %q, want sent", got)
	}
}

func TestStorableReply(t *testing.T) {
	for _, tt := range []struct{ in, want string }{
		{"2.0.0 OK queued as 4F2A", "2.0.0 OK queued as 4F2A"},
		{"2.0.0 ok\x00\x01 done", "2.0.0 ok done"},
		{"5.1.1 bad \xff\xfe user", "5.1.1 bad \uFFFD user"},
		{"4.2.0 line one\r\nline two\ttab", "4.2.0 line one line two tab"},
		{"2.0.0 déjà vu", "2.0.0 déjà vu"},
		{"550 a\x7fb", "550 a b"},
	} {
		if got := domain.StorableReply(tt.in); got != tt.want {
			t.Errorf("StorableReply(%q) = %q, want %q", tt.in, got, tt.want)
		}
	}
	long := domain.StorableReply(strings.Repeat("é", domain.MaxReplyLength))
	if len(long) > domain.MaxReplyLength || !utf8.ValidString(long) {
		t.Errorf("a long reply kept %d bytes (valid UTF-8: %v), want at most %d", len(long), utf8.ValidString(long), domain.MaxReplyLength)
	}
}
