package smtprelay_test

import (
	"bytes"
	"context"
	"fmt"
	"net"
	"net/textproto"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/emersion/go-smtp"

	"github.com/mailgate/mailgate/adapters/mailbuild"
	"github.com/mailgate/mailgate/adapters/smtprelay"
	"github.com/mailgate/mailgate/adapters/smtprelay/smtptest"
	"github.com/mailgate/mailgate/domain"
)

const waitTimeout = 5 * time.Second

// buildMessage renders a message with one recipient of each kind; the
// envelope lists all three.
func buildMessage(t *testing.T, body string) (smtprelay.Envelope, []byte) {
	t.Helper()
	msg := &domain.Message{
		SenderEmail:       "alice@example.com",
		SenderDisplayName: "Alice",
		Recipients: []domain.Recipient{
			{Kind: domain.KindTo, DisplayName: "Bob", Email: "bob@example.org"},
			{Kind: domain.KindCc, Email: "carol@example.net"},
			{Kind: domain.KindBcc, Email: "dave@example.com"},
		},
		Importance: domain.ImportanceNormal,
		MessageID:  "<relay-test@example.com>",
		Subject:    "Relay test",
		Body:       body,
	}
	data, err := mailbuild.Build(msg, mailbuild.Options{Date: time.Date(2024, 1, 2, 3, 4, 5, 0, time.UTC)})
	if err != nil {
		t.Fatalf("mailbuild: %v", err)
	}
	env := smtprelay.Envelope{From: msg.SenderEmail}
	for _, r := range msg.Recipients {
		env.To = append(env.To, r.Email)
	}
	return env, data
}

// transportFor returns a Transport for srv's URL, trusting its certificate.
func transportFor(t *testing.T, srv *smtptest.Server, edit ...func(*smtprelay.Config)) *smtprelay.Transport {
	t.Helper()
	cfg, err := smtprelay.ParseURL(srv.URL())
	if err != nil {
		t.Fatalf("ParseURL(%q): %v", srv.URL(), err)
	}
	cfg.TLSConfig = srv.ClientTLSConfig()
	cfg.HeloName = "client.mailgate.test"
	cfg.Timeout = waitTimeout
	cfg.DataTimeout = waitTimeout
	for _, e := range edit {
		e(&cfg)
	}
	return newTransport(t, cfg)
}

// newTransport returns a Transport for cfg that is closed when the test
// ends, before the relay it talks to, so no idle connection outlives it.
func newTransport(t testing.TB, cfg smtprelay.Config) *smtprelay.Transport {
	t.Helper()
	transport := smtprelay.NewTransport(cfg)
	t.Cleanup(func() {
		if err := transport.Close(); err != nil {
			t.Errorf("Close: %v", err)
		}
	})
	return transport
}

// assertReplies checks one reply per recipient, in order, with the given
// code, text containing wantText, and no possible duplicate.
func assertReplies(t *testing.T, got []domain.RecipientReply, to []string, code int, wantText string) {
	t.Helper()
	if len(got) != len(to) {
		t.Fatalf("got %d replies %+v, want %d", len(got), got, len(to))
	}
	for i, r := range got {
		if r.Email != to[i] || r.Code != code || !strings.Contains(r.Text, wantText) || r.PossibleDuplicate {
			t.Errorf("reply %d = %+v, want {%s %d ...%q... false}", i, r, to[i], code, wantText)
		}
	}
}

func assertReply(t *testing.T, got domain.RecipientReply, email string, code int, wantText string) {
	t.Helper()
	if got.Email != email || got.Code != code || !strings.Contains(got.Text, wantText) || got.PossibleDuplicate {
		t.Errorf("reply = %+v, want {%s %d ...%q... false}", got, email, code, wantText)
	}
}

// assertUnknownOutcome checks the reply of a recipient whose message went
// out without an answer: retried (451) and flagged as a possible duplicate.
func assertUnknownOutcome(t *testing.T, got domain.RecipientReply, email string, wantText string) {
	t.Helper()
	if got.Email != email || got.Code != 451 || !strings.Contains(got.Text, "outcome is unknown") || !strings.Contains(got.Text, wantText) || !got.PossibleDuplicate {
		t.Errorf("reply = %+v, want {%s 451 ...outcome is unknown...%q... true}", got, email, wantText)
	}
}

// assertDelivered checks that every reply is a 250.
func assertDelivered(t *testing.T, got []domain.RecipientReply) {
	t.Helper()
	for _, r := range got {
		if r.Code != 250 || r.PossibleDuplicate {
			t.Errorf("reply %+v, want 250", r)
		}
	}
}

// eventually polls cond until it holds, failing the test after waitTimeout.
func eventually(t *testing.T, what string, cond func() bool) {
	t.Helper()
	for deadline := time.Now().Add(waitTimeout); !cond(); time.Sleep(5 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("%s: not after %v", what, waitTimeout)
		}
	}
}

