package postgres

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"

	"github.com/mailgate/mailgate/domain"
)

// The accept path writes new messages in bulk: however many messages a
// transaction holds (a batch request, or concurrent requests coalesced by
// the accept committer), each tenant among them costs one statement per
// table, and the transaction as a whole costs three or four round trips —
// BEGIN with the sender and idempotency checks, River's job insert (and its
// notification), the writes with COMMIT — and one WAL flush.
//
// A transaction may hold several tenants. It is opened with no tenant at
// all, and each tenant's statements run behind its own
// set_config('mailgate.subscription_id', ...), so row-level security checks
// every row against the tenant it claims to belong to, exactly as in a
// transaction of that tenant alone. The operator scope is never used here.

// acceptRequest is one caller's create: a single message, or a batch
// request's messages, and the Idempotency-Key the request carries.
type acceptRequest struct {
	tenant uuid.UUID
	key    string
	claim  domain.IdempotencyClaim
	msgs   []*domain.Message
	// refused[i] is why msgs[i] was not written: its sender was refused.
	refused []error
	// err fails the whole request: nothing of it is written.
	err error
}

func newAcceptRequest(ctx context.Context, tenant uuid.UUID, msgs []*domain.Message) *acceptRequest {
	key, claim, _ := domain.IdempotencyKeyFrom(ctx)
	return &acceptRequest{tenant: tenant, key: key, claim: claim, msgs: msgs, refused: make([]error, len(msgs))}
}

// reset forgets the outcome of a rolled-back attempt before the request is written again.
func (r *acceptRequest) reset() {
	r.err = nil
	clear(r.refused)
}

// outcome is a single create's answer once its transaction returned err.
func (r *acceptRequest) outcome(err error) error {
	switch {
	case err != nil:
		return err
	case r.err != nil:
		return r.err
	}
	return r.refused[0]
}

// written lists the messages of r that the transaction writes.
func (r *acceptRequest) written() []*domain.Message {
	if r.err != nil {
		return nil
	}
	var out []*domain.Message
	for i, m := range r.msgs {
		if r.refused[i] == nil {
			out = append(out, m)
		}
	}
	return out
}

// tenantSegment is one tenant's share of an accept transaction.
type tenantSegment struct {
	tenant uuid.UUID
	reqs   []*acceptRequest
}

// segmentsOf groups requests by tenant, in order of first appearance.
func segmentsOf(reqs []*acceptRequest) []*tenantSegment {
	var segs []*tenantSegment
	byTenant := map[uuid.UUID]*tenantSegment{}
	for _, r := range reqs {
		seg := byTenant[r.tenant]
		if seg == nil {
			seg = &tenantSegment{tenant: r.tenant}
			byTenant[r.tenant] = seg
			segs = append(segs, seg)
		}
		seg.reqs = append(seg.reqs, r)
	}
	return segs
}

func (seg *tenantSegment) written() []*domain.Message {
	var out []*domain.Message
	for _, r := range seg.reqs {
		out = append(out, r.written()...)
	}
	return out
}

// queueTenant switches the transaction's row-level security scope to tenant
// for the statements queued after it (parameterised, so one prepared
// statement serves every tenant).
func queueTenant(b *pgx.Batch, tenant uuid.UUID) {
	b.Queue(`SELECT set_config('mailgate.subscription_id', $1::text, true)`, tenant.String())
}

// errAcceptWrite marks a failed bulk write of several requests; the
// committer then writes each request alone to find the one at fault.
var errAcceptWrite = errors.New("accept group write failed")

