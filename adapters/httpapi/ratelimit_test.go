package httpapi

import (
	"math"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/uuid"
)

// limiterTestClock is a fake clock safe for concurrent use. When step is set,
// every reading advances it, which simulates time passing between requests.
type limiterTestClock struct {
	base   time.Time
	offset atomic.Int64
	step   time.Duration
}

func newLimiterTestClock() *limiterTestClock {
	return &limiterTestClock{base: time.Date(2025, 1, 2, 3, 4, 5, 0, time.UTC)}
}

func (c *limiterTestClock) Now() time.Time {
	return c.base.Add(time.Duration(c.offset.Add(int64(c.step))))
}

func (c *limiterTestClock) Advance(d time.Duration) { c.offset.Add(int64(d)) }

// limiterTestTenant returns a distinct tenant ID for each n that lands in the
// given shard: the bytes encoding n appear twice and cancel in the XOR fold.
func limiterTestTenant(shard, n int) uuid.UUID {
	var id uuid.UUID
	id[0] = byte(shard)
	id[1], id[2] = byte(n), byte(n>>8)
	id[3], id[4] = byte(n), byte(n>>8)
	id[15] = 0xAA // not the nil UUID even for shard 0, n 0
	id[14] = 0xAA
	return id
}

func limiterTracked(l *TenantLimiter) (total, largest int) {
	for i := range l.shards {
		s := &l.shards[i]
		s.mu.Lock()
		n := len(s.fullAt)
		s.mu.Unlock()
		total += n
		largest = max(largest, n)
	}
	return total, largest
}

func TestTenantLimiter_BurstThenRefusal(t *testing.T) {
	t.Parallel()
	clock := newLimiterTestClock()
	l := NewTenantLimiter(1, 3, clock.Now)
	tenant := uuid.New()

	for i, wantRemaining := range []int{2, 1, 0} {
		d := l.Allow(tenant)
		want := Decision{Allowed: true, Limit: 3, Remaining: wantRemaining, Reset: time.Duration(i+1) * time.Second}
		if d != want {
			t.Fatalf("request %d: got %+v, want %+v", i+1, d, want)
		}
	}
	d := l.Allow(tenant)
	want := Decision{Allowed: false, Limit: 3, Remaining: 0, RetryAfter: time.Second, Reset: 3 * time.Second}
	if d != want {
		t.Fatalf("request 4: got %+v, want %+v", d, want)
	}
	// A refusal costs nothing: asking again straight away gives the same answer.
	if again := l.Allow(tenant); again != want {
		t.Fatalf("request 5: got %+v, want %+v", again, want)
	}

	h := d.Headers()
	wantHeaders := map[string]string{
		"RateLimit-Limit":     "3",
		"RateLimit-Remaining": "0",
		"RateLimit-Reset":     "3",
		"Retry-After":         "1",
	}
	if len(h) != len(wantHeaders) {
		t.Fatalf("headers: got %v, want %v", h, wantHeaders)
	}
	for k, v := range wantHeaders {
		if h[k] != v {
			t.Errorf("header %s: got %q, want %q", k, h[k], v)
		}
	}
}

func TestTenantLimiter_Refill(t *testing.T) {
	t.Parallel()
	clock := newLimiterTestClock()
	l := NewTenantLimiter(2, 4, clock.Now)
	tenant := uuid.New()

	for range 4 {
		if !l.Allow(tenant).Allowed {
			t.Fatal("burst refused")
		}
	}
	if l.Allow(tenant).Allowed {
		t.Fatal("allowed beyond burst")
	}

	clock.Advance(500 * time.Millisecond)
	if d := l.Allow(tenant); !d.Allowed || d.Remaining != 0 {
		t.Fatalf("after one interval: got %+v, want one allowed with none remaining", d)
	}
	if l.Allow(tenant).Allowed {
		t.Fatal("allowed a second request after one interval")
	}

	// Idle far longer than a refill: tokens stop at the burst.
	clock.Advance(time.Hour)
	allowed := 0
	for range 10 {
		if l.Allow(tenant).Allowed {
			allowed++
		}
	}
	if allowed != 4 {
		t.Fatalf("after a long idle: allowed %d, want the burst of 4", allowed)
	}
}

