package inbound_test

import (
	"bytes"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/mailgate/mailgate/adapters/inbound"
	"github.com/mailgate/mailgate/domain"
)

func fixture(t testing.TB, path string) []byte {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("testdata", path))
	if err != nil {
		t.Fatal(err)
	}
	return b
}

type wantRcpt struct {
	final, original string
	action          domain.DSNAction
	status          string
}

// TestParsePostfixDSNs reads the notifications a real Postfix wrote
// (testdata/postfix/generate.sh regenerates them).
func TestParsePostfixDSNs(t *testing.T) {
	t.Parallel()
	cases := []struct {
		file  string
		want  []wantRcpt
		msgID string
	}{
		{"postfix/unknown.eml", []wantRcpt{{"nosuchuser@local.test", "nosuchuser@local.test", domain.ActionFailed, "5.1.1"}}, "<fixture-unknown@tenant.example>"},
		{"postfix/multi.eml", []wantRcpt{{"nobody1@local.test", "nobody1@local.test", domain.ActionFailed, "5.1.1"}, {"nobody2@local.test", "nobody2@local.test", domain.ActionFailed, "5.1.1"}}, "<fixture-multi@tenant.example>"},
		{"postfix/full.eml", []wantRcpt{{"full@virt.test", "full@virt.test", domain.ActionFailed, "5.2.2"}}, "<fixture-full@tenant.example>"},
		{"postfix/delayed.eml", []wantRcpt{{"someone@slow.test", "someone@slow.test", domain.ActionDelayed, "4.4.1"}}, "<fixture-delayed@tenant.example>"},
		{"postfix/delivered.eml", []wantRcpt{{"notify@virt.test", "notify@virt.test", domain.ActionDelivered, "2.0.0"}}, "<fixture-delivered@tenant.example>"},
		{"reports/every-action.eml", []wantRcpt{
			{"a@dest.example", "", domain.ActionRelayed, "2.0.0"},
			{"list@dest.example", "", domain.ActionExpanded, "2.0.0"},
			{"b@dest.example", "", domain.ActionDelivered, "2.0.0"},
			{"forwarded@elsewhere.example", "c@dest.example", domain.ActionFailed, "5.1.1"},
			{"d@dest.example", "", domain.ActionDelayed, "4.2.2"},
		}, "<orig-1@tenant.example>"},
	}
	for _, tc := range cases {
		t.Run(tc.file, func(t *testing.T) {
			t.Parallel()
			p, err := inbound.Parse(fixture(t, tc.file))
			if err != nil {
				t.Fatal(err)
			}
			if p.Kind != domain.InboundBounce || p.DSN == nil || !p.DSN.Standard {
				t.Fatalf("parsed as %+v", p)
			}
			if p.DSN.OriginalMessageID != tc.msgID {
				t.Errorf("original Message-ID %q, want %q", p.DSN.OriginalMessageID, tc.msgID)
			}
			if len(p.DSN.Recipients) != len(tc.want) {
				t.Fatalf("recipients %+v, want %d", p.DSN.Recipients, len(tc.want))
			}
			for i, w := range tc.want {
				got := p.DSN.Recipients[i]
				if got.FinalRecipient != w.final || got.OriginalRecipient != w.original || got.Action != w.action || got.Status != w.status {
					t.Errorf("recipient %d: %+v, want %+v", i, got, w)
				}
			}
		})
	}
}

func TestParsePlainTextBounces(t *testing.T) {
	t.Parallel()
	for _, file := range []string{"reports/qmail-plain.eml", "reports/exim-plain.eml"} {
		p, err := inbound.Parse(fixture(t, file))
		if err != nil {
			t.Fatal(err)
		}
		if p.Kind != domain.InboundBounce || p.DSN == nil || p.DSN.Standard {
			t.Fatalf("%s parsed as %+v", file, p)
		}
		// The returned copy's headers name stays@dest.example too: only the
		// notice before it counts.
		if len(p.DSN.Recipients) != 1 || p.DSN.Recipients[0].FinalRecipient != "gone@dest.example" ||
			p.DSN.Recipients[0].Action != domain.ActionFailed || p.DSN.Recipients[0].Status != "5.1.1" {
			t.Fatalf("%s: recipients %+v", file, p.DSN.Recipients)
		}
	}
}