func TestSendDeliversPlainText(t *testing.T) {
	srv := smtptest.Start(t, smtptest.Options{})
	env, data := buildMessage(t, "Hello\r\n")

	replies := transportFor(t, srv).Send(context.Background(), env, data)

	assertReplies(t, replies, env.To, 250, "2.0.0 OK: queued")
	msgs := srv.WaitForMessages(t, 1, waitTimeout)
	got := msgs[0]
	if got.From != env.From || strings.Join(got.To, ",") != strings.Join(env.To, ",") {
		t.Errorf("envelope = %s -> %v, want %s -> %v", got.From, got.To, env.From, env.To)
	}
	if !bytes.Equal(got.Data, data) {
		t.Errorf("server received\n%q\nwant\n%q", got.Data, data)
	}
	if got.TLS || got.AuthUser != "" {
		t.Errorf("TLS=%v AuthUser=%q, want plain text without AUTH", got.TLS, got.AuthUser)
	}
	if srv.Sessions() != 1 {
		t.Errorf("Sessions() = %d, want 1", srv.Sessions())
	}
}

func TestSendPreservesBytesThroughDotStuffing(t *testing.T) {
	bodies := map[string]string{
		"hostile":           "a\rb\nc\r\n.\r\nd\n.\n",
		"lone dot":          ".",
		"dot lines":         ".\r\n..\r\n...\r\n. \r\n",
		"end of data":       "x\r\n.\r\n\r\n.\r\n",
		"smtp commands":     "\r\n.\r\nQUIT\r\nMAIL FROM:<x@example.com>\r\n",
		"leading dot words": ".hidden\n..double\n",
		"long":              strings.Repeat("line of text with a dot .\n.\n", 2000),
	}
	srv := smtptest.Start(t, smtptest.Options{})
	transport := transportFor(t, srv)
	n := 0
	for name, body := range bodies {
		t.Run(name, func(t *testing.T) {
			env, data := buildMessage(t, body)
			assertReplies(t, transport.Send(context.Background(), env, data), env.To, 250, "")
			n++
			got := srv.WaitForMessages(t, n, waitTimeout)[n-1].Data
			if !bytes.Equal(got, data) {
				t.Errorf("server received\n%q\nwant\n%q", got, data)
			}
			for i, c := range got {
				if c == '\n' && (i == 0 || got[i-1] != '\r') {
					t.Fatalf("bare LF at byte %d", i)
				}
				if c == '\r' && (i+1 == len(got) || got[i+1] != '\n') {
					t.Fatalf("bare CR at byte %d", i)
				}
			}
			if body == bodies["hostile"] && !bytes.Contains(got, []byte("\r\n.\r\nd\r\n.\r\n")) {
				t.Errorf("the lone dot lines did not arrive as they were:\n%q", got)
			}
		})
	}
}

func TestSendSTARTTLS(t *testing.T) {
	tests := []struct {
		name      string
		serverTLS bool
		mode      smtprelay.TLSMode
		wantTLS   bool
	}{
		{"opportunistic upgrades", true, smtprelay.TLSOpportunistic, true},
		{"opportunistic falls back to plain text", false, smtprelay.TLSOpportunistic, false},
		{"required", true, smtprelay.TLSRequired, true},
		{"none ignores the offer", true, smtprelay.TLSNone, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			srv := smtptest.Start(t, smtptest.Options{TLS: tt.serverTLS})
			env, data := buildMessage(t, "secret\r\n")
			transport := transportFor(t, srv, func(c *smtprelay.Config) { c.TLSMode = tt.mode })

			assertReplies(t, transport.Send(context.Background(), env, data), env.To, 250, "2.0.0")
			got := srv.WaitForMessages(t, 1, waitTimeout)[0]
			if got.TLS != tt.wantTLS {
				t.Errorf("TLS = %v, want %v", got.TLS, tt.wantTLS)
			}
			if !bytes.Equal(got.Data, data) {
				t.Error("data changed in transit")
			}
			if srv.Sessions() != 1 {
				t.Errorf("Sessions() = %d, want 1 (no reconnect for the fallback)", srv.Sessions())
			}
		})
	}
}

func TestSendRequiredTLSFailsWithoutSTARTTLS(t *testing.T) {
	srv := smtptest.Start(t, smtptest.Options{})
	env, data := buildMessage(t, "secret\r\n")
	transport := transportFor(t, srv, func(c *smtprelay.Config) { c.TLSMode = smtprelay.TLSRequired })

	replies := transport.Send(context.Background(), env, data)

	assertReplies(t, replies, env.To, 0, "does not offer STARTTLS")
	if n := srv.RcptAttempts("bob@example.org"); n != 0 || len(srv.Messages()) != 0 {
		t.Errorf("the message went out in plain text: %d RCPTs, %d messages", n, len(srv.Messages()))
	}
}

