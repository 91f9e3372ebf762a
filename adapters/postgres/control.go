package postgres

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"

	"github.com/mailgate/mailgate/domain"
)

// lockedMessage is a message loaded for a lifecycle change under its row
// lock, with what the domain's rules consult besides it.
type lockedMessage struct {
	msg *domain.Message
	// jobID is the message's delivery job, nil when it never had one.
	jobID *int64
	job   domain.JobStatus
	// suppressed holds the recipients' addresses (as the message spells
	// them) on the suppression list now; read only when asked for.
	suppressed map[string]bool
}

// lifecycleRule is a domain decision on a locked message.
type lifecycleRule func(*lockedMessage) (domain.LifecycleChange, error)

// changeMessage is the store's one update shape for the message lifecycle
// (wild-workouts' UpdateHour): inside the caller's transaction it loads the
// message FOR UPDATE with its job's state, lets the domain rule decide, and
// writes what the rule decided. A refusing rule writes nothing.
func (s *Store) changeMessage(ctx context.Context, tx pgx.Tx, tenant, id uuid.UUID, withSuppressions bool, rule lifecycleRule) error {
	lm, err := lockMessage(ctx, tx, tenant, id, withSuppressions)
	if err != nil {
		return err
	}
	ch, err := rule(lm)
	if err != nil {
		return err
	}
	return s.writeChange(ctx, tx, tenant, lm, ch)
}

// lockMessage reads a message, its recipients and its job's state in one
// round trip, the message row locked until ex's transaction ends; a
// missing message is domain.ErrNotFound.
func lockMessage(ctx context.Context, ex executor, tenant, id uuid.UUID, withSuppressions bool) (*lockedMessage, error) {
	lm := &lockedMessage{}
	b := newBatch(tenantScope(tenant))
	queueMessage(b, tenant, id, &lm.msg, true)
	b.Queue(`SELECT m.job_id, j.state::text FROM messages m LEFT JOIN river_job j ON j.id = m.job_id
		WHERE m.subscription_id = $1 AND m.id = $2`, tenant, id).
		QueryRow(func(row pgx.Row) error {
			var jobState *string
			if err := row.Scan(&lm.jobID, &jobState); err != nil {
				return err
			}
			lm.job = domain.JobStatus{Exists: jobState != nil}
			if jobState != nil {
				lm.job.State = *jobState
			}
			return nil
		})
	if withSuppressions {
		lm.suppressed = map[string]bool{}
		b.Queue(`SELECT r.email FROM message_recipients r
			WHERE r.subscription_id = $1 AND r.message_id = $2
			  AND EXISTS (SELECT 1 FROM (SELECT lower(r.email) AS email OFFSET 0) addr
			              JOIN suppressions x ON x.subscription_id = r.subscription_id AND x.email = addr.email)`, tenant, id).
			Query(func(rows pgx.Rows) error {
				emails, err := pgx.CollectRows(rows, pgx.RowTo[string])
				for _, e := range emails {
					lm.suppressed[e] = true
				}
				return err
			})
	}
	if err := ex.SendBatch(ctx, b).Close(); err != nil {
		return nil, interpretError(err, "lock message")
	}
	return lm, nil
}

// writeChange writes a lifecycle change in tx: the message's new state and
// times, the recipients it rewrote, its timeline (and the webhooks it
// wakes), and its job's fate through River's client. A settling change is
// written as a delivery outcome.
func (s *Store) writeChange(ctx context.Context, tx pgx.Tx, tenant uuid.UUID, lm *lockedMessage, ch domain.LifecycleChange) error {
	if ch.Event == "" {
		return nil
	}
	if ch.Attempt != nil {
		return s.writeAttempt(ctx, tx, tenant, *ch.Attempt)
	}
	m := lm.msg
	b := &pgx.Batch{}
	b.Queue(`UPDATE messages SET state = $3, last_error = $4, queued_at = $5, updated_at = $6,
			finished_at = CASE WHEN $7 THEN $6::timestamptz END, version = version + 1
		WHERE subscription_id = $1 AND id = $2`,
		tenant, m.ID, string(m.State), m.LastError, nullTime(m.QueuedAt), m.UpdatedAt, m.State.Final())
	queueRecipientChanges(b, tenant, m.ID, ch.Recipients)
	timeline := make([]event, len(ch.Timeline))
	for i, e := range ch.Timeline {
		timeline[i] = event{kind: e.Type, recipient: e.Recipient, code: e.SMTPCode, detail: e.Detail}
	}
	var hooks []domain.WebhookJob
	queueEvents(b, tenant, m.ID, timeline, &hooks)
	if err := tx.SendBatch(ctx, b).Close(); err != nil {
		return interpretError(err, "write "+string(ch.Event))
	}
	if err := s.flushWebhooks(ctx, tx, tenant, hooks); err != nil {
		return err
	}
	switch ch.Job {
	case domain.JobCancel:
		if lm.jobID != nil && s.enqueuer != nil {
			if err := s.enqueuer.CancelJobTx(ctx, tx, *lm.jobID); err != nil {
				return fmt.Errorf("cancel delivery job: %w", err)
			}
		}
	case domain.JobEnqueue:
		return s.enqueue(ctx, tx, tenant, m.ID, time.Time{})
	}
	return nil
}

