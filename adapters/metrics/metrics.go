// Package metrics owns Mailgate's Prometheus registry and collectors. The
// registry is created here and injected; nothing registers globally.
package metrics

import (
	"cmp"
	"net/http"
	"runtime"
	"strconv"
	"sync"
	"time"

	"github.com/google/uuid"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
)

// Delivery outcomes, the values of the outcome label.
var deliveryOutcomes = []string{"sent", "deferred", "bounced", "failed", "suppressed"} //nolint:gochecknoglobals // read-only: the closed label set

// Metrics holds the registry and the gateway's collectors.
type Metrics struct {
	Registry        *prometheus.Registry
	httpRequests    *prometheus.CounterVec
	httpDuration    *prometheus.HistogramVec
	accepted        *prometheus.CounterVec
	deliveries      *prometheus.CounterVec
	deliveryLatency prometheus.Histogram
	deliveryReplies *prometheus.CounterVec
	deferrals       *prometheus.CounterVec
	webhooks        *prometheus.CounterVec
	jobs            *prometheus.CounterVec
	jobDuration     *prometheus.HistogramVec
	workers         prometheus.Gauge
	tenants         *tenantLabels
}

// Options shape the registry.
type Options struct {
	// TenantLabels is how many distinct tenants get their own label value;
	// later ones are counted as "other", so cardinality stays bounded. 0
	// folds every tenant into "all".
	TenantLabels int
	// Build names the running binary; it becomes mailgate_build_info.
	Build BuildInfo
}

// BuildInfo is the build a process reports as the labels of
// mailgate_build_info, so dashboards can tell which version each replica runs.
type BuildInfo struct {
	Version   string
	Commit    string
	GoVersion string // runtime.Version() when empty
}

// New creates a registry with the Go and process collectors and Mailgate's own.
func New(opts Options) *Metrics {
	reg := prometheus.NewRegistry()
	m := &Metrics{
		Registry: reg,
		tenants:  &tenantLabels{limit: opts.TenantLabels, seen: map[uuid.UUID]bool{}},
		httpRequests: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "mailgate_http_requests_total",
			Help: "HTTP requests served, by method, route and status code.",
		}, []string{"method", "route", "code"}),
		httpDuration: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "mailgate_http_request_duration_seconds",
			Help:    "HTTP request latency, by method and route.",
			Buckets: []float64{.001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5},
		}, []string{"method", "route"}),
		accepted: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "mailgate_messages_accepted_total",
			Help: "Messages accepted by the API (drafts and sends), by tenant (bounded: later tenants count as other).",
		}, []string{"tenant"}),
		deliveries: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "mailgate_deliveries_total",
			Help: "Recipient delivery outcomes (sent, deferred, bounced, failed, suppressed), by tenant (bounded).",
		}, []string{"outcome", "tenant"}),
		deliveryLatency: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name:    "mailgate_delivery_latency_seconds",
			Help:    "Time from a message being queued to its final state.",
			Buckets: []float64{.05, .1, .25, .5, 1, 2.5, 5, 10, 30, 60, 300, 900, 3600, 4 * 3600, 24 * 3600},
		}),
		deliveryReplies: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "mailgate_smtp_replies_total",
			Help: "SMTP replies per recipient, by reply class (2xx, 4xx, 5xx, none).",
		}, []string{"class"}),
		deferrals: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "mailgate_smtp_deferrals_total",
			Help: "Recipients deferred, by SMTP reply code (one of 400-499, or none for no reply).",
		}, []string{"code"}),
		webhooks: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "mailgate_webhook_deliveries_total",
			Help: "Webhook deliveries by outcome (delivered, failed, disabled, dropped).",
		}, []string{"outcome"}),
		jobs: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "mailgate_jobs_total",
			Help: "River jobs worked by this process, by kind and result (completed, retried, snoozed, cancelled, discarded).",
		}, []string{"kind", "result"}),
		jobDuration: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "mailgate_job_duration_seconds",
			Help:    "Time River jobs spent running, by kind.",
			Buckets: []float64{.005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10, 30, 60, 300},
		}, []string{"kind"}),
		workers: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "mailgate_workers_running",
			Help: "Delivery worker slots this process runs (0 for an API-only process).",
		}),
	}
	buildInfo := prometheus.NewGaugeVec(prometheus.GaugeOpts{
		Name: "mailgate_build_info",
		Help: "Always 1; the labels name the version, commit and Go version of the running binary.",
	}, []string{"version", "commit", "go_version"})
	buildInfo.WithLabelValues(orUnknown(opts.Build.Version), orUnknown(opts.Build.Commit), cmp.Or(opts.Build.GoVersion, runtime.Version())).Set(1)
	reg.MustRegister(
		buildInfo,
		collectors.NewGoCollector(),
		collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}),
		m.httpRequests, m.httpDuration, m.accepted, m.deliveries, m.deliveryLatency, m.deliveryReplies, m.deferrals,
		m.webhooks, m.jobs, m.jobDuration, m.workers,
	)
	// Series that exist from the start, so dashboards and alerts see zeros
	// rather than gaps.
	for _, class := range []string{"2xx", "4xx", "5xx", "none"} {
		m.deliveryReplies.WithLabelValues(class)
	}
	m.deferrals.WithLabelValues("none")
	for _, o := range []string{"delivered", "failed", "disabled", "dropped"} {
		m.webhooks.WithLabelValues(o)
	}
	for _, o := range deliveryOutcomes {
		m.deliveries.WithLabelValues(o, "all")
	}
	m.accepted.WithLabelValues("all")
	return m
}

