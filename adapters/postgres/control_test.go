package postgres_test

import (
	"context"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/mailgate/mailgate/db/dbtest"
	"github.com/mailgate/mailgate/domain"
)

// ownerExec changes rows behind the store's back, as a delivery or an
// incident would have left them.
func ownerExec(t *testing.T, query string, args ...any) {
	t.Helper()
	if _, err := dbtest.OwnerPool(t).Exec(context.Background(), query, args...); err != nil {
		t.Fatal(err)
	}
}

// settle leaves msg in state with its recipients (to, cc, bcc in order) in
// statuses, as a finished delivery would.
func settle(t *testing.T, msg *domain.Message, state domain.MessageState, codes []int, statuses ...domain.RecipientStatus) {
	t.Helper()
	ownerExec(t, `UPDATE messages SET state = $3, last_error = 'some failed', finished_at = now() WHERE subscription_id = $1 AND id = $2`,
		msg.SubscriptionID, msg.ID, string(state))
	for i, st := range statuses {
		ownerExec(t, `UPDATE message_recipients SET status = $4, last_code = $5, last_reply = 'reply' WHERE subscription_id = $1 AND message_id = $2 AND position = $3`,
			msg.SubscriptionID, msg.ID, i, string(st), codes[i])
	}
}

func jobState(t *testing.T, msg *domain.Message) string {
	t.Helper()
	var state string
	err := dbtest.OwnerPool(t).QueryRow(context.Background(), `SELECT coalesce(j.state::text, '') FROM messages m LEFT JOIN river_job j ON j.id = m.job_id
		WHERE m.subscription_id = $1 AND m.id = $2`, msg.SubscriptionID, msg.ID).Scan(&state)
	if err != nil {
		t.Fatal(err)
	}
	return state
}

func eventCount(t *testing.T, msg *domain.Message, kind string) int {
	t.Helper()
	return countRows(t, `SELECT count(*) FROM message_events WHERE subscription_id = $1 AND message_id = $2 AND type = $3`, msg.SubscriptionID, msg.ID, kind)
}

func TestCancelMessage(t *testing.T) {
	t.Parallel()
	ctx := context.Background()

	t.Run("OKCancelsTheJob", func(t *testing.T) {
		t.Parallel()
		f := newFixture(t, fixtureOpts{})
		msg := f.compose(t, true)
		got, err := f.store.CancelMessage(ctx, f.tenant.ID, msg.ID)
		if err != nil {
			t.Fatal(err)
		}
		if got.State != domain.StateCancelled || got.Version != msg.Version+1 {
			t.Fatalf("state %s version %d", got.State, got.Version)
		}
		if js := jobState(t, msg); js != domain.JobCancelled {
			t.Fatalf("the delivery job is %q, want cancelled through River", js)
		}
		if eventCount(t, msg, "cancelled") != 1 {
			t.Fatal("the cancel is on the timeline")
		}
		if countRows(t, `SELECT count(*) FROM messages WHERE id = $1 AND finished_at IS NOT NULL`, msg.ID) != 1 {
			t.Fatal("a cancelled message is finished")
		}
	})

	t.Run("ErrNotFound", func(t *testing.T) {
		t.Parallel()
		f := newFixture(t, fixtureOpts{})
		other := newFixture(t, fixtureOpts{})
		foreign := other.compose(t, true)
		for _, id := range []uuid.UUID{uuid.New(), foreign.ID} {
			if _, err := f.store.CancelMessage(ctx, f.tenant.ID, id); domain.ErrorCodeOf(err) != domain.CodeNotFound {
				t.Fatalf("want not found, got %v", err)
			}
		}
		if js := jobState(t, foreign); js == domain.JobCancelled {
			t.Fatal("another tenant's job was cancelled")
		}
	})

	t.Run("ErrDraftWritesNothing", func(t *testing.T) {
		t.Parallel()
		f := newFixture(t, fixtureOpts{})
		msg := f.compose(t, false)
		_, err := f.store.CancelMessage(ctx, f.tenant.ID, msg.ID)
		if domain.ErrorCodeOf(err) != domain.CodeConflict {
			t.Fatalf("want conflict, got %v", err)
		}
		got, _ := f.store.GetMessage(ctx, f.tenant.ID, msg.ID)
		if got.State != domain.StateDraft || got.Version != msg.Version || eventCount(t, msg, "cancelled") != 0 {
			t.Fatalf("a refused cancel wrote: %s v%d", got.State, got.Version)
		}
	})
}

