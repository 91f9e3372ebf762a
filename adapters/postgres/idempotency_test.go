package postgres_test

import (
	"context"
	"errors"
	"testing"

	"github.com/mailgate/mailgate/adapters/postgres"
	"github.com/mailgate/mailgate/db/dbtest"
	"github.com/mailgate/mailgate/domain"
)

// A request whose claim ran out of its lease and was taken over by a retry
// can't touch the key any more: not release the retry's claim, not record
// its own late answer. Seen in the fault suite's database partition: the
// first request's create committed late, its retry was refused as "in
// progress", and that refusal, stored as the key's answer, was replayed to
// every retry after it.
func TestIdempotencyKeyTakenOverIsTheNewOwners(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	f := newFixture(t, fixtureOpts{})
	owner := dbtest.OwnerPool(t)
	hash := []byte("request")
	claim := func() domain.IdempotencyClaim {
		t.Helper()
		replay, c, err := f.store.ClaimIdempotencyKey(ctx, f.tenant.ID, "late", hash)
		if err != nil || replay != nil {
			t.Fatalf("claim: %+v %v", replay, err)
		}
		return c
	}
	outliveLease := func() {
		t.Helper()
		if _, err := owner.Exec(ctx, `UPDATE idempotency_keys SET created_at = created_at - interval '1 minute'
			WHERE subscription_id = $1 AND key = 'late'`, f.tenant.ID); err != nil {
			t.Fatal(err)
		}
	}

	first := claim()
	outliveLease()
	retry := claim()
	if retry == first {
		t.Fatal("the takeover kept the first claim")
	}
	// The first request gives up late: the retry's claim stays.
	if err := f.store.ReleaseIdempotencyKey(ctx, f.tenant.ID, "late", first); err != nil {
		t.Fatal(err)
	}
	if _, _, err := f.store.ClaimIdempotencyKey(ctx, f.tenant.ID, "late", hash); !errors.Is(err, postgres.ErrIdempotencyInProgress) {
		t.Fatalf("a third request while the retry holds the key: %v, want in progress", err)
	}

	// The first request's create commits after all (its group outlived the
	// lease), and the retry's create is refused as in progress.
	msg := f.newAccept(true)
	if err := f.store.CreateMessage(domain.WithIdempotencyKey(ctx, "late"), f.tenant.ID, msg); err != nil {
		t.Fatal(err)
	}
	refusal := domain.IdempotentResponse{Status: 409, Body: []byte(`{"status":409}`), ContentType: "application/problem+json"}
	if err := f.store.FinishIdempotencyKey(ctx, f.tenant.ID, "late", retry, refusal); err != nil {
		t.Fatal(err)
	}
	replay, _, err := f.store.ClaimIdempotencyKey(ctx, f.tenant.ID, "late", hash)
	if err != nil || replay == nil {
		t.Fatalf("after the create: %+v %v", replay, err)
	}
	if replay.Status != 201 || replay.Body != nil || len(replay.MessageIDs) != 1 || replay.MessageIDs[0] != msg.ID.String() {
		t.Fatalf("the key replays %+v, want the created message (201, read back)", replay)
	}
	// The first request's own answer is late too: its claim was taken over.
	answer := domain.IdempotentResponse{Status: 201, Body: []byte(`{"id":"x"}`), ContentType: "application/json"}
	if err := f.store.FinishIdempotencyKey(ctx, f.tenant.ID, "late", first, answer); err != nil {
		t.Fatal(err)
	}
	if replay, _, _ := f.store.ClaimIdempotencyKey(ctx, f.tenant.ID, "late", hash); replay == nil || replay.Body != nil {
		t.Fatalf("a taken-over claim recorded its answer: %+v", replay)
	}
}
