package app

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"os"
	"runtime/pprof"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/mailgate/mailgate/adapters/jwtauth"
	"github.com/mailgate/mailgate/adapters/mailbuild"
	"github.com/mailgate/mailgate/adapters/smtprelay/smtptest"
	"github.com/mailgate/mailgate/db"
	"github.com/mailgate/mailgate/db/dbtest"
	"github.com/mailgate/mailgate/domain"
	"github.com/mailgate/mailgate/jobs"
)

// The delivery benchmarks drain a backlog of queued messages through
// `serve --role worker` (an App with RoleWorker and the default
// configuration) into a discarding go-smtp sink, and measure in the same run
// the ceiling: a plain SMTP client sending the same prebuilt messages to the
// same sink over as many connections as there are workers. Run them with
// `make bench`; MAILGATE_BENCH_MESSAGES sets the backlog (default 4000).

func benchMessages() int {
	if n, err := strconv.Atoi(os.Getenv("MAILGATE_BENCH_MESSAGES")); err == nil && n > 0 {
		return n
	}
	return 4000
}

// drainSetup is a database with a tenant and a sink, and the API app that queued the backlog.
type drainSetup struct {
	dbURL  string
	sink   *smtptest.Server
	relay  string
	tenant domain.Tenant
	sender domain.Account
	token  string
	api    *App
}

func newDrainSetup(b *testing.B, sink *smtptest.Server, relayAddr string) *drainSetup {
	b.Helper()
	d := &drainSetup{dbURL: dbtest.IsolatedURL(b), sink: sink, relay: relayAddr}
	ctx := context.Background()
	d.api = d.start(b, RoleAPI, nil)
	b.Cleanup(func() { _ = d.api.Shutdown(context.Background()) })
	api := d.api
	var err error
	dom := "bench" + uuid.NewString()[:8] + ".example"
	if d.tenant, err = api.Store().CreateTenant(ctx, "bench", []string{dom}); err != nil {
		b.Fatal(err)
	}
	if d.sender, err = api.Store().CreateAccount(ctx, d.tenant.ID, "sender@"+dom, "Sender"); err != nil {
		b.Fatal(err)
	}
	if os.Getenv("MAILGATE_BENCH_SANDBOX") != "" {
		// Profiling aid: no SMTP at all, so what is left is the database and River.
		if err := api.Store().SetSandbox(ctx, d.tenant.ID, true); err != nil {
			b.Fatal(err)
		}
	}
	auth, err := jwtauth.NewHS256([]byte(testSecret), jwtauth.Options{})
	if err != nil {
		b.Fatal(err)
	}
	if d.token, err = auth.Issue(d.tenant.ID, time.Hour, false); err != nil {
		b.Fatal(err)
	}
	return d
}

func quietLogger() *slog.Logger { return slog.New(slog.NewTextHandler(io.Discard, nil)) }

// config is the production default configuration, pointed at the bench
// database and sink, with configure's changes.
func (d *drainSetup) config(role string, configure func(*Config)) Config {
	cfg, err := LoadConfig(func(name string) string {
		switch name {
		case "MAILGATE_DATABASE_URL":
			if role != RoleWorker {
				return d.dbURL
			}
			// The worker's sessions are named so its backends' CPU can be read.
			url := d.dbURL + "&application_name=" + benchWorkerApp
			if extra := os.Getenv("MAILGATE_BENCH_DB_PARAMS"); extra != "" {
				url += "&" + extra
			}
			return url
		case "MAILGATE_HTTP_ADDR", "MAILGATE_ADMIN_ADDR":
			return "127.0.0.1:0"
		case "MAILGATE_SMTP_URL":
			return "smtp://" + d.relay
		case "MAILGATE_JWT_SECRET":
			return testSecret
		case "MAILGATE_RATE_LIMIT":
			return "0"
		}
		return ""
	})
	if err != nil {
		panic(err)
	}
	cfg.DatabaseRole = db.DefaultRuntimeRole
	if n, err := strconv.Atoi(os.Getenv("MAILGATE_BENCH_WORKERS")); err == nil && n > 0 {
		cfg.Workers = n
	}
	if configure != nil {
		configure(&cfg)
	}
	return cfg
}

