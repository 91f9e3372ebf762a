package jobs

import (
	"context"
	"fmt"
	"log/slog"
	"time"

	"github.com/riverqueue/river"

	"github.com/mailgate/mailgate/domain"
)

// Inbound retention bounds: a batch is one short transaction, and one run
// deletes at most inboundPurgeMaxBatches of them, so a backlog (the first
// run after retention was shortened) is worked off over several hourly runs
// instead of one long-running job holding the maintenance queue.
const (
	inboundPurgeBatch      = 500
	inboundPurgeMaxBatches = 200
)

// PurgeInboundArgs is the periodic job that deletes settled inbound
// messages, with their raw bytes, once they are older than the retention.
type PurgeInboundArgs struct{}

// Kind implements river.JobArgs.
func (PurgeInboundArgs) Kind() string { return "purge_inbound" }

// InsertOpts implements river.JobArgsWithInsertOpts.
func (PurgeInboundArgs) InsertOpts() river.InsertOpts {
	return river.InsertOpts{Queue: QueueMaintenance, MaxAttempts: 3}
}

// InboundPurger is the persistence the inbound retention job needs.
type InboundPurger interface {
	PurgeSettledInbound(ctx context.Context, receivedBefore time.Time, limit int) (int64, error)
}

// PurgeInboundWorker deletes processed and unmatched inbound messages past
// their retention, in bounded batches.
type PurgeInboundWorker struct {
	river.WorkerDefaults[PurgeInboundArgs]
	store      InboundPurger
	retention  time.Duration
	batch      int
	maxBatches int
	logger     *slog.Logger
	now        func() time.Time
}

// NewPurgeInboundWorker returns the worker; retention <= 0 means
// domain.DefaultInboundRetention.
func NewPurgeInboundWorker(store InboundPurger, retention time.Duration, logger *slog.Logger) *PurgeInboundWorker {
	if retention <= 0 {
		retention = domain.DefaultInboundRetention
	}
	return &PurgeInboundWorker{store: store, retention: retention, batch: inboundPurgeBatch, maxBatches: inboundPurgeMaxBatches,
		logger: logger, now: time.Now}
}

// WithBatches changes the batch size and the batches one run may delete.
func (w *PurgeInboundWorker) WithBatches(size, maxBatches int) *PurgeInboundWorker {
	w.batch, w.maxBatches = max(size, 1), max(maxBatches, 1)
	return w
}

// Work implements river.Worker.
func (w *PurgeInboundWorker) Work(ctx context.Context, _ *river.Job[PurgeInboundArgs]) error {
	cutoff := w.now().Add(-w.retention)
	var total int64
	for range w.maxBatches {
		n, err := w.store.PurgeSettledInbound(ctx, cutoff, w.batch)
		if err != nil {
			return fmt.Errorf("purge inbound messages: %w", err)
		}
		total += n
		if n < int64(w.batch) {
			break
		}
	}
	if total > 0 {
		w.logger.Info("purged settled inbound messages", "count", total, "received_before", cutoff)
	}
	return nil
}
