package httpapi

import (
	"context"
	"fmt"
	"sync"
	"time"

	"github.com/google/uuid"
)

// RateStore keeps every tenant's limiter where all API processes share it.
type RateStore interface {
	// TakeRateToken takes one request from tenant's GCRA bucket if it
	// allows one; debt is how long until the bucket is full again.
	TakeRateToken(ctx context.Context, tenant uuid.UUID, interval, capacity time.Duration) (granted bool, debt time.Duration, err error)
}

// refusedTenantsCap bounds the local refusal memory; past it, it starts over
// (which only costs the next refused requests a round trip).
const refusedTenantsCap = 10_000

// ClusterLimiter is each tenant's API rate limit held across every API
// process: the bucket lives in the database (RateStore), so the configured
// rate is the tenant's whatever the number of replicas. An allowed request
// costs one round trip. A refused one teaches this process when the tenant's
// next request can pass, and until then it refuses locally without asking:
// the bucket only ever fills up later, never sooner, so no request is
// refused that the database would have let through (off by at most the round
// trip that brought the answer). A flood over the limit thus costs the
// database about one statement per tenant, process and Retry-After.
type ClusterLimiter struct {
	store     RateStore
	params    gcraParams
	unlimited bool
	now       func() time.Time

	mu      sync.Mutex
	refused map[uuid.UUID]refusal
}

// refusal is what this process learnt from the database's last refusal.
type refusal struct{ retryAt, fullAt time.Time }

// NewClusterLimiter limits each tenant to rate requests a second with burst,
// as NewTenantLimiter does, but counted in store. A nil now uses time.Now.
func NewClusterLimiter(store RateStore, rate float64, burst int, now func() time.Time) *ClusterLimiter {
	if now == nil {
		now = time.Now
	}
	// The database counts in microseconds.
	p, ok := newGCRAParams(rate, burst, time.Microsecond)
	return &ClusterLimiter{store: store, params: p, unlimited: !ok, now: now, refused: map[uuid.UUID]refusal{}}
}

// Take implements RateLimiter.
func (l *ClusterLimiter) Take(ctx context.Context, tenant uuid.UUID) (Decision, error) {
	if l.unlimited {
		return Decision{Allowed: true}, nil
	}
	now := l.now()
	l.mu.Lock()
	r, known := l.refused[tenant]
	if known && now.Before(r.retryAt) {
		l.mu.Unlock()
		return Decision{Limit: l.params.burst, RetryAfter: r.retryAt.Sub(now), Reset: r.fullAt.Sub(now)}, nil
	}
	if known {
		delete(l.refused, tenant)
	}
	l.mu.Unlock()

	granted, debt, err := l.store.TakeRateToken(ctx, tenant, l.params.interval, l.params.capacity)
	if err != nil {
		return Decision{}, fmt.Errorf("rate limit: %w", err)
	}
	d := l.params.decide(granted, debt)
	if !d.Allowed {
		l.mu.Lock()
		if len(l.refused) >= refusedTenantsCap {
			clear(l.refused)
		}
		l.refused[tenant] = refusal{retryAt: now.Add(d.RetryAfter), fullAt: now.Add(d.Reset)}
		l.mu.Unlock()
	}
	return d, nil
}
