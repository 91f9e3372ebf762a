package httpapi

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/google/uuid"
)

// gcraStore is the database's GCRA in memory, on the test's clock, counting
// how often it is asked.
type gcraStore struct {
	clock *limiterTestClock
	tat   map[uuid.UUID]time.Time
	calls int
	err   error
}

func (s *gcraStore) TakeRateToken(_ context.Context, tenant uuid.UUID, interval, capacity time.Duration) (bool, time.Duration, error) {
	s.calls++
	if s.err != nil {
		return false, 0, s.err
	}
	now := s.clock.Now()
	next := s.tat[tenant]
	if next.Before(now) {
		next = now
	}
	next = next.Add(interval)
	if next.Sub(now) > capacity {
		return false, s.tat[tenant].Sub(now), nil
	}
	s.tat[tenant] = next
	return true, next.Sub(now), nil
}

func TestClusterLimiter(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	newLimiter := func() (*ClusterLimiter, *gcraStore, *limiterTestClock) {
		clock := newLimiterTestClock()
		store := &gcraStore{clock: clock, tat: map[uuid.UUID]time.Time{}}
		return NewClusterLimiter(store, 10, 3, clock.Now), store, clock
	}
	tenant := uuid.New()

	t.Run("OKBurstThenRefusalWithRetryAfter", func(t *testing.T) {
		t.Parallel()
		l, _, _ := newLimiter()
		for i := range 3 {
			d, err := l.Take(ctx, tenant)
			if err != nil || !d.Allowed || d.Remaining != 2-i || d.Limit != 3 {
				t.Fatalf("request %d: %+v %v", i, d, err)
			}
		}
		d, err := l.Take(ctx, tenant)
		if err != nil || d.Allowed || d.RetryAfter != 100*time.Millisecond || d.Headers()["Retry-After"] != "1" {
			t.Fatalf("over the burst: %+v %v", d, err)
		}
	})

	t.Run("OKRefusalsRememberedUntilRetryAfter", func(t *testing.T) {
		t.Parallel()
		l, store, clock := newLimiter()
		for range 4 {
			_, _ = l.Take(ctx, tenant)
		}
		asked := store.calls
		clock.Advance(99 * time.Millisecond)
		for range 50 {
			if d, _ := l.Take(ctx, tenant); d.Allowed || d.RetryAfter != time.Millisecond {
				t.Fatalf("before Retry-After: %+v", d)
			}
		}
		if store.calls != asked {
			t.Fatalf("refusals before Retry-After asked the store %d times", store.calls-asked)
		}
		clock.Advance(time.Millisecond)
		if d, _ := l.Take(ctx, tenant); !d.Allowed {
			t.Fatalf("at Retry-After: %+v", d)
		}
		if store.calls != asked+1 {
			t.Fatalf("the store was asked %d times at Retry-After, want once", store.calls-asked)
		}
		// Another tenant is not refused by what this one learnt.
		if d, _ := l.Take(ctx, uuid.New()); !d.Allowed {
			t.Fatalf("another tenant: %+v", d)
		}
	})

	t.Run("ErrStoreFailureIsReturned", func(t *testing.T) {
		t.Parallel()
		l, store, _ := newLimiter()
		store.err = errors.New("connection refused")
		if _, err := l.Take(ctx, tenant); !errors.Is(err, store.err) {
			t.Fatalf("got %v, want the store's error wrapped", err)
		}
	})

	t.Run("OKUnlimited", func(t *testing.T) {
		t.Parallel()
		store := &gcraStore{err: errors.New("never asked")}
		if d, err := NewClusterLimiter(store, 0, 10, nil).Take(ctx, tenant); err != nil || !d.Allowed || store.calls != 0 {
			t.Fatalf("%+v %v, %d calls", d, err, store.calls)
		}
	})
}
