package postgres_test

import (
	"context"
	"testing"
	"time"

	"github.com/mailgate/mailgate/db/dbtest"
)

func TestPendingMessages(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	f := newFixture(t, fixtureOpts{})
	msg := f.compose(t, true)
	// Other tests of this binary queue messages in the same schema as this
	// runs, all just now; three hours back makes this one the oldest.
	owner := dbtest.OwnerPool(t)
	if _, err := owner.Exec(ctx, `UPDATE messages SET queued_at = now() - interval '3 hours' WHERE id = $1`, msg.ID); err != nil {
		t.Fatal(err)
	}
	got, err := f.store.PendingMessages(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if got.Count < 1 {
		t.Fatalf("count %d with a queued message, want at least 1", got.Count)
	}
	if age := time.Since(got.OldestQueuedAt); age < 3*time.Hour || age > 3*time.Hour+time.Minute {
		t.Fatalf("oldest pending age %s, want the backdated message's 3h", age)
	}

	// A message being sent is still pending.
	if _, err := owner.Exec(ctx, `UPDATE messages SET state = 'sending' WHERE id = $1`, msg.ID); err != nil {
		t.Fatal(err)
	}
	if got, err = f.store.PendingMessages(ctx); err != nil || time.Since(got.OldestQueuedAt) < 3*time.Hour {
		t.Fatalf("while sending: %+v, %v; want the 3h-old message counted", got, err)
	}

	// Scheduled for later, it is not pending yet; once due, it has waited
	// since then.
	if _, err := owner.Exec(ctx, `UPDATE messages SET state = 'queued', send_at = now() + interval '1 day' WHERE id = $1`, msg.ID); err != nil {
		t.Fatal(err)
	}
	if got, err = f.store.PendingMessages(ctx); err != nil || !got.OldestQueuedAt.IsZero() && time.Since(got.OldestQueuedAt) >= 3*time.Hour {
		t.Fatalf("scheduled a day ahead: %+v, %v; want it not pending", got, err)
	}
	if _, err := owner.Exec(ctx, `UPDATE messages SET send_at = now() - interval '2 hours' WHERE id = $1`, msg.ID); err != nil {
		t.Fatal(err)
	}
	if got, err = f.store.PendingMessages(ctx); err != nil {
		t.Fatal(err)
	}
	if age := time.Since(got.OldestQueuedAt); age < 2*time.Hour || age > 2*time.Hour+time.Minute {
		t.Fatalf("due two hours ago: oldest pending age %s, want 2h", age)
	}

	// Once settled it no longer counts.
	if _, err := owner.Exec(ctx, `UPDATE messages SET state = 'sent', finished_at = now() WHERE id = $1`, msg.ID); err != nil {
		t.Fatal(err)
	}
	if got, err = f.store.PendingMessages(ctx); err != nil {
		t.Fatal(err)
	}
	if !got.OldestQueuedAt.IsZero() && time.Since(got.OldestQueuedAt) >= 3*time.Hour {
		t.Fatalf("after the message was sent the oldest pending is %s old, want it gone", time.Since(got.OldestQueuedAt))
	}
}
