package httpapi

import (
	"context"
	"math"
	"strconv"
	"sync"
	"time"

	"github.com/google/uuid"
)

const (
	// limiterShardCount spreads tenants over independent mutexes so that
	// requests of different tenants rarely wait on each other.
	limiterShardCount = 64

	// limiterMaxTenantsPerShard caps memory at about 64 × 1024 buckets
	// whatever the number of distinct tenants seen; it is a safety valve
	// sized above the number of tenants expected to be active at once.
	limiterMaxTenantsPerShard = 1024

	// limiterSweepInterval bounds how often a shard scans its buckets for
	// ones that have refilled, so the scan cost is amortised over requests.
	limiterSweepInterval = 10 * time.Second

	// limiterEvictionSample is how many buckets are inspected to pick a
	// victim when a shard is at its cap, keeping insertion O(1).
	limiterEvictionSample = 8
)

// TenantLimiter is an in-memory token bucket per tenant, for a gateway run
// as one process (and the model ClusterLimiter's arithmetic follows). It is
// safe for concurrent use; state is lost on restart and is not shared
// between processes, so the configured rate applies per instance.
//
// Each bucket is kept as a single instant, the moment it will be full again
// (the GCRA formulation of a token bucket). That makes the arithmetic exact
// in integer nanoseconds and makes a full bucket indistinguishable from an
// absent one, so refilled buckets can be dropped without changing behaviour.
type TenantLimiter struct {
	unlimited bool
	burst     int
	interval  time.Duration // time to earn one token
	capacity  time.Duration // time to refill an empty bucket: burst × interval
	now       func() time.Time
	epoch     time.Time // offsets are measured from here to use the monotonic clock
	shards    [limiterShardCount]limiterShard
}

// limiterShard owns the buckets of the tenants that hash to it. Map values
// are the offset from epoch at which the tenant's bucket is full again.
type limiterShard struct {
	mu        sync.Mutex
	fullAt    map[uuid.UUID]time.Duration
	lastSweep time.Duration
}

// Decision is the outcome of one Allow call, with what a client needs to
// pace itself.
type Decision struct {
	Allowed bool
	// Limit is the burst size; 0 means the limiter is unlimited.
	Limit int
	// Remaining is the number of requests that would be allowed right now.
	Remaining int
	// RetryAfter is how long until the next request can be allowed; 0 when
	// this one was allowed.
	RetryAfter time.Duration
	// Reset is how long until the bucket is full again.
	Reset time.Duration
}

// NewTenantLimiter returns a limiter granting each tenant rate tokens per
// second up to burst. A rate that is not positive disables limiting; a
// burst below 1 is raised to 1 so that some request can ever pass. A nil
// now uses time.Now.
func NewTenantLimiter(rate float64, burst int, now func() time.Time) *TenantLimiter {
	if now == nil {
		now = time.Now
	}
	l := &TenantLimiter{now: now}
	p, ok := newGCRAParams(rate, burst, 1)
	if !ok {
		l.unlimited = true
		return l
	}
	l.burst, l.interval, l.capacity = p.burst, p.interval, p.capacity
	l.epoch = now()
	for i := range l.shards {
		l.shards[i].fullAt = make(map[uuid.UUID]time.Duration)
	}
	return l
}

// gcraParams are a token bucket as a GCRA: the time to earn one token and
// the time to refill an empty bucket (burst × interval).
type gcraParams struct {
	burst              int
	interval, capacity time.Duration
}

// newGCRAParams derives the bucket for rate tokens a second up to burst,
// with the interval rounded up to a multiple of unit; ok is false for a rate
// that is not positive (no limit). A burst below 1 is raised to 1 so that
// some request can ever pass.
func newGCRAParams(rate float64, burst int, unit time.Duration) (gcraParams, bool) {
	if !(rate > 0) { // also catches NaN
		return gcraParams{}, false
	}
	if burst < 1 {
		burst = 1
	}
	// Rounding the interval up keeps the effective rate at or below the
	// configured one; clamping keeps burst × interval within int64.
	interval := math.Ceil(float64(time.Second)/rate/float64(unit)) * float64(unit)
	maxInterval := float64(math.MaxInt64 / int64(burst))
	switch {
	case interval < float64(unit):
		interval = float64(unit)
	case interval > maxInterval:
		interval = maxInterval
	}
	p := gcraParams{burst: burst, interval: time.Duration(interval)}
	p.capacity = time.Duration(burst) * p.interval
	return p, true
}

