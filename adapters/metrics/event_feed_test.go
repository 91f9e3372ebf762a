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

func TestRegisterEventFeed(t *testing.T) {
	t.Parallel()
	logger := slog.New(slog.NewTextHandler(io.Discard, nil))

	t.Run("OKReportsTheLagOnEachScrape", func(t *testing.T) {
		t.Parallel()
		m := metrics.New(metrics.Options{})
		lag := 1500 * time.Millisecond
		m.RegisterEventFeed(func(ctx context.Context) (time.Duration, error) {
			if _, ok := ctx.Deadline(); !ok {
				t.Error("the lag is read without a deadline; a slow database would stall the scrape")
			}
			return lag, nil
		}, logger)
		if got := gauge(t, m, "mailgate_event_feed_lag_seconds"); got == nil || *got != 1.5 {
			t.Fatalf("mailgate_event_feed_lag_seconds = %v, want 1.5", got)
		}
		lag = 4 * time.Second
		if got := gauge(t, m, "mailgate_event_feed_lag_seconds"); got == nil || *got != 4 {
			t.Fatalf("after the lag grew, mailgate_event_feed_lag_seconds = %v, want 4", got)
		}
		if got := gauge(t, m, "mailgate_event_feed_stats_up"); got == nil || *got != 1 {
			t.Fatalf("mailgate_event_feed_stats_up = %v, want 1", got)
		}
	})

	t.Run("ErrQueryFailsReportsDownAndNoLag", func(t *testing.T) {
		t.Parallel()
		m := metrics.New(metrics.Options{})
		m.RegisterEventFeed(func(context.Context) (time.Duration, error) { return 0, errors.New("statement timeout") }, logger)
		if got := gauge(t, m, "mailgate_event_feed_stats_up"); got == nil || *got != 0 {
			t.Fatalf("mailgate_event_feed_stats_up = %v, want 0", got)
		}
		// No sample rather than a made-up 0, which would read as "all served".
		if got := gauge(t, m, "mailgate_event_feed_lag_seconds"); got != nil {
			t.Fatalf("mailgate_event_feed_lag_seconds = %v after a failed query, want no sample", *got)
		}
	})
}

// gauge scrapes the registry and returns the value of the unlabelled gauge
// name, or nil when it has no sample.
func gauge(t *testing.T, m *metrics.Metrics, name string) *float64 {
	t.Helper()
	families, err := m.Registry.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range families {
		if f.GetName() != name {
			continue
		}
		if f.GetType().String() != "GAUGE" || len(f.GetMetric()) != 1 {
			t.Fatalf("%s: want one gauge sample, got %v", name, f)
		}
		v := f.GetMetric()[0].GetGauge().GetValue()
		return &v
	}
	return nil
}
