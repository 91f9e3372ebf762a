package jobs

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"maps"
	"os"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"
	"github.com/riverqueue/river"
	"github.com/riverqueue/river/riverdriver/riverpgxv5"
	"github.com/riverqueue/river/rivertest"
	"github.com/riverqueue/river/rivertype"

	"github.com/mailgate/mailgate/db/dbtest"
	"github.com/mailgate/mailgate/domain"
)

// rivertest needs River's tables; each test works inside a transaction of
// the package's migrated schema that is rolled back when it ends.
func TestMain(m *testing.M) { os.Exit(dbtest.Run(m)) }

// deliveryNow is the worker's clock in these tests.
var deliveryNow = time.Date(2026, 6, 1, 12, 0, 0, 0, time.UTC)

// fakeDeliveryStore keeps one message in memory and applies journals and
// outcomes to it as the PostgreSQL store does, so a second run of a job sees
// what the first one wrote.
type fakeDeliveryStore struct {
	mu           sync.Mutex
	msg          domain.Message
	dc           domain.DeliveryContext
	loadErr      error
	journalErr   error
	recordErrs   []error // consumed one per RecordAttempt call
	attachErr    error
	slot         time.Time
	loads        []bool // countSending of each LoadDelivery
	journals     [][]domain.Recipient
	records      []recordCall
	reserveCalls int
	// concurrentWrites run, one per RecordAttempt call, just before it: what
	// another writer (a bounce report) does to the message during the
	// attempt. Each is a new version of the message, as in the real store.
	concurrentWrites []func(*domain.Message)
}

type recordCall struct {
	rec         domain.AttemptRecord
	completeJob int64
	ctxErr      error
}

func (s *fakeDeliveryStore) LoadDelivery(_ context.Context, tenant, id uuid.UUID, countSending bool) (*domain.Message, domain.DeliveryContext, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.loads = append(s.loads, countSending)
	if s.loadErr != nil {
		return nil, domain.DeliveryContext{}, s.loadErr
	}
	if tenant != s.msg.SubscriptionID || id != s.msg.ID {
		return nil, domain.DeliveryContext{}, fmt.Errorf("load message: %w", domain.ErrNotFound)
	}
	msg := s.msg
	msg.Recipients = slices.Clone(s.msg.Recipients)
	return &msg, s.dc, nil
}

func (s *fakeDeliveryStore) JournalAttempt(_ context.Context, _, _ uuid.UUID, _ int, journal []domain.Recipient) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.journalErr != nil {
		return s.journalErr
	}
	s.journals = append(s.journals, slices.Clone(journal))
	for _, j := range journal {
		r := s.recipient(j.Email)
		r.InFlightSince, r.PossibleDuplicate = j.InFlightSince, j.PossibleDuplicate
	}
	s.msg.State = domain.StateSending
	s.msg.Version++
	return nil
}

func (s *fakeDeliveryStore) ReserveSendSlot(context.Context, uuid.UUID, uuid.UUID) (time.Time, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.reserveCalls++
	s.msg.SendSlot = s.slot
	return s.slot, nil
}

func (s *fakeDeliveryStore) RecordAttempt(ctx context.Context, _ uuid.UUID, rec domain.AttemptRecord, completeJob int64) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if len(s.recordErrs) > 0 {
		err := s.recordErrs[0]
		s.recordErrs = s.recordErrs[1:]
		if err != nil {
			return err
		}
	}
	if len(s.concurrentWrites) > 0 {
		write := s.concurrentWrites[0]
		s.concurrentWrites = s.concurrentWrites[1:]
		write(&s.msg)
		s.msg.Version++
	}
	if rec.ExpectedVersion != 0 && rec.ExpectedVersion != s.msg.Version {
		return &domain.Error{Code: domain.CodeVersionMismatch, Message: "fake store: the message changed"}
	}
	s.records = append(s.records, recordCall{rec: rec, completeJob: completeJob, ctxErr: ctx.Err()})
	for _, c := range rec.Changed {
		*s.recipient(c.Email) = c
	}
	s.msg.State, s.msg.LastError = rec.State, rec.LastError
	s.msg.Version++
	return nil
}

func (s *fakeDeliveryStore) MessageAttachments(context.Context, uuid.UUID, uuid.UUID) ([]domain.AttachmentContent, error) {
	if s.attachErr != nil {
		return nil, s.attachErr
	}
	return []domain.AttachmentContent{{Data: []byte("attached")}}, nil
}

func (s *fakeDeliveryStore) recipient(email string) *domain.Recipient {
	for i := range s.msg.Recipients {
		if s.msg.Recipients[i].Email == email {
			return &s.msg.Recipients[i]
		}
	}
	panic("fake store: no recipient " + email)
}