// writeAccepts creates the requests' messages in one transaction. A request
// whose sender is refused or whose idempotency key is spent gets its own
// error and takes nothing else down: those are checked in the transaction
// before anything is written. The returned error means nothing was written;
// with several requests a failed write wraps errAcceptWrite.
//
// Round trips: BEGIN with the checks; River's job insert (and its
// notification, when River sends one); the writes, with COMMIT when no
// tenant of the group has an active webhook. A group with webhooks adds
// the fan-out's statements and a COMMIT of its own. handoff is called once
// the writes are ready to go: what is left is writing and committing.
func (s *Store) writeAccepts(ctx context.Context, reqs []*acceptRequest, handoff func()) error {
	segs := segmentsOf(reqs)
	checks, apply := queueChecks(segs)
	tx, err := beginPipelined(ctx, s.pool, checks)
	if err != nil {
		return fmt.Errorf("check senders: %w", err)
	}
	defer tx.release(ctx)
	hooked := apply()
	jobIDs, err := s.enqueueAccepts(ctx, tx, segs)
	if err != nil {
		return err
	}
	b, hooks := queueInserts(segs, jobIDs, hooked)
	if len(hooked) == 0 {
		tx.queueCommit(b)
	}
	handoff()
	if err := tx.SendBatch(ctx, b).Close(); err != nil {
		if len(reqs) > 1 {
			return fmt.Errorf("%w: %w", errAcceptWrite, insertError(err))
		}
		return insertError(err)
	}
	if !tx.open {
		return nil
	}
	for _, seg := range segs {
		if len(hooks[seg.tenant]) == 0 {
			continue
		}
		if _, err := tx.Exec(ctx, `SELECT set_config('mailgate.subscription_id', $1::text, true)`, seg.tenant.String()); err != nil {
			return fmt.Errorf("scope webhooks: %w", err)
		}
		if err := s.flushWebhooks(ctx, tx, seg.tenant, hooks[seg.tenant]); err != nil {
			return err
		}
	}
	if err := tx.Commit(ctx); err != nil {
		return fmt.Errorf("commit: %w", err)
	}
	return nil
}

// insertError maps a failed write to what the caller is told.
func insertError(err error) error {
	return interpretError(err, "insert message",
		// Every id was checked against the tenant's own messages first, so
		// the id is another tenant's: not found, like every foreign id.
		onUnique(&domain.Error{Code: domain.CodeNotFound, Field: "id", Message: "no such message"}),
		// An attachment purged between the check and the insert.
		onForeignKey(&domain.Error{Code: domain.CodeNotFound, Field: "attachments", Message: "no such attachment"}))
}

// queueChecks queues, for the transaction's first round trip, the
// resolution of every message's sender, the lock of every request's
// idempotency key and whether each tenant has an active webhook. Senders
// are resolved as ResolveSender does, inside the write transaction, so a
// domain removed meanwhile can't slip between check and write. apply,
// called once the batch has run, records refusals on the requests and
// returns the tenants with webhooks.
func queueChecks(segs []*tenantSegment) (b *pgx.Batch, apply func() map[uuid.UUID]bool) {
	b = &pgx.Batch{}
	usable := map[*acceptRequest]bool{}
	senders := map[*tenantSegment]*senderResults{}
	hooked := map[uuid.UUID]bool{}
	for _, seg := range segs {
		queueTenant(b, seg.tenant)
		var claims []senderClaim
		byKey := map[string]*acceptRequest{}
		var keys []string
		for _, r := range seg.reqs {
			for _, m := range r.msgs {
				claims = append(claims, senderClaim{email: m.SenderEmail, accountID: m.SenderAccountID})
			}
			if r.key != "" {
				byKey[r.key] = r
				keys = append(keys, r.key)
				usable[r] = false
			}
		}
		senders[seg] = queueResolveSenders(b, seg.tenant, claims)
		b.Queue(`SELECT EXISTS (SELECT 1 FROM webhooks WHERE subscription_id = $1 AND status = 'active')`, seg.tenant).
			QueryRow(func(row pgx.Row) error {
				var active bool
				err := row.Scan(&active)
				if active {
					hooked[seg.tenant] = true
				}
				return err
			})
		if len(keys) == 0 {
			continue
		}
		// Locked until commit: a request that took the claim over after its
		// lease waits for this create, then finds the key spent. A request
		// whose claim was taken over creates nothing: the key is its
		// successor's.
		b.Queue(`SELECT key, status = 0 AND message_ids = '{}', created_at FROM idempotency_keys
			WHERE subscription_id = $1 AND key = ANY($2) ORDER BY key FOR UPDATE`, seg.tenant, keys).
			Query(func(rows pgx.Rows) error {
				for rows.Next() {
					var (
						key     string
						unused  bool
						claimed time.Time
					)
					if err := rows.Scan(&key, &unused, &claimed); err != nil {
						return err
					}
					if r := byKey[key]; r != nil {
						usable[r] = unused && claimed.Equal(r.claim.At)
					}
				}
				return rows.Err()
			})
	}
	apply = func() map[uuid.UUID]bool {
		for _, seg := range segs {
			res, k := senders[seg], 0
			for _, r := range seg.reqs {
				for i, m := range r.msgs {
					sender, err := res.sender(k)
					k++
					if err != nil {
						r.refused[i] = err
						continue
					}
					m.AdoptSender(sender)
				}
				if ok, keyed := usable[r]; keyed && !ok {
					r.err = ErrIdempotencyInProgress
				}
			}
		}
		return hooked
	}
	return b, apply
}

