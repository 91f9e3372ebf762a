//go:build reliability

package reliability

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// requestDeadline is MAILGATE_REQUEST_TIMEOUT in the scenarios that check
// answers during a database outage, and answerSlack what an answer may take
// past it on this busy machine.
const (
	requestDeadline = 3 * time.Second
	answerSlack     = 2 * time.Second
)

// probeResult is what the API and its /readyz answered during one outage.
type probeResult struct {
	Requests, Unavailable, OK, Other, NoRetryAfter, NotProblem, Late, TransportErrors int
	Slowest                                                                           time.Duration
	ReadyFalse                                                                        bool
	// OtherAnswers samples answers that were neither 2xx nor a 503.
	OtherAnswers []string
}

// outageProbe asks the API (a read that needs the database) and its /readyz
// every 250 ms until stop is closed, as a client without retries would.
func (st *stack) outageProbe(ctx context.Context, stop <-chan struct{}) <-chan probeResult {
	done := make(chan probeResult, 1)
	client := &http.Client{Timeout: 15 * time.Second}
	go func() {
		var r probeResult
		tick := time.NewTicker(250 * time.Millisecond)
		defer tick.Stop()
		for {
			select {
			case <-stop:
				done <- r
				return
			case <-tick.C:
			}
			r.Requests++
			req, _ := http.NewRequestWithContext(ctx, http.MethodGet, st.apiURL("/api/messages?limit=1"), nil)
			req.Header.Set("Authorization", "Bearer "+st.tenants[0].Token)
			began := time.Now()
			resp, err := client.Do(req)
			took := time.Since(began)
			r.Slowest = max(r.Slowest, took)
			if took > requestDeadline+answerSlack {
				r.Late++
			}
			if err != nil {
				r.TransportErrors++
				continue
			}
			body, _ := io.ReadAll(io.LimitReader(resp.Body, 2000))
			resp.Body.Close()
			switch {
			case resp.StatusCode < 300:
				r.OK++
			case resp.StatusCode == http.StatusServiceUnavailable:
				r.Unavailable++
				if resp.Header.Get("Retry-After") == "" {
					r.NoRetryAfter++
				}
				var p struct {
					Code string `json:"code"`
				}
				if json.Unmarshal(body, &p) != nil || p.Code != "unavailable" || !strings.HasPrefix(resp.Header.Get("Content-Type"), "application/problem+json") {
					r.NotProblem++
				}
			default:
				r.Other++
				if len(r.OtherAnswers) < 2 {
					r.OtherAnswers = append(r.OtherAnswers, fmt.Sprintf("%d %s", resp.StatusCode, strings.TrimSpace(string(body))))
				}
			}
			if st.readyz(ctx, client) != http.StatusOK {
				r.ReadyFalse = true
			}
		}
	}()
	return done
}

// readyz is the API process's /readyz status, 0 when it doesn't answer.
func (st *stack) readyz(ctx context.Context, client *http.Client) int {
	req, _ := http.NewRequestWithContext(ctx, http.MethodGet, "http://"+st.api.admin+"/readyz", nil)
	resp, err := client.Do(req)
	if err != nil {
		return 0
	}
	resp.Body.Close()
	return resp.StatusCode
}

// judge turns one outage's probe into failures and a note.
func (p probeResult) judge(outage string) (failures []string, note string) {
	note = fmt.Sprintf("during the %s: %d probes, %d answered 503, %d 2xx, %d other, %d transport errors, slowest %s, /readyz false: %v",
		outage, p.Requests, p.Unavailable, p.OK, p.Other, p.TransportErrors, p.Slowest.Round(10*time.Millisecond), p.ReadyFalse)
	if p.Unavailable == 0 {
		failures = append(failures, fmt.Sprintf("no probe was answered 503 during the %s", outage))
	}
	if p.Other > 0 {
		failures = append(failures, fmt.Sprintf("%d probes during the %s got neither 2xx nor 503, e.g. %s", p.Other, outage, strings.Join(p.OtherAnswers, "; ")))
	}
	if p.NoRetryAfter > 0 {
		failures = append(failures, fmt.Sprintf("%d 503s during the %s had no Retry-After", p.NoRetryAfter, outage))
	}
	if p.NotProblem > 0 {
		failures = append(failures, fmt.Sprintf("%d 503s during the %s were not an `unavailable` problem body", p.NotProblem, outage))
	}
	if p.Late > 0 || p.TransportErrors > 0 {
		failures = append(failures, fmt.Sprintf("%d probes during the %s took longer than the %s deadline + %s or got no answer", p.Late+p.TransportErrors, outage, requestDeadline, answerSlack))
	}
	if !p.ReadyFalse {
		failures = append(failures, fmt.Sprintf("/readyz stayed true during the %s", outage))
	}
	return failures, note
}

