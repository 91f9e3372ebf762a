package app

import (
	"bufio"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/mailgate/mailgate/adapters/smtprelay/smtptest"
)

// startProxiedGateway boots an API whose database connections pass through
// a proxy the test can freeze or cut.
func startProxiedGateway(t *testing.T, configure func(*Config)) (*gateway, *dbProxy) {
	t.Helper()
	var proxy *dbProxy
	g := startGatewayWith(t, RoleAPI, smtptest.Options{}, func(c *Config) {
		u, err := url.Parse(c.DatabaseURL)
		if err != nil {
			t.Fatal(err)
		}
		proxy = startDBProxy(t, u.Host)
		c.DatabaseURL = proxy.proxiedDatabaseURL(t, c.DatabaseURL)
		c.RateLimit = 0
		if configure != nil {
			configure(c)
		}
	})
	return g, proxy
}

// problemOf decodes an RFC 9457 body.
func problemOf(t *testing.T, res response) (code, detail string) {
	t.Helper()
	var p struct {
		Code   string `json:"code"`
		Detail string `json:"detail"`
		Status int    `json:"status"`
	}
	if err := json.Unmarshal(res.body, &p); err != nil || p.Status != res.status {
		t.Fatalf("not a problem body for %d: %s (%v)", res.status, res.body, err)
	}
	return p.Code, p.Detail
}

// TestDatabaseOutageIsA503WithinTheDeadline: with the database frozen (a
// partition) or gone (a crash), a request is answered 503 with Retry-After
// and a problem saying why, within the request deadline, never a hang or a
// 500; /readyz is false meanwhile and true again after, without a restart.
func TestDatabaseOutageIsA503WithinTheDeadline(t *testing.T) {
	t.Parallel()
	const deadline = 2 * time.Second
	g, proxy := startProxiedGateway(t, func(c *Config) { c.RequestTimeout = deadline })
	send := func() response {
		return g.postJSON(t, map[string]any{"sender_email": g.sender.Email, "subject": "s", "body": "b", "send": false,
			"to": []map[string]string{{"email_address": "ada@example.net"}}})
	}
	ready := func() int { return g.admin(t, "/readyz", nil).status }
	if res := send(); res.status != http.StatusCreated {
		t.Fatalf("before the outage: %d %s", res.status, res.body)
	}
	for _, outage := range []struct {
		name  string
		start func()
	}{{"Partition", proxy.freeze}, {"Crash", proxy.crash}} {
		outage.start()
		for range 3 {
			began := time.Now()
			res := send()
			took := time.Since(began)
			if res.status != http.StatusServiceUnavailable {
				t.Fatalf("%s: %d %s, want 503", outage.name, res.status, res.body)
			}
			if took > deadline+time.Second {
				t.Errorf("%s: answered after %s, deadline %s", outage.name, took, deadline)
			}
			if res.header.Get("Retry-After") == "" {
				t.Errorf("%s: 503 without Retry-After", outage.name)
			}
			if code, detail := problemOf(t, res); code != "unavailable" || !(strings.Contains(detail, "database") || strings.Contains(detail, "deadline")) {
				t.Errorf("%s: problem %s %q", outage.name, code, detail)
			}
		}
		if s := ready(); s != http.StatusServiceUnavailable {
			t.Errorf("%s: /readyz %d during the outage", outage.name, s)
		}
		proxy.heal()
		waitFor(t, 30*time.Second, outage.name+": /readyz true again after the heal", func() bool { return ready() == http.StatusOK })
		waitFor(t, 30*time.Second, outage.name+": sends accepted again after the heal", func() bool { return send().status == http.StatusCreated })
	}
}

// TestSlowClientsAreCut: a body trickling in at a byte every 2 s (Content-Length
// 100000), with or without a token, and headers trickling in, are cut within
// the configured bounds.
func TestSlowClientsAreCut(t *testing.T) {
	t.Parallel()
	const grace, headerTimeout = time.Second, time.Second
	g := startGatewayWith(t, RoleAPI, smtptest.Options{}, func(c *Config) {
		c.RequestTimeout, c.BodyMinRate, c.BodyGrace, c.HeaderTimeout = 20*time.Second, 1024, grace, headerTimeout
		c.RateLimit = 0
	})
	addr := strings.TrimPrefix(g.base, "http://")
	// trickle writes head, then one byte of body every 2 s, and returns
	// when the server closes the connection, with what it answered.
	trickle := func(t *testing.T, head string, bodyPace bool) (time.Duration, string) {
		t.Helper()
		conn, err := net.Dial("tcp", addr)
		if err != nil {
			t.Fatal(err)
		}
		defer conn.Close()
		began := time.Now()
		stop := make(chan struct{})
		defer close(stop)
		go func() {
			if !bodyPace {
				// Slow headers: the request line and one header byte by byte.
				for i := 0; i < len(head); i++ {
					if _, err := conn.Write([]byte{head[i]}); err != nil {
						return
					}
					select {
					case <-stop:
						return
					case <-time.After(300 * time.Millisecond):
					}
				}
				return
			}
			if _, err := io.WriteString(conn, head); err != nil {
				return
			}
			tick := time.NewTicker(2 * time.Second)
			defer tick.Stop()
			for {
				if _, err := conn.Write([]byte("{")); err != nil {
					return
				}
				select {
				case <-stop:
					return
				case <-tick.C:
				}
			}
		}()
		_ = conn.SetReadDeadline(time.Now().Add(60 * time.Second))
		answer, _ := io.ReadAll(bufio.NewReader(conn))
		return time.Since(began), string(answer)
	}
	post := func(token string) string {
		h := "POST /api/messages/sendmessage HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: 100000\r\n"
		if token != "" {
			h += "Authorization: Bearer " + token + "\r\n"
		}
		return h + "\r\n"
	}
	bound := grace + 3*time.Second // the grace, then at most one 2 s gap, plus slack

	t.Run("BodyWithToken", func(t *testing.T) {
		t.Parallel()
		took, answer := trickle(t, post(g.token), true)
		if took > bound {
			t.Errorf("a slow body was held %s, bound %s", took, bound)
		}
		if !strings.HasPrefix(answer, "HTTP/1.1 408") || !strings.Contains(answer, "request_timeout") {
			t.Errorf("answer %q, want a 408 request_timeout problem", answer)
		}
	})
	t.Run("BodyWithoutToken", func(t *testing.T) {
		t.Parallel()
		took, answer := trickle(t, post(""), true)
		if took > bound {
			t.Errorf("a slow unauthenticated body was held %s, bound %s", took, bound)
		}
		if !strings.HasPrefix(answer, "HTTP/1.1 401") {
			t.Errorf("answer %q, want 401", answer)
		}
	})
	t.Run("Headers", func(t *testing.T) {
		t.Parallel()
		took, _ := trickle(t, fmt.Sprintf("GET /api/messages HTTP/1.1\r\nHost: x\r\nX-Slow: %s\r\n\r\n", strings.Repeat("a", 40)), false)
		if took > headerTimeout+2*time.Second {
			t.Errorf("slow headers were held %s, bound %s", took, headerTimeout)
		}
	})
	t.Run("OKFastBodyUnaffected", func(t *testing.T) {
		t.Parallel()
		res := g.postJSON(t, map[string]any{"sender_email": g.sender.Email, "subject": "s", "body": strings.Repeat("x", 200000), "send": false,
			"to": []map[string]string{{"email_address": "ada@example.net"}}})
		if res.status != http.StatusCreated {
			t.Fatalf("%d %s", res.status, res.body)
		}
	})
}