// lastRecord returns the only outcome written, failing the test otherwise.
func (s *fakeDeliveryStore) lastRecord(t *testing.T) recordCall {
	t.Helper()
	s.mu.Lock()
	defer s.mu.Unlock()
	if len(s.records) == 0 {
		t.Fatal("no outcome was recorded")
	}
	return s.records[len(s.records)-1]
}

func (s *fakeDeliveryStore) status(email string) domain.Recipient {
	s.mu.Lock()
	defer s.mu.Unlock()
	return *s.recipient(email)
}

// fakeTransport plays the relay: each recipient gets its scripted reply (250
// by default); those it accepts at RCPT are passed to beforeData, and when
// beforeData fails no data is sent and they get no reply.
type fakeTransport struct {
	mu sync.Mutex
	// rcpt refuses recipients at RCPT with their reply.
	rcpt map[string]domain.RecipientReply
	// data is the reply after the data for every accepted recipient (250 when zero).
	data domain.RecipientReply
	// afterRCPT and afterData run at those points of the transaction.
	afterRCPT, afterData func()
	calls                []transportCall
}

type transportCall struct {
	from          string
	to            []string
	data          []byte
	sent          bool
	beforeDataErr error
}

func (f *fakeTransport) Deliver(ctx context.Context, from string, to []string, payload domain.RenderedMessage, beforeData func(ctx context.Context, accepted []string) error) []domain.RecipientReply {
	call := transportCall{from: from, to: slices.Clone(to), data: payload.Data}
	defer func() {
		f.mu.Lock()
		f.calls = append(f.calls, call)
		f.mu.Unlock()
	}()
	var replies []domain.RecipientReply
	var accepted []string
	for _, rcpt := range to {
		if r, refused := f.rcpt[rcpt]; refused {
			r.Email = rcpt
			replies = append(replies, r)
			continue
		}
		accepted = append(accepted, rcpt)
	}
	if f.afterRCPT != nil {
		f.afterRCPT()
	}
	if len(accepted) == 0 {
		// No recipient accepted: no DATA, nothing to journal.
		return replies
	}
	if call.beforeDataErr = beforeData(ctx, accepted); call.beforeDataErr != nil {
		// As smtprelay does: the connection drops before the final dot and
		// the accepted recipients get no reply (code 0).
		for _, rcpt := range accepted {
			replies = append(replies, domain.RecipientReply{Email: rcpt, Text: "not sent: " + call.beforeDataErr.Error()})
		}
		return replies
	}
	call.sent = true
	if f.afterData != nil {
		f.afterData()
	}
	reply := f.data
	if reply.Code == 0 {
		reply = domain.RecipientReply{Code: 250, Text: "2.0.0 queued"}
	}
	for _, rcpt := range accepted {
		reply.Email = rcpt
		replies = append(replies, reply)
	}
	return replies
}

func (f *fakeTransport) only(t *testing.T) transportCall {
	t.Helper()
	f.mu.Lock()
	defer f.mu.Unlock()
	if len(f.calls) != 1 {
		t.Fatalf("transport called %d times, want once", len(f.calls))
	}
	return f.calls[0]
}

func (f *fakeTransport) callCount() int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return len(f.calls)
}

// renderCall is what the worker asked the renderer for.
type renderCall struct {
	date        time.Time
	attachments int
	dkim        *domain.DKIMKey
}

type fakeRenderer struct {
	mu    sync.Mutex
	err   error
	calls []renderCall
}

func (r *fakeRenderer) render(msg *domain.Message, date time.Time, attachments []domain.AttachmentContent, dkim *domain.DKIMKey, downgrade bool) ([]byte, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.calls = append(r.calls, renderCall{date: date, attachments: len(attachments), dkim: dkim})
	if r.err != nil {
		return nil, r.err
	}
	return []byte("Subject: " + msg.Subject + "\r\n\r\nbody\r\n"), nil
}

type countingDeliveryObserver struct {
	mu       sync.Mutex
	outcomes map[string]int
	settled  int
}

func (o *countingDeliveryObserver) ObserveRecipient(_ uuid.UUID, outcome string) {
	o.mu.Lock()
	defer o.mu.Unlock()
	o.outcomes[outcome]++
}

func (o *countingDeliveryObserver) ObserveSettled(time.Duration) {
	o.mu.Lock()
	defer o.mu.Unlock()
	o.settled++
}

// deliveryFixture is one message, its store, relay and renderer, and the
// worker under test.
type deliveryFixture struct {
	store     *fakeDeliveryStore
	transport *fakeTransport
	renderer  *fakeRenderer
	observer  *countingDeliveryObserver
	worker    *DeliveryWorker
	args      DeliverMessageArgs
}

// external, internal and other are recipients' addresses in the fixtures.
const (
	external = "ada@example.net"
	internal = "bob@example.com"
	other    = "cy@example.org"
)

