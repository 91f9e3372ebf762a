package domain_test

import (
	"context"
	"errors"
	"fmt"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/mailgate/mailgate/domain"
)

// fakeStore is an in-memory MessageStore for the compose rules. It keeps
// messages per tenant, bumps versions like the real store, and records calls.
type fakeStore struct {
	mu          sync.Mutex
	senders     map[uuid.UUID][]domain.AccountAddress
	messages    map[[2]uuid.UUID]*domain.Message
	attachments map[[2]uuid.UUID]domain.Attachment

	// Injected failures.
	resolveErr error
	getErr     error
	createErr  error
	updateErr  error

	resolveCalls int
	created      []*domain.Message
	updates      []updateCall
}

type updateCall struct {
	msg *domain.Message
	// versionSeen is msg.Version as the composer handed it over.
	versionSeen domain.Version
	expected    domain.Version
}

var _ domain.MessageStore = (*fakeStore)(nil)

func newFakeStore() *fakeStore {
	return &fakeStore{
		senders:     make(map[uuid.UUID][]domain.AccountAddress),
		messages:    make(map[[2]uuid.UUID]*domain.Message),
		attachments: make(map[[2]uuid.UUID]domain.Attachment),
	}
}

func cloneMessage(m *domain.Message) *domain.Message {
	c := *m
	c.Recipients = append([]domain.Recipient(nil), m.Recipients...)
	c.Attachments = append([]uuid.UUID(nil), m.Attachments...)
	return &c
}

func (s *fakeStore) addSender(tenant uuid.UUID, sender domain.AccountAddress) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.senders[tenant] = append(s.senders[tenant], sender)
}

func (s *fakeStore) LookupAttachments(_ context.Context, tenant uuid.UUID, ids []uuid.UUID) ([]domain.Attachment, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	var out []domain.Attachment
	for _, id := range ids {
		if a, ok := s.attachments[[2]uuid.UUID{tenant, id}]; ok {
			out = append(out, a)
		}
	}
	return out, nil
}

func (s *fakeStore) LookupAccounts(_ context.Context, tenant uuid.UUID, ids []uuid.UUID) (map[uuid.UUID]domain.AccountAddress, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make(map[uuid.UUID]domain.AccountAddress)
	for _, id := range ids {
		for _, snd := range s.senders[tenant] {
			if snd.AccountID == id {
				out[id] = snd
			}
		}
	}
	return out, nil
}

func (s *fakeStore) CreateMessages(ctx context.Context, tenant uuid.UUID, msgs []*domain.Message) ([]error, error) {
	refused := make([]error, len(msgs))
	for i, m := range msgs {
		err := s.CreateMessage(ctx, tenant, m)
		switch domain.ErrorCodeOf(err) {
		case "":
		case domain.CodeForbidden:
			refused[i] = err
		default:
			return nil, err
		}
	}
	return refused, nil
}

func (s *fakeStore) DeleteMessage(_ context.Context, tenant, id uuid.UUID, expected *domain.Version) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	key := [2]uuid.UUID{tenant, id}
	m, ok := s.messages[key]
	switch {
	case !ok:
		return domain.ErrNotFound
	case !m.CanDelete():
		return &domain.Error{Code: domain.CodeConflict, Message: "delivery in progress", CurrentVersion: m.Version}
	case expected != nil && *expected != m.Version:
		return &domain.Error{Code: domain.CodeVersionMismatch, Message: "stale", CurrentVersion: m.Version}
	}
	delete(s.messages, key)
	return nil
}

func (s *fakeStore) put(tenant uuid.UUID, m *domain.Message) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.messages[[2]uuid.UUID{tenant, m.ID}] = cloneMessage(m)
}

func (s *fakeStore) stored(tenant, id uuid.UUID) *domain.Message {
	s.mu.Lock()
	defer s.mu.Unlock()
	if m, ok := s.messages[[2]uuid.UUID{tenant, id}]; ok {
		return cloneMessage(m)
	}
	return nil
}

func (s *fakeStore) writes() (created int, updated int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.created), len(s.updates)
}

func (s *fakeStore) ResolveSender(_ context.Context, tenant uuid.UUID, email string, accountID uuid.UUID) (domain.AccountAddress, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.resolveCalls++
	if s.resolveErr != nil {
		return domain.AccountAddress{}, s.resolveErr
	}
	for _, snd := range s.senders[tenant] {
		if email != "" && !strings.EqualFold(snd.Email, email) {
			continue
		}
		if accountID != uuid.Nil && snd.AccountID != accountID {
			continue
		}
		return snd, nil
	}
	return domain.AccountAddress{}, &domain.Error{Code: domain.CodeForbidden, Field: "sender_email", Message: "not a verified sender"}
}

// CreateMessage checks the sender first, as the real store does in its
// write transaction.
func (s *fakeStore) CreateMessage(ctx context.Context, tenant uuid.UUID, msg *domain.Message) error {
	sender, err := s.ResolveSender(ctx, tenant, msg.SenderEmail, msg.SenderAccountID)
	if err != nil {
		return err
	}
	msg.AdoptSender(sender)
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.createErr != nil {
		return s.createErr
	}
	key := [2]uuid.UUID{tenant, msg.ID}
	if _, ok := s.messages[key]; ok {
		return domain.Errorf(domain.CodeConflict, "message exists")
	}
	msg.Version = 1
	s.messages[key] = cloneMessage(msg)
	s.created = append(s.created, cloneMessage(msg))
	return nil
}

