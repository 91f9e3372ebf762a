package app

import (
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/mailgate/mailgate/adapters/smtprelay/smtptest"
)

// UTF-8 local parts (RFC 6531) are accepted, stored and sent with SMTPUTF8
// when the relay offers it; without it those recipients fail with the
// reason, and the others get the message with a 7-bit header.
func TestSMTPUTF8EndToEnd(t *testing.T) {
	t.Parallel()
	body := func(g *gateway) map[string]any {
		return map[string]any{
			"to": []map[string]string{
				{"display_name": "José", "email_address": "jösé@example.org"},
				{"email_address": "用户@例子.广告"},
				{"email_address": "bob@example.org"},
			},
			"subject": "Grüße", "body": "Hallo", "send": true,
		}
	}
	const punycoded = "用户@xn--fsqu00a.xn--4rr70v"

	t.Run("RelayOffersSMTPUTF8", func(t *testing.T) {
		t.Parallel()
		g := startGateway(t, smtptest.Options{})
		created := g.send(t, body(g))
		if got := created.To[0].EmailAddress; got != "jösé@example.org" {
			t.Fatalf("stored address %q, want jösé@example.org", got)
		}
		if got := created.To[1].EmailAddress; got != punycoded {
			t.Fatalf("stored address %q, want %s", got, punycoded)
		}
		received := g.relay.WaitForMessages(t, 1, 20*time.Second)[0]
		g.waitForState(t, created.ID, "sent")
		if !received.SMTPUTF8 {
			t.Errorf("MAIL FROM did not ask for SMTPUTF8")
		}
		if want := "jösé@example.org," + punycoded + ",bob@example.org"; strings.Join(received.To, ",") != want {
			t.Errorf("RCPT %q, want %q", received.To, want)
		}
		if !strings.Contains(headerBlock(received.Data), "jösé@example.org") {
			t.Errorf("the header does not carry the UTF-8 address:\n%s", headerBlock(received.Data))
		}
	})

	t.Run("RelayWithoutSMTPUTF8", func(t *testing.T) {
		t.Parallel()
		g := startGateway(t, smtptest.Options{NoSMTPUTF8: true})
		created := g.send(t, body(g))
		received := g.relay.WaitForMessages(t, 1, 20*time.Second)[0]
		final := g.waitForState(t, created.ID, "partially_sent")
		if received.SMTPUTF8 || strings.Join(received.To, ",") != "bob@example.org" {
			t.Errorf("relay got SMTPUTF8=%v RCPT %q; want bob@example.org alone, no SMTPUTF8", received.SMTPUTF8, received.To)
		}
		for i, c := range received.Data {
			if c >= 0x80 {
				t.Fatalf("8-bit byte at %d for a relay without SMTPUTF8:\n%s", i, headerBlock(received.Data))
			}
		}
		for _, r := range final.To[:2] {
			if r.Status != "bounced" || r.LastCode != 553 {
				t.Errorf("%s: %s %d, want bounced 553", r.EmailAddress, r.Status, r.LastCode)
			}
		}
		if !strings.Contains(final.LastError, "SMTPUTF8") {
			t.Errorf("last_error %q does not name SMTPUTF8", final.LastError)
		}
	})

	t.Run("RefusesWhatNoAddressCanHold", func(t *testing.T) {
		t.Parallel()
		g := startGateway(t, smtptest.Options{})
		b := body(g)
		b["to"] = []map[string]string{{"email_address": "jö\u200bsé@example.org"}}
		b["sender_email"] = g.sender.Email
		res := g.postJSON(t, mustJSON(b))
		assertProblem(t, res, http.StatusBadRequest, "to[0].email_address")
		if !strings.Contains(string(res.body), "local part") {
			t.Errorf("problem %s does not name the local part", res.body)
		}
	})
}
