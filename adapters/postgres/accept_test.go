package postgres_test

import (
	"context"
	"errors"
	"sync"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/mailgate/mailgate/adapters/postgres"
	"github.com/mailgate/mailgate/db/dbtest"
	"github.com/mailgate/mailgate/domain"
	"github.com/mailgate/mailgate/jobs"
)

// newAccept is a validated new message of f's tenant, naming f's sender as a
// request does (the store resolves it), with two recipients.
func (f fixture) newAccept(send bool) *domain.Message {
	now := time.Now().UTC().Truncate(time.Microsecond)
	id := uuid.New()
	m := &domain.Message{
		ID: id, SubscriptionID: f.tenant.ID, SenderEmail: f.sender.Email, ConversationID: id,
		Subject: "grouped", Body: "body", Importance: domain.ImportanceNormal, State: domain.StateDraft,
		CreatedDate: now, UpdatedAt: now,
		Recipients: []domain.Recipient{
			{Kind: domain.KindTo, Position: 0, Email: "ada@example.net", Status: domain.RecipientPending},
			{Kind: domain.KindCc, Position: 1, Email: "bob@example.net", Status: domain.RecipientPending},
		},
	}
	if send {
		m.State = domain.StateQueued
	}
	return m
}

func contexts(n int) []context.Context {
	ctxs := make([]context.Context, n)
	for i := range ctxs {
		ctxs[i] = context.Background()
	}
	return ctxs
}

// requireStored checks that m was written whole: its row with its job, its
// recipients and its events, each under its own tenant.
func requireStored(t *testing.T, m *domain.Message) {
	t.Helper()
	if m.Version != 1 {
		t.Errorf("message %s: version %d, want 1", m.ID, m.Version)
	}
	if n := countRows(t, `SELECT count(*) FROM messages WHERE subscription_id = $1 AND id = $2 AND sender_account_id IS NOT NULL
		AND message_id LIKE '<%@%>' AND sender_display_name = 'The Sender'`, m.SubscriptionID, m.ID); n != 1 {
		t.Errorf("message %s: %d rows with the resolved sender, want 1", m.ID, n)
	}
	if n := countRows(t, `SELECT count(*) FROM message_recipients WHERE subscription_id = $1 AND message_id = $2`, m.SubscriptionID, m.ID); n != 2 {
		t.Errorf("message %s: %d recipients, want 2", m.ID, n)
	}
	wantEvents, wantJobs := 1, 0
	if m.State == domain.StateQueued {
		wantEvents, wantJobs = 2, 1
	}
	if n := countRows(t, `SELECT count(*) FROM message_events WHERE subscription_id = $1 AND message_id = $2`, m.SubscriptionID, m.ID); n != wantEvents {
		t.Errorf("message %s: %d events, want %d", m.ID, n, wantEvents)
	}
	if n := countRows(t, `SELECT count(*) FROM river_job j JOIN messages m ON m.job_id = j.id
		WHERE m.id = $1 AND j.kind = 'deliver_message' AND j.args->>'message_id' = $1::text AND j.args->>'subscription_id' = $2::text`,
		m.ID, m.SubscriptionID); n != wantJobs {
		t.Errorf("message %s: %d delivery jobs linked, want %d", m.ID, n, wantJobs)
	}
}

// requireAbsent checks that nothing of m was written.
func requireAbsent(t *testing.T, m *domain.Message) {
	t.Helper()
	for _, q := range []string{
		`SELECT count(*) FROM messages WHERE id = $1 AND subscription_id = $2`,
		`SELECT count(*) FROM message_recipients WHERE message_id = $1 AND subscription_id = $2`,
		`SELECT count(*) FROM message_events WHERE message_id = $1 AND subscription_id = $2`,
		`SELECT count(*) FROM river_job WHERE args->>'message_id' = $1::text AND args->>'subscription_id' = $2::text`,
	} {
		if n := countRows(t, q, m.ID, m.SubscriptionID); n != 0 {
			t.Errorf("message %s: %q found %d rows, want none", m.ID, q, n)
		}
	}
}

