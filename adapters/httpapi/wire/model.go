package wire

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"reflect"
	"strconv"
	"strings"
	"time"

	"github.com/google/uuid"

	"github.com/mailgate/mailgate/domain"
)

// ComposeModel is the seed API's MessageComposeModel as it arrives. GUIDs,
// dates and base64 stay strings here so that a bad one is reported with the
// name of its field. Its members are those composeRecord declares.
type ComposeModel struct {
	SenderEmail       string           `json:"sender_email"`
	SenderDisplayName string           `json:"sender_display_name"`
	SenderAccountID   string           `json:"sender_account_id"`
	To                []RecipientModel `json:"to"`
	Cc                []RecipientModel `json:"cc"`
	Bcc               []RecipientModel `json:"bcc"`
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
	TS                *TS              `json:"ts"`
}

// RecipientModel is the seed API's MessageRecipientModel as it arrives.
type RecipientModel struct {
	DisplayName  string `json:"display_name"`
	EmailAddress string `json:"email_address"`
	AccountID    string `json:"account_id"`
}

// MessageView is the answer: the compose model's members as stored, plus
// the state the gateway keeps (the declaration's read-only members).
type MessageView struct {
	SenderEmail       string          `json:"sender_email"`
	SenderDisplayName string          `json:"sender_display_name"`
	SenderAccountID   *uuid.UUID      `json:"sender_account_id"`
	To                []RecipientView `json:"to"`
	Cc                []RecipientView `json:"cc"`
	Bcc               []RecipientView `json:"bcc"`
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

// RecipientView is a recipient of a stored message with its delivery status.
type RecipientView struct {
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

// compose binds the declaration of MessageComposeModel to its input and
// view types; it is read-only after start-up.
var compose = codec{ //nolint:gochecknoglobals // read-only: the declaration bound at start-up, never written after
	in:   mustBind[ComposeModel](composeRecord(), true),
	view: mustBind[MessageView](composeRecord(), false),
}

// codec is one declared record with the Go types that hold it on the way
// in and on the way out.
type codec struct {
	in, view *binding
}

// Request validates the wire-only parts (GUIDs, base64, dates, importance)
// and converts the model to the domain's request.
func (m ComposeModel) Request() (domain.ComposeRequest, error) {
	var (
		req  domain.ComposeRequest
		errs []error
	)
	guid := func(field, s string) uuid.UUID {
		id, err := ParseGUID(field, s)
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
	recipients := func(field string, list []RecipientModel) []domain.RecipientInput {
		out := make([]domain.RecipientInput, 0, len(list))
		for i, r := range list {
			out = append(out, domain.RecipientInput{
				DisplayName:  r.DisplayName,
				EmailAddress: ASCIIAddress(r.EmailAddress),
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
	req.SenderEmail, req.SenderDisplayName = ASCIIAddress(m.SenderEmail), m.SenderDisplayName
	req.MessageID, req.References = m.MessageID, m.References
	req.Body, req.Subject, req.Send = m.Body, m.Subject, m.Send
	return req, nil
}

// ParseGUID accepts the forms .NET's Guid.Parse does for the common cases:
// plain, braced and parenthesized. An empty string is absent.
func ParseGUID(field, s string) (uuid.UUID, error) {
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

// OptionalID is id, or nil for the zero GUID, which the wire shows as null.
func OptionalID(id uuid.UUID) *uuid.UUID {
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

// NewMessageView renders a stored message as the answer.
func NewMessageView(m *domain.Message) MessageView {
	v := MessageView{
		SenderEmail:       m.SenderEmail,
		SenderDisplayName: m.SenderDisplayName,
		SenderAccountID:   OptionalID(m.SenderAccountID),
		To:                []RecipientView{},
		Cc:                []RecipientView{},
		Bcc:               []RecipientView{},
		Importance:        int(m.Importance),
		MessageID:         clientOr(m.ClientMessageID, m.MessageID),
		References:        clientOr(m.ClientReferences, m.References),
		HeaderMessageID:   m.MessageID,
		HeaderReferences:  m.References,
		Body:              m.Body,
		Attachments:       append([]uuid.UUID{}, m.Attachments...),
		ParentID:          OptionalID(m.ParentID),
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
		rv := RecipientView{
			DisplayName: r.DisplayName, EmailAddress: r.Email, AccountID: OptionalID(r.AccountID),
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

// PatchBase turns a stored message back into the compose model a merge
// patch applies to: every writable member of its view, spelled as a client
// would send it. The version is left out; it must come from the client.
func PatchBase(m *domain.Message) ComposeModel {
	var model ComposeModel
	view := NewMessageView(m)
	copyMembers(compose.in, compose.view, reflect.ValueOf(&model).Elem(), reflect.ValueOf(&view).Elem())
	model.TS = nil
	if m.ClientReferences == "" && m.ParentID != uuid.Nil {
		// Derived References are recomputed from the parent; only a client's own are carried.
		model.References = ""
	}
	return model
}

// copyMembers copies each member inB holds from view, a value of viewB's
// type, into in, spelling typed values as the text a client sends.
func copyMembers(inB, viewB *binding, in, view reflect.Value) {
	for i, m := range inB.record.Members {
		if inB.field[i] == nil {
			continue
		}
		dst, src := in.FieldByIndex(inB.field[i]), view.FieldByIndex(viewB.field[i])
		switch m.Kind {
		case KindRecords:
			if src.IsNil() {
				continue
			}
			list := reflect.MakeSlice(dst.Type(), src.Len(), src.Len())
			for j := range src.Len() {
				copyMembers(inB.item[i], viewB.item[i], list.Index(j), src.Index(j))
			}
			dst.Set(list)
		case KindGUIDs:
			if src.IsNil() {
				continue
			}
			ids := typedField[[]uuid.UUID](src)
			list := make([]string, len(ids))
			for j, id := range ids {
				list[j] = id.String()
			}
			dst.Set(reflect.ValueOf(list))
		case KindImportance:
			dst.SetBytes([]byte(strconv.FormatInt(src.Int(), 10)))
		case KindVersion:
			if s := src.String(); s != "" {
				ts := TS(s)
				dst.Set(reflect.ValueOf(&ts))
			}
		case KindBool:
			setBool(dst, src.Bool())
		default:
			dst.SetString(viewText(src))
		}
	}
}

// viewText spells a typed view value as input text: "" for an absent one.
func viewText(v reflect.Value) string {
	if v.Kind() == reflect.Pointer {
		if v.IsNil() {
			return ""
		}
		v = v.Elem()
	}
	switch v.Type() {
	case typeUUID:
		id := typedField[uuid.UUID](v)
		if id == uuid.Nil {
			return ""
		}
		return id.String()
	case typeTime:
		t := typedField[time.Time](v)
		if t.IsZero() {
			return ""
		}
		return t.Format(time.RFC3339Nano)
	}
	return v.String()
}

// setBool sets a bool or *bool field.
func setBool(f reflect.Value, b bool) {
	if f.Kind() == reflect.Pointer {
		f.Set(reflect.ValueOf(&b))
		return
	}
	f.SetBool(b)
}