func TestSendRejectsUntrustedCertificate(t *testing.T) {
	for _, implicit := range []bool{false, true} {
		t.Run(fmt.Sprintf("implicit=%v", implicit), func(t *testing.T) {
			srv := smtptest.Start(t, smtptest.Options{TLS: !implicit, ImplicitTLS: implicit})
			env, data := buildMessage(t, "secret\r\n")
			transport := transportFor(t, srv, func(c *smtprelay.Config) { c.TLSConfig = nil })

			assertReplies(t, transport.Send(context.Background(), env, data), env.To, 0, "certificate")
			if len(srv.Messages()) != 0 {
				t.Error("message delivered over an unverified connection")
			}
		})
	}
}

func TestSendImplicitTLS(t *testing.T) {
	srv := smtptest.Start(t, smtptest.Options{ImplicitTLS: true, Username: "relay", Password: "pw"})
	if !strings.HasPrefix(srv.URL(), "smtps://") {
		t.Fatalf("URL() = %q, want smtps://", srv.URL())
	}
	env, data := buildMessage(t, "hi\r\n")

	assertReplies(t, transportFor(t, srv).Send(context.Background(), env, data), env.To, 250, "2.0.0")
	if got := srv.WaitForMessages(t, 1, waitTimeout)[0]; !got.TLS || got.AuthUser != "relay" {
		t.Errorf("TLS=%v AuthUser=%q, want TLS as relay", got.TLS, got.AuthUser)
	}
}

func TestSendAuthenticates(t *testing.T) {
	tests := []struct {
		name       string
		opts       smtptest.Options
		user, pass string
		wantCode   int
		wantText   string
	}{
		{"PLAIN", smtptest.Options{Username: "relay", Password: "s3cret:@"}, "relay", "s3cret:@", 250, "2.0.0"},
		{"LOGIN only", smtptest.Options{Username: "relay", Password: "pw", AuthMechanisms: []string{"LOGIN"}}, "relay", "pw", 250, "2.0.0"},
		{"after STARTTLS", smtptest.Options{Username: "relay", Password: "pw", TLS: true}, "relay", "pw", 250, "2.0.0"},
		// A rejected login is retried (code 0), not bounced: it is the gateway's misconfiguration.
		{"wrong password", smtptest.Options{Username: "relay", Password: "pw"}, "relay", "nope", 0, "check the relay credentials"},
		{"no credentials", smtptest.Options{Username: "relay", Password: "pw"}, "", "", 530, "5.7.0 Authentication required"},
		{"no supported mechanism", smtptest.Options{Username: "relay", Password: "pw", AuthMechanisms: []string{"CRAM-MD5"}}, "relay", "pw", 0, "neither PLAIN nor LOGIN"},
		{"server without AUTH", smtptest.Options{}, "relay", "pw", 0, "does not offer AUTH"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			srv := smtptest.Start(t, tt.opts)
			env, data := buildMessage(t, "hi\r\n")
			transport := transportFor(t, srv, func(c *smtprelay.Config) { c.Username, c.Password = tt.user, tt.pass })

			assertReplies(t, transport.Send(context.Background(), env, data), env.To, tt.wantCode, tt.wantText)
			msgs := srv.Messages()
			if tt.wantCode != 250 {
				if len(msgs) != 0 {
					t.Errorf("message accepted despite failed AUTH")
				}
				return
			}
			if len(msgs) != 1 || msgs[0].AuthUser != tt.user {
				t.Errorf("messages %+v, want one authenticated as %q", msgs, tt.user)
			}
		})
	}
}

func TestSendURLCredentials(t *testing.T) {
	srv := smtptest.Start(t, smtptest.Options{Username: "user@example.com", Password: "p@ss:word/%"})
	env, data := buildMessage(t, "hi\r\n")

	assertReplies(t, transportFor(t, srv).Send(context.Background(), env, data), env.To, 250, "2.0.0")
	if got := srv.WaitForMessages(t, 1, waitTimeout)[0].AuthUser; got != "user@example.com" {
		t.Errorf("AuthUser = %q", got)
	}
}

