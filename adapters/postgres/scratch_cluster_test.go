package postgres_test

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/mailgate/mailgate/db"
	"github.com/mailgate/mailgate/db/dbtest"
)

// scratchCluster is a throwaway PostgreSQL server of one test's own, for what
// must not happen on the shared server: moving its transaction ids, or
// holding its snapshot horizon back with an open transaction.
type scratchCluster struct {
	// Owner works as the superuser and bypasses row-level security;
	// Runtime works as the runtime role, like the gateway.
	Owner, Runtime *pgxpool.Pool
}

// startScratchCluster initialises a cluster in a temp dir whose next
// transaction id is nextXID, starts it on a free loopback port, migrates it
// and stops it when the test ends. It skips the test when the PostgreSQL
// server programs are not installed.
//
// nextXID must be the first id of a pg_xact page (a multiple of 32768): the
// server creates a page only when its first id is assigned, and pg_resetwal
// creates none, so an id in the middle of a missing page could not commit.
func startScratchCluster(t *testing.T, nextXID uint64) scratchCluster {
	t.Helper()
	const xidsPerClogPage = 8192 * 4 // BLCKSZ bytes, four transaction statuses a byte
	if nextXID%xidsPerClogPage != 0 {
		t.Fatalf("scratch cluster: next xid %d is not at a pg_xact page boundary (a multiple of %d)", nextXID, xidsPerClogPage)
	}
	bin := postgresBinDir(t)
	run := asPostgresUser(t)

	// MkdirTemp, not t.TempDir: when we are root the server runs as the
	// postgres OS user, who must be able to enter the directory.
	dir, err := os.MkdirTemp("", "mailgate-feed-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	if err := os.Chmod(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	if run.owner != nil {
		if err := os.Chown(dir, run.owner.uid, run.owner.gid); err != nil {
			t.Fatal(err)
		}
	}
	data := filepath.Join(dir, "data")
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()

	run.must(t, ctx, filepath.Join(bin, "initdb"), "-D", data, "-U", "postgres", "--auth=trust", "-E", "UTF8", "--locale=C", "--no-sync")
	run.must(t, ctx, filepath.Join(bin, "pg_resetwal"), "-x", strconv.FormatUint(nextXID, 10), "-D", data)

	port := dbtest.LoopbackPort(t)
	// Autovacuum off: its analyze would take transaction ids of its own
	// while the test counts them. fsync off: the cluster is thrown away.
	opts := fmt.Sprintf("-p %d -k %s -c listen_addresses=127.0.0.1 -c autovacuum=off -c fsync=off -c max_connections=30", port, dir)
	logFile := filepath.Join(dir, "postgres.log")
	if out, err := run.output(ctx, filepath.Join(bin, "pg_ctl"), "-D", data, "-l", logFile, "-o", opts, "-w", "start"); err != nil {
		log, _ := os.ReadFile(logFile)
		t.Fatalf("scratch cluster: pg_ctl start: %v\n%s\nserver log:\n%s", err, out, log)
	}
	t.Cleanup(func() {
		stopCtx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		if out, err := run.output(stopCtx, filepath.Join(bin, "pg_ctl"), "-D", data, "-m", "immediate", "-w", "stop"); err != nil {
			t.Errorf("scratch cluster: pg_ctl stop: %v\n%s", err, out)
		}
	})

	url := fmt.Sprintf("postgres://postgres@127.0.0.1:%d/postgres?sslmode=disable", port)
	owner := scratchPool(t, url, nil)
	if _, err := db.Migrate(ctx, owner); err != nil {
		t.Fatalf("scratch cluster: migrate: %v", err)
	}
	if err := db.EnsureRuntimeRole(ctx, owner, db.DefaultRuntimeRole); err != nil {
		t.Fatalf("scratch cluster: runtime role: %v", err)
	}
	runtime := scratchPool(t, url, func(cfg *pgxpool.Config) error { return db.UseRuntimeRole(cfg, db.DefaultRuntimeRole) })
	return scratchCluster{Owner: owner, Runtime: runtime}
}

