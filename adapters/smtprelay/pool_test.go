package smtprelay_test

import (
	"context"
	"fmt"
	"net/textproto"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/emersion/go-smtp"

	"github.com/mailgate/mailgate/adapters/smtprelay"
	"github.com/mailgate/mailgate/adapters/smtprelay/smtptest"
	"github.com/mailgate/mailgate/domain"
)

// connections returns the connection number of each message received.
func connections(msgs []smtptest.Received) []int {
	var out []int
	for _, m := range msgs {
		out = append(out, m.Connection)
	}
	return out
}

func TestSendReusesConnection(t *testing.T) {
	srv := smtptest.Start(t, smtptest.Options{TLS: true, Username: "relay", Password: "pw"})
	transport := transportFor(t, srv)
	env, data := buildMessage(t, "hi\r\n")

	for range 3 {
		assertReplies(t, transport.Send(context.Background(), env, data), env.To, 250, "2.0.0")
	}

	if srv.Sessions() != 1 {
		t.Errorf("Sessions() = %d, want 1", srv.Sessions())
	}
	for _, m := range srv.WaitForMessages(t, 3, waitTimeout) {
		if !m.TLS || m.AuthUser != "relay" || m.Connection != 1 {
			t.Errorf("TLS=%v AuthUser=%q Connection=%d, want TLS as relay over connection 1", m.TLS, m.AuthUser, m.Connection)
		}
	}
}

func TestSendReusesConnectionAfterRefusals(t *testing.T) {
	srv := smtptest.Start(t, smtptest.Options{
		Mail: func(_ string, attempt int) *smtp.SMTPError {
			if attempt == 1 {
				return &smtp.SMTPError{Code: 550, EnhancedCode: smtp.EnhancedCode{5, 7, 1}, Message: "Sender refused"}
			}
			return nil
		},
		Rcpt: func(rcpt string, attempt int) *smtp.SMTPError {
			if attempt == 1 {
				return &smtp.SMTPError{Code: 550, EnhancedCode: smtp.EnhancedCode{5, 1, 1}, Message: "Recipient refused"}
			}
			return nil
		},
		Data: func(attempt int) *smtp.SMTPError {
			if attempt == 1 {
				return &smtp.SMTPError{Code: 554, EnhancedCode: smtp.EnhancedCode{5, 6, 0}, Message: "Content rejected"}
			}
			return nil
		},
	})
	transport := transportFor(t, srv)
	env, data := buildMessage(t, "hi\r\n")

	assertReplies(t, transport.Send(context.Background(), env, data), env.To, 550, "5.7.1 Sender refused")
	assertReplies(t, transport.Send(context.Background(), env, data), env.To, 550, "5.1.1 Recipient refused")
	assertReplies(t, transport.Send(context.Background(), env, data), env.To, 554, "5.6.0 Content rejected")
	assertReplies(t, transport.Send(context.Background(), env, data), env.To, 250, "2.0.0")

	if srv.Sessions() != 1 || len(srv.Messages()) != 1 {
		t.Errorf("Sessions()=%d messages=%d, want one connection for all four and one message", srv.Sessions(), len(srv.Messages()))
	}
}

func TestSendReplacesConnectionLostWhileIdle(t *testing.T) {
	tests := []struct {
		name string
		opts smtptest.Options
		// lose makes the relay lose the pooled connection.
		lose func(t *testing.T, srv *smtptest.Server)
	}{
		{
			name: "dropped without a word",
			lose: func(t *testing.T, srv *smtptest.Server) {
				if n := srv.DropConnections(); n != 1 {
					t.Fatalf("DropConnections() = %d, want the pooled connection", n)
				}
			},
		},
		{
			name: "relay idle timeout with 421",
			opts: smtptest.Options{ReadTimeout: 50 * time.Millisecond},
			lose: func(t *testing.T, srv *smtptest.Server) {
				eventually(t, "the relay hangs up", func() bool { return srv.OpenConnections() == 0 })
			},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			for _, tls := range []bool{false, true} {
				t.Run(fmt.Sprintf("tls=%v", tls), func(t *testing.T) {
					opts := tt.opts
					opts.TLS = tls
					srv := smtptest.Start(t, opts)
					transport := transportFor(t, srv)
					env, data := buildMessage(t, "hi\r\n")

					assertReplies(t, transport.Send(context.Background(), env, data), env.To, 250, "2.0.0")
					tt.lose(t, srv)
					assertReplies(t, transport.Send(context.Background(), env, data), env.To, 250, "2.0.0")

					if srv.Sessions() != 2 || srv.DataAttempts() != 2 || len(srv.Messages()) != 2 {
						t.Errorf("Sessions=%d DataAttempts=%d messages=%d, want 2 each", srv.Sessions(), srv.DataAttempts(), len(srv.Messages()))
					}
				})
			}
		})
	}
}

