package postgres

import (
	"context"
	"fmt"
	"strings"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"

	"github.com/mailgate/mailgate/domain"
)

// Tenant and Account are the domain's; the aliases keep the adapter's
// signatures short.
type (
	Tenant  = domain.Tenant
	Account = domain.Account
)

// CreateTenant creates a subscription whose sender domains are verified by the
// operator who runs this.
func (s *Store) CreateTenant(ctx context.Context, name string, domains []string) (Tenant, error) {
	t := Tenant{ID: uuid.New(), Name: name, Status: "active"}
	if name == "" {
		return t, domain.FieldError("name", "is required")
	}
	for _, d := range domains {
		normalized, err := domain.NormalizeDomain("sender_domain", d)
		if err != nil {
			return t, err
		}
		t.SenderDomains = append(t.SenderDomains, normalized)
	}
	err := s.inTx(ctx, operatorScope, func(tx pgx.Tx) error {
		if err := tx.QueryRow(ctx, `INSERT INTO subscriptions (id, name) VALUES ($1, $2) RETURNING created_at`, t.ID, name).Scan(&t.CreatedAt); err != nil {
			return fmt.Errorf("insert subscription: %w", err)
		}
		_, err := tx.Exec(ctx, `
			INSERT INTO sender_domains (subscription_id, domain, verified_at)
			SELECT $1, d, now() FROM unnest($2::text[]) AS d
			ON CONFLICT DO NOTHING`, t.ID, t.SenderDomains)
		if err != nil {
			return fmt.Errorf("insert sender domains: %w", err)
		}
		return nil
	})
	return t, err
}

// FindTenantByName returns the first tenant with that name, or ErrNotFound.
func (s *Store) FindTenantByName(ctx context.Context, name string) (Tenant, error) {
	var t Tenant
	b := newBatch(operatorScope)
	b.Queue(`
		SELECT s.id, s.name, s.status, s.created_at, s.delivery_weight, s.max_send_rate,
		       coalesce(array_agg(d.domain ORDER BY d.domain) FILTER (WHERE d.domain IS NOT NULL), '{}')
		FROM subscriptions s LEFT JOIN sender_domains d ON d.subscription_id = s.id
		WHERE s.name = $1
		GROUP BY s.id ORDER BY s.created_at LIMIT 1`, name).
		QueryRow(func(row pgx.Row) error {
			return row.Scan(&t.ID, &t.Name, &t.Status, &t.CreatedAt, &t.SenderDomains)
		})
	if err := s.read(ctx, b); err != nil {
		return t, interpretError(err, "find tenant")
	}
	return t, nil
}

// CreateAccount adds an account to a tenant. The address must be on one of
// the tenant's verified domains, so an account can't become a spoofing path.
func (s *Store) CreateAccount(ctx context.Context, tenant uuid.UUID, email, displayName string) (Account, error) {
	a := Account{ID: uuid.New(), SubscriptionID: tenant, DisplayName: displayName}
	normalized, err := domain.NormalizeAddress("email", email)
	if err != nil {
		return a, err
	}
	if err := domain.CheckHeaderText("display_name", displayName, domain.MaxDisplayNameLength); err != nil {
		return a, err
	}
	a.Email = normalized
	err = s.inTx(ctx, tenantScope(tenant), func(tx pgx.Tx) error {
		var verified bool
		err := tx.QueryRow(ctx, `
			SELECT EXISTS (SELECT 1 FROM sender_domains
			               WHERE subscription_id = $1 AND domain = $2 AND verified_at IS NOT NULL)`,
			tenant, domain.DomainOf(normalized)).Scan(&verified)
		if err != nil {
			return fmt.Errorf("check domain: %w", err)
		}
		if !verified {
			return &domain.Error{Code: domain.CodeForbidden, Field: "email", Message: "the address is not on a verified domain of this subscription"}
		}
		err = tx.QueryRow(ctx, `
			INSERT INTO accounts (subscription_id, id, email, display_name) VALUES ($1, $2, $3, $4)
			RETURNING created_at`, tenant, a.ID, a.Email, displayName).Scan(&a.CreatedAt)
		return interpretError(err, "insert account",
			onUnique(&domain.Error{Code: domain.CodeConflict, Field: "email", Message: "an account with this address exists"}),
			onForeignKey(domain.ErrNotFound))
	})
	return a, err
}

