package postgres

import (
	"context"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"
)

// eventFeedLagQuery measures the lag in seconds. The feed's index leads
// with the tenant, so the events above the horizon are found tenant by
// tenant, each an index probe that reads only what is held back: the cost
// grows with the number of tenants, not with the events table. (An index on
// xact_id alone would make it one probe, but would cost every event insert,
// and building it concurrently deadlocks against the migration lock.)
const eventFeedLagQuery = `SELECT coalesce(extract(epoch FROM now() - min(held.oldest)), 0)::float8
	FROM subscriptions s CROSS JOIN LATERAL (
		SELECT min(e.created_at) AS oldest FROM message_events e
		WHERE e.subscription_id = s.id AND e.xact_id >= pg_snapshot_xmin(pg_current_snapshot())) held`

// EventFeedLag is how long the event feed keeps committed events back: the
// age (from its created_at) of the oldest event, of any tenant, that has
// committed but that the feed does not serve yet because a transaction that
// started before it is still running somewhere on the server. It is 0 when
// nothing waits. Bounded by a statement timeout, for the metrics scrape.
func (s *Store) EventFeedLag(ctx context.Context) (time.Duration, error) {
	var seconds float64
	err := s.inTx(ctx, operatorScope, func(tx pgx.Tx) error {
		if _, err := tx.Exec(ctx, `SET LOCAL statement_timeout = '2s'`); err != nil {
			return err
		}
		return tx.QueryRow(ctx, eventFeedLagQuery).Scan(&seconds)
	})
	if err != nil {
		return 0, fmt.Errorf("event feed lag: %w", err)
	}
	return time.Duration(max(seconds, 0) * float64(time.Second)), nil
}
