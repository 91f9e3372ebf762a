package postgres

import (
	"context"
	"errors"
	"time"
)

// Group commit for accepts. Concurrent creates hand their requests to the
// committer; it takes every request waiting when it is free and writes
// them in one transaction (writeAccepts): a handful of round trips and one
// COMMIT and WAL flush for the lot, instead of five round trips and a
// flush per message. Nobody waits for a timer: a request that finds the
// committer idle goes at once, and requests that arrive during a commit
// ride the next one, so groups grow with the load.
//
// A request that is refused (its sender, its idempotency key) is found by
// the checks that open the transaction, before anything is written, and
// answered alone while the others commit. A write that fails anyway (a
// race such as an attachment purged after the check, or an id of another
// tenant) rolls the group back, and each request is then written alone, so
// the failure lands on its own request only. We chose this over a savepoint
// per request: a savepoint is a round trip or a pipeline break per message
// and a subtransaction each (a group of more than 64 overflows PostgreSQL's
// per-backend subtransaction cache), while these failures are rare races.

// Groups overlap in their last round trip only (newOverlappedCoalescer):
// one group is collected and checked at a time, and the next is collected
// and checked while the one before it writes and commits. Against two
// independent committers, in BenchmarkAccept (docs/benchmarks.md, third
// run of 2026-12-02), one committer had the same rate at 16 and 64 clients
// and 20-25 % less CPU a message: with two, groups averaged 4.6 messages at
// 16 clients, each paying its own round trips and COMMIT. One alone, though,
// left the rate at 16 clients bound by one group's latency, with a core
// idle. Overlapping keeps groups as large as one committer's and lets the
// commit of one run beside the checks of the next (the figures are in
// docs/benchmarks.md, fourth run of 2026-12-02). Batch requests don't queue
// here (CreateMessages writes each in a transaction of its own), so no
// single accept waits behind a batch. A group holds at most 256 messages
// (about 1 MB of rows at 2 KB bodies, and well under a second of
// statements), beyond which its latency would grow more than its
// per-message cost shrinks.
const acceptGroupMessages = 256

// acceptCommitter coalesces concurrent accepts into shared transactions; a
// group is bounded by its messages (a batch request counts each).
type acceptCommitter = coalescer[*acceptRequest]

func newAcceptCommitter(s *Store, maxMessages int) *acceptCommitter {
	c := newOverlappedCoalescer("accept commit", maxMessages, acceptTimeout, s.writeAcceptsOrEachAlone)
	c.weight = func(req *acceptRequest) int { return len(req.msgs) }
	return c
}

// acceptTimeout bounds one group transaction; callers wait with their own deadline.
const acceptTimeout = 15 * time.Second

// writeAcceptsOrEachAlone writes a group in one transaction, or each request
// alone when the group's write failed. A request's own refusals are set on
// it; the error is its transaction's. handoff is called before the group's
// last round trip.
func (s *Store) writeAcceptsOrEachAlone(ctx context.Context, reqs []*acceptRequest, handoff func()) []error {
	errs := make([]error, len(reqs))
	err := s.writeAccepts(ctx, reqs, handoff)
	if err != nil && len(reqs) > 1 && errors.Is(err, errAcceptWrite) {
		for i, req := range reqs {
			req.reset()
			errs[i] = s.writeAccepts(ctx, []*acceptRequest{req}, func() {})
		}
		return errs
	}
	for i := range errs {
		errs[i] = err
	}
	return errs
}
