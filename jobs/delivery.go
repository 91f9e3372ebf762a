// Package jobs holds Mailgate's River job arguments and workers. Workers call
// domain rules and ports; SQL and SMTP live in the adapters.
package jobs

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"strings"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"
	"github.com/riverqueue/river"
	"github.com/riverqueue/river/rivertype"

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

// Hooks implements river.JobArgsWithHooks: a delivery's fair-queuing tag is
// a ScheduledAt in the past, and such a job must be fetchable at once.
func (DeliverMessageArgs) Hooks() []rivertype.Hook {
	return []rivertype.Hook{river.HookInsertBeginFunc(availableWhenDue)}
}

// DeliveryStore is the persistence the delivery worker needs.
type DeliveryStore interface {
	LoadDelivery(ctx context.Context, tenant, id uuid.UUID, countSending bool) (*domain.Message, domain.DeliveryContext, error)
	JournalAttempt(ctx context.Context, tenant, id uuid.UUID, attempt int, journal []domain.Recipient) error
	ReserveSendSlot(ctx context.Context, tenant, id uuid.UUID) (time.Time, error)
	// RecordAttempt writes an attempt's outcome; a completeJob other than 0
	// is completed in the same transaction.
	RecordAttempt(ctx context.Context, tenant uuid.UUID, rec domain.AttemptRecord, completeJob int64) error
	MessageAttachments(ctx context.Context, tenant, id uuid.UUID) ([]domain.AttachmentContent, error)
}

// Transport hands one message to the next hop in one SMTP transaction and
// returns one reply per envelope recipient. It calls beforeData with the
// recipients the relay accepted, after RCPT and before the message data;
// when beforeData fails nothing is sent and every recipient is deferred.
type Transport interface {
	Deliver(ctx context.Context, from string, to []string, payload domain.RenderedMessage, beforeData func(ctx context.Context, accepted []string) error) []domain.RecipientReply
}

// DeliveryObserver counts outcomes for metrics.
type DeliveryObserver interface {
	ObserveRecipient(tenant uuid.UUID, outcome string)
	ObserveSettled(latency time.Duration)
}

// PhaseObserver times the phases of each delivery attempt: load, envelope,
// journal, data and record.
type PhaseObserver interface {
	ObservePhase(phase string, d time.Duration)
}

// RenderFunc builds the RFC 5322 bytes of a message with its attachments,
// signed with dkim when it is not nil; downgrade writes UTF-8 addresses in
// 7 bits for a relay without SMTPUTF8.
type RenderFunc func(msg *domain.Message, date time.Time, attachments []domain.AttachmentContent, dkim *domain.DKIMKey, downgrade bool) ([]byte, error)

// Delivery timing defaults.
const (
	// DefaultDeliveryTimeout bounds one attempt's SMTP transaction.
	DefaultDeliveryTimeout = 15 * time.Minute
	// recordTimeout bounds writing an attempt's journal or outcome, which
	// runs detached from the job's context so a cancelled or timed-out
	// attempt still says what happened.
	recordTimeout = 20 * time.Second
	// holdRecheck is how often a suspended tenant's held message looks
	// again; reinstatement releases held messages at once.
	holdRecheck = time.Minute
)

// DeliveryWorker delivers a queued message to its pending recipients.
type DeliveryWorker struct {
	river.WorkerDefaults[DeliverMessageArgs]
	store     DeliveryStore
	transport Transport
	render    RenderFunc
	logger    *slog.Logger
	now       func() time.Time
	maxAge    time.Duration
	// attemptTimeout bounds the SMTP transaction; the job's timeout adds
	// the time to record its outcome.
	attemptTimeout time.Duration
	// maxPerTenant caps one tenant's concurrent deliveries across every
	// worker process (0: no cap).
	maxPerTenant int
	observer     DeliveryObserver
	phases       PhaseObserver
	// addresses, when set, gives outgoing mail a VERP return path and,
	// for tenants that route replies, a Reply-To (nil: the sender's own
	// address, as without an inbound listener).
	addresses *domain.InboundAddresses
}

// WithInboundAddresses makes outgoing mail carry the return path and
// Reply-To that bring its bounces and replies back to the gateway.
func (w *DeliveryWorker) WithInboundAddresses(a *domain.InboundAddresses) *DeliveryWorker {
	w.addresses = a
	return w
}

