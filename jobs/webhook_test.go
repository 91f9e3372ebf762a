package jobs

import (
	"context"
	"io"
	"log/slog"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/riverqueue/river"
	"github.com/riverqueue/river/rivertype"

	"github.com/mailgate/mailgate/domain"
)

type fakeWebhookStore struct {
	hook    domain.Webhook
	event   domain.Event
	results []string
}

func (f *fakeWebhookStore) WebhookDelivery(context.Context, uuid.UUID, uuid.UUID, int64) (domain.Webhook, domain.Event, error) {
	return f.hook, f.event, nil
}

func (f *fakeWebhookStore) RecordWebhookResult(_ context.Context, _, _ uuid.UUID, ok bool, disable string) error {
	switch {
	case ok:
		f.results = append(f.results, "ok")
	case disable != "":
		f.results = append(f.results, "disabled")
	default:
		f.results = append(f.results, "failed")
	}
	return nil
}

type fakeSender struct{ status int }

func (f fakeSender) Send(context.Context, domain.WebhookRequest) domain.WebhookResult {
	return domain.WebhookResult{StatusCode: f.status}
}

type countingObserver map[string]int

func (c countingObserver) ObserveWebhook(outcome string) { c[outcome]++ }

// TestWebhookWorkerDisablesAfterADay drives the worker with a fixed clock:
// failures are retried within the window and disable the endpoint after it.
func TestWebhookWorkerDisablesAfterADay(t *testing.T) {
	t.Parallel()
	now := time.Date(2026, 5, 1, 12, 0, 0, 0, time.UTC)
	job := &river.Job[DeliverWebhookArgs]{JobRow: &rivertype.JobRow{}, Args: DeliverWebhookArgs{SubscriptionID: uuid.New(), WebhookID: uuid.New(), EventID: 7}}
	tests := []struct {
		name     string
		status   int
		age      time.Duration
		wantErr  bool
		want     string
		observed string
	}{
		{"Delivered", 204, time.Minute, false, "ok", "delivered"},
		{"FailureWithinTheWindowRetries", 503, time.Hour, true, "failed", "failed"},
		{"FailureAfterADayDisables", 503, 25 * time.Hour, false, "disabled", "disabled"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			store := &fakeWebhookStore{
				hook:  domain.Webhook{ID: job.Args.WebhookID, URL: "https://hooks.example/x", Status: domain.WebhookActive, Secrets: [][]byte{[]byte("s")}},
				event: domain.Event{Sequence: 7, Type: "sent", CreatedAt: now.Add(-tt.age)},
			}
			observed := countingObserver{}
			w := NewDeliverWebhookWorker(store, fakeSender{status: tt.status}, observed, slog.New(slog.NewTextHandler(io.Discard, nil)))
			w.now = func() time.Time { return now }
			err := w.Work(context.Background(), job)
			if (err != nil) != tt.wantErr || len(store.results) != 1 || store.results[0] != tt.want || observed[tt.observed] != 1 {
				t.Fatalf("err %v, results %v, observed %v", err, store.results, observed)
			}
		})
	}
	t.Run("DisabledEndpointIsDropped", func(t *testing.T) {
		t.Parallel()
		store := &fakeWebhookStore{hook: domain.Webhook{Status: domain.WebhookDisabled}}
		observed := countingObserver{}
		w := NewDeliverWebhookWorker(store, fakeSender{status: 200}, observed, slog.New(slog.NewTextHandler(io.Discard, nil)))
		if err := w.Work(context.Background(), job); err != nil || len(store.results) != 0 || observed["dropped"] != 1 {
			t.Fatalf("a disabled endpoint was called: %v %v", err, store.results)
		}
	})
}

func TestBackoffPolicyGrowsAndCaps(t *testing.T) {
	t.Parallel()
	p := &BackoffPolicy{Base: time.Second, Max: time.Minute}
	prev := time.Duration(0)
	for attempt := 1; attempt <= 12; attempt++ {
		d := time.Until(p.NextRetry(&rivertype.JobRow{Attempt: attempt}))
		nominal := min(time.Second<<(attempt-1), time.Minute)
		if d < nominal*3/4-time.Millisecond || d > nominal*5/4+time.Millisecond {
			t.Fatalf("attempt %d: delay %v outside ±25%% of %v", attempt, d, nominal)
		}
		if nominal == time.Minute && prev == time.Minute {
			continue
		}
		prev = nominal
	}
}

// River inserts a job given a ScheduledAt as scheduled; the webhook hook
// makes one that is already due available, and leaves future ones alone.
func TestAvailableWhenDue(t *testing.T) {
	t.Parallel()
	past, future := time.Now().Add(-time.Hour), time.Now().Add(time.Hour)
	for _, tc := range []struct {
		state rivertype.JobState
		at    *time.Time
		want  rivertype.JobState
	}{
		{rivertype.JobStateScheduled, &past, rivertype.JobStateAvailable},
		{rivertype.JobStateScheduled, &future, rivertype.JobStateScheduled},
		{rivertype.JobStatePending, &past, rivertype.JobStatePending},
		{rivertype.JobStateAvailable, nil, rivertype.JobStateAvailable},
	} {
		p := &rivertype.JobInsertParams{State: tc.state, ScheduledAt: tc.at}
		if err := availableWhenDue(context.Background(), p); err != nil || p.State != tc.want {
			t.Errorf("%s at %v became %s (%v), want %s", tc.state, tc.at, p.State, err, tc.want)
		}
	}
}