func TestSendPerRecipientReplies(t *testing.T) {
	srv := smtptest.Start(t, smtptest.Options{
		Rcpt: func(rcpt string, _ int) *smtp.SMTPError {
			switch rcpt {
			case "carol@example.net":
				return &smtp.SMTPError{Code: 450, EnhancedCode: smtp.EnhancedCode{4, 2, 1}, Message: "Mailbox busy"}
			case "dave@example.com":
				return &smtp.SMTPError{Code: 550, EnhancedCode: smtp.EnhancedCode{5, 1, 1}, Message: "No such user"}
			}
			return nil
		},
	})
	env, data := buildMessage(t, "hi\r\n")

	replies := transportFor(t, srv).Send(context.Background(), env, data)

	if len(replies) != 3 {
		t.Fatalf("replies = %+v", replies)
	}
	assertReply(t, replies[0], "bob@example.org", 250, "2.0.0 OK: queued")
	assertReply(t, replies[1], "carol@example.net", 450, "4.2.1 Mailbox busy")
	assertReply(t, replies[2], "dave@example.com", 550, "5.1.1 No such user")
	got := srv.WaitForMessages(t, 1, waitTimeout)[0]
	if strings.Join(got.To, ",") != "bob@example.org" {
		t.Errorf("DATA went to %v, want only the accepted recipient", got.To)
	}
}

func TestSendAllRecipientsRefusedSkipsData(t *testing.T) {
	srv := smtptest.Start(t, smtptest.Options{
		Rcpt: func(string, int) *smtp.SMTPError {
			return &smtp.SMTPError{Code: 550, EnhancedCode: smtp.EnhancedCode{5, 7, 1}, Message: "Relaying denied"}
		},
	})
	env, data := buildMessage(t, "hi\r\n")

	assertReplies(t, transportFor(t, srv).Send(context.Background(), env, data), env.To, 550, "5.7.1 Relaying denied")
	if srv.DataAttempts() != 0 {
		t.Errorf("DATA sent %d times with no accepted recipient", srv.DataAttempts())
	}
}

func TestSendDataRejected(t *testing.T) {
	srv := smtptest.Start(t, smtptest.Options{
		Rcpt: func(rcpt string, _ int) *smtp.SMTPError {
			if rcpt == "dave@example.com" {
				return &smtp.SMTPError{Code: 550, EnhancedCode: smtp.EnhancedCode{5, 1, 1}, Message: "No such user"}
			}
			return nil
		},
		Data: func(int) *smtp.SMTPError {
			return &smtp.SMTPError{Code: 451, EnhancedCode: smtp.EnhancedCode{4, 3, 0}, Message: "Try again later"}
		},
	})
	env, data := buildMessage(t, "hi\r\n")

	replies := transportFor(t, srv).Send(context.Background(), env, data)

	assertReply(t, replies[0], "bob@example.org", 451, "4.3.0 Try again later")
	assertReply(t, replies[1], "carol@example.net", 451, "4.3.0 Try again later")
	assertReply(t, replies[2], "dave@example.com", 550, "5.1.1 No such user")
	if len(srv.Messages()) != 0 {
		t.Error("server recorded a rejected message")
	}
}

func TestSendMailFromRejected(t *testing.T) {
	srv := smtptest.Start(t, smtptest.Options{
		Mail: func(string, int) *smtp.SMTPError {
			return &smtp.SMTPError{Code: 550, EnhancedCode: smtp.EnhancedCode{5, 7, 1}, Message: "Sender not allowed"}
		},
	})
	env, data := buildMessage(t, "hi\r\n")

	assertReplies(t, transportFor(t, srv).Send(context.Background(), env, data), env.To, 550, "5.7.1 Sender not allowed")
	if n := srv.RcptAttempts("bob@example.org"); n != 0 {
		t.Errorf("RCPT sent %d times after MAIL FROM was refused", n)
	}
}

func TestSendRcpt421EndsTheTransaction(t *testing.T) {
	for _, pipelining := range []bool{false, true} {
		t.Run(fmt.Sprintf("pipelining=%v", pipelining), func(t *testing.T) {
			srv := smtptest.Start(t, smtptest.Options{
				NoPipelining: !pipelining,
				Rcpt: func(rcpt string, attempt int) *smtp.SMTPError {
					if rcpt == "carol@example.net" && attempt == 1 {
						return &smtp.SMTPError{Code: 421, EnhancedCode: smtp.EnhancedCode{4, 3, 2}, Message: "Shutting down"}
					}
					return nil
				},
			})
			env, data := buildMessage(t, "hi\r\n")

			transport := transportFor(t, srv)

			assertReplies(t, transport.Send(context.Background(), env, data), env.To, 421, "4.3.2 Shutting down")
			if srv.DataAttempts() != 0 {
				t.Error("the message was sent after 421")
			}
			// Pipelined, the later RCPT was on its way before the 421 came.
			if !pipelining && srv.RcptAttempts("dave@example.com") != 0 {
				t.Error("the transaction went on after 421")
			}
			// The connection is not reused after a 421, even by a relay that forgot
			// to close it.
			assertReplies(t, transport.Send(context.Background(), env, data), env.To, 250, "2.0.0")
			if srv.Sessions() != 2 {
				t.Errorf("Sessions() = %d, want 2", srv.Sessions())
			}
		})
	}
}

