//go:build reliability

package reliability

import (
	"context"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/mailgate/mailgate/adapters/pgdev"
	"github.com/mailgate/mailgate/db/dbtest"
)

// cluster is the suite's own PostgreSQL, so crashing it touches nothing else
// on the machine. pgdev initialises and starts it (as the postgres OS user
// when we are root); crash and restart are done here.
type cluster struct {
	stateDir string
	port     int
	pgCtl    string
	stop     func() error
}

func startCluster(ctx context.Context, stateDir string, logf func(string, ...any)) (*cluster, error) {
	// The postgres OS user must be able to reach the state directory.
	if err := os.Chmod(stateDir, 0o755); err != nil {
		return nil, fmt.Errorf("state directory: %w", err)
	}
	port, err := dbtest.FreeLoopbackPort()
	if err != nil {
		return nil, err
	}
	pgCtl, err := findPgCtl()
	if err != nil {
		return nil, err
	}
	c := &cluster{stateDir: stateDir, port: port, pgCtl: pgCtl}
	if err := c.start(ctx, logf); err != nil {
		return nil, err
	}
	return c, nil
}

// url is the superuser's connection to database name, bypassing any proxy.
func (c *cluster) url(name string) string {
	return fmt.Sprintf("postgres://postgres@127.0.0.1:%d/%s?sslmode=disable", c.port, name)
}

func (c *cluster) addr() string { return net.JoinHostPort("127.0.0.1", strconv.Itoa(c.port)) }

func (c *cluster) start(ctx context.Context, logf func(string, ...any)) error {
	_, stop, err := pgdev.Ensure(ctx, c.url("postgres"), c.stateDir, logf)
	if err != nil {
		return fmt.Errorf("start the suite's PostgreSQL: %w", err)
	}
	c.stop = stop
	return nil
}

// crash stops the server the way a power cut would (`pg_ctl stop -m
// immediate`: no checkpoint, recovery from WAL on the next start).
func (c *cluster) crash(ctx context.Context) error {
	dataDir := filepath.Join(c.stateDir, "pg", "data")
	args := []string{c.pgCtl, "-D", dataDir, "-m", "immediate", "-w", "stop"}
	if os.Geteuid() == 0 {
		args = append([]string{"runuser", "-u", "postgres", "--"}, args...)
	}
	cmd := exec.CommandContext(ctx, args[0], args[1:]...)
	cmd.Dir = filepath.Join(c.stateDir, "pg")
	if out, err := cmd.CombinedOutput(); err != nil {
		return fmt.Errorf("pg_ctl stop -m immediate: %w\n%s", err, out)
	}
	return nil
}

// createDatabase makes a fresh database for one scenario.
func (c *cluster) createDatabase(ctx context.Context, name string) error {
	conn, err := pgx.Connect(ctx, c.url("postgres"))
	if err != nil {
		return fmt.Errorf("connect to the suite's PostgreSQL: %w", err)
	}
	defer conn.Close(context.WithoutCancel(ctx))
	if _, err := conn.Exec(ctx, "CREATE DATABASE "+pgx.Identifier{name}.Sanitize()); err != nil {
		return fmt.Errorf("create database %s: %w", name, err)
	}
	return nil
}

// findPgCtl finds pg_ctl the way pgdev does: PATH, then Debian's versioned
// directories, newest first.
func findPgCtl() (string, error) {
	if p, err := exec.LookPath("pg_ctl"); err == nil {
		if real, err := filepath.EvalSymlinks(p); err == nil {
			return real, nil
		}
		return p, nil
	}
	matches, _ := filepath.Glob("/usr/lib/postgresql/*/bin/pg_ctl")
	if len(matches) == 0 {
		return "", fmt.Errorf("pg_ctl is neither on PATH nor under /usr/lib/postgresql")
	}
	return matches[len(matches)-1], nil
}

// waitFor polls cond every interval until it holds or bound passes; it
// returns how long that took and whether cond held.
func waitFor(ctx context.Context, bound, interval time.Duration, cond func() bool) (time.Duration, bool) {
	start := time.Now()
	deadline := start.Add(bound)
	for {
		if cond() {
			return time.Since(start), true
		}
		if time.Now().After(deadline) || ctx.Err() != nil {
			return time.Since(start), false
		}
		select {
		case <-ctx.Done():
		case <-time.After(interval):
		}
	}
}
