package app

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/mailgate/mailgate/db/dbtest"
)

// BenchmarkAccept measures the accept rate of `serve --role api` (one
// tenant, rate limit off, the seed's JSON with send=true, 2 To + 1 Cc and a
// 1 KB body) against two ceilings run by pgbench in the same database, in
// the same run, alternated with the gateway: the same SQL the gateway runs
// for one accepted message (testdata/bench/accept.pgbench, taken from
// PostgreSQL's statement log, see docs/accept-sql-after.txt), and the
// minimal outbox transaction (one 2 KB message row and one river_job row,
// testdata/bench/outbox.pgbench). Each concurrency runs the three phases
// MAILGATE_BENCH_ROUNDS times (default 2) for MAILGATE_BENCH_PHASE (default
// 4s) each and reports medians. A last sub-benchmark sends batches of 500.
// Results are written up in docs/benchmarks.md; `make bench` plots them.
func BenchmarkAccept(b *testing.B) {
	pgbench, err := exec.LookPath("pgbench")
	if err != nil {
		if pgbench, err = firstGlob("/usr/lib/postgresql/*/bin/pgbench"); err != nil {
			b.Skip("pgbench is not installed")
		}
	}
	s := newAcceptBench(b, pgbench)
	rates := map[int]float64{}
	for _, c := range benchConcurrencies() {
		b.Run(fmt.Sprintf("c=%d", c), func(b *testing.B) {
			if c == 128 {
				resetPeakRSS(b)
			}
			if c > maxCeilingClients {
				// pgbench would need a connection per client, more than a
				// shared server's max_connections leaves; the gateway's
				// pool stays at its size whatever the clients.
				g := s.gateway(b, c)
				b.ReportMetric(g.rate, "msg/s")
				b.ReportMetric(g.p50.Seconds()*1000, "p50_ms")
				b.ReportMetric(g.p99.Seconds()*1000, "p99_ms")
				b.ReportMetric(g.goCPU, "go_cpu_us/msg")
				b.ReportMetric(g.pgCPU, "pg_cpu_us/msg")
				b.ReportMetric(peakRSS(b), "peak_rss_MB")
				return
			}
			var gw, same, outbox []phaseResult
			for range benchRounds() {
				same = append(same, s.pgbench(b, "accept.pgbench", c))
				gw = append(gw, s.gateway(b, c))
				outbox = append(outbox, s.pgbench(b, "outbox.pgbench", c))
			}
			g, sq, ob := median(gw), median(same), median(outbox)
			rates[c] = g.rate
			b.ReportMetric(g.rate, "msg/s")
			b.ReportMetric(g.p50.Seconds()*1000, "p50_ms")
			b.ReportMetric(g.p99.Seconds()*1000, "p99_ms")
			b.ReportMetric(sq.rate, "same_sql_tps")
			b.ReportMetric(sq.p99.Seconds()*1000, "same_sql_p99_ms")
			b.ReportMetric(ob.rate, "outbox_tps")
			b.ReportMetric(g.rate/sq.rate, "x_same_sql")
			b.ReportMetric(g.rate/ob.rate, "x_outbox")
			b.ReportMetric(g.p99.Seconds()/sq.p99.Seconds(), "p99_x_same_sql")
			b.ReportMetric(g.goCPU, "go_cpu_us/msg")
			b.ReportMetric(g.pgCPU, "pg_cpu_us/msg")
			b.ReportMetric(sq.pgCPU, "same_sql_pg_cpu_us/tx")
			b.ReportMetric(g.wal, "wal_B/msg")
			b.ReportMetric(sq.wal, "same_sql_wal_B/tx")
			b.ReportMetric(ob.wal, "outbox_wal_B/tx")
		})
	}
	b.Run("batch=500", func(b *testing.B) {
		var runs []phaseResult
		for range benchRounds() {
			runs = append(runs, s.batches(b, 500))
		}
		r := median(runs)
		b.ReportMetric(r.rate, "msg/s")
		b.ReportMetric(r.p99.Seconds()*1000, "p99_ms")
		b.ReportMetric(r.goCPU, "go_cpu_us/msg")
		b.ReportMetric(r.pgCPU, "pg_cpu_us/msg")
		b.ReportMetric(r.wal, "wal_B/msg")
		if rates[1] > 0 {
			b.ReportMetric(r.rate/rates[1], "x_single_c1")
		}
		if rates[16] > 0 {
			b.ReportMetric(r.rate/rates[16], "x_single_c16")
		}
	})
}

