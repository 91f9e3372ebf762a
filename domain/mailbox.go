package domain

import (
	"regexp"
	"time"

	"github.com/google/uuid"
)

// MailboxEntry is one internal recipient's own copy of a message: what it
// was sent (never another recipient's Bcc), in one of its folders, read or
// not. Deleting it touches no one else's copy, and the sender deleting the
// message leaves it in place.
type MailboxEntry struct {
	ID        uuid.UUID
	AccountID uuid.UUID
	// MessageID is the sender's message; it may since have been deleted.
	MessageID uuid.UUID
	// Kind is how this recipient was addressed; a bcc one sees no Bcc list either.
	Kind              RecipientKind
	Folder            string
	ReadAt            time.Time
	ReceivedAt        time.Time
	SenderEmail       string
	SenderDisplayName string
	Subject           string
	Body              string
	HeaderMessageID   string
	InReplyTo         string
	References        string
	ConversationID    uuid.UUID
	To, Cc            []RecipientInput
}

// MailboxFilter selects entries of one account's mailbox, newest first.
type MailboxFilter struct {
	AccountID uuid.UUID
	// Folder is "" for every folder.
	Folder string
	// Unread, when set, keeps only unread (true) or read (false) entries.
	Unread *bool
	Limit  int
	Cursor string
}

// MailboxChange is what a recipient may change on its entry; nil leaves a
// member as it is.
type MailboxChange struct {
	Read   *bool
	Folder *string
}

// The mailbox's own folders; others a client names are created by use.
const (
	FolderNameInbox   = "inbox"
	FolderNameArchive = "archive"
)

var folderName = regexp.MustCompile(`^[a-z0-9][a-z0-9_-]{0,63}$`)

// CheckFolderName accepts lower-case names of letters, digits, _ and -.
func CheckFolderName(field, name string) error {
	if !folderName.MatchString(name) {
		return FieldError(field, "must be 1 to 64 lower-case letters, digits, _ or - (such as inbox or archive)")
	}
	return nil
}