// ObservePhases reports each attempt's phase durations to p.
func (w *DeliveryWorker) ObservePhases(p PhaseObserver) *DeliveryWorker {
	w.phases = p
	return w
}

// phase reports the time since start as one phase and returns now.
func (w *DeliveryWorker) phase(name string, start time.Time) time.Time {
	now := time.Now()
	if w.phases != nil {
		w.phases.ObservePhase(name, now.Sub(start))
	}
	return now
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

// LimitPerTenant caps one tenant's concurrent deliveries across every worker
// process (0: no cap; fairness between tenants comes from the job order).
func (w *DeliveryWorker) LimitPerTenant(n int) *DeliveryWorker {
	w.maxPerTenant = n
	return w
}

// WithAttemptTimeout bounds one attempt's SMTP transaction (0: the default).
func (w *DeliveryWorker) WithAttemptTimeout(d time.Duration) *DeliveryWorker {
	if d > 0 {
		w.attemptTimeout = d
	}
	return w
}

// NewDeliveryWorker returns a worker delivering through transport; deferred
// recipients fail once the message has waited maxAge (0: domain.MaxDeliveryAge).
func NewDeliveryWorker(store DeliveryStore, transport Transport, render RenderFunc, maxAge time.Duration, logger *slog.Logger) *DeliveryWorker {
	if maxAge <= 0 {
		maxAge = domain.MaxDeliveryAge
	}
	return &DeliveryWorker{store: store, transport: transport, render: render, logger: logger, now: time.Now, maxAge: maxAge, attemptTimeout: DefaultDeliveryTimeout}
}

// JobTimeout is the whole job's bound: the SMTP transaction plus writing
// its journal and outcome. River rescues a job whose worker vanished after
// this (see NewWorkerClient).
func (w *DeliveryWorker) JobTimeout() time.Duration {
	return w.attemptTimeout + 2*recordTimeout
}

// Timeout implements river.Worker.
func (w *DeliveryWorker) Timeout(*river.Job[DeliverMessageArgs]) time.Duration {
	return w.JobTimeout()
}

// Work implements river.Worker.
func (w *DeliveryWorker) Work(ctx context.Context, job *river.Job[DeliverMessageArgs]) error {
	tenant, id := job.Args.SubscriptionID, job.Args.MessageID
	log := w.logger.With("message_id", id, "subscription_id", tenant, "attempt", job.Attempt)
	began := time.Now()
	msg, dc, err := w.store.LoadDelivery(ctx, tenant, id, w.maxPerTenant > 0)
	mark := w.phase("load", began)
	if errors.Is(err, domain.ErrNotFound) {
		log.Warn("delivery job for a message that no longer exists; dropping it")
		return nil
	}
	if err != nil {
		return fmt.Errorf("load delivery: %w", err)
	}
	switch verdict, reason := domain.DeliveryVerdict(msg, dc); verdict {
	case domain.VerdictDone:
		return nil
	case domain.VerdictHold:
		log.Info("delivery held", "reason", reason)
		return river.JobSnooze(holdRecheck)
	case domain.VerdictRefuse:
		log.Warn("delivery refused", "reason", reason)
		return w.refuse(ctx, job, msg, reason)
	}
	if w.maxPerTenant > 0 && dc.Sending >= w.maxPerTenant {
		// A short, jittered wait: the cap is an operator's choice, off by default.
		return river.JobSnooze(time.Duration(20+rand.IntN(40)) * time.Millisecond)
	}
	if dc.MaxSendRate > 0 {
		slot := msg.SendSlot
		if slot.IsZero() {
			if slot, err = w.store.ReserveSendSlot(ctx, tenant, id); err != nil {
				return err
			}
		}
		if wait := slot.Sub(w.now()); wait > 2*time.Millisecond {
			return river.JobSnooze(wait)
		}
	}
	suppressed := msg.Suppress(dc.Suppressed)
	var (
		replies  []domain.RecipientReply
		mailbox  []uuid.UUID
		external []string
	)
	for _, r := range msg.Pending() {
		switch {
		case dc.Sandbox && r.AccountID == uuid.Nil:
			// Sandbox: accepted, stored and evented like a delivery, but nothing leaves.
			replies = append(replies, domain.RecipientReply{Email: r.Email, Code: 250, Text: "2.0.0 sandbox: accepted, not sent"})
		case r.AccountID != uuid.Nil:
			// Internal delivery: the account's inbox, no SMTP; written with the outcome.
			replies = append(replies, domain.RecipientReply{Email: r.Email, Code: 250, Text: "2.0.0 delivered to the account's inbox"})
			mailbox = append(mailbox, r.AccountID)
		default:
			external = append(external, r.Email)
		}
	}
	if len(external) > 0 {
		msg.ReplyTo = w.addresses.ReplyTo(msg, dc)
		payload, err := w.build(ctx, msg, dc.DKIM)
		if err != nil {
			var de *domain.Error
			if errors.As(err, &de) && de.Code != domain.CodeInternal {
				// A message that can't be built never will be: fail it rather than retry.
				return w.refuse(ctx, job, msg, "could not build the message: "+err.Error())
			}
			return err
		}
		attemptCtx, cancel := context.WithTimeout(ctx, w.attemptTimeout)
		var journalErr error
		mark = time.Now()
		replies = append(replies, w.transport.Deliver(attemptCtx, w.addresses.ReturnPath(msg, dc), external, payload, func(_ context.Context, accepted []string) error {
			mark = w.phase("envelope", mark)
			journalErr = w.journal(ctx, job, msg, accepted)
			mark = w.phase("journal", mark)
			return journalErr
		})...)
		cancel()
		mark = w.phase("data", mark)
		if de := (*domain.Error)(nil); errors.As(journalErr, &de) && de.Code == domain.CodeConflict {
			// Nothing was sent and the message is no longer waiting for
			// delivery (settled or cancelled meanwhile): not ours to record.
			log.Warn("delivery abandoned", "reason", de.Message)
			return nil
		}
	}
	// Past the delivery age, a deferral is final however many attempts are left.
	lastAttempt := job.Attempt >= job.MaxAttempts || (!msg.QueuedAt.IsZero() && w.now().Sub(msg.QueuedAt) > w.maxAge)
	settle := func(msg *domain.Message, suppressed []domain.Recipient) (domain.AttemptRecord, error) {
		changed := msg.ApplyReplies(replies, lastAttempt)
		rec := domain.AttemptRecord{
			MessageID:       id,
			Changed:         append(suppressed, changed...),
			State:           domain.SettledState(msg.Recipients),
			MailboxAccounts: mailbox,
			Suppress:        domain.HardBounces(changed, w.now()),
			LastError:       summarizeFailures(msg.Recipients),
			ExpectedVersion: msg.Version,
		}
		return rec, msg.Settle(rec.State)
	}
	rec, err := settle(msg, suppressed)
	if err != nil {
		return fmt.Errorf("settle the attempt: %w", err)
	}
	log.Debug("delivery attempt", "state", rec.State, "external", len(external), "internal", len(mailbox))
	mark = time.Now()
	for tries := 1; ; tries++ {
		err := w.record(ctx, job, msg, rec)
		if err == nil {
			break
		}
		if domain.ErrorCodeOf(err) != domain.CodeVersionMismatch || tries == maxRecordTries {
			return err
		}
		// Someone else wrote the message during the attempt (a bounce
		// report after the fact): the replies are applied again to the
		// message as it is now, so what that writer decided stands.
		fresh, freshDC, err := w.store.LoadDelivery(ctx, tenant, id, false)
		if errors.Is(err, domain.ErrNotFound) {
			log.Warn("message deleted during its delivery attempt; nothing to record")
			return nil
		}
		if err != nil {
			return fmt.Errorf("reload after a concurrent change: %w", err)
		}
		if fresh.State.Final() {
			log.Info("message settled by another writer during the attempt", "state", fresh.State)
			return nil
		}
		msg = fresh
		if rec, err = settle(msg, msg.Suppress(freshDC.Suppressed)); err != nil {
			return fmt.Errorf("settle the attempt: %w", err)
		}
	}
	w.phase("record", mark)
	if rec.State.Final() {
		return nil
	}
	if errors.Is(ctx.Err(), context.Canceled) {
		// The worker is stopping: the next one picks the message up at once,
		// without using an attempt.
		return river.JobSnooze(0)
	}
	return &DeferredError{Reason: rec.LastError}
}

// journal writes the attempt journal for the recipients the relay accepted,
// detached from the job's context (bounded on its own) so its commit is
// never torn by a cancel: either it is durable before the data goes out, or
// nothing is sent.
func (w *DeliveryWorker) journal(ctx context.Context, job *river.Job[DeliverMessageArgs], msg *domain.Message, accepted []string) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	entries, err := msg.BeginAttempt(accepted, w.now())
	if err != nil {
		return err
	}
	jctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), recordTimeout)
	defer cancel()
	if err := w.store.JournalAttempt(jctx, msg.SubscriptionID, msg.ID, job.Attempt, entries); err != nil {
		return fmt.Errorf("attempt journal: %w", err)
	}
	// The journal is a new version of the message; the outcome expects it.
	msg.Version++
	return nil
}

