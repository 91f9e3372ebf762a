package smtptest_test

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/emersion/go-smtp"

	"github.com/mailgate/mailgate/adapters/smtprelay/smtptest"
)

func TestNoPipeliningHidesTheExtension(t *testing.T) {
	for _, hide := range []bool{false, true} {
		s := smtptest.Start(t, smtptest.Options{NoPipelining: hide})
		c := dial(t, s)
		if ok, _ := c.Extension("PIPELINING"); ok == hide {
			t.Errorf("NoPipelining=%v: PIPELINING offered = %v", hide, ok)
		}
		if ok, _ := c.Extension("8BITMIME"); !ok {
			t.Errorf("NoPipelining=%v: the other extensions went missing", hide)
		}
		if err := send(t, c, "a@example.com", "b@example.com"); err != nil {
			t.Errorf("NoPipelining=%v: %v", hide, err)
		}
	}
}

func TestDiscardCountsAndLogsBeforeAnswering(t *testing.T) {
	var mu sync.Mutex
	var logged []string
	s := smtptest.Start(t, smtptest.Options{
		Discard: true,
		OnDeliver: func(messageID, rcpt string) {
			mu.Lock()
			defer mu.Unlock()
			logged = append(logged, messageID+" "+rcpt)
		},
	})
	c := dial(t, s)
	for i := range 2 {
		msg := fmt.Sprintf("Message-ID: <m%d@example.com>\r\nSubject: x\r\n\r\nbody\r\n", i)
		if err := c.SendMail("a@example.com", []string{"b@example.com", "c@example.com"}, strings.NewReader(msg)); err != nil {
			t.Fatal(err)
		}
		// SendMail returned after the 250, so the log already has the message.
		mu.Lock()
		n := len(logged)
		mu.Unlock()
		if n != 2*(i+1) {
			t.Fatalf("after message %d: %d log entries, want %d", i, n, 2*(i+1))
		}
	}
	if got := s.Delivered(); got != (smtptest.Delivered{Messages: 2, Recipients: 4}) {
		t.Errorf("Delivered() = %+v", got)
	}
	if n := len(s.Messages()); n != 0 {
		t.Errorf("a discarding server kept %d messages", n)
	}
	want := []string{"<m0@example.com> b@example.com", "<m0@example.com> c@example.com", "<m1@example.com> b@example.com", "<m1@example.com> c@example.com"}
	mu.Lock()
	defer mu.Unlock()
	if !slices.Equal(logged, want) {
		t.Errorf("logged %q, want %q", logged, want)
	}
}

func TestOnDeliverSkipsRefusedMessages(t *testing.T) {
	var mu sync.Mutex
	calls := 0
	s := smtptest.Start(t, smtptest.Options{
		Data:      func(int) *smtp.SMTPError { return &smtp.SMTPError{Code: 554, Message: "no"} },
		OnDeliver: func(string, string) { mu.Lock(); calls++; mu.Unlock() },
	})
	if err := send(t, dial(t, s), "a@example.com", "b@example.com"); err == nil {
		t.Fatal("refused message accepted")
	}
	mu.Lock()
	defer mu.Unlock()
	if calls != 0 || s.Delivered().Messages != 0 {
		t.Errorf("OnDeliver called %d times, Delivered %+v, for a refused message", calls, s.Delivered())
	}
}

func ceilingMessages(n int) []smtptest.Message {
	msgs := make([]smtptest.Message, n)
	for i := range msgs {
		msgs[i] = smtptest.Message{From: "a@example.com", To: []string{"b@example.com", "c@example.com", "d@example.com"}, Data: []byte(message)}
	}
	return msgs
}

