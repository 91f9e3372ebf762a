package app

import (
	"cmp"
	"context"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/riverqueue/river"
	"github.com/riverqueue/river/riverdriver/riverpgxv5"

	"github.com/mailgate/mailgate/db"
	"github.com/mailgate/mailgate/db/dbtest"
	"github.com/mailgate/mailgate/jobs"
)

// noopArgs is a job that does nothing: what River alone costs a job.
type noopArgs struct{}

func (noopArgs) Kind() string { return "bench_noop" }

type noopWorker struct {
	river.WorkerDefaults[noopArgs]
}

func (noopWorker) Work(context.Context, *river.Job[noopArgs]) error { return nil }

// BenchmarkQueueCeiling drains as many no-op River jobs as the delivery
// benchmarks deliver messages, with the worker's queue settings (its default workers,
// the same fetch cooldown and poll interval, the same pool sizing), and
// reports the rate and CPU a job: the floor under every delivery, since each
// delivery is one River job fetched and completed. A delivery rate above
// this is impossible whatever the SMTP side does.
func BenchmarkQueueCeiling(b *testing.B) {
	n := benchMessages()
	for range b.N {
		ctx := context.Background()
		url := dbtest.IsolatedURL(b)
		owner := dbtest.OwnerPoolFor(b, url)
		cfg := (&drainSetup{dbURL: url}).config(RoleWorker, nil)
		// The worker's own fetch settings: a zero here would be River's
		// defaults (100 ms cooldown), which cap a queue at workers/0.1 s.
		cooldown, poll := cmp.Or(cfg.FetchCooldown, jobs.DefaultFetchCooldown), cmp.Or(cfg.FetchPollEvery, jobs.DefaultFetchPollInterval)
		poolCfg, err := pgxpool.ParseConfig(url + "&application_name=" + benchWorkerApp)
		if err != nil {
			b.Fatal(err)
		}
		db.RegisterTypes(poolCfg)
		poolCfg.MaxConns = int32(min(16+cfg.Workers/10, 48))
		pool, err := pgxpool.NewWithConfig(ctx, poolCfg)
		if err != nil {
			b.Fatal(err)
		}
		defer pool.Close()
		workers := river.NewWorkers()
		river.AddWorker(workers, &noopWorker{})
		client, err := river.NewClient(riverpgxv5.New(pool), &river.Config{
			Logger:            quietLogger(),
			Workers:           workers,
			Queues:            map[string]river.QueueConfig{river.QueueDefault: {MaxWorkers: cfg.Workers}},
			FetchCooldown:     cooldown,
			FetchPollInterval: poll,
		})
		if err != nil {
			b.Fatal(err)
		}
		params := make([]river.InsertManyParams, n)
		for i := range params {
			params[i] = river.InsertManyParams{Args: noopArgs{}}
		}
		for start := 0; start < n; start += 1000 {
			if _, err := client.InsertMany(ctx, params[start:min(start+1000, n)]); err != nil {
				b.Fatal(err)
			}
		}
		// Room for every completion: River drops the events a full channel
		// can't take (its default holds 1,000), and a dropped one would
		// leave this loop waiting for a job that is long done.
		completed, cancel := client.SubscribeConfig(&river.SubscribeConfig{ChanSize: n, Kinds: []river.EventKind{river.EventKindJobCompleted}})
		cpuBefore := processCPU()
		start := time.Now()
		if err := client.Start(ctx); err != nil {
			b.Fatal(err)
		}
		backendsBefore := backendCPU(b, owner)
		deadline := time.After(5 * time.Minute)
		for done := 0; done < n; done++ {
			select {
			case <-completed:
			case <-deadline:
				b.Fatalf("%d of %d no-op jobs completed in 5 minutes", done, n)
			}
		}
		elapsed := time.Since(start)
		processUsed := processCPU() - cpuBefore
		var dbUsed time.Duration
		for pid, cpu := range backendCPU(b, owner) {
			dbUsed += cpu - backendsBefore[pid]
		}
		cancel()
		stopCtx, stop := context.WithTimeout(ctx, 30*time.Second)
		_ = client.Stop(stopCtx)
		stop()
		b.ReportMetric(float64(n)/elapsed.Seconds(), "jobs/s")
		b.ReportMetric(float64(processUsed.Microseconds())/float64(n), "process_cpu_us/job")
		b.ReportMetric(float64(dbUsed.Microseconds())/float64(n), "db_cpu_us/job")
	}
}
