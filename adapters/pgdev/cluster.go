package pgdev

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"
	"unicode"

	"github.com/jackc/pgx/v5"
)

// Where distribution packages put versioned PostgreSQL binaries that are not
// on PATH: Debian/Ubuntu and the PGDG RPMs respectively.
const (
	debianBinGlob = "/usr/lib/postgresql/*/bin"
	rpmBinGlob    = "/usr/pgsql-*/bin"
)

const (
	// runAsUser is the OS account PostgreSQL runs as when we are root, since
	// initdb, pg_ctl and postgres all refuse to run as root.
	runAsUser = "postgres"
	// stopTimeout bounds shutdown; it uses its own context because stop is
	// typically called after the caller's context has been cancelled.
	stopTimeout = 30 * time.Second
	// maxSocketPath is the longest unix socket path the kernel accepts
	// (sun_path is 108 bytes including the terminating NUL).
	maxSocketPath = 107
	// outputTail is how much of a failed command's output or server log is
	// quoted in an error.
	outputTail = 2048
)

// cluster is a throwaway PostgreSQL cluster under the state directory.
type cluster struct {
	bins      binaries
	dir       string // stateDir/pg, owned by the server's OS user
	dataDir   string
	logFile   string
	socketDir string // "" disables unix sockets
	ownSocket bool   // socketDir is ours to create and chown
	listen    string // listen_addresses; "" means unix socket only
	port      uint16
	superuser string
	run       runner
	logf      func(string, ...any)
	stop      func() error
}

// newCluster works out binaries, paths and the OS user for a cluster serving
// cfg's host and port; it changes nothing on disk.
func newCluster(cfg *pgx.ConnConfig, stateDir string, logf func(string, ...any)) (*cluster, error) {
	bins, err := findBinaries(exec.LookPath, debianBinGlob, rpmBinGlob)
	if err != nil {
		return nil, err
	}
	abs, err := filepath.Abs(stateDir)
	if err != nil {
		return nil, fmt.Errorf("pgdev: state directory: %w", err)
	}
	dir := filepath.Join(abs, "pg")
	c := &cluster{
		bins:      bins,
		dir:       dir,
		dataDir:   filepath.Join(dir, "data"),
		logFile:   filepath.Join(dir, "postgres.log"),
		port:      cfg.Port,
		superuser: cfg.User,
		logf:      logf,
	}

	switch {
	case isSocketDir(cfg.Host):
		// The URL names a socket directory, so that is where clients look.
		c.socketDir = cfg.Host
	default:
		c.listen = cfg.Host
		c.socketDir = filepath.Join(dir, "sock")
		c.ownSocket = true
		if !usableSocketDir(c.socketDir, c.port) {
			// TCP is what the URL uses; a socket is only a convenience for psql.
			logf("pgdev: %s cannot hold a unix socket (path too long or has , or \"); using TCP only", c.socketDir)
			c.socketDir, c.ownSocket = "", false
		}
	}

	c.run, err = newRunner(dir, logf)
	if err != nil {
		return nil, err
	}
	c.stop = sync.OnceValue(c.shutdown)
	return c, nil
}