// queueRecipientChanges adds the rewrite of the changed recipients' status,
// last reply and update time to a batch, as one statement.
func queueRecipientChanges(b *pgx.Batch, tenant, messageID uuid.UUID, changed []domain.Recipient) {
	if len(changed) == 0 {
		return
	}
	positions := make([]int32, len(changed))
	statuses := make([]string, len(changed))
	replies := make([]string, len(changed))
	updated := make([]time.Time, len(changed))
	for i, r := range changed {
		positions[i], statuses[i], replies[i], updated[i] = int32(r.Position), string(r.Status), r.LastReply, r.UpdatedAt
	}
	b.Queue(`
		UPDATE message_recipients r SET status = c.status, last_reply = c.reply, updated_at = c.updated
		FROM unnest($3::int[], $4::text[], $5::text[], $6::timestamptz[]) AS c(position, status, reply, updated)
		WHERE r.subscription_id = $1 AND r.message_id = $2 AND r.position = c.position`,
		tenant, messageID, positions, statuses, replies, updated)
}

// CancelMessage stops a queued or scheduled message before a worker picks it
// up (domain.Message.Cancel). The message row is locked and its job's state
// read under that lock, so either the cancel wins and the job is cancelled
// through River, or delivery has started and the cancel is refused.
func (s *Store) CancelMessage(ctx context.Context, tenant, id uuid.UUID) (*domain.Message, error) {
	err := s.inTx(ctx, tenantScope(tenant), func(tx pgx.Tx) error { return s.CancelMessageTx(ctx, tx, tenant, id) })
	if err != nil {
		return nil, err
	}
	return s.GetMessage(ctx, tenant, id)
}

// CancelMessageTx is CancelMessage inside the caller's transaction, which
// commits or rolls back the cancel and its job's with everything else it
// does; the transaction is scoped to tenant from then on.
func (s *Store) CancelMessageTx(ctx context.Context, tx pgx.Tx, tenant, id uuid.UUID) error {
	return s.changeMessage(ctx, tx, tenant, id, false, func(lm *lockedMessage) (domain.LifecycleChange, error) {
		return lm.msg.Cancel(lm.job, time.Now().UTC())
	})
}

// RetryMessage requeues a failed or partially sent message
// (domain.Message.Retry): the recipients the filter takes go back to
// pending, or to suppressed when their address is suppressed now; the
// suppression list is read under the message's lock.
func (s *Store) RetryMessage(ctx context.Context, tenant, id uuid.UUID, f domain.RetryFilter) (*domain.Message, error) {
	err := s.inTx(ctx, tenantScope(tenant), func(tx pgx.Tx) error { return s.RetryMessageTx(ctx, tx, tenant, id, f) })
	if err != nil {
		return nil, err
	}
	return s.GetMessage(ctx, tenant, id)
}

// RetryMessageTx is RetryMessage inside the caller's transaction (see
// CancelMessageTx).
func (s *Store) RetryMessageTx(ctx context.Context, tx pgx.Tx, tenant, id uuid.UUID, f domain.RetryFilter) error {
	return s.changeMessage(ctx, tx, tenant, id, true, func(lm *lockedMessage) (domain.LifecycleChange, error) {
		return lm.msg.Retry(f, lm.suppressed, time.Now().UTC())
	})
}