// FindAccountByEmail returns a tenant's account by address, or ErrNotFound.
func (s *Store) FindAccountByEmail(ctx context.Context, tenant uuid.UUID, email string) (Account, error) {
	a := Account{SubscriptionID: tenant}
	b := newBatch(tenantScope(tenant))
	b.Queue(`
		SELECT id, email, display_name, created_at FROM accounts
		WHERE subscription_id = $1 AND email_key = lower($2)`, tenant, email).
		QueryRow(func(row pgx.Row) error { return row.Scan(&a.ID, &a.Email, &a.DisplayName, &a.CreatedAt) })
	if err := s.read(ctx, b); err != nil {
		return a, interpretError(err, "find account")
	}
	return a, nil
}

// ResolveSender implements domain.MessageStore: the sender must be an account
// of the tenant or an address on one of its verified domains. An account is
// authorised through its domain, so removing the domain stops its accounts
// from sending too.
func (s *Store) ResolveSender(ctx context.Context, tenant uuid.UUID, email string, accountID uuid.UUID) (domain.AccountAddress, error) {
	b := newBatch(tenantScope(tenant))
	res := queueResolveSenders(b, tenant, []senderClaim{{email: email, accountID: accountID}})
	if err := s.read(ctx, b); err != nil {
		return domain.AccountAddress{}, fmt.Errorf("resolve sender: %w", err)
	}
	return res.sender(0)
}

// senderClaim is a sender as a request names it: an address, an account, or both.
type senderClaim struct {
	email     string
	accountID uuid.UUID
}

// senderRow is what the database knows about one claim.
type senderRow struct {
	accID          *uuid.UUID
	accEmail       *string
	accName        *string
	domainVerified bool
	tenantStatus   *string
}

// senderResults are a batch's answers to claims, in the claims' order.
type senderResults struct {
	claims []senderClaim
	rows   []senderRow
}

// queueResolveSenders queues one statement that looks up every claim of a
// tenant (its account by id or by address, and whether the domain checked
// is verified) on b; the results are read once the batch has run. The
// domain checked is the account's when one matches, else the given
// address's; both are lowered as sender_domains stores them.
func queueResolveSenders(b *pgx.Batch, tenant uuid.UUID, claims []senderClaim) *senderResults {
	res := &senderResults{claims: claims, rows: make([]senderRow, len(claims))}
	if len(claims) == 0 {
		return res
	}
	emails := make([]string, len(claims))
	accounts := make([]*uuid.UUID, len(claims))
	for i, c := range claims {
		emails[i], accounts[i] = c.email, nullUUID(c.accountID)
	}
	// Each branch of the lateral join probes one index: the primary key
	// for a claim by account, the address index for a claim by address.
	// Under row-level security a comparison that passes a column of the
	// same query level to a function not marked leakproof (lower) runs
	// after the policy and can't be an index condition, so the claims'
	// addresses and domains are folded behind fences (subqueries with
	// OFFSET 0, never flattened) and compared as plain columns:
	// TestAddressLookupsUseTheirIndexes. The domain is a lateral join, not
	// EXISTS, since the planner may hash an EXISTS subquery, reading every
	// domain of the tenant to probe a few claims. A domain is the key of
	// sender_domains, so the join adds no rows.
	b.Queue(`
		SELECT c.ord, a.id, a.email, a.display_name, dv.verified IS NOT NULL,
		       (SELECT status FROM subscriptions WHERE id = $1)
		FROM (
			SELECT u.email, lower(u.email) AS email_key, u.account, u.ord
			FROM unnest($2::text[], $3::uuid[]) WITH ORDINALITY AS u(email, account, ord)
			OFFSET 0
		) c
		LEFT JOIN LATERAL (
			SELECT a.id, a.email, a.display_name FROM accounts a
			WHERE a.subscription_id = $1 AND c.account IS NOT NULL AND a.id = c.account
			UNION ALL
			SELECT a.id, a.email, a.display_name FROM accounts a
			WHERE a.subscription_id = $1 AND c.account IS NULL AND a.email_key = c.email_key
		) a ON true
		CROSS JOIN LATERAL (SELECT lower(substring(coalesce(a.email, c.email) from '@([^@]*)$')) AS domain OFFSET 0) sender
		LEFT JOIN LATERAL (
			SELECT true AS verified FROM sender_domains d
			WHERE d.subscription_id = $1 AND d.verified_at IS NOT NULL AND d.domain = sender.domain
		) dv ON true
		ORDER BY c.ord`,
		tenant, emails, accounts).
		Query(func(rows pgx.Rows) error {
			for rows.Next() {
				var (
					ord int64
					r   senderRow
				)
				if err := rows.Scan(&ord, &r.accID, &r.accEmail, &r.accName, &r.domainVerified, &r.tenantStatus); err != nil {
					return err
				}
				res.rows[ord-1] = r
			}
			return rows.Err()
		})
	return res
}

