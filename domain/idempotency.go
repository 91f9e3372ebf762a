package domain

import (
	"context"
	"time"
)

// IdempotencyKeyTTL is how long a key and its response are kept.
const IdempotencyKeyTTL = 24 * time.Hour

// IdempotencyClaimLease is how long a claimed key that has created nothing
// yet stays reserved for its request. A request that died (a killed API
// process, a lost database) before creating its message leaves such a
// claim; after the lease a retry takes it over. Only the request holding
// the claim can create: the create transaction checks the key is unused
// and still its claim.
const IdempotencyClaimLease = 10 * time.Second

type idempotencyKey struct{}

type heldKey struct {
	key   string
	claim IdempotencyClaim
}

// WithIdempotencyKey marks ctx as serving a request that holds claim on an
// Idempotency-Key, so the store creates its messages only while the claim
// is still the key's, and records them against the key in the same
// transaction. It is request metadata, like a deadline.
func WithIdempotencyKey(ctx context.Context, key string, claim IdempotencyClaim) context.Context {
	return context.WithValue(ctx, idempotencyKey{}, heldKey{key: key, claim: claim})
}

// IdempotencyKeyFrom returns the request's Idempotency-Key and its claim, if any.
func IdempotencyKeyFrom(ctx context.Context) (string, IdempotencyClaim, bool) {
	held, ok := ctx.Value(idempotencyKey{}).(heldKey)
	return held.key, held.claim, ok && held.key != ""
}

// IdempotencyClaim is one request's hold on a key, told apart from a later
// one by when it was taken. Creating, recording and releasing under the key
// need the claim, so a request whose lease ran out (and was taken over by a
// retry) can't create after all, delete its successor's claim or write its
// late answer over the key. Without it the fault suite saw the first
// request's create commit late, its retry refused as "in progress", and
// that refusal stored as the key's answer for every later retry.
type IdempotencyClaim struct{ At time.Time }

// IdempotentResponse is what a repeated request gets back.
type IdempotentResponse struct {
	Status      int
	Body        []byte
	ContentType string
	MessageIDs  []string
}
