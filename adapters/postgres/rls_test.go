package postgres_test

import (
	"context"
	"fmt"
	"strings"
	"sync"
	"testing"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/mailgate/mailgate/adapters/postgres"
	"github.com/mailgate/mailgate/db"
	"github.com/mailgate/mailgate/db/dbtest"
	"github.com/mailgate/mailgate/domain"
)

var tenantTables = []string{"subscriptions", "sender_domains", "accounts", "messages", "message_recipients", "suppressions", "webhooks", "idempotency_keys",
	"message_events", "attachments", "message_attachments", "mailbox_entries"}

// TestRuntimeRoleCannotBypassRLS checks the premise of everything below: the
// pool the gateway uses is neither superuser, nor BYPASSRLS, nor table owner.
func TestRuntimeRoleCannotBypassRLS(t *testing.T) {
	t.Parallel()
	var user string
	var super, bypass bool
	err := dbtest.Pool(t).QueryRow(context.Background(),
		`SELECT current_user, rolsuper, rolbypassrls FROM pg_roles WHERE rolname = current_user`).Scan(&user, &super, &bypass)
	if err != nil {
		t.Fatal(err)
	}
	if user != db.DefaultRuntimeRole || super || bypass {
		t.Fatalf("tests run as %s (superuser %v, bypassrls %v); row-level security would not be exercised", user, super, bypass)
	}
	for _, table := range tenantTables {
		var owner string
		var enabled, forced bool
		err := dbtest.Pool(t).QueryRow(context.Background(), `
			SELECT pg_get_userbyid(c.relowner), c.relrowsecurity, c.relforcerowsecurity
			FROM pg_class c WHERE c.oid = $1::regclass`, table).Scan(&owner, &enabled, &forced)
		if err != nil {
			t.Fatal(err)
		}
		if owner == user || !enabled || !forced {
			t.Errorf("%s: owner %s, rls %v, forced %v", table, owner, enabled, forced)
		}
	}
}

// TestNoTenantSeesNoRows reads every tenant table outside any tenant scope.
func TestNoTenantSeesNoRows(t *testing.T) {
	t.Parallel()
	f := newFixture(t, fixtureOpts{})
	f.compose(t, true)
	ctx := context.Background()
	for _, table := range tenantTables {
		var visible, written int
		if err := dbtest.Pool(t).QueryRow(ctx, `SELECT count(*) FROM `+table).Scan(&visible); err != nil {
			t.Fatal(err)
		}
		if err := dbtest.OwnerPool(t).QueryRow(ctx, `SELECT count(*) FROM `+table).Scan(&written); err != nil {
			t.Fatal(err)
		}
		if visible != 0 {
			t.Errorf("%s: %d rows visible with no tenant set", table, visible)
		}
		filled := map[string]bool{"subscriptions": true, "sender_domains": true, "accounts": true, "messages": true, "message_recipients": true, "message_events": true}
		if written == 0 && filled[table] {
			t.Errorf("%s: the fixture wrote nothing, so the check proves nothing", table)
		}
	}
	// Writing without a tenant is refused, not silently scoped.
	_, err := dbtest.Pool(t).Exec(ctx, `INSERT INTO sender_domains (subscription_id, domain) VALUES ($1, 'sneaky.example')`, f.tenant.ID)
	if err == nil {
		t.Fatal("an insert with no tenant set was accepted")
	}
}