// decide turns the bucket's debt (how long until it is full again) after a
// request into the Decision a client sees.
func (p gcraParams) decide(granted bool, debt time.Duration) Decision {
	debt = min(max(debt, 0), p.capacity+p.interval)
	if !granted {
		return Decision{Limit: p.burst, RetryAfter: max(debt+p.interval-p.capacity, time.Millisecond), Reset: debt}
	}
	return Decision{Allowed: true, Limit: p.burst, Remaining: max(int((p.capacity-debt)/p.interval), 0), Reset: debt}
}

// RateLimiter limits each tenant's requests.
type RateLimiter interface {
	Take(ctx context.Context, tenant uuid.UUID) (Decision, error)
}

var (
	_ RateLimiter = (*TenantLimiter)(nil)
	_ RateLimiter = (*ClusterLimiter)(nil)
)

// Take implements RateLimiter for a single process.
func (l *TenantLimiter) Take(_ context.Context, tenant uuid.UUID) (Decision, error) {
	return l.Allow(tenant), nil
}

// Allow takes one token from tenant's bucket if there is one.
func (l *TenantLimiter) Allow(tenant uuid.UUID) Decision {
	if l.unlimited {
		return Decision{Allowed: true}
	}
	now := l.now().Sub(l.epoch)
	s := &l.shards[limiterShardIndex(tenant)]

	s.mu.Lock()
	defer s.mu.Unlock()

	if now-s.lastSweep >= limiterSweepInterval || now < s.lastSweep {
		s.sweep(now)
	}
	fullAt, tracked := s.fullAt[tenant]
	if !tracked {
		fullAt = now
	}

	// debt is the time until the bucket is full; a clock that went
	// backwards cannot leave it emptier than empty.
	debt := max(fullAt-now, 0)
	debt = min(debt, l.capacity)

	if debt+l.interval > l.capacity {
		return Decision{
			Allowed:    false,
			Limit:      l.burst,
			Remaining:  0,
			RetryAfter: debt + l.interval - l.capacity,
			Reset:      debt,
		}
	}

	debt += l.interval
	if !tracked && len(s.fullAt) >= limiterMaxTenantsPerShard {
		s.evictOne(now)
	}
	s.fullAt[tenant] = now + debt
	return Decision{
		Allowed:   true,
		Limit:     l.burst,
		Remaining: int((l.capacity - debt) / l.interval),
		Reset:     debt,
	}
}

// sweep drops the buckets that have refilled; they behave exactly like
// buckets never created.
func (s *limiterShard) sweep(now time.Duration) {
	for tenant, fullAt := range s.fullAt {
		if fullAt <= now {
			delete(s.fullAt, tenant)
		}
	}
	s.lastSweep = now
}

// evictOne makes room in a shard at its cap. It drops the bucket closest to
// full among a few sampled ones (map iteration starts at a random place), so
// the evicted tenant gains as few free tokens as possible without a full scan.
func (s *limiterShard) evictOne(now time.Duration) {
	var (
		victim   uuid.UUID
		earliest time.Duration
		seen     int
	)
	for tenant, fullAt := range s.fullAt {
		if seen == 0 || fullAt < earliest {
			victim, earliest = tenant, fullAt
		}
		seen++
		if fullAt <= now || seen == limiterEvictionSample {
			break
		}
	}
	delete(s.fullAt, victim)
}

// limiterShardIndex folds every byte of the ID rather than using the first
// one, because time-ordered (v7) UUIDs share their leading bytes.
func limiterShardIndex(tenant uuid.UUID) int {
	var h byte
	for _, b := range tenant {
		h ^= b
	}
	return int(h) % limiterShardCount
}

// Headers returns the response fields of draft-ietf-httpapi-ratelimit-headers
// (RateLimit-Limit, RateLimit-Remaining, RateLimit-Reset) plus Retry-After
// on a refusal. Durations are whole seconds rounded up so that a client
// waiting that long is never refused for being early. An unlimited decision
// has no fields.
func (d Decision) Headers() map[string]string {
	if d.Limit <= 0 {
		return map[string]string{}
	}
	h := map[string]string{
		"RateLimit-Limit":     strconv.Itoa(d.Limit),
		"RateLimit-Remaining": strconv.Itoa(d.Remaining),
		"RateLimit-Reset":     strconv.FormatInt(limiterCeilSeconds(d.Reset), 10),
	}
	if !d.Allowed {
		h["Retry-After"] = strconv.FormatInt(max(limiterCeilSeconds(d.RetryAfter), 1), 10)
	}
	return h
}

func limiterCeilSeconds(d time.Duration) int64 {
	if d <= 0 {
		return 0
	}
	s := int64(d / time.Second)
	if d%time.Second != 0 {
		s++
	}
	return s
}
