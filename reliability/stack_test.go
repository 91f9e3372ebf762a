//go:build reliability

package reliability

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/mailgate/mailgate/db/dbtest"
)

const jwtSecret = "reliability-secret-0123456789-abcdefghij"

// recipientDomain is where every test message goes; the sink takes them all.
const recipientDomain = "sink.example.net"

// proc is one mailgate child process.
type proc struct {
	role    string
	cmd     *exec.Cmd
	logPath string
	addr    string // public API (api role)
	admin   string // admin listener: /readyz, /metrics
	done    chan struct{}
	err     error
	exited  time.Time
}

func (p *proc) pid() int { return p.cmd.Process.Pid }

func (p *proc) alive() bool {
	select {
	case <-p.done:
		return false
	default:
		return true
	}
}

// kill sends SIGKILL and waits for the process to be gone.
func (p *proc) kill() {
	_ = p.cmd.Process.Signal(syscall.SIGKILL)
	<-p.done
}

// rssBytes reads the process's resident set from /proc.
func (p *proc) rssBytes() int64 {
	data, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", p.pid()))
	if err != nil {
		return 0
	}
	for _, line := range strings.Split(string(data), "\n") {
		if f := strings.Fields(line); len(f) >= 2 && f[0] == "VmRSS:" {
			kb, _ := strconv.ParseInt(f[1], 10, 64)
			return kb << 10
		}
	}
	return 0
}

// tenant is one tenant the scenario created, with a token and a sender.
type tenant struct {
	ID     string
	Token  string
	Sender string
	Domain string
}

// stackOptions tune one scenario's processes.
type stackOptions struct {
	Workers       int
	ShutdownGrace time.Duration
	Tenants       int
	// ExtraDomains gives each tenant a second sender domain, d2.<domain>.
	ExtraDomains bool
	// NoWorker leaves the worker to be started by the scenario.
	NoWorker bool
	// Env adds MAILGATE_* settings to every server process, over the
	// suite's defaults.
	Env []string
}

// stack is one scenario's world: its own database on the suite's cluster,
// a sink, a fault proxy in front of the sink and one in front of
// PostgreSQL, and the API and worker processes.
type stack struct {
	t      *testing.T
	suite  *suite
	name   string
	dir    string
	db     *pgxpool.Pool // direct, as superuser: reads past row-level security
	sink   *sink
	relay  *faultProxy
	pg     *faultProxy
	opts   stackOptions
	api    *proc
	worker *proc
	// workers are every worker process started, for logs and pids.
	workers []*proc
	// apis are every API process started.
	apis    []*proc
	tenants []tenant
	admin   string
	http    *http.Client
	dbName  string
	started int
	// apiAddr is the API's address; load goroutines read it while the API
	// is restarted.
	apiAddr atomic.Value
}

func (s *suite) newStack(t *testing.T, name string, opts stackOptions) *stack {
	t.Helper()
	ctx := context.Background()
	if opts.Workers == 0 {
		opts.Workers = 20
	}
	if opts.ShutdownGrace == 0 {
		opts.ShutdownGrace = 10 * time.Second
	}
	if opts.Tenants == 0 {
		opts.Tenants = 1
	}
	dir := filepath.Join(s.dir, name)
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	st := &stack{t: t, suite: s, name: name, dir: dir, opts: opts, dbName: "rel_" + strings.ReplaceAll(name, "-", "_"),
		http: &http.Client{Timeout: 30 * time.Second, Transport: &http.Transport{MaxIdleConnsPerHost: 64}}}
	if err := s.cluster.createDatabase(ctx, st.dbName); err != nil {
		t.Fatal(err)
	}
	pool, err := pgxpool.New(ctx, s.cluster.url(st.dbName)+"&pool_max_conns=4")
	if err != nil {
		t.Fatal(err)
	}
	st.db = pool
	t.Cleanup(pool.Close)
	if st.sink, err = startSink(filepath.Join(dir, "sink.log")); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(st.sink.close)
	if st.relay, err = startProxy(st.sink.addr(), true); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(st.relay.close)
	if st.pg, err = startProxy(s.cluster.addr(), false); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(st.pg.close)

	if out, err := st.cli(ctx, "migrate"); err != nil {
		t.Fatalf("migrate: %v\n%s", err, out)
	}
	for i := range opts.Tenants {
		st.tenants = append(st.tenants, st.createTenant(ctx, fmt.Sprintf("t%d.%s.example", i, name), opts.ExtraDomains))
	}
	st.admin = st.token(ctx, st.tenants[0].ID, true)

	t.Cleanup(func() {
		for _, p := range append(append([]*proc{}, st.apis...), st.workers...) {
			if p != nil && p.alive() {
				p.kill()
			}
		}
		if t.Failed() {
			t.Logf("scenario %s: process logs and sink log are under %s", name, dir)
		}
	})
	st.api = st.start(ctx, "api")
	if !opts.NoWorker {
		st.startWorker(ctx)
	}
	return st
}