// start boots an App in role against the bench database.
func (d *drainSetup) start(b *testing.B, role string, configure func(*Config)) *App {
	b.Helper()
	ctx := context.Background()
	a, err := New(ctx, d.config(role, configure), role, quietLogger())
	if err != nil {
		b.Fatal(err)
	}
	if err := a.Start(ctx); err != nil {
		b.Fatal(err)
	}
	return a
}

// queue puts n messages of about size bytes with three recipients in the
// backlog through the batch endpoint, and returns their ids.
func (d *drainSetup) queue(b *testing.B, tenantToken, sender string, n, size int, subject string) {
	b.Helper()
	body := strings.Repeat("All work and no play makes a fast gateway. ", size/43+1)[:size]
	// Batches stay well under the API's body limit.
	perBatch := max(1, min(domain.MaxBatch, (4<<20)/max(size, 1)))
	for sent := 0; sent < n; {
		k := min(perBatch, n-sent)
		items := make([]map[string]any, k)
		for i := range items {
			items[i] = map[string]any{"sender_email": sender, "send": true, "subject": fmt.Sprint(subject, " ", sent+i), "body": body,
				"to": rcpts("one@sink.example", "two@sink.example"), "cc": rcpts("three@sink.example")}
		}
		req, _ := http.NewRequest("POST", "http://"+d.api.HTTPAddr()+"/api/messages/batch", strings.NewReader(string(mustJSON(map[string]any{"messages": items}))))
		req.Header.Set("Authorization", "Bearer "+tenantToken)
		req.Header.Set("Content-Type", "application/json")
		res, err := http.DefaultClient.Do(req)
		if err != nil {
			b.Fatal(err)
		}
		_, _ = io.Copy(io.Discard, res.Body)
		res.Body.Close()
		if res.StatusCode >= 300 {
			b.Fatalf("batch: %d", res.StatusCode)
		}
		sent += k
	}
}

// drain starts a worker process and returns how long it took to settle
// every queued message.
func (d *drainSetup) drain(b *testing.B, n int, configure func(*Config)) time.Duration {
	return d.drainMeasured(b, n, configure).elapsed
}

// drainResult is a drain's wall time and the CPU it cost: this process
// (worker, sink and the idle API) and the worker's PostgreSQL backends.
// CPU per message is what stays comparable on a shared, noisy machine.
type drainResult struct {
	started           time.Time
	elapsed           time.Duration
	processCPU, dbCPU time.Duration
}

func (d *drainSetup) drainMeasured(b *testing.B, n int, configure func(*Config)) drainResult {
	b.Helper()
	ctx := context.Background()
	owner := dbtest.OwnerPoolFor(b, d.dbURL)
	// The drain alone, without the backlog's accept or the ceiling.
	defer profileCPU(b)()
	// Polled sparsely: the count is work for the database the drain needs.
	res, worker, ok := d.runWorker(b, owner, configure, 10*time.Minute, 50*time.Millisecond,
		func() bool { return anyUnsettled(b, owner, uuid.Nil) == 0 })
	defer func() { _ = worker.Shutdown(context.Background()) }()
	if !ok {
		b.Fatalf("%d of %d messages still unsettled after 10 minutes", anyUnsettled(b, owner, uuid.Nil), n)
	}
	b.Log("mean phase times: " + phaseMeans(worker))
	if os.Getenv("MAILGATE_BENCH_VERBOSE") != "" {
		var p50, p99, fetch50 float64
		_ = owner.QueryRow(ctx, `SELECT percentile_cont(0.5) WITHIN GROUP (ORDER BY extract(epoch FROM m.finished_at - j.attempted_at)),
			percentile_cont(0.99) WITHIN GROUP (ORDER BY extract(epoch FROM m.finished_at - j.attempted_at)),
			percentile_cont(0.5) WITHIN GROUP (ORDER BY extract(epoch FROM j.attempted_at - $1::timestamptz))
			FROM river_job j JOIN messages m ON m.job_id = j.id`, res.started).Scan(&p50, &p99, &fetch50)
		b.Logf("attempt to settled p50 %.1f ms p99 %.1f ms; fetched p50 %.2f s after start", p50*1000, p99*1000, fetch50)
		rows, err := owner.Query(ctx, `SELECT relname, n_tup_upd, n_tup_hot_upd FROM pg_stat_user_tables
			WHERE schemaname = current_schema() AND n_tup_upd > 0 ORDER BY relname`)
		if err == nil {
			for rows.Next() {
				var name string
				var updates, hot int64
				if rows.Scan(&name, &updates, &hot) == nil {
					b.Logf("%s: %d updates, %d HOT", name, updates, hot)
				}
			}
			rows.Close()
		}
	}
	return res
}

