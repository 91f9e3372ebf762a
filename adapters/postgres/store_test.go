package postgres_test

import (
	"context"
	"errors"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"

	"github.com/mailgate/mailgate/adapters/postgres"
	"github.com/mailgate/mailgate/db/dbtest"
	"github.com/mailgate/mailgate/domain"
	"github.com/mailgate/mailgate/jobs"
)

func TestMain(m *testing.M) { os.Exit(dbtest.Run(m)) }

// fixture is a store with its own tenant, so parallel tests never meet.
type fixture struct {
	store  *postgres.Store
	tenant postgres.Tenant
	sender postgres.Account
	domain string
}

type fixtureOpts struct {
	enqueuer postgres.Enqueuer
}

func newFixture(t testing.TB, opts fixtureOpts) fixture {
	t.Helper()
	ctx := context.Background()
	pool := dbtest.Pool(t)
	if opts.enqueuer == nil {
		client, err := jobs.NewInsertClient(pool, jobs.Config{})
		if err != nil {
			t.Fatal(err)
		}
		opts.enqueuer = jobs.NewEnqueuer(client, nil)
	}
	store := postgres.New(pool, opts.enqueuer)
	d := "t" + strings.ReplaceAll(uuid.NewString()[:8], "-", "") + ".example"
	tenant, err := store.CreateTenant(ctx, "tenant "+t.Name(), []string{d})
	if err != nil {
		t.Fatal(err)
	}
	sender, err := store.CreateAccount(ctx, tenant.ID, "Sender@"+d, "The Sender")
	if err != nil {
		t.Fatal(err)
	}
	return fixture{store: store, tenant: tenant, sender: sender, domain: d}
}

func (f fixture) compose(t testing.TB, send bool) *domain.Message {
	t.Helper()
	c := &domain.Composer{Store: f.store}
	msg, err := c.Compose(context.Background(), f.tenant.ID, domain.ComposeRequest{
		SenderEmail: f.sender.Email,
		To:          []domain.RecipientInput{{DisplayName: "Ada", EmailAddress: "ada@example.net"}},
		Cc:          []domain.RecipientInput{{EmailAddress: "bob@example.net"}},
		Bcc:         []domain.RecipientInput{{EmailAddress: "eve@example.net"}},
		Subject:     "hello",
		Body:        "body",
		Importance:  domain.ImportanceHigh,
		Send:        send,
	})
	if err != nil {
		t.Fatalf("compose: %v", err)
	}
	return msg
}

func countRows(t *testing.T, query string, args ...any) int {
	t.Helper()
	var n int
	// The owner pool bypasses row-level security, so it sees what was really written.
	if err := dbtest.OwnerPool(t).QueryRow(context.Background(), query, args...).Scan(&n); err != nil {
		t.Fatal(err)
	}
	return n
}

