package httpapi

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"io"
	"mime"
	"mime/multipart"
	"net/http"
	"path"
	"strconv"
	"strings"
	"time"
	"unicode"
	"unicode/utf8"

	"github.com/gabriel-vasile/mimetype"
	"github.com/gin-gonic/gin"
	"github.com/google/uuid"

	"github.com/mailgate/mailgate/domain"
)

// attachmentView is an attachment's metadata on the wire.
type attachmentView struct {
	ID          uuid.UUID `json:"id"`
	Filename    string    `json:"filename"`
	ContentType string    `json:"content_type"`
	Size        int64     `json:"size"`
	SHA256      string    `json:"sha256"`
	CreatedAt   time.Time `json:"created_at"`
}

func newAttachmentView(a domain.Attachment) attachmentView {
	return attachmentView{ID: a.ID, Filename: a.Filename, ContentType: a.ContentType, Size: a.Size, SHA256: hex.EncodeToString(a.SHA256), CreatedAt: a.CreatedAt}
}

// uploadAttachment takes one file as multipart/form-data (field "file"),
// reading the parts as they stream in rather than spooling the form to disk.
func (s *Server) uploadAttachment(c *gin.Context) (*answer, error) {
	mediaType, params, err := mime.ParseMediaType(c.GetHeader("Content-Type"))
	if err != nil || mediaType != "multipart/form-data" || params["boundary"] == "" {
		return nil, &domain.Error{Code: codeUnsupportedMediaType, Message: "upload the file as multipart/form-data in a part named file"}
	}
	reader := multipart.NewReader(c.Request.Body, params["boundary"])
	var (
		att  *domain.Attachment
		data []byte
	)
	for {
		part, err := reader.NextPart()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return nil, uploadError(err)
		}
		if part.FormName() != "file" {
			return nil, domain.FieldError(part.FormName(), "is not a field of an upload; send the file in a part named file")
		}
		if att != nil {
			return nil, domain.FieldError("file", "upload one file per request")
		}
		att, data, err = readAttachmentPart(part)
		if err != nil {
			return nil, err
		}
	}
	if att == nil {
		return nil, domain.FieldError("file", "is required")
	}
	if err := s.policy.Check(att.ContentType, att.Filename); err != nil {
		return nil, err
	}
	att.ID = uuid.New()
	att.SubscriptionID = principalOf(c).SubscriptionID
	if err := s.files.CreateAttachment(c.Request.Context(), att, data); err != nil {
		return nil, err
	}
	return jsonAnswer(http.StatusCreated, newAttachmentView(*att)).with("Location", "/api/attachments/"+att.ID.String()), nil
}

func uploadError(err error) error {
	var maxBytes *http.MaxBytesError
	if errors.As(err, &maxBytes) {
		return err
	}
	return domain.FieldError("file", "the multipart body is malformed")
}

// readAttachmentPart reads one file part within the size cap, hashing as it goes.
func readAttachmentPart(part *multipart.Part) (*domain.Attachment, []byte, error) {
	hash := sha256.New()
	var buf bytes.Buffer
	n, err := io.Copy(io.MultiWriter(&buf, hash), io.LimitReader(part, domain.MaxAttachmentBytes+1))
	if err != nil {
		return nil, nil, uploadError(err)
	}
	if n > domain.MaxAttachmentBytes {
		return nil, nil, &domain.Error{Code: domain.CodeTooLarge, Field: "file", Message: "an attachment may be at most " + strconv.Itoa(domain.MaxAttachmentBytes>>20) + " MiB"}
	}
	data := buf.Bytes()
	return &domain.Attachment{
		Filename:    sanitizeFilename(part.FileName()),
		ContentType: contentType(data, part.Header.Get("Content-Type")),
		Size:        n,
		SHA256:      hash.Sum(nil),
	}, data, nil
}

// contentType trusts the bytes over the client's label, except where the
// bytes can't tell (plain text, unknown binary) and the label is well formed.
// The label's safe parameters (a charset, and format and delsp for text)
// are kept; without a declared charset, a sniffed one is used.
func contentType(data []byte, declared string) string {
	sniffed := mimetype.Detect(data)
	base, sniffedParams, _ := mime.ParseMediaType(sniffed.String())
	declaredBase, declaredParams, err := mime.ParseMediaType(declared)
	if err != nil || declaredBase == "" || !(base == "application/octet-stream" ||
		base == "text/plain" && strings.HasPrefix(declaredBase, "text/")) {
		return sniffed.String()
	}
	params := map[string]string{}
	for key, value := range declaredParams {
		if safeTypeParam(declaredBase, key, value) {
			params[key] = strings.ToLower(value)
		}
	}
	if _, ok := params["charset"]; !ok && sniffedParams["charset"] != "" && strings.HasPrefix(declaredBase, "text/") {
		params["charset"] = sniffedParams["charset"]
	}
	if formatted := mime.FormatMediaType(declaredBase, params); formatted != "" {
		return formatted
	}
	return declaredBase
}

// safeTypeParam reports whether a declared Content-Type parameter may be
// kept: one that says how to read the bytes, with a short token value, and
// nothing a reader could take for a file name or a boundary.
func safeTypeParam(mediaType, key, value string) bool {
	if len(value) == 0 || len(value) > 40 || strings.Trim(strings.ToLower(value), "abcdefghijklmnopqrstuvwxyz0123456789-_.:") != "" {
		return false
	}
	switch key {
	case "charset":
		return true
	case "format", "delsp":
		return strings.HasPrefix(mediaType, "text/")
	}
	return false
}

// sanitizeFilename keeps the base name and drops control and path characters.
func sanitizeFilename(name string) string {
	name = path.Base(strings.ReplaceAll(name, `\`, "/"))
	name = strings.Map(func(r rune) rune {
		if unicode.IsControl(r) || r == '/' || r == '"' || r == unicode.ReplacementChar || r == '\u2028' || r == '\u2029' {
			return -1
		}
		return r
	}, name)
	name = strings.TrimSpace(strings.Trim(name, "."))
	for len(name) > 255 {
		_, size := utf8.DecodeLastRuneInString(name)
		name = name[:len(name)-size]
	}
	if name == "" {
		return "attachment"
	}
	return name
}

func (s *Server) getAttachment(c *gin.Context) (*answer, error) {
	id, err := pathID(c)
	if err != nil {
		return nil, err
	}
	a, err := s.files.GetAttachment(c.Request.Context(), principalOf(c).SubscriptionID, id)
	if err != nil {
		return nil, err
	}
	return jsonAnswer(http.StatusOK, newAttachmentView(a)), nil
}

func (s *Server) attachmentContent(c *gin.Context) (*answer, error) {
	id, err := pathID(c)
	if err != nil {
		return nil, err
	}
	a, err := s.files.AttachmentContent(c.Request.Context(), principalOf(c).SubscriptionID, id)
	if err != nil {
		return nil, err
	}
	return attachmentDownload(a), nil
}

// attachmentDownload answers with a file's bytes as an attachment (never
// rendered inline, its type not sniffed), tagged by its hash.
func attachmentDownload(a domain.AttachmentContent) *answer {
	return rawAnswer(http.StatusOK, a.ContentType, a.Data).
		with("Content-Disposition", mime.FormatMediaType("attachment", map[string]string{"filename": a.Filename})).
		with("X-Content-Type-Options", "nosniff").
		with("ETag", `"`+hex.EncodeToString(a.SHA256)+`"`)
}