func TestTenantLimiter_RetryAfter(t *testing.T) {
	t.Parallel()

	t.Run("OK", func(t *testing.T) {
		t.Parallel()
		clock := newLimiterTestClock()
		// 3/s does not divide a second evenly; the interval rounds up.
		l := NewTenantLimiter(3, 2, clock.Now)
		tenant := uuid.New()
		l.Allow(tenant)
		l.Allow(tenant)

		d := l.Allow(tenant)
		if d.Allowed {
			t.Fatal("allowed beyond burst")
		}
		wantInterval := time.Duration(math.Ceil(float64(time.Second) / 3))
		if d.RetryAfter != wantInterval {
			t.Fatalf("RetryAfter: got %v, want %v", d.RetryAfter, wantInterval)
		}

		clock.Advance(d.RetryAfter - time.Nanosecond)
		early := l.Allow(tenant)
		if early.Allowed || early.RetryAfter != time.Nanosecond {
			t.Fatalf("1ns early: got %+v, want refused with RetryAfter 1ns", early)
		}
		if got := early.Headers()["Retry-After"]; got != "1" {
			t.Fatalf("Retry-After header for 1ns: got %q, want at least 1", got)
		}

		clock.Advance(time.Nanosecond)
		if d := l.Allow(tenant); !d.Allowed || d.RetryAfter != 0 {
			t.Fatalf("at RetryAfter: got %+v, want allowed with RetryAfter 0", d)
		}
	})

	t.Run("RoundsUpToSeconds", func(t *testing.T) {
		t.Parallel()
		clock := newLimiterTestClock()
		l := NewTenantLimiter(0.4, 1, clock.Now) // one token every 2.5s
		tenant := uuid.New()
		l.Allow(tenant)
		d := l.Allow(tenant)
		if d.RetryAfter != 2500*time.Millisecond {
			t.Fatalf("RetryAfter: got %v, want 2.5s", d.RetryAfter)
		}
		h := d.Headers()
		if h["Retry-After"] != "3" || h["RateLimit-Reset"] != "3" {
			t.Fatalf("headers: got %v, want Retry-After and RateLimit-Reset 3", h)
		}
	})
}

func TestTenantLimiter_TenantsIndependent(t *testing.T) {
	t.Parallel()
	for name, pair := range map[string][2]uuid.UUID{
		"SameShard":      {limiterTestTenant(7, 1), limiterTestTenant(7, 2)},
		"DifferentShard": {limiterTestTenant(7, 1), limiterTestTenant(8, 1)},
	} {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			a, b := pair[0], pair[1]
			if name == "SameShard" && limiterShardIndex(a) != limiterShardIndex(b) {
				t.Fatal("test tenants are not in the same shard")
			}
			l := NewTenantLimiter(1, 2, newLimiterTestClock().Now)
			l.Allow(a)
			l.Allow(a)
			if l.Allow(a).Allowed {
				t.Fatal("tenant a allowed beyond burst")
			}
			if d := l.Allow(b); !d.Allowed || d.Remaining != 1 {
				t.Fatalf("tenant b after a drained: got %+v, want allowed with 1 remaining", d)
			}
		})
	}
}

func TestTenantLimiter_Unlimited(t *testing.T) {
	t.Parallel()
	for _, rate := range []float64{0, -1, math.NaN()} {
		l := NewTenantLimiter(rate, 5, nil)
		tenant := uuid.New()
		for range 100 {
			d := l.Allow(tenant)
			if !d.Allowed {
				t.Fatalf("rate %v: refused", rate)
			}
			if h := d.Headers(); len(h) != 0 {
				t.Fatalf("rate %v: headers %v, want none", rate, h)
			}
		}
	}
}

func TestTenantLimiter_BurstBelowOne(t *testing.T) {
	t.Parallel()
	l := NewTenantLimiter(1, 0, newLimiterTestClock().Now)
	tenant := uuid.New()
	if d := l.Allow(tenant); !d.Allowed || d.Limit != 1 {
		t.Fatalf("got %+v, want allowed with a burst of 1", d)
	}
	if l.Allow(tenant).Allowed {
		t.Fatal("allowed a second request with a burst of 1")
	}
}

