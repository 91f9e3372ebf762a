// Package jobs holds Mailgate's River job arguments and workers. Workers call
// domain rules and ports; SQL and SMTP live in the adapters.
package jobs

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"
	"github.com/riverqueue/river"
	"github.com/riverqueue/river/riverdriver/riverpgxv5"

	"github.com/mailgate/mailgate/domain"
)

// QueueDelivery is the queue outbound mail is delivered from.
const QueueDelivery = "delivery"

// DeliveryMaxAttempts bounds retries of one message; with the default backoff
// the last attempt comes about two days after the first.
const DeliveryMaxAttempts = 25

// DeliverMessageArgs is the delivery job: only the ids, the message itself is
// read from its row so the job never holds a stale copy.
type DeliverMessageArgs struct {
	SubscriptionID uuid.UUID `json:"subscription_id"`
	MessageID      uuid.UUID `json:"message_id"`
}

// Kind implements river.JobArgs.
func (DeliverMessageArgs) Kind() string { return "deliver_message" }

// InsertOpts implements river.JobArgsWithInsertOpts.
func (DeliverMessageArgs) InsertOpts() river.InsertOpts {
	return river.InsertOpts{Queue: QueueDelivery, MaxAttempts: DeliveryMaxAttempts}
}

// DeliveryStore is the persistence the delivery worker needs.
type DeliveryStore interface {
	StartDelivery(ctx context.Context, tenant, id uuid.UUID) (*domain.Message, domain.DeliveryContext, error)
	RecordAttempt(ctx context.Context, tenant uuid.UUID, rec domain.AttemptRecord, inTx func(ctx context.Context, tx pgx.Tx) error) error
	MessageAttachments(ctx context.Context, tenant, id uuid.UUID) ([]domain.AttachmentContent, error)
}

// Transport hands one message to the next hop in one SMTP transaction and
// returns one reply per envelope recipient.
type Transport interface {
	Deliver(ctx context.Context, from string, to []string, data []byte) []domain.RecipientReply
}

// DeliveryObserver counts outcomes for metrics.
type DeliveryObserver interface {
	ObserveRecipient(tenant uuid.UUID, outcome string)
	ObserveSettled(latency time.Duration)
}

// RenderFunc builds the RFC 5322 bytes of a message with its attachments,
// signed with dkim when it is not nil.
type RenderFunc func(msg *domain.Message, date time.Time, attachments []domain.AttachmentContent, dkim *domain.DKIMKey) ([]byte, error)

// DeliveryWorker delivers a queued message to its pending recipients.
type DeliveryWorker struct {
	river.WorkerDefaults[DeliverMessageArgs]
	store     DeliveryStore
	transport Transport
	render    RenderFunc
	logger    *slog.Logger
	now       func() time.Time
	maxAge    time.Duration
	slots     *tenantSlots
	observer  DeliveryObserver
}

// Observe reports outcomes to o.
func (w *DeliveryWorker) Observe(o DeliveryObserver) *DeliveryWorker {
	w.observer = o
	return w
}

// observe counts an attempt's recipient outcomes and, once final, the latency.
func (w *DeliveryWorker) observe(msg *domain.Message, rec domain.AttemptRecord) {
	if w.observer == nil {
		return
	}
	for _, r := range rec.Changed {
		outcome := string(r.Status)
		if r.Status == domain.RecipientDelivered {
			outcome = "sent"
		}
		w.observer.ObserveRecipient(msg.SubscriptionID, outcome)
	}
	if rec.State.Final() && !msg.QueuedAt.IsZero() {
		w.observer.ObserveSettled(w.now().Sub(msg.QueuedAt))
	}
}

// LimitPerTenant caps one tenant's concurrent deliveries in this process
// (0: no cap); a job over the cap is snoozed briefly without using an attempt.
func (w *DeliveryWorker) LimitPerTenant(n int) *DeliveryWorker {
	w.slots = newTenantSlots(n)
	return w
}

// NewDeliveryWorker returns a worker delivering through transport; deferred
// recipients fail once the message has waited maxAge (0: domain.MaxDeliveryAge).
func NewDeliveryWorker(store DeliveryStore, transport Transport, render RenderFunc, maxAge time.Duration, logger *slog.Logger) *DeliveryWorker {
	if maxAge <= 0 {
		maxAge = domain.MaxDeliveryAge
	}
	return &DeliveryWorker{store: store, transport: transport, render: render, logger: logger, now: time.Now, maxAge: maxAge}
}

// Timeout gives one delivery room for a slow relay; each SMTP step has its own
// shorter timeout in the transport.
func (w *DeliveryWorker) Timeout(*river.Job[DeliverMessageArgs]) time.Duration {
	return 5 * time.Minute
}

