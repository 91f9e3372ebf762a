package postgres

import (
	"context"
	"fmt"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"

	"github.com/mailgate/mailgate/domain"
)

// Batched delivery reads. Every delivery starts by reading its message and
// what its delivery depends on: three statements (four when a per-tenant
// cap is on). Concurrent deliveries' reads are coalesced (like the group
// commit of their writes): a loader takes every read waiting when it is free and
// answers them all with the same statements, each over the whole set of
// (tenant, message) keys, in one round trip. The read spans tenants, so it
// runs in the operator scope; every statement matches rows by
// (subscription_id, id).

type loadRequest struct {
	tenant, id   uuid.UUID
	countSending bool
	msg          *domain.Message
	dc           domain.DeliveryContext
}

// deliveryLoader coalesces concurrent deliveries' reads. It holds no
// resource between groups (the pool is the store's), so it is never closed.
type deliveryLoader = coalescer[*loadRequest]

func newDeliveryLoader(s *Store, loaders, maxGroup int) *deliveryLoader {
	return newCoalescer("delivery read", loaders, maxGroup, loadTimeout, s.loadGroupAnswers)
}

// loadTimeout bounds one group read.
const loadTimeout = 15 * time.Second

// loadGroupAnswers reads a group and answers each request: not found when
// its message is gone.
func (s *Store) loadGroupAnswers(ctx context.Context, group []*loadRequest) []error {
	errs := make([]error, len(group))
	err := s.loadGroup(ctx, group)
	for i, r := range group {
		switch {
		case err != nil:
			errs[i] = err
		case r.msg == nil:
			errs[i] = domain.ErrNotFound
		}
	}
	return errs
}

