package metrics

import (
	"context"
	"log/slog"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/mailgate/mailgate/domain"
)

// PendingMessages is the database-wide count of messages waiting for
// delivery and when the oldest of them was queued (zero when none waits).
type PendingMessages = domain.PendingMessages

// PendingMessagesFunc reads the pending messages; implementations bound
// their own query with a statement timeout so a slow database can't stall a
// scrape.
type PendingMessagesFunc func(ctx context.Context) (PendingMessages, error)

// pendingCollector reports pending messages at scrape time.
type pendingCollector struct {
	read    PendingMessagesFunc
	timeout time.Duration
	logger  *slog.Logger
	now     func() time.Time
	count   *prometheus.Desc
	oldest  *prometheus.Desc
	up      *prometheus.Desc
}

// RegisterPendingMessages adds the pending messages gauges to the registry.
// Unlike the queue's oldest available job, the age covers every message not
// settled yet, whether its job is ready, scheduled for a later attempt or
// retrying: a relay that defers everything shows here within minutes, long
// before any message runs out of attempts.
func (m *Metrics) RegisterPendingMessages(read PendingMessagesFunc, logger *slog.Logger) {
	m.Registry.MustRegister(&pendingCollector{
		read:    read,
		timeout: 3 * time.Second,
		logger:  logger,
		now:     time.Now,
		count: prometheus.NewDesc("mailgate_pending_messages",
			"Messages queued or sending, database-wide (every replica reports the same figure: aggregate with max).", nil, nil),
		oldest: prometheus.NewDesc("mailgate_oldest_pending_message_age_seconds",
			"Age since queueing of the oldest message queued or sending, scheduled and retrying ones included, database-wide (0 when none waits; aggregate with max).", nil, nil),
		up: prometheus.NewDesc("mailgate_pending_messages_stats_up", "Whether the last pending messages query succeeded.", nil, nil),
	})
}

func (c *pendingCollector) Describe(ch chan<- *prometheus.Desc) {
	ch <- c.count
	ch <- c.oldest
	ch <- c.up
}

func (c *pendingCollector) Collect(ch chan<- prometheus.Metric) {
	ctx, cancel := context.WithTimeout(context.Background(), c.timeout)
	defer cancel()
	p, err := c.read(ctx)
	if err != nil {
		c.logger.Warn("pending messages", "error", err)
		ch <- prometheus.MustNewConstMetric(c.up, prometheus.GaugeValue, 0)
		return
	}
	ch <- prometheus.MustNewConstMetric(c.up, prometheus.GaugeValue, 1)
	ch <- prometheus.MustNewConstMetric(c.count, prometheus.GaugeValue, float64(p.Count))
	var age float64
	if !p.OldestQueuedAt.IsZero() {
		age = max(c.now().Sub(p.OldestQueuedAt).Seconds(), 0)
	}
	ch <- prometheus.MustNewConstMetric(c.oldest, prometheus.GaugeValue, age)
}
