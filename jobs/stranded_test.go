package jobs

import (
	"context"
	"io"
	"log/slog"
	"testing"
	"time"

	"github.com/riverqueue/river"
	"github.com/riverqueue/river/riverdriver"
	"github.com/riverqueue/river/riverdriver/riverpgxv5"
	"github.com/riverqueue/river/rivertype"

	"github.com/mailgate/mailgate/db/dbtest"
)

type strandedProbeArgs struct{}

func (strandedProbeArgs) Kind() string { return "stranded_probe" }

// TestStrandedJobsAreRescued: of the jobs this client's fetch marked
// running, the one it never started is retried at once; one it is working,
// one it just finished, and one another client fetched are left alone, and
// nothing is touched before strandedAfter.
func TestStrandedJobsAreRescued(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	pool := dbtest.OwnerPoolFor(t, dbtest.IsolatedURL(t))
	driver := riverpgxv5.New(pool)
	tracker := newWorkTracker()
	client, err := river.NewClient(driver, &river.Config{Middleware: []rivertype.Middleware{tracker}})
	if err != nil {
		t.Fatal(err)
	}
	rescuer := &StrandedRescuer{client: client, exec: driver.GetExecutor(), tracker: tracker, logger: slog.New(slog.NewTextHandler(io.Discard, nil))}

	insert := func() int64 {
		t.Helper()
		res, err := client.Insert(ctx, strandedProbeArgs{}, nil)
		if err != nil {
			t.Fatal(err)
		}
		return res.Job.ID
	}
	stranded, working, finished, other := insert(), insert(), insert(), insert()
	fetched := time.Now()
	// River's own fetch, whose reply this client "lost".
	fetch := func(clientID string, n int) []*rivertype.JobRow {
		t.Helper()
		res, err := driver.GetExecutor().JobGetAvailable(ctx, &riverdriver.JobGetAvailableParams{
			ClientID: clientID, MaxAttemptedBy: 100, MaxToLock: n, Now: &fetched, Queue: river.QueueDefault})
		if err != nil || len(res.Jobs) != n {
			t.Fatalf("fetch: %v, %v", res, err)
		}
		return res.Jobs
	}
	fetch(client.ID(), 3) // the oldest three
	fetch("another-worker", 1)

	tracker.running[working] = true
	tracker.finished[finished] = fetched

	if n, err := rescuer.rescue(ctx, fetched.Add(strandedAfter/2)); err != nil || n != 0 {
		t.Fatalf("rescued %d (%v) before strandedAfter", n, err)
	}
	n, err := rescuer.rescue(ctx, fetched.Add(strandedAfter+time.Second))
	if err != nil || n != 1 {
		t.Fatalf("rescued %d jobs (%v), want the one stranded", n, err)
	}
	want := map[int64]rivertype.JobState{stranded: rivertype.JobStateRetryable, working: rivertype.JobStateRunning,
		finished: rivertype.JobStateRunning, other: rivertype.JobStateRunning}
	for id, state := range want {
		job, err := client.JobGet(ctx, id)
		if err != nil {
			t.Fatal(err)
		}
		if job.State != state {
			t.Errorf("job %d is %s, want %s", id, job.State, state)
		}
		if id == stranded && (len(job.Errors) != 1 || job.ScheduledAt.After(time.Now().Add(strandedAfter+2*time.Second))) {
			t.Errorf("rescued job: errors %v, scheduled %s", job.Errors, job.ScheduledAt)
		}
	}
	// A finished job stops counting as this process's once finishedKeep has
	// passed, and a sweep forgets it then even when nothing is stranded.
	later := fetched.Add(finishedKeep + time.Second)
	if tracker.owns(finished, later) {
		t.Error("a job finished long ago still counts as this process's")
	}
	if _, err := rescuer.rescue(ctx, later); err != nil {
		t.Fatal(err)
	}
	if n := len(tracker.finished); n != 0 {
		t.Errorf("the tracker still holds %d finished jobs after finishedKeep", n)
	}
}