func (s *fakeStore) UpdateDraft(_ context.Context, tenant uuid.UUID, msg *domain.Message, expected domain.Version) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.updates = append(s.updates, updateCall{msg: cloneMessage(msg), versionSeen: msg.Version, expected: expected})
	if s.updateErr != nil {
		return s.updateErr
	}
	key := [2]uuid.UUID{tenant, msg.ID}
	cur, ok := s.messages[key]
	if !ok {
		return domain.ErrNotFound
	}
	if cur.Version != expected || cur.State != domain.StateDraft {
		return &domain.Error{Code: domain.CodeVersionMismatch, Field: "ts", Message: "changed", CurrentVersion: cur.Version}
	}
	msg.Version = expected + 1
	s.messages[key] = cloneMessage(msg)
	return nil
}

func (s *fakeStore) GetMessage(_ context.Context, tenant, id uuid.UUID) (*domain.Message, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.getErr != nil {
		return nil, s.getErr
	}
	m, ok := s.messages[[2]uuid.UUID{tenant, id}]
	if !ok {
		return nil, domain.ErrNotFound
	}
	return cloneMessage(m), nil
}

var (
	fixedNow        = time.Date(2025, 3, 4, 5, 6, 7, 123456000, time.FixedZone("UTC+1", 3600)) // microsecond precision, as stored
	senderAccountID = uuid.MustParse("11111111-1111-4111-8111-111111111111")
	carolAccountID  = uuid.MustParse("22222222-2222-4222-8222-222222222222")
)

const senderEmail = "alice@example.com"

type composeFixture struct {
	composer *domain.Composer
	store    *fakeStore
	tenant   uuid.UUID
}

func newComposeFixture(t *testing.T) composeFixture {
	t.Helper()
	store := newFakeStore()
	tenant := uuid.New()
	store.addSender(tenant, domain.AccountAddress{AccountID: senderAccountID, Email: senderEmail, DisplayName: "Alice Store"})
	store.addSender(tenant, domain.AccountAddress{AccountID: carolAccountID, Email: "carol@example.net", DisplayName: "Carol Store"})
	return composeFixture{
		composer: &domain.Composer{Store: store, Now: func() time.Time { return fixedNow }},
		store:    store,
		tenant:   tenant,
	}
}

func (f composeFixture) request() domain.ComposeRequest {
	return domain.ComposeRequest{
		SenderEmail: senderEmail,
		To:          []domain.RecipientInput{{DisplayName: "Bob", EmailAddress: "bob@example.org"}},
		Importance:  domain.ImportanceNormal,
		Subject:     "Hello",
		Body:        "Hi Bob",
	}
}

// seedDraft stores an existing message for the fixture's tenant.
func (f composeFixture) seedDraft(state domain.MessageState, version domain.Version) *domain.Message {
	m := &domain.Message{
		ID:             uuid.New(),
		SubscriptionID: f.tenant,
		SenderEmail:    senderEmail,
		MessageID:      "<original@example.com>",
		Subject:        "old subject",
		ConversationID: uuid.New(),
		CreatedDate:    time.Date(2024, 1, 2, 3, 4, 5, 0, time.UTC),
		UpdatedAt:      time.Date(2024, 1, 2, 3, 4, 5, 0, time.UTC),
		State:          state,
		Version:        version,
	}
	f.store.put(f.tenant, m)
	return m
}

func recipientsN(n int) []domain.RecipientInput {
	out := make([]domain.RecipientInput, n)
	for i := range out {
		out[i] = domain.RecipientInput{EmailAddress: fmt.Sprintf("r%d@example.net", i)}
	}
	return out
}

var generatedMessageID = regexp.MustCompile(`^<([0-9a-f-]{36})@example\.com>$`)

