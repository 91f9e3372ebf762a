package jobs

import (
	"context"
	"fmt"
	"log/slog"
	"time"

	"github.com/riverqueue/river"

	"github.com/mailgate/mailgate/domain"
)

// QueueMaintenance runs housekeeping jobs, apart from deliveries.
const QueueMaintenance = "maintenance"

// AttachmentGracePeriod is how long an uploaded attachment may wait for a
// message to reference it before it is purged.
const AttachmentGracePeriod = 24 * time.Hour

// PurgeExpiredArgs is the periodic housekeeping job: it removes attachments
// no message references once their grace period is over, and idempotency
// keys past their time to live.
type PurgeExpiredArgs struct{}

// Kind implements river.JobArgs. It keeps the job's first name, from when it
// purged attachments only: River stores the kind with every job, and a
// rename would leave jobs already queued without a worker.
func (PurgeExpiredArgs) Kind() string { return "purge_attachments" }

// InsertOpts implements river.JobArgsWithInsertOpts.
func (PurgeExpiredArgs) InsertOpts() river.InsertOpts {
	return river.InsertOpts{Queue: QueueMaintenance, MaxAttempts: 3}
}

// ExpiredPurger deletes what the housekeeping job finds expired.
type ExpiredPurger interface {
	PurgeUnreferencedAttachments(ctx context.Context, createdBefore time.Time) (int64, error)
	PurgeIdempotencyKeys(ctx context.Context, createdBefore time.Time) (int64, error)
}

// PurgeExpiredWorker deletes unreferenced attachments past their grace
// period and idempotency keys past domain.IdempotencyKeyTTL.
type PurgeExpiredWorker struct {
	river.WorkerDefaults[PurgeExpiredArgs]
	store  ExpiredPurger
	grace  time.Duration
	logger *slog.Logger
}

// NewPurgeExpiredWorker returns the housekeeping worker; grace is the
// attachments' grace period (<= 0 means AttachmentGracePeriod).
func NewPurgeExpiredWorker(store ExpiredPurger, grace time.Duration, logger *slog.Logger) *PurgeExpiredWorker {
	if grace <= 0 {
		grace = AttachmentGracePeriod
	}
	return &PurgeExpiredWorker{store: store, grace: grace, logger: logger}
}

// Work implements river.Worker.
func (w *PurgeExpiredWorker) Work(ctx context.Context, _ *river.Job[PurgeExpiredArgs]) error {
	n, err := w.store.PurgeUnreferencedAttachments(ctx, time.Now().Add(-w.grace))
	if err != nil {
		return fmt.Errorf("purge attachments: %w", err)
	}
	if n > 0 {
		w.logger.Info("purged unreferenced attachments", "count", n)
	}
	// Idempotency keys share the housekeeping run: both expire by age.
	if _, err := w.store.PurgeIdempotencyKeys(ctx, time.Now().Add(-domain.IdempotencyKeyTTL)); err != nil {
		return err
	}
	return nil
}