// runWorker starts a worker with configure and measures it until finished
// holds, polled every poll, or bound passes (ok false); the worker is
// returned running.
func (d *drainSetup) runWorker(b *testing.B, owner *pgxpool.Pool, configure func(*Config), bound, poll time.Duration, finished func() bool) (res drainResult, worker *App, ok bool) {
	b.Helper()
	cpuBefore := processCPU()
	res.started = time.Now()
	worker = d.start(b, RoleWorker, configure)
	backendsBefore := backendCPU(b, owner)
	deadline := res.started.Add(bound)
	ok = true
	for !finished() {
		if time.Now().After(deadline) {
			ok = false
			break
		}
		time.Sleep(poll)
	}
	res.elapsed, res.processCPU = time.Since(res.started), processCPU()-cpuBefore
	for pid, cpu := range backendCPU(b, owner) {
		res.dbCPU += cpu - backendsBefore[pid]
	}
	return res, worker, ok
}

// anyUnsettled is 1 while a message (of tenant, unless it is uuid.Nil) is
// still queued or sending and 0 once none is; it stops at the first, since
// a drain polls it and the count is work the drain's database needs.
func anyUnsettled(b *testing.B, owner *pgxpool.Pool, tenant uuid.UUID) int {
	b.Helper()
	where, args := "", []any{}
	if tenant != uuid.Nil {
		where, args = "subscription_id = $1 AND ", []any{tenant}
	}
	var left int
	if err := owner.QueryRow(context.Background(), `SELECT count(*) FROM (SELECT 1 FROM messages WHERE `+where+
		`state IN ('queued', 'sending') LIMIT 1) AS unsettled`, args...).Scan(&left); err != nil {
		b.Fatal(err)
	}
	return left
}

// prebuilt renders one message like the backlog's, n times, for the ceiling client.
func prebuilt(b *testing.B, n, size int, from string) []smtptest.Message {
	b.Helper()
	body := strings.Repeat("All work and no play makes a fast gateway. ", size/43+1)[:size]
	msg := &domain.Message{ID: uuid.New(), SenderEmail: from, Subject: "ceiling", Body: body, MessageID: "<" + uuid.NewString() + "@bench.example>",
		Recipients: []domain.Recipient{{Kind: domain.KindTo, Email: "one@sink.example"}, {Kind: domain.KindTo, Email: "two@sink.example", Position: 1}, {Kind: domain.KindCc, Email: "three@sink.example", Position: 2}}}
	data, err := mailbuild.Build(msg, mailbuild.Options{Date: time.Now()})
	if err != nil {
		b.Fatal(err)
	}
	out := make([]smtptest.Message, n)
	for i := range out {
		out[i] = smtptest.Message{From: from, To: []string{"one@sink.example", "two@sink.example", "three@sink.example"}, Data: data}
	}
	return out
}