func TestSendRcptTooManyRecipientsDefersTheRest(t *testing.T) {
	srv := smtptest.Start(t, smtptest.Options{
		Rcpt: func(rcpt string, _ int) *smtp.SMTPError {
			switch rcpt {
			case "carol@example.net":
				return &smtp.SMTPError{Code: 452, EnhancedCode: smtp.EnhancedCode{4, 5, 3}, Message: "Too many recipients"}
			case "dave@example.com":
				// RFC 821's code for the same condition, still sent by some relays.
				return &smtp.SMTPError{Code: 552, EnhancedCode: smtp.EnhancedCode{5, 5, 3}, Message: "Too many recipients"}
			}
			return nil
		},
	})
	env, data := buildMessage(t, "hi\r\n")
	transport := transportFor(t, srv)

	replies := transport.Send(context.Background(), env, data)

	assertReply(t, replies[0], "bob@example.org", 250, "2.0.0")
	assertReply(t, replies[1], "carol@example.net", 452, "4.5.3 Too many recipients")
	assertReply(t, replies[2], "dave@example.com", 452, "5.5.3 Too many recipients")
	for _, r := range replies[1:] {
		if domain.ClassifyReply(r.Code) != domain.OutcomeDeferred {
			t.Errorf("%+v is not retried", r)
		}
	}
	if got := srv.WaitForMessages(t, 1, waitTimeout)[0].To; strings.Join(got, ",") != "bob@example.org" {
		t.Errorf("DATA went to %v, want only the accepted recipient", got)
	}
	// The deferred recipients' retry goes over the same connection.
	assertReplies(t, transport.Send(context.Background(), smtprelay.Envelope{From: env.From, To: env.To[:1]}, data), env.To[:1], 250, "2.0.0")
	if srv.Sessions() != 1 {
		t.Errorf("Sessions() = %d, want 1", srv.Sessions())
	}
}

func TestSendConnectionLostWhileSendingDataIsNotDuplicate(t *testing.T) {
	cfg := fakeRelay(t, func(c *textproto.Conn) {
		_ = c.PrintfLine("220 fake ESMTP")
		for {
			line, err := c.ReadLine()
			if err != nil {
				return
			}
			if strings.EqualFold(line, "DATA") {
				_ = c.PrintfLine("354 go ahead")
				return // closes the connection with the message unread: a reset
			}
			_ = c.PrintfLine("250 ok")
		}
	})
	cfg.TLSMode = smtprelay.TLSNone
	env := smtprelay.Envelope{From: "a@example.com", To: []string{"b@example.com"}}
	// Far more than the socket buffers hold, so writing fails before the final dot.
	data := bytes.Repeat([]byte(strings.Repeat("x", 998)+"\r\n"), 16<<10)

	replies := newTransport(t, cfg).Send(context.Background(), env, data)

	assertReplies(t, replies, env.To, 0, "sending the message")
}

func TestSendConnectionDroppedAfterData(t *testing.T) {
	srv := smtptest.Start(t, smtptest.Options{DropAfterData: func(attempt int) bool { return attempt == 1 }})
	env, data := buildMessage(t, "hi\r\n")
	transport := transportFor(t, srv)

	for i, r := range transport.Send(context.Background(), env, data) {
		assertUnknownOutcome(t, r, env.To[i], "EOF")
	}
	if domain.ClassifyReply(451) != domain.OutcomeDeferred {
		t.Error("451 is not retried")
	}

	// The retry goes through on a new connection: attempt 2 is not dropped.
	assertReplies(t, transport.Send(context.Background(), env, data), env.To, 250, "2.0.0")
	if srv.DataAttempts() != 2 || len(srv.Messages()) != 1 || srv.Sessions() != 2 {
		t.Errorf("DataAttempts=%d messages=%d sessions=%d, want 2, 1 and 2", srv.DataAttempts(), len(srv.Messages()), srv.Sessions())
	}
}

func TestSendDropAfterDataKeepsRefusedReplies(t *testing.T) {
	srv := smtptest.Start(t, smtptest.Options{
		Rcpt: func(rcpt string, _ int) *smtp.SMTPError {
			if rcpt == "dave@example.com" {
				return &smtp.SMTPError{Code: 550, EnhancedCode: smtp.EnhancedCode{5, 1, 1}, Message: "No such user"}
			}
			return nil
		},
		DropAfterData: func(int) bool { return true },
	})
	env, data := buildMessage(t, "hi\r\n")

	replies := transportFor(t, srv).Send(context.Background(), env, data)

	assertUnknownOutcome(t, replies[0], "bob@example.org", "")
	assertUnknownOutcome(t, replies[1], "carol@example.net", "")
	assertReply(t, replies[2], "dave@example.com", 550, "No such user")
}