// retryCandidates selects up to f.Limit messages of the filter, with a
// recipient it would requeue; tenant uuid.Nil selects across tenants. The
// set-based selection only narrows the search: which message states and
// recipient statuses qualify come from the domain (RetryFilter's
// MessageStates and RecipientStatuses, passed as parameters), and each
// candidate is then retried by domain.Message.Retry under its row lock.
const retryCandidates = `
	SELECT m.subscription_id, m.id FROM messages m
	WHERE ($1::uuid IS NULL OR m.subscription_id = $1) AND m.state = ANY($2)
	  AND ($3::timestamptz IS NULL OR m.created_date >= $3) AND ($4::timestamptz IS NULL OR m.created_date < $4)
	  AND EXISTS (SELECT 1 FROM message_recipients r
	              WHERE r.subscription_id = m.subscription_id AND r.message_id = m.id AND r.status = ANY($5)
	                AND ($6 = 0 OR r.last_code = $6)
	                AND ($7::timestamptz IS NULL OR r.updated_at >= $7) AND ($8::timestamptz IS NULL OR r.updated_at < $8))
	ORDER BY m.created_date, m.id LIMIT $9`

func retryArgs(tenant uuid.UUID, f domain.RetryFilter) []any {
	return []any{nullUUID(tenant), stateStrings(f.MessageStates()), nullTime(f.CreatedAfter), nullTime(f.CreatedBefore), f.RecipientStatuses(),
		f.ReplyCode, nullTime(f.RepliedAfter), nullTime(f.RepliedBefore), f.Limit}
}

// RetryMessages requeues, in one transaction, up to f.Limit of the tenant's
// messages matching the filter, and returns their ids. A message whose
// recipients all turn out suppressed is left as it is.
func (s *Store) RetryMessages(ctx context.Context, tenant uuid.UUID, f domain.RetryFilter) ([]uuid.UUID, error) {
	var ids []uuid.UUID
	err := s.inTx(ctx, tenantScope(tenant), func(tx pgx.Tx) error {
		var err error
		ids, err = s.retryEach(ctx, tx, tenant, f)
		return err
	})
	return ids, err
}

func (s *Store) retryEach(ctx context.Context, tx pgx.Tx, tenant uuid.UUID, f domain.RetryFilter) ([]uuid.UUID, error) {
	rows, err := tx.Query(ctx, retryCandidates, retryArgs(tenant, f)...)
	if err != nil {
		return nil, fmt.Errorf("select retries: %w", err)
	}
	type candidate struct{ tenant, id uuid.UUID }
	candidates, err := pgx.CollectRows(rows, func(row pgx.CollectableRow) (candidate, error) {
		var c candidate
		return c, row.Scan(&c.tenant, &c.id)
	})
	if err != nil {
		return nil, err
	}
	var ids []uuid.UUID
	for _, c := range candidates {
		// A savepoint per message, so one left alone (every recipient still
		// suppressed) doesn't undo the others.
		err := pgx.BeginFunc(ctx, tx, func(sp pgx.Tx) error { return s.RetryMessageTx(ctx, sp, c.tenant, c.id, f) })
		if domain.ErrorCodeOf(err) == domain.CodeConflict {
			continue
		}
		if err != nil {
			return nil, err
		}
		ids = append(ids, c.id)
	}
	return ids, nil
}

// RetryAcrossTenants is the operator's bulk retry after an incident: each
// tenant's matching messages are requeued in that tenant's own transaction
// (row-level security applies to each), up to f.Limit in all.
func (s *Store) RetryAcrossTenants(ctx context.Context, f domain.RetryFilter) (map[uuid.UUID][]uuid.UUID, error) {
	var tenants []uuid.UUID
	b := newBatch(operatorScope)
	b.Queue(`SELECT DISTINCT c.subscription_id FROM (`+retryCandidates+`) c`, retryArgs(uuid.Nil, f)...).
		Query(func(rows pgx.Rows) error {
			var err error
			tenants, err = pgx.CollectRows(rows, pgx.RowTo[uuid.UUID])
			return err
		})
	if err := s.read(ctx, b); err != nil {
		return nil, fmt.Errorf("find retries: %w", err)
	}
	out := map[uuid.UUID][]uuid.UUID{}
	left := f.Limit
	for _, tenant := range tenants {
		if left <= 0 {
			break
		}
		tf := f
		tf.Limit = left
		ids, err := s.RetryMessages(ctx, tenant, tf)
		if err != nil {
			return out, fmt.Errorf("retry for tenant %s: %w", tenant, err)
		}
		if len(ids) > 0 {
			out[tenant] = ids
			left -= len(ids)
		}
	}
	return out, nil
}