// start initialises the cluster if it has never been and starts the server,
// waiting until it accepts connections.
func (c *cluster) start(ctx context.Context) error {
	if err := c.prepareDirs(ctx); err != nil {
		return err
	}

	if _, err := os.Stat(filepath.Join(c.dataDir, "PG_VERSION")); errors.Is(err, os.ErrNotExist) {
		c.logf("pgdev: initialising PostgreSQL cluster in %s (superuser %q, trust auth)", c.dataDir, c.superuser)
		// Locale C keeps initdb independent of whatever locales the machine
		// has installed; collation order does not matter for a dev database.
		_, err := c.run.output(ctx, c.bins.initdb,
			"-D", c.dataDir, "-U", c.superuser, "--auth=trust", "-E", "UTF8", "--locale=C")
		if err != nil {
			return fmt.Errorf("pgdev: initdb in %s: %w", c.dataDir, err)
		}
	} else if err != nil {
		return fmt.Errorf("pgdev: inspect %s: %w", c.dataDir, err)
	} else {
		c.logf("pgdev: reusing PostgreSQL cluster in %s", c.dataDir)
	}

	// pg_ctl hands -o to /bin/sh, so each option is quoted for the shell.
	serverOpts := shellJoin([]string{
		"-p", strconv.Itoa(int(c.port)),
		"-k", c.socketDir,
		"-c", "listen_addresses=" + c.listen,
	})
	c.logf("pgdev: starting PostgreSQL (%s) on port %d, data in %s, log in %s", c.bins.pgCtl, c.port, c.dataDir, c.logFile)
	if _, err := c.run.output(ctx, c.bins.pgCtl,
		"-D", c.dataDir, "-l", c.logFile, "-o", serverOpts, "-w", "start"); err != nil {
		return fmt.Errorf("pgdev: start PostgreSQL in %s: %w\nserver log %s ends with:\n%s", c.dataDir, err, c.logFile, fileTail(c.logFile))
	}
	c.logf("pgdev: PostgreSQL is running; stop it with: %s -D %s stop", c.bins.pgCtl, c.dataDir)
	return nil
}

// prepareDirs creates the cluster's directories and, when we are root, hands
// them to the server's OS user and checks that user can actually reach them.
func (c *cluster) prepareDirs(ctx context.Context) error {
	dirs := []string{c.dir}
	if c.socketDir != "" {
		if _, err := os.Stat(c.socketDir); c.ownSocket || errors.Is(err, os.ErrNotExist) {
			dirs = append(dirs, c.socketDir)
		}
	}
	for _, d := range dirs {
		if err := os.MkdirAll(d, 0o755); err != nil {
			return fmt.Errorf("pgdev: create %s: %w", d, err)
		}
		if c.run.as != nil {
			if err := os.Chown(d, c.run.as.uid, c.run.as.gid); err != nil {
				return fmt.Errorf("pgdev: give %s to OS user %s: %w", d, c.run.as.name, err)
			}
		}
	}
	if c.run.as != nil {
		// Chown is not enough if a parent directory (say /root) is closed to
		// others; initdb would then fail with a less helpful message.
		if _, err := c.run.output(ctx, "test", "-w", c.dir, "-a", "-x", c.dir); err != nil {
			return fmt.Errorf("pgdev: OS user %s cannot write %s; make its parent directories searchable (chmod o+x) or use another state directory: %w", c.run.as.name, c.dir, err)
		}
	}
	return nil
}

// shutdown stops the server; it is wrapped in a sync.OnceValue as c.stop so
// callers may call stop more than once.
func (c *cluster) shutdown() error {
	c.logf("pgdev: stopping PostgreSQL cluster in %s", c.dataDir)
	ctx, cancel := context.WithTimeout(context.Background(), stopTimeout)
	defer cancel()
	if _, err := c.run.output(ctx, c.bins.pgCtl, "-D", c.dataDir, "-m", "fast", "-w", "stop"); err != nil {
		return fmt.Errorf("pgdev: stop PostgreSQL in %s: %w", c.dataDir, err)
	}
	return nil
}

// binaries are the PostgreSQL programs we drive, as absolute paths so they
// still resolve when run as another OS user with a different PATH.
type binaries struct {
	initdb string
	pgCtl  string
}