func TestAcceptGroup(t *testing.T) {
	t.Parallel()
	ctx := context.Background()

	t.Run("OKPerMessageResults", func(t *testing.T) {
		t.Parallel()
		f := newFixture(t, fixtureOpts{})
		msgs := []*domain.Message{f.newAccept(true), f.newAccept(false), f.newAccept(true), f.newAccept(true)}
		for i, err := range f.store.AcceptGroup(contexts(len(msgs)), msgs) {
			if err != nil {
				t.Fatalf("message %d: %v", i, err)
			}
		}
		for _, m := range msgs {
			requireStored(t, m)
		}
		// One transaction: every event of the group carries the same transaction id.
		if n := countRows(t, `SELECT count(DISTINCT xact_id) FROM message_events WHERE subscription_id = $1`, f.tenant.ID); n != 1 {
			t.Fatalf("the group's events span %d transactions, want 1", n)
		}
	})

	t.Run("ErrRefusedSenderFailsOnlyItsMessage", func(t *testing.T) {
		t.Parallel()
		f := newFixture(t, fixtureOpts{})
		bad := f.newAccept(true)
		bad.SenderEmail = "someone@not-" + f.domain
		msgs := []*domain.Message{f.newAccept(true), bad, f.newAccept(true)}
		errs := f.store.AcceptGroup(contexts(len(msgs)), msgs)
		if errs[0] != nil || errs[2] != nil {
			t.Fatalf("the good messages failed: %v", errs)
		}
		if domain.ErrorCodeOf(errs[1]) != domain.CodeForbidden {
			t.Fatalf("refused sender: got %v, want forbidden", errs[1])
		}
		requireStored(t, msgs[0])
		requireStored(t, msgs[2])
		requireAbsent(t, bad)
	})

	t.Run("ErrFailedWriteFailsOnlyItsMessage", func(t *testing.T) {
		t.Parallel()
		// The id belongs to another tenant's message: the bulk insert fails
		// on the unique id, the group is rolled back and each message is
		// written alone, so only this one fails.
		f, other := newFixture(t, fixtureOpts{}), newFixture(t, fixtureOpts{})
		foreign := other.compose(t, false)
		clash := f.newAccept(true)
		clash.ID, clash.ConversationID = foreign.ID, foreign.ID
		msgs := []*domain.Message{f.newAccept(true), clash, f.newAccept(false)}
		errs := f.store.AcceptGroup(contexts(len(msgs)), msgs)
		if errs[0] != nil || errs[2] != nil {
			t.Fatalf("the good messages failed: %v", errs)
		}
		if domain.ErrorCodeOf(errs[1]) != domain.CodeNotFound {
			t.Fatalf("foreign id: got %v, want not found", errs[1])
		}
		requireStored(t, msgs[0])
		requireStored(t, msgs[2])
		requireAbsent(t, clash)
		if n := countRows(t, `SELECT count(*) FROM river_job WHERE args->>'subscription_id' = $1::text`, f.tenant.ID); n != 1 {
			t.Fatalf("%d delivery jobs after the retry, want the one queued message's", n)
		}
	})

	t.Run("OKTenantsMixedInOneGroup", func(t *testing.T) {
		t.Parallel()
		a, b := newFixture(t, fixtureOpts{}), newFixture(t, fixtureOpts{})
		if _, err := b.store.CreateWebhook(ctx, b.tenant.ID, domain.Webhook{URL: "https://hooks.example/b", Secrets: [][]byte{[]byte("s")}}, 0); err != nil {
			t.Fatal(err)
		}
		msgs := []*domain.Message{a.newAccept(true), b.newAccept(true), a.newAccept(false), b.newAccept(false)}
		for i, err := range a.store.AcceptGroup(contexts(len(msgs)), msgs) {
			if err != nil {
				t.Fatalf("message %d: %v", i, err)
			}
		}
		for _, m := range msgs {
			requireStored(t, m)
		}
		// Only b has a webhook: one delivery per event of b's (created and
		// queued, then created), none for a's.
		webhookJobs := func(tenant uuid.UUID) int {
			return countRows(t, `SELECT count(*) FROM river_job WHERE kind = 'deliver_webhook' AND args->>'subscription_id' = $1::text`, tenant)
		}
		if n := webhookJobs(b.tenant.ID); n != 3 {
			t.Fatalf("tenant b: %d webhook jobs, want 3", n)
		}
		if n := webhookJobs(a.tenant.ID); n != 0 {
			t.Fatalf("tenant a: %d webhook jobs, want none", n)
		}
		// Each tenant sees its own messages only, through row-level security.
		for _, f := range []fixture{a, b} {
			page, err := f.store.ListMessages(ctx, f.tenant.ID, domain.MessageFilter{Limit: 10})
			if err != nil {
				t.Fatal(err)
			}
			if len(page.Messages) != 2 {
				t.Fatalf("tenant %s lists %d messages, want its 2", f.tenant.ID, len(page.Messages))
			}
			for _, m := range page.Messages {
				if m.SubscriptionID != f.tenant.ID {
					t.Fatalf("tenant %s lists a message of %s", f.tenant.ID, m.SubscriptionID)
				}
			}
		}
	})

	t.Run("OKIdempotencyKeysInOneGroup", func(t *testing.T) {
		t.Parallel()
		f := newFixture(t, fixtureOpts{})
		hash := []byte("request")
		claims := map[string]domain.IdempotencyClaim{}
		for _, key := range []string{"fresh", "spent"} {
			replay, claim, err := f.store.ClaimIdempotencyKey(ctx, f.tenant.ID, key, hash)
			if err != nil || replay != nil {
				t.Fatalf("claim %s: %v %v", key, replay, err)
			}
			claims[key] = claim
		}
		// "spent" already created a message.
		spentFirst := f.newAccept(true)
		if err := f.store.CreateMessage(domain.WithIdempotencyKey(ctx, "spent", claims["spent"]), f.tenant.ID, spentFirst); err != nil {
			t.Fatal(err)
		}
		fresh, spentAgain, plain := f.newAccept(true), f.newAccept(true), f.newAccept(true)
		ctxs := []context.Context{domain.WithIdempotencyKey(ctx, "fresh", claims["fresh"]), domain.WithIdempotencyKey(ctx, "spent", claims["spent"]), ctx}
		errs := f.store.AcceptGroup(ctxs, []*domain.Message{fresh, spentAgain, plain})
		if errs[0] != nil || errs[2] != nil {
			t.Fatalf("fresh key or no key failed: %v", errs)
		}
		if !errors.Is(errs[1], postgres.ErrIdempotencyInProgress) {
			t.Fatalf("a second create under a spent key: got %v, want in progress", errs[1])
		}
		requireStored(t, fresh)
		requireStored(t, plain)
		requireAbsent(t, spentAgain)
		// The key created in the group replays its message.
		if err := f.store.FinishIdempotencyKey(ctx, f.tenant.ID, "fresh", claims["fresh"], domain.IdempotentResponse{Status: 201, Body: []byte("{}"), ContentType: "application/json"}); err != nil {
			t.Fatal(err)
		}
		replay, _, err := f.store.ClaimIdempotencyKey(ctx, f.tenant.ID, "fresh", hash)
		if err != nil || replay == nil || len(replay.MessageIDs) != 1 || replay.MessageIDs[0] != fresh.ID.String() {
			t.Fatalf("replay of the grouped create: %+v %v", replay, err)
		}
	})

	t.Run("ErrRollbackLeavesNothingHalfWritten", func(t *testing.T) {
		t.Parallel()
		// Rows and delivery jobs of both tenants are written, then the
		// webhook fan-out of one fails: the whole group rolls back.
		client, err := jobs.NewInsertClient(dbtest.Pool(t), jobs.Config{})
		if err != nil {
			t.Fatal(err)
		}
		a := newFixture(t, fixtureOpts{enqueuer: webhooksDown{jobs.NewEnqueuer(client, nil)}})
		b := newFixture(t, fixtureOpts{})
		if _, err := b.store.CreateWebhook(ctx, b.tenant.ID, domain.Webhook{URL: "https://hooks.example/b", Secrets: [][]byte{[]byte("s")}}, 0); err != nil {
			t.Fatal(err)
		}
		msgs := []*domain.Message{a.newAccept(true), b.newAccept(true)}
		for i, err := range a.store.AcceptGroup(contexts(len(msgs)), msgs) {
			if err == nil {
				t.Fatalf("message %d was accepted though its transaction failed", i)
			}
		}
		for _, m := range msgs {
			requireAbsent(t, m)
		}
	})

	t.Run("OKConcurrentCreates", func(t *testing.T) {
		t.Parallel()
		f := newFixture(t, fixtureOpts{})
		const n = 48
		msgs := make([]*domain.Message, n)
		errs := make([]error, n)
		var wg sync.WaitGroup
		for i := range msgs {
			msgs[i] = f.newAccept(i%2 == 0)
			wg.Go(func() { errs[i] = f.store.CreateMessage(ctx, f.tenant.ID, msgs[i]) })
		}
		wg.Wait()
		for i, m := range msgs {
			if errs[i] != nil {
				t.Fatalf("message %d: %v", i, errs[i])
			}
			requireStored(t, m)
		}
	})
}
