package postgres

import (
	"context"
	"errors"
	"fmt"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
)

// inPipelinedTx runs a transaction whose BEGIN, scope and first statements
// (b) travel in one round trip, then fn for what depends on their results
// (River's inserts and completions), then COMMIT. It saves inTx's separate
// BEGIN round trip, which on the delivery path's group commits was a
// quarter of a group's time.
func (s *Store) inPipelinedTx(ctx context.Context, sc scope, b *pgx.Batch, fn func(tx pgx.Tx) error) error {
	conn, err := s.pool.Acquire(ctx)
	if err != nil {
		return fmt.Errorf("acquire a connection: %w", err)
	}
	// A connection still inside a transaction (a ROLLBACK that failed) is
	// not idle, and the pool destroys it on release rather than reuse it.
	defer conn.Release()
	full := &pgx.Batch{QueuedQueries: make([]*pgx.QueuedQuery, 0, len(b.QueuedQueries)+2)}
	full.Queue("BEGIN")
	full.Queue(sc.setting())
	full.QueuedQueries = append(full.QueuedQueries, b.QueuedQueries...)
	tx := &batchTx{conn: conn.Conn()}
	defer func() { _ = tx.Rollback(context.WithoutCancel(ctx)) }()
	if err := conn.SendBatch(ctx, full).Close(); err != nil {
		return err
	}
	if fn != nil {
		if err := fn(tx); err != nil {
			return err
		}
	}
	return tx.Commit(ctx)
}

// batchTx is a transaction begun by a BEGIN inside a batch. pgx has no way
// to adopt such a transaction as a pgx.Tx, which River's client needs to
// insert and complete jobs in it; this is the smallest pgx.Tx over the
// connection. Nested transactions (savepoints) are refused: nothing on the
// delivery path uses them.
type batchTx struct {
	conn *pgx.Conn
	done bool
}

var _ pgx.Tx = (*batchTx)(nil)

var errNestedBatchTx = errors.New("a transaction begun in a batch takes no nested transaction")

func (t *batchTx) Begin(context.Context) (pgx.Tx, error) { return nil, errNestedBatchTx }

func (t *batchTx) Commit(ctx context.Context) error {
	if t.done {
		return pgx.ErrTxClosed
	}
	t.done = true
	tag, err := t.conn.Exec(ctx, "COMMIT")
	if err != nil {
		return fmt.Errorf("commit: %w", err)
	}
	if tag.String() != "COMMIT" {
		// PostgreSQL answers COMMIT of a failed transaction with ROLLBACK.
		return pgx.ErrTxCommitRollback
	}
	return nil
}

func (t *batchTx) Rollback(ctx context.Context) error {
	if t.done {
		return pgx.ErrTxClosed
	}
	t.done = true
	_, err := t.conn.Exec(ctx, "ROLLBACK")
	return err
}

func (t *batchTx) CopyFrom(ctx context.Context, table pgx.Identifier, columns []string, rows pgx.CopyFromSource) (int64, error) {
	return t.conn.CopyFrom(ctx, table, columns, rows)
}

func (t *batchTx) SendBatch(ctx context.Context, b *pgx.Batch) pgx.BatchResults {
	return t.conn.SendBatch(ctx, b)
}

// LargeObjects is part of pgx.Tx; its zero value is all pgx lets another
// package build, and nothing here uses large objects.
func (t *batchTx) LargeObjects() pgx.LargeObjects { return pgx.LargeObjects{} }

func (t *batchTx) Prepare(ctx context.Context, name, sql string) (*pgconn.StatementDescription, error) {
	return t.conn.Prepare(ctx, name, sql)
}

func (t *batchTx) Exec(ctx context.Context, sql string, args ...any) (pgconn.CommandTag, error) {
	return t.conn.Exec(ctx, sql, args...)
}

func (t *batchTx) Query(ctx context.Context, sql string, args ...any) (pgx.Rows, error) {
	return t.conn.Query(ctx, sql, args...)
}

func (t *batchTx) QueryRow(ctx context.Context, sql string, args ...any) pgx.Row {
	return t.conn.QueryRow(ctx, sql, args...)
}

func (t *batchTx) Conn() *pgx.Conn { return t.conn }