var internalAccount = uuid.MustParse("00000000-0000-4000-8000-0000000000b0")

// newDeliveryFixture builds a queued message from example.com to emails; an
// address equal to internal belongs to an account of the tenant.
func newDeliveryFixture(t *testing.T, emails ...string) *deliveryFixture {
	t.Helper()
	tenant, id := uuid.New(), uuid.New()
	msg := domain.Message{
		ID: id, SubscriptionID: tenant, SenderEmail: "demo@example.com", Subject: "Hello",
		MessageID: "<" + id.String() + "@example.com>", State: domain.StateQueued,
		QueuedAt: deliveryNow.Add(-time.Minute),
	}
	for i, e := range emails {
		r := domain.Recipient{Kind: domain.KindTo, Position: i, Email: e, Status: domain.RecipientPending}
		if e == internal {
			r.AccountID = internalAccount
		}
		msg.Recipients = append(msg.Recipients, r)
	}
	f := &deliveryFixture{
		store: &fakeDeliveryStore{msg: msg, dc: domain.DeliveryContext{
			TenantStatus: domain.TenantActive, SenderDomainVerified: true, Suppressed: map[string]bool{},
		}},
		transport: &fakeTransport{rcpt: map[string]domain.RecipientReply{}},
		renderer:  &fakeRenderer{},
		observer:  &countingDeliveryObserver{outcomes: map[string]int{}},
		args:      DeliverMessageArgs{SubscriptionID: tenant, MessageID: id},
	}
	f.worker = NewDeliveryWorker(f.store, f.transport, f.renderer.render, 0, slog.New(slog.NewTextHandler(io.Discard, nil))).Observe(f.observer)
	f.worker.now = func() time.Time { return deliveryNow }
	return f
}

// testWorker is rivertest's harness for the fixture's worker: jobs are
// inserted and worked in tx, with a River client in the job's context and
// the gateway's backoff (so a deferral is scheduled, as in production).
func (f *deliveryFixture) testWorker(t *testing.T) (*rivertest.Worker[DeliverMessageArgs, pgx.Tx], pgx.Tx) {
	t.Helper()
	config := &river.Config{RetryPolicy: &BackoffPolicy{Base: time.Minute, Max: 4 * time.Hour}}
	return rivertest.NewWorker(t, riverpgxv5.New(nil), config, river.Worker[DeliverMessageArgs](f.worker)), dbtest.Tx(t)
}

// work inserts the fixture's job and works it once.
func (f *deliveryFixture) work(t *testing.T, opts *river.InsertOpts) (*rivertest.WorkResult, error) {
	t.Helper()
	tw, tx := f.testWorker(t)
	res, err := tw.Work(t.Context(), t, tx, f.args, opts)
	if res == nil {
		t.Fatalf("work: %v", err)
	}
	return res, err
}

// requireEvent fails the test unless the job was worked without an error
// and ended with kind.
func requireEvent(t *testing.T, res *rivertest.WorkResult, err error, kind river.EventKind) {
	t.Helper()
	if err != nil || res.EventKind != kind {
		t.Fatalf("event %s, err %v; want %s", res.EventKind, err, kind)
	}
}

func statuses(recipients []domain.Recipient) map[string]domain.RecipientStatus {
	out := map[string]domain.RecipientStatus{}
	for _, r := range recipients {
		out[r.Email] = r.Status
	}
	return out
}