// BenchmarkDeliveryDrain: the delivery rate of the default configuration
// against the plain client's ceiling, at 2 KB and 100 KB, with and without
// 20 ms added to every relay reply.
func BenchmarkDeliveryDrain(b *testing.B) {
	n := benchMessages()
	for _, tc := range []struct {
		name  string
		size  int
		delay time.Duration
	}{
		{"2KB", 2 << 10, 0},
		{"100KB", 100 << 10, 0},
		{"2KB_20ms", 2 << 10, 20 * time.Millisecond},
	} {
		b.Run(tc.name, func(b *testing.B) {
			for range b.N {
				sink := smtptest.Start(b, smtptest.Options{Discard: true})
				relay := sink.Addr()
				if tc.delay > 0 {
					relay = smtptest.StartProxy(b, sink.Addr(), smtptest.ProxyOptions{Delay: tc.delay}).Addr()
				}
				d := newDrainSetup(b, sink, relay)
				// The ceiling gets as many connections as the gateway may open.
				workerCfg := d.config(RoleWorker, nil)
				workers := min(workerCfg.Workers, workerCfg.SMTPMaxConns)
				msgs := prebuilt(b, n, tc.size, d.sender.Email)
				// The ceiling runs before and after the gateway; their mean is the reference.
				before, err := smtptest.SendCeiling(context.Background(), relay, msgs, smtptest.CeilingOptions{Conns: workers, Pipelining: tc.delay == 0})
				if err != nil {
					b.Fatal(err)
				}
				// The plain lock-step client (go-smtp's, one command, one reply),
				// the ceiling with latency and a second reference without.
				lockStep, err := smtptest.SendCeiling(context.Background(), relay, msgs, smtptest.CeilingOptions{Conns: workers})
				if err != nil {
					b.Fatal(err)
				}
				d.queue(b, d.token, d.sender.Email, n, tc.size, "drain")
				res := d.drainMeasured(b, n, nil)
				ceilingCPU := processCPU()
				after, err := smtptest.SendCeiling(context.Background(), relay, msgs, smtptest.CeilingOptions{Conns: workers, Pipelining: tc.delay == 0})
				if err != nil {
					b.Fatal(err)
				}
				ceilingCPU = processCPU() - ceilingCPU
				rate := float64(n) / res.elapsed.Seconds()
				perMessage := func(cpu time.Duration) float64 { return float64(cpu.Microseconds()) / float64(n) }
				// CPU a message: what a noisy machine doesn't blur.
				b.ReportMetric(perMessage(res.processCPU), "gateway_cpu_us/msg")
				b.ReportMetric(perMessage(res.dbCPU), "db_cpu_us/msg")
				b.ReportMetric(perMessage(ceilingCPU), "ceiling_cpu_us/msg")
				ceiling := (before.Rate() + after.Rate()) / 2
				if tc.delay > 0 {
					ceiling = lockStep.Rate()
				}
				b.ReportMetric(rate, "msg/s")
				b.ReportMetric(ceiling, "ceiling_msg/s")
				b.ReportMetric(rate/ceiling, "ratio")
				b.ReportMetric(lockStep.Rate(), "lockstep_msg/s")
				b.ReportMetric(rate/lockStep.Rate(), "ratio_lockstep")
			}
		})
	}
}

// BenchmarkDeliveryScaling: the delivery rate by worker count and message
// size (the plot in docs/benchmarks.md), each beside its ceiling.
func BenchmarkDeliveryScaling(b *testing.B) {
	n := benchMessages() / 2
	for _, size := range []int{2 << 10, 20 << 10, 100 << 10} {
		for _, workers := range []int{10, 50, 100, 200, 400} {
			b.Run(fmt.Sprintf("size=%dKB/workers=%d", size>>10, workers), func(b *testing.B) {
				for range b.N {
					sink := smtptest.Start(b, smtptest.Options{Discard: true})
					d := newDrainSetup(b, sink, sink.Addr())
					conns := min(workers, d.config(RoleWorker, nil).SMTPMaxConns)
					ceiling, err := smtptest.SendCeiling(context.Background(), sink.Addr(), prebuilt(b, n, size, d.sender.Email), smtptest.CeilingOptions{Conns: conns, Pipelining: true})
					if err != nil {
						b.Fatal(err)
					}
					d.queue(b, d.token, d.sender.Email, n, size, "scaling")
					elapsed := d.drain(b, n, func(c *Config) { c.Workers = workers })
					rate := float64(n) / elapsed.Seconds()
					b.ReportMetric(rate, "msg/s")
					b.ReportMetric(ceiling.Rate(), "ceiling_msg/s")
					b.ReportMetric(rate/ceiling.Rate(), "ratio")
				}
			})
		}
	}
}