func firstGlob(pattern string) (string, error) {
	m, _ := filepath.Glob(pattern)
	if len(m) == 0 {
		return "", os.ErrNotExist
	}
	slices.Sort(m)
	return m[len(m)-1], nil
}

// maxCeilingClients is the most pgbench clients a phase opens.
const maxCeilingClients = 64

// benchConcurrencies is MAILGATE_BENCH_CONCURRENCY (comma-separated), by
// default 1, 16, 64 and 128 clients.
func benchConcurrencies() []int {
	var out []int
	for f := range strings.SplitSeq(os.Getenv("MAILGATE_BENCH_CONCURRENCY"), ",") {
		if n, err := strconv.Atoi(strings.TrimSpace(f)); err == nil && n > 0 {
			out = append(out, n)
		}
	}
	if len(out) == 0 {
		out = []int{1, 16, 64, 128}
	}
	return out
}

func benchRounds() int {
	if n, err := strconv.Atoi(os.Getenv("MAILGATE_BENCH_ROUNDS")); err == nil && n > 0 {
		return n
	}
	return 2
}

func benchPhase() time.Duration {
	if d, err := time.ParseDuration(os.Getenv("MAILGATE_BENCH_PHASE")); err == nil && d > 0 {
		return d
	}
	return 4 * time.Second
}

// Backends are told apart by application_name: the shared server runs
// other suites' sessions meanwhile.
const (
	gatewayAppName = "mailgate_bench_accept"
	pgbenchAppName = "mailgate_bench_pgbench"
)

// acceptBench is a migrated schema with one tenant, the API under test
// (an App with RoleAPI, as `serve --role api`) and what pgbench needs to
// reach the same schema as the same runtime role.
type acceptBench struct {
	setup      *drainSetup
	api        *App
	owner      *pgxpool.Pool
	pgbenchBin string
	// conninfo and options point pgbench at the schema as the runtime role.
	conninfo, options string
	vars              []string
	body              []byte
	client            *http.Client
}

func newAcceptBench(b *testing.B, pgbench string) *acceptBench {
	d := newDrainSetup(b, nil, "127.0.0.1:9")
	d.dbURL += "&application_name=" + gatewayAppName
	s := &acceptBench{setup: d, pgbenchBin: pgbench, owner: dbtest.OwnerPoolFor(b, d.dbURL)}
	s.api = d.start(b, RoleAPI, nil)
	b.Cleanup(func() { _ = s.api.Shutdown(context.Background()) })
	u, err := url.Parse(d.dbURL)
	if err != nil {
		b.Fatal(err)
	}
	schema := u.Query().Get("search_path")
	q := url.Values{"sslmode": {"disable"}, "application_name": {pgbenchAppName}}
	s.conninfo = (&url.URL{Scheme: u.Scheme, User: u.User, Host: u.Host, Path: u.Path, RawQuery: q.Encode()}).String()
	s.options = "-c search_path=" + schema + " -c role=mailgate_app -c mailgate.subscription_id=" + d.tenant.ID.String()
	body1k := strings.Repeat("All work and no play makes a fast gateway. ", 25)[:1024]
	s.vars = []string{
		"tenant=" + d.tenant.ID.String(), "sender=" + d.sender.Email, "account=" + d.sender.ID.String(),
		"body=" + body1k, "body2k=" + body1k + body1k,
	}
	s.body = mustJSON(map[string]any{
		"sender_email": d.sender.Email, "subject": "Hello", "body": body1k, "importance": 1, "send": true,
		"to": rcpts("ada@sink.example", "bob@sink.example"), "cc": rcpts("cy@sink.example"),
	})
	s.client = &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 256, MaxConnsPerHost: 256}}
	return s
}

