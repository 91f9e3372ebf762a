package httpapi

import (
	"context"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/mailgate/mailgate/domain"
)

// inboundFakes serves one stored inbound message and one mailbox entry with
// one attachment. The embedded ports are nil: only the methods these
// endpoints call are implemented.
type inboundFakes struct {
	AdminStore
	MailboxStore
	tenant  uuid.UUID
	record  domain.InboundRecord
	entry   uuid.UUID
	att     domain.AttachmentContent
	deleted bool
}

func newInboundFakes() *inboundFakes {
	at := time.Date(2026, 6, 9, 6, 59, 25, 0, time.UTC)
	f := &inboundFakes{tenant: uuid.New(), entry: uuid.New()}
	f.record = domain.InboundRecord{
		InboundMail: domain.InboundMail{ID: uuid.New(), ReceivedAt: at, RemoteAddr: "192.0.2.7", Helo: "mta.example",
			RcptTo: []string{"bounce+abc@bounces.example"},
			Raw:    []byte("From: =?utf-8?q?Mail_Delivery_System?= <MAILER-DAEMON@mta.example>\r\nSubject: Undelivered Mail\r\n\r\nbody\r\n")},
		Status: domain.InboundUnmatched, Kind: domain.InboundBounce, Detail: "forged or unknown address token", ProcessedAt: at.Add(time.Second),
	}
	f.record.Size = len(f.record.Raw)
	f.att = domain.AttachmentContent{Attachment: domain.Attachment{ID: uuid.New(), SubscriptionID: f.tenant, Filename: "minutes.txt",
		ContentType: "text/plain; charset=utf-8", Size: 5, SHA256: make([]byte, 32), CreatedAt: at}, Data: []byte("hello")}
	return f
}

func (f *inboundFakes) VerifyToken(_ context.Context, token string) (Principal, error) {
	switch token {
	case "operator":
		return Principal{SubscriptionID: f.tenant, Admin: true}, nil
	case "tenant":
		return Principal{SubscriptionID: f.tenant}, nil
	}
	return Principal{}, domain.Errorf(domain.CodeUnauthorized, "invalid or expired token")
}

func (f *inboundFakes) ListInbound(_ context.Context, filter domain.InboundFilter) ([]domain.InboundRecord, string, error) {
	if filter.Status != "" && filter.Status != f.record.Status {
		return nil, "", nil
	}
	return []domain.InboundRecord{f.record}, "", nil
}

func (f *inboundFakes) GetInbound(_ context.Context, id uuid.UUID) (domain.InboundRecord, error) {
	if id != f.record.ID || f.deleted {
		return domain.InboundRecord{}, domain.ErrNotFound
	}
	return f.record, nil
}

func (f *inboundFakes) DeleteInbound(_ context.Context, id uuid.UUID) error {
	if id != f.record.ID {
		return domain.ErrNotFound
	}
	f.deleted = true
	return nil
}

func (f *inboundFakes) ReprocessInbound(_ context.Context, id uuid.UUID) (domain.InboundRecord, error) {
	if id != f.record.ID {
		return domain.InboundRecord{}, domain.ErrNotFound
	}
	if f.record.Status != domain.InboundUnmatched {
		return domain.InboundRecord{}, domain.Errorf(domain.CodeConflict, "only unmatched inbound mail can be reprocessed")
	}
	f.record.Status, f.record.Detail, f.record.Kind, f.record.ProcessedAt = domain.InboundReceived, "", "", time.Time{}
	return f.record, nil
}

func (f *inboundFakes) MailboxEntryAttachments(_ context.Context, tenant, entry uuid.UUID) ([]domain.Attachment, error) {
	if tenant != f.tenant || entry != f.entry {
		return nil, domain.ErrNotFound
	}
	return []domain.Attachment{f.att.Attachment}, nil
}

func (f *inboundFakes) MailboxAttachmentContent(_ context.Context, tenant, entry, attachment uuid.UUID) (domain.AttachmentContent, error) {
	if tenant != f.tenant || entry != f.entry || attachment != f.att.ID {
		return domain.AttachmentContent{}, domain.ErrNotFound
	}
	return f.att, nil
}

