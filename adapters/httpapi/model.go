package httpapi

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"strings"
	"time"

	"github.com/google/uuid"

	"github.com/mailgate/mailgate/domain"
)

// composeModel is the seed API's MessageComposeModel as it arrives. GUIDs,
// dates and base64 stay strings here so that a bad one is reported with the
// name of its field.
type composeModel struct {
	SenderEmail       string           `json:"sender_email"`
	SenderDisplayName string           `json:"sender_display_name"`
	SenderAccountID   string           `json:"sender_account_id"`
	To                []recipientModel `json:"to"`
	Cc                []recipientModel `json:"cc"`
	Bcc               []recipientModel `json:"bcc"`
	Importance        json.RawMessage  `json:"importance"`
	MessageID         string           `json:"message_id"`
	References        string           `json:"references"`
	Body              string           `json:"body"`
	Attachments       []string         `json:"attachments"`
	ParentID          string           `json:"parent_id"`
	CreatedDate       string           `json:"created_date"`
	Send              bool             `json:"send"`
	SendAt            string           `json:"send_at"`
	Subject           string           `json:"subject"`
	CanDelete         *bool            `json:"can_delete"`
	ID                string           `json:"id"`
	SubscriptionID    string           `json:"subscription_id"`
	TS                *wireTS          `json:"ts"`
}

type recipientModel struct {
	DisplayName  string `json:"display_name"`
	EmailAddress string `json:"email_address"`
	AccountID    string `json:"account_id"`
}

// decodeJSON reads a compose model: wrong types and server-owned members
// are errors naming the field; unknown members are ignored, or refused
// when opts.strict.
func decodeJSON(body io.Reader, opts decodeOptions) (composeModel, error) {
	var m composeModel
	data, err := io.ReadAll(body)
	if err != nil {
		return m, fmt.Errorf("read body: %w", err)
	}
	if err := checkJSONDepth(data, maxJSONDepth); err != nil {
		return m, err
	}
	if err := checkServerOwnedJSON(data); err != nil {
		return m, err
	}
	dec := json.NewDecoder(bytes.NewReader(data))
	if opts.strict {
		dec.DisallowUnknownFields()
	}
	if err := dec.Decode(&m); err != nil {
		return m, jsonErrorFor(err, "MessageComposeModel")
	}
	if dec.More() {
		return m, domain.FieldError("", "the body holds more than one JSON value")
	}
	return m, nil
}

// maxJSONDepth bounds nesting: the compose model needs three levels, so
// anything deeper is an attack on the parser, refused before decoding.
const maxJSONDepth = 16

// checkJSONDepth scans for brackets outside strings and refuses deep nesting.
func checkJSONDepth(data []byte, limit int) error {
	depth, inString, escaped := 0, false, false
	for _, c := range data {
		switch {
		case escaped:
			escaped = false
		case inString && c == '\\':
			escaped = true
		case c == '"':
			inString = !inString
		case inString:
		case c == '{' || c == '[':
			depth++
			if depth > limit {
				return domain.FieldError("", "the JSON is nested deeper than %d levels", limit)
			}
		case c == '}' || c == ']':
			depth--
		}
	}
	return nil
}

// errEmptyBody is a JSON body with nothing in it, which endpoints whose
// body is optional accept.
var errEmptyBody = domain.FieldError("", "the body is empty")

// jsonErrorFor turns a decoding error into an invalid-input error; an
// unknown member is named with model, the type the endpoint reads.
func jsonErrorFor(err error, model string) error {
	var (
		syntaxErr *json.SyntaxError
		typeErr   *json.UnmarshalTypeError
	)
	switch {
	case errors.As(err, &syntaxErr):
		return domain.FieldError("", "the body is not valid JSON (at byte %d)", syntaxErr.Offset)
	case errors.As(err, &typeErr):
		return domain.FieldError(typeErr.Field, "must be a JSON %s, not %s", jsonTypeName(typeErr.Type.Kind().String()), typeErr.Value)
	case errors.Is(err, io.EOF):
		return errEmptyBody
	case errors.Is(err, io.ErrUnexpectedEOF):
		return domain.FieldError("", "the body is truncated JSON")
	case strings.HasPrefix(err.Error(), "json: unknown field "):
		field := strings.Trim(strings.TrimPrefix(err.Error(), "json: unknown field "), `"`)
		return domain.FieldError(field, "is not a field of %s", model)
	}
	return fmt.Errorf("decode JSON: %w", err)
}

func jsonTypeName(kind string) string {
	switch kind {
	case "bool":
		return "boolean"
	case "slice":
		return "array"
	case "struct", "map":
		return "object"
	case "int", "int16", "int32", "int64", "float64":
		return "number"
	}
	return kind
}

