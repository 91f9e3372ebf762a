package app

import (
	"context"
	"testing"
	"time"

	"github.com/mailgate/mailgate/adapters/smtprelay/smtptest"
	"github.com/mailgate/mailgate/db"
	"github.com/mailgate/mailgate/db/dbtest"
)

// TestGatewaySessionsAreBounded: the gateway's connections cancel long
// statements and close sessions idle in a transaction, since either would
// hold the event feed back for every tenant; the database URL can say
// otherwise.
func TestGatewaySessionsAreBounded(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	settings := func(t *testing.T, url string) (statement, idle string) {
		t.Helper()
		pool, err := openPool(ctx, url, 1, db.DefaultRuntimeRole, 0)
		if err != nil {
			t.Fatal(err)
		}
		defer pool.Close()
		err = pool.QueryRow(ctx, `SELECT current_setting('statement_timeout'), current_setting('idle_in_transaction_session_timeout')`).Scan(&statement, &idle)
		if err != nil {
			t.Fatal(err)
		}
		return statement, idle
	}

	t.Run("OKDefaults", func(t *testing.T) {
		t.Parallel()
		if statement, idle := settings(t, dbtest.URL(t)); statement != "1min" || idle != "30s" {
			t.Fatalf("statement_timeout %s, idle_in_transaction_session_timeout %s; want 1min and 30s", statement, idle)
		}
	})

	t.Run("OKURLWins", func(t *testing.T) {
		t.Parallel()
		if statement, idle := settings(t, dbtest.URL(t)+"&statement_timeout=5s&idle_in_transaction_session_timeout=0"); statement != "5s" || idle != "0" {
			t.Fatalf("statement_timeout %s, idle_in_transaction_session_timeout %s; want the URL's 5s and 0", statement, idle)
		}
	})
}

// TestAPIStatementsEndWithTheRequestDeadline: an API process's statements
// are stopped by the server at the request deadline, even when the client's
// cancel can't reach it; a worker keeps the longer default.
func TestAPIStatementsEndWithTheRequestDeadline(t *testing.T) {
	t.Parallel()
	for role, want := range map[string]string{RoleAPI: "7s", RoleWorker: "1min"} {
		g := startGatewayWith(t, role, smtptest.Options{}, func(c *Config) { c.RequestTimeout = 7 * time.Second })
		var got string
		if err := g.app.pool.QueryRow(context.Background(), `SELECT current_setting('statement_timeout')`).Scan(&got); err != nil {
			t.Fatal(err)
		}
		if got != want {
			t.Errorf("%s: statement_timeout %s, want %s", role, got, want)
		}
	}
}
