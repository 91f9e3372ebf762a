package postgres_test

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/mailgate/mailgate/domain"
)

func TestListMessages(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	f := newFixture(t, fixtureOpts{})
	var drafts, queued []*domain.Message
	for range 5 {
		drafts = append(drafts, f.compose(t, false))
	}
	for range 3 {
		queued = append(queued, f.compose(t, true))
	}
	other := newFixture(t, fixtureOpts{})
	other.compose(t, false)

	t.Run("OKPagesAreStableAndComplete", func(t *testing.T) {
		seen := map[uuid.UUID]bool{}
		cursor := ""
		pages := 0
		for {
			page, err := f.store.ListMessages(ctx, f.tenant.ID, domain.MessageFilter{Limit: 3, Cursor: cursor})
			if err != nil {
				t.Fatal(err)
			}
			pages++
			for _, m := range page.Messages {
				if seen[m.ID] {
					t.Fatalf("message %s listed twice", m.ID)
				}
				seen[m.ID] = true
				if len(m.Recipients) != 3 {
					t.Fatalf("listed message lacks its recipients")
				}
			}
			if page.NextCursor == "" {
				break
			}
			cursor = page.NextCursor
		}
		if len(seen) != 8 || pages != 3 {
			t.Fatalf("listed %d messages in %d pages, want 8 in 3", len(seen), pages)
		}
	})

	t.Run("OKFolders", func(t *testing.T) {
		for _, tt := range []struct {
			filter domain.MessageFilter
			want   int
		}{
			{domain.MessageFilter{Folder: domain.FolderDrafts}, 5},
			{domain.MessageFilter{Folder: domain.FolderOutbox}, 3},
			{domain.MessageFilter{Folder: domain.FolderSent}, 0},
			{domain.MessageFilter{State: domain.StateQueued}, 3},
			{domain.MessageFilter{AccountID: f.sender.ID}, 8},
			{domain.MessageFilter{SenderEmail: f.sender.Email}, 8},
			{domain.MessageFilter{SubjectContains: "HELL"}, 8},
			{domain.MessageFilter{SubjectContains: "%"}, 0},
			{domain.MessageFilter{ConversationID: drafts[0].ConversationID}, 1},
			{domain.MessageFilter{CreatedAfter: time.Now().Add(time.Hour)}, 0},
			{domain.MessageFilter{CreatedBefore: time.Now().Add(time.Hour)}, 8},
			{domain.MessageFilter{Folder: domain.FolderInbox}, 0},
		} {
			page, err := f.store.ListMessages(ctx, f.tenant.ID, tt.filter)
			if err != nil {
				t.Fatal(err)
			}
			if len(page.Messages) != tt.want {
				t.Errorf("%+v: %d messages, want %d", tt.filter, len(page.Messages), tt.want)
			}
		}
	})

	t.Run("ErrBadCursor", func(t *testing.T) {
		_, err := f.store.ListMessages(ctx, f.tenant.ID, domain.MessageFilter{Cursor: "garbage!"})
		if domain.ErrorCodeOf(err) != domain.CodeInvalid {
			t.Fatalf("want invalid, got %v", err)
		}
	})
	_ = queued
}

func TestDeleteMessage(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	f := newFixture(t, fixtureOpts{})

	t.Run("ErrQueuedIsConflict", func(t *testing.T) {
		t.Parallel()
		msg := f.compose(t, true)
		if err := f.store.DeleteMessage(ctx, f.tenant.ID, msg.ID, nil); domain.ErrorCodeOf(err) != domain.CodeConflict {
			t.Fatalf("want conflict, got %v", err)
		}
	})
	t.Run("ErrStaleVersion", func(t *testing.T) {
		t.Parallel()
		msg := f.compose(t, false)
		stale := domain.Version(9)
		if err := f.store.DeleteMessage(ctx, f.tenant.ID, msg.ID, &stale); domain.ErrorCodeOf(err) != domain.CodeVersionMismatch {
			t.Fatalf("want version mismatch, got %v", err)
		}
	})
	t.Run("OKKeepsTimeline", func(t *testing.T) {
		t.Parallel()
		msg := f.compose(t, false)
		if err := f.store.DeleteMessage(ctx, f.tenant.ID, msg.ID, &msg.Version); err != nil {
			t.Fatal(err)
		}
		if _, err := f.store.GetMessage(ctx, f.tenant.ID, msg.ID); !errors.Is(err, domain.ErrNotFound) {
			t.Fatalf("deleted message still readable: %v", err)
		}
		events, err := f.store.MessageEvents(ctx, f.tenant.ID, msg.ID)
		if err != nil || len(events) != 2 || events[1].Type != "deleted" {
			t.Fatalf("timeline after delete: %+v %v", events, err)
		}
		if _, err := f.store.MessageEvents(ctx, f.tenant.ID, uuid.New()); !errors.Is(err, domain.ErrNotFound) {
			t.Fatalf("events of an unknown message: %v", err)
		}
	})
}

func TestAttachmentsAndPurge(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	f := newFixture(t, fixtureOpts{})
	newAttachment := func() domain.Attachment {
		a := domain.Attachment{ID: uuid.New(), SubscriptionID: f.tenant.ID, Filename: "f.txt", ContentType: "text/plain", Size: 3, SHA256: make([]byte, 32)}
		if err := f.store.CreateAttachment(ctx, &a, []byte("abc")); err != nil {
			t.Fatal(err)
		}
		return a
	}
	used, unused := newAttachment(), newAttachment()
	c := &domain.Composer{Store: f.store}
	msg, err := c.Compose(ctx, f.tenant.ID, domain.ComposeRequest{
		SenderEmail: f.sender.Email, To: []domain.RecipientInput{{EmailAddress: "a@example.net"}}, Attachments: []uuid.UUID{used.ID},
	})
	if err != nil {
		t.Fatal(err)
	}
	got, err := f.store.MessageAttachments(ctx, f.tenant.ID, msg.ID)
	if err != nil || len(got) != 1 || string(got[0].Data) != "abc" {
		t.Fatalf("message attachments: %+v %v", got, err)
	}
	if _, err := f.store.PurgeUnreferencedAttachments(ctx, time.Now().Add(time.Minute)); err != nil {
		t.Fatal(err)
	}
	if _, err := f.store.GetAttachment(ctx, f.tenant.ID, unused.ID); !errors.Is(err, domain.ErrNotFound) {
		t.Fatalf("an unreferenced attachment past its grace period survived the purge")
	}
	if _, err := f.store.GetAttachment(ctx, f.tenant.ID, used.ID); err != nil {
		t.Fatalf("a referenced attachment was purged: %v", err)
	}
	other := newFixture(t, fixtureOpts{})
	if _, err := other.store.GetAttachment(ctx, other.tenant.ID, used.ID); !errors.Is(err, domain.ErrNotFound) {
		t.Fatalf("another tenant reads the attachment")
	}
}