func TestComposeCreate(t *testing.T) {
	t.Parallel()

	t.Run("OK", func(t *testing.T) {
		t.Parallel()
		f := newComposeFixture(t)
		req := f.request()
		req.Cc = []domain.RecipientInput{{DisplayName: "Carol", EmailAddress: "carol@EXAMPLE.net", AccountID: carolAccountID}}
		req.Bcc = []domain.RecipientInput{{EmailAddress: "dave@example.net"}}
		msg, err := f.composer.Compose(context.Background(), f.tenant, req)
		if err != nil {
			t.Fatalf("Compose: %v", err)
		}
		if msg.ID == uuid.Nil {
			t.Fatal("ID not set")
		}
		if msg.ConversationID != msg.ID {
			t.Errorf("ConversationID = %v, want the message's own ID %v", msg.ConversationID, msg.ID)
		}
		if msg.SubscriptionID != f.tenant {
			t.Errorf("SubscriptionID = %v, want tenant %v", msg.SubscriptionID, f.tenant)
		}
		if msg.State != domain.StateDraft {
			t.Errorf("State = %q, want draft", msg.State)
		}
		if msg.SenderEmail != senderEmail || msg.SenderAccountID != senderAccountID {
			t.Errorf("sender = %q/%v, want %q/%v", msg.SenderEmail, msg.SenderAccountID, senderEmail, senderAccountID)
		}
		if msg.SenderDisplayName != "Alice Store" {
			t.Errorf("SenderDisplayName = %q, want the store's %q", msg.SenderDisplayName, "Alice Store")
		}
		if msg.Subject != "Hello" || msg.Body != "Hi Bob" || msg.Importance != domain.ImportanceNormal {
			t.Errorf("content = %q/%q/%v", msg.Subject, msg.Body, msg.Importance)
		}
		if !msg.CreatedDate.Equal(fixedNow) || msg.CreatedDate.Location() != time.UTC {
			t.Errorf("CreatedDate = %v, want %v in UTC", msg.CreatedDate, fixedNow.UTC())
		}
		if !msg.UpdatedAt.Equal(msg.CreatedDate) {
			t.Errorf("UpdatedAt = %v, want CreatedDate %v", msg.UpdatedAt, msg.CreatedDate)
		}
		if msg.Version != 1 {
			t.Errorf("Version = %v, want the store's 1", msg.Version)
		}
		want := []domain.Recipient{
			{Kind: domain.KindTo, Position: 0, DisplayName: "Bob", Email: "bob@example.org", Status: domain.RecipientPending},
			{Kind: domain.KindCc, Position: 1, DisplayName: "Carol", Email: "carol@example.net", AccountID: carolAccountID, Status: domain.RecipientPending},
			{Kind: domain.KindBcc, Position: 2, Email: "dave@example.net", Status: domain.RecipientPending},
		}
		if len(msg.Recipients) != len(want) {
			t.Fatalf("recipients = %+v, want %+v", msg.Recipients, want)
		}
		for i := range want {
			if msg.Recipients[i] != want[i] {
				t.Errorf("recipient %d = %+v, want %+v", i, msg.Recipients[i], want[i])
			}
		}
		if created, updated := f.store.writes(); created != 1 || updated != 0 {
			t.Errorf("store writes = %d created, %d updated; want 1, 0", created, updated)
		}
		if f.store.stored(f.tenant, msg.ID) == nil {
			t.Error("message not in the store")
		}
	})

	t.Run("SendQueues", func(t *testing.T) {
		t.Parallel()
		f := newComposeFixture(t)
		req := f.request()
		req.Send = true
		msg, err := f.composer.Compose(context.Background(), f.tenant, req)
		if err != nil {
			t.Fatalf("Compose: %v", err)
		}
		if msg.State != domain.StateQueued {
			t.Fatalf("State = %q, want queued", msg.State)
		}
	})

	t.Run("DraftWithoutRecipients", func(t *testing.T) {
		t.Parallel()
		f := newComposeFixture(t)
		req := f.request()
		req.To = nil
		msg, err := f.composer.Compose(context.Background(), f.tenant, req)
		if err != nil {
			t.Fatalf("Compose: %v", err)
		}
		if msg.State != domain.StateDraft || len(msg.Recipients) != 0 {
			t.Fatalf("got state %q with %d recipients, want an empty draft", msg.State, len(msg.Recipients))
		}
	})

	t.Run("MatchingSubscriptionID", func(t *testing.T) {
		t.Parallel()
		f := newComposeFixture(t)
		req := f.request()
		req.SubscriptionID = f.tenant
		if _, err := f.composer.Compose(context.Background(), f.tenant, req); err != nil {
			t.Fatalf("Compose: %v", err)
		}
	})

	t.Run("ClientIDNotFoundCreatesWithThatID", func(t *testing.T) {
		t.Parallel()
		f := newComposeFixture(t)
		req := f.request()
		req.ID = uuid.New()
		msg, err := f.composer.Compose(context.Background(), f.tenant, req)
		if err != nil {
			t.Fatalf("Compose: %v", err)
		}
		if msg.ID != req.ID || msg.ConversationID != req.ID {
			t.Fatalf("ID/ConversationID = %v/%v, want %v", msg.ID, msg.ConversationID, req.ID)
		}
		if !msg.CreatedDate.Equal(fixedNow) {
			t.Errorf("CreatedDate = %v, want %v", msg.CreatedDate, fixedNow)
		}
		if created, updated := f.store.writes(); created != 1 || updated != 0 {
			t.Errorf("store writes = %d created, %d updated; want 1, 0", created, updated)
		}
	})

	t.Run("ClientIDOfOtherTenantIsNotUpdated", func(t *testing.T) {
		t.Parallel()
		f := newComposeFixture(t)
		other := uuid.New()
		theirs := &domain.Message{ID: uuid.New(), SubscriptionID: other, State: domain.StateDraft, Version: 3, Subject: "theirs"}
		f.store.put(other, theirs)
		req := f.request()
		req.ID = theirs.ID
		req.TS = domain.Version(3).Bytes()
		if _, err := f.composer.Compose(context.Background(), f.tenant, req); err != nil {
			t.Fatalf("Compose: %v", err)
		}
		if got := f.store.stored(other, theirs.ID); got.Subject != "theirs" || got.Version != 3 {
			t.Fatalf("other tenant's message changed: %+v", got)
		}
		if _, updated := f.store.writes(); updated != 0 {
			t.Fatalf("UpdateDraft called %d times across tenants", updated)
		}
	})

	t.Run("DefaultClockIsUTC", func(t *testing.T) {
		t.Parallel()
		f := newComposeFixture(t)
		f.composer.Now = nil
		before := time.Now()
		msg, err := f.composer.Compose(context.Background(), f.tenant, f.request())
		after := time.Now()
		if err != nil {
			t.Fatalf("Compose: %v", err)
		}
		if msg.CreatedDate.Before(before.Add(-time.Second)) || msg.CreatedDate.After(after.Add(time.Second)) {
			t.Errorf("CreatedDate = %v, want between %v and %v", msg.CreatedDate, before, after)
		}
		if msg.CreatedDate.Location() != time.UTC {
			t.Errorf("CreatedDate location = %v, want UTC", msg.CreatedDate.Location())
		}
	})

	t.Run("ReferencesNormalized", func(t *testing.T) {
		t.Parallel()
		f := newComposeFixture(t)
		req := f.request()
		req.References = " <a@example.com>\t\t<b@example.com> "
		msg, err := f.composer.Compose(context.Background(), f.tenant, req)
		if err != nil {
			t.Fatalf("Compose: %v", err)
		}
		if want := "<a@example.com> <b@example.com>"; msg.References != want {
			t.Fatalf("References = %q, want %q", msg.References, want)
		}
	})

	t.Run("ErrStoreCreate", func(t *testing.T) {
		t.Parallel()
		f := newComposeFixture(t)
		boom := errors.New("disk full")
		f.store.createErr = boom
		_, err := f.composer.Compose(context.Background(), f.tenant, f.request())
		if !errors.Is(err, boom) {
			t.Fatalf("err = %v, want %v", err, boom)
		}
	})

	t.Run("ErrStoreGet", func(t *testing.T) {
		t.Parallel()
		f := newComposeFixture(t)
		boom := errors.New("connection reset")
		f.store.getErr = boom
		req := f.request()
		req.ID = uuid.New()
		_, err := f.composer.Compose(context.Background(), f.tenant, req)
		if !errors.Is(err, boom) {
			t.Fatalf("err = %v, want %v", err, boom)
		}
		if created, updated := f.store.writes(); created != 0 || updated != 0 {
			t.Fatalf("store writes = %d created, %d updated after a read failure", created, updated)
		}
	})
}