// awaitReady waits for /readyz to be true again after an outage.
func (st *stack) awaitReady(ctx context.Context, r *row, after string) {
	client := &http.Client{Timeout: 5 * time.Second}
	took, ok := waitFor(ctx, time.Minute, 100*time.Millisecond, func() bool { return st.readyz(ctx, client) == http.StatusOK })
	if !ok {
		r.Failures = append(r.Failures, "/readyz not true again within a minute after the "+after)
		return
	}
	r.Notes = append(r.Notes, fmt.Sprintf("/readyz true again %s after the %s", took.Round(10*time.Millisecond), after))
}

// checkIdempotentSends: every key answered 2xx names exactly one message,
// the one it answered with, which has exactly one delivery job; and no key
// is left in progress once the clients are done.
func (st *stack) checkIdempotentSends(ctx context.Context, accepted []sent) (failures []string, note string) {
	keys := map[string][]string{}
	stuck := 0
	rows, err := st.db.Query(ctx, `SELECT key, message_ids::text[], status FROM idempotency_keys`)
	if err != nil {
		return []string{"read idempotency keys: " + err.Error()}, ""
	}
	for rows.Next() {
		var (
			key    string
			ids    []string
			status int
		)
		if err := rows.Scan(&key, &ids, &status); err != nil {
			return []string{"read idempotency keys: " + err.Error()}, ""
		}
		keys[key] = ids
		if status == 0 && len(ids) == 0 {
			stuck++
		}
	}
	if err := rows.Err(); err != nil {
		return []string{"read idempotency keys: " + err.Error()}, ""
	}
	jobs := map[string]int{}
	jobRows, err := st.db.Query(ctx, `SELECT args->>'message_id', count(*) FROM river_job WHERE kind = 'deliver_message' GROUP BY 1`)
	if err != nil {
		return []string{"read delivery jobs: " + err.Error()}, ""
	}
	for jobRows.Next() {
		var (
			id string
			n  int
		)
		if err := jobRows.Scan(&id, &n); err != nil {
			return []string{"read delivery jobs: " + err.Error()}, ""
		}
		jobs[id] = n
	}
	if err := jobRows.Err(); err != nil {
		return []string{"read delivery jobs: " + err.Error()}, ""
	}
	var wrongKey, wrongJobs []string
	for _, s := range accepted {
		if ids := keys[s.Key]; len(ids) != 1 || ids[0] != s.ID {
			wrongKey = append(wrongKey, fmt.Sprintf("%s → %v (answered %s)", s.Key, ids, s.ID))
		}
		if n := jobs[s.ID]; n != 1 {
			wrongJobs = append(wrongJobs, fmt.Sprintf("%s has %d", s.ID, n))
		}
	}
	if len(wrongKey) > 0 {
		failures = append(failures, fmt.Sprintf("%d keys answered 2xx don't name exactly their one message, e.g. %s", len(wrongKey), strings.Join(wrongKey[:min(2, len(wrongKey))], "; ")))
	}
	if len(wrongJobs) > 0 {
		failures = append(failures, fmt.Sprintf("%d accepted messages don't have exactly one delivery job, e.g. %s", len(wrongJobs), strings.Join(wrongJobs[:min(2, len(wrongJobs))], "; ")))
	}
	if stuck > 0 {
		failures = append(failures, fmt.Sprintf("%d Idempotency-Keys left in progress after the clients finished", stuck))
	}
	return failures, fmt.Sprintf("%d keys answered 2xx: each names one message with one delivery job; %d keys in progress at the end", len(accepted), stuck)
}