// countingRelay runs scriptedSession for each connection, with the script
// for that connection's number (from 1), and counts connections and messages.
type countingRelay struct {
	conns, messages atomic.Int32
}

func (r *countingRelay) start(t *testing.T, scriptFor func(conn int) script) smtprelay.Config {
	return fakeRelay(t, func(c *textproto.Conn) {
		s := scriptFor(int(r.conns.Add(1)))
		record := s.record
		s.record = func(line string) {
			if strings.EqualFold(line, "DATA") {
				r.messages.Add(1)
			}
			if record != nil {
				record(line)
			}
		}
		scriptedSession(c, s)
	})
}

func TestSendReplacesConnectionFailingNOOP(t *testing.T) {
	tests := map[string]script{
		"421":         {replies: map[string]string{"NOOP": "421 4.3.2 Shutting down"}},
		"5xx":         {replies: map[string]string{"NOOP": "502 5.5.1 What?"}},
		"no answer":   {replies: map[string]string{"NOOP": ""}},
		"bad reply":   {replies: map[string]string{"NOOP": "354 go ahead"}},
		"extra lines": {replies: map[string]string{"NOOP": "250 ok\r\n250 spurious"}},
	}
	for name, first := range tests {
		t.Run(name, func(t *testing.T) {
			var relay countingRelay
			cfg := relay.start(t, func(conn int) script {
				if conn == 1 {
					return first
				}
				return script{}
			})
			cfg.Timeout = 200 * time.Millisecond // bounds the unanswered NOOP
			cfg.CheckAfterIdle = -1              // check before every reuse
			transport := newTransport(t, cfg)
			env, data := buildMessage(t, "hi\r\n")

			for range 3 {
				assertReplies(t, transport.Send(context.Background(), env, data), env.To, 250, "queued as 42")
			}

			if n, m := relay.conns.Load(), relay.messages.Load(); n != 2 || m != 3 {
				t.Errorf("%d connections, %d messages; want 2 and 3", n, m)
			}
		})
	}
}

func TestSendMaxMessagesPerConn(t *testing.T) {
	srv := smtptest.Start(t, smtptest.Options{})
	transport := transportFor(t, srv, func(c *smtprelay.Config) { c.MaxMessagesPerConn = 2 })
	env, data := buildMessage(t, "hi\r\n")

	for range 5 {
		assertReplies(t, transport.Send(context.Background(), env, data), env.To, 250, "2.0.0")
	}

	if got := connections(srv.WaitForMessages(t, 5, waitTimeout)); !slices.Equal(got, []int{1, 1, 2, 2, 3}) {
		t.Errorf("messages came over connections %v, want two per connection", got)
	}
	eventually(t, "used-up connections closed", func() bool { return srv.OpenConnections() == 1 })
}

func TestSendConnectionLimits(t *testing.T) {
	tests := []struct {
		name string
		edit func(*smtprelay.Config)
	}{
		{"idle timeout", func(c *smtprelay.Config) { c.IdleTimeout = 50 * time.Millisecond }},
		{"lifetime", func(c *smtprelay.Config) { c.MaxConnLifetime = 100 * time.Millisecond }},
		{"no idle connections", func(c *smtprelay.Config) { c.MaxIdleConns = -1 }},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			srv := smtptest.Start(t, smtptest.Options{})
			transport := transportFor(t, srv, tt.edit)
			env, data := buildMessage(t, "hi\r\n")

			assertReplies(t, transport.Send(context.Background(), env, data), env.To, 250, "2.0.0")
			// The pool closes the connection on its own, with QUIT.
			eventually(t, "connection closed", func() bool { return srv.OpenConnections() == 0 })
			assertReplies(t, transport.Send(context.Background(), env, data), env.To, 250, "2.0.0")

			if srv.Sessions() != 2 {
				t.Errorf("Sessions() = %d, want 2", srv.Sessions())
			}
		})
	}
}