func TestComposeMessageID(t *testing.T) {
	t.Parallel()

	t.Run("GeneratedFromSenderDomain", func(t *testing.T) {
		t.Parallel()
		f := newComposeFixture(t)
		req := f.request()
		req.SenderEmail = "alice@EXAMPLE.COM"
		first, err := f.composer.Compose(context.Background(), f.tenant, req)
		if err != nil {
			t.Fatalf("Compose: %v", err)
		}
		m := generatedMessageID.FindStringSubmatch(first.MessageID)
		if m == nil {
			t.Fatalf("MessageID = %q, want <uuid@example.com>", first.MessageID)
		}
		if _, err := uuid.Parse(m[1]); err != nil {
			t.Fatalf("MessageID %q does not hold a UUID: %v", first.MessageID, err)
		}
		if err := domain.CheckMessageID("message_id", first.MessageID); err != nil {
			t.Fatalf("generated MessageID fails its own check: %v", err)
		}
		second, err := f.composer.Compose(context.Background(), f.tenant, req)
		if err != nil {
			t.Fatalf("Compose: %v", err)
		}
		if second.MessageID == first.MessageID {
			t.Fatalf("two messages share MessageID %q", first.MessageID)
		}
	})

	t.Run("ClientValueKept", func(t *testing.T) {
		t.Parallel()
		f := newComposeFixture(t)
		req := f.request()
		req.MessageID = "<client-1234@client.example>"
		msg, err := f.composer.Compose(context.Background(), f.tenant, req)
		if err != nil {
			t.Fatalf("Compose: %v", err)
		}
		if msg.MessageID != req.MessageID || msg.ClientMessageID != "" {
			t.Fatalf("MessageID, ClientMessageID = %q, %q; want %q, none", msg.MessageID, msg.ClientMessageID, req.MessageID)
		}
	})

	// The seed contract's message_id and references are free-form strings
	// (its own help page samples "sample string 4"): the client's values are
	// kept as its references, and only valid msg-ids go on the wire.
	t.Run("FreeFormClientValuesKeptBesideWireIDs", func(t *testing.T) {
		t.Parallel()
		tests := []struct {
			name, messageID, references string
			wantWireRefs                string
			wantClientRefs              string
		}{
			{"SeedSample", "sample string 4", "sample string 5", "", "sample string 5"},
			{"BareAddress", "abc@example.com", "<a@example.com> nope", "<a@example.com>", "<a@example.com> nope"},
			{"NonASCII", "<jösé@example.org>", "<ü@example.org>", "", "<ü@example.org>"},
			{"FoldingWouldBreakIt", "<" + strings.Repeat("a", domain.MaxMessageIDLength-10) + "@example.com>", "<ok@example.com>", "<ok@example.com>", ""},
		}
		for _, tt := range tests {
			t.Run(tt.name, func(t *testing.T) {
				t.Parallel()
				f := newComposeFixture(t)
				req := f.request()
				req.MessageID, req.References = tt.messageID, tt.references
				msg, err := f.composer.Compose(context.Background(), f.tenant, req)
				if err != nil {
					t.Fatalf("Compose: %v", err)
				}
				if !generatedMessageID.MatchString(msg.MessageID) {
					t.Errorf("wire MessageID = %q, want a generated <uuid@example.com>", msg.MessageID)
				}
				if msg.ClientMessageID != tt.messageID {
					t.Errorf("ClientMessageID = %q, want %q", msg.ClientMessageID, tt.messageID)
				}
				if msg.References != tt.wantWireRefs || msg.ClientReferences != tt.wantClientRefs {
					t.Errorf("References, ClientReferences = %q, %q; want %q, %q", msg.References, msg.ClientReferences, tt.wantWireRefs, tt.wantClientRefs)
				}
				stored := f.store.stored(f.tenant, msg.ID)
				if stored.ClientMessageID != tt.messageID || stored.MessageID != msg.MessageID {
					t.Errorf("stored ids = %q, %q", stored.MessageID, stored.ClientMessageID)
				}
			})
		}
	})

	t.Run("DraftUpdateKeepsGeneratedWireID", func(t *testing.T) {
		t.Parallel()
		f := newComposeFixture(t)
		req := f.request()
		req.MessageID = "sample string 4"
		first, err := f.composer.Compose(context.Background(), f.tenant, req)
		if err != nil {
			t.Fatalf("Compose: %v", err)
		}
		req.ID, req.TS = first.ID, first.Version.Bytes()
		second, err := f.composer.Compose(context.Background(), f.tenant, req)
		if err != nil {
			t.Fatalf("Compose update: %v", err)
		}
		if second.MessageID != first.MessageID || second.ClientMessageID != "sample string 4" {
			t.Fatalf("after update ids = %q, %q; want %q, %q", second.MessageID, second.ClientMessageID, first.MessageID, "sample string 4")
		}
	})
}