func TestSendCeiling(t *testing.T) {
	for _, pipelining := range []bool{false, true} {
		t.Run(fmt.Sprintf("pipelining=%v", pipelining), func(t *testing.T) {
			s := smtptest.Start(t, smtptest.Options{Discard: true})
			proxy := smtptest.StartProxy(t, s.Addr(), smtptest.ProxyOptions{})
			res, err := smtptest.SendCeiling(context.Background(), proxy.Addr(), ceilingMessages(30), smtptest.CeilingOptions{Conns: 3, Pipelining: pipelining})
			if err != nil {
				t.Fatal(err)
			}
			if res.Messages != 30 || res.Rate() <= 0 {
				t.Errorf("result %+v, rate %v", res, res.Rate())
			}
			if got := s.Delivered(); got != (smtptest.Delivered{Messages: 30, Recipients: 90}) {
				t.Errorf("Delivered() = %+v, want 30 messages to 90 recipients", got)
			}
			if s.Sessions() != 3 {
				t.Errorf("Sessions() = %d, want 3", s.Sessions())
			}
			// Per connection: greeting, EHLO, QUIT; per message 2 round trips
			// pipelined, 6 (MAIL, 3 RCPT, DATA, dot) in lock-step.
			perMessage := map[bool]int{false: 6, true: 2}[pipelining]
			if got, want := proxy.ReplyBursts(), 3*3+30*perMessage; got != want {
				t.Errorf("%d round trips, want %d", got, want)
			}
		})
	}
}

func TestSendCeilingFails(t *testing.T) {
	s := smtptest.Start(t, smtptest.Options{NoPipelining: true})
	if _, err := smtptest.SendCeiling(context.Background(), s.Addr(), ceilingMessages(1), smtptest.CeilingOptions{Pipelining: true}); err == nil || !strings.Contains(err.Error(), "PIPELINING") {
		t.Errorf("pipelined to a server without PIPELINING: %v", err)
	}
	refusing := smtptest.Start(t, smtptest.Options{Data: func(int) *smtp.SMTPError { return &smtp.SMTPError{Code: 554, Message: "no"} }})
	for _, pipelining := range []bool{false, true} {
		_, err := smtptest.SendCeiling(context.Background(), refusing.Addr(), ceilingMessages(5), smtptest.CeilingOptions{Conns: 2, Pipelining: pipelining})
		if err == nil {
			t.Errorf("pipelining=%v: refused messages gave no error", pipelining)
		}
	}
}

func TestProxyDelaysReplies(t *testing.T) {
	const delay = 30 * time.Millisecond
	s := smtptest.Start(t, smtptest.Options{})
	proxy := smtptest.StartProxy(t, s.Addr(), smtptest.ProxyOptions{Delay: delay})
	start := time.Now()
	c, err := smtp.Dial(proxy.Addr())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	// Greeting and EHLO: two replies, each at least one delay late.
	if err := c.Hello("client.localhost"); err != nil {
		t.Fatal(err)
	}
	if elapsed := time.Since(start); elapsed < 2*delay {
		t.Errorf("greeting and EHLO took %v, want at least %v", elapsed, 2*delay)
	}
	if err := c.Quit(); err != nil {
		t.Fatal(err)
	}
	if got := proxy.ReplyBursts(); got != 3 {
		t.Errorf("ReplyBursts() = %d, want 3 (greeting, EHLO, QUIT)", got)
	}
}

func TestProxyFaultsAfterDot(t *testing.T) {
	for name, fault := range map[string]smtptest.Fault{"close": smtptest.FaultClose, "reset": smtptest.FaultReset, "swallow": smtptest.FaultSwallowReply} {
		t.Run(name, func(t *testing.T) {
			s := smtptest.Start(t, smtptest.Options{})
			proxy := smtptest.StartProxy(t, s.Addr(), smtptest.ProxyOptions{
				AfterDot: func(n int) smtptest.Fault {
					if n == 2 {
						return fault
					}
					return smtptest.FaultNone
				},
			})
			c, err := smtp.Dial(proxy.Addr())
			if err != nil {
				t.Fatal(err)
			}
			defer c.Close()
			if err := send(t, c, "a@example.com", "b@example.com"); err != nil {
				t.Fatalf("first message: %v", err)
			}
			if fault == smtptest.FaultSwallowReply {
				// Bound the wait for the reply that never comes.
				c.CommandTimeout = 200 * time.Millisecond
				c.SubmissionTimeout = 200 * time.Millisecond
			}
			err = send(t, c, "a@example.com", "b@example.com")
			var smtpErr *smtp.SMTPError
			if err == nil || errors.As(err, &smtpErr) {
				t.Fatalf("second message: %v, want a connection error without reply", err)
			}
			// The server has both messages: the client can't know about the second.
			s.WaitForMessages(t, 2, 5*time.Second)
			if proxy.FinalDots() != 2 {
				t.Errorf("FinalDots() = %d, want 2", proxy.FinalDots())
			}
		})
	}
}