// env is the processes' environment: the machine's without MAILGATE_*,
// plus the scenario's settings. databaseURL is proxied for servers, direct
// for the CLI.
func (st *stack) env(databaseURL string, extra ...string) []string {
	var env []string
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, "MAILGATE_") {
			env = append(env, kv)
		}
	}
	return append(append(env,
		"MAILGATE_DATABASE_URL="+databaseURL,
		"MAILGATE_JWT_SECRET="+jwtSecret,
		"MAILGATE_RATE_LIMIT=0",
		"MAILGATE_RETRY_BASE=1s",
		"MAILGATE_TENANT_MAX_DELIVERIES=0",
		"MAILGATE_SHUTDOWN_GRACE="+st.opts.ShutdownGrace.String(),
		"MAILGATE_WORKERS="+strconv.Itoa(st.opts.Workers),
		"MAILGATE_SMTP_URL=smtp://"+st.relay.addr()+"?tls=none",
		// Short SMTP timeouts keep the delivery timeout, and so River's
		// rescue of a dead worker's jobs, at about a minute and a half.
		"MAILGATE_SMTP_TIMEOUT=3s",
		"MAILGATE_SMTP_DATA_TIMEOUT=10s",
	), extra...)
}

func (st *stack) proxiedURL() string {
	return fmt.Sprintf("postgres://postgres@%s/%s?sslmode=disable", st.pg.addr(), st.dbName)
}

// cli runs a mailgate command against the database directly and returns stdout.
func (st *stack) cli(ctx context.Context, args ...string) ([]byte, error) {
	ctx, cancel := context.WithTimeout(ctx, time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, st.suite.binary, args...)
	cmd.Env = st.env(st.suite.cluster.url(st.dbName))
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		return stderr.Bytes(), fmt.Errorf("mailgate %s: %w", strings.Join(args, " "), err)
	}
	return stdout.Bytes(), nil
}

func (st *stack) createTenant(ctx context.Context, domainName string, extra bool) tenant {
	st.t.Helper()
	args := []string{"tenant", "create", "--name", domainName, "--sender-domain", domainName}
	if extra {
		args = append(args, "--sender-domain", "d2."+domainName)
	}
	out, err := st.cli(ctx, args...)
	if err != nil {
		st.t.Fatalf("%v\n%s", err, out)
	}
	var created struct {
		SubscriptionID string `json:"subscription_id"`
	}
	if err := json.Unmarshal(out, &created); err != nil {
		st.t.Fatalf("tenant create output: %v\n%s", err, out)
	}
	sender := "sender@" + domainName
	if out, err := st.cli(ctx, "account", "create", "--subscription", created.SubscriptionID, "--email", sender, "--display-name", "Reliability"); err != nil {
		st.t.Fatalf("%v\n%s", err, out)
	}
	return tenant{ID: created.SubscriptionID, Token: st.token(ctx, created.SubscriptionID, false), Sender: sender, Domain: domainName}
}