func TestComposeErrors(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name   string
		mutate func(f composeFixture, req *domain.ComposeRequest)
		code   domain.ErrorCode
		field  string
	}{
		{"SubscriptionMismatch", func(_ composeFixture, r *domain.ComposeRequest) { r.SubscriptionID = uuid.New() }, domain.CodeForbidden, "subscription_id"},
		{"MissingSender", func(_ composeFixture, r *domain.ComposeRequest) { r.SenderEmail = "" }, domain.CodeInvalid, "sender_email"},
		{"BlankSender", func(_ composeFixture, r *domain.ComposeRequest) { r.SenderEmail = "  " }, domain.CodeInvalid, "sender_email"},
		{"SenderWithDisplayName", func(_ composeFixture, r *domain.ComposeRequest) { r.SenderEmail = "Alice <alice@example.com>" }, domain.CodeInvalid, "sender_email"},
		{"SenderCRLF", func(_ composeFixture, r *domain.ComposeRequest) {
			r.SenderEmail = "alice@example.com\r\nRCPT TO:<x@y.com>"
		}, domain.CodeInvalid, "sender_email"},
		{"SenderNotVerified", func(_ composeFixture, r *domain.ComposeRequest) { r.SenderEmail = "mallory@example.com" }, domain.CodeForbidden, ""},
		{"SenderAccountMismatch", func(_ composeFixture, r *domain.ComposeRequest) { r.SenderAccountID = uuid.New() }, domain.CodeForbidden, ""},
		{"SendWithoutRecipients", func(_ composeFixture, r *domain.ComposeRequest) { r.Send, r.To = true, nil }, domain.CodeInvalid, "to"},
		{"TooManyRecipients", func(_ composeFixture, r *domain.ComposeRequest) { r.To = recipientsN(domain.MaxRecipients + 1) }, domain.CodeInvalid, "to"},
		{"TooManyAcrossKinds", func(_ composeFixture, r *domain.ComposeRequest) {
			all := recipientsN(domain.MaxRecipients + 1)
			r.To, r.Cc, r.Bcc = all[:40], all[40:80], all[80:]
		}, domain.CodeInvalid, "to"},
		{"SubjectCRLF", func(_ composeFixture, r *domain.ComposeRequest) { r.Subject = "Hi\r\nBcc: victim@example.com" }, domain.CodeInvalid, "subject"},
		{"SubjectLF", func(_ composeFixture, r *domain.ComposeRequest) { r.Subject = "Hi\nthere" }, domain.CodeInvalid, "subject"},
		{"SubjectNUL", func(_ composeFixture, r *domain.ComposeRequest) { r.Subject = "Hi\x00" }, domain.CodeInvalid, "subject"},
		{"SubjectOverlong", func(_ composeFixture, r *domain.ComposeRequest) {
			r.Subject = strings.Repeat("s", domain.MaxSubjectLength+1)
		}, domain.CodeInvalid, "subject"},
		{"SenderDisplayNameCRLF", func(_ composeFixture, r *domain.ComposeRequest) { r.SenderDisplayName = "Alice\r\nX-Evil: 1" }, domain.CodeInvalid, "sender_display_name"},
		{"ToDisplayNameCRLF", func(_ composeFixture, r *domain.ComposeRequest) {
			r.To = []domain.RecipientInput{{EmailAddress: "a@example.org"}, {DisplayName: "Bob\r\nBcc: v@example.com", EmailAddress: "b@example.org"}}
		}, domain.CodeInvalid, "to[1].display_name"},
		{"CcDisplayNameNUL", func(_ composeFixture, r *domain.ComposeRequest) {
			r.Cc = []domain.RecipientInput{{DisplayName: "C\x00", EmailAddress: "c@example.org"}}
		}, domain.CodeInvalid, "cc[0].display_name"},
		{"BccDisplayNameLineSeparator", func(_ composeFixture, r *domain.ComposeRequest) {
			r.Bcc = []domain.RecipientInput{{EmailAddress: "a@example.net"}, {EmailAddress: "b@example.net"}, {DisplayName: "D\u2028", EmailAddress: "d@example.net"}}
		}, domain.CodeInvalid, "bcc[2].display_name"},
		{"ToDisplayNameOverlong", func(_ composeFixture, r *domain.ComposeRequest) {
			r.To[0].DisplayName = strings.Repeat("n", domain.MaxDisplayNameLength+1)
		}, domain.CodeInvalid, "to[0].display_name"},
		{"DisplayNameOfDuplicateStillChecked", func(_ composeFixture, r *domain.ComposeRequest) {
			r.Cc = []domain.RecipientInput{{DisplayName: "dup\r\n", EmailAddress: "bob@example.org"}}
		}, domain.CodeInvalid, "cc[0].display_name"},
		{"ToAddressMissing", func(_ composeFixture, r *domain.ComposeRequest) { r.To[0].EmailAddress = "" }, domain.CodeInvalid, "to[0].email_address"},
		{"ToAddressWithDisplayName", func(_ composeFixture, r *domain.ComposeRequest) { r.To[0].EmailAddress = `"a@x.com" <b@evil.com>` }, domain.CodeInvalid, "to[0].email_address"},
		{"CcAddressTwoAts", func(_ composeFixture, r *domain.ComposeRequest) {
			r.Cc = []domain.RecipientInput{{EmailAddress: "c@example.org"}, {EmailAddress: "a@b@c.com"}}
		}, domain.CodeInvalid, "cc[1].email_address"},
		{"BccAddressCRLF", func(_ composeFixture, r *domain.ComposeRequest) {
			r.Bcc = []domain.RecipientInput{{EmailAddress: "d@example.org\r\nDATA"}}
		}, domain.CodeInvalid, "bcc[0].email_address"},
		{"ImportanceTooHigh", func(_ composeFixture, r *domain.ComposeRequest) { r.Importance = 3 }, domain.CodeInvalid, "importance"},
		{"ImportanceNegative", func(_ composeFixture, r *domain.ComposeRequest) { r.Importance = -1 }, domain.CodeInvalid, "importance"},
		{"BodyNUL", func(_ composeFixture, r *domain.ComposeRequest) { r.Body = "a\x00b" }, domain.CodeInvalid, "body"},
		{"BodyTooLarge", func(_ composeFixture, r *domain.ComposeRequest) { r.Body = strings.Repeat("b", domain.MaxBodyBytes+1) }, domain.CodeTooLarge, "body"},
		{"UnknownAttachment", func(_ composeFixture, r *domain.ComposeRequest) { r.Attachments = []uuid.UUID{uuid.New()} }, domain.CodeNotFound, "attachments[0]"},
		{"DuplicateAttachment", func(_ composeFixture, r *domain.ComposeRequest) {
			id := uuid.New()
			r.Attachments = []uuid.UUID{id, id}
		}, domain.CodeInvalid, "attachments[1]"},
		{"UnknownParent", func(_ composeFixture, r *domain.ComposeRequest) { r.ParentID = uuid.New() }, domain.CodeNotFound, "parent_id"},
		{"ForeignRecipientAccount", func(_ composeFixture, r *domain.ComposeRequest) {
			r.To = []domain.RecipientInput{{EmailAddress: "x@example.net", AccountID: uuid.New()}}
		}, domain.CodeInvalid, "to[0].account_id"},
		{"RecipientAccountAddressMismatch", func(_ composeFixture, r *domain.ComposeRequest) {
			r.To = []domain.RecipientInput{{EmailAddress: "x@example.net", AccountID: carolAccountID}}
		}, domain.CodeInvalid, "to[0].email_address"},
		{"MessageIDCRLF", func(_ composeFixture, r *domain.ComposeRequest) { r.MessageID = "<a@example.com>\r\nBcc: x@y.com" }, domain.CodeInvalid, "message_id"},
		{"MessageIDOverlong", func(_ composeFixture, r *domain.ComposeRequest) {
			r.MessageID = strings.Repeat("x", domain.MaxClientMessageIDLength+1)
		}, domain.CodeInvalid, "message_id"},
		{"ReferencesLF", func(_ composeFixture, r *domain.ComposeRequest) { r.References = "<a@example.com>\n<b@example.com>" }, domain.CodeInvalid, "references"},
		{"SenderRefusedByStore", func(f composeFixture, _ *domain.ComposeRequest) {
			f.store.resolveErr = &domain.Error{Code: domain.CodeForbidden, Field: "sender_email", Message: "suspended"}
		}, domain.CodeForbidden, "sender_email"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			f := newComposeFixture(t)
			req := f.request()
			tt.mutate(f, &req)
			msg, err := f.composer.Compose(context.Background(), f.tenant, req)
			requireError(t, err, tt.code, tt.field)
			if msg != nil {
				t.Errorf("Compose returned a message with its error: %+v", msg)
			}
			if created, updated := f.store.writes(); created != 0 || updated != 0 {
				t.Errorf("store writes = %d created, %d updated; want none", created, updated)
			}
		})
	}
}