// enqueueAccepts inserts the delivery jobs of the queued messages through
// River's client, per tenant (each tenant's jobs take their fair-queuing
// tags), and returns the job id of each message.
func (s *Store) enqueueAccepts(ctx context.Context, tx pgx.Tx, segs []*tenantSegment) (map[*domain.Message]int64, error) {
	jobIDs := map[*domain.Message]int64{}
	for _, seg := range segs {
		var (
			queued []domain.ScheduledDelivery
			msgs   []*domain.Message
		)
		for _, m := range seg.written() {
			if m.State == domain.StateQueued {
				queued = append(queued, domain.ScheduledDelivery{MessageID: m.ID, At: m.SendAt})
				msgs = append(msgs, m)
			}
		}
		if len(queued) == 0 {
			continue
		}
		if s.enqueuer == nil {
			return nil, errors.New("enqueue delivery: this store has no job enqueuer")
		}
		ids, err := s.enqueuer.EnqueueDeliveriesTx(ctx, tx, seg.tenant, queued)
		if err != nil {
			return nil, fmt.Errorf("enqueue delivery: %w", err)
		}
		for i, m := range msgs {
			jobIDs[m] = ids[i]
		}
	}
	return jobIDs, nil
}

// queueInserts queues every tenant's messages, recipients, attachment
// references, events and idempotency records for one round trip. For a
// tenant with webhooks the events statement also finds the deliveries they
// fan out to, filled into the returned map when the batch runs; a tenant
// without one (as of the checks) writes its events alone, so the batch may
// carry the COMMIT.
func queueInserts(segs []*tenantSegment, jobIDs map[*domain.Message]int64, hooked map[uuid.UUID]bool) (*pgx.Batch, map[uuid.UUID][]domain.WebhookJob) {
	b := &pgx.Batch{}
	hooks := map[uuid.UUID][]domain.WebhookJob{}
	for _, seg := range segs {
		msgs := seg.written()
		if len(msgs) == 0 {
			continue
		}
		queueTenant(b, seg.tenant)
		queueMessageRows(b, seg.tenant, msgs, jobIDs)
		queueRecipientRows(b, seg.tenant, msgs)
		queueAttachmentRows(b, seg.tenant, msgs)
		queueCreatedEvents(b, seg.tenant, msgs, hooked[seg.tenant], hooks)
		for _, r := range seg.reqs {
			queueIdempotentCreate(b, r)
		}
	}
	return b, hooks
}

// uuidBytes is a UUID as pgx encodes it directly, whatever the pool's type
// registrations (db.RegisterTypes teaches the gateway's pools uuid.UUID;
// without it uuid.UUID goes through its text form, which was most of the
// CPU spent encoding these parameters in a profile of the accept benchmark).
type uuidBytes = [16]byte

func nullUUIDBytes(id uuid.UUID) *uuidBytes {
	if id == uuid.Nil {
		return nil
	}
	b := uuidBytes(id)
	return &b
}