func TestCreateMessage(t *testing.T) {
	t.Parallel()
	ctx := context.Background()

	t.Run("OKDraftRoundTrips", func(t *testing.T) {
		t.Parallel()
		f := newFixture(t, fixtureOpts{})
		msg := f.compose(t, false)
		got, err := f.store.GetMessage(ctx, f.tenant.ID, msg.ID)
		if err != nil {
			t.Fatal(err)
		}
		if got.State != domain.StateDraft || got.Version != 1 || got.Subject != "hello" || got.Importance != domain.ImportanceHigh {
			t.Fatalf("stored message differs: %+v", got)
		}
		if got.SenderAccountID != f.sender.ID || got.SenderDisplayName != "The Sender" {
			t.Fatalf("sender not resolved to the account: %+v", got)
		}
		if len(got.Recipients) != 3 || got.Recipients[2].Kind != domain.KindBcc || got.Recipients[0].DisplayName != "Ada" {
			t.Fatalf("recipients differ: %+v", got.Recipients)
		}
		if n := countRows(t, `SELECT count(*) FROM river_job WHERE args->>'message_id' = $1`, msg.ID.String()); n != 0 {
			t.Fatalf("a draft enqueued %d jobs", n)
		}
	})

	t.Run("OKSendEnqueuesOneJob", func(t *testing.T) {
		t.Parallel()
		f := newFixture(t, fixtureOpts{})
		msg := f.compose(t, true)
		if n := countRows(t, `SELECT count(*) FROM river_job WHERE kind = 'deliver_message' AND args->>'message_id' = $1`, msg.ID.String()); n != 1 {
			t.Fatalf("want one delivery job, got %d", n)
		}
		if n := countRows(t, `SELECT count(*) FROM message_events WHERE message_id = $1 AND type IN ('created', 'queued')`, msg.ID); n != 2 {
			t.Fatalf("want created and queued events, got %d", n)
		}
	})

	t.Run("ErrEnqueueFailureWritesNothing", func(t *testing.T) {
		t.Parallel()
		f := newFixture(t, fixtureOpts{enqueuer: failingEnqueuer{}})
		c := &domain.Composer{Store: f.store}
		_, err := c.Compose(ctx, f.tenant.ID, domain.ComposeRequest{
			SenderEmail: f.sender.Email,
			To:          []domain.RecipientInput{{EmailAddress: "ada@example.net"}},
			Send:        true,
		})
		if err == nil || !strings.Contains(err.Error(), "queue is down") {
			t.Fatalf("want the enqueue error, got %v", err)
		}
		for _, table := range []string{"messages", "message_recipients", "message_events"} {
			if n := countRows(t, `SELECT count(*) FROM `+table+` WHERE subscription_id = $1`, f.tenant.ID); n != 0 {
				t.Fatalf("%s kept %d rows after a failed enqueue", table, n)
			}
		}
	})

	t.Run("ErrFailureAfterInsertRollsBackMessageAndJob", func(t *testing.T) {
		t.Parallel()
		// The River job and the message rows are written; then the webhook
		// fan-out fails. Neither the rows nor the job may survive.
		client, err := jobs.NewInsertClient(dbtest.Pool(t), jobs.Config{})
		if err != nil {
			t.Fatal(err)
		}
		f := newFixture(t, fixtureOpts{enqueuer: webhooksDown{jobs.NewEnqueuer(client, nil)}})
		if _, err := f.store.CreateWebhook(ctx, f.tenant.ID, domain.Webhook{URL: "https://hooks.example/x", Secrets: [][]byte{[]byte("s")}}, 0); err != nil {
			t.Fatal(err)
		}
		c := &domain.Composer{Store: f.store}
		_, err = c.Compose(ctx, f.tenant.ID, domain.ComposeRequest{
			SenderEmail: f.sender.Email, To: []domain.RecipientInput{{EmailAddress: "ada@example.net"}}, Send: true,
		})
		if err == nil || !strings.Contains(err.Error(), "webhook queue is down") {
			t.Fatalf("want the fan-out error, got %v", err)
		}
		for _, table := range []string{"messages", "message_recipients", "message_events"} {
			if n := countRows(t, `SELECT count(*) FROM `+table+` WHERE subscription_id = $1`, f.tenant.ID); n != 0 {
				t.Fatalf("%s kept %d rows after a failure after the insert", table, n)
			}
		}
		if n := countRows(t, `SELECT count(*) FROM river_job WHERE args->>'subscription_id' = $1::text`, f.tenant.ID); n != 0 {
			t.Fatalf("the delivery job survived the rolled-back message (%d)", n)
		}
	})

	t.Run("ErrDuplicateIDIsNotFound", func(t *testing.T) {
		t.Parallel()
		f := newFixture(t, fixtureOpts{})
		msg := f.compose(t, false)
		clone := *msg
		clone.Version = 0
		err := f.store.CreateMessage(ctx, f.tenant.ID, &clone)
		if domain.ErrorCodeOf(err) != domain.CodeNotFound {
			t.Fatalf("want not found, got %v", err)
		}
	})
}

func (failingEnqueuer) EnqueueWebhooksTx(context.Context, pgx.Tx, uuid.UUID, []domain.WebhookJob) error {
	return errors.New("queue is down")
}

// webhooksDown queues deliveries for real and fails the webhook fan-out,
// which runs after the message rows are inserted.
type webhooksDown struct{ *jobs.Enqueuer }

func (webhooksDown) EnqueueWebhooksTx(context.Context, pgx.Tx, uuid.UUID, []domain.WebhookJob) error {
	return errors.New("webhook queue is down")
}

// failingEnqueuer refuses every job, before any message row is written.
type failingEnqueuer struct{}

func (failingEnqueuer) EnqueueDeliveriesTx(context.Context, pgx.Tx, uuid.UUID, []domain.ScheduledDelivery) ([]int64, error) {
	return nil, errors.New("queue is down")
}

func (failingEnqueuer) CancelJobTx(context.Context, pgx.Tx, int64) error {
	return errors.New("queue is down")
}

func (failingEnqueuer) RetryJobTx(context.Context, pgx.Tx, int64) error {
	return errors.New("queue is down")
}

func TestGetMessage(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	a, b := newFixture(t, fixtureOpts{}), newFixture(t, fixtureOpts{})
	msg := a.compose(t, false)

	t.Run("ErrOtherTenantIsNotFound", func(t *testing.T) {
		if _, err := b.store.GetMessage(ctx, b.tenant.ID, msg.ID); !errors.Is(err, domain.ErrNotFound) {
			t.Fatalf("want not found, got %v", err)
		}
	})
	t.Run("ErrUnknownIsNotFound", func(t *testing.T) {
		if _, err := a.store.GetMessage(ctx, a.tenant.ID, uuid.New()); !errors.Is(err, domain.ErrNotFound) {
			t.Fatalf("want not found, got %v", err)
		}
	})
}