func TestSendConnectionRefused(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().(*net.TCPAddr)
	ln.Close()
	env, data := buildMessage(t, "hi\r\n")
	transport := newTransport(t, smtprelay.Config{Host: "127.0.0.1", Port: fmt.Sprint(addr.Port), Timeout: waitTimeout})

	assertReplies(t, transport.Send(context.Background(), env, data), env.To, 0, "refused")
}

func TestSendNoRecipients(t *testing.T) {
	srv := smtptest.Start(t, smtptest.Options{})
	replies := transportFor(t, srv).Send(context.Background(), smtprelay.Envelope{From: "a@example.com"}, []byte("x\r\n"))
	if len(replies) != 0 || srv.Sessions() != 0 {
		t.Errorf("replies %+v, %d sessions; want neither", replies, srv.Sessions())
	}
}

func TestSendKeepsRecipientsAsGiven(t *testing.T) {
	srv := smtptest.Start(t, smtptest.Options{})
	_, data := buildMessage(t, "hi\r\n")
	env := smtprelay.Envelope{To: []string{"Bob@Example.ORG", "jörg@bücher.example", "bob@example.org"}}

	replies := transportFor(t, srv).Send(context.Background(), env, data)

	assertReplies(t, replies, env.To, 250, "2.0.0")
	got := srv.WaitForMessages(t, 1, waitTimeout)[0]
	if got.From != "" || strings.Join(got.To, ",") != strings.Join(env.To, ",") {
		t.Errorf("envelope %q -> %q, want null sender -> %q", got.From, got.To, env.To)
	}
}

func TestSendConcurrently(t *testing.T) {
	srv := smtptest.Start(t, smtptest.Options{TLS: true, Username: "relay", Password: "pw"})
	transport := transportFor(t, srv)
	env, data := buildMessage(t, "hi\r\n")
	var wg sync.WaitGroup
	for range 8 {
		wg.Go(func() {
			for _, r := range transport.Send(context.Background(), env, data) {
				if r.Code != 250 {
					t.Errorf("reply %+v", r)
				}
			}
		})
	}
	wg.Wait()
	srv.WaitForMessages(t, 8, waitTimeout)
}

// fakeRelay is a hand-written server for what smtptest cannot script: bad
// greetings, silence and protocol violations. handle runs per connection.
func fakeRelay(t *testing.T, handle func(c *textproto.Conn)) smtprelay.Config {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	wg.Go(func() {
		for {
			conn, err := ln.Accept()
			if err != nil {
				return
			}
			wg.Go(func() {
				defer conn.Close()
				_ = conn.SetDeadline(time.Now().Add(waitTimeout))
				handle(textproto.NewConn(conn))
			})
		}
	})
	t.Cleanup(func() {
		ln.Close()
		wg.Wait()
	})
	host, port, _ := net.SplitHostPort(ln.Addr().String())
	return smtprelay.Config{Host: host, Port: port, HeloName: "client.mailgate.test", Timeout: waitTimeout, DataTimeout: waitTimeout}
}

// silent reads until the client goes away, never answering.
func silent(c *textproto.Conn) {
	for {
		if _, err := c.ReadLine(); err != nil {
			return
		}
	}
}

func TestSendHonoursContext(t *testing.T) {
	cfg := fakeRelay(t, silent)
	env, data := buildMessage(t, "hi\r\n")
	ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
	defer cancel()

	start := time.Now()
	replies := newTransport(t, cfg).Send(ctx, env, data)

	if elapsed := time.Since(start); elapsed > 2*time.Second {
		t.Errorf("Send took %v after the context ended", elapsed)
	}
	assertReplies(t, replies, env.To, 0, "deadline exceeded")
}

func TestSendCancelledAfterData(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	cfg := fakeRelay(t, func(c *textproto.Conn) {
		scriptedSession(c, script{afterData: cancel})
	})
	env, data := buildMessage(t, "hi\r\n")

	for i, r := range newTransport(t, cfg).Send(ctx, env, data) {
		assertUnknownOutcome(t, r, env.To[i], "cancelled")
	}
}

func TestSendAlreadyCancelled(t *testing.T) {
	srv := smtptest.Start(t, smtptest.Options{})
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	env, data := buildMessage(t, "hi\r\n")

	assertReplies(t, transportFor(t, srv).Send(ctx, env, data), env.To, 0, "cancel")
	if len(srv.Messages()) != 0 {
		t.Error("message sent with a cancelled context")
	}
}

func TestSendTimesOutEachStep(t *testing.T) {
	cfg := fakeRelay(t, silent)
	cfg.Timeout = 150 * time.Millisecond
	env, data := buildMessage(t, "hi\r\n")
	for _, mode := range []smtprelay.TLSMode{smtprelay.TLSOpportunistic, smtprelay.TLSNone} {
		t.Run(mode.String(), func(t *testing.T) {
			cfg.TLSMode = mode
			start := time.Now()
			replies := newTransport(t, cfg).Send(context.Background(), env, data)
			if elapsed := time.Since(start); elapsed > 2*time.Second {
				t.Errorf("Send took %v with a 150ms timeout", elapsed)
			}
			assertReplies(t, replies, env.To, 0, "timeout")
		})
	}
}

