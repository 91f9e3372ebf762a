package smtprelay_test

import (
	"context"
	"net"
	"net/textproto"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/emersion/go-smtp"

	"github.com/mailgate/mailgate/adapters/smtprelay"
	"github.com/mailgate/mailgate/adapters/smtprelay/smtptest"
	"github.com/mailgate/mailgate/domain"
)

// modes are the two ways a transaction can go: lock-step when the relay
// does not offer PIPELINING, pipelined when it does.
var modes = []struct {
	name       string
	pipelining bool
}{{"lock-step", false}, {"pipelined", true}}

// configFor returns a relay configuration for addr, as transportFor does.
func configFor(t testing.TB, addr string) smtprelay.Config {
	t.Helper()
	host, port, err := net.SplitHostPort(addr)
	if err != nil {
		t.Fatal(err)
	}
	return smtprelay.Config{Host: host, Port: port, HeloName: "client.mailgate.test", Timeout: waitTimeout, DataTimeout: waitTimeout}
}

// wantReply is what one recipient's reply must look like.
type wantReply struct {
	code      int
	text      string
	duplicate bool
}

func refuse(code int, enhanced smtp.EnhancedCode, msg string) *smtp.SMTPError {
	return &smtp.SMTPError{Code: code, EnhancedCode: enhanced, Message: msg}
}

func TestPipelinedAndLockStepRepliesMatch(t *testing.T) {
	ok := wantReply{250, "2.0.0", false}
	tests := []struct {
		name string
		opts smtptest.Options
		want []wantReply // bob, carol, dave
		// sessions is how many connections the two Sends take.
		sessions int
	}{
		{name: "all accepted", want: []wantReply{ok, ok, ok}, sessions: 1},
		{
			name: "one RCPT 550",
			opts: smtptest.Options{Rcpt: func(rcpt string, attempt int) *smtp.SMTPError {
				if rcpt == "dave@example.com" && attempt == 1 {
					return refuse(550, smtp.EnhancedCode{5, 1, 1}, "No such user")
				}
				return nil
			}},
			want:     []wantReply{ok, ok, {550, "5.1.1 No such user", false}},
			sessions: 1,
		},
		{
			name: "one RCPT 451",
			opts: smtptest.Options{Rcpt: func(rcpt string, attempt int) *smtp.SMTPError {
				if rcpt == "carol@example.net" && attempt == 1 {
					return refuse(451, smtp.EnhancedCode{4, 3, 0}, "Greylisted")
				}
				return nil
			}},
			want:     []wantReply{ok, {451, "4.3.0 Greylisted", false}, ok},
			sessions: 1,
		},
		{
			name: "all refused",
			opts: smtptest.Options{Rcpt: func(rcpt string, attempt int) *smtp.SMTPError {
				if attempt == 1 {
					return refuse(550, smtp.EnhancedCode{5, 7, 1}, "Relaying denied")
				}
				return nil
			}},
			want: []wantReply{{550, "5.7.1 Relaying denied", false}, {550, "5.7.1 Relaying denied", false}, {550, "5.7.1 Relaying denied", false}},
			// The next Send only works on the same connection if the
			// transaction left open was reset.
			sessions: 1,
		},
		{
			name: "MAIL refused",
			opts: smtptest.Options{Mail: func(_ string, attempt int) *smtp.SMTPError {
				if attempt == 1 {
					return refuse(550, smtp.EnhancedCode{5, 7, 1}, "Sender not allowed")
				}
				return nil
			}},
			want:     []wantReply{{550, "5.7.1 Sender not allowed", false}, {550, "5.7.1 Sender not allowed", false}, {550, "5.7.1 Sender not allowed", false}},
			sessions: 1,
		},
		{
			name: "message refused",
			opts: smtptest.Options{Data: func(attempt int) *smtp.SMTPError {
				if attempt == 1 {
					return refuse(554, smtp.EnhancedCode{5, 6, 0}, "Content rejected")
				}
				return nil
			}},
			want:     []wantReply{{554, "5.6.0 Content rejected", false}, {554, "5.6.0 Content rejected", false}, {554, "5.6.0 Content rejected", false}},
			sessions: 1,
		},
		{
			name: "connection closed after the dot",
			opts: smtptest.Options{DropAfterData: func(attempt int) bool { return attempt == 1 }},
			want: []wantReply{{451, "outcome is unknown", true}, {451, "outcome is unknown", true}, {451, "outcome is unknown", true}},
			// The broken connection is replaced.
			sessions: 2,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var got [2][]domain.RecipientReply
			for m, mode := range modes {
				t.Run(mode.name, func(t *testing.T) {
					opts := tt.opts
					opts.NoPipelining = !mode.pipelining
					srv := smtptest.Start(t, opts)
					transport := transportFor(t, srv)
					env, data := buildMessage(t, "hi\r\n")

					got[m] = transport.Send(context.Background(), env, data)
					if len(got[m]) != len(tt.want) {
						t.Fatalf("replies %+v, want %d", got[m], len(tt.want))
					}
					for i, w := range tt.want {
						r := got[m][i]
						if r.Email != env.To[i] || r.Code != w.code || !strings.Contains(r.Text, w.text) || r.PossibleDuplicate != w.duplicate {
							t.Errorf("reply %d = %+v, want {%s %d ...%q... %v}", i, r, env.To[i], w.code, w.text, w.duplicate)
						}
					}
					// Whatever happened, the next message goes through, over
					// the same connection unless it broke.
					assertReplies(t, transport.Send(context.Background(), env, data), env.To, 250, "2.0.0")
					if srv.Sessions() != tt.sessions {
						t.Errorf("Sessions() = %d, want %d", srv.Sessions(), tt.sessions)
					}
				})
			}
			if !slices.Equal(got[0], got[1]) {
				t.Errorf("lock-step replies\n%+v\ndiffer from pipelined\n%+v", got[0], got[1])
			}
		})
	}
}