func TestTenantLimiter_ClockBackwards(t *testing.T) {
	t.Parallel()
	clock := newLimiterTestClock()
	l := NewTenantLimiter(1, 2, clock.Now)
	tenant := uuid.New()
	l.Allow(tenant)
	l.Allow(tenant)
	clock.Advance(-time.Hour)
	d := l.Allow(tenant)
	if d.Allowed || d.Reset > 2*time.Second || d.RetryAfter > time.Second {
		t.Fatalf("got %+v, want refused with Reset and RetryAfter within an empty bucket's", d)
	}
}

func TestTenantLimiter_EvictionBoundsMemory(t *testing.T) {
	t.Parallel()
	clock := newLimiterTestClock()
	l := NewTenantLimiter(1, 10, clock.Now)

	// The clock is frozen, so no bucket refills and only the cap holds memory.
	const tenants = 100_000
	for range tenants {
		if !l.Allow(uuid.New()).Allowed {
			t.Fatal("new tenant refused")
		}
	}
	total, largest := limiterTracked(l)
	if largest > limiterMaxTenantsPerShard {
		t.Fatalf("a shard tracks %d tenants, cap is %d", largest, limiterMaxTenantsPerShard)
	}
	if total > limiterShardCount*limiterMaxTenantsPerShard {
		t.Fatalf("tracking %d tenants, cap is %d", total, limiterShardCount*limiterMaxTenantsPerShard)
	}

	// Once every bucket is full again, touching a shard sweeps it.
	clock.Advance(10*time.Second + limiterSweepInterval)
	for shard := range limiterShardCount {
		l.Allow(limiterTestTenant(shard, 0xBEEF))
	}
	if total, _ := limiterTracked(l); total != limiterShardCount {
		t.Fatalf("after refill and sweep: tracking %d tenants, want only the %d just seen", total, limiterShardCount)
	}
}

func TestTenantLimiter_SweepKeepsDrainedBuckets(t *testing.T) {
	t.Parallel()
	clock := newLimiterTestClock()
	l := NewTenantLimiter(0.01, 2, clock.Now) // refills in 200s, longer than a sweep interval
	drained, other := limiterTestTenant(3, 1), limiterTestTenant(3, 2)
	l.Allow(drained)
	l.Allow(drained)

	clock.Advance(limiterSweepInterval)
	l.Allow(other) // sweeps shard 3
	if l.Allow(drained).Allowed {
		t.Fatal("sweep forgot a bucket that had not refilled")
	}
}

func TestTenantLimiter_ConcurrentFrozenClock(t *testing.T) {
	t.Parallel()
	l := NewTenantLimiter(1, 25, newLimiterTestClock().Now)
	tenants := []uuid.UUID{uuid.New(), uuid.New(), uuid.New(), uuid.New()}
	var allowed [4]atomic.Int64

	var wg sync.WaitGroup
	for g := range 32 {
		wg.Go(func() {
			for i := range 200 {
				k := (g + i) % len(tenants)
				if l.Allow(tenants[k]).Allowed {
					allowed[k].Add(1)
				}
			}
		})
	}
	wg.Wait()
	for k := range allowed {
		if got := allowed[k].Load(); got != 25 {
			t.Errorf("tenant %d: allowed %d, want exactly the burst of 25", k, got)
		}
	}
}

func TestTenantLimiter_ConcurrentAdvancingClock(t *testing.T) {
	t.Parallel()
	const (
		rate  = 100.0
		burst = 10
	)
	clock := newLimiterTestClock()
	clock.step = 50 * time.Microsecond
	start := clock.Now()
	l := NewTenantLimiter(rate, burst, clock.Now)
	tenant := uuid.New()
	var allowed atomic.Int64

	var wg sync.WaitGroup
	for range 64 {
		wg.Go(func() {
			for range 500 {
				if l.Allow(tenant).Allowed {
					allowed.Add(1)
				}
			}
		})
	}
	wg.Wait()
	elapsed := clock.Now().Sub(start)
	got := allowed.Load()
	limit := int64(burst + rate*elapsed.Seconds())
	if got > limit {
		t.Fatalf("allowed %d in %v, more than burst + rate × elapsed = %d", got, elapsed, limit)
	}
	if got < burst {
		t.Fatalf("allowed %d, fewer than the burst of %d", got, burst)
	}
}
