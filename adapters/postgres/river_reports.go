package postgres

import (
	"context"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/mailgate/mailgate/domain"
)

// River's schema is River's: its rows change only through River's client
// (jobs.Enqueuer, jobs.JobCompleter, the control paths' JobCancelTx and
// JobRetryTx). The reads of River's tables made for reports live in this
// file alone, so a River upgrade has one place to check, and
// TestRiverReportsAgainstRiversMigrations runs each of them against River's
// current migrations: a renamed column or state fails it, not a scrape.

// QueueStat is one queue and state's job count; OldestAvailableAt is set for
// available jobs.
type QueueStat = domain.QueueStat

// QueueStats counts River jobs by queue and state for the metrics scrape,
// bounded by a statement timeout. Finished jobs are left out: River prunes
// them and they say nothing about the backlog. A job has waited since it was
// due or created, whichever is later: webhook jobs are due at a fair-queue
// tag in the past (see tagWebhookJobs).
func (s *Store) QueueStats(ctx context.Context) ([]QueueStat, error) {
	var out []QueueStat
	err := s.inTx(ctx, operatorScope, func(tx pgx.Tx) error {
		if _, err := tx.Exec(ctx, `SET LOCAL statement_timeout = '2s'`); err != nil {
			return err
		}
		rows, err := tx.Query(ctx, `
			SELECT queue, state::text, count(*),
			       -- Not scheduled_at: delivery jobs carry a fair-queuing tag there.
			       min(greatest(created_at, least(scheduled_at, now()))) FILTER (WHERE state = 'available')
			FROM river_job WHERE state NOT IN ('completed', 'cancelled', 'discarded')
			GROUP BY queue, state`)
		if err != nil {
			return err
		}
		out, err = pgx.CollectRows(rows, func(row pgx.CollectableRow) (QueueStat, error) {
			var (
				q      QueueStat
				oldest *time.Time
			)
			err := row.Scan(&q.Queue, &q.State, &q.Jobs, &oldest)
			if oldest != nil {
				q.OldestAvailableAt = *oldest
			}
			return q, err
		})
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("queue stats: %w", err)
	}
	return out, nil
}