// findBinaries looks for initdb and pg_ctl on PATH, then in the newest
// versioned directory matching globs. Both must come from the same install,
// so pg_ctl is taken from beside initdb whenever it is there.
func findBinaries(lookPath func(string) (string, error), globs ...string) (binaries, error) {
	if p, err := lookPath("initdb"); err == nil {
		initdb, err := filepath.Abs(p)
		if err != nil {
			return binaries{}, fmt.Errorf("pgdev: locate initdb: %w", err)
		}
		// Debian links initdb into PATH; its real directory holds pg_ctl and
		// postgres of the same version.
		if real, err := filepath.EvalSymlinks(initdb); err == nil {
			initdb = real
		}
		if sibling := filepath.Join(filepath.Dir(initdb), "pg_ctl"); isExecutable(sibling) {
			return binaries{initdb: initdb, pgCtl: sibling}, nil
		}
		if q, err := lookPath("pg_ctl"); err == nil {
			if pgCtl, err := filepath.Abs(q); err == nil {
				return binaries{initdb: initdb, pgCtl: pgCtl}, nil
			}
		}
	}

	var dirs []string
	for _, g := range globs {
		m, err := filepath.Glob(g)
		if err != nil {
			return binaries{}, fmt.Errorf("pgdev: glob %s: %w", g, err)
		}
		dirs = append(dirs, m...)
	}
	for _, d := range newestFirst(dirs) {
		b := binaries{initdb: filepath.Join(d, "initdb"), pgCtl: filepath.Join(d, "pg_ctl")}
		if isExecutable(b.initdb) && isExecutable(b.pgCtl) {
			return b, nil
		}
	}
	return binaries{}, fmt.Errorf("pgdev: no PostgreSQL server answered and initdb/pg_ctl were found neither on PATH nor in %s; install PostgreSQL or set the database URL to a running server", strings.Join(globs, ", "))
}

// newestFirst orders versioned bin directories such as
// /usr/lib/postgresql/15/bin or /usr/pgsql-9.6/bin by descending version.
func newestFirst(dirs []string) []string {
	out := slices.Clone(dirs)
	slices.SortStableFunc(out, func(a, b string) int {
		return slices.Compare(dirVersion(b), dirVersion(a))
	})
	return out
}

// dirVersion extracts the version numbers from the directory above bin.
func dirVersion(binDir string) []int {
	name := filepath.Base(filepath.Dir(binDir))
	i := strings.IndexFunc(name, unicode.IsDigit)
	if i < 0 {
		return nil
	}
	var v []int
	for _, part := range strings.Split(name[i:], ".") {
		n, err := strconv.Atoi(part)
		if err != nil {
			break
		}
		v = append(v, n)
	}
	return v
}

func isExecutable(path string) bool {
	fi, err := os.Stat(path)
	return err == nil && fi.Mode().IsRegular() && fi.Mode().Perm()&0o111 != 0
}

// usableSocketDir reports whether PostgreSQL can create its socket in dir:
// the path must fit in sun_path and unix_socket_directories, a
// comma-separated list, cannot carry commas or quotes unescaped.
func usableSocketDir(dir string, port uint16) bool {
	sock := filepath.Join(dir, ".s.PGSQL."+strconv.Itoa(int(port)))
	return len(sock) <= maxSocketPath && !strings.ContainsAny(dir, `,"`)
}

// osUser is the account commands run as when we are root.
type osUser struct {
	name     string
	uid, gid int
}

// runner runs PostgreSQL's programs, switching to the postgres OS user when
// the current process is root.
type runner struct {
	dir string
	// as is nil when commands run as the current user.
	as *osUser
	// switchUser is the argv prefix that switches user (runuser), or "" to
	// go through su, which needs the command as one shell string.
	switchUser string
	su         string
}