// rateLimitReplicas (issue 10): one tenant's API rate limit holds across 2
// and then 4 `serve --role api` processes on one database.
func (s *suite) rateLimitReplicas(t *testing.T) {
	ctx := context.Background()
	const rate, burst, clients = 50.0, 10, 8
	st := s.newStack(t, "api-rate-limit", stackOptions{Tenants: 2, NoWorker: true,
		Env: []string{"MAILGATE_RATE_LIMIT=" + strconv.FormatFloat(rate, 'f', -1, 64), "MAILGATE_RATE_BURST=" + strconv.Itoa(burst)}})
	window := s.scale.RateWindow
	r := row{Scenario: "API rate limit, 2 and 4 replicas (issue 10)",
		Load:   fmt.Sprintf("%d clients spread over the replicas, each a GET every 20 ms for %s, one tenant per phase", clients, window),
		Faults: fmt.Sprintf("MAILGATE_RATE_LIMIT=%.0f, MAILGATE_RATE_BURST=%d; 2 API processes, then 4", rate, burst)}
	for len(st.apis) < 4 {
		st.start(ctx, "api")
	}
	for phase, replicas := range []int{2, 4} {
		allowed, refused, other, perReplica, elapsed := st.hammer(ctx, st.apis[:replicas], st.tenants[phase], clients, window)
		achieved := float64(allowed-burst) / elapsed.Seconds()
		r.Notes = append(r.Notes, fmt.Sprintf("%d replicas: %d allowed (per replica %v), %d refused, %d other in %s: %.1f requests/s beyond the burst, limit %.0f",
			replicas, allowed, perReplica, refused, other, elapsed.Round(time.Millisecond), achieved, rate))
		if achieved < 0.9*rate || achieved > 1.1*rate {
			r.Failures = append(r.Failures, fmt.Sprintf("with %d replicas the tenant got %.1f requests/s, not within 10 %% of its limit %.0f", replicas, achieved, rate))
		}
		if other > 0 {
			r.Failures = append(r.Failures, fmt.Sprintf("with %d replicas %d answers were neither 200 nor 429", replicas, other))
		}
		served := 0
		for _, n := range perReplica {
			if n > 0 {
				served++
			}
		}
		if served < replicas {
			r.Failures = append(r.Failures, fmt.Sprintf("only %d of %d replicas let a request through", served, replicas))
		}
	}
	r.Recovery = "n/a"
	s.record(t, r)
}

// hammer sends GET /api/messages as tenant from clients spread over apis for
// window and counts the answers.
func (st *stack) hammer(ctx context.Context, apis []*proc, tn tenant, clients int, window time.Duration) (allowed, refused, other int64, perReplica []int64, elapsed time.Duration) {
	var (
		ok, no, odd atomic.Int64
		per         = make([]atomic.Int64, len(apis))
		wg          sync.WaitGroup
	)
	start := time.Now()
	for i := range clients {
		wg.Go(func() {
			api := i % len(apis)
			tick := time.NewTicker(20 * time.Millisecond)
			defer tick.Stop()
			for time.Since(start) < window {
				req, _ := http.NewRequestWithContext(ctx, http.MethodGet, "http://"+apis[api].addr+"/api/messages?limit=1", nil)
				req.Header.Set("Authorization", "Bearer "+tn.Token)
				resp, err := st.http.Do(req)
				if err != nil {
					odd.Add(1)
				} else {
					_, _ = io.Copy(io.Discard, resp.Body)
					resp.Body.Close()
					switch resp.StatusCode {
					case http.StatusOK:
						ok.Add(1)
						per[api].Add(1)
					case http.StatusTooManyRequests:
						no.Add(1)
					default:
						odd.Add(1)
					}
				}
				select {
				case <-tick.C:
				case <-ctx.Done():
					return
				}
			}
		})
	}
	wg.Wait()
	elapsed = time.Since(start)
	for i := range per {
		perReplica = append(perReplica, per[i].Load())
	}
	return ok.Load(), no.Load(), odd.Load(), perReplica, elapsed
}
