package metrics

import (
	"github.com/prometheus/client_golang/prometheus"

	"github.com/mailgate/mailgate/domain"
)

// Inbound counts the inbound listener's sessions and what processing made
// of each message: DSNs by action, complaints and after-the-fact bounces by
// tenant (for the bounce-rate alert).
type Inbound struct {
	smtp       *prometheus.CounterVec
	processed  *prometheus.CounterVec
	dsn        *prometheus.CounterVec
	complaints *prometheus.CounterVec
	bounced    *prometheus.CounterVec
	tenants    *tenantLabels
}

// inboundSMTPOutcomes are the listener's outcomes: accepted, or the refusal reason.
var inboundSMTPOutcomes = []string{"accepted", "domain", "rate", "size", "connections", "store", "busy"} //nolint:gochecknoglobals // read-only: the closed label set

// NewInbound registers the inbound collectors on m's registry.
func NewInbound(m *Metrics) *Inbound {
	in := &Inbound{
		tenants: m.tenants,
		smtp: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "mailgate_inbound_smtp_total",
			Help: "Inbound SMTP outcomes: accepted messages, and refusals by reason (domain, rate, size, connections, store, busy).",
		}, []string{"outcome"}),
		processed: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "mailgate_inbound_processed_total",
			Help: "Inbound messages processed, by kind (bounce, complaint, reply, unknown) and status (processed, unmatched).",
		}, []string{"kind", "status"}),
		dsn: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "mailgate_dsn_recipients_total",
			Help: "Recipient blocks of delivery status notifications, by action (failed, delayed, delivered, relayed, expanded).",
		}, []string{"action"}),
		complaints: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "mailgate_complaints_total",
			Help: "Recipients who reported a tenant's mail as spam (RFC 5965 feedback reports), by tenant (bounded).",
		}, []string{"tenant"}),
		bounced: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "mailgate_bounced_after_delivery_total",
			Help: "Recipients a DSN bounced after the relay had accepted them, by tenant (bounded).",
		}, []string{"tenant"}),
	}
	for _, o := range inboundSMTPOutcomes {
		in.smtp.WithLabelValues(o)
	}
	for _, a := range []domain.DSNAction{domain.ActionFailed, domain.ActionDelayed, domain.ActionDelivered, domain.ActionRelayed, domain.ActionExpanded} {
		in.dsn.WithLabelValues(string(a))
	}
	in.complaints.WithLabelValues("all")
	in.bounced.WithLabelValues("all")
	m.Registry.MustRegister(in.smtp, in.processed, in.dsn, in.complaints, in.bounced)
	return in
}

// ObserveInbound counts one listener outcome.
func (in *Inbound) ObserveInbound(outcome string) { in.smtp.WithLabelValues(outcome).Inc() }

// ObserveInboundOutcome counts what processing one inbound message did.
func (in *Inbound) ObserveInboundOutcome(out domain.InboundOutcome, dsn *domain.DSNReport) {
	in.processed.WithLabelValues(string(out.Kind), out.Status).Inc()
	if dsn != nil {
		for _, r := range dsn.Recipients {
			switch r.Action {
			case domain.ActionFailed, domain.ActionDelayed, domain.ActionDelivered, domain.ActionRelayed, domain.ActionExpanded:
				in.dsn.WithLabelValues(string(r.Action)).Inc()
			}
		}
	}
	if out.Status != domain.InboundProcessed {
		return
	}
	tenant := in.tenants.label(out.Tenant)
	if n := len(out.Changed); n > 0 {
		in.bounced.WithLabelValues(tenant).Add(float64(n))
	}
	if out.Kind == domain.InboundComplaint {
		in.complaints.WithLabelValues(tenant).Add(float64(len(out.Suppress)))
	}
}