// toRequest validates the wire-only parts (GUIDs, base64, dates, importance)
// and converts the model to the domain's request.
func (m composeModel) toRequest() (domain.ComposeRequest, error) {
	var (
		req  domain.ComposeRequest
		errs []error
	)
	guid := func(field, s string) uuid.UUID {
		id, err := parseGUID(field, s)
		if err != nil {
			errs = append(errs, err)
		}
		return id
	}
	req.ID = guid("id", m.ID)
	req.SubscriptionID = guid("subscription_id", m.SubscriptionID)
	req.SenderAccountID = guid("sender_account_id", m.SenderAccountID)
	req.ParentID = guid("parent_id", m.ParentID)
	for i, a := range m.Attachments {
		req.Attachments = append(req.Attachments, guid(fmt.Sprintf("attachments[%d]", i), a))
	}
	recipients := func(field string, list []recipientModel) []domain.RecipientInput {
		out := make([]domain.RecipientInput, 0, len(list))
		for i, r := range list {
			out = append(out, domain.RecipientInput{
				DisplayName:  r.DisplayName,
				EmailAddress: asciiAddress(r.EmailAddress),
				AccountID:    guid(fmt.Sprintf("%s[%d].account_id", field, i), r.AccountID),
			})
		}
		return out
	}
	req.To, req.Cc, req.Bcc = recipients("to", m.To), recipients("cc", m.Cc), recipients("bcc", m.Bcc)
	if len(errs) > 0 {
		return req, errs[0]
	}
	importance, err := parseImportanceJSON(m.Importance)
	if err != nil {
		return req, err
	}
	req.Importance = importance
	if m.TS != nil && *m.TS != "" {
		ts, err := base64.StdEncoding.DecodeString(string(*m.TS))
		if err != nil {
			return req, domain.FieldError("ts", "is not valid base64")
		}
		req.TS = ts
	}
	if m.SendAt != "" {
		at, err := time.Parse(time.RFC3339Nano, m.SendAt)
		if strings.HasPrefix(strings.TrimSpace(m.SendAt), "/Date(") {
			at, err = parseWireDate(m.SendAt)
		}
		if err != nil {
			return req, domain.FieldError("send_at", "must be an RFC 3339 date-time such as 2026-01-02T15:04:05Z")
		}
		req.SendAt = at
	}
	if m.CreatedDate != "" {
		// The server owns created_date; a client value is checked, then ignored.
		if _, err := parseWireDate(m.CreatedDate); err != nil {
			return req, domain.FieldError("created_date", "is not an ISO 8601 date-time")
		}
	}
	req.SenderEmail, req.SenderDisplayName = asciiAddress(m.SenderEmail), m.SenderDisplayName
	req.MessageID, req.References = m.MessageID, m.References
	req.Body, req.Subject, req.Send = m.Body, m.Subject, m.Send
	return req, nil
}

// parseGUID accepts the forms .NET's Guid.Parse does for the common cases:
// plain, braced and parenthesized. An empty string is absent.
func parseGUID(field, s string) (uuid.UUID, error) {
	s = strings.TrimSpace(s)
	if s == "" {
		return uuid.Nil, nil
	}
	if len(s) == 38 && (s[0] == '{' && s[37] == '}' || s[0] == '(' && s[37] == ')') {
		s = s[1:37]
	}
	id, err := uuid.Parse(s)
	if err != nil || (len(s) != 36 && len(s) != 32) {
		return uuid.Nil, domain.FieldError(field, "is not a valid GUID")
	}
	return id, nil
}

func parseImportanceJSON(raw json.RawMessage) (domain.Importance, error) {
	raw = bytes.TrimSpace(raw)
	if len(raw) == 0 || bytes.Equal(raw, []byte("null")) {
		return domain.ImportanceNormal, nil
	}
	var n json.Number
	if err := json.Unmarshal(raw, &n); err == nil {
		return domain.ParseImportance(n.String())
	}
	var name string
	if err := json.Unmarshal(raw, &name); err != nil {
		return 0, domain.FieldError("importance", "must be a number (0, 1, 2) or a name (Low, Normal, High)")
	}
	return domain.ParseImportance(name)
}

// parseDate accepts RFC 3339 with any fraction, as .NET writes DateTime and DateTimeOffset.
func parseDate(s string) (time.Time, error) {
	for _, layout := range []string{time.RFC3339Nano, "2006-01-02T15:04:05.9999999", "2006-01-02T15:04:05", "2006-01-02"} {
		if t, err := time.Parse(layout, s); err == nil {
			return t, nil
		}
	}
	return time.Time{}, fmt.Errorf("bad date %q", s)
}