func (st *stack) token(ctx context.Context, subscription string, admin bool) string {
	st.t.Helper()
	args := []string{"token", "issue", "--subscription", subscription, "--ttl", "6h"}
	if admin {
		args = append(args, "--admin")
	}
	out, err := st.cli(ctx, args...)
	if err != nil {
		st.t.Fatalf("%v\n%s", err, out)
	}
	return strings.TrimSpace(string(out))
}

// start runs `mailgate serve --role role` on free ports.
func (st *stack) start(ctx context.Context, role string) *proc {
	st.t.Helper()
	httpPort, adminPort := dbtest.LoopbackPort(st.t), dbtest.LoopbackPort(st.t)
	return st.startAt(ctx, role, fmt.Sprintf("127.0.0.1:%d", httpPort), fmt.Sprintf("127.0.0.1:%d", adminPort))
}

// startAt runs `mailgate serve --role role` on these addresses and waits
// until its /readyz answers 200.
func (st *stack) startAt(ctx context.Context, role, addr, admin string) *proc {
	st.t.Helper()
	p := &proc{role: role, done: make(chan struct{}), addr: addr, admin: admin}
	st.started++
	p.logPath = filepath.Join(st.dir, fmt.Sprintf("%02d-%s.log", st.started, role))
	logFile, err := os.Create(p.logPath)
	if err != nil {
		st.t.Fatal(err)
	}
	p.cmd = exec.Command(st.suite.binary, "serve", "--role", role)
	p.cmd.Env = st.env(st.proxiedURL(), append([]string{"MAILGATE_HTTP_ADDR=" + p.addr, "MAILGATE_ADMIN_ADDR=" + p.admin}, st.opts.Env...)...)
	p.cmd.Stdout, p.cmd.Stderr = logFile, logFile
	// If the test binary dies (a timeout panic skips cleanups), so do its children.
	p.cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	if err := p.cmd.Start(); err != nil {
		st.t.Fatalf("start %s: %v", role, err)
	}
	go func() {
		p.err = p.cmd.Wait()
		p.exited = time.Now()
		logFile.Close()
		close(p.done)
	}()
	ready := "http://" + p.admin + "/readyz"
	if _, ok := waitFor(ctx, 60*time.Second, 50*time.Millisecond, func() bool {
		if !p.alive() {
			return true
		}
		resp, err := st.http.Get(ready)
		if err != nil {
			return false
		}
		resp.Body.Close()
		return resp.StatusCode == http.StatusOK
	}); !ok || !p.alive() {
		log, _ := os.ReadFile(p.logPath)
		if !p.alive() {
			st.t.Fatalf("%s exited before it was ready (%v)\n%s", role, p.err, tailOf(log, 3000))
		}
		st.t.Fatalf("%s did not become ready in 60s\n%s", role, tailOf(log, 3000))
	}
	if role == "api" {
		st.apiAddr.Store(p.addr)
		st.apis = append(st.apis, p)
	}
	return p
}

func (st *stack) startWorker(ctx context.Context) *proc {
	st.t.Helper()
	st.worker = st.start(ctx, "worker")
	st.workers = append(st.workers, st.worker)
	return st.worker
}

func tailOf(b []byte, n int) string {
	if len(b) > n {
		b = b[len(b)-n:]
	}
	return string(b)
}

// apiURL is the public API base of the API process.
func (st *stack) apiURL(path string) string { return "http://" + st.apiAddr.Load().(string) + path }

// adminCall sends an operator request and returns its status.
func (st *stack) adminCall(ctx context.Context, method, path string) (int, []byte, error) {
	req, err := http.NewRequestWithContext(ctx, method, st.apiURL(path), nil)
	if err != nil {
		return 0, nil, err
	}
	req.Header.Set("Authorization", "Bearer "+st.admin)
	resp, err := st.http.Do(req)
	if err != nil {
		return 0, nil, err
	}
	defer resp.Body.Close()
	var buf bytes.Buffer
	_, _ = buf.ReadFrom(resp.Body)
	return resp.StatusCode, buf.Bytes(), nil
}