// sender decides claim i: the identity the tenant may send as, or a
// forbidden Error saying why not.
func (res *senderResults) sender(i int) (domain.AccountAddress, error) {
	c, r := res.claims[i], res.rows[i]
	if r.tenantStatus == nil || *r.tenantStatus != "active" {
		return domain.AccountAddress{}, &domain.Error{Code: domain.CodeForbidden, Message: "the subscription is not active"}
	}
	if c.accountID != uuid.Nil {
		if r.accID == nil {
			return domain.AccountAddress{}, &domain.Error{Code: domain.CodeForbidden, Field: "sender_account_id", Message: "is not an account of this subscription"}
		}
		if c.email != "" && !strings.EqualFold(c.email, *r.accEmail) {
			return domain.AccountAddress{}, &domain.Error{Code: domain.CodeForbidden, Field: "sender_email", Message: "does not match the address of sender_account_id"}
		}
	}
	if r.accID != nil {
		if !r.domainVerified {
			field := "sender_email"
			if c.accountID != uuid.Nil {
				field = "sender_account_id"
			}
			return domain.AccountAddress{}, &domain.Error{Code: domain.CodeForbidden, Field: field,
				Message: "is an account on " + domain.DomainOf(*r.accEmail) + ", which is no longer a verified domain of this subscription"}
		}
		return domain.AccountAddress{AccountID: *r.accID, Email: *r.accEmail, DisplayName: *r.accName}, nil
	}
	if !r.domainVerified {
		return domain.AccountAddress{}, &domain.Error{Code: domain.CodeForbidden, Field: "sender_email", Message: "is not an account or an address on a verified domain of this subscription"}
	}
	return domain.AccountAddress{Email: c.email}, nil
}

const tenantSelect = `
	SELECT s.id, s.name, s.status, s.created_at, s.delivery_weight, s.max_send_rate,
	       coalesce((SELECT array_agg(d.domain ORDER BY d.domain) FROM sender_domains d
	                 WHERE d.subscription_id = s.id AND d.verified_at IS NOT NULL), '{}'), s.sandbox
	FROM subscriptions s`

func scanTenant(row pgx.Row) (Tenant, error) {
	var (
		t            Tenant
		weight, rate float32
	)
	err := row.Scan(&t.ID, &t.Name, &t.Status, &t.CreatedAt, &weight, &rate, &t.SenderDomains, &t.Sandbox)
	t.Delivery = domain.DeliveryPolicy{Weight: float64(weight), MaxSendRate: float64(rate)}
	t.CreatedAt = t.CreatedAt.UTC()
	return t, err
}

// ListTenants returns every tenant, oldest first (operator).
func (s *Store) ListTenants(ctx context.Context) ([]Tenant, error) {
	var out []Tenant
	b := newBatch(operatorScope)
	b.Queue(tenantSelect + ` ORDER BY s.created_at, s.id`).Query(func(rows pgx.Rows) error {
		var err error
		out, err = pgx.CollectRows(rows, func(row pgx.CollectableRow) (Tenant, error) { return scanTenant(row) })
		return err
	})
	if err := s.read(ctx, b); err != nil {
		return nil, fmt.Errorf("list tenants: %w", err)
	}
	return out, nil
}

// GetTenant returns one tenant (operator).
func (s *Store) GetTenant(ctx context.Context, id uuid.UUID) (Tenant, error) {
	var t Tenant
	b := newBatch(operatorScope)
	b.Queue(tenantSelect+` WHERE s.id = $1`, id).QueryRow(func(row pgx.Row) error {
		var err error
		t, err = scanTenant(row)
		return err
	})
	if err := s.read(ctx, b); err != nil {
		return t, interpretError(err, "get tenant")
	}
	return t, nil
}

