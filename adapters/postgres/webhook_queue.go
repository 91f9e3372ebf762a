package postgres

import (
	"context"
	"fmt"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"

	"github.com/mailgate/mailgate/domain"
)

// Webhook jobs are fair-queued between tenants (start-time fair queuing).
// River fetches available jobs by (priority, scheduled_at, id), so each new
// webhook job gets a scheduled_at that is a virtual time: the greater of the
// tenant's own last tag and the virtual time the queue is serving now, plus
// one tick per job. A tenant that just fanned out hundreds of jobs has tags
// far ahead; another tenant's next job is tagged at the served time and so
// is fetched after at most about one job of each busy tenant. The virtual
// times live in year 2000 onwards, in the past, so jobs are due at once and
// a busy tenant alone still gets every worker; retries, which River
// schedules at real times, queue behind fresh jobs.
const (
	// webhookQueue is jobs.QueueWebhooks (a test keeps them equal).
	webhookQueue = "webhooks"
	// webhookPriority is River's default priority, which webhook jobs use;
	// the served-time lookups read River's fetch index at this priority.
	webhookPriority = 1
	// fairClockIdle is how long a tenant's last tag is trusted: a tenant
	// that enqueued nothing for this long has no backlog worth keeping its
	// place behind, and River keeps completed jobs (the served-time record)
	// for a day.
	fairClockIdle = time.Hour
)

var (
	// fairQueueEpoch is the earliest virtual time a webhook job is tagged with.
	fairQueueEpoch = time.Date(2000, 1, 1, 0, 0, 0, 0, time.UTC) //nolint:gochecknoglobals // read-only: a fixed instant
	// fairQueueHorizon separates virtual tags from real scheduled times
	// (retries, snoozes); virtual time grows one microsecond per job.
	fairQueueHorizon = time.Date(2015, 1, 1, 0, 0, 0, 0, time.UTC) //nolint:gochecknoglobals // read-only: a fixed instant
)

// fairQueueTick is the virtual time one webhook job costs; the database
// keeps microseconds.
const fairQueueTick = time.Microsecond

// tagWebhookJobs sets each job's QueueTag and moves the tenant's clock past
// them. The clock row stays locked until tx ends, so a tenant's concurrent
// fan-outs take consecutive places.
//
// The served time is the latest tag River has started (running or
// completed) or the oldest tag still waiting, whichever is later; each is
// one probe of River's fetch index (state, queue, priority, scheduled_at).
func tagWebhookJobs(ctx context.Context, tx pgx.Tx, tenant uuid.UUID, jobs []domain.WebhookJob) error {
	n := int64(len(jobs))
	var last time.Time
	err := tx.QueryRow(ctx, `
		WITH served AS (
			SELECT greatest($3::timestamptz,
				(SELECT scheduled_at FROM river_job
					WHERE state = 'available' AND queue = $2 AND priority = $6 AND scheduled_at < $4
					ORDER BY scheduled_at LIMIT 1),
				(SELECT max(scheduled_at) FROM river_job
					WHERE state = 'running' AND queue = $2 AND priority = $6 AND scheduled_at < $4),
				(SELECT max(scheduled_at) FROM river_job
					WHERE state = 'completed' AND queue = $2 AND priority = $6 AND scheduled_at < $4)) AS at)
		INSERT INTO webhook_queue_clocks AS c (subscription_id, last_tag)
		SELECT $1, at + $5 * interval '1 microsecond' FROM served
		ON CONFLICT (subscription_id) DO UPDATE SET
			last_tag = greatest(EXCLUDED.last_tag,
				CASE WHEN c.updated_at > now() - $7 * interval '1 second' THEN c.last_tag + $5 * interval '1 microsecond' END),
			updated_at = now()
		RETURNING last_tag`,
		tenant, webhookQueue, fairQueueEpoch, fairQueueHorizon, n, webhookPriority, int64(fairClockIdle/time.Second)).Scan(&last)
	if err != nil {
		return fmt.Errorf("webhook queue clock: %w", err)
	}
	first := last.Add(-time.Duration(n-1) * fairQueueTick)
	for i := range jobs {
		jobs[i].QueueTag = first.Add(time.Duration(i) * fairQueueTick)
	}
	return nil
}
