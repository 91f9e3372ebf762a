package metrics_test

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"testing"
	"time"

	"github.com/mailgate/mailgate/adapters/metrics"
)

func TestRegisterPendingMessages(t *testing.T) {
	t.Parallel()
	logger := slog.New(slog.NewTextHandler(io.Discard, nil))

	t.Run("OKReportsCountAndAge", func(t *testing.T) {
		t.Parallel()
		m := metrics.New(metrics.Options{})
		pending := metrics.PendingMessages{Count: 210, OldestQueuedAt: time.Now().Add(-2 * time.Hour)}
		m.RegisterPendingMessages(func(ctx context.Context) (metrics.PendingMessages, error) {
			if _, ok := ctx.Deadline(); !ok {
				t.Error("read without a deadline; a slow database would stall the scrape")
			}
			return pending, nil
		}, logger)
		if got := gauge(t, m, "mailgate_pending_messages"); got == nil || *got != 210 {
			t.Fatalf("mailgate_pending_messages = %v, want 210", got)
		}
		if got := gauge(t, m, "mailgate_oldest_pending_message_age_seconds"); got == nil || *got < 7200 || *got > 7260 {
			t.Fatalf("mailgate_oldest_pending_message_age_seconds = %v, want about 7200", got)
		}
		pending = metrics.PendingMessages{}
		if got := gauge(t, m, "mailgate_oldest_pending_message_age_seconds"); got == nil || *got != 0 {
			t.Fatalf("with nothing pending, age = %v, want 0", got)
		}
		if got := gauge(t, m, "mailgate_pending_messages_stats_up"); got == nil || *got != 1 {
			t.Fatalf("mailgate_pending_messages_stats_up = %v, want 1", got)
		}
	})

	t.Run("ErrQueryFailsReportsDownAndNoFigures", func(t *testing.T) {
		t.Parallel()
		m := metrics.New(metrics.Options{})
		m.RegisterPendingMessages(func(context.Context) (metrics.PendingMessages, error) {
			return metrics.PendingMessages{}, errors.New("statement timeout")
		}, logger)
		if got := gauge(t, m, "mailgate_pending_messages_stats_up"); got == nil || *got != 0 {
			t.Fatalf("mailgate_pending_messages_stats_up = %v, want 0", got)
		}
		for _, name := range []string{"mailgate_pending_messages", "mailgate_oldest_pending_message_age_seconds"} {
			if got := gauge(t, m, name); got != nil {
				t.Fatalf("%s = %v after a failed query, want no sample", name, *got)
			}
		}
	})
}