// TestDeliverySplitsExternalInternalAndSuppressed: only external
// recipients go to the relay, internal ones land in their account's inbox,
// suppressed ones are settled without an attempt, and the final outcome
// completes the job with the record.
func TestDeliverySplitsExternalInternalAndSuppressed(t *testing.T) {
	t.Parallel()
	f := newDeliveryFixture(t, external, internal, other)
	f.store.dc.Suppressed[other] = true
	f.store.dc.DKIM = &domain.DKIMKey{Domain: "example.com", Selector: "s1"}
	f.store.msg.Attachments = []uuid.UUID{uuid.New()}

	res, err := f.work(t, nil)
	requireEvent(t, res, err, river.EventKindJobCompleted)
	call := f.transport.only(t)
	if !slices.Equal(call.to, []string{external}) || call.from != "demo@example.com" || !call.sent {
		t.Fatalf("relay got from %s to %v (sent %v), want demo@example.com to [%s]", call.from, call.to, call.sent, external)
	}
	if len(f.renderer.calls) != 1 || f.renderer.calls[0].dkim != f.store.dc.DKIM || f.renderer.calls[0].attachments != 1 ||
		!f.renderer.calls[0].date.Equal(f.store.msg.QueuedAt) {
		t.Fatalf("render calls %+v: want one, signed, with the attachment, dated when queued", f.renderer.calls)
	}
	if len(f.store.journals) != 1 || len(f.store.journals[0]) != 1 || f.store.journals[0][0].Email != external {
		t.Fatalf("journals %+v, want the external recipient only", f.store.journals)
	}
	rec := f.store.lastRecord(t)
	want := map[string]domain.RecipientStatus{external: domain.RecipientDelivered, internal: domain.RecipientDelivered, other: domain.RecipientSuppressed}
	if got := statuses(rec.rec.Changed); !maps.Equal(got, want) {
		t.Fatalf("changed %v, want %v", got, want)
	}
	if rec.rec.State != domain.StatePartiallySent || !slices.Equal(rec.rec.MailboxAccounts, []uuid.UUID{internalAccount}) {
		t.Fatalf("state %s, mailboxes %v; want partially_sent (one suppressed) and the internal account", rec.rec.State, rec.rec.MailboxAccounts)
	}
	if rec.completeJob != res.Job.ID {
		t.Fatalf("the final outcome completes job %d, want the worked job %d", rec.completeJob, res.Job.ID)
	}
	if f.store.status(external).InFlightSince != (time.Time{}) {
		t.Fatal("the outcome left the journal mark in place")
	}
	if f.observer.outcomes["sent"] != 2 || f.observer.outcomes["suppressed"] != 1 || f.observer.settled != 1 {
		t.Fatalf("observed %v, settled %d", f.observer.outcomes, f.observer.settled)
	}
}

// TestDeliverySandboxSendsNothing: a sandbox tenant's external recipients
// are accepted and recorded as delivered without touching the relay or
// rendering the message; internal recipients still get their inbox copy.
func TestDeliverySandboxSendsNothing(t *testing.T) {
	t.Parallel()
	f := newDeliveryFixture(t, external, internal)
	f.store.dc.Sandbox = true

	res, err := f.work(t, nil)
	requireEvent(t, res, err, river.EventKindJobCompleted)
	if n := f.transport.callCount(); n != 0 || len(f.renderer.calls) != 0 || len(f.store.journals) != 0 {
		t.Fatalf("sandbox: %d relay calls, %d renders, %d journals; want none", n, len(f.renderer.calls), len(f.store.journals))
	}
	rec := f.store.lastRecord(t)
	if rec.rec.State != domain.StateSent || !slices.Equal(rec.rec.MailboxAccounts, []uuid.UUID{internalAccount}) {
		t.Fatalf("state %s, mailboxes %v", rec.rec.State, rec.rec.MailboxAccounts)
	}
	if r := f.store.status(external); r.LastCode != 250 || !strings.Contains(r.LastReply, "sandbox") {
		t.Fatalf("sandboxed recipient recorded %d %q", r.LastCode, r.LastReply)
	}
}

// TestDeliveryDeferralsRetryUntilTheCutoff: a 4xx defers and retries while
// the message is young and attempts remain; past MAILGATE_MAX_DELIVERY_AGE,
// or on the last attempt, the deferral fails and the job completes.
func TestDeliveryDeferralsRetryUntilTheCutoff(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name        string
		queuedAgo   time.Duration
		maxAttempts int
		want        domain.MessageState
		wantStatus  domain.RecipientStatus
		wantEvent   river.EventKind
		wantJob     rivertype.JobState
	}{
		{"YoungRetries", time.Hour, 0, domain.StateQueued, domain.RecipientDeferred, river.EventKindJobFailed, rivertype.JobStateRetryable},
		{"PastTheAgeFails", domain.MaxDeliveryAge + time.Minute, 0, domain.StateFailed, domain.RecipientFailed, river.EventKindJobCompleted, rivertype.JobStateCompleted},
		{"LastAttemptFails", time.Hour, 1, domain.StateFailed, domain.RecipientFailed, river.EventKindJobCompleted, rivertype.JobStateCompleted},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			f := newDeliveryFixture(t, external)
			f.store.msg.QueuedAt = deliveryNow.Add(-tt.queuedAgo)
			f.transport.data = domain.RecipientReply{Code: 451, Text: "4.7.1 try again later"}
			var opts *river.InsertOpts
			if tt.maxAttempts > 0 {
				opts = &river.InsertOpts{MaxAttempts: tt.maxAttempts}
			}
			res, err := f.work(t, opts)
			if res.EventKind != tt.wantEvent || res.Job.State != tt.wantJob {
				t.Fatalf("event %s, job %s, err %v; want %s, %s", res.EventKind, res.Job.State, err, tt.wantEvent, tt.wantJob)
			}
			var deferred *DeferredError
			if isDeferred := errors.As(err, &deferred); isDeferred != (tt.want == domain.StateQueued) {
				t.Fatalf("err %v: a DeferredError only while retrying", err)
			}
			rec := f.store.lastRecord(t)
			if rec.rec.State != tt.want || f.store.status(external).Status != tt.wantStatus {
				t.Fatalf("state %s, recipient %s; want %s, %s", rec.rec.State, f.store.status(external).Status, tt.want, tt.wantStatus)
			}
			if final := tt.want.Final(); (rec.completeJob != 0) != final {
				t.Fatalf("completeJob %d for state %s: only a final outcome completes the job", rec.completeJob, rec.rec.State)
			}
			if !strings.Contains(rec.rec.LastError, "4.7.1 try again later") {
				t.Fatalf("last error %q does not carry the relay's reply", rec.rec.LastError)
			}
		})
	}
}

