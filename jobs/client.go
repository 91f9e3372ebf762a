package jobs

import (
	"context"
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
	Logger    *slog.Logger
}

func (c Config) withDefaults() Config {
	if c.Workers <= 0 {
		c.Workers = 50
	}
	if c.FetchCooldown <= 0 {
		c.FetchCooldown = 10 * time.Millisecond
	}
	if c.FetchPollInterval <= 0 {
		c.FetchPollInterval = 500 * time.Millisecond
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
	if c.Logger == nil {
		c.Logger = slog.Default()
	}
	return c
}

// NewInsertClient returns a client that only inserts jobs (the API role).
func NewInsertClient(pool *pgxpool.Pool, cfg Config) (*river.Client[pgx.Tx], error) {
	cfg = cfg.withDefaults()
	client, err := river.NewClient(riverpgxv5.New(pool), &river.Config{Logger: cfg.Logger})
	if err != nil {
		return nil, fmt.Errorf("river insert client: %w", err)
	}
	return client, nil
}

// NewWorkerClient returns a client that works the delivery and maintenance queues.
func NewWorkerClient(pool *pgxpool.Pool, cfg Config, delivery *DeliveryWorker, purge *PurgeAttachmentsWorker) (*river.Client[pgx.Tx], error) {
	cfg = cfg.withDefaults()
	workers := river.NewWorkers()
	if err := river.AddWorkerSafely(workers, delivery); err != nil {
		return nil, fmt.Errorf("register delivery worker: %w", err)
	}
	if err := river.AddWorkerSafely(workers, purge); err != nil {
		return nil, fmt.Errorf("register purge worker: %w", err)
	}
	client, err := river.NewClient(riverpgxv5.New(pool), &river.Config{
		Logger:  cfg.Logger,
		Workers: workers,
		Queues: map[string]river.QueueConfig{
			QueueDelivery:    {MaxWorkers: cfg.Workers},
			QueueMaintenance: {MaxWorkers: 2},
		},
		PeriodicJobs: []*river.PeriodicJob{
			river.NewPeriodicJob(river.PeriodicInterval(time.Hour),
				func() (river.JobArgs, *river.InsertOpts) { return PurgeAttachmentsArgs{}, nil },
				&river.PeriodicJobOpts{RunOnStart: true}),
		},
		FetchCooldown:     cfg.FetchCooldown,
		FetchPollInterval: cfg.FetchPollInterval,
		RetryPolicy:       &BackoffPolicy{Base: cfg.RetryBase, Max: cfg.RetryMax},
	})
	if err != nil {
		return nil, fmt.Errorf("river worker client: %w", err)
	}
	return client, nil
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
}

// NewEnqueuer wraps a River client (an insert-only one is enough).
func NewEnqueuer(client *river.Client[pgx.Tx]) *Enqueuer { return &Enqueuer{client: client} }

// EnqueueDeliveryTx inserts the delivery job for a message inside tx.
func (e *Enqueuer) EnqueueDeliveryTx(ctx context.Context, tx pgx.Tx, tenant, messageID uuid.UUID) error {
	_, err := e.client.InsertTx(ctx, tx, DeliverMessageArgs{SubscriptionID: tenant, MessageID: messageID}, nil)
	return err
}