func queueMessageRows(b *pgx.Batch, tenant uuid.UUID, msgs []*domain.Message, jobIDs map[*domain.Message]int64) {
	n := len(msgs)
	var (
		ids, convs            = make([]uuidBytes, n), make([]uuidBytes, n)
		accounts, parents     = make([]*uuidBytes, n), make([]*uuidBytes, n)
		emails, names         = make([]string, n), make([]string, n)
		subjects, bodies      = make([]string, n), make([]string, n)
		messageIDs, replies   = make([]string, n), make([]string, n)
		refs, states          = make([]string, n), make([]string, n)
		clientIDs, clientRefs = make([]string, n), make([]string, n)
		importance            = make([]int16, n)
		created               = make([]time.Time, n)
		sendAt                = make([]*time.Time, n)
		jobs                  = make([]*int64, n)
	)
	for i, m := range msgs {
		ids[i], convs[i], accounts[i], parents[i] = uuidBytes(m.ID), uuidBytes(m.ConversationID), nullUUIDBytes(m.SenderAccountID), nullUUIDBytes(m.ParentID)
		emails[i], names[i], subjects[i], bodies[i] = m.SenderEmail, m.SenderDisplayName, m.Subject, m.Body
		messageIDs[i], replies[i], refs[i], states[i] = m.MessageID, m.InReplyTo, m.References, string(m.State)
		importance[i], created[i], sendAt[i] = int16(m.Importance), m.CreatedDate, nullTime(m.SendAt)
		clientIDs[i], clientRefs[i] = m.ClientMessageID, m.ClientReferences
		if id, ok := jobIDs[m]; ok {
			jobs[i] = &id
		}
	}
	b.Queue(`
		INSERT INTO messages (subscription_id, id, sender_account_id, sender_email, sender_display_name,
			subject, body, importance, message_id, in_reply_to, references_header, parent_id,
			conversation_id, state, created_date, updated_at, queued_at, send_at, job_id, client_message_id, client_references)
		SELECT $1, id, acc, email, name, subject, body, imp, mid, irt, refs, parent, conv, state, created, created,
			CASE WHEN state = 'queued' THEN created END, send_at, job, client_mid, client_refs
		FROM unnest($2::uuid[], $3::uuid[], $4::text[], $5::text[], $6::text[], $7::text[], $8::int2[], $9::text[],
			$10::text[], $11::text[], $12::uuid[], $13::uuid[], $14::text[], $15::timestamptz[], $16::timestamptz[], $17::bigint[],
			$18::text[], $19::text[])
			AS m(id, acc, email, name, subject, body, imp, mid, irt, refs, parent, conv, state, created, send_at, job, client_mid, client_refs)
		RETURNING id, version`,
		tenant, ids, accounts, emails, names, subjects, bodies, importance, messageIDs, replies, refs, parents, convs, states, created, sendAt, jobs,
		clientIDs, clientRefs).
		Query(func(rows pgx.Rows) error {
			byID := make(map[uuid.UUID]*domain.Message, n)
			for _, m := range msgs {
				byID[m.ID] = m
			}
			for rows.Next() {
				var (
					id      uuid.UUID
					version int64
				)
				if err := rows.Scan(&id, &version); err != nil {
					return err
				}
				byID[id].Version = domain.Version(version)
			}
			return rows.Err()
		})
}

