package metrics

import (
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// DeliveryPhases is where each delivery's time goes: reading the message,
// the SMTP envelope, the attempt journal, the message data and the final
// reply, and recording the outcome. The phase set is closed.
type DeliveryPhases struct {
	seconds *prometheus.HistogramVec
}

// deliveryPhaseNames are the phases a delivery reports.
var deliveryPhaseNames = []string{"load", "envelope", "journal", "data", "record"} //nolint:gochecknoglobals // read-only: the closed label set

// NewDeliveryPhases registers mailgate_delivery_phase_seconds on reg.
func NewDeliveryPhases(reg prometheus.Registerer) *DeliveryPhases {
	p := &DeliveryPhases{seconds: prometheus.NewHistogramVec(prometheus.HistogramOpts{
		Name:    "mailgate_delivery_phase_seconds",
		Help:    "Time one delivery attempt spent in each phase: load (read the message), envelope (MAIL, RCPT, DATA), journal (record what goes out), data (the message and the relay's reply), record (write the outcome).",
		Buckets: []float64{.0005, .001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 5, 30},
	}, []string{"phase"})}
	for _, name := range deliveryPhaseNames {
		p.seconds.WithLabelValues(name)
	}
	reg.MustRegister(p.seconds)
	return p
}

// ObservePhase records one phase of one delivery; an unknown phase is dropped.
func (p *DeliveryPhases) ObservePhase(phase string, d time.Duration) {
	for _, name := range deliveryPhaseNames {
		if name == phase {
			p.seconds.WithLabelValues(phase).Observe(d.Seconds())
			return
		}
	}
}
