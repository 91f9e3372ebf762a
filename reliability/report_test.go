//go:build reliability

package reliability

import (
	"context"
	"fmt"
	"os/exec"
	"slices"
	"strings"
	"time"
)

// sampleRSS records the resident set of the API and the worker every
// interval until ctx ends.
func sampleRSS(ctx context.Context, api, worker *proc, interval time.Duration) [2][]int64 {
	var out [2][]int64
	tick := time.NewTicker(max(interval, 500*time.Millisecond))
	defer tick.Stop()
	for {
		select {
		case <-ctx.Done():
			return out
		case <-tick.C:
			out[0] = append(out[0], api.rssBytes())
			out[1] = append(out[1], worker.rssBytes())
		}
	}
}

// flatRSS judges a series of RSS samples: after the first fifth (warm-up),
// the median of the last quarter may exceed the median of the second
// quarter by at most 20 % + 16 MiB.
func flatRSS(samples []int64) (bool, string) {
	if len(samples) < 8 {
		return false, fmt.Sprintf("only %d samples", len(samples))
	}
	q := len(samples) / 4
	early, late := median(samples[q:2*q]), median(samples[len(samples)-q:])
	limit := early + early/5 + 16<<20
	return late <= limit, fmt.Sprintf("%s → %s (median of 2nd vs last quarter of %d samples; limit %s)",
		mib(early), mib(late), len(samples), mib(limit))
}

func median(v []int64) int64 {
	s := slices.Clone(v)
	slices.Sort(s)
	return s[len(s)/2]
}

func mib(b int64) string { return fmt.Sprintf("%.1f MiB", float64(b)/(1<<20)) }