func TestParseARF(t *testing.T) {
	t.Parallel()
	p, err := inbound.Parse(fixture(t, "reports/rfc5965-abuse.eml"))
	if err != nil {
		t.Fatal(err)
	}
	c := p.Complaint
	if p.Kind != domain.InboundComplaint || c == nil {
		t.Fatalf("parsed as %+v", p)
	}
	if c.FeedbackType != "abuse" || c.UserAgent != "SomeGenerator/1.0" || c.OriginalMailFrom != "somespammer@example.net" ||
		len(c.OriginalRcptTo) != 1 || c.OriginalRcptTo[0] != "user@example.com" || c.SourceIP != "192.0.2.1" ||
		c.OriginalMessageID != "8787KJKJ3K4J3K4J3K4J3.mail@example.net" {
		t.Fatalf("complaint %+v", c)
	}
}

func TestParseMalformedReports(t *testing.T) {
	t.Parallel()
	noFields := "Content-Type: multipart/report; report-type=delivery-status; boundary=x\r\n\r\n--x\r\nContent-Type: message/delivery-status\r\n\r\n--x--\r\n"
	noType := "Content-Type: multipart/report; report-type=feedback-report; boundary=x\r\n\r\n--x\r\nContent-Type: message/feedback-report\r\n\r\nUser-Agent: x\r\n\r\n--x--\r\n"
	var deep strings.Builder
	deep.WriteString("Content-Type: multipart/mixed; boundary=b0\r\n\r\n")
	for i := 1; i < 30; i++ {
		deep.WriteString("--b" + itoa(i-1) + "\r\nContent-Type: multipart/mixed; boundary=b" + itoa(i) + "\r\n\r\n")
	}
	var many strings.Builder
	many.WriteString("Content-Type: multipart/mixed; boundary=x\r\n\r\n")
	for range 500 {
		many.WriteString("--x\r\nContent-Type: text/plain\r\n\r\nhi\r\n")
	}
	many.WriteString("--x--\r\n")
	for name, raw := range map[string]string{"no recipient fields": noFields, "no feedback type": noType, "deep nesting": deep.String(), "too many parts": many.String()} {
		if _, err := inbound.Parse([]byte(raw)); !errors.Is(err, inbound.ErrMalformed) {
			t.Errorf("%s: err %v, want ErrMalformed", name, err)
		}
	}
}

func itoa(i int) string { return string(rune('a'+i/26)) + string(rune('a'+i%26)) }

func TestParseReply(t *testing.T) {
	t.Parallel()
	p, err := inbound.Parse(fixture(t, "reports/reply.eml"))
	if err != nil {
		t.Fatal(err)
	}
	r := p.Reply
	if p.Kind != domain.InboundReply || r == nil {
		t.Fatalf("parsed as %+v", p)
	}
	if r.FromEmail != "ada@example.net" || r.FromName != "Ada Lovelace" || r.Subject != "Re: Zoë's question" ||
		r.InReplyTo != "<orig@tenant.example>" || !strings.Contains(r.TextBody, "Thanks!") || !strings.Contains(r.HTMLBody, "<b>Thanks!</b>") {
		t.Fatalf("reply %+v", r)
	}
	if len(r.Attachments) != 1 || r.Attachments[0].Filename != "notes.bin" || !bytes.Equal(r.Attachments[0].Content, replyAttachment()) {
		t.Fatalf("attachments %+v", r.Attachments)
	}
}

// replyAttachment is the attachment of testdata/reports/reply.eml: every byte value, four times.
func replyAttachment() []byte {
	var b []byte
	for range 4 {
		for i := range 256 {
			b = append(b, byte(i))
		}
	}
	return b
}
