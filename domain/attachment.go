package domain

import (
	"strings"
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

// AttachmentPolicy decides which uploads are refused. The zero value refuses
// nothing; DefaultAttachmentPolicy refuses programs and scripts, which mail
// filters drop anyway and which are the usual malware carriers.
type AttachmentPolicy struct {
	DenyTypes      []string
	DenyExtensions []string
}

// DefaultAttachmentPolicy refuses executables by content (as sniffed) and by
// file name extension.
func DefaultAttachmentPolicy() AttachmentPolicy {
	return AttachmentPolicy{
		DenyTypes: []string{
			"application/vnd.microsoft.portable-executable", "application/x-msdownload", "application/x-dosexec",
			"application/x-executable", "application/x-elf", "application/x-sharedlib", "application/x-mach-binary",
			"application/x-ms-installer", "application/x-msi", "application/java-archive", "application/jar",
			"application/x-java-archive", "text/x-shellscript", "application/x-sh", "application/x-bat",
		},
		DenyExtensions: []string{
			"exe", "dll", "com", "scr", "pif", "bat", "cmd", "msi", "msp", "ps1", "psm1", "vbs", "vbe", "js", "jse",
			"wsf", "wsh", "hta", "jar", "cpl", "lnk", "reg", "sh", "apk", "app", "scf", "inf", "gadget",
		},
	}
}

// Check refuses an attachment whose content type or file name extension is
// denied.
func (p AttachmentPolicy) Check(contentType, filename string) error {
	base := strings.ToLower(strings.TrimSpace(strings.SplitN(contentType, ";", 2)[0]))
	for _, t := range p.DenyTypes {
		if base == t {
			return &Error{Code: CodeInvalid, Field: "file", Message: "executable content (" + base + ") is not accepted as an attachment"}
		}
	}
	if dot := strings.LastIndexByte(filename, '.'); dot >= 0 {
		ext := strings.ToLower(strings.TrimSpace(filename[dot+1:]))
		for _, e := range p.DenyExtensions {
			if ext == e {
				return &Error{Code: CodeInvalid, Field: "file", Message: "files named ." + ext + " are not accepted as attachments"}
			}
		}
	}
	return nil
}