// report renders docs/reliability.md from the rows.
func (s *suite) report() string {
	var b strings.Builder
	commit := "unknown"
	if out, err := exec.Command("git", "rev-parse", "--short", "HEAD").Output(); err == nil {
		commit = strings.TrimSpace(string(out))
	}
	passed := 0
	for _, r := range s.rows {
		if len(r.Failures) == 0 {
			passed++
		}
	}
	fmt.Fprintf(&b, "# Reliability\n\n")
	fmt.Fprintf(&b, "`make reliability` (full) and `make reliability-short` (CI) run the fault suite in `reliability/`.\n")
	fmt.Fprintf(&b, "This file is written by the last run: scale **%s**, commit `%s`, %s, %d of %d scenarios passed, %s in all.\n\n",
		s.scale.Name, commit, s.started.UTC().Format("2006-01-02 15:04 MST"), passed, len(s.rows), time.Since(s.started).Round(time.Second))
	b.WriteString("| scenario | load | faults | accepted (msgs / rcpts) | delivered | failed by policy | lost | duplicates flagged / unflagged | stuck | recovery | result |\n")
	b.WriteString("|---|---|---|---:|---:|---:|---:|---:|---:|---|---|\n")
	for _, r := range s.rows {
		result := "pass"
		if len(r.Failures) > 0 {
			result = "**FAIL**"
		}
		stuck := fmt.Sprintf("%d", r.T.Stuck)
		if r.T.RunningJobs > 0 || r.T.SendingMessages > 0 {
			stuck += fmt.Sprintf(" (%d jobs running, %d msgs sending)", r.T.RunningJobs, r.T.SendingMessages)
		}
		fmt.Fprintf(&b, "| %s | %s | %s | %d / %d | %d | %d | %d | %d / %d | %s | %s | %s |\n",
			r.Scenario, cell(r.Load), cell(r.Faults), r.T.Messages, r.T.Accepted, r.T.Delivered, r.T.Failed, r.T.Lost,
			r.T.DupFlagged, r.T.DupUnflagged, stuck, cell(r.Recovery), result)
	}
	b.WriteString("\n## Findings\n\n")
	for _, r := range s.rows {
		fmt.Fprintf(&b, "- **%s**", r.Scenario)
		if len(r.Failures) == 0 {
			b.WriteString(": passed.")
		} else {
			b.WriteString(" failed: " + cell(strings.Join(r.Failures, "; ")) + ".")
		}
		if len(r.Notes) > 0 {
			b.WriteString(" " + cell(strings.Join(r.Notes, "; ")) + ".")
		}
		b.WriteString("\n")
	}
	fmt.Fprintf(&b, `
## Method

Every scenario gets a database of its own on a PostgreSQL cluster the suite
starts itself (initdb/pg_ctl under a temporary directory, on a free port; the
machine's shared server is never touched), runs `+"`mailgate migrate`"+`, creates
its tenants, accounts and tokens with the CLI, and starts the real binary as
two processes, `+"`serve --role api`"+` and `+"`serve --role worker`"+`, on free loopback
ports (`+"`MAILGATE_RATE_LIMIT=0`, `MAILGATE_RETRY_BASE=1s`, `MAILGATE_TENANT_MAX_DELIVERIES=0`"+`).
The worker relays through a TCP fault proxy to an SMTP sink (go-smtp, in the
test process) that appends each accepted (Message-ID, recipient) to its log
before it answers 250; both processes reach PostgreSQL through a second
proxy, which can partition (freeze every connection, then drop the ones that
lived through it on heal). The relay proxy understands where a message ends
(the final dot) and can add latency, reset connections, close right after the
final dot, or swallow the reply and stay silent before closing. Load comes
from a bounded pool of HTTP clients sending JSON with `+"`send=true`"+` and three
recipients.

Counting is per (Message-ID, recipient), from the sink's log and the
database (read as the superuser, past row-level security; flagged duplicates
are also read back through `+"`GET /api/messages/{id}`"+`). A recipient is
**lost** if the API accepted it (2xx) and it is neither in the sink's log nor
failed or bounced in the database when the scenario ends; a **duplicate** is
a pair the sink logged more than once, **flagged** when the recipient has
`+"`possible_duplicate`"+`; **stuck** counts recipients not in a final status, with
delivery jobs left `+"`running`"+` and messages left `+"`sending`"+`. Failure to
accept is not loss: such sends are counted in the API line of the findings.

The API scenarios of issue 10 check more. After the API kills, every
Idempotency-Key answered 2xx must name exactly the one message it answered
with, that message exactly one delivery job and each recipient one delivery,
and no key may be left in progress. During the database crash and the
partition (with `+"`MAILGATE_REQUEST_TIMEOUT=%s`"+`) a client without retries asks
every 250 ms: each answer must be 2xx or a 503 `+"`unavailable`"+` problem with
`+"`Retry-After`"+`, within the deadline plus %s, `+"`/readyz`"+` must be false during
the outage and true again after it, and the processes must not be
restarted. The rate-limit scenario runs 2 and then 4 API processes with
`+"`MAILGATE_RATE_LIMIT`"+` set, and the tenant's allowed requests beyond the burst
must come to within 10 %% of the limit.

Bounds: every message must be final within **%s** of the last fault (that
is the recovery column; it is measured by polling the database every 250 ms,
never by fixed sleeps; sleeps only hold a fault, such as the 5 s database
outage); the SIGTERM scenario allows the grace plus 1 s for the process to
exit; the soak must sustain at least 95 %% of its rate with no 5xx and no
duplicate, and each process's RSS counts as flat when the median of the
last quarter of its samples is at most 20 %% + 16 MiB above that of the
second quarter. Sizes: `+"`MAILGATE_RELIABILITY_SCALE=short`"+` (CI: a few hundred
messages a scenario, a 30 s soak) or `+"`full`"+` (a few thousand, a 5-minute
soak); `+"`MAILGATE_RELIABILITY_BOUND`"+` overrides the bound.
`, requestDeadline, answerSlack, s.scale.Bound)
	return b.String()
}

// cell keeps text from breaking a markdown table row.
func cell(s string) string {
	return strings.NewReplacer("|", `\|`, "\n", " ").Replace(s)
}
