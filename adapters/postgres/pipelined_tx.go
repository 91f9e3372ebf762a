package postgres

import (
	"context"

	"github.com/jackc/pgx/v5"
)

// inPipelinedTx runs a transaction whose BEGIN, scope and first statements
// (b) travel in one round trip, then fn for what depends on their results
// (River's inserts and completions), then COMMIT. It saves inTx's separate
// BEGIN round trip, which on the delivery path's group commits was a
// quarter of a group's time.
func (s *Store) inPipelinedTx(ctx context.Context, sc scope, b *pgx.Batch, fn func(tx pgx.Tx) error) error {
	first := &pgx.Batch{}
	first.Queue(sc.setting())
	first.QueuedQueries = append(first.QueuedQueries, b.QueuedQueries...)
	tx, err := beginPipelined(ctx, s.pool, first)
	if err != nil {
		return err
	}
	defer tx.release(ctx)
	if fn != nil {
		if err := fn(tx); err != nil {
			return err
		}
	}
	return tx.Commit(ctx)
}
