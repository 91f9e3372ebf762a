package webhook_test

import (
	"context"
	"errors"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/mailgate/mailgate/adapters/webhook"
	"github.com/mailgate/mailgate/domain"
)

// endpoint is a loopback test server that counts accepted connections and
// handled requests, so tests can tell that nothing reached it.
type endpoint struct {
	*httptest.Server
	connections atomic.Int64
	requests    atomic.Int64
}

func newEndpoint(t *testing.T, handler http.HandlerFunc) *endpoint {
	t.Helper()
	e := &endpoint{}
	e.Server = httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		e.requests.Add(1)
		handler(w, r)
	}))
	e.Config.ConnState = func(_ net.Conn, state http.ConnState) {
		if state == http.StateNew {
			e.connections.Add(1)
		}
	}
	e.Start()
	t.Cleanup(e.Close)
	return e
}

// newSender returns a Sender allowed to reach the loopback test server
// unless opts says otherwise through edit.
func newSender(t *testing.T, edit ...func(*webhook.Options)) *webhook.Sender {
	t.Helper()
	opts := webhook.Options{AllowPrivateNetworks: true}
	for _, f := range edit {
		f(&opts)
	}
	s := webhook.NewSender(opts)
	t.Cleanup(s.CloseIdleConnections)
	return s
}

func delivery(url string) domain.WebhookRequest {
	return domain.WebhookRequest{
		URL:       url,
		Secrets:   [][]byte{[]byte("whsec_current")},
		EventID:   "evt_0123",
		WebhookID: "wh_0456",
		Body:      []byte(`{"type":"message.delivered","data":{"id":"msg_1"}}`),
	}
}

func status(code int) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		w.WriteHeader(code)
	}
}

func TestSendHeadersAndSignature(t *testing.T) {
	t.Parallel()
	type received struct {
		method string
		header http.Header
		body   []byte
	}
	got := make(chan received, 1)
	srv := newEndpoint(t, func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		got <- received{r.Method, r.Header.Clone(), body}
		w.WriteHeader(http.StatusNoContent)
	})
	current, previous := []byte("whsec_current"), []byte("whsec_previous")
	d := delivery(srv.URL + "/hooks/mailgate?token=abc")
	d.Secrets = [][]byte{current, previous}

	before := time.Now().Unix()
	res := newSender(t).Send(t.Context(), d)
	if res.Err != nil || res.StatusCode != http.StatusNoContent || res.Permanent {
		t.Fatalf("Send = %+v, want 204 without error", res)
	}
	if res.Duration <= 0 {
		t.Errorf("Duration = %s, want > 0", res.Duration)
	}
	r := <-got

	if r.method != http.MethodPost {
		t.Errorf("method = %s, want POST", r.method)
	}
	if string(r.body) != string(d.Body) {
		t.Errorf("body = %q, want %q", r.body, d.Body)
	}
	for name, want := range map[string]string{
		"Content-Type":        "application/json",
		"User-Agent":          webhook.DefaultUserAgent,
		"Mailgate-Event-Id":   d.EventID,
		"Mailgate-Webhook-Id": d.WebhookID,
	} {
		if v := r.header.Get(name); v != want {
			t.Errorf("%s = %q, want %q", name, v, want)
		}
	}

	sig := r.header.Get("Mailgate-Signature")
	for _, secret := range d.Secrets {
		if err := webhook.Verify(sig, secret, r.body, time.Now(), time.Minute); err != nil {
			t.Errorf("Verify(%q) with %q: %v", sig, secret, err)
		}
	}
	// The current secret comes first, so a receiver reading only the first
	// v1 entry checks against it.
	entries := strings.Split(sig, ",")
	if len(entries) != 3 || !strings.HasPrefix(entries[0], "t=") {
		t.Fatalf("signature header = %q, want t= and two v1= entries", sig)
	}
	ts, err := strconv.ParseInt(strings.TrimPrefix(entries[0], "t="), 10, 64)
	if err != nil || ts < before || ts > time.Now().Unix() {
		t.Fatalf("timestamp %q is not the time of sending", entries[0])
	}
	if want := "v1=" + webhook.Sign(current, ts, d.Body); entries[1] != want {
		t.Errorf("first entry = %q, want the current secret's %q", entries[1], want)
	}
	if want := "v1=" + webhook.Sign(previous, ts, d.Body); entries[2] != want {
		t.Errorf("second entry = %q, want the previous secret's %q", entries[2], want)
	}
}