// messageView is the response: the compose model's fields as stored, plus
// the state the gateway keeps.
type messageView struct {
	SenderEmail       string          `json:"sender_email"`
	SenderDisplayName string          `json:"sender_display_name"`
	SenderAccountID   *uuid.UUID      `json:"sender_account_id"`
	To                []recipientView `json:"to"`
	Cc                []recipientView `json:"cc"`
	Bcc               []recipientView `json:"bcc"`
	Importance        int             `json:"importance"`
	MessageID         string          `json:"message_id"`
	References        string          `json:"references"`
	Body              string          `json:"body"`
	Attachments       []uuid.UUID     `json:"attachments"`
	ParentID          *uuid.UUID      `json:"parent_id"`
	CreatedDate       time.Time       `json:"created_date"`
	Send              bool            `json:"send"`
	SendAt            *time.Time      `json:"send_at"`
	Subject           string          `json:"subject"`
	CanDelete         bool            `json:"can_delete"`
	ID                uuid.UUID       `json:"id"`
	SubscriptionID    uuid.UUID       `json:"subscription_id"`
	TS                string          `json:"ts"`

	// HeaderMessageID and HeaderReferences are what the Message-ID and
	// References headers carry; MessageID and References are the client's
	// own values when it gave ones that are not valid msg-ids.
	HeaderMessageID  string              `json:"header_message_id"`
	HeaderReferences string              `json:"header_references"`
	State            domain.MessageState `json:"state"`
	InReplyTo        string              `json:"in_reply_to"`
	ConversationID   uuid.UUID           `json:"conversation_id"`
	UpdatedAt        time.Time           `json:"updated_at"`
	LastError        string              `json:"last_error,omitempty"`
	// TextBody and DKIMResult are set on received replies: the plain-text
	// alternative of an HTML body, and the DKIM verification.
	TextBody   string `json:"text_body,omitempty"`
	DKIMResult string `json:"dkim_result,omitempty"`
}

type recipientView struct {
	DisplayName  string                 `json:"display_name"`
	EmailAddress string                 `json:"email_address"`
	AccountID    *uuid.UUID             `json:"account_id"`
	Status       domain.RecipientStatus `json:"status"`
	Attempts     int                    `json:"attempts"`
	LastCode     int                    `json:"last_code,omitempty"`
	LastReply    string                 `json:"last_reply,omitempty"`
	// PossibleDuplicate: the relay's answer was lost after the data was sent.
	PossibleDuplicate bool `json:"possible_duplicate,omitempty"`
}

func optionalID(id uuid.UUID) *uuid.UUID {
	if id == uuid.Nil {
		return nil
	}
	return &id
}

// clientOr is the client's own value when it gave one, else the wire's.
func clientOr(client, wire string) string {
	if client != "" {
		return client
	}
	return wire
}

func newMessageView(m *domain.Message) messageView {
	v := messageView{
		SenderEmail:       m.SenderEmail,
		SenderDisplayName: m.SenderDisplayName,
		SenderAccountID:   optionalID(m.SenderAccountID),
		To:                []recipientView{},
		Cc:                []recipientView{},
		Bcc:               []recipientView{},
		Importance:        int(m.Importance),
		MessageID:         clientOr(m.ClientMessageID, m.MessageID),
		References:        clientOr(m.ClientReferences, m.References),
		HeaderMessageID:   m.MessageID,
		HeaderReferences:  m.References,
		Body:              m.Body,
		Attachments:       append([]uuid.UUID{}, m.Attachments...),
		ParentID:          optionalID(m.ParentID),
		CreatedDate:       m.CreatedDate,
		Send:              m.State != domain.StateDraft,
		Subject:           m.Subject,
		CanDelete:         m.CanDelete(),
		ID:                m.ID,
		SubscriptionID:    m.SubscriptionID,
		TS:                m.Version.String(),
		State:             m.State,
		InReplyTo:         m.InReplyTo,
		ConversationID:    m.ConversationID,
		UpdatedAt:         m.UpdatedAt,
		LastError:         m.LastError,
		TextBody:          m.TextBody,
		DKIMResult:        m.DKIMResult,
	}
	if !m.SendAt.IsZero() {
		at := m.SendAt
		v.SendAt = &at
	}
	for _, r := range m.Recipients {
		rv := recipientView{
			DisplayName: r.DisplayName, EmailAddress: r.Email, AccountID: optionalID(r.AccountID),
			Status: r.Status, Attempts: r.Attempts, LastCode: r.LastCode, LastReply: r.LastReply,
			PossibleDuplicate: r.PossibleDuplicate,
		}
		switch r.Kind {
		case domain.KindTo:
			v.To = append(v.To, rv)
		case domain.KindCc:
			v.Cc = append(v.Cc, rv)
		case domain.KindBcc:
			v.Bcc = append(v.Bcc, rv)
		}
	}
	return v
}