// BenchmarkDeliveryFairness: tenant A queues a flood while tenant B sends
// one message every 250 ms; B's accept-to-relay latency (p50, p99) and A's
// rate against A alone, in the same run.
func BenchmarkDeliveryFairness(b *testing.B) {
	flood := 5 * benchMessages()
	for range b.N {
		// A alone.
		sinkAlone := smtptest.Start(b, smtptest.Options{Discard: true})
		alone := newDrainSetup(b, sinkAlone, sinkAlone.Addr())
		alone.queue(b, alone.token, alone.sender.Email, flood, 2<<10, "alone")
		aloneRate := float64(flood) / alone.drain(b, flood, nil).Seconds()

		// A's flood with B beside it.
		var (
			mu       sync.Mutex
			received = map[string]time.Time{}
		)
		sink := smtptest.Start(b, smtptest.Options{Discard: true, OnDeliver: func(messageID, _ string) {
			mu.Lock()
			if _, ok := received[messageID]; !ok {
				received[messageID] = time.Now()
			}
			mu.Unlock()
		}})
		d := newDrainSetup(b, sink, sink.Addr())
		d.queue(b, d.token, d.sender.Email, flood, 2<<10, "flood")
		ctx := context.Background()
		other, err := d.api.Store().CreateTenant(ctx, "quiet", []string{"quiet-bench.example"})
		if err != nil {
			b.Fatal(err)
		}
		auth, _ := jwtauth.NewHS256([]byte(testSecret), jwtauth.Options{})
		quietToken, _ := auth.Issue(other.ID, time.Hour, false)
		sent := map[string]time.Time{}
		owner := dbtest.OwnerPoolFor(b, d.dbURL)
		// A's flood is timed like drain() times A alone, but only A's mail
		// ends it, and the worker runs on until B's is delivered too: a B
		// message accepted as a drain of every tenant ended would never be.
		floodLeft := func() int { return anyUnsettled(b, owner, d.tenant.ID) }
		start := time.Now()
		worker := d.start(b, RoleWorker, nil)
		stopWorker := sync.OnceFunc(func() { _ = worker.Shutdown(context.Background()) })
		defer stopWorker()
		floodDeadline, nextB := start.Add(10*time.Minute), start.Add(250*time.Millisecond)
		for floodLeft() > 0 {
			if time.Now().After(floodDeadline) {
				b.Fatal("tenant A's flood did not drain in 10 minutes")
			}
			if time.Now().After(nextB) {
				id, at := d.sendOne(b, quietToken, "b@quiet-bench.example")
				sent[id] = at
				nextB = nextB.Add(250 * time.Millisecond)
			}
		}
		elapsed := time.Since(start)
		// Wait for B's last messages too.
		deadline := time.Now().Add(30 * time.Second)
		for {
			mu.Lock()
			all := true
			for id := range sent {
				if _, ok := received[id]; !ok {
					all = false
				}
			}
			mu.Unlock()
			if all || time.Now().After(deadline) {
				break
			}
			time.Sleep(20 * time.Millisecond)
		}
		stopWorker()
		var latencies []time.Duration
		mu.Lock()
		for id, at := range sent {
			if got, ok := received[id]; ok {
				latencies = append(latencies, got.Sub(at))
			} else {
				b.Errorf("tenant B's message %s was not delivered", id)
			}
		}
		mu.Unlock()
		slices.Sort(latencies)
		if len(latencies) == 0 {
			b.Fatal("tenant B sent nothing while the flood drained")
		}
		b.ReportMetric(float64(len(latencies)), "b_messages")
		b.ReportMetric(latencies[len(latencies)/2].Seconds()*1000, "b_p50_ms")
		b.ReportMetric(latencies[min(len(latencies)-1, len(latencies)*99/100)].Seconds()*1000, "b_p99_ms")
		floodRate := float64(flood) / elapsed.Seconds()
		b.ReportMetric(floodRate, "a_msg/s")
		b.ReportMetric(floodRate/aloneRate, "a_vs_alone")
	}
}