// TestCancelMessageTxRunsInTheCallersTransaction drives the real store
// inside a transaction the test owns: the cancel is visible in it and gone,
// with its job's cancel, once it is rolled back.
func TestCancelMessageTxRunsInTheCallersTransaction(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	f := newFixture(t, fixtureOpts{})
	msg := f.compose(t, true)
	jobBefore := jobState(t, msg)
	tx := dbtest.Tx(t)
	if err := f.store.CancelMessageTx(ctx, tx, f.tenant.ID, msg.ID); err != nil {
		t.Fatal(err)
	}
	var state, job string
	if err := tx.QueryRow(ctx, `SELECT m.state, j.state::text FROM messages m JOIN river_job j ON j.id = m.job_id WHERE m.id = $1`, msg.ID).Scan(&state, &job); err != nil {
		t.Fatal(err)
	}
	if state != string(domain.StateCancelled) || job != domain.JobCancelled {
		t.Fatalf("inside the transaction: message %s, job %s", state, job)
	}
	if err := tx.Rollback(ctx); err != nil {
		t.Fatal(err)
	}
	got, err := f.store.GetMessage(ctx, f.tenant.ID, msg.ID)
	if err != nil || got.State != domain.StateQueued || got.Version != msg.Version || jobState(t, msg) != jobBefore {
		t.Fatalf("after the rollback: %+v %v, job %s", got, err, jobState(t, msg))
	}
}

func TestRetryMessage(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	codes := []int{250, 451, 550}

	t.Run("OKRequeuesWithANewJob", func(t *testing.T) {
		t.Parallel()
		f := newFixture(t, fixtureOpts{})
		msg := f.compose(t, true)
		settle(t, msg, domain.StatePartiallySent, codes, domain.RecipientDelivered, domain.RecipientFailed, domain.RecipientBounced)
		if _, err := f.store.AddSuppression(ctx, f.tenant.ID, domain.Suppression{Email: "EVE@example.net", Reason: "complaint", Source: domain.SuppressionManual}); err != nil {
			t.Fatal(err)
		}
		ownerExec(t, `UPDATE message_recipients SET status = 'bounced' WHERE message_id = $1 AND position = 2`, msg.ID)
		got, err := f.store.RetryMessage(ctx, f.tenant.ID, msg.ID, domain.RetryFilter{Bounced: true})
		if err != nil {
			t.Fatal(err)
		}
		want := []domain.RecipientStatus{domain.RecipientDelivered, domain.RecipientPending, domain.RecipientSuppressed}
		for i, r := range got.Recipients {
			if r.Status != want[i] {
				t.Fatalf("recipient %d (%s) is %s, want %s", i, r.Email, r.Status, want[i])
			}
		}
		if got.Recipients[2].LastReply != "not retried: the address is on the suppression list" {
			t.Fatalf("the suppressed recipient says why: %q", got.Recipients[2].LastReply)
		}
		if got.State != domain.StateQueued || got.LastError != "" || got.Version != msg.Version+1 || time.Since(got.QueuedAt) > time.Minute {
			t.Fatalf("message after retry: %+v", got)
		}
		if js := jobState(t, msg); js != domain.JobAvailable && js != domain.JobScheduled {
			t.Fatalf("the retry's job is %q", js)
		}
		if countRows(t, `SELECT count(*) FROM messages WHERE id = $1 AND finished_at IS NULL`, msg.ID) != 1 {
			t.Fatal("a requeued message is not finished")
		}
		if eventCount(t, msg, "suppressed") != 1 || eventCount(t, msg, "queued") != 2 {
			t.Fatal("the retry and the suppressed recipient are on the timeline")
		}
	})

	t.Run("ErrNothingLeftWritesNothing", func(t *testing.T) {
		t.Parallel()
		f := newFixture(t, fixtureOpts{})
		msg := f.compose(t, true)
		settle(t, msg, domain.StatePartiallySent, codes, domain.RecipientDelivered, domain.RecipientBounced, domain.RecipientBounced)
		before := jobState(t, msg)
		_, err := f.store.RetryMessage(ctx, f.tenant.ID, msg.ID, domain.RetryFilter{})
		if domain.ErrorCodeOf(err) != domain.CodeConflict {
			t.Fatalf("want conflict, got %v", err)
		}
		got, _ := f.store.GetMessage(ctx, f.tenant.ID, msg.ID)
		if got.State != domain.StatePartiallySent || got.Version != msg.Version || got.Recipients[1].Status != domain.RecipientBounced || jobState(t, msg) != before {
			t.Fatalf("a refused retry wrote: %+v", got)
		}
	})

	t.Run("ErrStateAndNotFound", func(t *testing.T) {
		t.Parallel()
		f := newFixture(t, fixtureOpts{})
		msg := f.compose(t, true)
		if _, err := f.store.RetryMessage(ctx, f.tenant.ID, msg.ID, domain.RetryFilter{}); domain.ErrorCodeOf(err) != domain.CodeConflict {
			t.Fatalf("a queued message can't be retried: %v", err)
		}
		if _, err := f.store.RetryMessage(ctx, f.tenant.ID, uuid.New(), domain.RetryFilter{}); domain.ErrorCodeOf(err) != domain.CodeNotFound {
			t.Fatalf("want not found, got %v", err)
		}
	})
}

