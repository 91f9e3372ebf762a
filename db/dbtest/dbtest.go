// Package dbtest gives tests a real, migrated PostgreSQL schema of their own.
//
// Each test binary (one per Go package) migrates one fresh schema on first
// use and drops it when the binary exits (call Run from TestMain). Tests in
// the package share it and run in parallel: they either work inside a
// transaction that is rolled back (Tx) or create their own tenant, which
// every query is scoped by.
package dbtest

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"net/url"
	"os"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/mailgate/mailgate/db"
)

// DefaultURL is used when MAILGATE_TEST_DATABASE_URL is not set.
const DefaultURL = "postgres://postgres@127.0.0.1:5432/mailgate_test?sslmode=disable"

// shared is the per-binary schema; test helpers are the one place a
// package-level value is worth it, since go test gives no other per-binary hook.
// pool works as the runtime role, so row-level security applies to the code
// under test exactly as in production; owner bypasses it, for assertions.
var shared struct { //nolint:gochecknoglobals // the test binary's one migrated schema, set once under its sync.Once
	once   sync.Once
	url    string
	schema string
	pool   *pgxpool.Pool
	owner  *pgxpool.Pool
	err    error
}

// Run wraps m.Run and drops the package's schema afterwards. Use it from TestMain.
func Run(m *testing.M) int {
	code := m.Run()
	if shared.pool != nil {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		shared.pool.Close()
		shared.owner.Close()
		if err := dropSchema(ctx, shared.url, shared.schema); err != nil {
			fmt.Fprintln(os.Stderr, "dbtest:", err)
		}
	}
	return code
}

// URL returns a connection string whose search_path is the package's
// migrated schema, for code under test that opens its own pool.
func URL(t testing.TB) string {
	t.Helper()
	setup(t)
	return withSearchPath(t, shared.schema)
}

func withSearchPath(t testing.TB, schema string) string {
	t.Helper()
	u, err := url.Parse(shared.url)
	if err != nil {
		t.Fatalf("dbtest: %v", err)
	}
	q := u.Query()
	q.Set("search_path", schema)
	u.RawQuery = q.Encode()
	return u.String()
}

// IsolatedURL migrates a schema for this test alone and drops it when the
// test ends. Tests that run River workers need it: workers take any job in
// their schema, so two gateways must not share one.
func IsolatedURL(t testing.TB) string {
	t.Helper()
	setup(t)
	schema := "test_" + randomHex(6)
	owner, err := migratedPool(shared.url, schema)
	if err != nil {
		t.Fatalf("dbtest: %v", err)
	}
	owner.Close()
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		if err := dropSchema(ctx, shared.url, schema); err != nil {
			t.Errorf("dbtest: %v", err)
		}
	})
	return withSearchPath(t, schema)
}

// Pool returns the shared pool on the package's migrated schema, working as
// the runtime role: row-level security applies.
func Pool(t testing.TB) *pgxpool.Pool {
	t.Helper()
	setup(t)
	return shared.pool
}

// OwnerPool returns a superuser pool on the package's schema. Row-level
// security does not apply to it: use it to check what was really written.
func OwnerPool(t testing.TB) *pgxpool.Pool {
	t.Helper()
	setup(t)
	return shared.owner
}

// OwnerPoolFor opens a superuser pool on the schema of a URL from
// IsolatedURL, closed when the test ends.
func OwnerPoolFor(t testing.TB, rawURL string) *pgxpool.Pool {
	t.Helper()
	cfg, err := pgxpool.ParseConfig(rawURL)
	if err != nil {
		t.Fatalf("dbtest: %v", err)
	}
	pool, err := pgxpool.NewWithConfig(context.Background(), cfg)
	if err != nil {
		t.Fatalf("dbtest: %v", err)
	}
	t.Cleanup(pool.Close)
	return pool
}

// Tx begins a transaction on the package schema that is rolled back when the test ends.
func Tx(t testing.TB) pgx.Tx {
	t.Helper()
	tx, err := Pool(t).Begin(context.Background())
	if err != nil {
		t.Fatalf("dbtest: begin: %v", err)
	}
	t.Cleanup(func() { _ = tx.Rollback(context.Background()) })
	return tx
}

func setup(t testing.TB) {
	t.Helper()
	shared.once.Do(func() {
		shared.url = os.Getenv("MAILGATE_TEST_DATABASE_URL")
		if shared.url == "" {
			shared.url = DefaultURL
		}
		shared.schema = "test_" + randomHex(6)
		shared.owner, shared.err = migratedPool(shared.url, shared.schema)
		if shared.err == nil {
			shared.pool, shared.err = runtimePool(shared.url, shared.schema)
		}
	})
	if shared.err != nil {
		t.Fatalf("dbtest: %v", shared.err)
	}
}

