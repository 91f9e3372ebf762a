package postgres_test

import (
	"context"
	"sync"
	"testing"
	"time"

	"github.com/mailgate/mailgate/db/dbtest"
	"github.com/mailgate/mailgate/domain"
)

func registerWebhooks(t *testing.T, f fixture, n int) {
	t.Helper()
	for range n {
		if _, err := f.store.CreateWebhook(context.Background(), f.tenant.ID,
			domain.Webhook{URL: "https://hooks.example/x", Secrets: [][]byte{[]byte("s")}}, 0); err != nil {
			t.Fatal(err)
		}
	}
}

// A tenant's fan-out takes consecutive places in the webhook queue, and
// another tenant's job queued after it is placed at the front, in River's
// fetch order, not behind it. Every job is available at once.
func TestWebhookJobsAreFairQueued(t *testing.T) {
	t.Parallel()
	a, b := newFixture(t, fixtureOpts{}), newFixture(t, fixtureOpts{})
	registerWebhooks(t, a, 5)
	registerWebhooks(t, b, 1)
	a.compose(t, true) // created and queued: 10 jobs
	a.compose(t, true)
	b.compose(t, true)

	rows, err := dbtest.OwnerPool(t).Query(context.Background(), `
		SELECT args->>'subscription_id', state::text, scheduled_at FROM river_job
		WHERE kind = 'deliver_webhook' AND args->>'subscription_id' IN ($1::text, $2::text)
		ORDER BY priority, scheduled_at, id`, a.tenant.ID, b.tenant.ID)
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	var (
		order      []string
		lastA      time.Time
		firstBSeen = -1
	)
	for rows.Next() {
		var (
			tenant, state string
			at            time.Time
		)
		if err := rows.Scan(&tenant, &state, &at); err != nil {
			t.Fatal(err)
		}
		if state != "available" || at.Year() > 2014 {
			t.Fatalf("job of %s is %s at %s, want available at a virtual time in the past", tenant, state, at)
		}
		if tenant == a.tenant.ID.String() {
			if !at.After(lastA) {
				t.Fatalf("A's tags don't increase: %s after %s", at, lastA)
			}
			lastA = at
		} else if firstBSeen < 0 {
			firstBSeen = len(order)
		}
		order = append(order, tenant)
	}
	if err := rows.Err(); err != nil {
		t.Fatal(err)
	}
	if len(order) != 22 {
		t.Fatalf("%d webhook jobs, want 20 of A and 2 of B", len(order))
	}
	// The served time is A's oldest waiting tag, so B comes right after it.
	if firstBSeen < 0 || firstBSeen > 2 {
		t.Fatalf("B's first job is fetched after %d of A's 20", firstBSeen)
	}
}

// The cap holds under concurrent registrations.
func TestCreateWebhookCap(t *testing.T) {
	t.Parallel()
	f := newFixture(t, fixtureOpts{})
	const limit, tries = 4, 10
	var (
		wg      sync.WaitGroup
		mu      sync.Mutex
		created int
		refused int
	)
	for range tries {
		wg.Go(func() {
			_, err := f.store.CreateWebhook(context.Background(), f.tenant.ID,
				domain.Webhook{URL: "https://hooks.example/x", Secrets: [][]byte{[]byte("s")}}, limit)
			mu.Lock()
			defer mu.Unlock()
			switch domain.ErrorCodeOf(err) {
			case "":
				created++
			case domain.CodeLimitExceeded:
				refused++
			default:
				t.Errorf("create: %v", err)
			}
		})
	}
	wg.Wait()
	if created != limit || refused != tries-limit {
		t.Fatalf("%d created and %d refused, want %d and %d", created, refused, limit, tries-limit)
	}
	hooks, err := f.store.ListWebhooks(context.Background(), f.tenant.ID)
	if err != nil || len(hooks) != limit {
		t.Fatalf("%d endpoints stored (%v), want %d", len(hooks), err, limit)
	}
}
