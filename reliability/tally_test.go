//go:build reliability

package reliability

import (
	"context"
	"fmt"
	"strings"
)

// recipientRow is one recipient as the database has it.
type recipientRow struct {
	MessageUUID       string
	Tenant            string
	MessageID         string
	State             string
	LastError         string
	Email             string
	Status            string
	Attempts          int
	LastReply         string
	PossibleDuplicate bool
}

// tally is a scenario's outcome, counted per (Message-ID, recipient).
type tally struct {
	Messages        int // accepted messages
	Accepted        int // accepted recipients
	Delivered       int // accepted recipients the sink logged
	Failed          int // accepted recipients failed or bounced by policy and not delivered
	Lost            int
	DupFlagged      int
	DupUnflagged    int
	Stuck           int // recipients not in a final status
	RunningJobs     int // delivery jobs left `running`
	SendingMessages int // messages left `sending`
	Unknown         int // sink deliveries with no recipient row
	rows            map[delivery]recipientRow
	lostExamples    []string
	unflaggedPairs  []delivery
	flaggedPairs    []delivery
}

// finalStatuses are recipient statuses that end delivery.
var finalStatuses = map[string]bool{"delivered": true, "bounced": true, "failed": true, "suppressed": true}

// finalStates are message states that end delivery.
var finalStates = []string{"sent", "partially_sent", "failed", "cancelled"}

func (st *stack) recipients(ctx context.Context) (map[delivery]recipientRow, error) {
	rows, err := st.db.Query(ctx, `
		SELECT m.id::text, m.subscription_id::text, m.message_id, m.state, m.last_error,
		       r.email, r.status, r.attempts, r.last_reply, r.possible_duplicate
		FROM messages m JOIN message_recipients r ON r.subscription_id = m.subscription_id AND r.message_id = m.id`)
	if err != nil {
		return nil, fmt.Errorf("read recipients: %w", err)
	}
	defer rows.Close()
	out := map[delivery]recipientRow{}
	for rows.Next() {
		var r recipientRow
		if err := rows.Scan(&r.MessageUUID, &r.Tenant, &r.MessageID, &r.State, &r.LastError, &r.Email, &r.Status, &r.Attempts, &r.LastReply, &r.PossibleDuplicate); err != nil {
			return nil, fmt.Errorf("scan recipient: %w", err)
		}
		out[delivery{MessageID: r.MessageID, Recipient: strings.ToLower(r.Email)}] = r
	}
	return out, rows.Err()
}

// unfinished counts messages not yet in a final state.
func (st *stack) unfinished(ctx context.Context) (int, error) {
	var n int
	err := st.db.QueryRow(ctx, `SELECT count(*) FROM messages WHERE state <> ALL($1)`, finalStates).Scan(&n)
	return n, err
}

// unfinishedOf counts, of these message ids, those not yet final.
func (st *stack) unfinishedOf(ctx context.Context, ids []string) (int, error) {
	var n int
	err := st.db.QueryRow(ctx, `SELECT count(*) FROM messages WHERE id = ANY($1::uuid[]) AND state <> ALL($2)`, ids, finalStates).Scan(&n)
	return n, err
}

// count compares what the API accepted, what the sink logged and what the
// database says.
func (st *stack) count(ctx context.Context, accepted []sent) (tally, error) {
	rows, err := st.recipients(ctx)
	if err != nil {
		return tally{}, err
	}
	logged := st.sink.snapshot()
	tl := tally{Messages: len(accepted), rows: rows}
	for _, s := range accepted {
		for _, rcpt := range s.Recipients {
			d := delivery{MessageID: s.MessageID, Recipient: strings.ToLower(rcpt)}
			tl.Accepted++
			row, inDB := rows[d]
			switch {
			case logged[d] > 0:
				tl.Delivered++
			case inDB && (row.Status == "failed" || row.Status == "bounced"):
				tl.Failed++
			default:
				tl.Lost++
				if len(tl.lostExamples) < 2 {
					tl.lostExamples = append(tl.lostExamples, fmt.Sprintf("`%s` %s (db: message %s, recipient %s, attempts %d, %q)",
						d.MessageID, d.Recipient, row.State, row.Status, row.Attempts, row.LastReply))
				}
			}
		}
	}
	for d, n := range logged {
		row, ok := rows[d]
		if !ok {
			tl.Unknown++
			continue
		}
		if n > 1 {
			if row.PossibleDuplicate {
				tl.DupFlagged++
				tl.flaggedPairs = append(tl.flaggedPairs, d)
			} else {
				tl.DupUnflagged++
				tl.unflaggedPairs = append(tl.unflaggedPairs, d)
			}
		}
	}
	for _, r := range rows {
		if !finalStatuses[r.Status] {
			tl.Stuck++
		}
	}
	if err := st.db.QueryRow(ctx, `SELECT count(*) FROM river_job WHERE kind = 'deliver_message' AND state = 'running'`).Scan(&tl.RunningJobs); err != nil {
		return tl, fmt.Errorf("count running jobs: %w", err)
	}
	if err := st.db.QueryRow(ctx, `SELECT count(*) FROM messages WHERE state = 'sending'`).Scan(&tl.SendingMessages); err != nil {
		return tl, fmt.Errorf("count sending messages: %w", err)
	}
	return tl, nil
}

// checkFlagsViaAPI reads up to limit duplicated recipients back through
// GET /api/messages/{id} and reports any whose possible_duplicate differs
// from the database's.
func (st *stack) checkFlagsViaAPI(ctx context.Context, tl tally, limit int) []string {
	var problems []string
	pairs := append(append([]delivery{}, tl.flaggedPairs...), tl.unflaggedPairs...)
	tenantByID := map[string]tenant{}
	for _, t := range st.tenants {
		tenantByID[t.ID] = t
	}
	for i, d := range pairs {
		if i >= limit {
			break
		}
		row := tl.rows[d]
		v, err := st.getMessage(ctx, tenantByID[row.Tenant], row.MessageUUID)
		if err != nil {
			problems = append(problems, err.Error())
			continue
		}
		for _, r := range append(append(v.To, v.Cc...), v.Bcc...) {
			if strings.EqualFold(r.EmailAddress, d.Recipient) && r.PossibleDuplicate != row.PossibleDuplicate {
				problems = append(problems, fmt.Sprintf("%s %s: API possible_duplicate=%v, database %v", d.MessageID, d.Recipient, r.PossibleDuplicate, row.PossibleDuplicate))
			}
		}
	}
	return problems
}