// sendOne accepts one message over HTTP and returns its Message-ID and when it was accepted.
func (d *drainSetup) sendOne(b *testing.B, token, sender string) (string, time.Time) {
	b.Helper()
	body := mustJSON(map[string]any{"sender_email": sender, "send": true, "subject": "one", "body": "hello", "to": rcpts("one@sink.example")})
	req, _ := http.NewRequest("POST", "http://"+d.api.HTTPAddr()+"/api/messages/sendmessage", strings.NewReader(string(body)))
	req.Header.Set("Authorization", "Bearer "+token)
	req.Header.Set("Content-Type", "application/json")
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		b.Fatal(err)
	}
	defer res.Body.Close()
	at := time.Now()
	var v struct {
		MessageID string `json:"message_id"`
	}
	if res.StatusCode != http.StatusCreated {
		b.Fatalf("send: %d", res.StatusCode)
	}
	if err := json.NewDecoder(res.Body).Decode(&v); err != nil {
		b.Fatal(err)
	}
	return v.MessageID, at
}

// BenchmarkAcceptToStart: at low load (one message at a time, 20 ms
// apart), the time from the accept's commit to a worker starting the job,
// both read from the database's clock.
func BenchmarkAcceptToStart(b *testing.B) {
	const samples = 200
	for range b.N {
		sink := smtptest.Start(b, smtptest.Options{Discard: true})
		d := newDrainSetup(b, sink, sink.Addr())
		ctx := context.Background()
		worker := d.start(b, RoleWorker, nil)
		for range samples {
			d.sendOne(b, d.token, d.sender.Email)
			time.Sleep(20 * time.Millisecond) // pacing the load, not synchronisation
		}
		owner := dbtest.OwnerPoolFor(b, d.dbURL)
		deadline := time.Now().Add(time.Minute)
		for {
			var left int
			_ = owner.QueryRow(ctx, `SELECT count(*) FROM (SELECT 1 FROM messages WHERE state IN ('queued', 'sending') LIMIT 1) AS unsettled`).Scan(&left)
			if left == 0 || time.Now().After(deadline) {
				break
			}
			time.Sleep(20 * time.Millisecond)
		}
		_ = worker.Shutdown(ctx)
		var p50, p99 float64
		// The job row is inserted in the accept's transaction, so its xmin
		// commit time would be exact; created_at is that transaction's start,
		// a few hundred microseconds earlier, so this slightly overstates.
		if err := owner.QueryRow(ctx, `SELECT percentile_cont(0.5) WITHIN GROUP (ORDER BY extract(epoch FROM attempted_at - created_at)),
			percentile_cont(0.99) WITHIN GROUP (ORDER BY extract(epoch FROM attempted_at - created_at))
			FROM river_job WHERE kind = 'deliver_message'`).Scan(&p50, &p99); err != nil {
			b.Fatal(err)
		}
		b.ReportMetric(p50*1000, "start_p50_ms")
		b.ReportMetric(p99*1000, "start_p99_ms")
	}
}

// backlogSize is the waiting (and, as many again, completed) backlog of
// BenchmarkDeliveryBacklog; MAILGATE_BENCH_BACKLOG overrides the million.
func backlogSize() int {
	if n, err := strconv.Atoi(os.Getenv("MAILGATE_BENCH_BACKLOG")); err == nil && n > 0 {
		return n
	}
	return 1_000_000
}

