package domain

import (
	"time"

	"github.com/google/uuid"
)

// Attachment limits. The per-message total keeps the encoded message well
// under the 35 MB most relays accept.
const (
	MaxAttachmentBytes        = 10 << 20
	MaxMessageAttachmentBytes = 25 << 20
	MaxAttachmentsPerMessage  = 20
)

// Attachment is an uploaded file a message can carry.
type Attachment struct {
	ID             uuid.UUID
	SubscriptionID uuid.UUID
	Filename       string
	ContentType    string
	Size           int64
	SHA256         []byte
	CreatedAt      time.Time
}

// AttachmentContent is an attachment with its bytes, for building MIME.
type AttachmentContent struct {
	Attachment
	Data []byte
}
