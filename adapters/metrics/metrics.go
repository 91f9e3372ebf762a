// Package metrics owns Mailgate's Prometheus registry and collectors. The
// registry is created here and injected; nothing registers globally.
package metrics

import (
	"net/http"
	"strconv"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
)

// Metrics holds the registry and the gateway's collectors.
type Metrics struct {
	Registry        *prometheus.Registry
	httpRequests    *prometheus.CounterVec
	httpDuration    *prometheus.HistogramVec
	deliveryReplies *prometheus.CounterVec
	webhooks        *prometheus.CounterVec
}

// New creates a registry with the Go and process collectors and Mailgate's own.
func New() *Metrics {
	reg := prometheus.NewRegistry()
	m := &Metrics{
		Registry: reg,
		httpRequests: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "mailgate_http_requests_total",
			Help: "HTTP requests served, by method, route and status code.",
		}, []string{"method", "route", "code"}),
		httpDuration: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "mailgate_http_request_duration_seconds",
			Help:    "HTTP request latency, by method and route.",
			Buckets: []float64{.001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5},
		}, []string{"method", "route"}),
		deliveryReplies: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "mailgate_smtp_replies_total",
			Help: "SMTP replies per recipient, by reply class (2xx, 4xx, 5xx, none).",
		}, []string{"class"}),
		webhooks: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "mailgate_webhook_deliveries_total",
			Help: "Webhook deliveries by outcome (delivered, failed, disabled, dropped).",
		}, []string{"outcome"}),
	}
	reg.MustRegister(
		collectors.NewGoCollector(),
		collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}),
		m.httpRequests, m.httpDuration, m.deliveryReplies, m.webhooks,
	)
	return m
}

// ObserveRequest records one HTTP request.
func (m *Metrics) ObserveRequest(method, route string, status int, elapsed time.Duration) {
	m.httpRequests.WithLabelValues(method, route, strconv.Itoa(status)).Inc()
	m.httpDuration.WithLabelValues(method, route).Observe(elapsed.Seconds())
}

// ObserveReply records one recipient's SMTP reply code (0: no reply).
func (m *Metrics) ObserveReply(code int) {
	class := "none"
	if code >= 200 && code < 600 {
		class = strconv.Itoa(code/100) + "xx"
	}
	m.deliveryReplies.WithLabelValues(class).Inc()
}

// Handler serves the registry in the Prometheus exposition format.
func (m *Metrics) Handler() http.Handler {
	return promhttp.HandlerFor(m.Registry, promhttp.HandlerOpts{Registry: m.Registry})
}

// ObserveWebhook records one webhook delivery outcome.
func (m *Metrics) ObserveWebhook(outcome string) { m.webhooks.WithLabelValues(outcome).Inc() }