// phaseResult is one measured phase: a rate, latencies, and costs per
// message (or per pgbench transaction).
type phaseResult struct {
	rate     float64
	p50, p99 time.Duration
	// goCPU is this process's CPU (gateway and its HTTP clients) and pgCPU
	// the CPU of the phase's PostgreSQL backends, in µs per message.
	goCPU, pgCPU float64
	// wal is WAL bytes per message; the server is shared, so other
	// sessions' WAL is counted too.
	wal float64
}

func median(rs []phaseResult) phaseResult {
	pick := func(get func(phaseResult) float64) float64 {
		v := make([]float64, len(rs))
		for i, r := range rs {
			v[i] = get(r)
		}
		slices.Sort(v)
		if len(v)%2 == 1 {
			return v[len(v)/2]
		}
		return (v[len(v)/2-1] + v[len(v)/2]) / 2
	}
	return phaseResult{
		rate:  pick(func(r phaseResult) float64 { return r.rate }),
		p50:   time.Duration(pick(func(r phaseResult) float64 { return float64(r.p50) })),
		p99:   time.Duration(pick(func(r phaseResult) float64 { return float64(r.p99) })),
		goCPU: pick(func(r phaseResult) float64 { return r.goCPU }),
		pgCPU: pick(func(r phaseResult) float64 { return r.pgCPU }),
		wal:   pick(func(r phaseResult) float64 { return r.wal }),
	}
}

// gateway runs c clients posting the message for one phase; it is the
// phase MAILGATE_BENCH_CPUPROFILE profiles (the gateway and its HTTP
// clients, no pgbench).
func (s *acceptBench) gateway(b *testing.B, c int) phaseResult {
	defer profileCPU(b)()
	return s.load(b, c, "/api/messages/sendmessage", s.body, 1)
}

// batches runs one client posting batches of n messages for one phase.
func (s *acceptBench) batches(b *testing.B, n int) phaseResult {
	var item map[string]any
	if err := json.Unmarshal(s.body, &item); err != nil {
		b.Fatal(err)
	}
	items := make([]map[string]any, n)
	for i := range items {
		items[i] = item
	}
	return s.load(b, 1, "/api/messages/batch", mustJSON(map[string]any{"messages": items}), n)
}

// load runs c clients posting body to path until the phase ends; each
// request accepts perRequest messages.
func (s *acceptBench) load(b *testing.B, c int, path string, body []byte, perRequest int) phaseResult {
	b.Helper()
	target := "http://" + s.api.HTTPAddr() + path
	ctx, cancel := context.WithTimeout(context.Background(), benchPhase())
	defer cancel()
	cpu := s.startCPU(b, gatewayAppName)
	wal0 := s.walLSN(b)
	start := time.Now()
	lat := make([][]time.Duration, c)
	errs := make(chan error, c)
	var wg sync.WaitGroup
	for i := range c {
		wg.Go(func() {
			for ctx.Err() == nil {
				t0 := time.Now()
				req, _ := http.NewRequest(http.MethodPost, target, bytes.NewReader(body))
				req.Header.Set("Authorization", "Bearer "+s.setup.token)
				req.Header.Set("Content-Type", "application/json")
				res, err := s.client.Do(req)
				if err != nil {
					errs <- err
					return
				}
				_, _ = io.Copy(io.Discard, res.Body)
				res.Body.Close()
				if res.StatusCode != http.StatusCreated && res.StatusCode != http.StatusOK && res.StatusCode != http.StatusMultiStatus {
					errs <- fmt.Errorf("%s: status %d", path, res.StatusCode)
					return
				}
				lat[i] = append(lat[i], time.Since(t0))
			}
		})
	}
	wg.Wait()
	elapsed := time.Since(start)
	close(errs)
	for err := range errs {
		b.Fatal(err)
	}
	all := slices.Concat(lat...)
	msgs := float64(len(all) * perRequest)
	goCPU, pgCPU := cpu.stop(b)
	return phaseResult{
		rate: msgs / elapsed.Seconds(), p50: percentile(all, 0.50), p99: percentile(all, 0.99),
		goCPU: goCPU.Seconds() * 1e6 / msgs, pgCPU: pgCPU.Seconds() * 1e6 / msgs,
		wal: float64(s.walLSN(b)-wal0) / msgs,
	}
}

