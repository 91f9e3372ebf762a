package app

import (
	"context"
	"crypto/subtle"
	"net/http"
	"net/http/pprof"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/riverqueue/river"
	"riverqueue.com/riverui"
)

// riverUIPrefix is where the River UI lives on the admin listener.
const riverUIPrefix = "/admin/river"

// adminHandler serves the admin listener: metrics, pprof and the River UI.
// The UI and pprof need operator credentials; /metrics is left open for the
// scraper, as is usual inside a cluster.
func (a *App) adminHandler(ui http.Handler) http.Handler {
	mux := http.NewServeMux()
	mux.Handle("GET /metrics", a.metrics.Handler())
	// A worker-only process has no public listener; its probes use these.
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		_, _ = w.Write([]byte(`{"status":"ok"}`))
	})
	mux.HandleFunc("GET /readyz", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		ctx, cancel := context.WithTimeout(r.Context(), 2*time.Second)
		defer cancel()
		if err := a.ready(ctx); err != nil {
			a.logger.WarnContext(ctx, "not ready", "error", err)
			w.WriteHeader(http.StatusServiceUnavailable)
			_, _ = w.Write([]byte(`{"status":"unavailable"}`))
			return
		}
		_, _ = w.Write([]byte(`{"status":"ready"}`))
	})
	debug := http.NewServeMux()
	debug.HandleFunc("GET /debug/pprof/", pprof.Index)
	debug.HandleFunc("GET /debug/pprof/profile", pprof.Profile)
	debug.HandleFunc("GET /debug/pprof/trace", pprof.Trace)
	mux.Handle("/debug/pprof/", a.requireOperator(debug))
	if ui != nil {
		mux.Handle(riverUIPrefix+"/", a.requireOperator(ui))
		mux.Handle(riverUIPrefix, http.RedirectHandler(riverUIPrefix+"/", http.StatusMovedPermanently))
	}
	return mux
}

// requireOperator admits basic-auth credentials from MAILGATE_RIVER_UI_USERNAME
// and _PASSWORD, or a bearer token with the admin claim; tenant tokens never pass.
func (a *App) requireOperator(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if user, pass, ok := r.BasicAuth(); ok && a.cfg.RiverUIUsername != "" && a.cfg.RiverUIPassword != "" &&
			subtle.ConstantTimeCompare([]byte(user), []byte(a.cfg.RiverUIUsername)) == 1 &&
			subtle.ConstantTimeCompare([]byte(pass), []byte(a.cfg.RiverUIPassword)) == 1 {
			next.ServeHTTP(w, r)
			return
		}
		if scheme, token, ok := strings.Cut(r.Header.Get("Authorization"), " "); ok && strings.EqualFold(scheme, "Bearer") && a.auth != nil {
			if claims, err := a.auth.Verify(r.Context(), strings.TrimSpace(token)); err == nil && claims.Admin {
				next.ServeHTTP(w, r)
				return
			}
		}
		w.Header().Set("WWW-Authenticate", `Basic realm="mailgate admin"`)
		http.Error(w, "operator credentials required", http.StatusUnauthorized)
	})
}

// newRiverUI builds the River UI handler on the app's River client.
func (a *App) newRiverUI(client *river.Client[pgx.Tx]) (*riverui.Handler, error) {
	return riverui.NewHandler(&riverui.HandlerOpts{
		Endpoints:                riverui.NewEndpoints(client, nil),
		JobListHideArgsByDefault: true,
		Logger:                   a.logger,
		Prefix:                   riverUIPrefix,
	})
}

// jobEventBuffer is how many job events wait for countJobs: seconds of
// River's fastest drain here (18,000 no-op jobs a second), and a pointer
// each, under 1 MB.
const jobEventBuffer = 100_000

// countJobs feeds River's job events into the job metrics until ctx ends.
func (a *App) countJobs(ctx context.Context) {
	// River drops the events a full channel can't take, and its default
	// holds 1,000: less than a second of a busy worker's completions, so a
	// pause of this goroutine would make the counters undercount.
	events, cancel := a.river.SubscribeConfig(&river.SubscribeConfig{
		ChanSize: jobEventBuffer,
		Kinds:    []river.EventKind{river.EventKindJobCompleted, river.EventKindJobFailed, river.EventKindJobCancelled, river.EventKindJobSnoozed},
	})
	result := map[river.EventKind]string{
		river.EventKindJobCompleted: "completed", river.EventKindJobFailed: "retried",
		river.EventKindJobCancelled: "cancelled", river.EventKindJobSnoozed: "snoozed",
	}
	go func() {
		defer cancel()
		for {
			select {
			case <-ctx.Done():
				return
			case e, ok := <-events:
				if !ok {
					return
				}
				outcome := result[e.Kind]
				if e.Kind == river.EventKindJobFailed && e.Job.State == "discarded" {
					outcome = "discarded"
				}
				var ran time.Duration
				if e.JobStats != nil {
					ran = e.JobStats.RunDuration
				}
				a.metrics.ObserveJob(e.Job.Kind, outcome, ran)
			}
		}
	}()
}