// SetTenantStatus suspends or resumes a tenant (operator).
func (s *Store) SetTenantStatus(ctx context.Context, id uuid.UUID, status string) (Tenant, error) {
	if status != domain.TenantActive && status != domain.TenantSuspended {
		return Tenant{}, domain.FieldError("status", "must be active or suspended")
	}
	err := s.inTx(ctx, operatorScope, func(tx pgx.Tx) error {
		tag, err := tx.Exec(ctx, `UPDATE subscriptions SET status = $2 WHERE id = $1`, id, status)
		if err != nil {
			return fmt.Errorf("set tenant status: %w", err)
		}
		if tag.RowsAffected() == 0 {
			return domain.ErrNotFound
		}
		return nil
	})
	if err != nil {
		return Tenant{}, err
	}
	if status == domain.TenantActive && s.enqueuer != nil {
		// Held mail goes out now rather than at its next hold check, and
		// once more a moment later for holds decided just before this.
		if _, err := s.ReleaseHeld(ctx, id); err != nil {
			return Tenant{}, err
		}
		if err := s.inTx(ctx, tenantScope(id), func(tx pgx.Tx) error { return s.enqueuer.EnqueueReleaseHeldTx(ctx, tx, id) }); err != nil {
			return Tenant{}, fmt.Errorf("schedule the release of held deliveries: %w", err)
		}
	}
	return s.GetTenant(ctx, id)
}

// SetDeliveryPolicy sets a tenant's weight and maximum send rate (operator).
func (s *Store) SetDeliveryPolicy(ctx context.Context, id uuid.UUID, p domain.DeliveryPolicy) (Tenant, error) {
	if err := p.Validate(); err != nil {
		return Tenant{}, err
	}
	err := s.inTx(ctx, operatorScope, func(tx pgx.Tx) error {
		tag, err := tx.Exec(ctx, `UPDATE subscriptions SET delivery_weight = $2::real, max_send_rate = $3::real,
			send_tat = CASE WHEN $3::real = 0 THEN NULL ELSE send_tat END WHERE id = $1`, id, p.Weight, p.MaxSendRate)
		if err != nil {
			return fmt.Errorf("set delivery policy: %w", err)
		}
		if tag.RowsAffected() == 0 {
			return domain.ErrNotFound
		}
		return nil
	})
	if err != nil {
		return Tenant{}, err
	}
	return s.GetTenant(ctx, id)
}

// AdvanceClocks implements jobs.FairClockStore (the table is unlogged, so
// this write costs no WAL flush): it adds each tenant's
// advance to its shared fair-queuing clock, never letting a clock lag
// behind floor, and returns the clocks with the tenants' weights.
func (s *Store) AdvanceClocks(ctx context.Context, advances map[uuid.UUID]time.Duration, floor time.Time) (map[uuid.UUID]domain.TenantClock, error) {
	ids := make([]uuid.UUID, 0, len(advances))
	micros := make([]int64, 0, len(advances))
	for id, d := range advances {
		ids = append(ids, id)
		micros = append(micros, d.Microseconds())
	}
	out := make(map[uuid.UUID]domain.TenantClock, len(ids))
	b := newBatch(operatorScope)
	b.Queue(`
		WITH advanced AS (
			INSERT INTO delivery_clocks AS c (subscription_id, virtual_time)
			SELECT a.id, $3::timestamptz + make_interval(secs => a.us / 1e6)
			FROM unnest($1::uuid[], $2::bigint[]) AS a(id, us) JOIN subscriptions s ON s.id = a.id
			ON CONFLICT (subscription_id) DO UPDATE
			SET virtual_time = greatest(c.virtual_time, $3::timestamptz) + (excluded.virtual_time - $3::timestamptz)
			RETURNING c.subscription_id, c.virtual_time
		)
		SELECT a.subscription_id, a.virtual_time, s.delivery_weight
		FROM advanced a JOIN subscriptions s ON s.id = a.subscription_id`, ids, micros, floor).
		Query(func(rows pgx.Rows) error {
			for rows.Next() {
				var (
					id     uuid.UUID
					c      domain.TenantClock
					weight float32
				)
				if err := rows.Scan(&id, &c.VirtualTime, &weight); err != nil {
					return err
				}
				c.Weight = float64(weight)
				out[id] = c
			}
			return rows.Err()
		})
	if err := s.read(ctx, b); err != nil {
		return nil, fmt.Errorf("advance delivery clocks: %w", err)
	}
	return out, nil
}

// TenantStatus returns a tenant's status in its own scope; ErrNotFound when
// it does not exist.
func (s *Store) TenantStatus(ctx context.Context, tenant uuid.UUID) (string, error) {
	var status string
	b := newBatch(tenantScope(tenant))
	b.Queue(`SELECT status FROM subscriptions WHERE id = $1`, tenant).
		QueryRow(func(row pgx.Row) error { return row.Scan(&status) })
	if err := s.read(ctx, b); err != nil {
		return "", interpretError(err, "tenant status")
	}
	return status, nil
}

