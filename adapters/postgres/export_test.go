package postgres

import (
	"context"

	"github.com/mailgate/mailgate/domain"
)

// The feed's statements, for tests that EXPLAIN them.
const (
	EventFeedQuery    = eventFeedQuery
	EventFeedLagQuery = eventFeedLagQuery
)

// AcceptGroup creates one message per context as one accept group, as the
// committer does with creates that arrive together (the tenant is each
// message's, the Idempotency-Key each context's), and returns each create's
// answer. Tests use it to build a group deterministically.
func (s *Store) AcceptGroup(ctxs []context.Context, msgs []*domain.Message) []error {
	group := make([]*acceptRequest, len(msgs))
	for i, m := range msgs {
		group[i] = newAcceptRequest(ctxs[i], m.SubscriptionID, []*domain.Message{m})
	}
	errs := s.writeAcceptsOrEachAlone(context.Background(), group, func() {})
	for i, req := range group {
		errs[i] = req.outcome(errs[i])
	}
	return errs
}
