package postgres_test

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/mailgate/mailgate/adapters/postgres"
)

// TestEventFeedOnScratchCluster runs the feed where the shared server can't
// be used: transaction ids moved to just below a power of ten, and an open
// transaction holding the snapshot horizon back (which, on the shared
// server, would stall every other test's feed).
func TestEventFeedOnScratchCluster(t *testing.T) {
	t.Parallel()
	const powerOfTen = 100_000
	// The pg_xact page boundary below 10^5; migrating takes some ids, and the
	// rest are burnt until the events are written right across 10^5.
	c := startScratchCluster(t, 3*32768)
	ctx := context.Background()
	store := postgres.New(c.Runtime, nil)
	tenant, err := store.CreateTenant(ctx, "feed", []string{"feed.example"})
	if err != nil {
		t.Fatal(err)
	}
	other, err := store.CreateTenant(ctx, "other", []string{"other.example"})
	if err != nil {
		t.Fatal(err)
	}

	burnXIDsUntil(t, c.Owner, powerOfTen-10)
	// One event per transaction, every third of another tenant, so the walk
	// crosses 10^5 in the middle and must skip rows that are not its own.
	var want []int64
	var firstXID, lastXID uint64
	for i := range 60 {
		owner := tenant.ID
		if i%3 == 2 {
			owner = other.ID
		}
		id, xid := insertEvent(t, c.Owner, owner, fmt.Sprintf("event %d", i))
		if owner == tenant.ID {
			want = append(want, id)
			if firstXID == 0 {
				firstXID = xid
			}
			lastXID = xid
		}
	}
	if firstXID >= powerOfTen || lastXID < powerOfTen {
		t.Fatalf("the events' transaction ids run %d..%d, not across %d: the test would prove nothing", firstXID, lastXID, powerOfTen)
	}

	var cursor string
	t.Run("EveryEventOnceInOrderAtEveryPageSize", func(t *testing.T) {
		for _, limit := range []int{1, 3, 10, 200} {
			got, next := walkFeed(t, store, tenant.ID, "", limit, len(want)+2)
			if !slices.Equal(got, want) {
				t.Errorf("limit %d: walked %d events %v,\nwant %d %v", limit, len(got), got, len(want), want)
			}
			cursor = next
		}
	})

	t.Run("QueriesUseIndexes", func(t *testing.T) {
		plan := explainAsRuntimeRole(t, c.Runtime, `SELECT set_config('mailgate.subscription_id', '`+tenant.ID.String()+`', true)`,
			postgres.EventFeedQuery, tenant.ID, uint64(powerOfTen), int64(0), 10)
		// The cursor must bound the scan (an Index Cond), not filter a
		// scan of the tenant's whole history, and no sort may follow.
		if !strings.Contains(plan, "message_events_xact_idx") || !strings.Contains(plan, "Index Cond: ((subscription_id = ") ||
			!strings.Contains(plan, "ROW(xact_id, id) > ROW(") || strings.Contains(plan, "Sort") {
			t.Fatalf("the feed query is not served by message_events_xact_idx from the cursor on:\n%s", plan)
		}
		t.Logf("feed plan:\n%s", plan)

		plan = explainAsRuntimeRole(t, c.Runtime, `SELECT set_config('mailgate.operator', 'on', true)`, postgres.EventFeedLagQuery)
		if !strings.Contains(plan, "Index Cond: ((subscription_id = s.id) AND (xact_id >= ") || strings.Contains(plan, "Seq Scan on message_events") {
			t.Fatalf("the lag query does not probe message_events_xact_idx tenant by tenant:\n%s", plan)
		}
		t.Logf("lag plan:\n%s", plan)
	})

	t.Run("LongTransactionHoldsTheHorizon", func(t *testing.T) {
		// A slow writer takes its transaction id, then a quick one commits
		// an event after it. Serving the quick one now would move consumers'
		// cursors past the slow one's event for good.
		slow, err := c.Owner.Begin(ctx)
		if err != nil {
			t.Fatal(err)
		}
		defer slow.Rollback(ctx)
		var slowID int64
		if err := slow.QueryRow(ctx, `INSERT INTO message_events (subscription_id, type, detail) VALUES ($1, 'created', 'slow') RETURNING id`, tenant.ID).Scan(&slowID); err != nil {
			t.Fatal(err)
		}
		quickID, _ := insertEvent(t, c.Owner, tenant.ID, "quick")

		if events, next, err := store.EventFeed(ctx, tenant.ID, cursor, 10); err != nil || len(events) != 0 || next != cursor {
			t.Fatalf("with a transaction open below it, the feed served %d events (next %q, err %v), want none and the same cursor", len(events), next, err)
		}
		first := feedLag(t, store)
		if first <= 0 {
			t.Fatalf("lag %v with a committed event held back, want > 0", first)
		}
		waitFor(t, "the lag to grow while the horizon is held", func() bool { return feedLag(t, store) > first })

		if err := slow.Commit(ctx); err != nil {
			t.Fatal(err)
		}
		got, _ := walkFeed(t, store, tenant.ID, cursor, 1, 4)
		if want := []int64{slowID, quickID}; !slices.Equal(got, want) {
			t.Fatalf("after the slow writer committed the feed served %v, want %v (commit horizon order)", got, want)
		}
		if lag := feedLag(t, store); lag != 0 {
			t.Fatalf("lag %v with nothing held back, want 0", lag)
		}
	})
}