func TestSendUserAgentOption(t *testing.T) {
	t.Parallel()
	got := make(chan string, 1)
	srv := newEndpoint(t, func(w http.ResponseWriter, r *http.Request) {
		got <- r.UserAgent()
	})
	s := newSender(t, func(o *webhook.Options) { o.UserAgent = "Custom/2" })
	if res := s.Send(t.Context(), delivery(srv.URL)); res.Err != nil {
		t.Fatal(res.Err)
	}
	if ua := <-got; ua != "Custom/2" {
		t.Errorf("User-Agent = %q, want Custom/2", ua)
	}
}

func TestSendStatus(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		code      int
		ok        bool
		permanent bool
	}{
		{code: 200, ok: true},
		{code: 202, ok: true},
		{code: 400, permanent: true},
		{code: 401, permanent: true},
		{code: 404, permanent: true},
		{code: 408},
		{code: 409},
		{code: 410, permanent: true},
		{code: 413, permanent: true},
		{code: 425},
		{code: 429},
		{code: 500},
		{code: 502},
		{code: 503},
	} {
		t.Run(strconv.Itoa(tc.code), func(t *testing.T) {
			t.Parallel()
			srv := newEndpoint(t, status(tc.code))
			res := newSender(t).Send(t.Context(), delivery(srv.URL))
			if res.StatusCode != tc.code {
				t.Errorf("StatusCode = %d, want %d", res.StatusCode, tc.code)
			}
			if tc.ok != (res.Err == nil) {
				t.Errorf("Err = %v, want success %v", res.Err, tc.ok)
			}
			if !tc.ok && !errors.Is(res.Err, webhook.ErrUnexpectedStatus) {
				t.Errorf("Err = %v, want ErrUnexpectedStatus", res.Err)
			}
			if res.Permanent != tc.permanent {
				t.Errorf("Permanent = %v, want %v", res.Permanent, tc.permanent)
			}
		})
	}
}

func TestSendRedirectNotFollowed(t *testing.T) {
	t.Parallel()
	var followed atomic.Int64
	srv := newEndpoint(t, func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/elsewhere" {
			followed.Add(1)
			return
		}
		http.Redirect(w, r, "/elsewhere", http.StatusFound)
	})
	res := newSender(t).Send(t.Context(), delivery(srv.URL+"/hook"))
	if res.StatusCode != http.StatusFound {
		t.Errorf("StatusCode = %d, want 302", res.StatusCode)
	}
	if !errors.Is(res.Err, webhook.ErrRedirect) || !strings.Contains(res.Err.Error(), "/elsewhere") {
		t.Errorf("Err = %v, want ErrRedirect naming the Location", res.Err)
	}
	if res.Permanent {
		t.Error("Permanent = true, want a retryable failure")
	}
	if n := followed.Load(); n != 0 {
		t.Errorf("redirect target was requested %d times", n)
	}
}

func TestSendTimeout(t *testing.T) {
	t.Parallel()
	release := make(chan struct{})
	abandoned := make(chan struct{})
	srv := newEndpoint(t, func(w http.ResponseWriter, r *http.Request) {
		// Reading the body lets the server notice the client hanging up.
		_, _ = io.Copy(io.Discard, r.Body)
		select {
		case <-r.Context().Done():
			close(abandoned)
		case <-release:
		}
	})
	t.Cleanup(func() { close(release) }) // runs before the server closes
	const timeout = 200 * time.Millisecond
	s := newSender(t, func(o *webhook.Options) { o.Timeout = timeout })

	res := s.Send(t.Context(), delivery(srv.URL))
	if !errors.Is(res.Err, context.DeadlineExceeded) {
		t.Errorf("Err = %v, want a deadline error", res.Err)
	}
	if res.StatusCode != 0 || res.Permanent {
		t.Errorf("Send = %+v, want a retryable failure without status", res)
	}
	if res.Duration < timeout || res.Duration > 5*time.Second {
		t.Errorf("Duration = %s, want about %s", res.Duration, timeout)
	}
	if strings.Contains(res.Err.Error(), srv.URL) {
		t.Errorf("Err %q quotes the whole URL", res.Err)
	}
	select {
	case <-abandoned:
	case <-time.After(5 * time.Second):
		t.Error("the connection was still open 5s after the timeout")
	}
}

