package db_test

import (
	"context"
	"os"
	"testing"

	"github.com/mailgate/mailgate/db"
	"github.com/mailgate/mailgate/db/dbtest"
)

func TestMain(m *testing.M) { os.Exit(dbtest.Run(m)) }

func TestMigrateIsIdempotent(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	pool := dbtest.Pool(t) // already migrated once

	res, err := db.Migrate(ctx, pool)
	if err != nil {
		t.Fatalf("second migrate: %v", err)
	}
	if len(res.Applied) != 0 || len(res.RiverVersions) != 0 {
		t.Fatalf("second migrate applied %v / river %v, want nothing", res.Applied, res.RiverVersions)
	}
	current, embedded, err := db.SchemaVersions(ctx, pool)
	if err != nil {
		t.Fatal(err)
	}
	if current != embedded || current == 0 {
		t.Fatalf("schema at %d, binary embeds %d", current, embedded)
	}
	var riverTables int
	if err := pool.QueryRow(ctx, "SELECT count(*) FROM pg_tables WHERE schemaname = current_schema() AND tablename = 'river_job'").Scan(&riverTables); err != nil {
		t.Fatal(err)
	}
	if riverTables != 1 {
		t.Fatalf("river_job table missing from the test schema")
	}
}

func TestTxIsRolledBack(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	var name string
	t.Run("write", func(t *testing.T) {
		tx := dbtest.Tx(t)
		name = "rollback-" + t.Name()
		if _, err := tx.Exec(ctx, "SELECT set_config('mailgate.operator', 'on', true)"); err != nil {
			t.Fatal(err)
		}
		if _, err := tx.Exec(ctx, "INSERT INTO subscriptions (id, name) VALUES (gen_random_uuid(), $1)", name); err != nil {
			t.Fatal(err)
		}
	})
	var n int
	if err := dbtest.OwnerPool(t).QueryRow(ctx, "SELECT count(*) FROM subscriptions WHERE name = $1", name).Scan(&n); err != nil {
		t.Fatal(err)
	}
	if n != 0 {
		t.Fatalf("row written in a test transaction survived the test")
	}
}
