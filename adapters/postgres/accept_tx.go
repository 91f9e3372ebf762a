package postgres

import (
	"context"
	"errors"
	"fmt"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"
)

// pipelinedTx is a transaction whose BEGIN travels in one round trip with
// its first statements, and whose COMMIT may travel with its last ones:
// pgx's own transactions spend a round trip on each. PostgreSQL turns the
// implicit transaction of a pipeline into a regular one when the pipeline
// holds a BEGIN, so what follows BEGIN in the first batch is inside the
// transaction, and the transaction stays open after the batch.
//
// It offers the pgx.Tx that River's InsertManyTx and job completion and the
// store's helpers use (statements, batches, the connection); savepoints,
// COPY and large objects are not offered, since nothing on the accept and
// delivery group commits uses them.
type pipelinedTx struct {
	conn *pgxpool.Conn
	// open is true from the first batch until COMMIT or ROLLBACK.
	open bool
}

var _ pgx.Tx = (*pipelinedTx)(nil)

var errNotOffered = errors.New("not offered by a pipelined transaction")

// beginPipelined acquires a connection and sends BEGIN followed by first's
// statements as one batch.
func beginPipelined(ctx context.Context, pool *pgxpool.Pool, first *pgx.Batch) (*pipelinedTx, error) {
	conn, err := pool.Acquire(ctx)
	if err != nil {
		return nil, fmt.Errorf("begin: %w", err)
	}
	tx := &pipelinedTx{conn: conn, open: true}
	b := &pgx.Batch{QueuedQueries: append([]*pgx.QueuedQuery{{SQL: "BEGIN"}}, first.QueuedQueries...)}
	if err := conn.SendBatch(ctx, b).Close(); err != nil {
		tx.release(ctx)
		return nil, err
	}
	return tx, nil
}

// queueCommit ends b with COMMIT, so the batch's round trip commits too; b
// must then hold only statements whose results need no decision before the
// transaction ends.
func (tx *pipelinedTx) queueCommit(b *pgx.Batch) {
	b.Queue("COMMIT").Exec(func(tag pgconn.CommandTag) error {
		tx.open = false
		if tag.String() == "ROLLBACK" {
			return pgx.ErrTxCommitRollback
		}
		return nil
	})
}

// release rolls back whatever is still open and returns the connection;
// call it once, when done.
func (tx *pipelinedTx) release(ctx context.Context) {
	if tx.conn == nil {
		return
	}
	if tx.open || tx.conn.Conn().PgConn().TxStatus() != 'I' {
		if _, err := tx.conn.Exec(context.WithoutCancel(ctx), "ROLLBACK"); err != nil {
			// A connection in an unknown state must not go back to the pool.
			_ = tx.conn.Conn().Close(context.WithoutCancel(ctx))
		}
	}
	tx.open = false
	tx.conn.Release()
	tx.conn = nil
}

func (tx *pipelinedTx) Begin(context.Context) (pgx.Tx, error) {
	return nil, fmt.Errorf("savepoint: %w", errNotOffered)
}

func (tx *pipelinedTx) Commit(ctx context.Context) error {
	if !tx.open {
		return pgx.ErrTxClosed
	}
	tag, err := tx.conn.Exec(ctx, "COMMIT")
	tx.open = false
	if err != nil {
		return err
	}
	if tag.String() == "ROLLBACK" {
		return pgx.ErrTxCommitRollback
	}
	return nil
}

func (tx *pipelinedTx) Rollback(ctx context.Context) error {
	if !tx.open {
		return pgx.ErrTxClosed
	}
	_, err := tx.conn.Exec(ctx, "ROLLBACK")
	tx.open = false
	return err
}

func (tx *pipelinedTx) CopyFrom(context.Context, pgx.Identifier, []string, pgx.CopyFromSource) (int64, error) {
	return 0, fmt.Errorf("copy: %w", errNotOffered)
}

func (tx *pipelinedTx) SendBatch(ctx context.Context, b *pgx.Batch) pgx.BatchResults {
	return tx.conn.SendBatch(ctx, b)
}

// LargeObjects is never called on the accept path; the zero value it
// returns must not be used.
func (tx *pipelinedTx) LargeObjects() pgx.LargeObjects { return pgx.LargeObjects{} }

func (tx *pipelinedTx) Prepare(ctx context.Context, name, sql string) (*pgconn.StatementDescription, error) {
	return tx.conn.Conn().Prepare(ctx, name, sql)
}

func (tx *pipelinedTx) Exec(ctx context.Context, sql string, args ...any) (pgconn.CommandTag, error) {
	return tx.conn.Exec(ctx, sql, args...)
}

func (tx *pipelinedTx) Query(ctx context.Context, sql string, args ...any) (pgx.Rows, error) {
	return tx.conn.Query(ctx, sql, args...)
}

func (tx *pipelinedTx) QueryRow(ctx context.Context, sql string, args ...any) pgx.Row {
	return tx.conn.QueryRow(ctx, sql, args...)
}

func (tx *pipelinedTx) Conn() *pgx.Conn { return tx.conn.Conn() }