func TestSendLifetimeEndsBusyConnection(t *testing.T) {
	srv := smtptest.Start(t, smtptest.Options{})
	transport := transportFor(t, srv, func(c *smtprelay.Config) { c.MaxConnLifetime = 100 * time.Millisecond })
	env, data := buildMessage(t, "hi\r\n")

	// A connection in steady use still retires at the end of its lifetime.
	deadline := time.Now().Add(250 * time.Millisecond)
	n := 0
	for ; time.Now().Before(deadline); n++ {
		assertReplies(t, transport.Send(context.Background(), env, data), env.To, 250, "2.0.0")
		time.Sleep(10 * time.Millisecond)
	}
	if srv.Sessions() < 2 || srv.Sessions() >= n {
		t.Errorf("%d Sends over %d connections, want reuse and at least 2", n, srv.Sessions())
	}
}

func TestSendConcurrentlyDeliversEachOnce(t *testing.T) {
	const senders, maxIdle = 20, 4
	srv := smtptest.Start(t, smtptest.Options{TLS: true, Username: "relay", Password: "pw"})
	transport := transportFor(t, srv, func(c *smtprelay.Config) { c.MaxIdleConns = maxIdle })
	_, data := buildMessage(t, "hi\r\n")

	var wg sync.WaitGroup
	for round := range 3 {
		for i := range senders {
			wg.Go(func() {
				env := smtprelay.Envelope{From: "alice@example.com", To: []string{fmt.Sprintf("r%d-%d@example.org", round, i)}}
				assertDelivered(t, transport.Send(context.Background(), env, data))
			})
		}
		wg.Wait()
	}

	msgs := srv.WaitForMessages(t, 3*senders, waitTimeout)
	seen := make(map[string]int)
	for _, m := range msgs {
		for _, to := range m.To {
			seen[to]++
		}
	}
	for round := range 3 {
		for i := range senders {
			if rcpt := fmt.Sprintf("r%d-%d@example.org", round, i); seen[rcpt] != 1 {
				t.Errorf("%s received %d times, want once", rcpt, seen[rcpt])
			}
		}
	}
	if len(msgs) != 3*senders || srv.DataAttempts() != 3*senders {
		t.Errorf("%d messages, %d DATA, want %d each", len(msgs), srv.DataAttempts(), 3*senders)
	}
	// The later rounds reuse at least the pooled connections.
	if srv.Sessions() > 3*senders-2*maxIdle {
		t.Errorf("Sessions() = %d for %d messages, want the pool reused", srv.Sessions(), 3*senders)
	}
	eventually(t, "surplus connections closed", func() bool { return srv.OpenConnections() <= maxIdle })
}

func TestSendConcurrentlyWhileRelayDropsConnections(t *testing.T) {
	const senders = 20
	srv := smtptest.Start(t, smtptest.Options{})
	transport := transportFor(t, srv)
	env, data := buildMessage(t, "hi\r\n")

	var wg sync.WaitGroup
	for range 5 {
		for range senders {
			wg.Go(func() {
				for _, r := range transport.Send(context.Background(), env, data) {
					// A drop can hit any step; whatever it hits, the reply
					// must say so consistently.
					switch {
					case r.Code == 250 && !r.PossibleDuplicate:
					case r.Code == 451 && r.PossibleDuplicate:
					case r.Code == 0 && !r.PossibleDuplicate:
					default:
						t.Errorf("reply %+v", r)
					}
				}
			})
		}
		srv.DropConnections()
		wg.Wait()
	}
	// Once the relay behaves, everything goes through again.
	assertReplies(t, transport.Send(context.Background(), env, data), env.To, 250, "2.0.0")
}