// FindStalled searches, across tenants (operator), for the messages
// waiting for delivery that the reconciler must act on
// (domain.DecideStall): a sending message whose job is not running, or a
// queued or sending one whose job is gone or finished. Its three parts
// (domain.StallSearch) each read through an index only the rows that can
// stall, so a pass over a healthy backlog of a million queued messages
// costs what it costs over an empty queue, bar the bounded sweep. The
// states and River's job states are the domain's, spelled as literals so
// that the partial index on unsettled messages matches under any plan.
// Reconcile decides each message again under its lock.
func (s *Store) FindStalled(ctx context.Context, q domain.StallSearch) (domain.StallPass, error) {
	var (
		pass domain.StallPass
		seen = map[uuid.UUID]bool{}
	)
	collect := func(rows pgx.Rows) error {
		for rows.Next() {
			var m domain.StalledMessage
			if err := rows.Scan(&m.SubscriptionID, &m.ID, &m.QueuedAt); err != nil {
				return err
			}
			if !seen[m.ID] {
				seen[m.ID] = true
				pass.Stalled = append(pass.Stalled, m)
			}
		}
		return rows.Err()
	}
	var (
		queued, sending = sqlLiteral(string(domain.StateQueued)), sqlLiteral(string(domain.StateSending))
		unsettled       = "m.state IN (" + queued + ", " + sending + ")"
		running         = sqlLiteral(domain.JobRunning)
		live            = sqlLiterals(domain.LiveJobStates())
		grace           = fmt.Sprintf("%d milliseconds", q.Grace.Milliseconds())
	)
	b := newBatch(operatorScope)
	// Every sending message: an attempt runs now, or it was interrupted.
	b.Queue(`
		SELECT m.subscription_id, m.id, coalesce(m.queued_at, m.created_date)
		FROM messages m LEFT JOIN river_job j ON j.id = m.job_id
		WHERE m.state = `+sending+` AND m.updated_at < now() - $1::interval AND (j.id IS NULL OR j.state::text <> `+running+`)
		ORDER BY m.updated_at LIMIT $2`, grace, q.Limit).Query(collect)
	// Messages still waiting whose job River finished without them: it was
	// cancelled (by hand) or discarded (out of attempts). A job that
	// completed is the outcome's, written with its message (the sweep
	// covers the exception). The message's keys are taken from the job
	// behind a fence: compared as (j.args->>'message_id')::uuid, functions
	// not marked leakproof, row-level security keeps them off the messages'
	// indexes and the join read every unsettled message (a parallel scan
	// of 100,000 queued ones for 100 cancelled jobs, 47 ms against 0.8;
	// TestStallSearchFindsMessagesOfFinishedJobsByKey).
	if !q.FinishedSince.IsZero() {
		b.Queue(`
			SELECT m.subscription_id, m.id, coalesce(m.queued_at, m.created_date)
			FROM river_job j
			CROSS JOIN LATERAL (SELECT (j.args->>'subscription_id')::uuid AS sub, (j.args->>'message_id')::uuid AS mid OFFSET 0) k
			JOIN messages m ON m.subscription_id = k.sub AND m.id = k.mid AND m.job_id = j.id
			WHERE j.state IN ('cancelled', 'discarded') AND j.finalized_at >= $1 AND j.kind = $2
			  AND `+unsettled+` AND m.updated_at < now() - $3::interval
			LIMIT $4`, q.FinishedSince, q.JobKind, grace, q.Limit).Query(collect)
	}
	// The sweep: the next SweepRows queued messages in (updated_at, id)
	// order, the first Limit of them without a live job, and the last key
	// read with how many were.
	b.Queue(`
		WITH scanned AS (
			SELECT m.subscription_id, m.id, m.updated_at, m.job_id, coalesce(m.queued_at, m.created_date) AS queued_at
			FROM messages m
			WHERE m.state = `+queued+` AND (m.updated_at, m.id) > ($1, $2) AND m.updated_at < now() - $3::interval
			ORDER BY m.updated_at, m.id LIMIT $4
		), stalls AS (
			SELECT s.* FROM scanned s LEFT JOIN river_job j ON j.id = s.job_id
			WHERE j.id IS NULL OR NOT (j.state::text = ANY (`+live+`))
			ORDER BY s.updated_at, s.id LIMIT $5
		), last AS (
			SELECT updated_at, id, count(*) OVER () AS n FROM scanned ORDER BY updated_at DESC, id DESC LIMIT 1
		)
		SELECT subscription_id, id, queued_at, updated_at, 0::bigint FROM stalls
		UNION ALL
		SELECT NULL, id, NULL, updated_at, n FROM last`,
		q.SweepAfter.UpdatedAt, q.SweepAfter.ID, grace, q.SweepRows, q.Limit).
		Query(func(rows pgx.Rows) error {
			var (
				found   int
				lastKey domain.SweepKey
				read    int64
			)
			for rows.Next() {
				var (
					tenant    *uuid.UUID
					id        uuid.UUID
					queuedAt  *time.Time
					updatedAt time.Time
					n         int64
				)
				if err := rows.Scan(&tenant, &id, &queuedAt, &updatedAt, &n); err != nil {
					return err
				}
				if tenant == nil {
					lastKey, read = domain.SweepKey{UpdatedAt: updatedAt, ID: id}, n
					continue
				}
				found++
				if found == q.Limit {
					// Capped: the next pass goes on right after the last
					// stall returned, so none is skipped.
					pass.SweepNext = domain.SweepKey{UpdatedAt: updatedAt, ID: id}
				}
				if !seen[id] {
					seen[id] = true
					pass.Stalled = append(pass.Stalled, domain.StalledMessage{SubscriptionID: *tenant, ID: id, QueuedAt: *queuedAt})
				}
			}
			// A sweep that read as many rows as it could goes on after the
			// last; one that read fewer reached the newest, and the next
			// starts over.
			if found < q.Limit && read >= int64(q.SweepRows) {
				pass.SweepNext = lastKey
			}
			return rows.Err()
		})
	if err := s.read(ctx, b); err != nil {
		return domain.StallPass{}, interpretError(err, "find stalled")
	}
	return pass, nil
}