func orUnknown(s string) string { return cmp.Or(s, "unknown") }

// httpMethods are the method label's values; any other method a client
// invents is counted as otherMethod, so a request can't mint a series.
var httpMethods = map[string]bool{ //nolint:gochecknoglobals // read-only: the closed label set
	http.MethodGet: true, http.MethodHead: true, http.MethodPost: true, http.MethodPut: true,
	http.MethodPatch: true, http.MethodDelete: true, http.MethodOptions: true,
	http.MethodConnect: true, http.MethodTrace: true,
}

const (
	otherMethod = "other"
	// unmatchedRoute labels every request that matched no route template.
	unmatchedRoute = "unmatched"
)

// ObserveRequest records one HTTP request. route must be a route template
// of the router or "" for none; status is the code the server wrote. Every
// label comes from a closed set: the standard methods, the router's
// templates and the status codes net/http defines (others count as their
// class, such as "5xx").
func (m *Metrics) ObserveRequest(method, route string, status int, elapsed time.Duration) {
	if !httpMethods[method] {
		method = otherMethod
	}
	if route == "" {
		route = unmatchedRoute
	}
	m.httpRequests.WithLabelValues(method, route, statusLabel(status)).Inc()
	m.httpDuration.WithLabelValues(method, route).Observe(elapsed.Seconds())
}

// statusLabel is the code label: a status net/http knows, else its class.
func statusLabel(status int) string {
	if http.StatusText(status) != "" {
		return strconv.Itoa(status)
	}
	if status >= 100 && status < 600 {
		return strconv.Itoa(status/100) + "xx"
	}
	return otherMethod
}

// ObserveAccepted counts messages the API accepted for a tenant.
func (m *Metrics) ObserveAccepted(tenant uuid.UUID, n int) {
	m.accepted.WithLabelValues(m.tenants.label(tenant)).Add(float64(n))
}

// ObserveRecipient counts one recipient's outcome (sent, deferred, bounced, failed, suppressed).
func (m *Metrics) ObserveRecipient(tenant uuid.UUID, outcome string) {
	m.deliveries.WithLabelValues(outcome, m.tenants.label(tenant)).Inc()
}

// ObserveSettled records how long a message took from queued to final.
func (m *Metrics) ObserveSettled(latency time.Duration) {
	m.deliveryLatency.Observe(latency.Seconds())
}

// ObserveReply records one recipient's SMTP reply code (0: no reply).
func (m *Metrics) ObserveReply(code int) {
	class := "none"
	if code >= 200 && code < 600 {
		class = strconv.Itoa(code/100) + "xx"
	}
	m.deliveryReplies.WithLabelValues(class).Inc()
	// A deferral's code says why (421 throttled, 450 mailbox busy, 451 local
	// error, 452 storage); the label is bounded to the hundred 4xx codes.
	switch {
	case code >= 400 && code < 500:
		m.deferrals.WithLabelValues(strconv.Itoa(code)).Inc()
	case class == "none":
		m.deferrals.WithLabelValues("none").Inc()
	}
}

// ObserveWebhook records one webhook delivery outcome.
func (m *Metrics) ObserveWebhook(outcome string) { m.webhooks.WithLabelValues(outcome).Inc() }

// ObserveJob records one finished River job run.
func (m *Metrics) ObserveJob(kind, result string, ran time.Duration) {
	m.jobs.WithLabelValues(kind, result).Inc()
	m.jobDuration.WithLabelValues(kind).Observe(ran.Seconds())
}

// SetWorkers reports the delivery worker slots this process runs.
func (m *Metrics) SetWorkers(n int) { m.workers.Set(float64(n)) }

// Handler serves the registry in the Prometheus exposition format.
func (m *Metrics) Handler() http.Handler {
	return promhttp.HandlerFor(m.Registry, promhttp.HandlerOpts{Registry: m.Registry})
}

// tenantLabels hands out tenant label values, at most limit distinct ones.
type tenantLabels struct {
	limit int
	mu    sync.Mutex
	seen  map[uuid.UUID]bool
}

func (t *tenantLabels) label(tenant uuid.UUID) string {
	if t.limit <= 0 {
		return "all"
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.seen[tenant] {
		return tenant.String()
	}
	if len(t.seen) >= t.limit {
		return "other"
	}
	t.seen[tenant] = true
	return tenant.String()
}