func TestSendDataCommandRefusedKeepsRecipientReplies(t *testing.T) {
	tests := []struct {
		name   string
		script script
		want   []wantReply // bob, carol, dave
	}{
		{
			name: "DATA refused with one recipient refused",
			script: script{
				rcpt: func(line string) string {
					if strings.Contains(line, "dave@") {
						return "550 5.1.1 No such user"
					}
					return ""
				},
				replies: map[string]string{"DATA": "554 5.3.0 Not now"},
			},
			want: []wantReply{{554, "5.3.0 Not now", false}, {554, "5.3.0 Not now", false}, {550, "5.1.1 No such user", false}},
		},
		{
			// RFC 2920 3.1: a client must not assume DATA is refused just
			// because every RCPT was; this relay answers 354 anyway, and
			// only a lone dot gets the session back in step.
			name:   "DATA accepted with every recipient refused",
			script: script{rcpt: func(string) string { return "550 5.1.1 No such user" }},
			want:   []wantReply{{550, "5.1.1 No such user", false}, {550, "5.1.1 No such user", false}, {550, "5.1.1 No such user", false}},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var got [2][]domain.RecipientReply
			for m, mode := range modes {
				t.Run(mode.name, func(t *testing.T) {
					var mu sync.Mutex
					var commands []string
					s := tt.script
					s.pipelining = mode.pipelining
					s.record = func(line string) {
						mu.Lock()
						defer mu.Unlock()
						commands = append(commands, strings.ToUpper(strings.SplitN(line, " ", 2)[0]))
					}
					var relay countingRelay
					cfg := relay.start(t, func(int) script { return s })
					transport := newTransport(t, cfg)
					env, data := buildMessage(t, "hi\r\n")

					got[m] = transport.Send(context.Background(), env, data)
					for i, w := range tt.want {
						r := got[m][i]
						if r.Email != env.To[i] || r.Code != w.code || !strings.Contains(r.Text, w.text) || r.PossibleDuplicate != w.duplicate {
							t.Errorf("reply %d = %+v, want {%s %d ...%q... %v}", i, r, env.To[i], w.code, w.text, w.duplicate)
						}
					}
					// The session is still in step: the next Send, over the
					// same connection, gets the replies it asks for.
					again := transport.Send(context.Background(), env, data)
					if !slices.Equal(again, got[m]) {
						t.Errorf("second Send %+v, want %+v again", again, got[m])
					}
					if n := relay.conns.Load(); n != 1 {
						t.Errorf("%d connections, want 1", n)
					}
					mu.Lock()
					defer mu.Unlock()
					if !slices.Contains(commands, "RSET") {
						t.Errorf("commands %q: the open transaction was never reset", commands)
					}
				})
			}
			if !slices.Equal(got[0], got[1]) {
				t.Errorf("lock-step replies\n%+v\ndiffer from pipelined\n%+v", got[0], got[1])
			}
		})
	}
}

