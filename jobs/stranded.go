package jobs

import (
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/riverqueue/river"
	"github.com/riverqueue/river/riverdriver"
	"github.com/riverqueue/river/rivertype"
)

// Stranded jobs. River's fetch marks jobs running in the database and
// returns them; when that reply is lost (the connection froze or dropped
// while the fetch committed, as in a database partition), the jobs stay
// running, named as this client's, with no worker on them, until River's
// rescuer takes them back after RescueStuckJobsAfter (the delivery job
// timeout plus 30 s: minutes in production). This process knows which jobs
// it is working, so it can tell those apart well before then: every
// strandedCheckEvery it looks for running jobs whose last attempt is this
// client's, started more than strandedAfter ago, that it neither runs nor
// finished lately, and rescues them the way River's rescuer does (River's
// own rescue statement, guarded on the job still running that attempt), so
// they are retried at once. A job wrongly taken for stranded is retried
// while its outcome is already written, which the delivery worker finds
// settled (or journalled, and then flags), so the rule errs safely.

// How soon a job this process fetched but never started is rescued, and how
// long a finished job counts as this process's own while River's completer
// may still be writing its state.
const (
	strandedAfter      = 30 * time.Second
	strandedCheckEvery = 15 * time.Second
	finishedKeep       = 5 * time.Minute
)

// workTracker is worker middleware that knows which jobs this process is
// working and which it finished lately.
type workTracker struct {
	river.MiddlewareDefaults
	mu       sync.Mutex
	running  map[int64]bool
	finished map[int64]time.Time
}

func newWorkTracker() *workTracker {
	return &workTracker{running: map[int64]bool{}, finished: map[int64]time.Time{}}
}

var _ rivertype.WorkerMiddleware = (*workTracker)(nil)

// Work implements rivertype.WorkerMiddleware.
func (t *workTracker) Work(ctx context.Context, job *rivertype.JobRow, doInner func(context.Context) error) error {
	t.mu.Lock()
	t.running[job.ID] = true
	t.mu.Unlock()
	defer func() {
		t.mu.Lock()
		delete(t.running, job.ID)
		t.finished[job.ID] = time.Now()
		t.mu.Unlock()
	}()
	return doInner(ctx)
}

// owns reports whether this process runs id or finished it within finishedKeep.
func (t *workTracker) owns(id int64, now time.Time) bool {
	t.mu.Lock()
	defer t.mu.Unlock()
	at, done := t.finished[id]
	return t.running[id] || (done && now.Sub(at) <= finishedKeep)
}

// forget drops the jobs finished more than finishedKeep before now. Every
// sweep calls it, whether or not it finds a candidate, so the map holds
// about finishedKeep of finished jobs, never the process's whole history.
func (t *workTracker) forget(now time.Time) {
	t.mu.Lock()
	defer t.mu.Unlock()
	for id, at := range t.finished {
		if now.Sub(at) > finishedKeep {
			delete(t.finished, id)
		}
	}
}

// StrandedRescuer gives back the jobs this process's River client fetched
// but never started.
type StrandedRescuer struct {
	client  *river.Client[pgx.Tx]
	exec    riverdriver.Executor
	tracker *workTracker
	logger  *slog.Logger
}

// Run checks for stranded jobs until ctx ends.
func (r *StrandedRescuer) Run(ctx context.Context) {
	ticker := time.NewTicker(strandedCheckEvery)
	defer ticker.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-ticker.C:
		}
		if n, err := r.rescue(ctx, time.Now()); err != nil {
			r.logger.Warn("look for stranded jobs", "error", err)
		} else if n > 0 {
			r.logger.Warn("rescued jobs this worker fetched but never started (the fetch's reply was lost)", "jobs", n)
		}
	}
}

// rescue gives back the stranded jobs as of now and returns how many.
func (r *StrandedRescuer) rescue(ctx context.Context, now time.Time) (int, error) {
	r.tracker.forget(now)
	horizon := now.Add(-strandedAfter)
	me := r.client.ID()
	params := &riverdriver.JobRescueManyParams{StuckHorizon: horizon}
	list := river.NewJobListParams().States(rivertype.JobStateRunning).First(1000)
	for {
		page, err := r.client.JobList(ctx, list)
		if err != nil {
			return 0, fmt.Errorf("list running jobs: %w", err)
		}
		for _, job := range page.Jobs {
			if len(job.AttemptedBy) == 0 || job.AttemptedBy[len(job.AttemptedBy)-1] != me ||
				job.AttemptedAt == nil || !job.AttemptedAt.Before(horizon) || r.tracker.owns(job.ID, now) {
				continue
			}
			errData, err := json.Marshal(rivertype.AttemptError{At: now, Attempt: job.Attempt,
				Error: "stranded: fetched by this worker, whose fetch reply was lost, and never started"})
			if err != nil {
				return 0, fmt.Errorf("encode rescue error: %w", err)
			}
			// As River's rescuer: retried now, or discarded when out of attempts.
			state, finalized := rivertype.JobStateRetryable, (*time.Time)(nil)
			if job.Attempt >= job.MaxAttempts {
				state, finalized = rivertype.JobStateDiscarded, &now
			}
			params.ID = append(params.ID, job.ID)
			params.Error = append(params.Error, errData)
			params.FinalizedAt = append(params.FinalizedAt, finalized)
			params.ScheduledAt = append(params.ScheduledAt, now)
			params.State = append(params.State, string(state))
		}
		if len(page.Jobs) < 1000 || page.LastCursor == nil {
			break
		}
		list = list.After(page.LastCursor)
	}
	if len(params.ID) == 0 {
		return 0, nil
	}
	if _, err := r.exec.JobRescueMany(ctx, params); err != nil {
		return 0, fmt.Errorf("rescue stranded jobs: %w", err)
	}
	return len(params.ID), nil
}
