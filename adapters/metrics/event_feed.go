package metrics

import (
	"context"
	"log/slog"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// EventFeedLagFunc reads how long the event feed holds committed events
// back (0 when none waits); implementations bound their own query with a
// statement timeout so a slow database can't stall a scrape.
type EventFeedLagFunc func(ctx context.Context) (time.Duration, error)

// eventFeedCollector reports the event feed's lag at scrape time.
type eventFeedCollector struct {
	lag     EventFeedLagFunc
	timeout time.Duration
	logger  *slog.Logger
	lagDesc *prometheus.Desc
	up      *prometheus.Desc
}

// RegisterEventFeed adds the event feed's lag to the registry. The feed
// serves an event only once every transaction older than it has finished,
// anywhere on the database server, so one long transaction holds every
// tenant's feed back; this gauge is how an operator sees it.
func (m *Metrics) RegisterEventFeed(lag EventFeedLagFunc, logger *slog.Logger) {
	m.Registry.MustRegister(&eventFeedCollector{
		lag:     lag,
		timeout: 3 * time.Second,
		logger:  logger,
		lagDesc: prometheus.NewDesc("mailgate_event_feed_lag_seconds",
			"Age of the oldest committed event the event feed does not serve yet, held back by an older transaction still running on the database server (0 when none waits).", nil, nil),
		up: prometheus.NewDesc("mailgate_event_feed_stats_up", "Whether the last event feed lag query succeeded.", nil, nil),
	})
}

func (c *eventFeedCollector) Describe(ch chan<- *prometheus.Desc) {
	ch <- c.lagDesc
	ch <- c.up
}

func (c *eventFeedCollector) Collect(ch chan<- prometheus.Metric) {
	ctx, cancel := context.WithTimeout(context.Background(), c.timeout)
	defer cancel()
	lag, err := c.lag(ctx)
	if err != nil {
		c.logger.Warn("event feed lag", "error", err)
		ch <- prometheus.MustNewConstMetric(c.up, prometheus.GaugeValue, 0)
		return
	}
	ch <- prometheus.MustNewConstMetric(c.up, prometheus.GaugeValue, 1)
	ch <- prometheus.MustNewConstMetric(c.lagDesc, prometheus.GaugeValue, lag.Seconds())
}