// burnXIDsUntil spends transaction ids until next is the next one assigned.
func burnXIDsUntil(t *testing.T, pool *pgxpool.Pool, next uint64) {
	t.Helper()
	ctx := context.Background()
	var current uint64
	if err := pool.QueryRow(ctx, `SELECT pg_snapshot_xmax(pg_current_snapshot())`).Scan(&current); err != nil {
		t.Fatal(err)
	}
	if current > next {
		t.Fatalf("the next transaction id is already %d, past %d: start the cluster lower", current, next)
	}
	for ; current < next; current++ {
		// Each statement is its own transaction and takes one id.
		if _, err := pool.Exec(ctx, `SELECT pg_current_xact_id()`); err != nil {
			t.Fatal(err)
		}
	}
}

// insertEvent commits one event in a transaction of its own.
func insertEvent(t *testing.T, pool *pgxpool.Pool, tenant uuid.UUID, detail string) (int64, uint64) {
	t.Helper()
	var (
		id  int64
		xid uint64
	)
	err := pool.QueryRow(context.Background(),
		`INSERT INTO message_events (subscription_id, type, detail) VALUES ($1, 'created', $2) RETURNING id, xact_id`,
		tenant, detail).Scan(&id, &xid)
	if err != nil {
		t.Fatal(err)
	}
	return id, xid
}

// walkFeed follows the feed from cursor to its end and returns the event
// ids in the order served and the last cursor; it fails the test after
// maxPages pages, which only a feed that repeats itself needs.
func walkFeed(t *testing.T, store *postgres.Store, tenant uuid.UUID, cursor string, limit, maxPages int) ([]int64, string) {
	t.Helper()
	var ids []int64
	for range maxPages + 1 {
		events, next, err := store.EventFeed(context.Background(), tenant, cursor, limit)
		if err != nil {
			t.Fatalf("limit %d, after %q: %v", limit, cursor, err)
		}
		if len(events) > limit {
			t.Fatalf("limit %d: a page of %d events", limit, len(events))
		}
		if len(events) == 0 {
			if next != cursor {
				t.Fatalf("limit %d: an empty page moved the cursor from %q to %q", limit, cursor, next)
			}
			return ids, cursor
		}
		for _, e := range events {
			if e.SubscriptionID != tenant {
				t.Fatalf("limit %d: event %d of tenant %s in %s's feed", limit, e.Sequence, e.SubscriptionID, tenant)
			}
			ids = append(ids, e.Sequence)
		}
		cursor = next
	}
	t.Fatalf("limit %d: the feed had not ended after %d pages (%d events: %v)", limit, maxPages, len(ids), ids)
	return nil, ""
}

func feedLag(t *testing.T, store *postgres.Store) time.Duration {
	t.Helper()
	lag, err := store.EventFeedLag(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	return lag
}

// waitFor polls cond until it holds, failing the test after ten seconds.
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	tick := time.NewTicker(5 * time.Millisecond)
	defer tick.Stop()
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		<-tick.C
	}
}

// explainAsRuntimeRole plans query in a transaction scoped by scope, as the
// runtime role, since row-level security decides which conditions may go
// into an index scan. Plans differ on tiny tables, so the alternatives to an
// index scan in order are forbidden: the plan says whether an index can
// serve the query at all.
func explainAsRuntimeRole(t *testing.T, pool *pgxpool.Pool, scope, query string, args ...any) string {
	t.Helper()
	ctx := context.Background()
	tx, err := pool.Begin(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer tx.Rollback(ctx)
	if _, err := tx.Exec(ctx, scope+`; SET LOCAL enable_seqscan = off; SET LOCAL enable_bitmapscan = off; SET LOCAL enable_sort = off`); err != nil {
		t.Fatal(err)
	}
	rows, err := tx.Query(ctx, "EXPLAIN "+query, args...)
	if err != nil {
		t.Fatal(err)
	}
	lines, err := pgx.CollectRows(rows, pgx.RowTo[string])
	if err != nil {
		t.Fatal(err)
	}
	var plan string
	for _, l := range lines {
		plan += l + "\n"
	}
	return plan
}
