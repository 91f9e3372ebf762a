package postgres

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"

	"github.com/mailgate/mailgate/domain"
)

// Group commit for the delivery path's writes (the attempt journal and each
// attempt's outcome). Concurrent deliveries hand their writes to a few
// committers; each committer takes every write waiting when it is free and
// runs them in one transaction: the group's journals and outcomes as two
// bulk statements in one round trip (delivery_bulk.go), the webhook jobs
// they fan out to, the completion of the settled messages' jobs, and one
// COMMIT and WAL flush for the lot, instead of three round trips and a flush
// per write. Nobody waits for a timer: a write that finds a committer idle
// goes at once, and writes that arrive during a commit ride the next one.
// When a group fails, each of its writes is retried alone, so one bad write
// never fails the others.

// groupWrite is one caller's share of a group commit: a journal or an outcome.
type groupWrite struct {
	journal *journalWrite
	outcome *outcomeWrite
	// completeJob, when not 0, is the delivery job completed in the same
	// transaction, so state and job commit together.
	completeJob int64
	done        chan error
}

// groupCommitter batches writes across concurrent callers.
type groupCommitter struct {
	store *Store
	// maxGroup bounds one transaction's writes.
	maxGroup int
	pending  chan *groupWrite
	start    sync.Once
	stop     chan struct{}
	wg       sync.WaitGroup
	// committers is how many groups may be in flight at once.
	committers int
}

func newGroupCommitter(s *Store, committers, maxGroup int) *groupCommitter {
	return &groupCommitter{store: s, maxGroup: maxGroup, committers: committers, pending: make(chan *groupWrite, 4096), stop: make(chan struct{})}
}

// write hands w to a committer and waits for its commit.
func (g *groupCommitter) write(ctx context.Context, w *groupWrite) error {
	w.done = make(chan error, 1)
	select {
	case <-g.stop:
		// Shutting down: write alone rather than queue behind stopped committers.
		return g.store.commitGroup(ctx, []*groupWrite{w})[0]
	default:
	}
	g.start.Do(func() {
		for range g.committers {
			g.wg.Go(g.run)
		}
	})
	select {
	case g.pending <- w:
	case <-ctx.Done():
		return ctx.Err()
	case <-g.stop:
		return g.store.commitGroup(ctx, []*groupWrite{w})[0]
	}
	select {
	case err := <-w.done:
		return err
	case <-ctx.Done():
		// The group may still commit; the caller treats the outcome as unknown.
		return fmt.Errorf("waiting for the group commit: %w", ctx.Err())
	}
}

// close stops the committers once the writes already handed over are done.
func (g *groupCommitter) close() {
	select {
	case <-g.stop:
	default:
		close(g.stop)
	}
	g.wg.Wait()
}

func (g *groupCommitter) run() {
	for {
		var first *groupWrite
		select {
		case first = <-g.pending:
		case <-g.stop:
			// Finish what was handed over before the stop.
			for {
				select {
				case w := <-g.pending:
					g.commit([]*groupWrite{w})
				default:
					return
				}
			}
		}
		group := []*groupWrite{first}
	collect:
		for len(group) < g.maxGroup {
			select {
			case w := <-g.pending:
				group = append(group, w)
			default:
				break collect
			}
		}
		g.commit(group)
	}
}

// commit writes a group in one transaction, or each write alone when the
// group fails, and answers every writer.
func (g *groupCommitter) commit(group []*groupWrite) {
	ctx, cancel := context.WithTimeout(context.Background(), groupTimeout)
	defer cancel()
	errs := g.store.commitGroup(ctx, group)
	if len(group) > 1 && errs[0] != nil && !isDomainErr(errs[0]) {
		for i, w := range group {
			errs[i] = g.store.commitGroup(ctx, []*groupWrite{w})[0]
		}
	}
	for i, w := range group {
		w.done <- errs[i]
	}
}

// groupTimeout bounds one group transaction.
const groupTimeout = 15 * time.Second

// commitGroup runs a group's journals and outcomes in one transaction (two
// statements, plus the webhook fan-out) and returns each write's error. A
// journal whose message is no longer waiting for delivery gets a conflict
// without failing the others.
func (s *Store) commitGroup(ctx context.Context, group []*groupWrite) []error {
	var (
		journals []journalWrite
		outcomes []outcomeWrite
		updated  map[uuid.UUID]bool
	)
	for _, w := range group {
		if w.journal != nil {
			journals = append(journals, *w.journal)
		}
		if w.outcome != nil {
			outcomes = append(outcomes, *w.outcome)
		}
	}
	errs := make([]error, len(group))
	var (
		hooks []tenantHook
		b     = &pgx.Batch{}
	)
	updated = map[uuid.UUID]bool{}
	if len(journals) > 0 {
		queueJournals(b, journals, updated, &hooks)
	}
	if len(outcomes) > 0 {
		queueOutcomes(b, outcomes, &hooks)
	}
	// BEGIN travels with the statements: a group of journals without
	// webhooks is two round trips, the statements and COMMIT.
	err := s.inPipelinedTx(ctx, operatorScope, b, func(tx pgx.Tx) error {
		if err := s.flushTenantHooks(ctx, tx, hooks); err != nil {
			return err
		}
		var complete []int64
		for _, w := range group {
			if w.completeJob != 0 {
				complete = append(complete, w.completeJob)
			}
		}
		if len(complete) > 0 && s.completer != nil {
			return s.completer.CompleteJobsTx(ctx, tx, complete)
		}
		return nil
	})
	for i, w := range group {
		switch {
		case err != nil:
			errs[i] = fmt.Errorf("delivery write: %w", err)
		case w.journal != nil && !updated[w.journal.id]:
			errs[i] = &domain.Error{Code: domain.CodeConflict, Message: "the message is no longer waiting for delivery"}
		}
	}
	return errs
}

func isDomainErr(err error) bool {
	var de *domain.Error
	return errors.As(err, &de)
}
