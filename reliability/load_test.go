//go:build reliability

package reliability

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

// sent is a message the API accepted (answered 2xx).
type sent struct {
	Tenant int
	// Key is the Idempotency-Key the send carried, if any.
	Key        string
	ID         string
	MessageID  string
	Recipients []string
}

// loadSpec is one burst of sends.
type loadSpec struct {
	Messages    int
	Concurrency int
	// Rate paces the sends, messages per second; 0 sends as fast as the
	// pool allows.
	Rate float64
	// Tenants are the stack's tenant indices, used round robin.
	Tenants []int
	// Sender overrides the tenant's sender address.
	Sender func(t tenant) string
	SendAt time.Time
	// Retry repeats a failed request (5xx, transport error, or 409 "still
	// in progress" for up to inProgressPatience) with the same
	// Idempotency-Key, as a careful client would.
	Retry bool
	// Tag keeps Idempotency-Keys apart between bursts.
	Tag string
}

// loadResult counts what the API answered.
type loadResult struct {
	Accepted                      []sent
	Requests                      int64
	Status2xx, Status4xx, Status5 int64
	TransportErrors, Retries      int64
	Elapsed                       time.Duration
	// Refusals samples the first answer of each non-2xx status.
	Refusals map[int]string
}

func (r *loadResult) add(o loadResult) {
	r.Accepted = append(r.Accepted, o.Accepted...)
	r.Requests += o.Requests
	r.Status2xx += o.Status2xx
	r.Status4xx += o.Status4xx
	r.Status5 += o.Status5
	r.TransportErrors += o.TransportErrors
	r.Retries += o.Retries
	r.Elapsed += o.Elapsed
	for k, v := range o.Refusals {
		if r.Refusals == nil {
			r.Refusals = map[int]string{}
		}
		r.Refusals[k] = v
	}
}

// sendLoad sends spec.Messages messages with a bounded pool of clients; it
// stops early when ctx ends.
func (st *stack) sendLoad(ctx context.Context, spec loadSpec) loadResult {
	if spec.Concurrency == 0 {
		spec.Concurrency = 16
	}
	if len(spec.Tenants) == 0 {
		spec.Tenants = []int{0}
	}
	var (
		res                              = loadResult{Refusals: map[int]string{}}
		mu                               sync.Mutex
		wg                               sync.WaitGroup
		jobs                             = make(chan int)
		reqs, ok2, e4, e5, terr, retries atomic.Int64
	)
	start := time.Now()
	for range spec.Concurrency {
		wg.Go(func() {
			for i := range jobs {
				tIdx := spec.Tenants[i%len(spec.Tenants)]
				s, outcome, answer := st.sendOne(ctx, spec, tIdx, i, &reqs, &retries)
				if outcome >= 300 {
					mu.Lock()
					if _, seen := res.Refusals[outcome]; !seen {
						res.Refusals[outcome] = answer
					}
					mu.Unlock()
				}
				switch {
				case outcome == 0:
					terr.Add(1)
				case outcome < 300:
					ok2.Add(1)
					mu.Lock()
					res.Accepted = append(res.Accepted, s)
					mu.Unlock()
				case outcome < 500:
					e4.Add(1)
				default:
					e5.Add(1)
				}
			}
		})
	}
	var tick *time.Ticker
	if spec.Rate > 0 {
		tick = time.NewTicker(time.Duration(float64(time.Second) / spec.Rate))
		defer tick.Stop()
	}
feed:
	for i := range spec.Messages {
		if tick != nil {
			select {
			case <-tick.C:
			case <-ctx.Done():
				break feed
			}
		}
		select {
		case jobs <- i:
		case <-ctx.Done():
			break feed
		}
	}
	close(jobs)
	wg.Wait()
	res.Requests, res.Status2xx, res.Status4xx, res.Status5 = reqs.Load(), ok2.Load(), e4.Load(), e5.Load()
	res.TransportErrors, res.Retries = terr.Load(), retries.Load()
	res.Elapsed = time.Since(start)
	return res
}

