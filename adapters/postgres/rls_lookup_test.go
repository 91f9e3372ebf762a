package postgres_test

import (
	"context"
	"encoding/json"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"

	"github.com/mailgate/mailgate/adapters/postgres"
	"github.com/mailgate/mailgate/db/dbtest"
	"github.com/mailgate/mailgate/domain"
	"github.com/mailgate/mailgate/jobs"
)

// batchRecorder keeps every batch a pool sends, so the test can look at
// the plans of the statements the store really runs.
type batchRecorder struct {
	mu      sync.Mutex
	batches [][]*pgx.QueuedQuery
}

func (r *batchRecorder) TraceQueryStart(ctx context.Context, _ *pgx.Conn, _ pgx.TraceQueryStartData) context.Context {
	return ctx
}

func (r *batchRecorder) TraceQueryEnd(context.Context, *pgx.Conn, pgx.TraceQueryEndData) {}

func (r *batchRecorder) TraceBatchStart(ctx context.Context, _ *pgx.Conn, data pgx.TraceBatchStartData) context.Context {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.batches = append(r.batches, append([]*pgx.QueuedQuery(nil), data.Batch.QueuedQueries...))
	return ctx
}

func (r *batchRecorder) TraceBatchQuery(context.Context, *pgx.Conn, pgx.TraceBatchQueryData) {}

func (r *batchRecorder) TraceBatchEnd(context.Context, *pgx.Conn, pgx.TraceBatchEndData) {}

// lookupTables are the tables a tenant may fill with many rows and the
// gateway looks up one row of by a folded address or domain.
var lookupTables = map[string]bool{"accounts": true, "suppressions": true, "sender_domains": true, "dkim_keys": true}

