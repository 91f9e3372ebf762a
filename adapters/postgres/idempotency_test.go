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
// can't touch the key any more: not create under it, not release the
// retry's claim, not record its own late answer. Seen in the fault suite's
// database partition: the first request's create committed late, its retry
// was refused as "in progress", and that refusal, stored as the key's
// answer, was replayed to every retry after it.
func TestIdempotencyKeyTakenOverIsTheNewOwners(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	f := newFixture(t, fixtureOpts{})
	hash := []byte("request")
	claim := func() domain.IdempotencyClaim {
		t.Helper()
		replay, c, err := f.store.ClaimIdempotencyKey(ctx, f.tenant.ID, "late", hash)
		if err != nil || replay != nil {
			t.Fatalf("claim: %+v %v", replay, err)
		}
		return c
	}

	first := claim()
	if _, err := dbtest.OwnerPool(t).Exec(ctx, `UPDATE idempotency_keys SET created_at = created_at - interval '1 minute'
		WHERE subscription_id = $1 AND key = 'late'`, f.tenant.ID); err != nil {
		t.Fatal(err)
	}
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
	// The first request's create comes late (its group outlived the lease):
	// refused, nothing written. The retry's goes through.
	late := f.newAccept(true)
	if err := f.store.CreateMessage(domain.WithIdempotencyKey(ctx, "late", first), f.tenant.ID, late); !errors.Is(err, postgres.ErrIdempotencyInProgress) {
		t.Fatalf("a create under a claim taken over: %v, want in progress", err)
	}
	requireAbsent(t, late)
	msg := f.newAccept(true)
	if err := f.store.CreateMessage(domain.WithIdempotencyKey(ctx, "late", retry), f.tenant.ID, msg); err != nil {
		t.Fatal(err)
	}
	// The first request's late answer is not the key's; the retry's is.
	if err := f.store.FinishIdempotencyKey(ctx, f.tenant.ID, "late", first,
		domain.IdempotentResponse{Status: 409, Body: []byte(`{"status":409}`), ContentType: "application/problem+json"}); err != nil {
		t.Fatal(err)
	}
	if err := f.store.FinishIdempotencyKey(ctx, f.tenant.ID, "late", retry,
		domain.IdempotentResponse{Status: 201, Body: []byte(`{"id":"retry"}`), ContentType: "application/json"}); err != nil {
		t.Fatal(err)
	}
	replay, _, err := f.store.ClaimIdempotencyKey(ctx, f.tenant.ID, "late", hash)
	if err != nil || replay == nil || replay.Status != 201 || string(replay.Body) != `{"id":"retry"}` ||
		len(replay.MessageIDs) != 1 || replay.MessageIDs[0] != msg.ID.String() {
		t.Fatalf("the key replays %+v %v, want the retry's created message and answer", replay, err)
	}
}
