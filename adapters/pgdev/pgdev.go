// Package pgdev gets `mailgate dev` a PostgreSQL database with nothing
// configured: it creates the database on a server that answers, and when no
// server answers on a local address it starts a throwaway cluster from the
// machine's PostgreSQL binaries. It is for development only.
package pgdev

import (
	"context"
	"errors"
	"fmt"
	"net"
	"strconv"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
)

// probeTimeout bounds the first connection attempt; a local server answers in
// milliseconds, so waiting longer only delays starting our own.
const probeTimeout = 2 * time.Second

// maintenanceDatabase is where CREATE DATABASE is issued from; it exists on
// every cluster initdb creates.
const maintenanceDatabase = "postgres"

// Ensure makes the database named by databaseURL exist and returns the URL to
// use with a function that stops whatever Ensure started. When a server
// answers, the database is created if missing and stop does nothing. When
// none answers and the URL points at this machine, a cluster is initialised
// (once) under stateDir/pg and started on the URL's port; stop shuts it down.
// logf, which may be nil, receives one line per step.
func Ensure(ctx context.Context, databaseURL string, stateDir string, logf func(format string, args ...any)) (string, func() error, error) {
	if logf == nil {
		logf = func(string, ...any) {}
	}
	noop := func() error { return nil }

	cfg, err := pgx.ParseConfig(databaseURL)
	if err != nil {
		return "", nil, fmt.Errorf("pgdev: parse database URL: %w", err)
	}
	target := cfg.Database
	if target == "" {
		// The server would pick the user's name; be explicit about it.
		target = cfg.User
	}
	where := serverAddress(cfg)

	err = createDatabaseOn(ctx, cfg, target, logf)
	if err == nil {
		return databaseURL, noop, nil
	}
	if ctx.Err() != nil {
		return "", nil, fmt.Errorf("pgdev: %w", ctx.Err())
	}
	if !noServer(err) {
		return "", nil, fmt.Errorf("pgdev: PostgreSQL at %s: %w", where, err)
	}
	if !isLocalHost(cfg.Host) {
		return "", nil, fmt.Errorf("pgdev: no PostgreSQL server answered at %s, and it is not on this machine so none can be started for it; start it or point the database URL elsewhere: %w", where, err)
	}

	logf("pgdev: no PostgreSQL server answered at %s; starting a local cluster", where)
	c, err := newCluster(cfg, stateDir, logf)
	if err != nil {
		return "", nil, err
	}
	if err := c.start(ctx); err != nil {
		return "", nil, err
	}
	if err := createDatabaseOn(ctx, cfg, target, logf); err != nil {
		// Leave nothing running behind a failed Ensure.
		if stopErr := c.stop(); stopErr != nil {
			logf("pgdev: stopping cluster after failure: %v", stopErr)
		}
		return "", nil, fmt.Errorf("pgdev: started PostgreSQL at %s, then: %w", where, err)
	}
	return databaseURL, c.stop, nil
}

// createDatabaseOn connects to the maintenance database of cfg's server and
// creates target unless it exists.
func createDatabaseOn(ctx context.Context, cfg *pgx.ConnConfig, target string, logf func(string, ...any)) error {
	maint := cfg.Copy()
	maint.Database = maintenanceDatabase
	maint.ConnectTimeout = probeTimeout

	probeCtx, cancel := context.WithTimeout(ctx, probeTimeout)
	conn, err := pgx.ConnectConfig(probeCtx, maint)
	cancel()
	if err != nil {
		return fmt.Errorf("connect: %w", err)
	}
	defer conn.Close(context.WithoutCancel(ctx))

	var exists bool
	err = conn.QueryRow(ctx, "SELECT EXISTS (SELECT 1 FROM pg_database WHERE datname = $1)", target).Scan(&exists)
	if err != nil {
		return fmt.Errorf("look up database %q: %w", target, err)
	}
	if exists {
		logf("pgdev: database %q exists at %s", target, serverAddress(cfg))
		return nil
	}

	// Identifiers cannot be bind parameters; Sanitize quotes the name so any
	// spelling the URL allows is taken literally.
	_, err = conn.Exec(ctx, "CREATE DATABASE "+pgx.Identifier{target}.Sanitize())
	if err != nil && createdConcurrently(err) {
		logf("pgdev: database %q was created concurrently at %s", target, serverAddress(cfg))
		return nil
	}
	if err != nil {
		return fmt.Errorf("create database %q: %w", target, err)
	}
	logf("pgdev: created database %q at %s", target, serverAddress(cfg))
	return nil
}

// createdConcurrently reports whether a failed CREATE DATABASE lost a race
// with another creator of the same name. PostgreSQL reports that as
// duplicate_database when the other transaction committed first, and as a
// unique violation on pg_database's name index when both were in flight.
func createdConcurrently(err error) bool {
	var pgErr *pgconn.PgError
	if !errors.As(err, &pgErr) {
		return false
	}
	return pgErr.Code == "42P04" ||
		(pgErr.Code == "23505" && pgErr.ConstraintName == "pg_database_datname_index")
}

// noServer reports whether err means nothing is listening, as opposed to a
// server that answered and refused us; only the former justifies starting
// our own cluster on that address.
func noServer(err error) bool {
	var pgErr *pgconn.PgError
	if errors.As(err, &pgErr) {
		return false
	}
	var opErr *net.OpError
	if errors.As(err, &opErr) && opErr.Op == "dial" {
		return true
	}
	return errors.Is(err, context.DeadlineExceeded)
}

// isLocalHost reports whether host, as pgx parsed it, is this machine: a
// loopback address, localhost, or a unix socket directory.
func isLocalHost(host string) bool {
	if isSocketDir(host) || host == "localhost" {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}

// isSocketDir reports whether host names a unix socket directory, which pgx
// keeps as an absolute path.
func isSocketDir(host string) bool { return len(host) > 0 && host[0] == '/' }

// serverAddress formats cfg's server for messages.
func serverAddress(cfg *pgx.ConnConfig) string {
	if isSocketDir(cfg.Host) {
		return fmt.Sprintf("%s/.s.PGSQL.%d", cfg.Host, cfg.Port)
	}
	return net.JoinHostPort(cfg.Host, strconv.Itoa(int(cfg.Port)))
}
