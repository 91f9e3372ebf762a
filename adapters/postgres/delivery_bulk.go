package postgres

import (
	"context"
	"encoding/json"
	"fmt"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"

	"github.com/mailgate/mailgate/domain"
)

// The delivery path's writes in bulk: a group of attempt journals is one
// statement and a group of attempt outcomes another, sent together in one
// round trip, however many messages
// and tenants the group holds (data-modifying CTEs over unnest'ed arrays).
// Statement count, not bytes, is what a delivery costs PostgreSQL, so this
// is what lets many concurrent deliveries share one transaction cheaply.
// Every row carries its tenant, and each statement matches rows by
// (subscription_id, id); the group runs in the operator scope, since one
// statement spans tenants.

// journalWrite is one attempt's journal.
type journalWrite struct {
	tenant, id uuid.UUID
	attempt    int
	journal    []domain.Recipient
}

// outcomeWrite is one attempt's outcome.
type outcomeWrite struct {
	tenant uuid.UUID
	rec    domain.AttemptRecord
}

// journalMark is one recipient's attempt-journal mark, as the journal
// statement unpacks it.
type journalMark struct {
	Position int       `json:"position"`
	Dup      bool      `json:"dup"`
	Since    time.Time `json:"since"`
}

// eventRow is one event an outcome writes for its message.
type eventRow struct {
	Type      string `json:"type"`
	Recipient string `json:"recipient"`
	Code      int    `json:"code"`
	Detail    string `json:"detail"`
}

// mustJSON encodes a message's child rows for jsonb_to_recordset. The rows
// hold strings, numbers, booleans and times the gateway made, which can't
// fail to encode: a failure is a bug, not an input to report.
func mustJSON(rows any) []byte {
	out, err := json.Marshal(rows)
	if err != nil {
		panic(fmt.Sprintf("postgres: encode delivery rows: %v", err))
	}
	return out
}

// recipientChange is one recipient's new delivery state, as the outcome
// statement unpacks it (jsonb_to_recordset: the names are its columns).
type recipientChange struct {
	Position int        `json:"position"`
	Status   string     `json:"status"`
	Attempts int        `json:"attempts"`
	Code     int        `json:"code"`
	Reply    string     `json:"reply"`
	Dup      bool       `json:"dup"`
	InFlight *time.Time `json:"in_flight"`
}

// tenantHook is a webhook delivery with the tenant it belongs to.
type tenantHook struct {
	tenant uuid.UUID
	job    domain.WebhookJob
}

// queueJournals queues a group of journals as one statement on b; when the
// batch runs, updated gets the ids of the messages it could mark sending
// (the others are no longer waiting for delivery) and hooks the webhook
// deliveries the attempt events fan out to.
func queueJournals(b *pgx.Batch, group []journalWrite, updated map[uuid.UUID]bool, hooks *[]tenantHook) {
	var (
		subs, ids  []uuid.UUID
		details    []string
		recipients [][]byte
	)
	for _, w := range group {
		subs, ids = append(subs, w.tenant), append(ids, w.id)
		details = append(details, fmt.Sprintf("attempt %d: %d recipients handed to the relay", w.attempt, len(w.journal)))
		marks := make([]journalMark, len(w.journal))
		for i, r := range w.journal {
			marks[i] = journalMark{Position: r.Position, Dup: r.PossibleDuplicate, Since: r.InFlightSince}
		}
		recipients = append(recipients, mustJSON(marks))
	}
	// As in queueOutcomes, every row a message's journal writes travels
	// with the message through RETURNING: nothing is joined back.
	b.Queue(`
		WITH m AS (
			UPDATE messages SET state = 'sending', send_slot = NULL, version = version + 1, updated_at = now()
			FROM unnest($1::uuid[], $2::uuid[], $3::text[], $4::jsonb[]) AS j(sub, mid, detail, recipients)
			-- coalesce() hides the state test from the planner: written plainly it
			-- matches messages_unsettled_idx, which it then scans whole when its
			-- statistics lag behind a burst; the id index is the right path.
			WHERE messages.subscription_id = j.sub AND messages.id = j.mid AND coalesce(messages.state IN ('queued', 'sending'), false)
			RETURNING messages.subscription_id AS sub, messages.id AS mid, j.detail, j.recipients
		), r AS (
			UPDATE message_recipients rc SET in_flight_since = x.since, possible_duplicate = rc.possible_duplicate OR x.dup, updated_at = now()
			FROM m CROSS JOIN LATERAL jsonb_to_recordset(m.recipients) AS x(position int, dup bool, since timestamptz)
			WHERE rc.subscription_id = m.sub AND rc.message_id = m.mid AND rc.position = x.position
		), ev AS (
			INSERT INTO message_events (subscription_id, message_id, type, detail)
			SELECT m.sub, m.mid, 'attempt', m.detail FROM m
			RETURNING id, type, subscription_id
		)
		SELECT m.mid, NULL::uuid, NULL::bigint FROM m
		UNION ALL
		SELECT ev.subscription_id, w.id, ev.id FROM ev JOIN webhooks w
			ON w.subscription_id = ev.subscription_id AND w.status = 'active' AND (w.event_types IS NULL OR ev.type = ANY (w.event_types))`,
		subs, ids, details, recipients).
		Query(func(rows pgx.Rows) error {
			for rows.Next() {
				var (
					first   uuid.UUID
					webhook *uuid.UUID
					eventID *int64
				)
				if err := rows.Scan(&first, &webhook, &eventID); err != nil {
					return err
				}
				if webhook == nil {
					updated[first] = true
					continue
				}
				*hooks = append(*hooks, tenantHook{tenant: first, job: domain.WebhookJob{WebhookID: *webhook, EventID: *eventID}})
			}
			return rows.Err()
		})
}

