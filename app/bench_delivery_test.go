package app

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"os"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/mailgate/mailgate/adapters/jwtauth"
	"github.com/mailgate/mailgate/adapters/mailbuild"
	"github.com/mailgate/mailgate/adapters/smtprelay/smtptest"
	"github.com/mailgate/mailgate/db"
	"github.com/mailgate/mailgate/db/dbtest"
	"github.com/mailgate/mailgate/domain"
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
	api, err := New(ctx, d.config(RoleAPI, nil), RoleAPI, quietLogger())
	if err != nil {
		b.Fatal(err)
	}
	if err := api.Start(ctx); err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { _ = api.Shutdown(context.Background()) })
	d.api = api
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
			if extra := os.Getenv("MAILGATE_BENCH_DB_PARAMS"); extra != "" && role == RoleWorker {
				return d.dbURL + "&" + extra
			}
			return d.dbURL
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

// queue puts n messages of about size bytes with three recipients in the
// backlog through the batch endpoint, and returns their ids.
func (d *drainSetup) queue(b *testing.B, tenantToken, sender string, n, size int, subject string) {
	b.Helper()
	body := strings.Repeat("All work and no play makes a fast gateway. ", size/43+1)[:size]
	for sent := 0; sent < n; {
		k := min(domain.MaxBatch, n-sent)
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
	b.Helper()
	ctx := context.Background()
	worker, err := New(ctx, d.config(RoleWorker, configure), RoleWorker, quietLogger())
	if err != nil {
		b.Fatal(err)
	}
	owner := dbtest.OwnerPoolFor(b, d.dbURL)
	start := time.Now()
	if err := worker.Start(ctx); err != nil {
		b.Fatal(err)
	}
	defer func() { _ = worker.Shutdown(context.Background()) }()
	deadline := start.Add(10 * time.Minute)
	for {
		var left int
		if err := owner.QueryRow(ctx, `SELECT count(*) FROM messages WHERE state IN ('queued', 'sending')`).Scan(&left); err != nil {
			b.Fatal(err)
		}
		if left == 0 {
			elapsed := time.Since(start)
			if os.Getenv("MAILGATE_BENCH_VERBOSE") != "" {
				var p50, p99, fetch50 float64
				_ = owner.QueryRow(ctx, `SELECT percentile_cont(0.5) WITHIN GROUP (ORDER BY extract(epoch FROM m.finished_at - j.attempted_at)),
					percentile_cont(0.99) WITHIN GROUP (ORDER BY extract(epoch FROM m.finished_at - j.attempted_at)),
					percentile_cont(0.5) WITHIN GROUP (ORDER BY extract(epoch FROM j.attempted_at - $1::timestamptz))
					FROM river_job j JOIN messages m ON m.job_id = j.id`, start).Scan(&p50, &p99, &fetch50)
				b.Logf("attempt to settled p50 %.1f ms p99 %.1f ms; fetched p50 %.2f s after start", p50*1000, p99*1000, fetch50)
			}
			return elapsed
		}
		if time.Now().After(deadline) {
			b.Fatalf("%d of %d messages still unsettled after 10 minutes", left, n)
		}
		// Polled sparsely: the count is work for the database the drain needs.
		time.Sleep(50 * time.Millisecond)
	}
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
				workers := d.config(RoleWorker, nil).Workers
				msgs := prebuilt(b, n, tc.size, d.sender.Email)
				// The ceiling runs before and after the gateway; their mean is the reference.
				before, err := smtptest.SendCeiling(context.Background(), relay, msgs, smtptest.CeilingOptions{Conns: workers, Pipelining: tc.delay == 0})
				if err != nil {
					b.Fatal(err)
				}
				lockStep := before
				if tc.delay > 0 {
					// With latency the target is the plain lock-step client.
					lockStep, err = smtptest.SendCeiling(context.Background(), relay, msgs, smtptest.CeilingOptions{Conns: workers})
					if err != nil {
						b.Fatal(err)
					}
				}
				d.queue(b, d.token, d.sender.Email, n, tc.size, "drain")
				elapsed := d.drain(b, n, nil)
				after, err := smtptest.SendCeiling(context.Background(), relay, msgs, smtptest.CeilingOptions{Conns: workers, Pipelining: tc.delay == 0})
				if err != nil {
					b.Fatal(err)
				}
				rate := float64(n) / elapsed.Seconds()
				ceiling := (before.Rate() + after.Rate()) / 2
				if tc.delay > 0 {
					ceiling = lockStep.Rate()
				}
				b.ReportMetric(rate, "msg/s")
				b.ReportMetric(ceiling, "ceiling_msg/s")
				b.ReportMetric(rate/ceiling, "ratio")
			}
		})
	}
}
