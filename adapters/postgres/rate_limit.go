package postgres

import (
	"context"
	"fmt"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"
)

// TakeRateToken takes one request from tenant's API rate limiter, a GCRA
// kept in one row that every API process shares: a request may pass when,
// with interval added to the tenant's theoretical arrival time (never
// earlier than now), that time is at most capacity (burst × interval)
// ahead of now. debt is how far ahead of now the arrival time is after the
// call. The row lock serializes a tenant's concurrent requests, so the limit
// is exact across any number of processes; only the database's clock is
// read. It costs one round trip and no WAL flush (the table is unlogged).
func (s *Store) TakeRateToken(ctx context.Context, tenant uuid.UUID, interval, capacity time.Duration) (granted bool, debt time.Duration, err error) {
	var debtMicros int64
	b := newBatch(tenantScope(tenant))
	// A refused request rewrites the row unchanged rather than skipping the
	// update, so the current arrival time comes back for Retry-After.
	b.Queue(`
		INSERT INTO api_rate_limits AS r (subscription_id, tat, granted)
		VALUES ($1, now() + $2::bigint * interval '1 microsecond', true)
		ON CONFLICT (subscription_id) DO UPDATE SET
			granted = greatest(r.tat, now()) + $2::bigint * interval '1 microsecond' <= now() + $3::bigint * interval '1 microsecond',
			tat = CASE WHEN greatest(r.tat, now()) + $2::bigint * interval '1 microsecond' <= now() + $3::bigint * interval '1 microsecond'
				THEN greatest(r.tat, now()) + $2::bigint * interval '1 microsecond' ELSE r.tat END
		RETURNING granted, (extract(epoch FROM tat - now()) * 1e6)::bigint`,
		tenant, interval.Microseconds(), capacity.Microseconds()).
		QueryRow(func(row pgx.Row) error { return row.Scan(&granted, &debtMicros) })
	if err := s.read(ctx, b); err != nil {
		return false, 0, fmt.Errorf("take a rate token: %w", err)
	}
	return granted, time.Duration(debtMicros) * time.Microsecond, nil
}