// maxRecordTries bounds how often an outcome is decided again after another
// writer changed the message during the attempt; each retry follows a real
// concurrent write, so more than a few means something keeps rewriting it.
const maxRecordTries = 4

// record writes an attempt's outcome detached from the job's context, so a
// cancelled or timed-out job still records what the relay said. A failure
// leaves the journal marks in place: the next attempt flags those recipients.
func (w *DeliveryWorker) record(ctx context.Context, job *river.Job[DeliverMessageArgs], msg *domain.Message, rec domain.AttemptRecord) error {
	rctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), recordTimeout)
	defer cancel()
	var complete int64
	if _, err := river.ClientFromContextSafely[pgx.Tx](ctx); rec.State.Final() && err == nil {
		// The final state and the job's completion commit together, so a
		// worker killed right after leaves no job running for a settled message.
		complete = job.ID
	}
	if err := w.store.RecordAttempt(rctx, msg.SubscriptionID, rec, complete); err != nil {
		return fmt.Errorf("record attempt: %w", err)
	}
	w.observe(msg, rec)
	return nil
}

// build renders the message once per attempt with its attachments, and
// once more downgraded when it has UTF-8 addresses.
func (w *DeliveryWorker) build(ctx context.Context, msg *domain.Message, dkim *domain.DKIMKey) (domain.RenderedMessage, error) {
	var attachments []domain.AttachmentContent
	if len(msg.Attachments) > 0 {
		var err error
		if attachments, err = w.store.MessageAttachments(ctx, msg.SubscriptionID, msg.ID); err != nil {
			return domain.RenderedMessage{}, fmt.Errorf("load attachments: %w", err)
		}
	}
	// The Date header is the message's, not the attempt's: a retry carries
	// the same one (RFC 5322: when the message was ready to go).
	date := msg.QueuedAt
	if date.IsZero() {
		date = w.now()
	}
	var payload domain.RenderedMessage
	var err error
	if payload.Data, err = w.render(msg, date, attachments, dkim, false); err != nil {
		return domain.RenderedMessage{}, &domain.Error{Code: domain.CodeInvalid, Message: "render", Cause: err}
	}
	if msg.NeedsSMTPUTF8() && domain.IsASCII(msg.SenderEmail) {
		// A UTF-8 sender can't be downgraded: the relay then refuses everyone.
		if payload.Downgraded, err = w.render(msg, date, attachments, dkim, true); err != nil {
			return domain.RenderedMessage{}, &domain.Error{Code: domain.CodeInvalid, Message: "render downgraded", Cause: err}
		}
	}
	return payload, nil
}

// DeferredError makes River retry the job with backoff; the recipients'
// deferral is already recorded.
type DeferredError struct{ Reason string }

func (e *DeferredError) Error() string { return "delivery deferred: " + e.Reason }

// refuse fails every unsettled recipient with reason (a sender no longer
// authorised, a message that can't be built) and records it: the message
// settles along the state machine, without an attempt.
func (w *DeliveryWorker) refuse(ctx context.Context, job *river.Job[DeliverMessageArgs], msg *domain.Message, reason string) error {
	rec := msg.RefuseAll(reason)
	if err := msg.Settle(rec.State); err != nil {
		return fmt.Errorf("refuse delivery: %w", err)
	}
	return w.record(ctx, job, msg, rec)
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
