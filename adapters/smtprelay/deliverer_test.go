package smtprelay_test

import (
	"bytes"
	"context"
	"errors"
	"os"
	"slices"
	"strings"
	"sync"
	"testing"

	"github.com/mailgate/mailgate/adapters/smtprelay"
	"github.com/mailgate/mailgate/domain"
)

// recordingSender keeps what it was asked to send and answers each
// recipient with the code scripted for it (250 when none is).
type recordingSender struct {
	env   smtprelay.Envelope
	data  []byte
	codes map[string]int
}

func (s *recordingSender) Send(ctx context.Context, env smtprelay.Envelope, data []byte) []domain.RecipientReply {
	s.env, s.data = env, data
	var accepted []string
	replies := make([]domain.RecipientReply, len(env.To))
	for i, rcpt := range env.To {
		code, ok := s.codes[rcpt]
		if !ok {
			code = 250
		}
		replies[i] = domain.RecipientReply{Email: rcpt, Code: code}
		if code == 250 {
			accepted = append(accepted, rcpt)
		}
	}
	if env.BeforeData != nil {
		if err := env.BeforeData(ctx, accepted); err != nil {
			return nil
		}
	}
	return replies
}

// replyCounter counts replies by code.
type replyCounter struct {
	mu    sync.Mutex
	codes []int
}

func (c *replyCounter) ObserveReply(code int) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.codes = append(c.codes, code)
}

func newTestCapture(t *testing.T) *smtprelay.CaptureTransport {
	t.Helper()
	capture, err := smtprelay.NewCapture(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	return capture
}

func TestDeliverer(t *testing.T) {
	t.Parallel()
	msg := domain.RenderedMessage{Data: []byte("From: a@example.com\r\n\r\nhi\r\n"), Downgraded: []byte("downgraded")}

	t.Run("OK/EnvelopeAndCounts", func(t *testing.T) {
		t.Parallel()
		sender := &recordingSender{codes: map[string]int{"c@example.org": 550}}
		counter := &replyCounter{}
		var journaled []string
		replies := smtprelay.NewDeliverer(sender, counter).Deliver(context.Background(), "bounce@example.com",
			[]string{"b@example.org", "c@example.org"}, msg,
			func(_ context.Context, accepted []string) error { journaled = accepted; return nil })

		if sender.env.From != "bounce@example.com" || !slices.Equal(sender.env.To, []string{"b@example.org", "c@example.org"}) {
			t.Fatalf("envelope %+v", sender.env)
		}
		if !bytes.Equal(sender.data, msg.Data) || !bytes.Equal(sender.env.Downgraded, msg.Downgraded) {
			t.Fatalf("sent data %q, downgraded %q; want the rendered message's", sender.data, sender.env.Downgraded)
		}
		if !slices.Equal(journaled, []string{"b@example.org"}) {
			t.Fatalf("beforeData got %v, want the accepted recipient", journaled)
		}
		if len(replies) != 2 || replies[0].Code != 250 || replies[1].Code != 550 {
			t.Fatalf("replies %+v", replies)
		}
		if !slices.Equal(counter.codes, []int{250, 550}) {
			t.Fatalf("counted %v, want one count per reply", counter.codes)
		}
	})

	t.Run("OK/NoObserver", func(t *testing.T) {
		t.Parallel()
		replies := smtprelay.NewDeliverer(&recordingSender{}, nil).Deliver(context.Background(), "a@example.com", []string{"b@example.org"}, msg, nil)
		if len(replies) != 1 || replies[0].Code != 250 {
			t.Fatalf("replies %+v", replies)
		}
	})

	t.Run("OK/Capture", func(t *testing.T) {
		t.Parallel()
		capture := newTestCapture(t)
		counter := &replyCounter{}
		replies := smtprelay.NewDeliverer(capture, counter).Deliver(context.Background(), "a@example.com", []string{"b@example.org"}, msg, nil)
		if len(replies) != 1 || replies[0].Code != 250 {
			t.Fatalf("replies %+v", replies)
		}
		path := strings.TrimPrefix(replies[0].Text, "2.0.0 captured to ")
		written, err := os.ReadFile(path)
		if err != nil {
			t.Fatalf("read the capture: %v", err)
		}
		if !bytes.HasSuffix(written, msg.Data) {
			t.Fatalf("capture %q does not end with the message", written)
		}
		if !slices.Equal(counter.codes, []int{250}) {
			t.Fatalf("counted %v", counter.codes)
		}
	})

	t.Run("ErrBeforeData", func(t *testing.T) {
		t.Parallel()
		capture := newTestCapture(t)
		counter := &replyCounter{}
		replies := smtprelay.NewDeliverer(capture, counter).Deliver(context.Background(), "a@example.com", []string{"b@example.org"}, msg,
			func(context.Context, []string) error { return errors.New("journal down") })
		if len(replies) != 1 || replies[0].Code != 0 {
			t.Fatalf("replies %+v, want code 0 when the journal fails", replies)
		}
		if !slices.Equal(counter.codes, []int{0}) {
			t.Fatalf("counted %v, want the no-reply counted", counter.codes)
		}
	})
}
