package jobs

import (
	"context"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/riverqueue/river"
	"github.com/riverqueue/river/riverdriver"
	"github.com/riverqueue/river/rivertype"
)

// JobCompleter completes delivery jobs inside the caller's transaction, so a
// message's final state and its job's completion commit together. It is the
// bulk form of river.JobCompleteTx, through the same client pilot: one
// statement for every final outcome of a group commit, where JobCompleteTx
// would take one round trip per job (measured: 40 % of the delivery rate).
type JobCompleter struct {
	client *river.Client[pgx.Tx]
}

// NewJobCompleter completes jobs through client.
func NewJobCompleter(client *river.Client[pgx.Tx]) *JobCompleter {
	return &JobCompleter{client: client}
}

// CompleteJobsTx marks the running jobs among ids completed in tx; a job no
// longer running (rescued meanwhile) is left alone, and its next run finds
// its message settled.
func (c *JobCompleter) CompleteJobsTx(ctx context.Context, tx pgx.Tx, ids []int64) error {
	if len(ids) == 0 {
		return nil
	}
	now := time.Now()
	p := &riverdriver.JobSetStateIfRunningManyParams{
		ID:              make([]int64, len(ids)),
		Attempt:         make([]*int, len(ids)),
		ErrData:         make([][]byte, len(ids)),
		FinalizedAt:     make([]*time.Time, len(ids)),
		MetadataDoMerge: make([]bool, len(ids)),
		MetadataUpdates: make([][]byte, len(ids)),
		ScheduledAt:     make([]*time.Time, len(ids)),
		State:           make([]rivertype.JobState, len(ids)),
	}
	for i, id := range ids {
		s := riverdriver.JobSetStateCompleted(id, now, nil)
		p.ID[i], p.FinalizedAt[i], p.State[i] = s.ID, s.FinalizedAt, s.State
	}
	if _, err := c.client.Pilot().JobSetStateIfRunningMany(ctx, c.client.Driver().UnwrapExecutor(tx), p); err != nil {
		return fmt.Errorf("complete delivery jobs: %w", err)
	}
	return nil
}