func TestSendCancelled(t *testing.T) {
	t.Parallel()
	srv := newEndpoint(t, status(http.StatusOK))
	ctx, cancel := context.WithCancel(t.Context())
	cancel()
	res := newSender(t).Send(ctx, delivery(srv.URL))
	if !errors.Is(res.Err, context.Canceled) || res.Permanent {
		t.Errorf("Send = %+v, want a retryable cancellation", res)
	}
}

func TestSendDiscardsLargeResponse(t *testing.T) {
	t.Parallel()
	srv := newEndpoint(t, func(w http.ResponseWriter, r *http.Request) {
		chunk := strings.Repeat("x", 32<<10)
		for range 32 {
			if _, err := io.WriteString(w, chunk); err != nil {
				return
			}
		}
	})
	s := newSender(t, func(o *webhook.Options) { o.MaxResponseBytes = 1 << 10 })
	res := s.Send(t.Context(), delivery(srv.URL))
	if res.Err != nil || res.StatusCode != http.StatusOK {
		t.Fatalf("Send = %+v, want 200", res)
	}
}

func TestSendRefusesPrivateAddress(t *testing.T) {
	t.Parallel()
	srv := newEndpoint(t, status(http.StatusOK))
	s := webhook.NewSender(webhook.Options{}) // private networks refused by default
	t.Cleanup(s.CloseIdleConnections)

	res := s.Send(t.Context(), delivery(srv.URL))
	if !errors.Is(res.Err, webhook.ErrForbiddenAddress) {
		t.Fatalf("Err = %v, want ErrForbiddenAddress", res.Err)
	}
	if !strings.Contains(res.Err.Error(), "loopback") {
		t.Errorf("Err = %v, want it to say why", res.Err)
	}
	if !res.Permanent || res.StatusCode != 0 {
		t.Errorf("Send = %+v, want a permanent failure without status", res)
	}
	if n := srv.connections.Load(); n != 0 {
		t.Errorf("server accepted %d connections, want the dial refused before connecting", n)
	}
	if n := srv.requests.Load(); n != 0 {
		t.Errorf("server handled %d requests", n)
	}
}

func TestSendInvalidDelivery(t *testing.T) {
	t.Parallel()
	srv := newEndpoint(t, status(http.StatusOK))
	// Cleanups run after the parallel subtests finish.
	t.Cleanup(func() {
		if n := srv.requests.Load(); n != 0 {
			t.Errorf("server handled %d requests", n)
		}
	})
	for name, edit := range map[string]func(*domain.WebhookRequest){
		"NoSecrets":      func(d *domain.WebhookRequest) { d.Secrets = nil },
		"ThreeSecrets":   func(d *domain.WebhookRequest) { d.Secrets = [][]byte{[]byte("a"), []byte("b"), []byte("c")} },
		"EmptySecret":    func(d *domain.WebhookRequest) { d.Secrets = [][]byte{[]byte("a"), {}} },
		"EmptyEventID":   func(d *domain.WebhookRequest) { d.EventID = "" },
		"EventIDNewline": func(d *domain.WebhookRequest) { d.EventID = "evt\r\nX-Injected: 1" },
		"EmptyWebhookID": func(d *domain.WebhookRequest) { d.WebhookID = "" },
		"FTP":            func(d *domain.WebhookRequest) { d.URL = strings.Replace(d.URL, "http:", "ftp:", 1) },
		"UserInfo":       func(d *domain.WebhookRequest) { d.URL = strings.Replace(d.URL, "http://", "http://user:pw@", 1) },
		"Relative":       func(d *domain.WebhookRequest) { d.URL = "/hook" },
	} {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			d := delivery(srv.URL)
			edit(&d)
			res := newSender(t).Send(t.Context(), d)
			if !errors.Is(res.Err, webhook.ErrInvalidDelivery) || !res.Permanent {
				t.Errorf("Send = %+v, want a permanent ErrInvalidDelivery", res)
			}
		})
	}
}