func TestPipeliningCutsRoundTrips(t *testing.T) {
	tests := []struct {
		name       string
		pipelining bool
		edit       func(*smtprelay.Config)
		// want is the round trips of one message on a warm connection: its
		// three recipients cost nothing extra when pipelined.
		want int
	}{
		{"lock-step", false, nil, 6}, // MAIL, RCPT ×3, DATA, final reply
		{"pipelined", true, nil, 2},  // envelope and DATA, final reply
		{"pipelined, idle check", true, func(c *smtprelay.Config) { c.CheckAfterIdle = -1 }, 3}, // NOOP first
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			srv := smtptest.Start(t, smtptest.Options{NoPipelining: !tt.pipelining})
			proxy := smtptest.StartProxy(t, srv.Addr(), smtptest.ProxyOptions{})
			cfg := configFor(t, proxy.Addr())
			if tt.edit != nil {
				tt.edit(&cfg)
			}
			transport := newTransport(t, cfg)
			env, data := buildMessage(t, "hi\r\n")

			assertReplies(t, transport.Send(context.Background(), env, data), env.To, 250, "2.0.0")
			for range 3 {
				before := proxy.ReplyBursts()
				assertReplies(t, transport.Send(context.Background(), env, data), env.To, 250, "2.0.0")
				if got := proxy.ReplyBursts() - before; got != tt.want {
					t.Errorf("%d round trips for a message, want %d", got, tt.want)
				}
			}
			if srv.Sessions() != 1 {
				t.Errorf("Sessions() = %d, want 1", srv.Sessions())
			}
		})
	}
}

func TestSendFaultAfterDotIsPossibleDuplicate(t *testing.T) {
	faults := map[string]smtptest.Fault{
		"close":         smtptest.FaultClose,
		"reset":         smtptest.FaultReset,
		"swallow reply": smtptest.FaultSwallowReply,
	}
	for name, fault := range faults {
		for _, mode := range modes {
			t.Run(name+"/"+mode.name, func(t *testing.T) {
				srv := smtptest.Start(t, smtptest.Options{NoPipelining: !mode.pipelining})
				proxy := smtptest.StartProxy(t, srv.Addr(), smtptest.ProxyOptions{
					AfterDot: func(message int) smtptest.Fault {
						if message == 1 {
							return fault
						}
						return smtptest.FaultNone
					},
				})
				cfg := configFor(t, proxy.Addr())
				cfg.DataTimeout = 300 * time.Millisecond // the swallowed reply
				transport := newTransport(t, cfg)
				env, data := buildMessage(t, "hi\r\n")

				for i, r := range transport.Send(context.Background(), env, data) {
					assertUnknownOutcome(t, r, env.To[i], "")
				}
				assertReplies(t, transport.Send(context.Background(), env, data), env.To, 250, "2.0.0")
				// The relay had the first message: the duplicate the flag warns of.
				srv.WaitForMessages(t, 2, waitTimeout)
				if srv.Sessions() != 2 || proxy.FinalDots() != 2 {
					t.Errorf("Sessions()=%d FinalDots()=%d, want 2 each", srv.Sessions(), proxy.FinalDots())
				}
			})
		}
	}
}