// Work implements river.Worker.
func (w *DeliveryWorker) Work(ctx context.Context, job *river.Job[DeliverMessageArgs]) error {
	tenant, id := job.Args.SubscriptionID, job.Args.MessageID
	if !w.slots.acquire(tenant) {
		return river.JobSnooze(time.Second)
	}
	defer w.slots.release(tenant)
	log := w.logger.With("message_id", id, "subscription_id", tenant, "attempt", job.Attempt)
	msg, dc, err := w.store.StartDelivery(ctx, tenant, id)
	if errors.Is(err, domain.ErrNotFound) {
		log.Warn("delivery job for a message that no longer exists; dropping it")
		return nil
	}
	if err != nil {
		return fmt.Errorf("start delivery: %w", err)
	}
	if msg.State.Final() || msg.State == domain.StateDraft {
		return nil
	}
	suppressed := msg.Suppress(dc.Suppressed)
	pending := msg.Pending()
	if len(pending) == 0 {
		return w.finish(ctx, job, msg, domain.AttemptRecord{MessageID: id, Changed: suppressed, State: domain.SettledState(msg.Recipients), LastError: summarizeFailures(msg.Recipients)})
	}
	var (
		replies  []domain.RecipientReply
		mailbox  []uuid.UUID
		external []string
	)
	for _, r := range pending {
		if dc.Sandbox && r.AccountID == uuid.Nil {
			// Sandbox: accepted, stored and evented like a delivery, but nothing leaves.
			replies = append(replies, domain.RecipientReply{Email: r.Email, Code: 250, Text: "2.0.0 sandbox: accepted, not sent"})
			continue
		}
		if r.AccountID != uuid.Nil {
			// Internal delivery: the account's inbox, no SMTP.
			replies = append(replies, domain.RecipientReply{Email: r.Email, Code: 250, Text: "2.0.0 delivered to the account's inbox"})
			mailbox = append(mailbox, r.AccountID)
			continue
		}
		external = append(external, r.Email)
	}
	if len(external) > 0 {
		data, err := w.build(ctx, msg, dc.DKIM)
		if err != nil {
			var de *domain.Error
			if errors.As(err, &de) && de.Code != domain.CodeInternal {
				// A message that can't be built never will be: fail it rather than retry.
				return w.finish(ctx, job, msg, failAll(msg, "could not build the message: "+err.Error()))
			}
			return err
		}
		replies = append(replies, w.transport.Deliver(ctx, msg.SenderEmail, external, data)...)
	}
	// Past the delivery age, a deferral is final however many attempts are left.
	lastAttempt := job.Attempt >= job.MaxAttempts || (!msg.QueuedAt.IsZero() && w.now().Sub(msg.QueuedAt) > w.maxAge)
	changed := msg.ApplyReplies(replies, lastAttempt)
	rec := domain.AttemptRecord{
		MessageID:       id,
		Changed:         append(suppressed, changed...),
		State:           domain.SettledState(msg.Recipients),
		MailboxAccounts: mailbox,
		Suppress:        domain.HardBounces(changed, w.now()),
	}
	rec.LastError = summarizeFailures(msg.Recipients)
	log.Info("delivery attempt", "state", rec.State, "external", len(external), "internal", len(mailbox))
	if !rec.State.Final() {
		if err := w.store.RecordAttempt(ctx, tenant, rec, nil); err != nil {
			return fmt.Errorf("record deferred attempt: %w", err)
		}
		w.observe(msg, rec)
		return &DeferredError{Reason: rec.LastError}
	}
	return w.finish(ctx, job, msg, rec)
}

// build renders the message once per attempt with its attachments.
func (w *DeliveryWorker) build(ctx context.Context, msg *domain.Message, dkim *domain.DKIMKey) ([]byte, error) {
	var attachments []domain.AttachmentContent
	if len(msg.Attachments) > 0 {
		var err error
		if attachments, err = w.store.MessageAttachments(ctx, msg.SubscriptionID, msg.ID); err != nil {
			return nil, fmt.Errorf("load attachments: %w", err)
		}
	}
	data, err := w.render(msg, w.now(), attachments, dkim)
	if err != nil {
		return nil, &domain.Error{Code: domain.CodeInvalid, Message: "render", Cause: err}
	}
	return data, nil
}

// finish records a final outcome and completes the job in the same transaction.
func (w *DeliveryWorker) finish(ctx context.Context, job *river.Job[DeliverMessageArgs], msg *domain.Message, rec domain.AttemptRecord) error {
	err := w.store.RecordAttempt(ctx, msg.SubscriptionID, rec, func(ctx context.Context, tx pgx.Tx) error {
		_, err := river.JobCompleteTx[*riverpgxv5.Driver](ctx, tx, job)
		return err
	})
	if err == nil {
		w.observe(msg, rec)
	}
	return err
}

// DeferredError makes River retry the job with backoff; the recipients'
// deferral is already recorded.
type DeferredError struct{ Reason string }

func (e *DeferredError) Error() string { return "delivery deferred: " + e.Reason }

func failAll(msg *domain.Message, reason string) domain.AttemptRecord {
	var changed []domain.Recipient
	for i := range msg.Recipients {
		r := &msg.Recipients[i]
		if r.Status.Final() {
			continue
		}
		r.Status, r.LastReply = domain.RecipientFailed, reason
		changed = append(changed, *r)
	}
	return domain.AttemptRecord{MessageID: msg.ID, Changed: changed, State: domain.SettledState(msg.Recipients), LastError: reason}
}

// summarizeFailures names the recipients not (yet) delivered and their last replies.
func summarizeFailures(recipients []domain.Recipient) string {
	var parts []string
	for _, r := range recipients {
		if r.Status == domain.RecipientDelivered {
			continue
		}
		parts = append(parts, fmt.Sprintf("%s: %s %d %s", r.Email, r.Status, r.LastCode, r.LastReply))
	}
	return strings.Join(parts, "; ")
}
