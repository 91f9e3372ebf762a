package jobs

import (
	"context"
	"fmt"
	"log/slog"
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
	FindStalled(ctx context.Context, stuckAfter time.Duration, limit int) ([]domain.StalledMessage, error)
	Reconcile(ctx context.Context, m domain.StalledMessage, maxAge time.Duration) error
}

// ReconcileWorker requeues messages whose job was lost, or fails them with an
// event once they are past the delivery age.
type ReconcileWorker struct {
	river.WorkerDefaults[ReconcileArgs]
	store      Reconciler
	stuckAfter time.Duration
	maxAge     time.Duration
	logger     *slog.Logger
}

// NewReconcileWorker returns the reconciler; a message in sending for longer
// than stuckAfter without a running job counts as stalled.
func NewReconcileWorker(store Reconciler, stuckAfter, maxAge time.Duration, logger *slog.Logger) *ReconcileWorker {
	if maxAge <= 0 {
		maxAge = domain.MaxDeliveryAge
	}
	return &ReconcileWorker{store: store, stuckAfter: stuckAfter, maxAge: maxAge, logger: logger}
}

// Work implements river.Worker.
func (w *ReconcileWorker) Work(ctx context.Context, _ *river.Job[ReconcileArgs]) error {
	stalled, err := w.store.FindStalled(ctx, w.stuckAfter, 500)
	if err != nil {
		return err
	}
	var failed int
	for _, m := range stalled {
		if err := w.store.Reconcile(ctx, m, w.maxAge); err != nil {
			failed++
			w.logger.Error("reconcile message", "message_id", m.ID, "subscription_id", m.SubscriptionID, "error", err)
		}
	}
	if len(stalled) > 0 {
		w.logger.Warn("reconciled stalled messages", "count", len(stalled), "errors", failed)
	}
	if failed > 0 {
		return fmt.Errorf("%d of %d stalled messages could not be reconciled", failed, len(stalled))
	}
	return nil
}