// loadGroup reads every request's message, recipients, attachments and
// delivery context in one scoped batch.
func (s *Store) loadGroup(ctx context.Context, group []*loadRequest) error {
	subs := make([]uuid.UUID, len(group))
	ids := make([]uuid.UUID, len(group))
	byID := make(map[uuid.UUID]*loadRequest, len(group))
	var countTenants []uuid.UUID
	for i, r := range group {
		subs[i], ids[i] = r.tenant, r.id
		r.msg, r.dc = nil, domain.DeliveryContext{Suppressed: map[string]bool{}}
		byID[r.id] = r
		if r.countSending {
			countTenants = append(countTenants, r.tenant)
		}
	}
	const keys = `unnest($1::uuid[], $2::uuid[]) AS k(sub, mid)`
	b := newBatch(operatorScope)
	// Each message comes with its delivery context (tenant status, sender
	// authority, DKIM key) and each recipient with whether it is
	// suppressed, so the keys are looked up once a table. The context is
	// looked up a row at a time behind a fence (a lateral subquery with
	// OFFSET 0, which the planner can't flatten): joined plainly, the
	// planner may reach the messages through the tenant instead
	// (messages_sender_idx, every message the tenant has, filtered by id),
	// which auto_explain caught costing a third of a delivery's PostgreSQL
	// time in BenchmarkDeliveryDrain, where one tenant has them all. A
	// MATERIALIZED CTE of the rows would fence as well, but copies every
	// row (body included) once more. A sender domain has at most one DKIM
	// key (the key of dkim_keys) and an address at most one suppression, so
	// the lookups add no rows. The folded sender domain and recipient
	// address are computed behind fences too: under row-level security a
	// comparison that passes a column to a function not marked leakproof
	// (lower, split_part) can't be an index condition, and every suppression
	// of the tenant was read for each recipient (50,000 rows, 138 ms, for one
	// lookup; TestAddressLookupsUseTheirIndexes).
	b.Queue(`
		SELECT `+prefixed("m.", messageColumns)+`,
		       c.status, c.sandbox, c.max_send_rate, c.return_path_domain, c.reply_routing, c.domain_verified, c.account_exists,
		       c.key_domain, c.selector, c.algorithm, c.private_key
		FROM `+keys+` JOIN messages m ON m.subscription_id = k.sub AND m.id = k.mid
		CROSS JOIN LATERAL (
			SELECT s.status, s.sandbox, s.max_send_rate, coalesce(s.return_path_domain, '') AS return_path_domain, s.reply_routing,
			       EXISTS (SELECT 1 FROM sender_domains d WHERE d.subscription_id = s.id
			               AND d.domain = sender.domain AND d.verified_at IS NOT NULL) AS domain_verified,
			       m.sender_account_id IS NULL OR EXISTS (SELECT 1 FROM accounts a WHERE a.subscription_id = s.id AND a.id = m.sender_account_id) AS account_exists,
			       dk.domain AS key_domain, dk.selector, dk.algorithm, dk.private_key
			FROM subscriptions s
			CROSS JOIN (SELECT lower(split_part(m.sender_email, '@', 2)) AS domain OFFSET 0) sender
			LEFT JOIN dkim_keys dk ON dk.subscription_id = s.id AND dk.domain = sender.domain
			WHERE s.id = m.subscription_id
			OFFSET 0 -- the fence: looked up a message at a time, never flattened into a join
		) c`, subs, ids).
		Query(func(rows pgx.Rows) error {
			for rows.Next() {
				var (
					dc                             domain.DeliveryContext
					rate                           float32
					keyDomain, selector, algorithm *string
					privateKey                     []byte
				)
				m, err := scanMessage(withColumns{rows, []any{&dc.TenantStatus, &dc.Sandbox, &rate, &dc.ReturnPathDomain, &dc.ReplyRouting,
					&dc.SenderDomainVerified, &dc.SenderAccountExists, &keyDomain, &selector, &algorithm, &privateKey}})
				if err != nil {
					return err
				}
				r := byID[m.ID]
				if r == nil || r.tenant != m.SubscriptionID {
					continue
				}
				if keyDomain != nil {
					dc.DKIM = &domain.DKIMKey{Domain: *keyDomain, Selector: *selector, Algorithm: *algorithm, PrivateKey: privateKey}
				}
				dc.MaxSendRate, dc.Suppressed = float64(rate), r.dc.Suppressed
				r.msg, r.dc = m, dc
			}
			return rows.Err()
		})
	b.Queue(`
		SELECT r.message_id, r.kind, r.position, r.display_name, r.email, r.account_id, r.status, r.attempts, r.last_code, r.last_reply,
		       r.possible_duplicate, r.in_flight_since, r.updated_at, sup.email
		FROM `+keys+` JOIN message_recipients r ON r.subscription_id = k.sub AND r.message_id = k.mid
		CROSS JOIN LATERAL (SELECT lower(r.email) AS email OFFSET 0) addr
		LEFT JOIN LATERAL (
			SELECT s.email FROM suppressions s WHERE s.subscription_id = r.subscription_id AND s.email = addr.email
			OFFSET 0 -- the fence, as above
		) sup ON true
		ORDER BY r.message_id, r.position`, subs, ids).
		Query(func(rows pgx.Rows) error {
			for rows.Next() {
				var (
					mid uuid.UUID
					// suppressed is the suppression's address, as the
					// outcome's lookup expects it (lower-cased by PostgreSQL).
					suppressed *string
				)
				rc, err := scanRecipient(withColumns{rows, []any{&suppressed}}, &mid)
				if err != nil {
					return err
				}
				r := byID[mid]
				if r == nil || r.msg == nil {
					continue
				}
				r.msg.Recipients = append(r.msg.Recipients, rc)
				if suppressed != nil {
					r.dc.Suppressed[*suppressed] = true
				}
			}
			return rows.Err()
		})
	b.Queue(`SELECT a.message_id, a.attachment_id FROM `+keys+` JOIN message_attachments a ON a.subscription_id = k.sub AND a.message_id = k.mid
		ORDER BY a.message_id, a.position`, subs, ids).
		Query(func(rows pgx.Rows) error {
			for rows.Next() {
				var mid, att uuid.UUID
				if err := rows.Scan(&mid, &att); err != nil {
					return err
				}
				if r := byID[mid]; r != nil && r.msg != nil {
					r.msg.Attachments = append(r.msg.Attachments, att)
				}
			}
			return rows.Err()
		})
	if len(countTenants) > 0 {
		b.Queue(`SELECT subscription_id, count(*) FROM messages WHERE subscription_id = ANY($1) AND state = 'sending' GROUP BY subscription_id`, countTenants).
			Query(func(rows pgx.Rows) error {
				counts := map[uuid.UUID]int{}
				for rows.Next() {
					var (
						sub uuid.UUID
						n   int
					)
					if err := rows.Scan(&sub, &n); err != nil {
						return err
					}
					counts[sub] = n
				}
				for _, r := range group {
					if r.countSending {
						r.dc.Sending = counts[r.tenant]
					}
				}
				return rows.Err()
			})
	}
	if err := s.read(ctx, b); err != nil {
		return fmt.Errorf("load deliveries: %w", err)
	}
	return nil
}

// withColumns is a row whose Scan fills the caller's destinations and then
// extra ones, so a row scanner (scanMessage, scanRecipient) serves a query
// that selects more columns after its own.
type withColumns struct {
	row   pgx.Row
	extra []any
}

func (w withColumns) Scan(dest ...any) error { return w.row.Scan(append(dest, w.extra...)...) }