func TestComposeSender(t *testing.T) {
	t.Parallel()

	t.Run("SubscriptionMismatchChecksNothingElse", func(t *testing.T) {
		t.Parallel()
		f := newComposeFixture(t)
		req := f.request()
		req.SubscriptionID = uuid.New()
		_, err := f.composer.Compose(context.Background(), f.tenant, req)
		requireError(t, err, domain.CodeForbidden, "subscription_id")
		if f.store.resolveCalls != 0 {
			t.Fatalf("ResolveSender called %d times for a foreign subscription", f.store.resolveCalls)
		}
	})

	t.Run("RefusalPropagated", func(t *testing.T) {
		t.Parallel()
		f := newComposeFixture(t)
		refusal := &domain.Error{Code: domain.CodeForbidden, Message: "sender suspended"}
		f.store.resolveErr = fmt.Errorf("resolve: %w", refusal)
		_, err := f.composer.Compose(context.Background(), f.tenant, f.request())
		if !errors.Is(err, refusal) {
			t.Fatalf("err = %v, want the store's refusal", err)
		}
	})

	t.Run("InternalFailurePropagated", func(t *testing.T) {
		t.Parallel()
		f := newComposeFixture(t)
		boom := errors.New("db down")
		f.store.resolveErr = boom
		_, err := f.composer.Compose(context.Background(), f.tenant, f.request())
		if !errors.Is(err, boom) || domain.ErrorCodeOf(err) != domain.CodeInternal {
			t.Fatalf("err = %v (code %q), want %v as internal", err, domain.ErrorCodeOf(err), boom)
		}
	})

	t.Run("ByAccountIDOnly", func(t *testing.T) {
		t.Parallel()
		f := newComposeFixture(t)
		req := f.request()
		req.SenderEmail, req.SenderAccountID = "", senderAccountID
		msg, err := f.composer.Compose(context.Background(), f.tenant, req)
		if err != nil {
			t.Fatalf("Compose: %v", err)
		}
		if msg.SenderEmail != senderEmail || msg.SenderAccountID != senderAccountID {
			t.Fatalf("sender = %q/%v, want %q/%v", msg.SenderEmail, msg.SenderAccountID, senderEmail, senderAccountID)
		}
		if !generatedMessageID.MatchString(msg.MessageID) {
			t.Fatalf("MessageID = %q, want one on the resolved sender's domain", msg.MessageID)
		}
	})

	t.Run("RequestDisplayNameWins", func(t *testing.T) {
		t.Parallel()
		f := newComposeFixture(t)
		req := f.request()
		req.SenderDisplayName = "Alice Request"
		msg, err := f.composer.Compose(context.Background(), f.tenant, req)
		if err != nil {
			t.Fatalf("Compose: %v", err)
		}
		if msg.SenderDisplayName != "Alice Request" {
			t.Fatalf("SenderDisplayName = %q, want %q", msg.SenderDisplayName, "Alice Request")
		}
	})

	t.Run("NormalizedBeforeResolve", func(t *testing.T) {
		t.Parallel()
		f := newComposeFixture(t)
		store := newFakeStore()
		store.addSender(f.tenant, domain.AccountAddress{Email: "Alice@example.com"})
		c := &domain.Composer{Store: store, Now: f.composer.Now}
		req := f.request()
		req.SenderEmail = " Alice@EXAMPLE.com "
		msg, err := c.Compose(context.Background(), f.tenant, req)
		if err != nil {
			t.Fatalf("Compose: %v", err)
		}
		if msg.SenderEmail != "Alice@example.com" {
			t.Fatalf("SenderEmail = %q, want Alice@example.com", msg.SenderEmail)
		}
	})
}