func TestRetryMessagesSkipsWhatCantBeRetried(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	f := newFixture(t, fixtureOpts{})
	codes := []int{550, 550, 550}
	retried := f.compose(t, true)
	settle(t, retried, domain.StateFailed, codes, domain.RecipientFailed, domain.RecipientFailed, domain.RecipientFailed)
	listed := f.compose(t, true)
	settle(t, listed, domain.StateFailed, codes, domain.RecipientFailed, domain.RecipientDelivered, domain.RecipientDelivered)
	ownerExec(t, `UPDATE message_recipients SET email = 'listed@example.net' WHERE message_id = $1 AND position = 0`, listed.ID)
	if _, err := f.store.AddSuppression(ctx, f.tenant.ID, domain.Suppression{Email: "listed@example.net", Reason: "bounce", Source: domain.SuppressionManual}); err != nil {
		t.Fatal(err)
	}
	sent := f.compose(t, true)
	settle(t, sent, domain.StateSent, codes, domain.RecipientDelivered, domain.RecipientDelivered, domain.RecipientDelivered)

	ids, err := f.store.RetryMessages(ctx, f.tenant.ID, domain.RetryFilter{ReplyCode: 550, Limit: 10})
	if err != nil {
		t.Fatal(err)
	}
	if len(ids) != 1 || ids[0] != retried.ID {
		t.Fatalf("retried %v, want only %s", ids, retried.ID)
	}
	got, _ := f.store.GetMessage(ctx, f.tenant.ID, listed.ID)
	if got.State != domain.StateFailed || got.Recipients[0].Status != domain.RecipientFailed {
		t.Fatalf("a message left alone keeps its state and recipients: %s %s", got.State, got.Recipients[0].Status)
	}
}