// TestTenantScopeHidesOtherTenants queries without a subscription_id filter
// inside tenant A's scope: the database itself hides tenant B.
func TestTenantScopeHidesOtherTenants(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	a, b := newFixture(t, fixtureOpts{}), newFixture(t, fixtureOpts{})
	a.compose(t, false)
	b.compose(t, false)
	tx, err := dbtest.Pool(t).Begin(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer tx.Rollback(ctx)
	if _, err := tx.Exec(ctx, `SELECT set_config('mailgate.subscription_id', $1, true)`, a.tenant.ID.String()); err != nil {
		t.Fatal(err)
	}
	rows, err := tx.Query(ctx, `SELECT DISTINCT subscription_id FROM messages`)
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	for rows.Next() {
		var id uuid.UUID
		_ = rows.Scan(&id)
		if id != a.tenant.ID {
			t.Fatalf("tenant A's scope shows tenant %s", id)
		}
	}
	tag, err := tx.Exec(ctx, `UPDATE messages SET subject = 'x' WHERE subscription_id = $1`, b.tenant.ID)
	if err != nil || tag.RowsAffected() != 0 {
		t.Fatalf("tenant A's scope updated %d of tenant B's rows (%v)", tag.RowsAffected(), err)
	}
	if _, err := tx.Exec(ctx, `INSERT INTO sender_domains (subscription_id, domain) VALUES ($1, 'steal.example')`, b.tenant.ID); err == nil {
		t.Fatal("tenant A's scope inserted a row for tenant B")
	}
}

// TestAlternatingTenantsOnTwoConnections sends 2,000 reads alternating between
// two tenants through a pool of two connections: a tenant setting left on a
// pooled connection would show up as a foreign row.
func TestAlternatingTenantsOnTwoConnections(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	cfg, err := pgxpool.ParseConfig(dbtest.URL(t))
	if err != nil {
		t.Fatal(err)
	}
	cfg.MaxConns = 2
	if err := db.UseRuntimeRole(cfg, db.DefaultRuntimeRole); err != nil {
		t.Fatal(err)
	}
	pool, err := pgxpool.NewWithConfig(ctx, cfg)
	if err != nil {
		t.Fatal(err)
	}
	defer pool.Close()
	store := postgres.New(pool, nil)
	fixtures := []fixture{newFixture(t, fixtureOpts{}), newFixture(t, fixtureOpts{})}
	ids := make([]uuid.UUID, 2)
	for i, f := range fixtures {
		ids[i] = f.compose(t, false).ID
	}

	const requests, workers = 2000, 8
	errs := make(chan error, requests)
	var wg sync.WaitGroup
	for w := range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := w; i < requests; i += workers {
				mine, theirs := i%2, 1-i%2
				tenant := fixtures[mine].tenant.ID
				if i%4 < 2 {
					page, err := store.ListMessages(ctx, tenant, domain.MessageFilter{Limit: 10})
					if err != nil {
						errs <- err
						continue
					}
					for _, m := range page.Messages {
						if m.SubscriptionID != tenant {
							errs <- fmt.Errorf("request %d for tenant %d listed a foreign message", i, mine)
						}
					}
					continue
				}
				if _, err := store.GetMessage(ctx, tenant, ids[theirs]); err == nil {
					errs <- fmt.Errorf("request %d for tenant %d read the other tenant's message", i, mine)
				}
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
}

// TestPoliciesReadTheScopeOncePerStatement checks every table under
// row-level security: it has the tenant_isolation policy, and the policy
// reads the scope's settings through init plans (once per statement), not
// per row (migration 00014). A table added later with the bare form fails
// here.
func TestPoliciesReadTheScopeOncePerStatement(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	rows, err := dbtest.OwnerPool(t).Query(ctx, `
		SELECT c.relname, coalesce(p.qual, ''), coalesce(p.with_check, '')
		FROM pg_class c
		LEFT JOIN pg_policies p ON p.schemaname = current_schema() AND p.tablename = c.relname AND p.policyname = 'tenant_isolation'
		WHERE c.relnamespace = current_schema()::regnamespace AND c.relkind = 'r' AND c.relrowsecurity
		ORDER BY c.relname`)
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	checked := 0
	for rows.Next() {
		var table, using, check string
		if err := rows.Scan(&table, &using, &check); err != nil {
			t.Fatal(err)
		}
		checked++
		if using == "" || check == "" {
			t.Errorf("%s: row-level security without a tenant_isolation policy (USING %q, WITH CHECK %q)", table, using, check)
			continue
		}
		for _, expr := range []string{using, check} {
			bare := strings.NewReplacer("SELECT mailgate_tenant()", "", "SELECT mailgate_operator()", "").Replace(expr)
			if strings.Contains(bare, "mailgate_tenant()") || strings.Contains(bare, "mailgate_operator()") {
				t.Errorf("%s: the policy calls a scope function per row: %s", table, expr)
			}
		}
	}
	if err := rows.Err(); err != nil {
		t.Fatal(err)
	}
	if checked < len(tenantTables) {
		t.Fatalf("checked %d tables under row-level security, want at least the %d tenant tables", checked, len(tenantTables))
	}
}
