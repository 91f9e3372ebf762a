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
// claim; after the lease a retry takes it over. Exactly one of them can
// still create: the create transaction checks the key is unused.
const IdempotencyClaimLease = 10 * time.Second

type idempotencyKey struct{}

// WithIdempotencyKey marks ctx as serving a request with an Idempotency-Key,
// so the store records the created messages against the key in the same
// transaction that creates them. It is request metadata, like a deadline.
func WithIdempotencyKey(ctx context.Context, key string) context.Context {
	return context.WithValue(ctx, idempotencyKey{}, key)
}

// IdempotencyKeyFrom returns the request's Idempotency-Key, if any.
func IdempotencyKeyFrom(ctx context.Context) (string, bool) {
	key, ok := ctx.Value(idempotencyKey{}).(string)
	return key, ok && key != ""
}

// IdempotencyClaim is one request's hold on a key, told apart from a later
// one by when it was taken. Recording or releasing the key needs the claim,
// so a request whose lease ran out (and was taken over by a retry) can
// neither delete its successor's claim nor write its own late answer over
// the key: a retry refused as "in progress" because the first request's
// create committed after all would otherwise store that refusal as the
// key's answer, and every later retry would replay it.
type IdempotencyClaim struct{ At time.Time }

// IdempotentResponse is what a repeated request gets back.
type IdempotentResponse struct {
	Status      int
	Body        []byte
	ContentType string
	MessageIDs  []string
}