// queueOutcomes queues a group of attempt outcomes as one statement on b;
// when the batch runs, written gets the ids of the messages whose outcome
// was written and hooks the webhook deliveries their events fan out to. An
// outcome that expects a version the message no longer has (a bounce
// report or another writer changed it during the attempt) writes nothing at
// all, so the worker can decide again on what the message is now.
func queueOutcomes(b *pgx.Batch, group []outcomeWrite, written map[uuid.UUID]bool, hooks *[]tenantHook) {
	var (
		mRecipients                 [][]byte
		mSubs, mIDs                 []uuid.UUID
		mStates, mErrs              []string
		mFinal                      []bool
		mVersions                   []int64
		sSubs, sMsgs                []uuid.UUID
		sEmails, sReasons, sSources []string
		sCodes                      []int32
		bSubs, bAccounts, bMsgs     []uuid.UUID
		mEvents                     [][]byte
	)
	for _, w := range group {
		rec := w.rec
		// Never nil: jsonb_to_recordset refuses a JSON null.
		events := make([]eventRow, 0, len(rec.Changed)+len(rec.Suppress)+1)
		addEvent := func(kind, rcpt string, code int, detail string) {
			events = append(events, eventRow{Type: kind, Recipient: rcpt, Code: code, Detail: detail})
		}
		changes := make([]recipientChange, 0, len(rec.Changed))
		for _, r := range rec.Changed {
			changes = append(changes, recipientChange{Position: r.Position, Status: string(r.Status), Attempts: r.Attempts, Code: r.LastCode,
				Reply: r.LastReply, Dup: r.PossibleDuplicate, InFlight: nullTime(r.InFlightSince)})
			detail := r.LastReply
			if r.PossibleDuplicate {
				detail += " (possible duplicate: an earlier attempt may have delivered it)"
			}
			addEvent(string(r.Status), r.Email, r.LastCode, detail)
		}
		for _, sup := range rec.Suppress {
			sSubs, sEmails, sReasons, sSources, sCodes = append(sSubs, w.tenant), append(sEmails, sup.Email), append(sReasons, sup.Reason), append(sSources, sup.Source), append(sCodes, int32(sup.SMTPCode))
			sMsgs = append(sMsgs, rec.MessageID)
			addEvent("suppression.added", sup.Email, sup.SMTPCode, sup.Reason)
		}
		if rec.State.Final() {
			addEvent(string(rec.State), "", 0, rec.LastError)
		}
		mRecipients, mEvents = append(mRecipients, mustJSON(changes)), append(mEvents, mustJSON(events))
		mSubs, mIDs, mStates, mErrs, mFinal = append(mSubs, w.tenant), append(mIDs, rec.MessageID), append(mStates, string(rec.State)), append(mErrs, rec.LastError), append(mFinal, rec.State.Final())
		mVersions = append(mVersions, int64(rec.ExpectedVersion))
		for _, a := range rec.MailboxAccounts {
			bSubs, bAccounts, bMsgs = append(bSubs, w.tenant), append(bAccounts, a), append(bMsgs, rec.MessageID)
		}
	}
	// The message row is updated first and everything else only for the
	// messages it matched: one order of row locks (message, then its
	// recipients), the same as every other writer of a message, and an
	// outcome refused on its version leaves no trace. Each message carries
	// its own recipients' changes and events (JSON arrays) through
	// RETURNING, so they are unpacked per updated message: matched against
	// one flat array of every recipient, the planner rescanned that array
	// once per recipient (a nested loop with a join filter, 29,070 rows
	// compared for 171 updates in a group of 57), since it can't know either
	// side's size. Suppressions and mailbox copies, rare, are still joined.
	b.Queue(`
		WITH m AS (
			UPDATE messages SET state = x.state, last_error = x.err, version = version + 1, updated_at = now(),
				finished_at = CASE WHEN x.final THEN now() END
			FROM unnest($2::uuid[], $3::uuid[], $4::text[], $5::text[], $6::bool[], $16::bigint[], $1::jsonb[], $15::jsonb[]) AS x(sub, mid, state, err, final, expected, recipients, events)
			WHERE messages.subscription_id = x.sub AND messages.id = x.mid AND (x.expected = 0 OR messages.version = x.expected)
			RETURNING messages.subscription_id AS sub, messages.id AS mid, x.recipients, x.events
		), rc AS (
			UPDATE message_recipients r SET status = c.status, attempts = c.attempts, last_code = c.code, last_reply = c.reply,
				possible_duplicate = c.dup, in_flight_since = c.in_flight, updated_at = now()
			FROM m CROSS JOIN LATERAL jsonb_to_recordset(m.recipients)
			     AS c(position int, status text, attempts int, code int, reply text, dup bool, in_flight timestamptz)
			WHERE r.subscription_id = m.sub AND r.message_id = m.mid AND r.position = c.position
		), sup AS (
			INSERT INTO suppressions (subscription_id, email, reason, source, smtp_code)
			SELECT s.sub, s.email, s.reason, s.source, s.code FROM unnest($7::uuid[], $8::text[], $9::text[], $10::text[], $11::int[], $17::uuid[]) AS s(sub, email, reason, source, code, mid)
			JOIN m ON m.sub = s.sub AND m.mid = s.mid
			ON CONFLICT DO NOTHING
		), mb AS (
			-- Each internal recipient gets its own copy, without the Bcc list.
			INSERT INTO mailbox_entries (subscription_id, account_id, message_id, kind, sender_email, sender_display_name,
				subject, body, header_message_id, in_reply_to, references_header, conversation_id, to_list, cc_list)
			SELECT u.sub, u.acc, u.mid,
				coalesce((SELECT r.kind FROM message_recipients r WHERE r.subscription_id = u.sub AND r.message_id = u.mid
				          AND r.account_id = u.acc ORDER BY r.position LIMIT 1), 'to'),
				mm.sender_email, mm.sender_display_name, mm.subject, mm.body, mm.message_id, mm.in_reply_to,
				mm.references_header, mm.conversation_id,
				coalesce((SELECT jsonb_agg(jsonb_build_object('display_name', r.display_name, 'email_address', r.email) ORDER BY r.position)
				          FROM message_recipients r WHERE r.subscription_id = u.sub AND r.message_id = u.mid AND r.kind = 'to'), '[]'),
				coalesce((SELECT jsonb_agg(jsonb_build_object('display_name', r.display_name, 'email_address', r.email) ORDER BY r.position)
				          FROM message_recipients r WHERE r.subscription_id = u.sub AND r.message_id = u.mid AND r.kind = 'cc'), '[]')
			FROM unnest($12::uuid[], $13::uuid[], $14::uuid[]) AS u(sub, acc, mid)
			JOIN m ON m.sub = u.sub AND m.mid = u.mid
			JOIN messages mm ON mm.subscription_id = u.sub AND mm.id = u.mid
			ON CONFLICT DO NOTHING
		), ev AS (
			INSERT INTO message_events (subscription_id, message_id, type, recipient, smtp_code, detail)
			SELECT m.sub, m.mid, e.type, e.recipient, e.code, e.detail
			FROM m CROSS JOIN LATERAL jsonb_to_recordset(m.events) AS e(type text, recipient text, code int, detail text)
			RETURNING id, type, subscription_id
		)
		SELECT m.mid, NULL::uuid, NULL::bigint FROM m
		UNION ALL
		SELECT ev.subscription_id, w.id, ev.id FROM ev JOIN webhooks w
			ON w.subscription_id = ev.subscription_id AND w.status = 'active' AND (w.event_types IS NULL OR ev.type = ANY (w.event_types))`,
		mRecipients,
		mSubs, mIDs, mStates, mErrs, mFinal,
		sSubs, sEmails, sReasons, sSources, sCodes,
		bSubs, bAccounts, bMsgs,
		mEvents, mVersions, sMsgs).
		Query(func(rows pgx.Rows) error {
			for rows.Next() {
				var (
					first   uuid.UUID
					webhook *uuid.UUID
					eventID *int64
				)
				if err := rows.Scan(&first, &webhook, &eventID); err != nil {
					return err
				}
				if webhook == nil {
					written[first] = true
					continue
				}
				*hooks = append(*hooks, tenantHook{tenant: first, job: domain.WebhookJob{WebhookID: *webhook, EventID: *eventID}})
			}
			return rows.Err()
		})
}

// flushTenantHooks enqueues webhook deliveries tenant by tenant, each in
// its own scope (the fair webhook queue's clocks are per tenant).
func (s *Store) flushTenantHooks(ctx context.Context, tx pgx.Tx, hooks []tenantHook) error {
	if len(hooks) == 0 {
		return nil
	}
	byTenant := map[uuid.UUID][]domain.WebhookJob{}
	var order []uuid.UUID
	for _, h := range hooks {
		if _, ok := byTenant[h.tenant]; !ok {
			order = append(order, h.tenant)
		}
		byTenant[h.tenant] = append(byTenant[h.tenant], h.job)
	}
	for _, tenant := range order {
		if err := s.flushWebhooks(ctx, tx, tenant, byTenant[tenant]); err != nil {
			return err
		}
	}
	return nil
}