func TestSendGreetingRefused(t *testing.T) {
	tests := []struct {
		greeting string
		code     int
		// quit says whether the client should still say QUIT: RFC 5321
		// 3.1 has a server that greets with 554 wait for it, while 421
		// closes the connection.
		quit bool
	}{
		{"421 4.3.2 Too busy, come back later", 421, false},
		{"554 5.7.1 No mail from your network", 554, true},
	}
	for _, tt := range tests {
		var mu sync.Mutex
		var commands []string
		cfg := fakeRelay(t, func(c *textproto.Conn) {
			_ = c.PrintfLine("%s", tt.greeting)
			for {
				line, err := c.ReadLine()
				if err != nil {
					return
				}
				mu.Lock()
				commands = append(commands, line)
				mu.Unlock()
				_ = c.PrintfLine("221 bye")
			}
		})
		env, data := buildMessage(t, "hi\r\n")
		for _, mode := range []smtprelay.TLSMode{smtprelay.TLSOpportunistic, smtprelay.TLSNone} {
			t.Run(fmt.Sprintf("%d/%v", tt.code, mode), func(t *testing.T) {
				cfg.TLSMode = mode
				_, text, _ := strings.Cut(tt.greeting, " ")
				assertReplies(t, newTransport(t, cfg).Send(context.Background(), env, data), env.To, tt.code, text)
			})
		}
		mu.Lock()
		if want := map[bool][]string{true: {"QUIT", "QUIT"}}[tt.quit]; !slices.Equal(commands, want) {
			t.Errorf("after greeting %d the client sent %q, want %q", tt.code, commands, want)
		}
		mu.Unlock()
	}
}

func TestSendRefusesDataInjectedBeforeTLS(t *testing.T) {
	cfg := fakeRelay(t, func(c *textproto.Conn) {
		_ = c.PrintfLine("220 fake ESMTP")
		_, _ = c.ReadLine() // EHLO
		_ = c.PrintfLine("250-fake\r\n250 STARTTLS")
		_, _ = c.ReadLine() // STARTTLS
		// One write, so the injected reply sits in the client's buffer.
		_, _ = c.W.WriteString("220 go ahead\r\n250 injected\r\n")
		_ = c.W.Flush()
		silent(c)
	})
	env, data := buildMessage(t, "hi\r\n")

	assertReplies(t, newTransport(t, cfg).Send(context.Background(), env, data), env.To, 0, "before the TLS handshake")
}

func TestSendOpportunisticContinuesAfterSTARTTLSRefusal(t *testing.T) {
	var mu sync.Mutex
	var commands []string
	cfg := fakeRelay(t, func(c *textproto.Conn) {
		scriptedSession(c, script{record: func(cmd string) {
			mu.Lock()
			defer mu.Unlock()
			commands = append(commands, cmd)
		}})
	})
	env, data := buildMessage(t, "hi\r\n")

	transport := newTransport(t, cfg)
	assertReplies(t, transport.Send(context.Background(), env, data), env.To, 250, "2.0.0 queued as 42")
	if err := transport.Close(); err != nil { // says QUIT on the pooled connection
		t.Fatal(err)
	}

	mu.Lock()
	defer mu.Unlock()
	want := []string{"EHLO client.mailgate.test", "STARTTLS", "MAIL", "RCPT", "RCPT", "RCPT", "DATA", "QUIT"}
	if len(commands) != len(want) {
		t.Fatalf("commands %q, want %q", commands, want)
	}
	for i := range want {
		if !strings.HasPrefix(commands[i], want[i]) {
			t.Errorf("command %d = %q, want %q...", i, commands[i], want[i])
		}
	}
}

// script configures scriptedSession.
type script struct {
	// record, when set, sees every command line.
	record func(string)
	// afterData, when set, runs instead of replying to the message.
	afterData func()
	// replies overrides the reply to a command verb, such as "DATA"; ""
	// leaves the command unanswered.
	replies map[string]string
	// rcpt, when set, overrides the reply to a RCPT TO line unless it
	// returns "".
	rcpt func(line string) string
	// pipelining offers PIPELINING in the EHLO reply.
	pipelining bool
}