// sqlLiteral quotes a constant of the domain's (a state name) as an SQL
// string literal, for predicates a partial index must match under a
// generic plan, where a parameter can't prove the index's condition.
func sqlLiteral(v string) string { return "'" + strings.ReplaceAll(v, "'", "''") + "'" }

// sqlLiterals spells constants as an SQL text[] literal.
func sqlLiterals(vs []string) string {
	quoted := make([]string, len(vs))
	for i, v := range vs {
		quoted[i] = sqlLiteral(v)
	}
	return "ARRAY[" + strings.Join(quoted, ", ") + "]::text[]"
}

// Reconcile applies the reconciler's rule (domain.Message.Reconcile) to one
// message under its row lock, reading its job there so a worker that
// picked it up meanwhile wins: an interrupted attempt goes back to queued,
// a message whose job is gone is requeued with a new job (never beside a
// live one), or failed when it is past the delivery age. A message deleted
// meanwhile needs nothing. It reports what it did.
func (s *Store) Reconcile(ctx context.Context, m domain.StalledMessage, maxAge time.Duration) (domain.StallAction, error) {
	action := domain.StallNone
	err := s.inTx(ctx, tenantScope(m.SubscriptionID), func(tx pgx.Tx) error {
		err := s.changeMessage(ctx, tx, m.SubscriptionID, m.ID, false, func(lm *lockedMessage) (domain.LifecycleChange, error) {
			var (
				ch  domain.LifecycleChange
				err error
			)
			action, ch, err = lm.msg.Reconcile(lm.job, time.Now().UTC(), maxAge)
			return ch, err
		})
		if errors.Is(err, domain.ErrNotFound) {
			return nil
		}
		if err != nil {
			return fmt.Errorf("reconcile: %w", err)
		}
		return nil
	})
	return action, err
}

// ReleaseHeld makes a reinstated tenant's held deliveries available at once
// instead of at their next hold check; scheduled sends keep their time.
func (s *Store) ReleaseHeld(ctx context.Context, tenant uuid.UUID) (int, error) {
	released := 0
	err := s.inTx(ctx, tenantScope(tenant), func(tx pgx.Tx) error {
		rows, err := tx.Query(ctx, `
			SELECT j.id FROM messages m JOIN river_job j ON j.id = m.job_id
			WHERE m.subscription_id = $1 AND m.state = $2 AND j.state::text = $3
			  AND (m.send_at IS NULL OR m.send_at <= now()) AND m.send_slot IS NULL`,
			tenant, string(domain.StateQueued), domain.JobScheduled)
		if err != nil {
			return interpretError(err, "find held jobs")
		}
		ids, err := pgx.CollectRows(rows, pgx.RowTo[int64])
		if err != nil {
			return err
		}
		for _, id := range ids {
			if err := s.enqueuer.RetryJobTx(ctx, tx, id); err != nil {
				return fmt.Errorf("release held job %d: %w", id, err)
			}
		}
		released = len(ids)
		return nil
	})
	if err != nil {
		return 0, fmt.Errorf("release held deliveries: %w", err)
	}
	return released, nil
}

// stateStrings spells states for a text[] parameter.
func stateStrings(states []domain.MessageState) []string {
	out := make([]string, len(states))
	for i, st := range states {
		out[i] = string(st)
	}
	return out
}
