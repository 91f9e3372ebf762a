// Package db holds Mailgate's SQL migrations, embedded in the binary, the
// code that applies them together with River's, and (in dbtest) the helper
// that gives each test package its own migrated schema.
package db

import (
	"context"
	"embed"
	"fmt"
	"io/fs"

	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/jackc/pgx/v5/stdlib"
	"github.com/pressly/goose/v3"
	"github.com/riverqueue/river/riverdriver/riverpgxv5"
	"github.com/riverqueue/river/rivermigrate"
)

//go:embed migrations/*.sql
var migrationFiles embed.FS

// migrateLockKey serializes concurrent `mailgate migrate` runs (for example
// two pods starting at once) on one database.
const migrateLockKey = 0x6d61696c67617465 // "mailgate"

// Result reports what a migration run did.
type Result struct {
	// Applied lists Mailgate's migrations applied by this run.
	Applied []string
	// RiverVersions lists River's migration versions applied by this run.
	RiverVersions []int
}

// Migrate applies Mailgate's and River's pending migrations to the schema the
// pool's search_path points at. It is safe to run twice and concurrently.
func Migrate(ctx context.Context, pool *pgxpool.Pool) (Result, error) {
	var res Result
	conn, err := pool.Acquire(ctx)
	if err != nil {
		return res, fmt.Errorf("migrate: acquire connection: %w", err)
	}
	defer conn.Release()
	if _, err := conn.Exec(ctx, "SELECT pg_advisory_lock($1)", int64(migrateLockKey)); err != nil {
		return res, fmt.Errorf("migrate: take lock: %w", err)
	}
	defer func() {
		_, _ = conn.Exec(context.WithoutCancel(ctx), "SELECT pg_advisory_unlock($1)", int64(migrateLockKey))
	}()

	provider, closeProvider, err := newProvider(pool)
	if err != nil {
		return res, err
	}
	defer closeProvider()
	results, err := provider.Up(ctx)
	if err != nil {
		return res, fmt.Errorf("migrate: apply mailgate migrations: %w", err)
	}
	for _, r := range results {
		res.Applied = append(res.Applied, r.Source.Path)
	}

	migrator, err := rivermigrate.New(riverpgxv5.New(pool), nil)
	if err != nil {
		return res, fmt.Errorf("migrate: river migrator: %w", err)
	}
	riverRes, err := migrator.Migrate(ctx, rivermigrate.DirectionUp, nil)
	if err != nil {
		return res, fmt.Errorf("migrate: apply river migrations: %w", err)
	}
	for _, v := range riverRes.Versions {
		res.RiverVersions = append(res.RiverVersions, v.Version)
	}
	return res, nil
}

// SchemaVersions returns the database's current Mailgate schema version and
// the newest one embedded in this binary; readiness requires them equal.
func SchemaVersions(ctx context.Context, pool *pgxpool.Pool) (current, embedded int64, err error) {
	provider, closeProvider, err := newProvider(pool)
	if err != nil {
		return 0, 0, err
	}
	defer closeProvider()
	current, embedded, err = provider.GetVersions(ctx)
	if err != nil {
		return 0, 0, fmt.Errorf("schema versions: %w", err)
	}
	return current, embedded, nil
}

func newProvider(pool *pgxpool.Pool) (*goose.Provider, func(), error) {
	files, err := fs.Sub(migrationFiles, "migrations")
	if err != nil {
		return nil, nil, fmt.Errorf("migrations: %w", err)
	}
	sqlDB := stdlib.OpenDBFromPool(pool)
	provider, err := goose.NewProvider(goose.DialectPostgres, sqlDB, files)
	if err != nil {
		sqlDB.Close()
		return nil, nil, fmt.Errorf("migrations: load: %w", err)
	}
	return provider, func() { _ = sqlDB.Close() }, nil
}