func TestSendRetriesPooledConnectionLostBeforeAnyReply(t *testing.T) {
	for _, mode := range modes {
		t.Run(mode.name, func(t *testing.T) {
			srv := smtptest.Start(t, smtptest.Options{NoPipelining: !mode.pipelining})
			transport := transportFor(t, srv, func(c *smtprelay.Config) { c.CheckAfterIdle = time.Hour })
			env, data := buildMessage(t, "hi\r\n")

			assertReplies(t, transport.Send(context.Background(), env, data), env.To, 250, "2.0.0")
			if n := srv.DropConnections(); n != 1 {
				t.Fatalf("DropConnections() = %d, want the pooled connection", n)
			}
			// No NOOP is due, so the first try finds the connection gone;
			// the relay answered nothing, so the retry is safe.
			assertReplies(t, transport.Send(context.Background(), env, data), env.To, 250, "2.0.0")
			if srv.Sessions() != 2 || srv.DataAttempts() != 2 {
				t.Errorf("Sessions()=%d DataAttempts()=%d, want 2 each", srv.Sessions(), srv.DataAttempts())
			}
		})
	}
}

func TestMaxTransactionTime(t *testing.T) {
	base := smtprelay.Config{Timeout: time.Second, DataTimeout: 10 * time.Second, TLSMode: smtprelay.TLSNone}
	// NOOP 1 + lost try 1 + connect 1 + greeting 1 + EHLO/HELO 2 +
	// MAIL 1 + RCPT 3 + DATA 1 + one chunk and the dot 2 + reply 10 + RSET 1 + QUIT 1.
	if got, want := base.MaxTransactionTime(3, 100), 25*time.Second; got != want {
		t.Errorf("plain: %v, want %v", got, want)
	}
	// 200 KiB is four chunks: two more steps than one.
	if got, want := base.MaxTransactionTime(3, 200<<10), 28*time.Second; got != want {
		t.Errorf("200 KiB: %v, want %v", got, want)
	}
	secured := base
	secured.TLSMode = smtprelay.TLSRequired
	secured.Username = "u"
	// STARTTLS 1 + handshake 1 + EHLO/HELO 2 + AUTH 3 on top of plain.
	if got, want := secured.MaxTransactionTime(3, 100), 32*time.Second; got != want {
		t.Errorf("STARTTLS and AUTH: %v, want %v", got, want)
	}
	// The defaults: 30 s steps and RFC 5321's 10 minute wait for the reply.
	if got := (smtprelay.Config{}).MaxTransactionTime(1, 1000); got < smtprelay.DefaultDataTimeout+10*smtprelay.DefaultTimeout {
		t.Errorf("defaults: %v is less than the steps it bounds", got)
	}
}

// TestMaxTransactionTimeBoundsSend has every step of a real Send wait out
// its timeout and checks Send ends within the bound.
func TestMaxTransactionTimeBoundsSend(t *testing.T) {
	cfg := fakeRelay(t, func(c *textproto.Conn) { scriptedSession(c, script{afterData: func() {}}) })
	cfg.Timeout = 50 * time.Millisecond
	cfg.DataTimeout = 100 * time.Millisecond
	env, data := buildMessage(t, "hi\r\n")

	start := time.Now()
	replies := newTransport(t, cfg).Send(context.Background(), env, data)
	elapsed := time.Since(start)

	for i, r := range replies {
		assertUnknownOutcome(t, r, env.To[i], "timeout")
	}
	if limit := cfg.MaxTransactionTime(len(env.To), len(data)); elapsed > limit {
		t.Errorf("Send took %v, more than MaxTransactionTime %v", elapsed, limit)
	}
	if elapsed < cfg.DataTimeout {
		t.Errorf("Send took %v, less than the DataTimeout it should have waited", elapsed)
	}
}