// TestDeliveryBuildFailures: a message that can't be rendered fails at once
// with the reason (it never will render); a failure to read its attachments
// is the database's and is retried without writing anything.
func TestDeliveryBuildFailures(t *testing.T) {
	t.Parallel()
	t.Run("RenderFails", func(t *testing.T) {
		t.Parallel()
		f := newDeliveryFixture(t, external, internal)
		f.renderer.err = errors.New("header too long")
		res, err := f.work(t, nil)
		requireEvent(t, res, err, river.EventKindJobCompleted)
		if n := f.transport.callCount(); n != 0 {
			t.Fatalf("relay called %d times for a message that did not build", n)
		}
		rec := f.store.lastRecord(t)
		if rec.rec.State != domain.StateFailed || !strings.Contains(rec.rec.LastError, "could not build the message") ||
			!strings.Contains(rec.rec.LastError, "header too long") {
			t.Fatalf("state %s, last error %q", rec.rec.State, rec.rec.LastError)
		}
		if got := statuses(rec.rec.Changed); got[external] != domain.RecipientFailed || got[internal] != domain.RecipientFailed {
			t.Fatalf("changed %v: every unsettled recipient fails", got)
		}
		if rec.completeJob != res.Job.ID {
			t.Fatalf("completeJob %d, want %d", rec.completeJob, res.Job.ID)
		}
	})
	t.Run("AttachmentsUnreadable", func(t *testing.T) {
		t.Parallel()
		f := newDeliveryFixture(t, external)
		f.store.msg.Attachments = []uuid.UUID{uuid.New()}
		f.store.attachErr = errors.New("connection reset")
		res, err := f.work(t, nil)
		if err == nil || !strings.Contains(err.Error(), "connection reset") || res.Job.State != rivertype.JobStateRetryable {
			t.Fatalf("job %s, err %v; want retryable with the cause", res.Job.State, err)
		}
		if n := f.transport.callCount(); n != 0 || len(f.store.records) != 0 {
			t.Fatalf("%d relay calls, %d records; want none", n, len(f.store.records))
		}
	})
}

// TestDeliveryHardBounceIsSuppressed: a 5.1.1 bounce settles that recipient
// and adds it to the suppression list; a 4xx at RCPT for another one defers
// only that one.
func TestDeliveryHardBounceIsSuppressed(t *testing.T) {
	t.Parallel()
	f := newDeliveryFixture(t, external, other)
	f.transport.rcpt[external] = domain.RecipientReply{Code: 550, Text: "5.1.1 no such user"}
	f.transport.rcpt[other] = domain.RecipientReply{Code: 452, Text: "4.2.2 mailbox full"}

	res, err := f.work(t, nil)
	if res.Job.State != rivertype.JobStateRetryable {
		t.Fatalf("job %s, err %v; want retryable for the deferred recipient", res.Job.State, err)
	}
	if call := f.transport.only(t); call.sent {
		t.Fatal("data sent although the relay accepted no recipient")
	}
	rec := f.store.lastRecord(t)
	if len(rec.rec.Suppress) != 1 || rec.rec.Suppress[0].Email != external || rec.rec.Suppress[0].Source != domain.SuppressionBounce ||
		rec.rec.Suppress[0].SMTPCode != 550 {
		t.Fatalf("suppress %+v, want %s from the bounce", rec.rec.Suppress, external)
	}
	if got := statuses(rec.rec.Changed); got[external] != domain.RecipientBounced || got[other] != domain.RecipientDeferred {
		t.Fatalf("changed %v", got)
	}
}

