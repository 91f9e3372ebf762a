package jobs

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/riverqueue/river"
	"github.com/riverqueue/river/riverdriver/riverpgxv5"
	"github.com/riverqueue/river/rivertype"

	"github.com/mailgate/mailgate/domain"
)

// Config tunes the River client.
type Config struct {
	// Workers is the delivery queue's concurrency (MAILGATE_WORKERS).
	Workers int
	// FetchCooldown and FetchPollInterval bound how soon a new job starts.
	// River's defaults (100 ms / 1 s) cap a queue at Workers/FetchCooldown
	// jobs a second; short SMTP jobs want a shorter cooldown.
	FetchCooldown     time.Duration
	FetchPollInterval time.Duration
	// RetryBase and RetryMax shape the exponential backoff between attempts.
	RetryBase time.Duration
	RetryMax  time.Duration
	// ReconcileEvery is how often stalled messages are looked for.
	ReconcileEvery time.Duration
	// RescueAfter is how long a job may stay running before River's rescuer
	// takes it back from a worker that vanished; it must exceed every
	// worker's timeout (NewWorkerClient derives it from the delivery worker's).
	RescueAfter time.Duration
	Logger      *slog.Logger
}

// The fetch settings a worker uses when none are configured.
const (
	DefaultFetchCooldown     = 10 * time.Millisecond
	DefaultFetchPollInterval = 500 * time.Millisecond
)

func (c Config) withDefaults() Config {
	if c.Workers <= 0 {
		c.Workers = 50
	}
	if c.FetchCooldown <= 0 {
		c.FetchCooldown = DefaultFetchCooldown
	}
	if c.FetchPollInterval <= 0 {
		c.FetchPollInterval = DefaultFetchPollInterval
	}
	if c.FetchPollInterval < c.FetchCooldown {
		c.FetchPollInterval = c.FetchCooldown
	}
	if c.RetryBase <= 0 {
		c.RetryBase = time.Minute
	}
	if c.RetryMax <= 0 {
		c.RetryMax = 4 * time.Hour
	}
	if c.ReconcileEvery <= 0 {
		c.ReconcileEvery = time.Minute
	}
	if c.Logger == nil {
		c.Logger = slog.Default()
	}
	return c
}

// NewInsertClient returns a client that only inserts jobs (the API role).
func NewInsertClient(pool *pgxpool.Pool, cfg Config) (*river.Client[pgx.Tx], error) {
	cfg = cfg.withDefaults()
	// FetchCooldown also paces this client's insert notifications: River's
	// default (100 ms) would leave most low-load inserts to wait for a later
	// notification or the workers' poll.
	client, err := river.NewClient(riverpgxv5.New(pool), &river.Config{Logger: cfg.Logger, FetchCooldown: cfg.FetchCooldown})
	if err != nil {
		return nil, fmt.Errorf("river insert client: %w", err)
	}
	return client, nil
}

// Workers are the River workers a worker process runs.
type Workers struct {
	Delivery  *DeliveryWorker
	Purge     *PurgeExpiredWorker
	Webhooks  *DeliverWebhookWorker
	Reconcile *ReconcileWorker
	// Release is optional: nil leaves release_held jobs to another process.
	Release *ReleaseHeldWorker
	// Inbound is optional: nil leaves received bounces and replies to another process.
	Inbound *InboundWorker
	// InboundRetention is optional: nil keeps settled inbound messages.
	InboundRetention *PurgeInboundWorker
}

