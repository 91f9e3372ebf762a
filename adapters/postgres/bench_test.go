package postgres_test

import (
	"context"
	"testing"

	"github.com/google/uuid"

	"github.com/mailgate/mailgate/db/dbtest"
	"github.com/mailgate/mailgate/domain"
)

// BenchmarkDatabaseCeiling is the floor under every accept: one transaction
// inserting one narrow row, on the same pool and role. Compare the accept
// benchmarks with it rather than with absolute numbers.
func BenchmarkDatabaseCeiling(b *testing.B) {
	ctx := context.Background()
	pool := dbtest.OwnerPool(b)
	if _, err := pool.Exec(ctx, `CREATE TABLE IF NOT EXISTS bench_ceiling (id uuid PRIMARY KEY, body text)`); err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	b.ResetTimer()
	for b.Loop() {
		tx, err := pool.Begin(ctx)
		if err != nil {
			b.Fatal(err)
		}
		if _, err := tx.Exec(ctx, `INSERT INTO bench_ceiling VALUES ($1, 'x')`, uuid.New()); err != nil {
			b.Fatal(err)
		}
		if err := tx.Commit(ctx); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkCreateMessageQueued is the accept path's storage: message, three
// recipients, two events and the River job, in one transaction.
func BenchmarkCreateMessageQueued(b *testing.B) {
	benchCreate(b, true)
}

// BenchmarkCreateMessageDraft is the same without the job.
func BenchmarkCreateMessageDraft(b *testing.B) {
	benchCreate(b, false)
}

func benchCreate(b *testing.B, send bool) {
	ctx := context.Background()
	f := newFixture(b, fixtureOpts{})
	c := &domain.Composer{Store: f.store}
	req := domain.ComposeRequest{
		SenderEmail: f.sender.Email,
		To:          []domain.RecipientInput{{DisplayName: "Ada", EmailAddress: "ada@example.net"}},
		Cc:          []domain.RecipientInput{{EmailAddress: "bob@example.net"}},
		Bcc:         []domain.RecipientInput{{EmailAddress: "eve@example.net"}},
		Subject:     "benchmark",
		Body:        "hello",
		Send:        send,
	}
	b.ReportAllocs()
	b.ResetTimer()
	for b.Loop() {
		if _, err := c.Compose(ctx, f.tenant.ID, req); err != nil {
			b.Fatal(err)
		}
	}
}
