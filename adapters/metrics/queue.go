package metrics

import (
	"context"
	"log/slog"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/mailgate/mailgate/domain"
)

// QueueStat is the number of jobs in one queue and state, and for the
// available ones the age of the oldest.
type QueueStat = domain.QueueStat

// QueueStatsFunc reads queue statistics; implementations bound their own
// query with a statement timeout so a slow database can't stall a scrape.
type QueueStatsFunc func(ctx context.Context) ([]QueueStat, error)

// queueCollector reports River queue depth and age at scrape time.
type queueCollector struct {
	stats   QueueStatsFunc
	queues  []string
	timeout time.Duration
	logger  *slog.Logger
	jobs    *prometheus.Desc
	oldest  *prometheus.Desc
	up      *prometheus.Desc
}

// RegisterQueue adds the queue collector to the registry; queues are the
// names always reported, even when empty.
func (m *Metrics) RegisterQueue(stats QueueStatsFunc, queues []string, logger *slog.Logger) {
	m.Registry.MustRegister(&queueCollector{
		stats:   stats,
		queues:  queues,
		timeout: 3 * time.Second,
		logger:  logger,
		jobs:    prometheus.NewDesc("mailgate_queue_jobs", "River jobs by queue and state.", []string{"queue", "state"}, nil),
		oldest:  prometheus.NewDesc("mailgate_queue_oldest_job_age_seconds", "Age of the oldest available job, by queue (0 when none waits).", []string{"queue"}, nil),
		up:      prometheus.NewDesc("mailgate_queue_stats_up", "Whether the last queue statistics query succeeded.", nil, nil),
	})
}

func (c *queueCollector) Describe(ch chan<- *prometheus.Desc) {
	ch <- c.jobs
	ch <- c.oldest
	ch <- c.up
}

func (c *queueCollector) Collect(ch chan<- prometheus.Metric) {
	ctx, cancel := context.WithTimeout(context.Background(), c.timeout)
	defer cancel()
	stats, err := c.stats(ctx)
	if err != nil {
		c.logger.Warn("queue statistics", "error", err)
		ch <- prometheus.MustNewConstMetric(c.up, prometheus.GaugeValue, 0)
		return
	}
	ch <- prometheus.MustNewConstMetric(c.up, prometheus.GaugeValue, 1)
	// Known queues always report, so an empty queue reads 0 rather than no data.
	oldest := map[string]float64{}
	seen := map[string]bool{}
	for _, q := range c.queues {
		oldest[q] = 0
	}
	for _, s := range stats {
		seen[s.Queue+"/"+s.State] = true
		ch <- prometheus.MustNewConstMetric(c.jobs, prometheus.GaugeValue, float64(s.Jobs), s.Queue, s.State)
		if _, ok := oldest[s.Queue]; !ok {
			oldest[s.Queue] = 0
		}
		if s.State == "available" && !s.OldestAvailableAt.IsZero() {
			oldest[s.Queue] = max(oldest[s.Queue], time.Since(s.OldestAvailableAt).Seconds())
		}
	}
	for q, age := range oldest {
		ch <- prometheus.MustNewConstMetric(c.oldest, prometheus.GaugeValue, age, q)
		for _, state := range []string{"available", "running", "retryable", "scheduled"} {
			if !seen[q+"/"+state] {
				ch <- prometheus.MustNewConstMetric(c.jobs, prometheus.GaugeValue, 0, q, state)
			}
		}
	}
}
