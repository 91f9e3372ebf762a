package jobs

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"sync"
	"testing"
	"time"

	"github.com/riverqueue/river"
	"github.com/riverqueue/river/riverdriver/riverpgxv5"
	"github.com/riverqueue/river/rivertest"
	"github.com/riverqueue/river/rivertype"

	"github.com/mailgate/mailgate/db/dbtest"
	"github.com/mailgate/mailgate/domain"
)

// fakeInboundPurger holds backlog settled rows older than any cutoff and
// hands out up to limit of them per call.
type fakeInboundPurger struct {
	mu      sync.Mutex
	backlog int64
	err     error
	cutoffs []time.Time
	limits  []int
}

func (p *fakeInboundPurger) PurgeSettledInbound(_ context.Context, receivedBefore time.Time, limit int) (int64, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.cutoffs, p.limits = append(p.cutoffs, receivedBefore), append(p.limits, limit)
	if p.err != nil {
		return 0, p.err
	}
	n := min(p.backlog, int64(limit))
	p.backlog -= n
	return n, nil
}

func workInboundPurge(t *testing.T, w *PurgeInboundWorker) (*rivertest.WorkResult, error) {
	t.Helper()
	tw := rivertest.NewWorker(t, riverpgxv5.New(nil), &river.Config{}, river.Worker[PurgeInboundArgs](w))
	tx := dbtest.Tx(t)
	res, err := tw.Work(t.Context(), t, tx, PurgeInboundArgs{}, nil)
	if res == nil {
		t.Fatalf("work: %v", err)
	}
	return res, err
}

func TestPurgeInboundWorker(t *testing.T) {
	t.Parallel()
	now := time.Date(2026, 6, 1, 12, 0, 0, 0, time.UTC)
	logger := slog.New(slog.NewTextHandler(io.Discard, nil))
	t.Run("OK", func(t *testing.T) {
		t.Parallel()
		// 25 rows in batches of 10: two full batches and a short one end the run.
		store := &fakeInboundPurger{backlog: 25}
		w := NewPurgeInboundWorker(store, 7*24*time.Hour, logger).WithBatches(10, 100)
		w.now = func() time.Time { return now }
		res, err := workInboundPurge(t, w)
		if err != nil || res.EventKind != river.EventKindJobCompleted {
			t.Fatalf("event %s, err %v", res.EventKind, err)
		}
		if len(store.limits) != 3 || store.backlog != 0 || store.limits[0] != 10 {
			t.Fatalf("calls %v, backlog left %d; want 3 batches of 10 emptying it", store.limits, store.backlog)
		}
		for _, c := range store.cutoffs {
			if !c.Equal(now.Add(-7 * 24 * time.Hour)) {
				t.Fatalf("cutoff %s, want the retention before now", c)
			}
		}
	})
	t.Run("BoundedRun", func(t *testing.T) {
		t.Parallel()
		// A backlog larger than one run may take is left for the next run.
		store := &fakeInboundPurger{backlog: 1000}
		w := NewPurgeInboundWorker(store, 0, logger).WithBatches(10, 3)
		w.now = func() time.Time { return now }
		if res, err := workInboundPurge(t, w); err != nil || res.EventKind != river.EventKindJobCompleted {
			t.Fatalf("event %s, err %v", res.EventKind, err)
		}
		if len(store.limits) != 3 || store.backlog != 970 {
			t.Fatalf("%d batches, %d left; want 3 batches, 970 left", len(store.limits), store.backlog)
		}
		if !store.cutoffs[0].Equal(now.Add(-domain.DefaultInboundRetention)) {
			t.Fatalf("cutoff %s, want the default retention", store.cutoffs[0])
		}
	})
	t.Run("ErrStore", func(t *testing.T) {
		t.Parallel()
		store := &fakeInboundPurger{backlog: 5, err: errors.New("database down")}
		res, err := workInboundPurge(t, NewPurgeInboundWorker(store, time.Hour, logger))
		// River's default policy retries the first failure at once (available).
		if err == nil || res.EventKind != river.EventKindJobFailed || res.Job.State == rivertype.JobStateCompleted {
			t.Fatalf("job %s (%s), err %v; want failed and retried", res.Job.State, res.EventKind, err)
		}
	})
}