// TestDeliveryFairnessAndHolds: the per-tenant cap, the send-rate slot and
// a suspended tenant snooze the job without sending or recording; a sender
// that lost its authority fails the message without sending.
func TestDeliveryFairnessAndHolds(t *testing.T) {
	t.Parallel()
	t.Run("TenantCapSnoozes", func(t *testing.T) {
		t.Parallel()
		f := newDeliveryFixture(t, external)
		f.worker.LimitPerTenant(2)
		f.store.dc.Sending = 2
		res, err := f.work(t, nil)
		requireEvent(t, res, err, river.EventKindJobSnoozed)
		if !slices.Equal(f.store.loads, []bool{true}) {
			t.Fatalf("loads %v: with a cap the load counts the tenant's deliveries", f.store.loads)
		}
		assertUntouched(t, f)
	})
	t.Run("UnderTheCapDelivers", func(t *testing.T) {
		t.Parallel()
		f := newDeliveryFixture(t, external)
		f.worker.LimitPerTenant(2)
		f.store.dc.Sending = 1
		res, err := f.work(t, nil)
		requireEvent(t, res, err, river.EventKindJobCompleted)
		f.transport.only(t)
	})
	t.Run("NoCapDoesNotCount", func(t *testing.T) {
		t.Parallel()
		f := newDeliveryFixture(t, external)
		f.store.dc.Sending = 1000
		res, err := f.work(t, nil)
		requireEvent(t, res, err, river.EventKindJobCompleted)
		if !slices.Equal(f.store.loads, []bool{false}) {
			t.Fatalf("loads %v: without a cap the load skips counting", f.store.loads)
		}
	})
	t.Run("RateLimitedWaitsForItsSlot", func(t *testing.T) {
		t.Parallel()
		f := newDeliveryFixture(t, external)
		f.store.dc.MaxSendRate = 1
		f.store.slot = deliveryNow.Add(30 * time.Second)
		tw, tx := f.testWorker(t)
		res, err := tw.Work(t.Context(), t, tx, f.args, nil)
		requireEvent(t, res, err, river.EventKindJobSnoozed)
		if f.store.reserveCalls != 1 {
			t.Fatalf("%d slot reservations, want 1", f.store.reserveCalls)
		}
		assertUntouched(t, f)
		// The next run finds the slot kept on the message and reserves no other.
		f.store.slot = deliveryNow.Add(time.Hour)
		f.worker.now = func() time.Time { return deliveryNow.Add(30 * time.Second) }
		res, err = tw.WorkJob(t.Context(), t, tx, res.Job)
		if err != nil || res.EventKind != river.EventKindJobCompleted || f.store.reserveCalls != 1 {
			t.Fatalf("event %s, err %v, %d reservations; want completed on the kept slot", res.EventKind, err, f.store.reserveCalls)
		}
		f.transport.only(t)
	})
	t.Run("SuspendedTenantHolds", func(t *testing.T) {
		t.Parallel()
		f := newDeliveryFixture(t, external)
		f.store.dc.TenantStatus = domain.TenantSuspended
		res, err := f.work(t, nil)
		if err != nil || res.EventKind != river.EventKindJobSnoozed || res.Job.State != rivertype.JobStateScheduled {
			t.Fatalf("event %s, job %s, err %v; want snoozed", res.EventKind, res.Job.State, err)
		}
		if due := time.Until(res.Job.ScheduledAt); due < holdRecheck/2 || due > holdRecheck {
			t.Fatalf("held job due in %s, want about %s", due, holdRecheck)
		}
		assertUntouched(t, f)
	})
	t.Run("UnauthorisedSenderFails", func(t *testing.T) {
		t.Parallel()
		f := newDeliveryFixture(t, external)
		f.store.dc.SenderDomainVerified = false
		res, err := f.work(t, nil)
		requireEvent(t, res, err, river.EventKindJobCompleted)
		if n := f.transport.callCount(); n != 0 {
			t.Fatalf("relay called %d times for a refused sender", n)
		}
		if rec := f.store.lastRecord(t); rec.rec.State != domain.StateFailed || !strings.Contains(rec.rec.LastError, "sender not authorised") {
			t.Fatalf("state %s, last error %q", rec.rec.State, rec.rec.LastError)
		}
	})
	t.Run("SettledMessageIsDone", func(t *testing.T) {
		t.Parallel()
		f := newDeliveryFixture(t, external)
		f.store.msg.State = domain.StateCancelled
		res, err := f.work(t, nil)
		requireEvent(t, res, err, river.EventKindJobCompleted)
		assertUntouched(t, f)
	})
	t.Run("VanishedMessageIsDropped", func(t *testing.T) {
		t.Parallel()
		f := newDeliveryFixture(t, external)
		f.store.loadErr = fmt.Errorf("load message: %w", domain.ErrNotFound)
		res, err := f.work(t, nil)
		requireEvent(t, res, err, river.EventKindJobCompleted)
		assertUntouched(t, f)
	})
}

// assertUntouched fails when the worker sent, journaled or recorded anything.
func assertUntouched(t *testing.T, f *deliveryFixture) {
	t.Helper()
	if n := f.transport.callCount(); n != 0 || len(f.store.journals) != 0 || len(f.store.records) != 0 {
		t.Fatalf("%d relay calls, %d journals, %d records; want none", n, len(f.store.journals), len(f.store.records))
	}
}

