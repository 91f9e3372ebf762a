package jobs

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"strconv"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"
	"github.com/riverqueue/river"
	"github.com/riverqueue/river/rivertype"

	"github.com/mailgate/mailgate/domain"
)

// QueueWebhooks delivers events to tenants' endpoints, apart from mail so a
// slow endpoint never holds up delivery.
const QueueWebhooks = "webhooks"

// DeliverWebhookArgs is one event for one endpoint.
type DeliverWebhookArgs struct {
	SubscriptionID uuid.UUID `json:"subscription_id"`
	WebhookID      uuid.UUID `json:"webhook_id"`
	EventID        int64     `json:"event_id"`
}

// Kind implements river.JobArgs.
func (DeliverWebhookArgs) Kind() string { return "deliver_webhook" }

// InsertOpts implements river.JobArgsWithInsertOpts. The worker gives up by
// the event's age (24 hours), so attempts are generous.
func (DeliverWebhookArgs) InsertOpts() river.InsertOpts {
	return river.InsertOpts{Queue: QueueWebhooks, MaxAttempts: 50}
}

// Hooks implements river.JobArgsWithHooks.
func (DeliverWebhookArgs) Hooks() []rivertype.Hook {
	return []rivertype.Hook{river.HookInsertBeginFunc(availableWhenDue)}
}

// availableWhenDue inserts a job whose scheduled time has already passed as
// available. River inserts every job given a ScheduledAt as scheduled and
// leaves it to its scheduler, which runs every few seconds; webhook jobs
// carry a fair-queue tag in the past as their ScheduledAt (River fetches by
// it) and must be fetchable at once.
func availableWhenDue(_ context.Context, params *rivertype.JobInsertParams) error {
	if params.State == rivertype.JobStateScheduled && params.ScheduledAt != nil && !params.ScheduledAt.After(time.Now()) {
		params.State = rivertype.JobStateAvailable
	}
	return nil
}

// WebhookStore is the persistence the webhook worker needs.
type WebhookStore interface {
	WebhookDelivery(ctx context.Context, tenant, webhookID uuid.UUID, eventID int64) (domain.Webhook, domain.Event, error)
	RecordWebhookResult(ctx context.Context, tenant, id uuid.UUID, ok bool, disable string) error
}

// WebhookSender posts one event to one endpoint.
type WebhookSender interface {
	Send(ctx context.Context, req domain.WebhookRequest) domain.WebhookResult
}

// WebhookObserver counts deliveries by outcome (delivered, failed, disabled, dropped).
type WebhookObserver interface {
	ObserveWebhook(outcome string)
}

// DeliverWebhookWorker posts events and disables endpoints that keep failing.
type DeliverWebhookWorker struct {
	river.WorkerDefaults[DeliverWebhookArgs]
	store    WebhookStore
	sender   WebhookSender
	observer WebhookObserver
	logger   *slog.Logger
	now      func() time.Time
	// attemptTimeout is the sender's bound on one POST.
	attemptTimeout time.Duration
}

// DefaultWebhookAttemptTimeout bounds one POST unless configured otherwise:
// a slow endpoint holds a worker for at most this long, so it is also about
// the longest another tenant's delivery waits for a free worker.
const DefaultWebhookAttemptTimeout = 5 * time.Second

// webhookBookkeeping is the time a job gets beyond its POST for loading the
// endpoint and recording the result.
const webhookBookkeeping = 15 * time.Second

// NewDeliverWebhookWorker returns the webhook worker.
func NewDeliverWebhookWorker(store WebhookStore, sender WebhookSender, observer WebhookObserver, logger *slog.Logger) *DeliverWebhookWorker {
	return &DeliverWebhookWorker{store: store, sender: sender, observer: observer, logger: logger, now: time.Now, attemptTimeout: DefaultWebhookAttemptTimeout}
}

// WithAttemptTimeout tells the worker the sender's per-attempt timeout, so
// the job's own timeout leaves room for it.
func (w *DeliverWebhookWorker) WithAttemptTimeout(d time.Duration) *DeliverWebhookWorker {
	if d > 0 {
		w.attemptTimeout = d
	}
	return w
}

// Timeout bounds one POST and its bookkeeping.
func (w *DeliverWebhookWorker) Timeout(*river.Job[DeliverWebhookArgs]) time.Duration {
	return w.attemptTimeout + webhookBookkeeping
}

// Work implements river.Worker.
func (w *DeliverWebhookWorker) Work(ctx context.Context, job *river.Job[DeliverWebhookArgs]) error {
	a := job.Args
	hook, event, err := w.store.WebhookDelivery(ctx, a.SubscriptionID, a.WebhookID, a.EventID)
	if errors.Is(err, domain.ErrNotFound) {
		w.observer.ObserveWebhook("dropped") // endpoint deleted since
		return nil
	}
	if err != nil {
		return err
	}
	if hook.Status != domain.WebhookActive {
		w.observer.ObserveWebhook("dropped")
		return nil
	}
	body, err := json.Marshal(event.Payload())
	if err != nil {
		return err
	}
	res := w.sender.Send(ctx, domain.WebhookRequest{URL: hook.URL, Secrets: hook.Secrets, EventID: strconv.FormatInt(event.Sequence, 10), WebhookID: hook.ID.String(), Body: body})
	if res.Err == nil && res.StatusCode >= 200 && res.StatusCode < 300 {
		w.observer.ObserveWebhook("delivered")
		return w.store.RecordWebhookResult(ctx, a.SubscriptionID, hook.ID, true, "")
	}
	reason := fmt.Sprintf("HTTP %d", res.StatusCode)
	if res.Err != nil {
		reason = res.Err.Error()
	}
	if w.now().Sub(event.CreatedAt) >= domain.WebhookRetryWindow {
		w.observer.ObserveWebhook("disabled")
		w.logger.Warn("disabling a webhook that failed for a day", "webhook_id", hook.ID, "subscription_id", a.SubscriptionID, "reason", reason)
		return w.store.RecordWebhookResult(ctx, a.SubscriptionID, hook.ID, false, "deliveries failed for 24 hours; last: "+reason)
	}
	w.observer.ObserveWebhook("failed")
	if err := w.store.RecordWebhookResult(ctx, a.SubscriptionID, hook.ID, false, ""); err != nil {
		return err
	}
	return fmt.Errorf("webhook delivery failed: %s", reason)
}

// EnqueueWebhooksTx inserts webhook deliveries inside tx, with the events
// they carry. A job's QueueTag, when set, becomes its scheduled time, which
// River fetches available jobs by (after priority), so the tags order the
// queue; tags in the past leave the jobs available at once.
func (e *Enqueuer) EnqueueWebhooksTx(ctx context.Context, tx pgx.Tx, tenant uuid.UUID, jobs []domain.WebhookJob) error {
	params := make([]river.InsertManyParams, len(jobs))
	for i, j := range jobs {
		opts := DeliverWebhookArgs{}.InsertOpts()
		opts.ScheduledAt = j.QueueTag
		params[i] = river.InsertManyParams{Args: DeliverWebhookArgs{SubscriptionID: tenant, WebhookID: j.WebhookID, EventID: j.EventID}, InsertOpts: &opts}
	}
	_, err := e.client.InsertManyTx(ctx, tx, params)
	return err
}