// NewWorkerClient returns a client that works the delivery, webhook and
// maintenance queues, and the rescuer of the jobs it fetches but never
// starts (run it while the client runs).
func NewWorkerClient(pool *pgxpool.Pool, cfg Config, w Workers) (*river.Client[pgx.Tx], *StrandedRescuer, error) {
	cfg = cfg.withDefaults()
	workers := river.NewWorkers()
	if err := river.AddWorkerSafely(workers, w.Delivery); err != nil {
		return nil, nil, fmt.Errorf("register delivery worker: %w", err)
	}
	if err := river.AddWorkerSafely(workers, w.Purge); err != nil {
		return nil, nil, fmt.Errorf("register purge worker: %w", err)
	}
	if err := river.AddWorkerSafely(workers, w.Webhooks); err != nil {
		return nil, nil, fmt.Errorf("register webhook worker: %w", err)
	}
	if err := river.AddWorkerSafely(workers, w.Reconcile); err != nil {
		return nil, nil, fmt.Errorf("register reconcile worker: %w", err)
	}
	if w.Release != nil {
		if err := river.AddWorkerSafely(workers, w.Release); err != nil {
			return nil, nil, fmt.Errorf("register release worker: %w", err)
		}
	}
	queues := map[string]river.QueueConfig{
		QueueDelivery:    {MaxWorkers: cfg.Workers},
		QueueMaintenance: {MaxWorkers: 2},
		QueueWebhooks:    {MaxWorkers: max(cfg.Workers/2, 5)},
	}
	if w.Inbound != nil {
		if err := river.AddWorkerSafely(workers, w.Inbound); err != nil {
			return nil, nil, fmt.Errorf("register inbound worker: %w", err)
		}
		queues[QueueInbound] = river.QueueConfig{MaxWorkers: 4}
	}
	periodic := []*river.PeriodicJob{
		river.NewPeriodicJob(river.PeriodicInterval(time.Hour),
			func() (river.JobArgs, *river.InsertOpts) { return PurgeExpiredArgs{}, nil },
			&river.PeriodicJobOpts{RunOnStart: true}),
		river.NewPeriodicJob(river.PeriodicInterval(cfg.ReconcileEvery),
			func() (river.JobArgs, *river.InsertOpts) { return ReconcileArgs{}, nil },
			&river.PeriodicJobOpts{RunOnStart: true}),
	}
	if w.InboundRetention != nil {
		if err := river.AddWorkerSafely(workers, w.InboundRetention); err != nil {
			return nil, nil, fmt.Errorf("register inbound retention worker: %w", err)
		}
		periodic = append(periodic, river.NewPeriodicJob(river.PeriodicInterval(time.Hour),
			func() (river.JobArgs, *river.InsertOpts) { return PurgeInboundArgs{}, nil },
			&river.PeriodicJobOpts{RunOnStart: true}))
	}
	// A job whose worker died stays running until the rescuer sees it: just
	// past the longest job timeout, not River's default hour.
	rescueAfter := cfg.RescueAfter
	if floor := w.Delivery.JobTimeout() + 30*time.Second; rescueAfter < floor {
		rescueAfter = floor
	}
	tracker := newWorkTracker()
	driver := riverpgxv5.New(pool)
	client, err := river.NewClient(driver, &river.Config{
		Logger:               cfg.Logger,
		Workers:              workers,
		Middleware:           []rivertype.Middleware{tracker},
		RescueStuckJobsAfter: rescueAfter,
		Queues:               queues,
		PeriodicJobs:         periodic,
		FetchCooldown:        cfg.FetchCooldown,
		FetchPollInterval:    cfg.FetchPollInterval,
		RetryPolicy:          &BackoffPolicy{Base: cfg.RetryBase, Max: cfg.RetryMax},
	})
	if err != nil {
		return nil, nil, fmt.Errorf("river worker client: %w", err)
	}
	return client, &StrandedRescuer{client: client, exec: driver.GetExecutor(), tracker: tracker, logger: cfg.Logger}, nil
}

// BackoffPolicy retries after Base·2^(attempt-1), capped at Max, with ±25 %
// jitter so a relay outage doesn't end in a synchronized retry storm.
type BackoffPolicy struct {
	Base, Max time.Duration
}

// NextRetry implements river.ClientRetryPolicy.
func (p *BackoffPolicy) NextRetry(job *rivertype.JobRow) time.Time {
	attempt := max(job.Attempt, 1)
	delay := p.Max
	if attempt < 40 {
		if d := p.Base << (attempt - 1); d > 0 && d < p.Max {
			delay = d
		}
	}
	jitter := time.Duration((rand.Float64() - 0.5) * 0.5 * float64(delay))
	return time.Now().Add(delay + jitter)
}

// Enqueuer inserts delivery jobs in the caller's transaction.
type Enqueuer struct {
	client *river.Client[pgx.Tx]
	fair   *FairClock
}

// NewEnqueuer wraps a River client (an insert-only one is enough); fair tags
// immediate deliveries for fair ordering between tenants (nil: plain FIFO).
func NewEnqueuer(client *river.Client[pgx.Tx], fair *FairClock) *Enqueuer {
	return &Enqueuer{client: client, fair: fair}
}

// CancelJobTx cancels a job that is not running, inside tx.
func (e *Enqueuer) CancelJobTx(ctx context.Context, tx pgx.Tx, jobID int64) error {
	_, err := e.client.JobCancelTx(ctx, tx, jobID)
	if errors.Is(err, river.ErrNotFound) {
		return nil
	}
	return err
}

// RetryJobTx makes a waiting job available now, inside tx.
func (e *Enqueuer) RetryJobTx(ctx context.Context, tx pgx.Tx, jobID int64) error {
	_, err := e.client.JobRetryTx(ctx, tx, jobID)
	if errors.Is(err, river.ErrNotFound) {
		return nil
	}
	return err
}

// EnqueueDeliveriesTx inserts delivery jobs inside tx with one batch insert,
// each scheduled at its time when set, and returns the job ids in order.
func (e *Enqueuer) EnqueueDeliveriesTx(ctx context.Context, tx pgx.Tx, tenant uuid.UUID, deliveries []domain.ScheduledDelivery) ([]int64, error) {
	params := make([]river.InsertManyParams, len(deliveries))
	var tags []time.Time
	if e.fair != nil {
		tags = e.fair.Tags(tenant, len(deliveries))
	}
	for i, d := range deliveries {
		opts := DeliverMessageArgs{}.InsertOpts()
		opts.ScheduledAt = d.At
		if d.At.IsZero() && tags != nil {
			opts.ScheduledAt = tags[i]
		}
		params[i] = river.InsertManyParams{Args: DeliverMessageArgs{SubscriptionID: tenant, MessageID: d.MessageID}, InsertOpts: &opts}
	}
	res, err := e.client.InsertManyTx(ctx, tx, params)
	if err != nil {
		return nil, err
	}
	ids := make([]int64, len(res))
	for i, r := range res {
		ids[i] = r.Job.ID
	}
	return ids, nil
}
