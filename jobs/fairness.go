package jobs

import (
	"context"
	"sync"
	"time"

	"github.com/google/uuid"

	"github.com/mailgate/mailgate/domain"
)

// Fair queuing between tenants, decided when a delivery job is inserted.
//
// River hands out available jobs in (priority, scheduled_at, id) order. Each
// new job's scheduled_at is a tag on a per-tenant virtual clock: every job a
// tenant queues moves its clock Quantum/weight ahead, starting from now when
// the tenant was idle. Sorting by tag interleaves tenants in proportion to
// their weights, so a tenant that queued 20,000 messages a moment ago does
// not stand in front of another tenant's one message. Tags are shifted into
// the past by MaxLead so every job is available at once: the order is fair,
// and a tenant alone still has every worker (work-conserving), across any
// number of worker processes, because the order lives in PostgreSQL. Nothing
// runs on the fetch path.
//
// The clocks of all API processes meet in the delivery_clocks table: each
// process advances its local clock as it tags, and every SyncEvery publishes
// what it added and adopts the furthest clock, so two replicas tagging for
// one tenant don't give it twice its share.

// FairClockStore keeps the tenants' shared virtual clocks and weights.
type FairClockStore interface {
	// AdvanceClocks adds each tenant's advance to its shared clock (never
	// behind floor) and returns the clocks and weights now in force.
	AdvanceClocks(ctx context.Context, advances map[uuid.UUID]time.Duration, floor time.Time) (map[uuid.UUID]domain.TenantClock, error)
}

// FairClock tags delivery jobs for fair ordering.
type FairClock struct {
	// Quantum is how far one message of a weight-1 tenant moves its clock.
	Quantum time.Duration
	// MaxLead bounds how far a tenant's clock may run ahead of now; tags are
	// shifted back by it so they are always in the past.
	MaxLead time.Duration
	now     func() time.Time

	mu      sync.Mutex
	tenants map[uuid.UUID]*localClock
}

type localClock struct {
	virtual time.Time
	weight  float64
	// unsynced is the advance not yet published to the shared clock.
	unsynced time.Duration
	lastUsed time.Time
}

// NewFairClock returns a clock with a 10 ms quantum and a one-hour lead bound.
func NewFairClock() *FairClock {
	return &FairClock{Quantum: 10 * time.Millisecond, MaxLead: time.Hour, now: time.Now, tenants: map[uuid.UUID]*localClock{}}
}

// Tags returns n scheduled_at tags for tenant's next jobs, in order.
func (f *FairClock) Tags(tenant uuid.UUID, n int) []time.Time {
	now := f.now()
	f.mu.Lock()
	defer f.mu.Unlock()
	c := f.tenants[tenant]
	if c == nil {
		c = &localClock{weight: 1}
		f.tenants[tenant] = c
	}
	c.lastUsed = now
	step := time.Duration(float64(f.Quantum) / c.weight)
	tags := make([]time.Time, n)
	for i := range tags {
		if c.virtual.Before(now) {
			c.virtual = now
		}
		c.virtual = c.virtual.Add(step)
		if limit := now.Add(f.MaxLead); c.virtual.After(limit) {
			c.virtual = limit
		}
		c.unsynced += step
		tags[i] = c.virtual.Add(-f.MaxLead)
	}
	return tags
}

// Sync publishes the local advances and adopts the shared clocks and
// weights; tenants idle for longer than MaxLead are forgotten.
func (f *FairClock) Sync(ctx context.Context, store FairClockStore) error {
	now := f.now()
	f.mu.Lock()
	advances := make(map[uuid.UUID]time.Duration, len(f.tenants))
	for id, c := range f.tenants {
		if c.unsynced > 0 || now.Sub(c.lastUsed) < 10*time.Second {
			advances[id] = c.unsynced
		}
		c.unsynced = 0
	}
	f.mu.Unlock()
	if len(advances) == 0 {
		return nil
	}
	shared, err := store.AdvanceClocks(ctx, advances, now)
	f.mu.Lock()
	defer f.mu.Unlock()
	if err != nil {
		// Keep the advances for the next round.
		for id, d := range advances {
			if c := f.tenants[id]; c != nil {
				c.unsynced += d
			}
		}
		return err
	}
	for id, sc := range shared {
		c := f.tenants[id]
		if c == nil {
			continue
		}
		if sc.VirtualTime.After(c.virtual) {
			c.virtual = sc.VirtualTime
		}
		if sc.Weight > 0 {
			c.weight = sc.Weight
		}
	}
	for id, c := range f.tenants {
		if now.Sub(c.lastUsed) > f.MaxLead && c.unsynced == 0 {
			delete(f.tenants, id)
		}
	}
	return nil
}

// Run syncs every interval until ctx ends.
func (f *FairClock) Run(ctx context.Context, store FairClockStore, every time.Duration, onError func(error)) {
	t := time.NewTicker(every)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			if err := f.Sync(ctx, store); err != nil && ctx.Err() == nil && onError != nil {
				onError(err)
			}
		}
	}
}
