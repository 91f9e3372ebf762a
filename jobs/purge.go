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

// PurgeAttachmentsArgs is the periodic job that removes attachments no
// message references once their grace period is over.
type PurgeAttachmentsArgs struct{}

// Kind implements river.JobArgs.
func (PurgeAttachmentsArgs) Kind() string { return "purge_attachments" }

// InsertOpts implements river.JobArgsWithInsertOpts.
func (PurgeAttachmentsArgs) InsertOpts() river.InsertOpts {
	return river.InsertOpts{Queue: QueueMaintenance, MaxAttempts: 3}
}

// AttachmentPurger is the persistence the purge job needs.
type AttachmentPurger interface {
	PurgeUnreferencedAttachments(ctx context.Context, createdBefore time.Time) (int64, error)
	PurgeIdempotencyKeys(ctx context.Context, createdBefore time.Time) (int64, error)
}

// PurgeAttachmentsWorker deletes unreferenced attachments past their grace period.
type PurgeAttachmentsWorker struct {
	river.WorkerDefaults[PurgeAttachmentsArgs]
	store  AttachmentPurger
	grace  time.Duration
	logger *slog.Logger
}

// NewPurgeAttachmentsWorker returns the purge worker; grace <= 0 means AttachmentGracePeriod.
func NewPurgeAttachmentsWorker(store AttachmentPurger, grace time.Duration, logger *slog.Logger) *PurgeAttachmentsWorker {
	if grace <= 0 {
		grace = AttachmentGracePeriod
	}
	return &PurgeAttachmentsWorker{store: store, grace: grace, logger: logger}
}

// Work implements river.Worker.
func (w *PurgeAttachmentsWorker) Work(ctx context.Context, _ *river.Job[PurgeAttachmentsArgs]) error {
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