func TestComposeRecipients(t *testing.T) {
	t.Parallel()
	type want struct {
		kind domain.RecipientKind
		name string
		addr string
	}
	tests := []struct {
		name        string
		to, cc, bcc []domain.RecipientInput
		want        []want
	}{
		{
			name: "SameAddressInAllKindsKeepsTo",
			to:   []domain.RecipientInput{{DisplayName: "To Bob", EmailAddress: "bob@example.org"}},
			cc:   []domain.RecipientInput{{DisplayName: "Cc Bob", EmailAddress: "bob@example.org"}},
			bcc:  []domain.RecipientInput{{DisplayName: "Bcc Bob", EmailAddress: "bob@example.org"}},
			want: []want{{domain.KindTo, "To Bob", "bob@example.org"}},
		},
		{
			name: "CcBeforeBcc",
			cc:   []domain.RecipientInput{{EmailAddress: "carol@example.org"}},
			bcc:  []domain.RecipientInput{{EmailAddress: "carol@example.org"}, {EmailAddress: "dave@example.org"}},
			want: []want{{domain.KindCc, "", "carol@example.org"}, {domain.KindBcc, "", "dave@example.org"}},
		},
		{
			name: "DomainCaseInsensitive",
			to:   []domain.RecipientInput{{EmailAddress: "bob@example.org"}},
			bcc:  []domain.RecipientInput{{EmailAddress: "bob@EXAMPLE.ORG"}},
			want: []want{{domain.KindTo, "", "bob@example.org"}},
		},
		{
			name: "DuplicateWithinOneKind",
			to: []domain.RecipientInput{
				{DisplayName: "first", EmailAddress: "bob@example.org"},
				{DisplayName: "x", EmailAddress: "x@example.org"},
				{DisplayName: "second", EmailAddress: "bob@example.org"},
			},
			want: []want{{domain.KindTo, "first", "bob@example.org"}, {domain.KindTo, "x", "x@example.org"}},
		},
		{
			name: "OrderAcrossKinds",
			to:   []domain.RecipientInput{{EmailAddress: "a@example.org"}, {EmailAddress: "b@example.org"}},
			cc:   []domain.RecipientInput{{EmailAddress: "b@example.org"}, {EmailAddress: "c@example.org"}},
			bcc:  []domain.RecipientInput{{EmailAddress: "a@example.org"}, {EmailAddress: "d@example.org"}},
			want: []want{
				{domain.KindTo, "", "a@example.org"},
				{domain.KindTo, "", "b@example.org"},
				{domain.KindCc, "", "c@example.org"},
				{domain.KindBcc, "", "d@example.org"},
			},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			f := newComposeFixture(t)
			req := f.request()
			req.To, req.Cc, req.Bcc, req.Send = tt.to, tt.cc, tt.bcc, true
			msg, err := f.composer.Compose(context.Background(), f.tenant, req)
			if err != nil {
				t.Fatalf("Compose: %v", err)
			}
			if len(msg.Recipients) != len(tt.want) {
				t.Fatalf("recipients = %+v, want %+v", msg.Recipients, tt.want)
			}
			for i, w := range tt.want {
				r := msg.Recipients[i]
				if r.Kind != w.kind || r.DisplayName != w.name || r.Email != w.addr || r.Position != i || r.Status != domain.RecipientPending {
					t.Errorf("recipient %d = %+v, want %+v at position %d, pending", i, r, w, i)
				}
			}
		})
	}

	t.Run("ExactlyMaxRecipients", func(t *testing.T) {
		t.Parallel()
		f := newComposeFixture(t)
		req := f.request()
		all := recipientsN(domain.MaxRecipients)
		req.To, req.Cc, req.Bcc, req.Send = all[:50], all[50:90], all[90:], true
		msg, err := f.composer.Compose(context.Background(), f.tenant, req)
		if err != nil {
			t.Fatalf("Compose: %v", err)
		}
		if len(msg.Recipients) != domain.MaxRecipients {
			t.Fatalf("got %d recipients, want %d", len(msg.Recipients), domain.MaxRecipients)
		}
	})
}