func TestUpdateDraft(t *testing.T) {
	t.Parallel()
	ctx := context.Background()

	t.Run("OKBumpsVersion", func(t *testing.T) {
		t.Parallel()
		f := newFixture(t, fixtureOpts{})
		msg := f.compose(t, false)
		msg.Subject = "changed"
		msg.UpdatedAt = time.Now()
		if err := f.store.UpdateDraft(ctx, f.tenant.ID, msg, 1); err != nil {
			t.Fatal(err)
		}
		got, err := f.store.GetMessage(ctx, f.tenant.ID, msg.ID)
		if err != nil {
			t.Fatal(err)
		}
		if got.Version != 2 || got.Subject != "changed" || msg.Version != 2 {
			t.Fatalf("update not applied: version %d subject %q", got.Version, got.Subject)
		}
	})

	t.Run("ErrStaleVersion", func(t *testing.T) {
		t.Parallel()
		f := newFixture(t, fixtureOpts{})
		msg := f.compose(t, false)
		msg.Subject = "lost update"
		err := f.store.UpdateDraft(ctx, f.tenant.ID, msg, 7)
		var de *domain.Error
		if !errors.As(err, &de) || de.Code != domain.CodeVersionMismatch || de.CurrentVersion != 1 {
			t.Fatalf("want version mismatch at 1, got %v", err)
		}
		got, _ := f.store.GetMessage(ctx, f.tenant.ID, msg.ID)
		if got.Subject != "hello" {
			t.Fatalf("a stale update changed the row")
		}
	})

	t.Run("ErrQueuedIsConflict", func(t *testing.T) {
		t.Parallel()
		f := newFixture(t, fixtureOpts{})
		msg := f.compose(t, true)
		err := f.store.UpdateDraft(ctx, f.tenant.ID, msg, msg.Version)
		if domain.ErrorCodeOf(err) != domain.CodeConflict {
			t.Fatalf("want conflict, got %v", err)
		}
	})
}

func TestResolveSender(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	f := newFixture(t, fixtureOpts{})
	other := newFixture(t, fixtureOpts{})

	tests := []struct {
		name      string
		email     string
		accountID uuid.UUID
		wantEmail string
		wantAcc   uuid.UUID
		wantCode  domain.ErrorCode
	}{
		{name: "OKAccountByAddress", email: strings.ToUpper(f.sender.Email[:1]) + f.sender.Email[1:], wantEmail: f.sender.Email, wantAcc: f.sender.ID},
		{name: "OKAccountByID", accountID: f.sender.ID, wantEmail: f.sender.Email, wantAcc: f.sender.ID},
		{name: "OKVerifiedDomain", email: "news@" + f.domain, wantEmail: "news@" + f.domain},
		{name: "ErrUnverifiedDomain", email: "ceo@bank.example", wantCode: domain.CodeForbidden},
		{name: "ErrOtherTenantsDomain", email: "x@" + other.domain, wantCode: domain.CodeForbidden},
		{name: "ErrOtherTenantsAccount", accountID: other.sender.ID, wantCode: domain.CodeForbidden},
		{name: "ErrAccountAddressMismatch", email: "news@" + f.domain, accountID: f.sender.ID, wantCode: domain.CodeForbidden},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			got, err := f.store.ResolveSender(ctx, f.tenant.ID, tt.email, tt.accountID)
			if tt.wantCode != "" {
				if domain.ErrorCodeOf(err) != tt.wantCode {
					t.Fatalf("want %s, got %v", tt.wantCode, err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if got.Email != tt.wantEmail || got.AccountID != tt.wantAcc {
				t.Fatalf("got %+v", got)
			}
		})
	}
}

func TestCreateAccountNeedsVerifiedDomain(t *testing.T) {
	t.Parallel()
	f := newFixture(t, fixtureOpts{})
	_, err := f.store.CreateAccount(context.Background(), f.tenant.ID, "someone@elsewhere.example", "")
	if domain.ErrorCodeOf(err) != domain.CodeForbidden {
		t.Fatalf("want forbidden, got %v", err)
	}
	_, err = f.store.CreateAccount(context.Background(), f.tenant.ID, f.sender.Email, "")
	if domain.ErrorCodeOf(err) != domain.CodeConflict {
		t.Fatalf("want conflict for a duplicate, got %v", err)
	}
}

func (failingEnqueuer) EnqueueReleaseHeldTx(context.Context, pgx.Tx, uuid.UUID) error {
	return errors.New("queue is down")
}

func (failingEnqueuer) EnqueueInboundTx(context.Context, pgx.Tx, uuid.UUID) error {
	return errors.New("queue is down")
}