// TestDeliveryResumeFlagsPossibleDuplicates: an attempt whose outcome could
// not be written leaves its journal marks; the job's next run resends those
// recipients flagged possible_duplicate, and leaves unflagged a recipient
// the relay had refused at RCPT (it was never handed over).
func TestDeliveryResumeFlagsPossibleDuplicates(t *testing.T) {
	t.Parallel()
	f := newDeliveryFixture(t, external, other)
	f.transport.rcpt[other] = domain.RecipientReply{Code: 451, Text: "4.3.0 later"}
	f.store.recordErrs = []error{errors.New("connection lost")}

	tw, tx := f.testWorker(t)
	res, err := tw.Work(t.Context(), t, tx, f.args, nil)
	if err == nil || !strings.Contains(err.Error(), "connection lost") || res.Job.State != rivertype.JobStateRetryable {
		t.Fatalf("job %s, err %v; want retryable after the lost outcome", res.Job.State, err)
	}
	if r := f.store.status(external); r.InFlightSince.IsZero() || r.PossibleDuplicate || r.Status != domain.RecipientPending {
		t.Fatalf("after the lost outcome %s is %+v; want still pending, journal mark kept, not flagged", external, r)
	}

	delete(f.transport.rcpt, other)
	res, err = tw.WorkJob(t.Context(), t, tx, res.Job)
	requireEvent(t, res, err, river.EventKindJobCompleted)
	if len(f.store.journals) != 2 {
		t.Fatalf("%d journals, want one per attempt", len(f.store.journals))
	}
	flagged := map[string]bool{}
	for _, r := range f.store.journals[1] {
		flagged[r.Email] = r.PossibleDuplicate
	}
	if !flagged[external] || flagged[other] {
		t.Fatalf("resumed journal flags %v; want only %s", flagged, external)
	}
	if r := f.store.status(external); !r.PossibleDuplicate || r.Status != domain.RecipientDelivered || !r.InFlightSince.IsZero() {
		t.Fatalf("after the resume %s is %+v; want delivered, flagged, mark cleared", external, r)
	}
	if r := f.store.status(other); r.PossibleDuplicate {
		t.Fatalf("%s flagged although it was refused at RCPT", other)
	}
}

// TestDeliveryJournalFailures: a journal conflict (the message was settled
// or cancelled meanwhile) abandons the attempt with nothing sent and nothing
// recorded; any other journal failure sends nothing and defers everyone.
func TestDeliveryJournalFailures(t *testing.T) {
	t.Parallel()
	t.Run("ConflictAbandons", func(t *testing.T) {
		t.Parallel()
		f := newDeliveryFixture(t, external)
		f.store.journalErr = &domain.Error{Code: domain.CodeConflict, Message: "message is cancelled"}
		res, err := f.work(t, nil)
		requireEvent(t, res, err, river.EventKindJobCompleted)
		if call := f.transport.only(t); call.sent {
			t.Fatal("data sent after the journal refused")
		}
		if len(f.store.records) != 0 {
			t.Fatalf("%d outcomes recorded for an abandoned attempt", len(f.store.records))
		}
	})
	t.Run("OtherErrorDefers", func(t *testing.T) {
		t.Parallel()
		f := newDeliveryFixture(t, external)
		f.store.journalErr = errors.New("database down")
		res, err := f.work(t, nil)
		var deferred *DeferredError
		if !errors.As(err, &deferred) || res.Job.State != rivertype.JobStateRetryable {
			t.Fatalf("job %s, err %v; want a retried deferral", res.Job.State, err)
		}
		if call := f.transport.only(t); call.sent {
			t.Fatal("data sent without a journal")
		}
		if r := f.store.lastRecord(t); r.rec.State != domain.StateQueued || f.store.status(external).Status != domain.RecipientDeferred {
			t.Fatalf("state %s, recipient %s", r.rec.State, f.store.status(external).Status)
		}
	})
}

