package app

import (
	"context"
	"testing"

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
		pool, err := openPool(ctx, url, 1, db.DefaultRuntimeRole)
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