func migratedPool(rawURL, schema string) (*pgxpool.Pool, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	if err := ensureDatabase(ctx, rawURL); err != nil {
		return nil, err
	}
	admin, err := pgx.Connect(ctx, rawURL)
	if err != nil {
		return nil, fmt.Errorf("connect: %w", err)
	}
	defer admin.Close(ctx)
	if _, err := admin.Exec(ctx, "CREATE SCHEMA "+pgx.Identifier{schema}.Sanitize()); err != nil {
		return nil, fmt.Errorf("create schema: %w", err)
	}
	cfg, err := pgxpool.ParseConfig(rawURL)
	if err != nil {
		return nil, err
	}
	cfg.ConnConfig.RuntimeParams["search_path"] = schema
	cfg.MaxConns = 20
	pool, err := pgxpool.NewWithConfig(ctx, cfg)
	if err != nil {
		return nil, err
	}
	if _, err := db.Migrate(ctx, pool); err != nil {
		pool.Close()
		return nil, err
	}
	if err := db.EnsureRuntimeRole(ctx, pool, db.DefaultRuntimeRole); err != nil {
		pool.Close()
		return nil, err
	}
	return pool, nil
}

func runtimePool(rawURL, schema string) (*pgxpool.Pool, error) {
	cfg, err := runtimeConfig(rawURL, schema)
	if err != nil {
		return nil, err
	}
	return pgxpool.NewWithConfig(context.Background(), cfg)
}

// runtimeConfig is the configuration of a pool working as the runtime role on schema.
func runtimeConfig(rawURL, schema string) (*pgxpool.Config, error) {
	cfg, err := pgxpool.ParseConfig(rawURL)
	if err != nil {
		return nil, err
	}
	cfg.ConnConfig.RuntimeParams["search_path"] = schema
	cfg.MaxConns = 20
	// The store under test sees the same type registrations as in production.
	db.RegisterTypes(cfg)
	if err := db.UseRuntimeRole(cfg, db.DefaultRuntimeRole); err != nil {
		return nil, err
	}
	return cfg, nil
}

// TracedPool is a pool like Pool's, of its own, whose connections report
// their statements to tracer (a pgx.BatchTracer too, to see batches);
// closed when the test ends.
func TracedPool(t testing.TB, tracer pgx.QueryTracer) *pgxpool.Pool {
	t.Helper()
	setup(t)
	cfg, err := runtimeConfig(shared.url, shared.schema)
	if err != nil {
		t.Fatalf("dbtest: %v", err)
	}
	cfg.MaxConns = 4
	cfg.ConnConfig.Tracer = tracer
	pool, err := pgxpool.NewWithConfig(context.Background(), cfg)
	if err != nil {
		t.Fatalf("dbtest: %v", err)
	}
	t.Cleanup(pool.Close)
	return pool
}

// ensureDatabase creates the test database when it is missing.
func ensureDatabase(ctx context.Context, rawURL string) error {
	cfg, err := pgx.ParseConfig(rawURL)
	if err != nil {
		return fmt.Errorf("parse %s: %w", rawURL, err)
	}
	name := cfg.Database
	cfg.Database = "postgres"
	conn, err := pgx.ConnectConfig(ctx, cfg)
	if err != nil {
		return fmt.Errorf("connect to the PostgreSQL server for tests (set MAILGATE_TEST_DATABASE_URL): %w", err)
	}
	defer conn.Close(ctx)
	var exists bool
	if err := conn.QueryRow(ctx, "SELECT EXISTS (SELECT 1 FROM pg_database WHERE datname = $1)", name).Scan(&exists); err != nil {
		return err
	}
	if exists {
		return nil
	}
	_, err = conn.Exec(ctx, "CREATE DATABASE "+pgx.Identifier{name}.Sanitize())
	var pgErr *pgconn.PgError
	if err != nil && !(errors.As(err, &pgErr) && pgErr.Code == "42P04") {
		return fmt.Errorf("create database %s: %w", name, err)
	}
	return nil
}

func dropSchema(ctx context.Context, rawURL, schema string) error {
	conn, err := pgx.Connect(ctx, rawURL)
	if err != nil {
		return err
	}
	defer conn.Close(ctx)
	_, err = conn.Exec(ctx, "DROP SCHEMA IF EXISTS "+pgx.Identifier{schema}.Sanitize()+" CASCADE")
	return err
}

func randomHex(n int) string {
	b := make([]byte, n)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}