// BenchmarkDeliveryBacklog: the delivery rate with a million delivery jobs
// waiting and a million completed job rows retained, against the rate with
// the same tenant's backlog alone, in the same run. The fixture's rows are
// written with SQL for speed (messages, recipients, the completed job rows)
// and the waiting jobs through River's client, as the API inserts them.
func BenchmarkDeliveryBacklog(b *testing.B) {
	// Four times the other drains: the target is a delivery rate, and a
	// 4,000-message drain now lasts little more than a second, of which the
	// worker's start (its first reconciler pass sweeps 10,000 of the
	// backlog's rows) took a sixth: 0.82-0.83 of the near-empty rate at
	// 4,000 messages, 1.01 at 16,000, in runs of the same commit.
	n := 4 * benchMessages()
	backlog := backlogSize()
	for range b.N {
		// The near-empty reference runs before and after the backlog (whose
		// fill takes minutes on a machine whose speed drifts), and their
		// mean is the reference; CPU a message is reported for both, since
		// it is what a noisy machine doesn't blur.
		nearEmpty := func() drainResult {
			sink := smtptest.Start(b, smtptest.Options{Discard: true})
			empty := newDrainSetup(b, sink, sink.Addr())
			empty.queue(b, empty.token, empty.sender.Email, n, 2<<10, "near-empty")
			return empty.drainMeasured(b, n, nil)
		}
		before := nearEmpty()

		sink := smtptest.Start(b, smtptest.Options{Discard: true})
		d := newDrainSetup(b, sink, sink.Addr())
		d.fillBacklog(b, backlog)
		owner := dbtest.OwnerPoolFor(b, d.dbURL)
		res, worker, _ := d.runWorker(b, owner, nil, 5*time.Minute, 20*time.Millisecond,
			func() bool { return sink.Delivered().Messages >= n })
		_ = worker.Shutdown(context.Background())
		got := sink.Delivered().Messages
		rate := float64(got) / res.elapsed.Seconds()

		after := nearEmpty()
		emptyRate := (float64(n)/before.elapsed.Seconds() + float64(n)/after.elapsed.Seconds()) / 2
		perMessage := func(r drainResult, msgs int) float64 {
			return float64((r.processCPU + r.dbCPU).Microseconds()) / float64(msgs)
		}
		emptyCPU := (perMessage(before, n) + perMessage(after, n)) / 2
		b.ReportMetric(rate, "msg/s")
		b.ReportMetric(emptyRate, "near_empty_msg/s")
		b.ReportMetric(rate/emptyRate, "ratio")
		b.ReportMetric(perMessage(res, got), "cpu_us/msg")
		b.ReportMetric(emptyCPU, "near_empty_cpu_us/msg")
		b.Logf("near-empty before %.0f msg/s, after %.0f msg/s", float64(n)/before.elapsed.Seconds(), float64(n)/after.elapsed.Seconds())
	}
}

// fillBacklog writes backlog queued messages with their jobs, and as many
// completed job rows, in chunks.
func (d *drainSetup) fillBacklog(b *testing.B, backlog int) {
	b.Helper()
	ctx := context.Background()
	owner := dbtest.OwnerPoolFor(b, d.dbURL)
	insertClient, err := jobs.NewInsertClient(owner, jobs.Config{Logger: quietLogger()})
	if err != nil {
		b.Fatal(err)
	}
	enqueuer := jobs.NewEnqueuer(insertClient, jobs.NewFairClock())
	body := strings.Repeat("All work and no play makes a fast gateway. ", 2<<10/43+1)[:2<<10]
	const chunk = 10_000
	for done := 0; done < backlog; done += chunk {
		k := min(chunk, backlog-done)
		tx, err := owner.Begin(ctx)
		if err != nil {
			b.Fatal(err)
		}
		// Ids as the API makes them (domain.NewMessageID), so the backlog's
		// indexes have the order a real one has.
		newIDs := make([]uuid.UUID, k)
		for i := range newIDs {
			newIDs[i] = domain.NewMessageID()
		}
		rows, err := tx.Query(ctx, `
			INSERT INTO messages (subscription_id, id, sender_account_id, sender_email, sender_display_name, subject, body, importance,
				message_id, conversation_id, state, created_date, updated_at, queued_at)
			SELECT $1, g.id, $2, $3, 'Sender', 'backlog ' || g.n, $4, 1, '<' || g.id || '@bench.example>',
				g.id, 'queued', now(), now(), now()
			FROM unnest($5::uuid[]) WITH ORDINALITY AS g(id, n) RETURNING id`, d.tenant.ID, d.sender.ID, d.sender.Email, body, newIDs)
		if err != nil {
			b.Fatal(err)
		}
		ids, err := pgx.CollectRows(rows, pgx.RowTo[uuid.UUID])
		if err != nil {
			b.Fatal(err)
		}
		if _, err := tx.Exec(ctx, `
			INSERT INTO message_recipients (subscription_id, message_id, position, kind, display_name, email, status, updated_at)
			SELECT $1, m, p, CASE WHEN p < 2 THEN 'to' ELSE 'cc' END, '', (ARRAY['one@sink.example','two@sink.example','three@sink.example'])[p + 1], 'pending', now()
			FROM unnest($2::uuid[]) AS m, generate_series(0, 2) AS p`, d.tenant.ID, ids); err != nil {
			b.Fatal(err)
		}
		deliveries := make([]domain.ScheduledDelivery, len(ids))
		for i, id := range ids {
			deliveries[i] = domain.ScheduledDelivery{MessageID: id}
		}
		jobIDs, err := enqueuer.EnqueueDeliveriesTx(ctx, tx, d.tenant.ID, deliveries)
		if err != nil {
			b.Fatal(err)
		}
		if _, err := tx.Exec(ctx, `UPDATE messages m SET job_id = j.job FROM unnest($1::uuid[], $2::bigint[]) AS j(id, job) WHERE m.id = j.id`, ids, jobIDs); err != nil {
			b.Fatal(err)
		}
		// Finished jobs River keeps until its retention prunes them.
		if _, err := tx.Exec(ctx, `
			INSERT INTO river_job (state, attempt, max_attempts, attempted_at, finalized_at, scheduled_at, priority, args, kind, queue, metadata)
			SELECT 'completed', 1, 25, now(), now(), now(), 1, jsonb_build_object('subscription_id', $1::text, 'message_id', gen_random_uuid()::text),
				'deliver_message', 'delivery', '{}'
			FROM generate_series(1, $2)`, d.tenant.ID, k); err != nil {
			b.Fatal(err)
		}
		if err := tx.Commit(ctx); err != nil {
			b.Fatal(err)
		}
	}
	if _, err := owner.Exec(ctx, `ANALYZE`); err != nil {
		b.Fatal(err)
	}
}