func TestCloseThenSend(t *testing.T) {
	srv := smtptest.Start(t, smtptest.Options{})
	transport := transportFor(t, srv)
	env, data := buildMessage(t, "hi\r\n")

	assertReplies(t, transport.Send(context.Background(), env, data), env.To, 250, "2.0.0")
	if srv.OpenConnections() != 1 {
		t.Fatalf("OpenConnections() = %d, want the pooled connection", srv.OpenConnections())
	}
	if err := transport.Close(); err != nil {
		t.Fatal(err)
	}
	eventually(t, "idle connection closed", func() bool { return srv.OpenConnections() == 0 })

	// After Close each Send dials and closes its own connection.
	for range 2 {
		assertReplies(t, transport.Send(context.Background(), env, data), env.To, 250, "2.0.0")
		eventually(t, "connection closed after the Send", func() bool { return srv.OpenConnections() == 0 })
	}
	if srv.Sessions() != 3 {
		t.Errorf("Sessions() = %d, want 3", srv.Sessions())
	}
	if err := transport.Close(); err != nil {
		t.Errorf("second Close: %v", err)
	}
}

func TestSendCancelledContextSparesThePool(t *testing.T) {
	srv := smtptest.Start(t, smtptest.Options{})
	transport := transportFor(t, srv)
	env, data := buildMessage(t, "hi\r\n")
	assertReplies(t, transport.Send(context.Background(), env, data), env.To, 250, "2.0.0")

	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	assertReplies(t, transport.Send(ctx, env, data), env.To, 0, "cancel")
	assertReplies(t, transport.Send(context.Background(), env, data), env.To, 250, "2.0.0")

	if srv.Sessions() != 1 {
		t.Errorf("Sessions() = %d, want 1", srv.Sessions())
	}
}

func TestSendWaitsForAFreeConnectionUnderMaxConns(t *testing.T) {
	const senders, maxConns = 6, 2
	var (
		mu      sync.Mutex
		inData  int
		peak    int
		release = make(chan struct{})
		// Later senders reach maxConns again on the reused connections.
		releaseOnce = sync.OnceFunc(func() { close(release) })
	)
	srv := smtptest.Start(t, smtptest.Options{Data: func(int) *smtp.SMTPError {
		mu.Lock()
		inData++
		peak = max(peak, inData)
		if inData == maxConns {
			// Every allowed connection is busy: let them finish. Without the
			// cap the other senders have dialled and are in DATA by now.
			releaseOnce()
		}
		mu.Unlock()
		<-release
		mu.Lock()
		inData--
		mu.Unlock()
		return nil
	}})
	transport := transportFor(t, srv, func(c *smtprelay.Config) { c.MaxConns = maxConns })
	_, data := buildMessage(t, "hi\r\n")

	var wg sync.WaitGroup
	for i := range senders {
		wg.Go(func() {
			env := smtprelay.Envelope{From: "alice@example.com", To: []string{fmt.Sprintf("r%d@example.org", i)}}
			assertDelivered(t, transport.Send(context.Background(), env, data))
		})
	}
	wg.Wait()

	if peak > maxConns {
		t.Errorf("%d transactions in DATA at once, want at most %d", peak, maxConns)
	}
	// A connection is back in the pool before its slot is freed, so the
	// waiting senders reuse the two rather than dialling new ones.
	if srv.Sessions() != maxConns {
		t.Errorf("Sessions() = %d, want %d", srv.Sessions(), maxConns)
	}
}

func TestSendGivesUpWaitingForAConnectionWithItsContext(t *testing.T) {
	hold := make(chan struct{})
	inData := make(chan struct{}, 1)
	srv := smtptest.Start(t, smtptest.Options{Data: func(int) *smtp.SMTPError {
		inData <- struct{}{}
		<-hold
		return nil
	}})
	transport := transportFor(t, srv, func(c *smtprelay.Config) { c.MaxConns = 1 })
	_, data := buildMessage(t, "hi\r\n")
	busy := make(chan []domain.RecipientReply, 1)
	go func() {
		busy <- transport.Send(context.Background(), smtprelay.Envelope{From: "alice@example.com", To: []string{"first@example.org"}}, data)
	}()
	<-inData

	// The second Send's own bound ends while the only connection is busy.
	ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer cancel()
	replies := transport.Send(ctx, smtprelay.Envelope{From: "alice@example.com", To: []string{"second@example.org"}}, data)
	if len(replies) != 1 || replies[0].Code != 0 || !strings.Contains(replies[0].Text, "relay connections stayed busy") {
		t.Errorf("replies = %+v, want not sent, naming the busy connections", replies)
	}
	close(hold)
	assertDelivered(t, <-busy)
	if srv.Sessions() != 1 {
		t.Errorf("Sessions() = %d, want 1: the waiting Send never dialled", srv.Sessions())
	}
}
