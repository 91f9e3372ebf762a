package domain

import (
	"time"

	"github.com/google/uuid"
)

// Folder is a mailbox-style view of a tenant's messages.
type Folder string

// The folders: drafts; outbox (queued, sending or failed); sent (delivered
// to some or all); inbox (delivered internally to an account).
const (
	FolderDrafts Folder = "drafts"
	FolderOutbox Folder = "outbox"
	FolderSent   Folder = "sent"
	FolderInbox  Folder = "inbox"
)

// States returns the message states a folder shows; nil for the inbox, which
// is defined by mailbox entries rather than state.
func (f Folder) States() []MessageState {
	switch f {
	case FolderDrafts:
		return []MessageState{StateDraft}
	case FolderOutbox:
		return []MessageState{StateQueued, StateSending, StateFailed}
	case FolderSent:
		return []MessageState{StateSent, StatePartiallySent}
	}
	return nil
}

// Valid reports whether f is a known folder.
func (f Folder) Valid() bool {
	switch f {
	case FolderDrafts, FolderOutbox, FolderSent, FolderInbox:
		return true
	}
	return false
}

// List limits.
const (
	DefaultListLimit = 50
	MaxListLimit     = 200
)

// MessageFilter selects a page of a tenant's messages, newest first.
type MessageFilter struct {
	State  MessageState
	Folder Folder
	// AccountID is the inbox's owner for the inbox folder, the sender's account otherwise.
	AccountID      uuid.UUID
	SenderEmail    string
	ConversationID uuid.UUID
	CreatedAfter   time.Time
	CreatedBefore  time.Time
	// SubjectContains matches case-insensitively.
	SubjectContains string
	Limit           int
	// Cursor is the opaque position returned with the previous page.
	Cursor string
}

// MessagePage is one page of messages and the cursor of the next, empty at the end.
type MessagePage struct {
	Messages   []*Message
	NextCursor string
}

// Event is one entry of a message's timeline or of the tenant's feed.
type Event struct {
	Sequence       int64
	SubscriptionID uuid.UUID
	// MessageID is uuid.Nil for events not about a message.
	MessageID uuid.UUID
	Type      string
	Recipient string
	SMTPCode  int
	Detail    string
	CreatedAt time.Time
}