// sendOne posts one message; outcome is the final HTTP status, 0 for a
// transport error. Every 5xx answer is counted in 5xx even when a retry
// later succeeds, since the soak's criterion is no 5xx at all.
func (st *stack) sendOne(ctx context.Context, spec loadSpec, tIdx, i int, reqs, retries *atomic.Int64) (sent, int, string) {
	t := st.tenants[tIdx]
	sender := t.Sender
	if spec.Sender != nil {
		sender = spec.Sender(t)
	}
	rcpts := []string{
		fmt.Sprintf("a%d@%s", i, recipientDomain),
		fmt.Sprintf("b%d@%s", i, recipientDomain),
		fmt.Sprintf("c%d@%s", i, recipientDomain),
	}
	body := map[string]any{
		"sender_email": sender,
		"to":           []map[string]string{{"email_address": rcpts[0]}, {"email_address": rcpts[1]}},
		"cc":           []map[string]string{{"email_address": rcpts[2]}},
		"subject":      fmt.Sprintf("reliability %s %d", st.name, i),
		"body":         "Fault suite message.\r\n.\r\nA line that is only a dot, to exercise dot-stuffing.",
		"importance":   1,
		"send":         true,
	}
	if !spec.SendAt.IsZero() {
		body["send_at"] = spec.SendAt.UTC().Format(time.RFC3339Nano)
	}
	payload, _ := json.Marshal(body)
	key := fmt.Sprintf("%s-%s-%d", st.name, spec.Tag, i)
	backoff := 100 * time.Millisecond
	var firstConflict time.Time
	for attempt := 0; ; attempt++ {
		if attempt > 0 {
			retries.Add(1)
			select {
			case <-ctx.Done():
				return sent{}, 0, ""
			case <-time.After(backoff):
			}
			backoff = min(backoff*2, 2*time.Second)
		}
		reqs.Add(1)
		status, view, answer, err := st.post(ctx, t.Token, key, payload, spec.Retry)
		if spec.Retry && err == nil && status == http.StatusConflict && strings.Contains(answer, "Idempotency-Key") {
			// The key's first request is "still in progress": a careful
			// client waits and asks again, for a while.
			if firstConflict.IsZero() {
				firstConflict = time.Now()
			}
			if time.Since(firstConflict) < inProgressPatience && ctx.Err() == nil {
				continue
			}
		}
		if err == nil && status < 500 {
			if status >= 300 {
				return sent{}, status, answer
			}
			return sent{Tenant: tIdx, Key: key, ID: view.ID, MessageID: view.MessageID, Recipients: rcpts}, status, ""
		}
		if !spec.Retry || ctx.Err() != nil || attempt >= 60 {
			if err != nil {
				return sent{}, 0, err.Error()
			}
			return sent{}, status, answer
		}
	}
}

// inProgressPatience is how long a retrying client keeps asking again while
// the API answers that its Idempotency-Key's first request is in progress.
const inProgressPatience = 30 * time.Second

type messageRef struct {
	ID        string `json:"id"`
	MessageID string `json:"message_id"`
}

func (st *stack) post(ctx context.Context, token, key string, payload []byte, withKey bool) (int, messageRef, string, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, st.apiURL("/api/messages/sendmessage"), bytes.NewReader(payload))
	if err != nil {
		return 0, messageRef{}, "", err
	}
	req.Header.Set("Authorization", "Bearer "+token)
	req.Header.Set("Content-Type", "application/json")
	if withKey {
		req.Header.Set("Idempotency-Key", key)
	}
	resp, err := st.http.Do(req)
	if err != nil {
		return 0, messageRef{}, "", err
	}
	defer resp.Body.Close()
	var ref messageRef
	if resp.StatusCode < 300 {
		if err := json.NewDecoder(resp.Body).Decode(&ref); err != nil {
			return 0, messageRef{}, "", fmt.Errorf("decode answer: %w", err)
		}
		return resp.StatusCode, ref, "", nil
	}
	answer, _ := io.ReadAll(io.LimitReader(resp.Body, 300))
	return resp.StatusCode, ref, string(answer), nil
}

// recipientView is the part of GET /api/messages/{id} the suite checks.
type recipientView struct {
	EmailAddress      string `json:"email_address"`
	Status            string `json:"status"`
	Attempts          int    `json:"attempts"`
	PossibleDuplicate bool   `json:"possible_duplicate"`
}

type messageView struct {
	ID        string          `json:"id"`
	MessageID string          `json:"message_id"`
	State     string          `json:"state"`
	LastError string          `json:"last_error"`
	To        []recipientView `json:"to"`
	Cc        []recipientView `json:"cc"`
	Bcc       []recipientView `json:"bcc"`
}

// getMessage reads a message back through the API, as a tenant would.
func (st *stack) getMessage(ctx context.Context, t tenant, id string) (messageView, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, st.apiURL("/api/messages/"+id), nil)
	if err != nil {
		return messageView{}, err
	}
	req.Header.Set("Authorization", "Bearer "+t.Token)
	resp, err := st.http.Do(req)
	if err != nil {
		return messageView{}, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return messageView{}, fmt.Errorf("GET /api/messages/%s: %d", id, resp.StatusCode)
	}
	var v messageView
	err = json.NewDecoder(resp.Body).Decode(&v)
	return v, err
}