func TestReconcile(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	stalledOf := func(t *testing.T, f fixture, msg *domain.Message) domain.StalledMessage {
		t.Helper()
		pass, err := f.store.FindStalled(ctx, domain.StallSearch{Limit: 10000, SweepRows: 1_000_000})
		found := pass.Stalled
		if err != nil {
			t.Fatal(err)
		}
		for _, s := range found {
			if s.ID == msg.ID {
				return s
			}
		}
		t.Fatalf("message %s is not found stalled", msg.ID)
		return domain.StalledMessage{}
	}

	t.Run("OKRequeuesALostJob", func(t *testing.T) {
		t.Parallel()
		f := newFixture(t, fixtureOpts{})
		msg := f.compose(t, true)
		ownerExec(t, `DELETE FROM river_job WHERE args->>'message_id' = $1`, msg.ID.String())
		before, _ := f.store.GetMessage(ctx, f.tenant.ID, msg.ID)
		action, err := f.store.Reconcile(ctx, stalledOf(t, f, msg), time.Hour)
		if err != nil || action != domain.StallRequeue {
			t.Fatalf("%v %v", action, err)
		}
		if js := jobState(t, msg); js != domain.JobAvailable && js != domain.JobScheduled {
			t.Fatalf("the new job is %q", js)
		}
		got, _ := f.store.GetMessage(ctx, f.tenant.ID, msg.ID)
		if got.State != domain.StateQueued || got.Version != before.Version+1 || before.QueuedAt.IsZero() || !got.QueuedAt.Equal(before.QueuedAt) {
			t.Fatalf("after requeue: %s v%d queued %v (was %v)", got.State, got.Version, got.QueuedAt, before.QueuedAt)
		}
	})

	t.Run("OKResetsAnInterruptedAttempt", func(t *testing.T) {
		t.Parallel()
		f := newFixture(t, fixtureOpts{})
		msg := f.compose(t, true)
		ownerExec(t, `UPDATE messages SET state = 'sending' WHERE id = $1`, msg.ID)
		action, err := f.store.Reconcile(ctx, stalledOf(t, f, msg), time.Hour)
		if err != nil || action != domain.StallReset {
			t.Fatalf("%v %v", action, err)
		}
		got, _ := f.store.GetMessage(ctx, f.tenant.ID, msg.ID)
		if got.State != domain.StateQueued || countRows(t, `SELECT count(*) FROM river_job WHERE args->>'message_id' = $1`, msg.ID.String()) != 1 {
			t.Fatalf("after reset: %s, and one job", got.State)
		}
	})

	t.Run("OKGivesUpPastTheAge", func(t *testing.T) {
		t.Parallel()
		f := newFixture(t, fixtureOpts{})
		msg := f.compose(t, true)
		ownerExec(t, `DELETE FROM river_job WHERE args->>'message_id' = $1`, msg.ID.String())
		ownerExec(t, `UPDATE messages SET queued_at = now() - interval '3 days' WHERE id = $1`, msg.ID)
		action, err := f.store.Reconcile(ctx, stalledOf(t, f, msg), domain.MaxDeliveryAge)
		if err != nil || action != domain.StallGiveUp {
			t.Fatalf("%v %v", action, err)
		}
		got, _ := f.store.GetMessage(ctx, f.tenant.ID, msg.ID)
		if got.State != domain.StateFailed || got.LastError == "" || got.Recipients[0].Status != domain.RecipientFailed {
			t.Fatalf("after give-up: %+v", got)
		}
	})

	t.Run("OKNothingForALiveJobOrAGoneMessage", func(t *testing.T) {
		t.Parallel()
		f := newFixture(t, fixtureOpts{})
		msg := f.compose(t, true)
		stalled := domain.StalledMessage{SubscriptionID: f.tenant.ID, ID: msg.ID, QueuedAt: msg.QueuedAt}
		if action, err := f.store.Reconcile(ctx, stalled, time.Hour); err != nil || action != domain.StallNone {
			t.Fatalf("a message with a live job: %v %v", action, err)
		}
		got, _ := f.store.GetMessage(ctx, f.tenant.ID, msg.ID)
		if got.Version != msg.Version {
			t.Fatal("nothing to do writes nothing")
		}
		stalled.ID = uuid.New()
		if action, err := f.store.Reconcile(ctx, stalled, time.Hour); err != nil || action != domain.StallNone {
			t.Fatalf("a deleted message: %v %v", action, err)
		}
	})
}