// TestAddressLookupsUseTheirIndexes: under row-level security PostgreSQL
// applies a comparison that passes a column to a function not marked
// leakproof (lower(email)) only after the policy, so it can't be an index
// condition, and a lookup written so reads every row the tenant has. With
// thousands of accounts, suppressions and sender domains, every read the
// sender check, the account lookup, the delivery read and a retry run must
// find its row through an index, as the runtime role, the way the store
// sends it.
func TestAddressLookupsUseTheirIndexes(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	rec := &batchRecorder{}
	pool := dbtest.TracedPool(t, rec)
	client, err := jobs.NewInsertClient(pool, jobs.Config{})
	if err != nil {
		t.Fatal(err)
	}
	store := postgres.New(pool, jobs.NewEnqueuer(client, nil))
	dom := "t" + strings.ReplaceAll(uuid.NewString()[:8], "-", "") + ".example"
	tenant, err := store.CreateTenant(ctx, "tenant "+t.Name(), []string{dom})
	if err != nil {
		t.Fatal(err)
	}
	const many = 3000
	owner := dbtest.OwnerPool(t)
	for _, fill := range []struct {
		sql  string
		args []any
	}{
		{`INSERT INTO accounts (subscription_id, id, email) SELECT $1, gen_random_uuid(), 'User' || g || '@' || $2 FROM generate_series(1, $3::int) g`, []any{tenant.ID, dom, many}},
		{`INSERT INTO suppressions (subscription_id, email, reason, source) SELECT $1, 'gone' || g || '@example.net', 'hard bounce', 'bounce' FROM generate_series(1, $2::int) g`, []any{tenant.ID, many}},
		{`INSERT INTO sender_domains (subscription_id, domain, verified_at) SELECT $1, 'd' || g || '.' || $2, now() FROM generate_series(1, $3::int) g`, []any{tenant.ID, dom, many}},
		// Keys of the other domains: the sender's own has none.
		{`INSERT INTO dkim_keys (subscription_id, domain, selector, algorithm, private_key) SELECT $1, 'd' || g || '.' || $2, 's1', 'ed25519-sha256', '\x00' FROM generate_series(1, $3::int) g`, []any{tenant.ID, dom, many}},
	} {
		if _, err := owner.Exec(ctx, fill.sql, fill.args...); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := owner.Exec(ctx, `ANALYZE accounts, suppressions, sender_domains, dkim_keys`); err != nil {
		t.Fatal(err)
	}

	// What the store does with an address, each as its callers do it.
	// Addresses match whatever their case, through the folded column.
	sender, err := store.ResolveSender(ctx, tenant.ID, "USER17@"+dom, uuid.Nil)
	if err != nil || sender.Email != "User17@"+dom || sender.AccountID == uuid.Nil {
		t.Fatalf("sender by address: %+v, %v; want the account User17@%s", sender, err, dom)
	}
	account, err := store.FindAccountByEmail(ctx, tenant.ID, "user18@"+strings.ToUpper(dom))
	if err != nil || account.Email != "User18@"+dom {
		t.Fatalf("account by address: %+v, %v; want User18@%s", account, err, dom)
	}
	// Compose writes the message too.
	c := &domain.Composer{Store: store}
	msg, err := c.Compose(ctx, tenant.ID, domain.ComposeRequest{
		SenderEmail: "User19@" + dom,
		To:          []domain.RecipientInput{{EmailAddress: "Gone20@example.net"}, {EmailAddress: "ada@example.net"}},
		Subject:     "lookups",
		Body:        "hello",
		Send:        true,
	})
	if err != nil {
		t.Fatal(err)
	}
	_, dc, err := store.LoadDelivery(ctx, tenant.ID, msg.ID, false)
	if err != nil {
		t.Fatal(err)
	}
	if !dc.Suppressed["gone20@example.net"] || !dc.SenderDomainVerified {
		t.Fatalf("delivery context %+v: want the suppression found and the sender's domain verified", dc)
	}
	// The message is queued, so the retry is refused, after its read.
	_, _ = store.RetryMessage(ctx, tenant.ID, msg.ID, domain.RetryFilter{})

	// Sender check, account lookup, delivery context and recipients, the retry's suppressions.
	if explained := requireIndexedReads(t, rec, lookupTables, func(string) bool { return true }); explained < 5 {
		t.Fatalf("explained %d reads of the lookup tables, want at least 5: the recording missed the store's statements", explained)
	}
}

// TestStallSearchFindsMessagesOfFinishedJobsByKey: the reconciler finds
// the waiting messages of cancelled and discarded delivery jobs by the keys
// in the jobs' arguments. Compared through functions not marked leakproof
// ((args->>'message_id')::uuid), row-level security keeps those keys off
// the messages' indexes, and the search reads every unsettled message of
// every tenant, on every pass. With thousands queued it must read one
// message a job.
func TestStallSearchFindsMessagesOfFinishedJobsByKey(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	rec := &batchRecorder{}
	store := postgres.New(dbtest.TracedPool(t, rec), nil)
	f := newFixture(t, fixtureOpts{})
	cancelled := f.compose(t, true)
	ownerExec(t, `UPDATE river_job SET state = 'cancelled', finalized_at = now() WHERE args->>'message_id' = $1`, cancelled.ID.String())
	ownerExec(t, `UPDATE messages SET updated_at = now() - interval '1 hour' WHERE id = $1`, cancelled.ID)
	ownerExec(t, `INSERT INTO messages (subscription_id, id, sender_email, message_id, conversation_id, state, created_date, updated_at)
		SELECT $1, g.id, 'sender@' || $2, g.id || '@' || $2, g.id, 'queued', now(), now() - interval '1 hour'
		FROM (SELECT gen_random_uuid() AS id FROM generate_series(1, 3000)) g`, f.tenant.ID, f.domain)
	ownerExec(t, `ANALYZE messages, river_job`)
	pass, err := store.FindStalled(ctx, domain.StallSearch{Grace: time.Minute, Limit: 100, FinishedSince: time.Now().Add(-time.Hour), JobKind: "deliver_message"})
	if err != nil {
		t.Fatal(err)
	}
	found := false
	for _, m := range pass.Stalled {
		found = found || m.ID == cancelled.ID
	}
	if !found {
		t.Fatalf("the message of the cancelled job is not among the %d stalled", len(pass.Stalled))
	}
	finishedJobs := func(sql string) bool { return strings.Contains(sql, "'cancelled'") }
	if explained := requireIndexedReads(t, rec, map[string]bool{"messages": true}, finishedJobs); explained != 1 {
		t.Fatalf("explained %d searches of finished jobs, want 1", explained)
	}
}

// requireIndexedReads replays every recorded read that mentions one of
// tables and passes pick under EXPLAIN ANALYZE, and fails the test for each
// scan of those tables that reads more than one row a loop. It returns how
// many reads it replayed.
func requireIndexedReads(t *testing.T, rec *batchRecorder, tables map[string]bool, pick func(sql string) bool) int {
	t.Helper()
	rec.mu.Lock()
	batches := rec.batches
	rec.mu.Unlock()
	explained := 0
	for _, batch := range batches {
		var scope []*pgx.QueuedQuery
		for _, q := range batch {
			sql := strings.TrimSpace(q.SQL)
			if strings.Contains(sql, "set_config(") {
				scope = append(scope, q)
				continue
			}
			if !strings.HasPrefix(sql, "SELECT") || !mentionsTable(sql, tables) || !pick(sql) {
				continue
			}
			explained++
			for _, scan := range explainScans(t, scope, q, tables) {
				if scan.read > 1 {
					t.Errorf("%s on %s reads %.0f rows to find one:\n%s", scan.node, scan.relation, scan.read, sql)
				}
			}
		}
	}
	return explained
}

func mentionsTable(sql string, tables map[string]bool) bool {
	for _, word := range strings.Fields(sql) {
		if tables[word] {
			return true
		}
	}
	return false
}

// planScan is one scan of a lookup table in an analysed plan. Each table
// holds thousands of the tenant's rows, so a scan that doesn't go straight
// to its row through an index shows in read.
type planScan struct {
	node, relation string
	// read is how many rows a loop of the scan read, kept or thrown away.
	read float64
}

// explainScans runs q, after the batch's scope statements, under EXPLAIN
// ANALYZE as the runtime role in a transaction rolled back afterwards, and
// returns its scans of the lookup tables.
func explainScans(t *testing.T, scope []*pgx.QueuedQuery, q *pgx.QueuedQuery, tables map[string]bool) []planScan {
	t.Helper()
	ctx := context.Background()
	tx, err := dbtest.Pool(t).Begin(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = tx.Rollback(ctx) }()
	for _, s := range scope {
		if _, err := tx.Exec(ctx, s.SQL, s.Arguments...); err != nil {
			t.Fatal(err)
		}
	}
	var plan []struct{ Plan map[string]any }
	var raw []byte
	if err := tx.QueryRow(ctx, "EXPLAIN (ANALYZE, FORMAT JSON) "+q.SQL, q.Arguments...).Scan(&raw); err != nil {
		t.Fatalf("explain %s: %v", q.SQL, err)
	}
	if err := json.Unmarshal(raw, &plan); err != nil || len(plan) != 1 {
		t.Fatalf("plan %s: %v", raw, err)
	}
	var scans []planScan
	var walk func(node map[string]any)
	walk = func(node map[string]any) {
		if rel, _ := node["Relation Name"].(string); tables[rel] {
			read := 0.0
			for _, key := range []string{"Actual Rows", "Rows Removed by Filter", "Rows Removed by Index Recheck"} {
				if n, ok := node[key].(float64); ok {
					read += n
				}
			}
			scans = append(scans, planScan{node: fmt.Sprint(node["Node Type"]), relation: rel, read: read})
		}
		children, _ := node["Plans"].([]any)
		for _, child := range children {
			if c, ok := child.(map[string]any); ok {
				walk(c)
			}
		}
	}
	walk(plan[0].Plan)
	return scans
}
