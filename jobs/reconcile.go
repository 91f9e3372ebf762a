package jobs

import (
	"context"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"github.com/riverqueue/river"

	"github.com/mailgate/mailgate/domain"
)

// ReconcileArgs is the periodic job that finds messages nothing is
// delivering any more, so nothing is ever silently stuck.
type ReconcileArgs struct{}

// Kind implements river.JobArgs.
func (ReconcileArgs) Kind() string { return "reconcile_deliveries" }

// InsertOpts implements river.JobArgsWithInsertOpts.
func (ReconcileArgs) InsertOpts() river.InsertOpts {
	return river.InsertOpts{Queue: QueueMaintenance, MaxAttempts: 3}
}

// Reconciler is the persistence the reconcile job needs.
type Reconciler interface {
	FindStalled(ctx context.Context, q domain.StallSearch) (domain.StallPass, error)
	Reconcile(ctx context.Context, m domain.StalledMessage, maxAge time.Duration) (domain.StallAction, error)
}

// ReconcileWorker applies domain.DecideStall to unsettled messages: an
// interrupted attempt goes back to queued, a message whose job was lost is
// requeued, or failed with an event once it is past the delivery age.
type ReconcileWorker struct {
	river.WorkerDefaults[ReconcileArgs]
	store  Reconciler
	grace  time.Duration
	maxAge time.Duration
	logger *slog.Logger
	// sweepAfter is where this process's next pass continues the sweep of
	// queued messages. Passes run one at a time cluster-wide but on any
	// worker process; one that starts from another position only sweeps a
	// stretch twice, never skips one for good.
	mu         sync.Mutex
	sweepAfter domain.SweepKey
}

const (
	// stallLimit caps the messages each part of a pass returns.
	stallLimit = 500
	// sweepRows bounds the queued messages one pass sweeps for a lost job:
	// about 100 ms with a million queued (BenchmarkDeliveryBacklog: 201 ms
	// for 20,000, each probing its job), where reading them all took 1.6 s
	// of both cores at every pass. A backlog of a million is swept in 100
	// passes, while the other parts find interrupted attempts and
	// cancelled or discarded jobs at every pass.
	sweepRows = 10_000
	// finishedLookback is how far back a pass looks for jobs River
	// finished without settling their message: fifteen passes at the
	// default interval, so a pass still sees what happened during a short
	// outage of the workers, while the index range it reads (the cancelled
	// and discarded jobs of that window) stays small; the sweep catches
	// anything older in turn.
	finishedLookback = 15 * time.Minute
)

// NewReconcileWorker returns the reconciler; a message is only looked at once
// it has been unchanged for grace, so a write in progress is never a stall.
func NewReconcileWorker(store Reconciler, grace, maxAge time.Duration, logger *slog.Logger) *ReconcileWorker {
	if maxAge <= 0 {
		maxAge = domain.MaxDeliveryAge
	}
	return &ReconcileWorker{store: store, grace: grace, maxAge: maxAge, logger: logger}
}

// Work implements river.Worker.
func (w *ReconcileWorker) Work(ctx context.Context, _ *river.Job[ReconcileArgs]) error {
	w.mu.Lock()
	after := w.sweepAfter
	w.mu.Unlock()
	pass, err := w.store.FindStalled(ctx, domain.StallSearch{
		Grace: w.grace, Limit: stallLimit, FinishedSince: time.Now().Add(-finishedLookback),
		JobKind: DeliverMessageArgs{}.Kind(), SweepAfter: after, SweepRows: sweepRows,
	})
	if err != nil {
		return err
	}
	w.mu.Lock()
	w.sweepAfter = pass.SweepNext
	w.mu.Unlock()
	stalled := pass.Stalled
	var failed int
	done := map[domain.StallAction]int{}
	for _, m := range stalled {
		action, err := w.store.Reconcile(ctx, m, w.maxAge)
		if err != nil {
			failed++
			w.logger.Error("reconcile message", "message_id", m.ID, "subscription_id", m.SubscriptionID, "error", err)
			continue
		}
		done[action]++
	}
	if len(stalled) > 0 {
		w.logger.Warn("reconciled stalled messages", "found", len(stalled), "reset", done[domain.StallReset],
			"requeued", done[domain.StallRequeue], "failed", done[domain.StallGiveUp], "errors", failed)
	}
	if failed > 0 {
		return fmt.Errorf("%d of %d stalled messages could not be reconciled", failed, len(stalled))
	}
	return nil
}
