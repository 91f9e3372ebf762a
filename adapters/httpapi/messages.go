package httpapi

import (
	"io"
	"mime"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/gin-gonic/gin"
	"github.com/google/uuid"

	"github.com/mailgate/mailgate/adapters/httpapi/wire"
	"github.com/mailgate/mailgate/domain"
)

// sendMessage is the seed API's POST api/messages/sendmessage: create, update
// or send a message described by a MessageComposeModel.
func (s *Server) sendMessage(c *gin.Context) (*answer, error) {
	model, err := decodeBody(c)
	if err != nil {
		return nil, err
	}
	return s.compose(c, model)
}

// compose runs a decoded model through the composer and answers with the result.
func (s *Server) compose(c *gin.Context, model wire.ComposeModel) (*answer, error) {
	req, err := model.Request()
	if err != nil {
		return nil, err
	}
	msg, err := s.composer.Compose(c.Request.Context(), principalOf(c).SubscriptionID, req)
	if err != nil {
		return nil, err
	}
	status := http.StatusOK
	if msg.Version == 1 {
		status = http.StatusCreated
		if s.observer != nil {
			s.observer.ObserveAccepted(msg.SubscriptionID, 1)
		}
	}
	return messageAnswer(status, msg).with("Location", "/api/messages/"+msg.ID.String()), nil
}

// decodeBody reads a compose model in whichever format the request declares.
func decodeBody(c *gin.Context) (wire.ComposeModel, error) {
	mediaType, _, err := mime.ParseMediaType(c.GetHeader("Content-Type"))
	if err != nil {
		mediaType = ""
	}
	opts := requestDecodeOptions(c)
	switch strings.ToLower(mediaType) {
	case "application/json", "text/json":
		return wire.DecodeJSON(c.Request.Body, opts)
	case "application/xml", "text/xml":
		body, transcoded, err := wire.UTF8XML(c.Request.Body, c.GetHeader("Content-Type"))
		if err != nil {
			return wire.ComposeModel{}, err
		}
		opts.UTF16 = transcoded
		return wire.DecodeXML(body, opts)
	case "application/x-www-form-urlencoded":
		body, err := io.ReadAll(c.Request.Body)
		if err != nil {
			return wire.ComposeModel{}, err
		}
		values, err := url.ParseQuery(string(body))
		if err != nil {
			return wire.ComposeModel{}, domain.FieldError("", "the form body is not valid URL encoding")
		}
		return wire.DecodeForm(values, opts)
	}
	return wire.ComposeModel{}, &domain.Error{Code: codeUnsupportedMediaType,
		Message: "send application/json, text/json, application/xml, text/xml or application/x-www-form-urlencoded"}
}

// requestDecodeOptions reads "Prefer: handling=strict" (RFC 7240 section
// 4.4), the standard way for a client to ask for strict input checks.
func requestDecodeOptions(c *gin.Context) wire.Options {
	for _, h := range c.Request.Header.Values("Prefer") {
		for _, pref := range strings.Split(h, ",") {
			name, value, _ := strings.Cut(strings.TrimSpace(pref), "=")
			if strings.EqualFold(strings.TrimSpace(name), "handling") && strings.EqualFold(strings.Trim(strings.TrimSpace(value), `"`), "strict") {
				return wire.Options{Strict: true}
			}
		}
	}
	return wire.Options{}
}

// pathID reads the :id path parameter; anything that is not a GUID is simply
// not found, like an id of another tenant.
func pathID(c *gin.Context) (uuid.UUID, error) {
	id, err := parseGUID("id", c.Param("id"))
	if err != nil || id == uuid.Nil {
		return uuid.Nil, domain.ErrNotFound
	}
	return id, nil
}

func (s *Server) getMessage(c *gin.Context) (*answer, error) {
	id, err := pathID(c)
	if err != nil {
		return nil, err
	}
	msg, err := s.messages.GetMessage(c.Request.Context(), principalOf(c).SubscriptionID, id)
	if err != nil {
		return nil, err
	}
	if match := c.GetHeader("If-None-Match"); match != "" && match == etag(msg.Version) {
		return emptyAnswer(http.StatusNotModified).with("ETag", etag(msg.Version)), nil
	}
	return messageAnswer(http.StatusOK, msg), nil
}

// ifMatch reads an If-Match header as a version; nil when absent or "*"
// (RFC 9110 13.1.1: any current version).
func ifMatch(c *gin.Context) (*domain.Version, error) {
	h := strings.TrimSpace(c.GetHeader("If-Match"))
	if h == "" || h == "*" {
		return nil, nil
	}
	h = strings.TrimPrefix(h, "W/")
	v, err := domain.ParseVersion(strings.Trim(h, `"`))
	if err != nil {
		return nil, &domain.Error{Code: domain.CodeInvalid, Field: "If-Match", Message: "must be an ETag returned by the gateway"}
	}
	return &v, nil
}