var pgbenchTPS = regexp.MustCompile(`tps = ([\d.]+) \(without initial connection time\)`)

// pgbench runs one script with c clients for one phase and reads its
// per-transaction log for the latencies.
func (s *acceptBench) pgbench(b *testing.B, script string, c int) phaseResult {
	b.Helper()
	dir := b.TempDir()
	args := []string{"-n", "-M", "prepared", "-c", strconv.Itoa(c), "-j", strconv.Itoa(min(c, 2)),
		"-T", strconv.Itoa(int(benchPhase().Seconds())), "-f", filepath.Join("testdata", "bench", script),
		"-l", "--log-prefix", filepath.Join(dir, "tx")}
	for _, v := range s.vars {
		args = append(args, "-D", v)
	}
	var (
		out   bytes.Buffer
		pgCPU time.Duration
		wal0  int64
	)
	// The shared server's connections are shared too: when other suites
	// hold too many for this phase's clients, try again a little later.
	for attempt := 1; ; attempt++ {
		out.Reset()
		cmd := exec.Command(s.pgbenchBin, append(args, s.conninfo)...)
		cmd.Env = append(os.Environ(), "PGOPTIONS="+s.options)
		cmd.Stdout, cmd.Stderr = &out, &out
		cpu := s.startCPU(b, pgbenchAppName)
		wal0 = s.walLSN(b)
		err := cmd.Run()
		_, pgCPU = cpu.stop(b)
		if err == nil {
			break
		}
		if attempt == 5 || !strings.Contains(out.String(), "too many clients") {
			b.Fatalf("pgbench %s: %v\n%s", script, err, out.String())
		}
		b.Logf("pgbench %s: the server is short of connections, attempt %d of 5", script, attempt)
		time.Sleep(time.Duration(attempt) * time.Second)
	}
	m := pgbenchTPS.FindStringSubmatch(out.String())
	if m == nil {
		b.Fatalf("pgbench %s: no tps in its output:\n%s", script, out.String())
	}
	tps, _ := strconv.ParseFloat(m[1], 64)
	lat, txs := readPgbenchLogs(b, dir)
	if strings.Contains(out.String(), "aborted") && !strings.Contains(out.String(), "number of failed transactions: 0") {
		b.Fatalf("pgbench %s: failed transactions:\n%s", script, out.String())
	}
	return phaseResult{rate: tps, p50: percentile(lat, 0.50), p99: percentile(lat, 0.99),
		pgCPU: pgCPU.Seconds() * 1e6 / float64(txs), wal: float64(s.walLSN(b)-wal0) / float64(txs)}
}

// readPgbenchLogs reads the latency (third field, µs) of every transaction
// from pgbench's -l logs.
func readPgbenchLogs(b *testing.B, dir string) ([]time.Duration, int) {
	files, _ := filepath.Glob(filepath.Join(dir, "tx*"))
	var lat []time.Duration
	for _, name := range files {
		f, err := os.Open(name)
		if err != nil {
			b.Fatal(err)
		}
		sc := bufio.NewScanner(f)
		for sc.Scan() {
			fields := strings.Fields(sc.Text())
			if len(fields) < 3 {
				continue
			}
			us, err := strconv.ParseInt(fields[2], 10, 64)
			if err != nil {
				continue
			}
			lat = append(lat, time.Duration(us)*time.Microsecond)
		}
		f.Close()
	}
	if len(lat) == 0 {
		b.Fatalf("pgbench wrote no transaction log under %s", dir)
	}
	return lat, len(lat)
}

func percentile(d []time.Duration, p float64) time.Duration {
	if len(d) == 0 {
		return 0
	}
	s := slices.Clone(d)
	slices.Sort(s)
	return s[min(len(s)-1, int(float64(len(s))*p))]
}

func (s *acceptBench) walLSN(b *testing.B) int64 {
	b.Helper()
	var lsn int64
	if err := s.owner.QueryRow(context.Background(), `SELECT pg_wal_lsn_diff(pg_current_wal_lsn(), '0/0')::bigint`).Scan(&lsn); err != nil {
		b.Fatal(err)
	}
	return lsn
}

