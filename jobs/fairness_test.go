package jobs

import (
	"context"
	"sort"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/mailgate/mailgate/domain"
)

type job struct {
	tenant uuid.UUID
	tag    time.Time
}

// fetchOrder sorts jobs as River fetches them (scheduled_at, then id = insertion order).
func fetchOrder(jobs []job) []job {
	sort.SliceStable(jobs, func(i, j int) bool { return jobs[i].tag.Before(jobs[j].tag) })
	return jobs
}

func TestFairClockPutsALateTenantAheadOfAFlood(t *testing.T) {
	t.Parallel()
	now := time.Date(2026, 12, 1, 10, 0, 0, 0, time.UTC)
	f := NewFairClock()
	f.now = func() time.Time { return now }
	flood, late := uuid.New(), uuid.New()
	var jobs []job
	for _, tag := range f.Tags(flood, 20000) {
		jobs = append(jobs, job{flood, tag})
	}
	now = now.Add(100 * time.Millisecond)
	for _, tag := range f.Tags(late, 1) {
		jobs = append(jobs, job{late, tag})
	}
	for i, j := range fetchOrder(jobs) {
		if j.tenant == late {
			// Only the flood's jobs due within the first 100 ms (10 at a
			// 10 ms quantum) come first.
			if i > 11 {
				t.Fatalf("the late tenant's message is at position %d of 20001", i)
			}
			break
		}
	}
	for _, j := range jobs {
		if !j.tag.Before(now) {
			t.Fatal("every tag is in the past, so every job is available at once")
		}
	}
}

func TestFairClockWeightsShares(t *testing.T) {
	t.Parallel()
	now := time.Date(2026, 12, 1, 10, 0, 0, 0, time.UTC)
	f := NewFairClock()
	f.now = func() time.Time { return now }
	heavy, light := uuid.New(), uuid.New()
	store := &fakeClocks{weights: map[uuid.UUID]float64{heavy: 3, light: 1}}
	f.Tags(heavy, 1)
	f.Tags(light, 1)
	if err := f.Sync(context.Background(), store); err != nil {
		t.Fatal(err)
	}
	var jobs []job
	for _, tag := range f.Tags(heavy, 300) {
		jobs = append(jobs, job{heavy, tag})
	}
	for _, tag := range f.Tags(light, 300) {
		jobs = append(jobs, job{light, tag})
	}
	first := fetchOrder(jobs)[:200]
	n := 0
	for _, j := range first {
		if j.tenant == heavy {
			n++
		}
	}
	// Weight 3 against 1: three quarters of the first 200 fetched.
	if n < 140 || n > 160 {
		t.Fatalf("heavy got %d of the first 200, want about 150", n)
	}
}

func TestFairClockSharesAdvanceAcrossProcesses(t *testing.T) {
	t.Parallel()
	now := time.Date(2026, 12, 1, 10, 0, 0, 0, time.UTC)
	store := &fakeClocks{}
	a, b := NewFairClock(), NewFairClock()
	a.now, b.now = func() time.Time { return now }, func() time.Time { return now }
	tenant := uuid.New()
	a.Tags(tenant, 100)
	b.Tags(tenant, 100)
	for _, f := range []*FairClock{a, b, a} {
		if err := f.Sync(context.Background(), store); err != nil {
			t.Fatal(err)
		}
	}
	next := b.Tags(tenant, 1)[0]
	// Both processes' 200 jobs count: the next tag is 200 quanta ahead.
	want := now.Add(201 * 10 * time.Millisecond).Add(-time.Hour)
	if next.Before(want) {
		t.Fatalf("next tag %v is behind %v: a second process doubled the tenant's share", next, want)
	}
}

func TestFairClockBoundsTheLead(t *testing.T) {
	t.Parallel()
	now := time.Date(2026, 12, 1, 10, 0, 0, 0, time.UTC)
	f := NewFairClock()
	f.MaxLead = time.Second
	f.now = func() time.Time { return now }
	tags := f.Tags(uuid.New(), 1000)
	if last := tags[len(tags)-1]; last.After(now) {
		t.Fatalf("tag %v is in the future", last)
	}
}

// fakeClocks is the shared clock table in memory.
type fakeClocks struct {
	clocks  map[uuid.UUID]time.Time
	weights map[uuid.UUID]float64
}

func (f *fakeClocks) AdvanceClocks(_ context.Context, advances map[uuid.UUID]time.Duration, floor time.Time) (map[uuid.UUID]domain.TenantClock, error) {
	if f.clocks == nil {
		f.clocks = map[uuid.UUID]time.Time{}
	}
	out := map[uuid.UUID]domain.TenantClock{}
	for id, d := range advances {
		c := f.clocks[id]
		if c.Before(floor) {
			c = floor
		}
		f.clocks[id] = c.Add(d)
		w := f.weights[id]
		if w == 0 {
			w = 1
		}
		out[id] = domain.TenantClock{VirtualTime: f.clocks[id], Weight: w}
	}
	return out, nil
}