// phaseMeans reads mailgate_delivery_phase_seconds off a worker's registry.
func phaseMeans(a *App) string {
	families, err := a.metrics.Registry.Gather()
	if err != nil {
		return err.Error()
	}
	var out []string
	for _, f := range families {
		if f.GetName() != "mailgate_delivery_phase_seconds" {
			continue
		}
		for _, m := range f.GetMetric() {
			h := m.GetHistogram()
			if h.GetSampleCount() == 0 {
				continue
			}
			out = append(out, fmt.Sprintf("%s %.2f ms", m.GetLabel()[0].GetValue(), 1000*h.GetSampleSum()/float64(h.GetSampleCount())))
		}
	}
	return strings.Join(out, ", ")
}

// benchWorkerApp names the bench worker's PostgreSQL sessions.
const benchWorkerApp = "mailgate-bench-worker"

// processCPU is the user and system CPU this process has used.
func processCPU() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// backendCPU reads, from /proc, the CPU used so far by each PostgreSQL
// backend serving the bench worker (the server runs on this machine).
func backendCPU(b *testing.B, owner *pgxpool.Pool) map[int]time.Duration {
	b.Helper()
	rows, err := owner.Query(context.Background(), `SELECT pid FROM pg_stat_activity WHERE application_name = $1`, benchWorkerApp)
	if err != nil {
		b.Fatal(err)
	}
	pids, err := pgx.CollectRows(rows, pgx.RowTo[int])
	if err != nil {
		b.Fatal(err)
	}
	out := map[int]time.Duration{}
	for _, pid := range pids {
		stat, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
		if err != nil {
			continue // the backend has exited
		}
		// Fields after the command name (which may hold spaces): utime and
		// stime are the 12th and 13th, in clock ticks of 10 ms.
		fields := strings.Fields(string(stat[strings.LastIndexByte(string(stat), ')')+1:]))
		utime, _ := strconv.Atoi(fields[11])
		stime, _ := strconv.Atoi(fields[12])
		out[pid] = time.Duration(utime+stime) * 10 * time.Millisecond
	}
	return out
}

// profileCPU starts a CPU profile into MAILGATE_BENCH_CPUPROFILE when it is
// set (a profiling aid: each measured phase rewrites the file, so the last
// one run is what it holds) and returns the function that ends it.
func profileCPU(b *testing.B) (stop func()) {
	path := os.Getenv("MAILGATE_BENCH_CPUPROFILE")
	if path == "" {
		return func() {}
	}
	f, err := os.Create(path)
	if err != nil {
		b.Fatal(err)
	}
	if err := pprof.StartCPUProfile(f); err != nil {
		b.Fatal(err)
	}
	return func() { pprof.StopCPUProfile(); f.Close() }
}
