package postgres_test

import (
	"context"
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"

	"github.com/mailgate/mailgate/adapters/postgres"
	"github.com/mailgate/mailgate/db/dbtest"
	"github.com/mailgate/mailgate/domain"
)

// TestIsUnavailable tells database outages from the caller's mistakes,
// on errors the server and the driver really return.
func TestIsUnavailable(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	conn, err := pgx.Connect(ctx, dbtest.URL(t))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(ctx)
	serverErr := func(sql string) error {
		_, err := conn.Exec(ctx, sql)
		if err == nil {
			t.Fatalf("%s did not fail", sql)
		}
		return err
	}
	statementTimeout := serverErr(`SET statement_timeout = '10ms'; SELECT pg_sleep(1)`)
	syntax := serverErr(`SELEC 1`)
	if _, err := conn.Exec(ctx, `RESET statement_timeout`); err != nil {
		t.Fatal(err)
	}
	// Last: a passed deadline closes the connection.
	deadline, cancel := context.WithTimeout(ctx, 50*time.Millisecond)
	defer cancel()
	_, timedOut := conn.Exec(deadline, `SELECT pg_sleep(5)`)
	if !errors.Is(timedOut, context.DeadlineExceeded) {
		t.Fatalf("a passed deadline gave %v", timedOut)
	}
	refusedCfg, err := pgx.ParseConfig("postgres://postgres@127.0.0.1:1/x?connect_timeout=2")
	if err != nil {
		t.Fatal(err)
	}
	_, refused := pgx.ConnectConfig(ctx, refusedCfg)

	cases := []struct {
		name string
		err  error
		want bool
	}{
		{"OKStatementTimeout", statementTimeout, true},
		{"OKDeadline", fmt.Errorf("list: %w", timedOut), true},
		{"OKRefused", refused, true},
		{"OKAdminShutdown", &pgconn.PgError{Code: "57P01"}, true},
		{"OKStartingUp", &pgconn.PgError{Code: "57P03"}, true},
		{"OKTooManyConnections", &pgconn.PgError{Code: "53300"}, true},
		{"ErrSyntax", syntax, false},
		{"ErrUniqueViolation", &pgconn.PgError{Code: "23505"}, false},
		{"ErrDomain", domain.ErrNotFound, false},
		{"ErrPlain", errors.New("bug"), false},
		{"ErrNil", nil, false},
	}
	for _, tc := range cases {
		if got := postgres.IsUnavailable(tc.err); got != tc.want {
			t.Errorf("%s: IsUnavailable(%v) = %v, want %v", tc.name, tc.err, got, tc.want)
		}
	}
}
