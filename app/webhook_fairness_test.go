package app

import (
	"context"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/mailgate/mailgate/adapters/smtprelay/smtptest"
	"github.com/mailgate/mailgate/domain"
)

// hookRecorder is a loopback endpoint that answers after delay and records
// when each (webhook, event) delivery arrived.
type hookRecorder struct {
	*httptest.Server
	mu       sync.Mutex
	received map[string]time.Time
}

func newHookRecorder(t *testing.T, delay time.Duration) *hookRecorder {
	t.Helper()
	h := &hookRecorder{received: map[string]time.Time{}}
	h.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		arrived := time.Now()
		// The endpoint is slow by design; a cancelled request stops waiting.
		select {
		case <-time.After(delay):
		case <-r.Context().Done():
			return
		}
		h.mu.Lock()
		key := r.Header.Get("Mailgate-Webhook-Id") + "/" + r.Header.Get("Mailgate-Event-Id")
		if _, seen := h.received[key]; !seen {
			h.received[key] = arrived
		}
		h.mu.Unlock()
		w.WriteHeader(http.StatusNoContent)
	}))
	t.Cleanup(h.Close)
	return h
}

func (h *hookRecorder) count() int {
	h.mu.Lock()
	defer h.mu.Unlock()
	return len(h.received)
}

func (h *hookRecorder) first() time.Time {
	h.mu.Lock()
	defer h.mu.Unlock()
	var first time.Time
	for _, at := range h.received {
		if first.IsZero() || at.Before(first) {
			first = at
		}
	}
	return first
}

// waitFor polls cond until it holds or timeout passes.
func waitFor(t *testing.T, timeout time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %s waiting for %s", timeout, what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// TestWebhooksAreFairBetweenTenants: tenant A registers as many endpoints as
// it may, each answering slowly, and fans out far more deliveries than the
// webhook workers can run at once; tenant B's one delivery, queued after
// all of them, still goes out within about one slow attempt. In insertion
// order it would wait for nearly all of A's (about 16 s here).
func TestWebhooksAreFairBetweenTenants(t *testing.T) {
	t.Parallel()
	const (
		slowAnswer   = 1500 * time.Millisecond
		messagesOfA  = 3
		eventsPerMsg = 2 // created and queued, both written when the message is accepted
	)
	g := startGatewayWith(t, RoleAll, smtptest.Options{}, func(c *Config) {
		c.Workers = 4 // five webhook workers
		c.WebhookTimeout = 3 * time.Second
	})
	slow := newHookRecorder(t, slowAnswer)
	for i := range domain.DefaultWebhookMaxEndpoints {
		res := g.do(t, "POST", "/api/webhooks", "application/json", g.token,
			mustJSON(map[string]any{"url": fmt.Sprintf("%s/a/%d", slow.URL, i), "event_types": []string{"created", "queued"}}))
		if res.status != http.StatusCreated {
			t.Fatalf("register endpoint %d: %d %s", i, res.status, res.body)
		}
	}
	over := g.do(t, "POST", "/api/webhooks", "application/json", g.token, mustJSON(map[string]any{"url": slow.URL + "/a/over"}))
	assertProblem(t, over, http.StatusConflict, "url")
	if !strings.Contains(string(over.body), `"code":"limit_exceeded"`) || !strings.Contains(string(over.body), fmt.Sprint(domain.DefaultWebhookMaxEndpoints)) {
		t.Fatalf("the refusal doesn't name the limit: %s", over.body)
	}

	for i := range messagesOfA {
		g.send(t, map[string]any{"send": true, "subject": fmt.Sprint("flood ", i), "to": rcpts("ada@example.net")})
	}
	wantA := messagesOfA * eventsPerMsg * domain.DefaultWebhookMaxEndpoints

	ctx := context.Background()
	domainB := "b" + uuid.NewString()[:8] + ".example"
	tenantB, err := g.app.Store().CreateTenant(ctx, "fair B "+t.Name(), []string{domainB})
	if err != nil {
		t.Fatal(err)
	}
	senderB, err := g.app.Store().CreateAccount(ctx, tenantB.ID, "sender@"+domainB, "B")
	if err != nil {
		t.Fatal(err)
	}
	tokenB := g.issue(t, tenantB.ID)
	fast := newHookRecorder(t, 0)
	if res := g.do(t, "POST", "/api/webhooks", "application/json", tokenB,
		mustJSON(map[string]any{"url": fast.URL + "/b", "event_types": []string{"queued"}})); res.status != http.StatusCreated {
		t.Fatalf("register B's endpoint: %d %s", res.status, res.body)
	}
	if n := slow.count(); n >= wantA/2 {
		t.Fatalf("A's endpoints already got %d of %d deliveries; the flood is too small to test anything", n, wantA)
	}
	res := g.do(t, "POST", "/api/messages/sendmessage", "application/json", tokenB, mustJSON(map[string]any{
		"sender_email": senderB.Email, "send": true, "subject": "B's one", "to": rcpts("bob@example.net")}))
	if res.status != http.StatusCreated {
		t.Fatalf("B's send: %d %s", res.status, res.body)
	}
	queuedB := time.Now()

	bound := slowAnswer + 2500*time.Millisecond
	waitFor(t, 20*time.Second, "B's webhook", func() bool { return fast.count() == 1 })
	latency := fast.first().Sub(queuedB)
	t.Logf("B's webhook arrived %s after its event; A had %d of %d delivered by then", latency.Round(time.Millisecond), slow.count(), wantA)
	if latency > bound {
		t.Fatalf("B's webhook waited %s behind A's slow endpoints, want at most %s", latency, bound)
	}

	// Fairness costs A nothing: every one of its deliveries arrives.
	waitFor(t, 40*time.Second, "all of A's webhooks", func() bool { return slow.count() >= wantA })
	if n := slow.count(); n != wantA {
		t.Fatalf("A's endpoints got %d deliveries, want %d", n, wantA)
	}
}
