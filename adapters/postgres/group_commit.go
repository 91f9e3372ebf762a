package postgres

import (
	"context"
	"errors"
	"fmt"
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
}

// groupCommitter batches delivery writes across concurrent callers.
type groupCommitter = coalescer[*groupWrite]

// Its runners are independent, not overlapped as the accepts' are: with
// the overlap BenchmarkDeliveryDrain/2KB fell from 0.101-0.115 to
// 0.089-0.097 of its ceiling (three pairs alternated on one machine), since
// a delivery waits for its journal before the relay hears from it, so one
// group's latency counts for more here than the statements saved.
func newGroupCommitter(s *Store, committers, maxGroup int) *groupCommitter {
	return newCoalescer("group commit", committers, maxGroup, groupTimeout, s.commitGroupOrEachAlone)
}

// commitGroupOrEachAlone writes a group in one transaction, or each write
// alone when the group fails other than by a write's own refusal.
func (s *Store) commitGroupOrEachAlone(ctx context.Context, group []*groupWrite) []error {
	errs := s.commitGroup(ctx, group)
	if len(group) > 1 && errs[0] != nil && !isDomainErr(errs[0]) {
		for i, w := range group {
			errs[i] = s.commitGroup(ctx, []*groupWrite{w})[0]
		}
	}
	return errs
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
		// updated and written hold the messages whose journal and outcome were written.
		updated, written = map[uuid.UUID]bool{}, map[uuid.UUID]bool{}
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
	if len(journals) > 0 {
		queueJournals(b, journals, updated, &hooks)
	}
	if len(outcomes) > 0 {
		queueOutcomes(b, outcomes, written, &hooks)
	}
	// BEGIN travels with the statements: a group of journals without
	// webhooks is two round trips, the statements and COMMIT.
	err := s.inPipelinedTx(ctx, operatorScope, b, func(tx pgx.Tx) error {
		if err := s.flushTenantHooks(ctx, tx, hooks); err != nil {
			return err
		}
		var complete []int64
		for _, w := range group {
			// A refused outcome's job stays running: its worker decides again.
			if w.completeJob != 0 && (w.outcome == nil || written[w.outcome.rec.MessageID]) {
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
		case w.outcome != nil && !written[w.outcome.rec.MessageID]:
			errs[i] = &domain.Error{Code: domain.CodeVersionMismatch, Message: "the message changed during the attempt (or is gone); nothing was written"}
		}
	}
	return errs
}

func isDomainErr(err error) bool {
	var de *domain.Error
	return errors.As(err, &de)
}