// putMessage replaces a draft (or creates a message under that id).
func (s *Server) putMessage(c *gin.Context) (*answer, error) {
	id, err := pathID(c)
	if err != nil {
		return nil, err
	}
	model, err := decodeBody(c)
	if err != nil {
		return nil, err
	}
	if err := s.bindPathAndVersion(c, id, &model); err != nil {
		return nil, err
	}
	return s.compose(c, model)
}

// bindPathAndVersion makes the path's id the model's and takes ts from If-Match.
func (s *Server) bindPathAndVersion(c *gin.Context, id uuid.UUID, model *wire.ComposeModel) error {
	if model.ID != "" {
		if bodyID, err := parseGUID("id", model.ID); err != nil || (bodyID != uuid.Nil && bodyID != id) {
			return domain.FieldError("id", "must be empty or equal the id in the path")
		}
	}
	model.ID = id.String()
	expected, err := ifMatch(c)
	if err != nil {
		return err
	}
	if expected == nil && strings.TrimSpace(c.GetHeader("If-Match")) == "*" && (model.TS == nil || *model.TS == "") {
		// "*" asks for the change whatever the current version is; the
		// message must exist (a PUT that creates takes no If-Match).
		current, err := s.messages.GetMessage(c.Request.Context(), principalOf(c).SubscriptionID, id)
		if err != nil {
			return err
		}
		expected = &current.Version
	}
	if expected != nil {
		ts := expected.String()
		if model.TS != nil && *model.TS != "" && string(*model.TS) != ts {
			return domain.FieldError("ts", "differs from If-Match")
		}
		wts := wire.TS(ts)
		model.TS = &wts
	}
	return nil
}

// patchMessage applies a JSON merge patch of compose-model fields to a draft.
func (s *Server) patchMessage(c *gin.Context) (*answer, error) {
	id, err := pathID(c)
	if err != nil {
		return nil, err
	}
	mediaType, _, _ := mime.ParseMediaType(c.GetHeader("Content-Type"))
	if mediaType != "application/json" && mediaType != "application/merge-patch+json" {
		return nil, &domain.Error{Code: codeUnsupportedMediaType, Message: "send application/merge-patch+json or application/json"}
	}
	tenant := principalOf(c).SubscriptionID
	current, err := s.messages.GetMessage(c.Request.Context(), tenant, id)
	if err != nil {
		return nil, err
	}
	model := wire.PatchBase(current)
	body, err := io.ReadAll(c.Request.Body)
	if err != nil {
		return nil, err
	}
	if err := wire.ApplyMergePatch(&model, body, requestDecodeOptions(c)); err != nil {
		return nil, err
	}
	if err := s.bindPathAndVersion(c, id, &model); err != nil {
		return nil, err
	}
	return s.compose(c, model)
}

func (s *Server) sendDraft(c *gin.Context) (*answer, error) {
	id, err := pathID(c)
	if err != nil {
		return nil, err
	}
	expected, err := ifMatch(c)
	if err != nil {
		return nil, err
	}
	msg, err := s.composer.Send(c.Request.Context(), principalOf(c).SubscriptionID, id, expected)
	if err != nil {
		return nil, err
	}
	return messageAnswer(http.StatusAccepted, msg), nil
}

func (s *Server) deleteMessage(c *gin.Context) (*answer, error) {
	id, err := pathID(c)
	if err != nil {
		return nil, err
	}
	expected, err := ifMatch(c)
	if err != nil {
		return nil, err
	}
	if err := s.composer.Delete(c.Request.Context(), principalOf(c).SubscriptionID, id, expected); err != nil {
		return nil, err
	}
	return emptyAnswer(http.StatusNoContent), nil
}

// listQueryParams are the filters GET /api/messages understands.
var listQueryParams = map[string]bool{ //nolint:gochecknoglobals // read-only: a fixed set
	"state": true, "folder": true, "account": true, "sender": true, "conversation": true,
	"created_after": true, "created_before": true, "q": true, "limit": true, "cursor": true,
}

func (s *Server) listMessages(c *gin.Context) (*answer, error) {
	filter, err := parseFilter(c.Request.URL.Query())
	if err != nil {
		return nil, err
	}
	page, err := s.messages.ListMessages(c.Request.Context(), principalOf(c).SubscriptionID, filter)
	if err != nil {
		return nil, err
	}
	view := wire.NewMessageView
	if filter.Folder == domain.FolderInbox {
		view = inboxView
	}
	items := mapViews(page.Messages, view)
	return negotiatedAnswer(http.StatusOK, gin.H{"items": items, "next_cursor": page.NextCursor}, func() ([]byte, error) {
		return encodeMessageListXML(items, page.NextCursor)
	}), nil
}

