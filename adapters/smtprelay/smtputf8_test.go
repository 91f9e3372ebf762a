package smtprelay_test

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/mailgate/mailgate/adapters/mailbuild"
	"github.com/mailgate/mailgate/adapters/smtprelay"
	"github.com/mailgate/mailgate/adapters/smtprelay/smtptest"
	"github.com/mailgate/mailgate/domain"
)

// utf8Envelope addresses two UTF-8 recipients (RFC 6531) and an ASCII one.
func utf8Envelope(sender string) smtprelay.Envelope {
	return smtprelay.Envelope{From: sender, To: []string{"jösé@example.org", "用户@xn--fsqu00a.xn--4rr70v", "bob@example.org"}}
}

// renderBoth renders the message as the delivery worker does: as it is, and
// downgraded for a relay without SMTPUTF8.
func renderBoth(t *testing.T, env smtprelay.Envelope) (data, downgraded []byte) {
	t.Helper()
	msg := &domain.Message{
		SenderEmail: env.From, Importance: domain.ImportanceNormal,
		MessageID: "<utf8-test@example.com>", Subject: "Grüße", Body: "Hallo",
	}
	for _, rcpt := range env.To {
		msg.Recipients = append(msg.Recipients, domain.Recipient{Kind: domain.KindTo, Email: rcpt})
	}
	var err error
	date := time.Date(2024, 1, 2, 3, 4, 5, 0, time.UTC)
	if data, err = mailbuild.Build(msg, mailbuild.Options{Date: date}); err != nil {
		t.Fatalf("mailbuild: %v", err)
	}
	if downgraded, err = mailbuild.Build(msg, mailbuild.Options{Date: date, Downgrade: true}); err != nil {
		t.Fatalf("mailbuild downgraded: %v", err)
	}
	return data, downgraded
}

func has8Bit(b []byte) bool {
	for _, c := range b {
		if c >= 0x80 {
			return true
		}
	}
	return false
}

func TestSendSMTPUTF8(t *testing.T) {
	t.Parallel()

	t.Run("OfferedSendsEveryoneWithSMTPUTF8", func(t *testing.T) {
		t.Parallel()
		srv := smtptest.Start(t, smtptest.Options{})
		env := utf8Envelope("alice@example.com")
		data, downgraded := renderBoth(t, env)
		env.Downgraded = downgraded
		replies := transportFor(t, srv).Send(context.Background(), env, data)
		for _, r := range replies {
			if r.Code != 250 {
				t.Errorf("%s: %d %s, want 250", r.Email, r.Code, r.Text)
			}
		}
		got := srv.WaitForMessages(t, 1, waitTimeout)[0]
		if !got.SMTPUTF8 {
			t.Errorf("MAIL FROM did not ask for SMTPUTF8")
		}
		if strings.Join(got.To, ",") != strings.Join(env.To, ",") {
			t.Errorf("relay got RCPT %q, want %q", got.To, env.To)
		}
		if !strings.Contains(string(got.Data), "jösé@example.org") {
			t.Errorf("the UTF-8 address is not in the header as UTF-8:\n%s", got.Data)
		}
	})

	t.Run("NotOfferedFailsUTF8RecipientsAndDowngradesForTheRest", func(t *testing.T) {
		t.Parallel()
		srv := smtptest.Start(t, smtptest.Options{NoSMTPUTF8: true})
		env := utf8Envelope("alice@example.com")
		data, downgraded := renderBoth(t, env)
		env.Downgraded = downgraded
		replies := transportFor(t, srv).Send(context.Background(), env, data)
		for _, r := range replies {
			switch {
			case domain.IsASCII(r.Email) && r.Code != 250:
				t.Errorf("%s: %d %s, want 250", r.Email, r.Code, r.Text)
			case !domain.IsASCII(r.Email) && (r.Code != 553 || !strings.Contains(r.Text, "SMTPUTF8")):
				t.Errorf("%s: %d %s, want 553 naming SMTPUTF8", r.Email, r.Code, r.Text)
			}
		}
		got := srv.WaitForMessages(t, 1, waitTimeout)[0]
		if got.SMTPUTF8 || strings.Join(got.To, ",") != "bob@example.org" {
			t.Errorf("relay got SMTPUTF8=%v RCPT %q, want no SMTPUTF8 and bob only", got.SMTPUTF8, got.To)
		}
		if has8Bit(got.Data) {
			t.Errorf("a relay without SMTPUTF8 got 8-bit data:\n%s", got.Data)
		}
	})

	t.Run("NotOfferedWithoutDowngradeSendsNothing8Bit", func(t *testing.T) {
		t.Parallel()
		srv := smtptest.Start(t, smtptest.Options{NoSMTPUTF8: true})
		env := utf8Envelope("alice@example.com")
		data, _ := renderBoth(t, env)
		for _, r := range transportFor(t, srv).Send(context.Background(), env, data) {
			if r.Code != 553 || !strings.Contains(r.Text, "SMTPUTF8") {
				t.Errorf("%s: %d %s, want 553 naming SMTPUTF8", r.Email, r.Code, r.Text)
			}
		}
		if n := len(srv.Messages()); n != 0 {
			t.Errorf("relay got %d messages, want none", n)
		}
	})

	t.Run("NotOfferedUTF8SenderFailsEveryone", func(t *testing.T) {
		t.Parallel()
		srv := smtptest.Start(t, smtptest.Options{NoSMTPUTF8: true})
		env := utf8Envelope("émile@example.com")
		data, downgraded := renderBoth(t, env)
		env.Downgraded = downgraded
		for _, r := range transportFor(t, srv).Send(context.Background(), env, data) {
			if r.Code != 553 || !strings.Contains(r.Text, "sender") {
				t.Errorf("%s: %d %s, want 553 naming the sender", r.Email, r.Code, r.Text)
			}
		}
		if n := len(srv.Messages()); n != 0 {
			t.Errorf("relay got %d messages, want none", n)
		}
	})
}