func TestComposeUpdate(t *testing.T) {
	t.Parallel()
	const current domain.Version = 7

	t.Run("OK", func(t *testing.T) {
		t.Parallel()
		f := newComposeFixture(t)
		existing := f.seedDraft(domain.StateDraft, current)
		req := f.request()
		req.ID, req.TS, req.Subject = existing.ID, current.Bytes(), "new subject"
		msg, err := f.composer.Compose(context.Background(), f.tenant, req)
		if err != nil {
			t.Fatalf("Compose: %v", err)
		}
		if len(f.store.updates) != 1 {
			t.Fatalf("UpdateDraft called %d times, want 1", len(f.store.updates))
		}
		call := f.store.updates[0]
		if call.expected != current {
			t.Errorf("UpdateDraft expected = %v, want %v", call.expected, current)
		}
		if call.versionSeen != 0 && call.versionSeen != current {
			t.Errorf("composer bumped the version itself to %v", call.versionSeen)
		}
		if created, _ := f.store.writes(); created != 0 {
			t.Errorf("CreateMessage called %d times on update", created)
		}
		if msg.ID != existing.ID || msg.ConversationID != existing.ConversationID {
			t.Errorf("ID/ConversationID = %v/%v, want %v/%v", msg.ID, msg.ConversationID, existing.ID, existing.ConversationID)
		}
		if !msg.CreatedDate.Equal(existing.CreatedDate) {
			t.Errorf("CreatedDate = %v, want the original %v", msg.CreatedDate, existing.CreatedDate)
		}
		if !msg.UpdatedAt.Equal(fixedNow) || msg.UpdatedAt.Location() != time.UTC {
			t.Errorf("UpdatedAt = %v, want %v in UTC", msg.UpdatedAt, fixedNow.UTC())
		}
		if msg.MessageID != existing.MessageID {
			t.Errorf("MessageID = %q, want the original %q", msg.MessageID, existing.MessageID)
		}
		if msg.Subject != "new subject" || msg.State != domain.StateDraft {
			t.Errorf("subject/state = %q/%q", msg.Subject, msg.State)
		}
		if msg.Version != current+1 {
			t.Errorf("Version = %v, want the store's %v", msg.Version, current+1)
		}
		if got := f.store.stored(f.tenant, existing.ID); got.Subject != "new subject" {
			t.Errorf("stored subject = %q", got.Subject)
		}
	})

	t.Run("NewClientMessageID", func(t *testing.T) {
		t.Parallel()
		f := newComposeFixture(t)
		existing := f.seedDraft(domain.StateDraft, current)
		req := f.request()
		req.ID, req.TS, req.MessageID = existing.ID, current.Bytes(), "<replacement@example.com>"
		msg, err := f.composer.Compose(context.Background(), f.tenant, req)
		if err != nil {
			t.Fatalf("Compose: %v", err)
		}
		if msg.MessageID != "<replacement@example.com>" {
			t.Fatalf("MessageID = %q, want the client's", msg.MessageID)
		}
	})

	t.Run("SendQueuesDraft", func(t *testing.T) {
		t.Parallel()
		f := newComposeFixture(t)
		existing := f.seedDraft(domain.StateDraft, current)
		req := f.request()
		req.ID, req.TS, req.Send = existing.ID, current.Bytes(), true
		msg, err := f.composer.Compose(context.Background(), f.tenant, req)
		if err != nil {
			t.Fatalf("Compose: %v", err)
		}
		if msg.State != domain.StateQueued {
			t.Fatalf("State = %q, want queued", msg.State)
		}
		if !domain.CanTransition(existing.State, msg.State) {
			t.Fatalf("update moved %q to %q against the state machine", existing.State, msg.State)
		}
	})

	t.Run("ErrStoreUpdate", func(t *testing.T) {
		t.Parallel()
		f := newComposeFixture(t)
		existing := f.seedDraft(domain.StateDraft, current)
		race := &domain.Error{Code: domain.CodeVersionMismatch, Field: "ts", CurrentVersion: current + 1}
		f.store.updateErr = race
		req := f.request()
		req.ID, req.TS = existing.ID, current.Bytes()
		_, err := f.composer.Compose(context.Background(), f.tenant, req)
		if !errors.Is(err, race) {
			t.Fatalf("err = %v, want the store's %v", err, race)
		}
	})

	versionErrors := []struct {
		name  string
		ts    []byte
		code  domain.ErrorCode
		field string
	}{
		{"ErrStaleTS", domain.Version(current - 1).Bytes(), domain.CodeVersionMismatch, "ts"},
		{"ErrFutureTS", domain.Version(current + 1).Bytes(), domain.CodeVersionMismatch, "ts"},
		{"ErrMissingTS", nil, domain.CodeVersionMismatch, "ts"},
		{"ErrShortTS", []byte{0, 7}, domain.CodeInvalid, "ts"},
		{"ErrEmptyTS", []byte{}, domain.CodeInvalid, "ts"},
	}
	for _, tt := range versionErrors {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			f := newComposeFixture(t)
			existing := f.seedDraft(domain.StateDraft, current)
			req := f.request()
			req.ID, req.TS = existing.ID, tt.ts
			_, err := f.composer.Compose(context.Background(), f.tenant, req)
			de := requireError(t, err, tt.code, tt.field)
			if tt.code == domain.CodeVersionMismatch && de.CurrentVersion != current {
				t.Errorf("CurrentVersion = %v, want %v", de.CurrentVersion, current)
			}
			if created, updated := f.store.writes(); created != 0 || updated != 0 {
				t.Errorf("store writes = %d created, %d updated; want none", created, updated)
			}
			if got := f.store.stored(f.tenant, existing.ID); got.Subject != existing.Subject || got.Version != current {
				t.Errorf("stored message changed: %+v", got)
			}
		})
	}

	for _, state := range []domain.MessageState{
		domain.StateQueued, domain.StateSending, domain.StateSent,
		domain.StatePartiallySent, domain.StateFailed, domain.StateCancelled,
	} {
		t.Run("ErrConflict/"+string(state), func(t *testing.T) {
			t.Parallel()
			f := newComposeFixture(t)
			existing := f.seedDraft(state, current)
			req := f.request()
			req.ID, req.TS = existing.ID, current.Bytes()
			_, err := f.composer.Compose(context.Background(), f.tenant, req)
			de := requireError(t, err, domain.CodeConflict, "")
			if de.CurrentVersion != current {
				t.Errorf("CurrentVersion = %v, want %v", de.CurrentVersion, current)
			}
			if created, updated := f.store.writes(); created != 0 || updated != 0 {
				t.Errorf("store writes = %d created, %d updated; want none", created, updated)
			}
		})
	}

	t.Run("ErrInvalidInputOnUpdate", func(t *testing.T) {
		t.Parallel()
		f := newComposeFixture(t)
		existing := f.seedDraft(domain.StateDraft, current)
		req := f.request()
		req.ID, req.TS, req.Subject = existing.ID, current.Bytes(), "x\r\ny"
		_, err := f.composer.Compose(context.Background(), f.tenant, req)
		requireError(t, err, domain.CodeInvalid, "subject")
		if _, updated := f.store.writes(); updated != 0 {
			t.Errorf("UpdateDraft called %d times for invalid input", updated)
		}
	})
}