// AddSenderDomain verifies a sender domain for a tenant (operator).
func (s *Store) AddSenderDomain(ctx context.Context, tenant uuid.UUID, name string) (Tenant, error) {
	d, err := domain.NormalizeDomain("domain", name)
	if err != nil {
		return Tenant{}, err
	}
	err = s.inTx(ctx, operatorScope, func(tx pgx.Tx) error {
		_, err := tx.Exec(ctx, `
			INSERT INTO sender_domains (subscription_id, domain, verified_at) VALUES ($1, $2, now())
			ON CONFLICT (subscription_id, domain) DO UPDATE SET verified_at = coalesce(sender_domains.verified_at, now())`, tenant, d)
		return interpretError(err, "add sender domain", onForeignKey(domain.ErrNotFound))
	})
	if err != nil {
		return Tenant{}, err
	}
	return s.GetTenant(ctx, tenant)
}

// RemoveSenderDomain withdraws a sender domain; queued mail from it is still
// checked again when a draft is sent (operator).
func (s *Store) RemoveSenderDomain(ctx context.Context, tenant uuid.UUID, name string) (Tenant, error) {
	d, err := domain.NormalizeDomain("domain", name)
	if err != nil {
		return Tenant{}, err
	}
	err = s.inTx(ctx, operatorScope, func(tx pgx.Tx) error {
		tag, err := tx.Exec(ctx, `DELETE FROM sender_domains WHERE subscription_id = $1 AND domain = $2`, tenant, d)
		if err != nil {
			return err
		}
		if tag.RowsAffected() == 0 {
			return domain.ErrNotFound
		}
		return nil
	})
	if err != nil {
		return Tenant{}, err
	}
	return s.GetTenant(ctx, tenant)
}

// ListAccounts returns a tenant's accounts.
func (s *Store) ListAccounts(ctx context.Context, tenant uuid.UUID) ([]Account, error) {
	var out []Account
	b := newBatch(tenantScope(tenant))
	b.Queue(`SELECT id, subscription_id, email, display_name, created_at FROM accounts WHERE subscription_id = $1 ORDER BY created_at, id`, tenant).
		Query(func(rows pgx.Rows) error {
			var err error
			out, err = pgx.CollectRows(rows, func(row pgx.CollectableRow) (Account, error) {
				var a Account
				err := row.Scan(&a.ID, &a.SubscriptionID, &a.Email, &a.DisplayName, &a.CreatedAt)
				a.CreatedAt = a.CreatedAt.UTC()
				return a, err
			})
			return err
		})
	if err := s.read(ctx, b); err != nil {
		return nil, fmt.Errorf("list accounts: %w", err)
	}
	return out, nil
}

// SetDKIMKey stores (or replaces) the signing key of one of a tenant's
// verified sender domains.
func (s *Store) SetDKIMKey(ctx context.Context, tenant uuid.UUID, key domain.DKIMKey) error {
	return s.inTx(ctx, tenantScope(tenant), func(tx pgx.Tx) error {
		var verified bool
		if err := tx.QueryRow(ctx, `SELECT EXISTS (SELECT 1 FROM sender_domains WHERE subscription_id = $1 AND domain = $2 AND verified_at IS NOT NULL)`,
			tenant, key.Domain).Scan(&verified); err != nil {
			return fmt.Errorf("check domain: %w", err)
		}
		if !verified {
			return &domain.Error{Code: domain.CodeNotFound, Field: "domain", Message: "not a verified sender domain of this subscription"}
		}
		_, err := tx.Exec(ctx, `INSERT INTO dkim_keys (subscription_id, domain, selector, algorithm, private_key) VALUES ($1, $2, $3, $4, $5)
			ON CONFLICT (subscription_id, domain) DO UPDATE SET selector = EXCLUDED.selector, algorithm = EXCLUDED.algorithm,
				private_key = EXCLUDED.private_key, created_at = now()`, tenant, key.Domain, key.Selector, key.Algorithm, key.PrivateKey)
		return err
	})
}

// SetSandbox turns a tenant's sandbox mode on or off (operator).
func (s *Store) SetSandbox(ctx context.Context, tenant uuid.UUID, on bool) error {
	return s.inTx(ctx, operatorScope, func(tx pgx.Tx) error {
		tag, err := tx.Exec(ctx, `UPDATE subscriptions SET sandbox = $2 WHERE id = $1`, tenant, on)
		if err != nil {
			return err
		}
		if tag.RowsAffected() == 0 {
			return domain.ErrNotFound
		}
		return nil
	})
}
