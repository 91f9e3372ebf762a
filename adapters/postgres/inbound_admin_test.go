package postgres_test

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/mailgate/mailgate/db/dbtest"
	"github.com/mailgate/mailgate/domain"
)

// receiveInbound stores one inbound message received at `at` and, unless
// status is received, settles it with that status.
func (f fixture) receiveInbound(t *testing.T, at time.Time, status string) uuid.UUID {
	t.Helper()
	ctx := context.Background()
	mail := domain.InboundMail{ID: uuid.New(), ReceivedAt: at, RemoteAddr: "192.0.2.1", Helo: "mta.test",
		RcptTo: []string{"bounce+x@bounces.example"}, Raw: []byte("Subject: x\r\n\r\nbody\r\n")}
	if err := f.store.ReceiveInbound(ctx, mail); err != nil {
		t.Fatal(err)
	}
	if status != domain.InboundReceived {
		if err := f.store.MarkInbound(ctx, domain.InboundOutcome{InboundID: mail.ID, Status: status, Kind: domain.InboundBounce, Detail: "test"}); err != nil {
			t.Fatal(err)
		}
	}
	return mail.ID
}

// Retention deletes settled inbound rows older than the cutoff, a bounded
// batch at a time, and keeps recent ones and any still waiting for processing.
func TestPurgeSettledInbound(t *testing.T) {
	t.Parallel()
	f := newFixture(t, fixtureOpts{})
	ctx := context.Background()
	// Far enough back that no other test's rows are this old.
	now := time.Now().Add(-10 * 365 * 24 * time.Hour)
	retention := 30 * 24 * time.Hour
	old := now.Add(-retention - time.Hour)
	oldProcessed := f.receiveInbound(t, old, domain.InboundProcessed)
	oldUnmatched := f.receiveInbound(t, old.Add(time.Minute), domain.InboundUnmatched)
	oldWaiting := f.receiveInbound(t, old, domain.InboundReceived)
	recentUnmatched := f.receiveInbound(t, now.Add(-retention+time.Hour), domain.InboundUnmatched)
	recentProcessed := f.receiveInbound(t, now.Add(-time.Hour), domain.InboundProcessed)

	var batches []int64
	for {
		n, err := f.store.PurgeSettledInbound(ctx, now.Add(-retention), 1)
		if err != nil {
			t.Fatal(err)
		}
		if n == 0 {
			break
		}
		batches = append(batches, n)
		if len(batches) > 10 {
			t.Fatal("the purge never ran out")
		}
	}
	if len(batches) != 2 || batches[0] != 1 || batches[1] != 1 {
		t.Fatalf("batches %v, want two of one row each", batches)
	}
	for id, want := range map[uuid.UUID]int{oldProcessed: 0, oldUnmatched: 0, oldWaiting: 1, recentUnmatched: 1, recentProcessed: 1} {
		if n := countRows(t, `SELECT count(*) FROM inbound_messages WHERE id = $1`, id); n != want {
			t.Errorf("inbound %s: %d rows, want %d", id, n, want)
		}
	}
}

// Reprocessing puts an unmatched message back to received with a new
// process_inbound job in the same transaction; anything else is refused.
func TestReprocessInbound(t *testing.T) {
	t.Parallel()
	f := newFixture(t, fixtureOpts{})
	ctx := context.Background()
	jobs := func(id uuid.UUID) int {
		return countRows(t, `SELECT count(*) FROM river_job WHERE kind = 'process_inbound' AND args->>'inbound_id' = $1`, id.String())
	}
	unmatched := f.receiveInbound(t, time.Now(), domain.InboundUnmatched)
	r, err := f.store.ReprocessInbound(ctx, unmatched)
	if err != nil {
		t.Fatal(err)
	}
	if r.Status != domain.InboundReceived || r.Detail != "" || r.Kind != "" || !r.ProcessedAt.IsZero() || jobs(unmatched) != 2 {
		t.Fatalf("reprocessed: %+v with %d jobs, want received with a second job", r, jobs(unmatched))
	}
	// Now it is received again, waiting for that job: a second reprocess is refused.
	for _, id := range []uuid.UUID{unmatched, f.receiveInbound(t, time.Now(), domain.InboundProcessed)} {
		_, err := f.store.ReprocessInbound(ctx, id)
		if de := domain.AsError(err); de.Code != domain.CodeConflict {
			t.Fatalf("reprocess %s: %v, want a conflict", id, err)
		}
	}
	if _, err := f.store.ReprocessInbound(ctx, uuid.New()); !errors.Is(err, domain.ErrNotFound) {
		t.Fatalf("reprocess an unknown id: %v", err)
	}
}

// Return-path lookups are cached: a change behind the store's back is not
// seen until the answer expires, a change through the store is seen at once.
func TestReturnPathLookupIsCached(t *testing.T) {
	t.Parallel()
	f := newFixture(t, fixtureOpts{})
	ctx := context.Background()
	rpd := "bounces." + f.domain
	if found, err := f.store.IsReturnPathDomain(ctx, rpd); err != nil || found {
		t.Fatalf("before: %v %v", found, err)
	}
	// Set behind the store's back (another replica, the CLI): the cached "no" stands.
	owner := dbtest.OwnerPool(t)
	if _, err := owner.Exec(ctx, `UPDATE subscriptions SET return_path_domain = $2 WHERE id = $1`, f.tenant.ID, rpd); err != nil {
		t.Fatal(err)
	}
	if found, err := f.store.IsReturnPathDomain(ctx, rpd); err != nil || found {
		t.Fatalf("a fresh cached answer was not used: %v %v", found, err)
	}
	// Through this store: the cache is dropped.
	if _, err := f.store.SetInboundSettings(ctx, f.tenant.ID, &rpd, nil); err != nil {
		t.Fatal(err)
	}
	if found, err := f.store.IsReturnPathDomain(ctx, rpd); err != nil || !found {
		t.Fatalf("after this process set it: %v %v", found, err)
	}
	empty := ""
	if _, err := f.store.SetInboundSettings(ctx, f.tenant.ID, &empty, nil); err != nil {
		t.Fatal(err)
	}
	if found, err := f.store.IsReturnPathDomain(ctx, rpd); err != nil || found {
		t.Fatalf("after this process cleared it: %v %v", found, err)
	}
	if found, err := f.store.IsReturnPathDomain(ctx, string(make([]byte, 300))); err != nil || found {
		t.Fatalf("an over-long name: %v %v", found, err)
	}
}