// newRunner prepares to run commands in dir, as the postgres OS user if root.
func newRunner(dir string, logf func(string, ...any)) (runner, error) {
	r := runner{dir: dir}
	if os.Geteuid() != 0 {
		return r, nil
	}
	u, err := user.Lookup(runAsUser)
	if err != nil {
		return runner{}, fmt.Errorf("pgdev: running as root, and PostgreSQL refuses to; there is no %q OS user to run it as: %w", runAsUser, err)
	}
	uid, err := strconv.Atoi(u.Uid)
	if err != nil {
		return runner{}, fmt.Errorf("pgdev: uid of %s: %w", runAsUser, err)
	}
	gid, err := strconv.Atoi(u.Gid)
	if err != nil {
		return runner{}, fmt.Errorf("pgdev: gid of %s: %w", runAsUser, err)
	}
	r.as = &osUser{name: runAsUser, uid: uid, gid: gid}

	if p := findProgram("runuser", "/usr/sbin/runuser", "/sbin/runuser"); p != "" {
		r.switchUser = p
		logf("pgdev: running as root; PostgreSQL commands run as OS user %s via %s", runAsUser, p)
		return r, nil
	}
	if p := findProgram("su", "/bin/su", "/usr/bin/su"); p != "" {
		r.su = p
		logf("pgdev: running as root; PostgreSQL commands run as OS user %s via %s", runAsUser, p)
		return r, nil
	}
	return runner{}, fmt.Errorf("pgdev: running as root, but neither runuser nor su is available to run PostgreSQL as %s", runAsUser)
}

// findProgram returns name from PATH or the first executable fallback; root's
// PATH does not always include the sbin directories.
func findProgram(name string, fallbacks ...string) string {
	if p, err := exec.LookPath(name); err == nil {
		return p
	}
	for _, f := range fallbacks {
		if isExecutable(f) {
			return f
		}
	}
	return ""
}

// argv returns the command line that runs args as the runner's user.
func (r runner) argv(args []string) []string {
	switch {
	case r.as == nil:
		return args
	case r.switchUser != "":
		return append([]string{r.switchUser, "-u", r.as.name, "--"}, args...)
	default:
		// The account's login shell may be nologin, hence -s.
		return []string{r.su, "-s", "/bin/sh", "-c", shellJoin(args), r.as.name}
	}
}

// output runs name with args and returns its combined output; on failure the
// error quotes the output's tail, which is where PostgreSQL tools say why.
func (r runner) output(ctx context.Context, name string, args ...string) ([]byte, error) {
	argv := r.argv(append([]string{name}, args...))
	cmd := exec.CommandContext(ctx, argv[0], argv[1:]...)
	// A directory the postgres user can enter avoids "could not change
	// directory" noise when our working directory is, say, /root.
	cmd.Dir = r.dir
	out, err := cmd.CombinedOutput()
	if err != nil {
		return out, fmt.Errorf("%s: %w\n%s", filepath.Base(name), err, tail(out))
	}
	return out, nil
}

// shellJoin quotes args for /bin/sh so they arrive unchanged.
func shellJoin(args []string) string {
	quoted := make([]string, len(args))
	for i, a := range args {
		quoted[i] = shellQuote(a)
	}
	return strings.Join(quoted, " ")
}

func shellQuote(s string) string {
	safe := s != "" && strings.IndexFunc(s, func(r rune) bool {
		return !(r < unicode.MaxASCII && (unicode.IsLetter(r) || unicode.IsDigit(r) || strings.ContainsRune("_-./=:,@%+", r)))
	}) < 0
	if safe {
		return s
	}
	return "'" + strings.ReplaceAll(s, "'", `'\''`) + "'"
}

func tail(b []byte) string {
	b = bytes.TrimSpace(b)
	if len(b) > outputTail {
		b = b[len(b)-outputTail:]
	}
	return string(b)
}

// fileTail returns the end of the file at path, or a note why it cannot.
func fileTail(path string) string {
	f, err := os.Open(path)
	if err != nil {
		return fmt.Sprintf("(cannot read: %v)", err)
	}
	defer f.Close()
	if fi, err := f.Stat(); err == nil && fi.Size() > outputTail {
		if _, err := f.Seek(-outputTail, io.SeekEnd); err != nil {
			return fmt.Sprintf("(cannot read: %v)", err)
		}
	}
	b, err := io.ReadAll(f)
	if err != nil {
		return fmt.Sprintf("(cannot read: %v)", err)
	}
	return tail(b)
}