// cpuMeter adds up this process's CPU and that of the PostgreSQL backends
// with one application_name over a phase. Backends are sampled while the
// phase runs, since pgbench's exit when it ends: the last sample before
// their exit is kept, so up to one sampling interval of their CPU is missed.
type cpuMeter struct {
	self0   time.Duration
	stopped chan struct{}
	done    chan map[int]time.Duration
}

const cpuSampleEvery = 100 * time.Millisecond

// The gateway's pool outlives a phase, so its backends are read at the
// start and the end only; pgbench's are sampled every cpuSampleEvery.
func (s *acceptBench) startCPU(b *testing.B, appName string) *cpuMeter {
	m := &cpuMeter{self0: selfCPU(b), stopped: make(chan struct{}), done: make(chan map[int]time.Duration, 1)}
	base := s.backendCPU(appName)
	sampled := appName == pgbenchAppName
	go func() {
		last := map[int]time.Duration{}
		tick := time.NewTicker(cpuSampleEvery)
		defer tick.Stop()
		for {
			for pid, t := range s.backendCPU(appName) {
				last[pid] = t - base[pid]
			}
			if !sampled {
				<-m.stopped
				for pid, t := range s.backendCPU(appName) {
					last[pid] = t - base[pid]
				}
			}
			select {
			case <-m.stopped:
				m.done <- last
				return
			case <-tick.C:
			}
		}
	}()
	return m
}

func (m *cpuMeter) stop(b *testing.B) (self, backends time.Duration) {
	self = selfCPU(b) - m.self0
	close(m.stopped)
	for _, t := range <-m.done {
		backends += t
	}
	return self, backends
}

// backendCPU reads the CPU time of every backend with appName from /proc.
func (s *acceptBench) backendCPU(appName string) map[int]time.Duration {
	rows, err := s.owner.Query(context.Background(), `SELECT pid FROM pg_stat_activity WHERE application_name = $1`, appName)
	if err != nil {
		return nil
	}
	defer rows.Close()
	out := map[int]time.Duration{}
	for rows.Next() {
		var pid int
		if rows.Scan(&pid) == nil {
			if t, ok := procCPU(pid); ok {
				out[pid] = t
			}
		}
	}
	return out
}

// procCPU is a process's user and system time from /proc/PID/stat.
func procCPU(pid int) (time.Duration, bool) {
	data, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return 0, false
	}
	// Fields after the command name, which is in parentheses and may hold spaces.
	rest := strings.Fields(string(data[bytes.LastIndexByte(data, ')')+1:]))
	if len(rest) < 13 {
		return 0, false
	}
	utime, _ := strconv.ParseInt(rest[11], 10, 64)
	stime, _ := strconv.ParseInt(rest[12], 10, 64)
	const clockTicks = 100 // USER_HZ on Linux
	return time.Duration(utime+stime) * time.Second / clockTicks, true
}

func selfCPU(b *testing.B) time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		b.Fatal(err)
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// resetPeakRSS starts the process's peak resident set over from its
// current size (Linux: writing 5 to clear_refs resets VmHWM).
func resetPeakRSS(b *testing.B) {
	if err := os.WriteFile("/proc/self/clear_refs", []byte("5"), 0); err != nil {
		b.Logf("peak RSS not reset: %v", err)
	}
}

// peakRSS is the process's peak resident set in MB (VmHWM), the gateway
// and its benchmark clients together.
func peakRSS(b *testing.B) float64 {
	data, err := os.ReadFile("/proc/self/status")
	if err != nil {
		b.Fatal(err)
	}
	for line := range strings.SplitSeq(string(data), "\n") {
		if v, ok := strings.CutPrefix(line, "VmHWM:"); ok {
			kb, _ := strconv.ParseFloat(strings.TrimSuffix(strings.TrimSpace(v), " kB"), 64)
			return kb / 1024
		}
	}
	b.Fatal("no VmHWM in /proc/self/status")
	return 0
}