func scratchPool(t *testing.T, url string, configure func(*pgxpool.Config) error) *pgxpool.Pool {
	t.Helper()
	cfg, err := pgxpool.ParseConfig(url)
	if err != nil {
		t.Fatal(err)
	}
	cfg.MaxConns = 5
	if configure != nil {
		if err := configure(cfg); err != nil {
			t.Fatal(err)
		}
	}
	pool, err := pgxpool.NewWithConfig(context.Background(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(pool.Close)
	return pool
}

// postgresBinDir finds the directory holding initdb, pg_ctl and pg_resetwal
// of one installation: beside initdb on PATH, or the newest versioned
// directory Debian or the PGDG packages install.
func postgresBinDir(t *testing.T) string {
	t.Helper()
	complete := func(dir string) bool {
		for _, name := range []string{"initdb", "pg_ctl", "pg_resetwal"} {
			if fi, err := os.Stat(filepath.Join(dir, name)); err != nil || fi.Mode().Perm()&0o111 == 0 {
				return false
			}
		}
		return true
	}
	if p, err := exec.LookPath("initdb"); err == nil {
		if real, err := filepath.EvalSymlinks(p); err == nil && complete(filepath.Dir(real)) {
			return filepath.Dir(real)
		}
	}
	var dirs []string
	for _, g := range []string{"/usr/lib/postgresql/*/bin", "/usr/pgsql-*/bin"} {
		m, _ := filepath.Glob(g)
		dirs = append(dirs, m...)
	}
	// Newest first: compare the major version in the directory name.
	major := func(dir string) int {
		name := filepath.Base(filepath.Dir(dir))
		n, _ := strconv.Atoi(strings.TrimPrefix(strings.SplitN(name, ".", 2)[0], "pgsql-"))
		return n
	}
	slices.SortFunc(dirs, func(a, b string) int { return major(b) - major(a) })
	for _, d := range dirs {
		if complete(d) {
			return d
		}
	}
	t.Skip("skipping: the PostgreSQL server programs (initdb, pg_ctl, pg_resetwal) are neither on PATH nor in /usr/lib/postgresql/*/bin or /usr/pgsql-*/bin; this test needs a cluster of its own")
	return ""
}

// postgresRunner runs PostgreSQL's programs, as the postgres OS user when we
// are root (they refuse to run as root).
type postgresRunner struct {
	owner *struct{ uid, gid int }
	// prefix switches user: runuser -u postgres --
	prefix []string
}

func asPostgresUser(t *testing.T) postgresRunner {
	t.Helper()
	if os.Geteuid() != 0 {
		return postgresRunner{}
	}
	u, err := user.Lookup("postgres")
	if err != nil {
		t.Skipf("skipping: running as root, and there is no postgres OS user to run a scratch cluster as: %v", err)
	}
	uid, _ := strconv.Atoi(u.Uid)
	gid, _ := strconv.Atoi(u.Gid)
	runuser, err := exec.LookPath("runuser")
	if err != nil {
		for _, p := range []string{"/usr/sbin/runuser", "/sbin/runuser"} {
			if _, statErr := os.Stat(p); statErr == nil {
				runuser, err = p, nil
				break
			}
		}
	}
	if err != nil {
		t.Skipf("skipping: running as root without runuser to start a scratch cluster as postgres: %v", err)
	}
	return postgresRunner{owner: &struct{ uid, gid int }{uid, gid}, prefix: []string{runuser, "-u", "postgres", "--"}}
}

func (r postgresRunner) output(ctx context.Context, name string, args ...string) ([]byte, error) {
	argv := append(slices.Clone(r.prefix), name)
	argv = append(argv, args...)
	cmd := exec.CommandContext(ctx, argv[0], argv[1:]...)
	// A directory the postgres user can enter, whatever ours is.
	cmd.Dir = os.TempDir()
	return cmd.CombinedOutput()
}

func (r postgresRunner) must(t *testing.T, ctx context.Context, name string, args ...string) {
	t.Helper()
	if out, err := r.output(ctx, name, args...); err != nil {
		t.Fatalf("scratch cluster: %s: %v\n%s", filepath.Base(name), err, out)
	}
}
