package pgdev

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/mailgate/mailgate/db/dbtest"
)

// sharedServer is the machine's PostgreSQL the existing-server tests use.
const sharedServer = "postgres://postgres@127.0.0.1:5432"

// requireSharedServer skips when nothing listens at sharedServer, because
// Ensure would otherwise start a cluster on the shared port as a side effect.
func requireSharedServer(t *testing.T) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	conn, err := pgx.Connect(ctx, sharedServer+"/postgres?sslmode=disable")
	if err != nil {
		t.Skipf("no PostgreSQL at %s to test against: %v", sharedServer, err)
	}
	conn.Close(ctx)
}

// randomName returns a database name unique to this run; the mixed case and
// hyphen only survive if CREATE DATABASE quotes the identifier.
func randomName(t *testing.T) string {
	t.Helper()
	b := make([]byte, 6)
	if _, err := rand.Read(b); err != nil {
		t.Fatal(err)
	}
	return "pgdev_Test-" + hex.EncodeToString(b)
}

func dropDatabase(t *testing.T, name string) {
	t.Helper()
	// DROP DATABASE waits for an immediate checkpoint of the whole server,
	// which flushes every test's dirty pages: seconds on a busy machine (10 s
	// ran out once while the rest of the suite ran).
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()
	conn, err := pgx.Connect(ctx, sharedServer+"/postgres?sslmode=disable")
	if err != nil {
		t.Errorf("connect to drop %q: %v", name, err)
		return
	}
	defer conn.Close(ctx)
	if _, err := conn.Exec(ctx, "DROP DATABASE IF EXISTS "+pgx.Identifier{name}.Sanitize()+" WITH (FORCE)"); err != nil {
		t.Errorf("drop %q: %v", name, err)
	}
}

// currentDatabase connects to url and reports which database it reached.
func currentDatabase(ctx context.Context, url string) (string, error) {
	ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	conn, err := pgx.Connect(ctx, url)
	if err != nil {
		return "", err
	}
	defer conn.Close(ctx)
	var name string
	err = conn.QueryRow(ctx, "SELECT current_database()").Scan(&name)
	return name, err
}

func TestEnsureExistingServer(t *testing.T) {
	t.Parallel()
	requireSharedServer(t)
	ctx := context.Background()

	t.Run("OKCreatesAndIsIdempotent", func(t *testing.T) {
		t.Parallel()
		name := randomName(t)
		t.Cleanup(func() { dropDatabase(t, name) })
		url := sharedServer + "/" + name + "?sslmode=disable"
		stateDir := t.TempDir()

		for i := range 2 {
			got, stop, err := Ensure(ctx, url, stateDir, t.Logf)
			if err != nil {
				t.Fatalf("Ensure #%d: %v", i+1, err)
			}
			if got != url {
				t.Fatalf("Ensure #%d returned %q, want %q", i+1, got, url)
			}
			if err := stop(); err != nil {
				t.Fatalf("stop #%d: %v", i+1, err)
			}
		}

		db, err := currentDatabase(ctx, url)
		if err != nil {
			t.Fatalf("returned URL does not connect: %v", err)
		}
		if db != name {
			t.Fatalf("connected to %q, want %q", db, name)
		}
		if _, err := os.Stat(filepath.Join(stateDir, "pg")); !errors.Is(err, os.ErrNotExist) {
			t.Fatalf("a cluster directory was created although a server answered (stat: %v)", err)
		}
	})

	t.Run("OKConcurrent", func(t *testing.T) {
		t.Parallel()
		name := randomName(t)
		t.Cleanup(func() { dropDatabase(t, name) })
		url := sharedServer + "/" + name + "?sslmode=disable"

		var wg sync.WaitGroup
		errs := make([]error, 4)
		for i := range errs {
			wg.Go(func() {
				_, _, errs[i] = Ensure(ctx, url, t.TempDir(), t.Logf)
			})
		}
		wg.Wait()
		if err := errors.Join(errs...); err != nil {
			t.Fatalf("concurrent Ensure: %v", err)
		}
		if _, err := currentDatabase(ctx, url); err != nil {
			t.Fatal(err)
		}
	})

	t.Run("ErrServerRefuses", func(t *testing.T) {
		t.Parallel()
		stateDir := t.TempDir()
		url := "postgres://pgdev_no_such_role@127.0.0.1:5432/whatever?sslmode=disable"
		_, _, err := Ensure(ctx, url, stateDir, t.Logf)
		if err == nil {
			t.Fatal("Ensure succeeded for a role that does not exist")
		}
		if !strings.Contains(err.Error(), "127.0.0.1:5432") {
			t.Fatalf("error does not name the server: %v", err)
		}
		if _, err := os.Stat(filepath.Join(stateDir, "pg")); !errors.Is(err, os.ErrNotExist) {
			t.Fatalf("started a cluster although the server answered (stat: %v)", err)
		}
	})
}

