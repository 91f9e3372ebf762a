package app

import (
	"context"
	"io"
	"log/slog"
	"net/http"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/mailgate/mailgate/adapters/smtprelay/smtptest"
)

// TestRateLimitHoldsAcrossReplicas: three API processes on one database
// share each tenant's limit, so together they let through the configured
// rate (plus the burst), not three times it; another tenant is unaffected.
func TestRateLimitHoldsAcrossReplicas(t *testing.T) {
	t.Parallel()
	const rate, burst, window = 20.0, 5, 3 * time.Second
	g := startGatewayWith(t, RoleAPI, smtptest.Options{}, func(c *Config) { c.RateLimit, c.RateBurst = rate, burst })
	bases := []string{g.base}
	for range 2 {
		replica, err := New(context.Background(), g.app.cfg, RoleAPI, slog.New(slog.NewTextHandler(io.Discard, nil)))
		if err != nil {
			t.Fatal(err)
		}
		if err := replica.Start(context.Background()); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _ = replica.Shutdown(context.Background()) })
		bases = append(bases, "http://"+replica.HTTPAddr())
	}
	var allowed, refused, other atomic.Int64
	var wg sync.WaitGroup
	start := time.Now()
	for i := range 6 {
		wg.Go(func() {
			base := bases[i%len(bases)]
			for time.Since(start) < window {
				req, _ := http.NewRequest(http.MethodGet, base+"/api/messages?limit=1", nil)
				req.Header.Set("Authorization", "Bearer "+g.token)
				res, err := http.DefaultClient.Do(req)
				if err != nil {
					t.Error(err)
					return
				}
				_, _ = io.Copy(io.Discard, res.Body)
				res.Body.Close()
				switch res.StatusCode {
				case http.StatusOK:
					allowed.Add(1)
				case http.StatusTooManyRequests:
					refused.Add(1)
					if res.Header.Get("Retry-After") == "" {
						t.Error("429 without Retry-After")
					}
				default:
					other.Add(1)
				}
			}
		})
	}
	wg.Wait()
	elapsed := time.Since(start)
	ceiling := float64(burst) + rate*elapsed.Seconds()
	t.Logf("%d allowed, %d refused, %d other in %s across %d replicas; ceiling %.0f", allowed.Load(), refused.Load(), other.Load(), elapsed, len(bases), ceiling)
	if other.Load() > 0 {
		t.Errorf("%d answers neither 200 nor 429", other.Load())
	}
	if got := float64(allowed.Load()); got > ceiling+1 || got < 0.8*ceiling {
		t.Errorf("%.0f requests allowed; the shared limit allows %.0f", got, ceiling)
	}
	if refused.Load() == 0 {
		t.Error("no request was refused")
	}
	// Another tenant still has its whole burst.
	otherTenant, err := g.app.Store().CreateTenant(t.Context(), "quiet", []string{"quiet-" + g.domain})
	if err != nil {
		t.Fatal(err)
	}
	if res := g.do(t, http.MethodGet, "/api/messages?limit=1", "", g.issue(t, otherTenant.ID), nil); res.status != http.StatusOK {
		t.Errorf("another tenant got %d", res.status)
	}
}
