package jobs

import (
	"context"
	"fmt"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"
	"github.com/riverqueue/river"
)

// releaseAgain is how long after a reinstatement held deliveries are
// released a second time: a hold decided just before the reinstatement
// commits its snooze a moment later (River records it asynchronously), and
// the first release, finding that job still running, passes it by.
const releaseAgain = 5 * time.Second

// ReleaseHeldArgs releases a reinstated tenant's held deliveries once more,
// shortly after the reinstatement.
type ReleaseHeldArgs struct {
	SubscriptionID uuid.UUID `json:"subscription_id"`
}

// Kind implements river.JobArgs.
func (ReleaseHeldArgs) Kind() string { return "release_held" }

// InsertOpts implements river.JobArgsWithInsertOpts.
func (ReleaseHeldArgs) InsertOpts() river.InsertOpts {
	return river.InsertOpts{Queue: QueueMaintenance, MaxAttempts: 5}
}

// HeldReleaser is the persistence the release job needs.
type HeldReleaser interface {
	ReleaseHeld(ctx context.Context, tenant uuid.UUID) (int, error)
}

// ReleaseHeldWorker makes a reinstated tenant's held deliveries available.
type ReleaseHeldWorker struct {
	river.WorkerDefaults[ReleaseHeldArgs]
	store HeldReleaser
}

// NewReleaseHeldWorker returns the worker.
func NewReleaseHeldWorker(store HeldReleaser) *ReleaseHeldWorker {
	return &ReleaseHeldWorker{store: store}
}

// Work implements river.Worker.
func (w *ReleaseHeldWorker) Work(ctx context.Context, job *river.Job[ReleaseHeldArgs]) error {
	if _, err := w.store.ReleaseHeld(ctx, job.Args.SubscriptionID); err != nil {
		return fmt.Errorf("release held deliveries: %w", err)
	}
	return nil
}

// EnqueueReleaseHeldTx schedules the second release of a tenant's held
// deliveries inside tx, the reinstatement's transaction.
func (e *Enqueuer) EnqueueReleaseHeldTx(ctx context.Context, tx pgx.Tx, tenant uuid.UUID) error {
	_, err := e.client.InsertTx(ctx, tx, ReleaseHeldArgs{SubscriptionID: tenant}, &river.InsertOpts{ScheduledAt: time.Now().Add(releaseAgain)})
	return err
}