func parseFilter(q url.Values) (domain.MessageFilter, error) {
	var f domain.MessageFilter
	for name, values := range q {
		if !listQueryParams[name] {
			return f, domain.FieldError(name, "is not a filter of this list; use state, folder, account, sender, conversation, created_after, created_before, q, limit or cursor")
		}
		if len(values) > 1 {
			return f, domain.FieldError(name, "is given more than once")
		}
	}
	if v := q.Get("state"); v != "" {
		f.State = domain.MessageState(v)
		if !f.State.Valid() {
			return f, domain.FieldError("state", "must be one of draft, queued, sending, sent, partially_sent, failed, cancelled")
		}
	}
	if v := q.Get("folder"); v != "" {
		f.Folder = domain.Folder(v)
		if !f.Folder.Valid() {
			return f, domain.FieldError("folder", "must be drafts, outbox, sent or inbox")
		}
	}
	for _, p := range []struct {
		name string
		dst  *uuid.UUID
	}{{"account", &f.AccountID}, {"conversation", &f.ConversationID}} {
		if v := q.Get(p.name); v != "" {
			id, err := parseGUID(p.name, v)
			if err != nil {
				return f, err
			}
			*p.dst = id
		}
	}
	if v := q.Get("sender"); v != "" {
		addr, err := domain.NormalizeAddress("sender", wire.ASCIIAddress(v))
		if err != nil {
			return f, err
		}
		f.SenderEmail = addr
	}
	for _, p := range []struct {
		name string
		dst  *time.Time
	}{{"created_after", &f.CreatedAfter}, {"created_before", &f.CreatedBefore}} {
		if v := q.Get(p.name); v != "" {
			t, err := time.Parse(time.RFC3339Nano, v)
			if err != nil {
				return f, domain.FieldError(p.name, "must be an RFC 3339 date-time such as 2026-01-02T15:04:05Z")
			}
			*p.dst = t
		}
	}
	if v := q.Get("q"); v != "" {
		if err := domain.CheckHeaderText("q", v, 200); err != nil {
			return f, err
		}
		f.SubjectContains = v
	}
	if v := q.Get("limit"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 1 || n > domain.MaxListLimit {
			return f, domain.FieldError("limit", "must be a whole number from 1 to %d", domain.MaxListLimit)
		}
		f.Limit = n
	}
	f.Cursor = q.Get("cursor")
	return f, nil
}

// eventView is one timeline entry on the wire.
type eventView struct {
	Sequence  int64     `json:"sequence"`
	Type      string    `json:"type"`
	Recipient string    `json:"recipient,omitempty"`
	SMTPCode  int       `json:"smtp_code,omitempty"`
	Detail    string    `json:"detail,omitempty"`
	CreatedAt time.Time `json:"created_at"`
}

func (s *Server) messageEvents(c *gin.Context) (*answer, error) {
	id, err := pathID(c)
	if err != nil {
		return nil, err
	}
	events, err := s.messages.MessageEvents(c.Request.Context(), principalOf(c).SubscriptionID, id)
	if err != nil {
		return nil, err
	}
	items := mapViews(events, func(e domain.Event) eventView {
		return eventView{Sequence: e.Sequence, Type: e.Type, Recipient: e.Recipient, SMTPCode: e.SMTPCode, Detail: e.Detail, CreatedAt: e.CreatedAt}
	})
	return negotiatedAnswer(http.StatusOK, gin.H{"message_id": id, "items": items}, func() ([]byte, error) {
		return encodeMessageEventsXML(id.String(), items)
	}), nil
}

// messageAnswer answers with a message, and its version as the ETag, in
// the format the client accepts.
func messageAnswer(status int, msg *domain.Message) *answer {
	view := wire.NewMessageView(msg)
	return negotiatedAnswer(status, view, func() ([]byte, error) { return wire.EncodeXML(view) }).with("ETag", etag(msg.Version))
}

// parseLimit reads the limit query parameter and refuses any parameter not in allowed.
func parseLimit(c *gin.Context, allowed ...string) (int, error) {
	for name := range c.Request.URL.Query() {
		if name != "limit" && !slices.Contains(allowed, name) {
			return 0, domain.FieldError(name, "is not a parameter of this list; use limit or %s", strings.Join(allowed, ", "))
		}
	}
	v := c.Query("limit")
	if v == "" {
		return domain.DefaultListLimit, nil
	}
	n, err := strconv.Atoi(v)
	if err != nil || n < 1 || n > domain.MaxListLimit {
		return 0, domain.FieldError("limit", "must be a whole number from 1 to %d", domain.MaxListLimit)
	}
	return n, nil
}

// mapViews renders a list of domain values as their wire views.
func mapViews[T, V any](in []T, view func(T) V) []V {
	out := make([]V, len(in))
	for i, v := range in {
		out[i] = view(v)
	}
	return out
}