// TestDeliveryCancelledStillRecords: when the job's context is cancelled
// (SIGTERM, the job timeout) during the SMTP transaction, the outcome is
// written on a context of its own, and a message left unsettled is snoozed
// for the next worker rather than charged an attempt. The worker is called
// directly: rivertest's executor would complete the job on the cancelled
// context, which River itself does not.
func TestDeliveryCancelledStillRecords(t *testing.T) {
	t.Parallel()
	client, err := river.NewClient(riverpgxv5.New(nil), &river.Config{})
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name        string
		cancelAfter string // "rcpt" or "data"
		want        domain.MessageState
		wantSnooze  bool
	}{
		{"AfterDataRecordsDelivered", "data", domain.StateSent, false},
		{"BeforeDataSendsNothingAndSnoozes", "rcpt", domain.StateQueued, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			f := newDeliveryFixture(t, external)
			ctx, cancel := context.WithCancel(rivertest.WorkContext(t.Context(), client))
			defer cancel()
			if tt.cancelAfter == "data" {
				f.transport.afterData = cancel
			} else {
				f.transport.afterRCPT = cancel
			}
			jobRow := &river.Job[DeliverMessageArgs]{JobRow: &rivertype.JobRow{ID: 42, Attempt: 1, MaxAttempts: DeliveryMaxAttempts}, Args: f.args}
			err := f.worker.Work(ctx, jobRow)
			var snooze *rivertype.JobSnoozeError
			if isSnooze := errors.As(err, &snooze); isSnooze != tt.wantSnooze || (!tt.wantSnooze && err != nil) {
				t.Fatalf("err %v, want snooze %v", err, tt.wantSnooze)
			}
			rec := f.store.lastRecord(t)
			if rec.ctxErr != nil {
				t.Fatalf("the outcome was written on a cancelled context: %v", rec.ctxErr)
			}
			if rec.rec.State != tt.want {
				t.Fatalf("recorded state %s, want %s", rec.rec.State, tt.want)
			}
			if call := f.transport.only(t); call.sent != (tt.cancelAfter == "data") {
				t.Fatalf("data sent %v after a cancel at %s", call.sent, tt.cancelAfter)
			}
			if wantComplete := map[bool]int64{true: jobRow.ID}[tt.want.Final()]; rec.completeJob != wantComplete {
				t.Fatalf("completeJob %d, want %d", rec.completeJob, wantComplete)
			}
		})
	}
}

// TestDeliveryDecidesAgainAfterAConcurrentWrite: when another writer changes
// the message during the attempt (a bounce report applied while the relay
// was still answering), the outcome is refused on its version and decided
// again on the message as it is now: the bounce stands and only the other
// recipient's reply is written.
func TestDeliveryDecidesAgainAfterAConcurrentWrite(t *testing.T) {
	t.Parallel()
	bounce := func(m *domain.Message) {
		for i := range m.Recipients {
			if m.Recipients[i].Email == external {
				m.Recipients[i].Status, m.Recipients[i].LastCode = domain.RecipientBounced, 550
			}
		}
	}
	t.Run("BounceStands", func(t *testing.T) {
		t.Parallel()
		f := newDeliveryFixture(t, external, other)
		f.store.concurrentWrites = []func(*domain.Message){bounce}
		res, err := f.work(t, nil)
		requireEvent(t, res, err, river.EventKindJobCompleted)
		rec := f.store.lastRecord(t).rec
		if len(f.store.records) != 1 || rec.State != domain.StatePartiallySent {
			t.Fatalf("%d records, state %s; want one, partially_sent", len(f.store.records), rec.State)
		}
		for _, c := range rec.Changed {
			if c.Email == external {
				t.Fatalf("the bounced recipient was overwritten: %+v", c)
			}
		}
		if got := f.store.status(external); got.Status != domain.RecipientBounced || got.LastCode != 550 {
			t.Fatalf("bounced recipient now %s %d", got.Status, got.LastCode)
		}
		if got := f.store.status(other).Status; got != domain.RecipientDelivered {
			t.Fatalf("other recipient %s", got)
		}
		if len(f.store.loads) != 2 {
			t.Fatalf("%d loads; want the first and one after the refusal", len(f.store.loads))
		}
		if f.transport.callCount() != 1 {
			t.Fatalf("%d SMTP transactions; deciding again must not send again", f.transport.callCount())
		}
	})
	t.Run("SettledMeanwhile", func(t *testing.T) {
		t.Parallel()
		f := newDeliveryFixture(t, external)
		f.store.concurrentWrites = []func(*domain.Message){func(m *domain.Message) { bounce(m); m.State = domain.StateFailed }}
		res, err := f.work(t, nil)
		requireEvent(t, res, err, river.EventKindJobCompleted)
		if len(f.store.records) != 0 || f.store.msg.State != domain.StateFailed {
			t.Fatalf("%d records, state %s; the other writer's settlement must stand", len(f.store.records), f.store.msg.State)
		}
	})
	t.Run("KeepsChangingGivesUp", func(t *testing.T) {
		t.Parallel()
		f := newDeliveryFixture(t, external, other)
		for range maxRecordTries {
			f.store.concurrentWrites = append(f.store.concurrentWrites, func(*domain.Message) {})
		}
		_, err := f.work(t, nil)
		var de *domain.Error
		if !errors.As(err, &de) || de.Code != domain.CodeVersionMismatch {
			t.Fatalf("err %v; want the last refusal after %d tries", err, maxRecordTries)
		}
		if len(f.store.records) != 0 {
			t.Fatalf("%d records written", len(f.store.records))
		}
	})
}
