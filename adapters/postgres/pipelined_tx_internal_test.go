package postgres

import (
	"context"
	"errors"
	"testing"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/mailgate/mailgate/db/dbtest"
)

// pipelinedTxTable is a scratch table of the test's own schema.
func pipelinedTxTable(t *testing.T) (*Store, *pgxpool.Pool) {
	t.Helper()
	url := dbtest.IsolatedURL(t)
	owner := dbtest.OwnerPoolFor(t, url)
	if _, err := owner.Exec(context.Background(), `CREATE TABLE pipelined (n int PRIMARY KEY, scope text)`); err != nil {
		t.Fatal(err)
	}
	// The owner pool bypasses row-level security, which this table doesn't have.
	return New(owner, nil), owner
}

func TestPipelinedTxCommitsStatementsAndWhatDependsOnThem(t *testing.T) {
	ctx := context.Background()
	s, pool := pipelinedTxTable(t)
	b := &pgx.Batch{}
	b.Queue(`INSERT INTO pipelined VALUES (1, current_setting('mailgate.operator', true))`)
	var inTx bool
	err := s.inPipelinedTx(ctx, operatorScope, b, func(tx pgx.Tx) error {
		// The batch's BEGIN left the transaction open for what follows.
		if err := tx.QueryRow(ctx, `SELECT now() = statement_timestamp()`).Scan(&inTx); err != nil {
			return err
		}
		_, err := tx.Exec(ctx, `INSERT INTO pipelined VALUES (2, current_setting('mailgate.operator', true))`)
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	if inTx {
		t.Error("fn ran outside the batch's transaction")
	}
	var rows int
	var scope string
	if err := pool.QueryRow(ctx, `SELECT count(*), min(scope) FROM pipelined`).Scan(&rows, &scope); err != nil {
		t.Fatal(err)
	}
	if rows != 2 || scope != "on" {
		t.Errorf("%d rows in scope %q, want 2 committed in the operator scope", rows, scope)
	}
}

func TestPipelinedTxRollsBackOnAnyFailure(t *testing.T) {
	ctx := context.Background()
	s, pool := pipelinedTxTable(t)
	failing := errors.New("River refused")
	for _, tc := range []struct {
		name string
		fn   func(pgx.Tx) error
		bad  bool
	}{
		{"a statement of the batch fails", nil, true},
		{"fn fails", func(tx pgx.Tx) error {
			if _, err := tx.Exec(ctx, `INSERT INTO pipelined VALUES (11, 'fn')`); err != nil {
				return err
			}
			return failing
		}, false},
		{"fn asks for a nested transaction", func(tx pgx.Tx) error {
			_, err := tx.Begin(ctx)
			return err
		}, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			b := &pgx.Batch{}
			b.Queue(`INSERT INTO pipelined VALUES (10, 'batch')`)
			if tc.bad {
				b.Queue(`INSERT INTO pipelined VALUES (10, 'duplicate key')`)
			}
			if err := s.inPipelinedTx(ctx, operatorScope, b, tc.fn); err == nil {
				t.Fatal("no error")
			}
			var rows int
			if err := pool.QueryRow(ctx, `SELECT count(*) FROM pipelined`).Scan(&rows); err != nil {
				t.Fatal(err)
			}
			if rows != 0 {
				t.Errorf("%d rows left, want none", rows)
			}
			// Every connection went back to the pool outside a transaction.
			for _, c := range pool.AcquireAllIdle(ctx) {
				if status := c.Conn().PgConn().TxStatus(); status != 'I' {
					t.Errorf("pooled connection in transaction status %q", status)
				}
				c.Release()
			}
		})
	}
}