// scriptedSession plays a minimal server that offers STARTTLS but refuses
// it and accepts everything else, unless s says otherwise.
func scriptedSession(c *textproto.Conn, s script) {
	_ = c.PrintfLine("220 fake ESMTP")
	for {
		line, err := c.ReadLine()
		if err != nil {
			return
		}
		if s.record != nil {
			s.record(line)
		}
		cmd := strings.ToUpper(strings.SplitN(line, " ", 2)[0])
		if reply, ok := s.replies[cmd]; ok {
			if reply != "" {
				_ = c.PrintfLine("%s", reply)
			}
			continue
		}
		if cmd == "RCPT" && s.rcpt != nil {
			if reply := s.rcpt(line); reply != "" {
				_ = c.PrintfLine("%s", reply)
				continue
			}
		}
		switch cmd {
		case "EHLO":
			if s.pipelining {
				_ = c.PrintfLine("250-fake\r\n250-PIPELINING\r\n250-8BITMIME\r\n250 STARTTLS")
				continue
			}
			_ = c.PrintfLine("250-fake\r\n250-8BITMIME\r\n250 STARTTLS")
		case "STARTTLS":
			_ = c.PrintfLine("454 4.7.0 TLS not available")
		case "HELO", "MAIL", "RCPT", "RSET", "NOOP":
			_ = c.PrintfLine("250 2.1.0 ok")
		case "DATA":
			_ = c.PrintfLine("354 go ahead")
			if _, err := c.ReadDotBytes(); err != nil {
				return
			}
			if s.afterData != nil {
				s.afterData()
				silent(c)
				return
			}
			_ = c.PrintfLine("250 2.0.0 queued as 42")
		case "QUIT":
			_ = c.PrintfLine("221 2.0.0 bye")
			return
		default:
			_ = c.PrintfLine("502 5.5.1 unknown")
		}
	}
}

func TestSendDataCommandRefused(t *testing.T) {
	cfg := fakeRelay(t, func(c *textproto.Conn) {
		scriptedSession(c, script{replies: map[string]string{"DATA": "554 5.5.1 No valid recipients"}})
	})
	env, data := buildMessage(t, "hi\r\n")

	assertReplies(t, newTransport(t, cfg).Send(context.Background(), env, data), env.To, 554, "5.5.1 No valid recipients")
}

func TestSendFallsBackToHELO(t *testing.T) {
	var mu sync.Mutex
	var commands []string
	cfg := fakeRelay(t, func(c *textproto.Conn) {
		scriptedSession(c, script{
			record: func(cmd string) {
				mu.Lock()
				defer mu.Unlock()
				commands = append(commands, cmd)
			},
			replies: map[string]string{"EHLO": "502 5.5.1 EHLO not implemented"},
		})
	})
	env, data := buildMessage(t, "hi\r\n")

	assertReplies(t, newTransport(t, cfg).Send(context.Background(), env, data), env.To, 250, "queued as 42")
	mu.Lock()
	defer mu.Unlock()
	if !slices.Contains(commands, "HELO client.mailgate.test") || slices.Contains(commands, "STARTTLS") {
		t.Errorf("commands %q, want HELO and no STARTTLS", commands)
	}
}

func TestSendSkipsRecipientWithLineBreak(t *testing.T) {
	srv := smtptest.Start(t, smtptest.Options{})
	_, data := buildMessage(t, "hi\r\n")
	env := smtprelay.Envelope{From: "a@example.com", To: []string{"b@example.com", "c@example.com\r\nRCPT TO:<evil@example.com>", "d@example.com"}}

	replies := transportFor(t, srv).Send(context.Background(), env, data)

	assertReply(t, replies[0], env.To[0], 250, "2.0.0")
	assertReply(t, replies[1], env.To[1], 0, "line break")
	assertReply(t, replies[2], env.To[2], 250, "2.0.0")
	if got := srv.WaitForMessages(t, 1, waitTimeout)[0].To; strings.Join(got, ",") != "b@example.com,d@example.com" {
		t.Errorf("RCPT TO %q", got)
	}
	if srv.RcptAttempts("evil@example.com") != 0 {
		t.Error("command injected through a recipient address")
	}
}

func TestSendReportsUnknownOutcomeWhenReplyTimesOut(t *testing.T) {
	cfg := fakeRelay(t, func(c *textproto.Conn) { scriptedSession(c, script{afterData: func() {}}) })
	cfg.DataTimeout = 200 * time.Millisecond
	env, data := buildMessage(t, "hi\r\n")

	for i, r := range newTransport(t, cfg).Send(context.Background(), env, data) {
		assertUnknownOutcome(t, r, env.To[i], "timeout")
	}
}

func TestSendFailureTextNamesTheStep(t *testing.T) {
	cfg := fakeRelay(t, func(c *textproto.Conn) {
		_ = c.PrintfLine("220 fake ESMTP")
		_, _ = c.ReadLine()
		_ = c.PrintfLine("250 fake")
		_, _ = c.ReadLine() // MAIL, then hang up
	})
	cfg.TLSMode = smtprelay.TLSNone
	env, data := buildMessage(t, "hi\r\n")

	replies := newTransport(t, cfg).Send(context.Background(), env, data)

	assertReplies(t, replies, env.To, 0, "MAIL FROM")
}
