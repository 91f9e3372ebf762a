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
	FindStalled(ctx context.Context, grace time.Duration, limit int) ([]domain.StalledMessage, error)
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
}

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
	stalled, err := w.store.FindStalled(ctx, w.grace, 500)
	if err != nil {
		return err
	}
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