func queueRecipientRows(b *pgx.Batch, tenant uuid.UUID, msgs []*domain.Message) {
	var (
		messageIDs []uuidBytes
		positions  []int32
		kinds      []string
		names      []string
		emails     []string
		accounts   []*uuidBytes
		updated    []time.Time
	)
	for _, m := range msgs {
		for _, r := range m.Recipients {
			messageIDs, positions = append(messageIDs, uuidBytes(m.ID)), append(positions, int32(r.Position))
			kinds, names, emails = append(kinds, string(r.Kind)), append(names, r.DisplayName), append(emails, r.Email)
			accounts, updated = append(accounts, nullUUIDBytes(r.AccountID)), append(updated, m.UpdatedAt)
		}
	}
	if len(messageIDs) == 0 {
		return
	}
	b.Queue(`
		INSERT INTO message_recipients (subscription_id, message_id, position, kind, display_name, email, account_id, status, updated_at)
		SELECT $1, m, p, k, n, e, a, 'pending', u
		FROM unnest($2::uuid[], $3::int[], $4::text[], $5::text[], $6::text[], $7::uuid[], $8::timestamptz[]) AS r(m, p, k, n, e, a, u)`,
		tenant, messageIDs, positions, kinds, names, emails, accounts, updated)
}

func queueAttachmentRows(b *pgx.Batch, tenant uuid.UUID, msgs []*domain.Message) {
	var (
		messageIDs  []uuid.UUID
		positions   []int32
		attachments []uuid.UUID
	)
	for _, m := range msgs {
		for i, a := range m.Attachments {
			messageIDs, positions, attachments = append(messageIDs, m.ID), append(positions, int32(i)), append(attachments, a)
		}
	}
	if len(messageIDs) == 0 {
		return
	}
	b.Queue(`
		INSERT INTO message_attachments (subscription_id, message_id, position, attachment_id)
		SELECT $1, m, p, a FROM unnest($2::uuid[], $3::int[], $4::uuid[]) AS t(m, p, a)`,
		tenant, messageIDs, positions, attachments)
}

// queueCreatedEvents adds the created (and queued) events of every message
// as one statement which, when the tenant has webhooks, also finds those
// that want them, as queueEvents does for one message.
func queueCreatedEvents(b *pgx.Batch, tenant uuid.UUID, msgs []*domain.Message, hooked bool, hooks map[uuid.UUID][]domain.WebhookJob) {
	var (
		messageIDs []uuidBytes
		kinds      []string
	)
	for _, m := range msgs {
		id := uuidBytes(m.ID)
		messageIDs, kinds = append(messageIDs, id), append(kinds, "created")
		if m.State == domain.StateQueued {
			messageIDs, kinds = append(messageIDs, id), append(kinds, "queued")
		}
	}
	if !hooked {
		b.Queue(`INSERT INTO message_events (subscription_id, message_id, type)
			SELECT $1, m, k FROM unnest($2::uuid[], $3::text[]) AS e(m, k)`, tenant, messageIDs, kinds)
		return
	}
	b.Queue(`
		WITH ev AS (
			INSERT INTO message_events (subscription_id, message_id, type)
			SELECT $1, m, k FROM unnest($2::uuid[], $3::text[]) AS e(m, k)
			RETURNING id, type)
		SELECT w.id, ev.id FROM ev JOIN webhooks w
			ON w.subscription_id = $1 AND w.status = 'active' AND (w.event_types IS NULL OR ev.type = ANY (w.event_types))
		ORDER BY ev.id, w.id`,
		tenant, messageIDs, kinds).
		Query(func(rows pgx.Rows) error {
			for rows.Next() {
				var j domain.WebhookJob
				if err := rows.Scan(&j.WebhookID, &j.EventID); err != nil {
					return err
				}
				hooks[tenant] = append(hooks[tenant], j)
			}
			return rows.Err()
		})
}

// queueIdempotentCreate records, in the transaction that creates them, which
// messages a keyed request created, so a crash before its response is stored
// still replays them instead of creating them again. The checks locked the
// key and found it unspent, so the update can't miss: a key never creates
// twice.
func queueIdempotentCreate(b *pgx.Batch, r *acceptRequest) {
	msgs := r.written()
	if r.key == "" || len(msgs) == 0 {
		return
	}
	ids := make([]uuid.UUID, len(msgs))
	for i, m := range msgs {
		ids[i] = m.ID
	}
	b.Queue(`UPDATE idempotency_keys SET status = 201, message_ids = $3
		WHERE subscription_id = $1 AND key = $2`, r.tenant, r.key, ids)
}
