package inbound_test

import (
	"errors"
	"strings"
	"testing"

	"github.com/mailgate/mailgate/adapters/inbound"
	"github.com/mailgate/mailgate/domain"
)

// checkParsed holds for whatever Parse makes of any input: it fails only
// with ErrMalformed, and what it returns is bounded and consistent with
// its kind.
func checkParsed(t *testing.T, raw []byte) domain.ParsedInbound {
	p, err := inbound.Parse(raw)
	if err != nil {
		if !errors.Is(err, inbound.ErrMalformed) {
			t.Fatalf("error %v is not ErrMalformed", err)
		}
		return p
	}
	switch p.Kind {
	case domain.InboundBounce:
		if p.DSN == nil || len(p.DSN.Recipients) == 0 || len(p.DSN.Recipients) > 1000 {
			t.Fatalf("bounce without a bounded recipient list: %+v", p.DSN)
		}
		for _, r := range p.DSN.Recipients {
			if r.FinalRecipient == "" && r.OriginalRecipient == "" {
				t.Fatalf("recipient block without an address: %+v", r)
			}
		}
	case domain.InboundComplaint:
		if p.Complaint == nil || p.Complaint.FeedbackType == "" {
			t.Fatalf("complaint without a feedback type: %+v", p.Complaint)
		}
	case domain.InboundReply:
		if p.Reply == nil || len(p.Reply.Attachments) > 200 {
			t.Fatalf("reply %+v", p.Reply)
		}
	default:
		t.Fatalf("unknown kind %q", p.Kind)
	}
	return p
}

// FuzzParseDSN feeds delivery status notifications, real Postfix ones among
// the seeds, to the parser.
func FuzzParseDSN(f *testing.F) {
	for _, name := range []string{"postfix/unknown.eml", "postfix/multi.eml", "postfix/delayed.eml", "reports/every-action.eml", "reports/qmail-plain.eml"} {
		f.Add(fixture(f, name))
	}
	f.Fuzz(func(t *testing.T, raw []byte) { checkParsed(t, raw) })
}

// FuzzParseARF feeds feedback reports to the parser.
func FuzzParseARF(f *testing.F) {
	f.Add(fixture(f, "reports/rfc5965-abuse.eml"))
	f.Add([]byte("Content-Type: multipart/report; report-type=feedback-report; boundary=x\r\n\r\n--x\r\nContent-Type: message/feedback-report\r\n\r\nFeedback-Type: abuse\r\nOriginal-Rcpt-To: <a@b.example>\r\n--x--\r\n"))
	f.Fuzz(func(t *testing.T, raw []byte) {
		p := checkParsed(t, raw)
		if p.Complaint != nil {
			for _, r := range p.Complaint.OriginalRcptTo {
				if strings.ContainsAny(r, "\r\n") {
					t.Fatalf("recipient %q carries a line break", r)
				}
			}
		}
	})
}

// FuzzParseInboundMIME feeds replies and arbitrary MIME to the parser.
func FuzzParseInboundMIME(f *testing.F) {
	f.Add(fixture(f, "reports/reply.eml"))
	f.Add([]byte("Content-Type: multipart/mixed; boundary=a\r\n\r\n--a\r\nContent-Type: multipart/mixed; boundary=b\r\n\r\n--b\r\nContent-Type: text/plain\r\n\r\nx\r\n--b--\r\n--a--\r\n"))
	f.Add([]byte("From: =?utf-8?b?w7w=?= <x@y.example>\r\nContent-Type: text/html; charset=iso-8859-1\r\nContent-Transfer-Encoding: quoted-printable\r\n\r\n<p>=E9</p>\r\n"))
	f.Fuzz(func(t *testing.T, raw []byte) { checkParsed(t, raw) })
}