func TestEnsureStartsCluster(t *testing.T) {
	t.Parallel()
	if _, err := findBinaries(exec.LookPath, debianBinGlob, rpmBinGlob); err != nil {
		t.Skipf("no PostgreSQL binaries (initdb, pg_ctl) on this machine: %v", err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()

	// When the test runs as root the server runs as the postgres OS user, who
	// must be able to enter the state directory; t.TempDir is private (0700).
	stateDir, err := os.MkdirTemp("", "pgdev-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(stateDir) })
	if err := os.Chmod(stateDir, 0o755); err != nil {
		t.Fatal(err)
	}

	url := fmt.Sprintf("postgres://postgres@127.0.0.1:%d/mailgate_dev?sslmode=disable", dbtest.LoopbackPort(t))

	got, stop, err := Ensure(ctx, url, stateDir, t.Logf)
	if err != nil {
		t.Fatalf("Ensure: %v", err)
	}
	// Registered after RemoveAll so it runs first, should the test fail early.
	t.Cleanup(func() { stop() })
	if got != url {
		t.Fatalf("Ensure returned %q, want %q", got, url)
	}
	if db, err := currentDatabase(ctx, url); err != nil || db != "mailgate_dev" {
		t.Fatalf("started cluster: database %q, err %v", db, err)
	}
	if _, err := os.Stat(filepath.Join(stateDir, "pg", "data", "PG_VERSION")); err != nil {
		t.Fatalf("cluster not under the state directory: %v", err)
	}

	// While it runs, a second Ensure finds the server and owns nothing.
	if _, stop2, err := Ensure(ctx, url, stateDir, t.Logf); err != nil {
		t.Fatalf("Ensure against the running cluster: %v", err)
	} else if err := stop2(); err != nil {
		t.Fatalf("no-op stop: %v", err)
	}
	if _, err := currentDatabase(ctx, url); err != nil {
		t.Fatalf("the second Ensure's stop stopped the cluster: %v", err)
	}

	if err := stop(); err != nil {
		t.Fatalf("stop: %v", err)
	}
	if err := stop(); err != nil {
		t.Fatalf("second stop: %v", err)
	}
	if _, err := currentDatabase(ctx, url); err == nil || !noServer(err) {
		t.Fatalf("server still answers after stop (err %v)", err)
	}

	// A later run reuses the initialised cluster instead of running initdb.
	_, stop3, err := Ensure(ctx, url, stateDir, t.Logf)
	if err != nil {
		t.Fatalf("Ensure restarting the cluster: %v", err)
	}
	t.Cleanup(func() { stop3() })
	if db, err := currentDatabase(ctx, url); err != nil || db != "mailgate_dev" {
		t.Fatalf("restarted cluster: database %q, err %v", db, err)
	}
	if err := stop3(); err != nil {
		t.Fatalf("stop restarted cluster: %v", err)
	}
}

func TestIsLocalHost(t *testing.T) {
	t.Parallel()
	for host, want := range map[string]bool{
		"127.0.0.1":           true,
		"127.0.0.2":           true,
		"localhost":           true,
		"::1":                 true,
		"/var/run/postgresql": true,
		"/tmp":                true,
		"db.example.com":      false,
		"10.0.0.5":            false,
		"":                    false,
	} {
		if got := isLocalHost(host); got != want {
			t.Errorf("isLocalHost(%q) = %v, want %v", host, got, want)
		}
	}
}

func TestNewestFirst(t *testing.T) {
	t.Parallel()
	got := newestFirst([]string{
		"/usr/lib/postgresql/9.6/bin",
		"/usr/lib/postgresql/15/bin",
		"/usr/pgsql-16/bin",
		"/usr/lib/postgresql/10/bin",
	})
	want := []string{
		"/usr/pgsql-16/bin",
		"/usr/lib/postgresql/15/bin",
		"/usr/lib/postgresql/10/bin",
		"/usr/lib/postgresql/9.6/bin",
	}
	if !slices.Equal(got, want) {
		t.Fatalf("newestFirst = %v, want %v", got, want)
	}
}

func TestFindBinaries(t *testing.T) {
	t.Parallel()
	root := t.TempDir()
	makeBins := func(dir string, names ...string) {
		t.Helper()
		if err := os.MkdirAll(dir, 0o755); err != nil {
			t.Fatal(err)
		}
		for _, n := range names {
			if err := os.WriteFile(filepath.Join(dir, n), []byte("#!/bin/sh\n"), 0o755); err != nil {
				t.Fatal(err)
			}
		}
	}
	makeBins(filepath.Join(root, "lib", "12", "bin"), "initdb", "pg_ctl")
	makeBins(filepath.Join(root, "lib", "17", "bin"), "initdb", "pg_ctl")
	makeBins(filepath.Join(root, "lib", "18", "bin"), "initdb") // incomplete install
	glob := filepath.Join(root, "lib", "*", "bin")
	notOnPath := func(string) (string, error) { return "", exec.ErrNotFound }

	t.Run("OKNewestComplete", func(t *testing.T) {
		t.Parallel()
		b, err := findBinaries(notOnPath, glob)
		if err != nil {
			t.Fatal(err)
		}
		if want := filepath.Join(root, "lib", "17", "bin", "pg_ctl"); b.pgCtl != want {
			t.Fatalf("pg_ctl = %s, want %s", b.pgCtl, want)
		}
	})

	t.Run("OKPathSymlinkFollowed", func(t *testing.T) {
		t.Parallel()
		pathDir := filepath.Join(t.TempDir(), "bin")
		if err := os.MkdirAll(pathDir, 0o755); err != nil {
			t.Fatal(err)
		}
		link := filepath.Join(pathDir, "initdb")
		if err := os.Symlink(filepath.Join(root, "lib", "12", "bin", "initdb"), link); err != nil {
			t.Fatal(err)
		}
		lookPath := func(name string) (string, error) {
			if name == "initdb" {
				return link, nil
			}
			return "", exec.ErrNotFound
		}
		b, err := findBinaries(lookPath, glob)
		if err != nil {
			t.Fatal(err)
		}
		if want := filepath.Join(root, "lib", "12", "bin", "pg_ctl"); b.pgCtl != want {
			t.Fatalf("pg_ctl = %s, want the one beside initdb's target %s", b.pgCtl, want)
		}
	})

	t.Run("ErrNone", func(t *testing.T) {
		t.Parallel()
		if _, err := findBinaries(notOnPath, filepath.Join(t.TempDir(), "*", "bin")); err == nil {
			t.Fatal("found binaries in an empty directory")
		}
	})
}

func TestShellJoin(t *testing.T) {
	t.Parallel()
	args := []string{"-k", "", "/tmp/with space/it's", "listen_addresses=127.0.0.1", `$HOME;"x"`, "-p", "5432"}
	out, err := exec.Command("/bin/sh", "-c", `for a in `+shellJoin(args)+`; do printf '[%s]' "$a"; done`).Output()
	if err != nil {
		t.Fatal(err)
	}
	var want strings.Builder
	for _, a := range args {
		want.WriteString("[" + a + "]")
	}
	if string(out) != want.String() {
		t.Fatalf("shell saw %s, want %s", out, want.String())
	}
}

func TestRunnerArgv(t *testing.T) {
	t.Parallel()
	args := []string{"/usr/lib/postgresql/15/bin/pg_ctl", "-o", "-p 5432", "start"}

	self := runner{}
	if got := self.argv(args); !slices.Equal(got, args) {
		t.Errorf("as self: %v", got)
	}

	pg := &osUser{name: "postgres"}
	viaRunuser := runner{as: pg, switchUser: "/usr/sbin/runuser"}
	want := append([]string{"/usr/sbin/runuser", "-u", "postgres", "--"}, args...)
	if got := viaRunuser.argv(args); !slices.Equal(got, want) {
		t.Errorf("via runuser: %v, want %v", got, want)
	}

	viaSu := runner{as: pg, su: "/bin/su"}
	want = []string{"/bin/su", "-s", "/bin/sh", "-c", "/usr/lib/postgresql/15/bin/pg_ctl -o '-p 5432' start", "postgres"}
	if got := viaSu.argv(args); !slices.Equal(got, want) {
		t.Errorf("via su: %q, want %q", got, want)
	}
}