// TestFindStalledReadsOnlyWhatCanStall checks each part of a reconciler
// search on its own: an interrupted attempt and a cancelled job are found
// with no sweep at all, and the sweep of queued messages reads a bounded
// stretch per pass, continues where the last pass stopped, stops early at
// the cap without skipping a stall, and starts over once it reached the
// newest. The lost jobs' messages are dated before anything else in the
// schema so they are the first the sweep reads, whatever the parallel
// tests hold.
func TestFindStalledReadsOnlyWhatCanStall(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	const kind = "deliver_message"
	has := func(pass domain.StallPass, id uuid.UUID) bool {
		for _, s := range pass.Stalled {
			if s.ID == id {
				return true
			}
		}
		return false
	}

	t.Run("SendingAndCancelledWithoutASweep", func(t *testing.T) {
		t.Parallel()
		f := newFixture(t, fixtureOpts{})
		interrupted, cancelled := f.compose(t, true), f.compose(t, true)
		ownerExec(t, `UPDATE messages SET state = 'sending' WHERE id = $1`, interrupted.ID)
		ownerExec(t, `UPDATE river_job SET state = 'cancelled', finalized_at = now() WHERE args->>'message_id' = $1`, cancelled.ID.String())
		pass, err := f.store.FindStalled(ctx, domain.StallSearch{Limit: 10000, FinishedSince: time.Now().Add(-time.Hour), JobKind: kind})
		if err != nil {
			t.Fatal(err)
		}
		if !has(pass, interrupted.ID) || !has(pass, cancelled.ID) {
			t.Fatalf("without a sweep: interrupted found %v, cancelled found %v", has(pass, interrupted.ID), has(pass, cancelled.ID))
		}
		pass, err = f.store.FindStalled(ctx, domain.StallSearch{Limit: 10000, FinishedSince: time.Now().Add(time.Minute), JobKind: kind})
		if err != nil || has(pass, cancelled.ID) {
			t.Fatalf("a job finished before the window is the sweep's: found %v (%v)", has(pass, cancelled.ID), err)
		}
	})

	t.Run("SweepContinuesCapsAndStartsOver", func(t *testing.T) {
		t.Parallel()
		f := newFixture(t, fixtureOpts{})
		lost := make([]uuid.UUID, 4)
		for i := range lost {
			msg := f.compose(t, true)
			lost[i] = msg.ID
			ownerExec(t, `DELETE FROM river_job WHERE args->>'message_id' = $1`, msg.ID.String())
			ownerExec(t, `UPDATE messages SET updated_at = timestamptz '1999-01-01' + $2 * interval '1 second' WHERE id = $1`, msg.ID, i)
		}
		sweep := func(after domain.SweepKey, rows, limit int) domain.StallPass {
			t.Helper()
			pass, err := f.store.FindStalled(ctx, domain.StallSearch{Limit: limit, SweepAfter: after, SweepRows: rows})
			if err != nil {
				t.Fatal(err)
			}
			return pass
		}
		first := sweep(domain.SweepKey{}, 2, 100)
		if !has(first, lost[0]) || !has(first, lost[1]) || has(first, lost[2]) {
			t.Fatalf("a sweep of 2 rows from the start: %+v", first.Stalled)
		}
		if first.SweepNext.ID != lost[1] {
			t.Fatalf("the next sweep goes on after %s, want after %s", first.SweepNext.ID, lost[1])
		}
		second := sweep(first.SweepNext, 2, 100)
		if !has(second, lost[2]) || !has(second, lost[3]) || has(second, lost[0]) {
			t.Fatalf("the second sweep: %+v", second.Stalled)
		}
		capped := sweep(domain.SweepKey{}, 4, 1)
		if !has(capped, lost[0]) || has(capped, lost[1]) || capped.SweepNext.ID != lost[0] {
			t.Fatalf("capped at one stall: %+v, next after %s", capped.Stalled, capped.SweepNext.ID)
		}
		end := sweep(second.SweepNext, 100_000, 100_000)
		if end.SweepNext != (domain.SweepKey{}) {
			t.Fatalf("a sweep that read every queued message left the next at %+v, want the start", end.SweepNext)
		}
	})
}