// The operator's inbound endpoints and the mailbox attachments answer as
// the document says, and only an operator token reaches the former.
func TestInboundAdminAndMailboxAttachmentsMatchDocument(t *testing.T) {
	t.Parallel()
	doc := loadOpenAPI(t)
	f := newInboundFakes()
	srv := New(Deps{Verifier: f, Admin: f, Mailbox: f, InboundAdmin: f, MailboxAttachments: f, Logger: quietLogger})
	id, entry, att := f.record.ID.String(), f.entry.String(), f.att.ID.String()
	for _, tc := range []struct {
		method, path, target, token string
		want                        int
		refused                     bool
		check                       func(t *testing.T, rec *httptest.ResponseRecorder)
	}{
		{"GET", "/api/admin/inbound", "/api/admin/inbound?status=unmatched&limit=5", "operator", 200, false, func(t *testing.T, rec *httptest.ResponseRecorder) {
			if !strings.Contains(rec.Body.String(), id) {
				t.Errorf("the list misses the unmatched message: %s", rec.Body)
			}
		}},
		{"GET", "/api/admin/inbound", "/api/admin/inbound", "tenant", 403, false, nil},
		{"GET", "/api/admin/inbound", "/api/admin/inbound?status=lost", "operator", 400, true, nil},
		{"GET", "/api/admin/inbound/{id}", "/api/admin/inbound/" + id, "operator", 200, false, func(t *testing.T, rec *httptest.ResponseRecorder) {
			if !strings.Contains(rec.Body.String(), `"from":"Mail Delivery System \u003cMAILER-DAEMON@mta.example\u003e"`) &&
				!strings.Contains(rec.Body.String(), `"from":"Mail Delivery System <MAILER-DAEMON@mta.example>"`) {
				t.Errorf("the summary does not decode the From header: %s", rec.Body)
			}
		}},
		{"GET", "/api/admin/inbound/{id}", "/api/admin/inbound/" + uuid.NewString(), "operator", 404, false, nil},
		{"GET", "/api/admin/inbound/{id}/raw", "/api/admin/inbound/" + id + "/raw", "operator", 200, false, func(t *testing.T, rec *httptest.ResponseRecorder) {
			if rec.Header().Get("Content-Type") != "message/rfc822" || rec.Body.String() != string(f.record.Raw) {
				t.Errorf("raw: %q %q", rec.Header().Get("Content-Type"), rec.Body)
			}
		}},
		{"GET", "/api/admin/inbound/{id}/raw", "/api/admin/inbound/" + id + "/raw", "tenant", 403, false, nil},
		{"POST", "/api/admin/inbound/{id}/reprocess", "/api/admin/inbound/" + id + "/reprocess", "operator", 202, false, nil},
		{"POST", "/api/admin/inbound/{id}/reprocess", "/api/admin/inbound/" + id + "/reprocess", "operator", 409, false, nil},
		{"DELETE", "/api/admin/inbound/{id}", "/api/admin/inbound/" + id, "tenant", 403, false, nil},
		{"DELETE", "/api/admin/inbound/{id}", "/api/admin/inbound/" + id, "operator", 204, false, nil},
		{"GET", "/api/admin/inbound/{id}", "/api/admin/inbound/" + id, "operator", 404, false, nil},
		{"GET", "/api/mailbox/{id}/attachments", "/api/mailbox/" + entry + "/attachments", "tenant", 200, false, func(t *testing.T, rec *httptest.ResponseRecorder) {
			if !strings.Contains(rec.Body.String(), `"content_url":"/api/mailbox/`+entry+`/attachments/`+att+`/content"`) {
				t.Errorf("no content_url: %s", rec.Body)
			}
		}},
		{"GET", "/api/mailbox/{id}/attachments", "/api/mailbox/" + uuid.NewString() + "/attachments", "tenant", 404, false, nil},
		{"GET", "/api/mailbox/{id}/attachments/{attachment_id}/content", "/api/mailbox/" + entry + "/attachments/" + att + "/content", "tenant", 200, false,
			func(t *testing.T, rec *httptest.ResponseRecorder) {
				if rec.Body.String() != "hello" || !strings.Contains(rec.Header().Get("Content-Disposition"), "minutes.txt") {
					t.Errorf("content: %q %q", rec.Body, rec.Header().Get("Content-Disposition"))
				}
			}},
		{"GET", "/api/mailbox/{id}/attachments/{attachment_id}/content", "/api/mailbox/" + entry + "/attachments/" + uuid.NewString() + "/content", "tenant", 404, false, nil},
		{"GET", "/api/mailbox/{id}/attachments/{attachment_id}/content", "/api/mailbox/" + entry + "/attachments/nope/content", "tenant", 404, false, nil},
	} {
		t.Run(tc.method+" "+tc.target+" as "+tc.token, func(t *testing.T) {
			newRequest := func() *http.Request {
				req := httptest.NewRequest(tc.method, tc.target, nil)
				req.Header.Set("Authorization", "Bearer "+tc.token)
				return req
			}
			rec := httptest.NewRecorder()
			srv.Handler().ServeHTTP(rec, newRequest())
			if rec.Code != tc.want {
				t.Fatalf("status = %d, want %d; body %s", rec.Code, tc.want, rec.Body)
			}
			checkExchange(t, doc, tc.path, newRequest(), tc.refused, rec)
			if tc.check != nil {
				tc.check(t, rec)
			}
		})
	}
}

// Without stores that keep them, the routes exist and answer 404.
func TestInboundAdminWithoutStore(t *testing.T) {
	t.Parallel()
	f := newInboundFakes()
	srv := New(Deps{Verifier: f, Logger: quietLogger})
	for _, target := range []string{"/api/admin/inbound", "/api/mailbox/" + uuid.NewString() + "/attachments"} {
		req := httptest.NewRequest(http.MethodGet, target, nil)
		req.Header.Set("Authorization", "Bearer operator")
		rec := httptest.NewRecorder()
		srv.Handler().ServeHTTP(rec, req)
		if rec.Code != http.StatusNotFound {
			t.Errorf("GET %s: %d, want 404", target, rec.Code)
		}
	}
}
