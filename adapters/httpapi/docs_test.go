package httpapi

import (
	"bytes"
	"cmp"
	"context"
	"encoding/json"
	"html"
	"log/slog"
	"mime"
	"mime/multipart"
	"net/http"
	"net/http/httptest"
	"reflect"
	"regexp"
	"slices"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/getkin/kin-openapi/openapi3"
	"github.com/getkin/kin-openapi/openapi3filter"
	"github.com/getkin/kin-openapi/routers"
	"github.com/google/uuid"

	"github.com/mailgate/mailgate/domain"
)

// loadOpenAPI loads the embedded document with kin-openapi, resolving every reference.
func loadOpenAPI(t *testing.T) *openapi3.T {
	t.Helper()
	doc, err := openapi3.NewLoader().LoadFromData(openAPIDocument)
	if err != nil {
		t.Fatalf("load the OpenAPI document: %v", err)
	}
	return doc
}

func ownSpec(t *testing.T) *apiSpec {
	t.Helper()
	spec, err := parseSpec(openAPIDocument)
	if err != nil {
		t.Fatal(err)
	}
	return spec
}

var quietLogger = slog.New(slog.DiscardHandler)

func serve(t *testing.T, srv *Server, method, target string, header http.Header) *httptest.ResponseRecorder {
	t.Helper()
	req := httptest.NewRequest(method, target, nil)
	for k, v := range header {
		req.Header[k] = v
	}
	rec := httptest.NewRecorder()
	srv.Handler().ServeHTTP(rec, req)
	return rec
}

func TestOpenAPIDocument(t *testing.T) {
	t.Parallel()

	t.Run("Validates", func(t *testing.T) {
		t.Parallel()
		doc := loadOpenAPI(t)
		if doc.OpenAPI != "3.1.0" {
			t.Errorf("openapi = %q, want 3.1.0", doc.OpenAPI)
		}
		// Validate also checks each JSON example against its schema, so the
		// sendmessage sample is known to match MessageComposeModel.
		if err := doc.Validate(context.Background()); err != nil {
			t.Fatalf("validate: %v", err)
		}
	})

	t.Run("Served", func(t *testing.T) {
		t.Parallel()
		rec := serve(t, New(Deps{Logger: quietLogger}), http.MethodGet, "/api/openapi.json", nil)
		if rec.Code != http.StatusOK {
			t.Fatalf("status = %d, want 200 without a token; body %s", rec.Code, rec.Body)
		}
		if ct := rec.Header().Get("Content-Type"); ct != "application/json" {
			t.Errorf("Content-Type = %q, want application/json", ct)
		}
		if rec.Body.String() != string(openAPIDocument) {
			t.Error("the served document differs from the embedded one")
		}
	})
}

// specPath spells a gin route the way OpenAPI does: /messages/:id is /messages/{id}.
var ginParam = regexp.MustCompile(`[:*]([A-Za-z0-9_]+)`)

func specPath(ginPath string) string { return ginParam.ReplaceAllString(ginPath, "{$1}") }

func TestOpenAPIDocumentMatchesRoutes(t *testing.T) {
	t.Parallel()
	doc := loadOpenAPI(t)
	documented := map[string]bool{}
	for path, item := range doc.Paths.Map() {
		for method := range item.Operations() {
			documented[method+" "+path] = true
		}
	}
	registered := map[string]bool{}
	for _, r := range New(Deps{Logger: quietLogger}).routes() {
		registered[r.Method+" "+specPath(r.Path)] = true
	}
	for route := range registered {
		if !documented[route] {
			t.Errorf("route %s is registered but not in openapi.json", route)
		}
	}
	for route := range documented {
		if !registered[route] {
			t.Errorf("openapi.json documents %s, which is not a registered route", route)
		}
	}
	if len(registered) < 15 {
		t.Errorf("only %d routes registered; the comparison is not seeing the router", len(registered))
	}
}

// TestOpenAPISecurityMatchesRoutes asks every route without a token: the
// document's security requirements must say which ones answer 401.
func TestOpenAPISecurityMatchesRoutes(t *testing.T) {
	t.Parallel()
	doc := loadOpenAPI(t)
	srv := New(Deps{Logger: quietLogger})
	for _, r := range srv.routes() {
		item := doc.Paths.Find(specPath(r.Path))
		if item == nil || item.GetOperation(r.Method) == nil {
			continue // reported by TestOpenAPIDocumentMatchesRoutes
		}
		op := item.GetOperation(r.Method)
		security := doc.Security
		if op.Security != nil {
			security = *op.Security
		}
		target := strings.ReplaceAll(r.Path, ":id", uuid.NewString())
		rec := serve(t, srv, r.Method, target, nil)
		if needsToken := len(security) > 0; needsToken != (rec.Code == http.StatusUnauthorized) {
			t.Errorf("%s %s without a token: status %d, but the document says token required = %v", r.Method, r.Path, rec.Code, needsToken)
		}
	}
}

func TestOpenAPIListFiltersMatchHandler(t *testing.T) {
	t.Parallel()
	doc := loadOpenAPI(t)
	var documented []string
	for _, p := range doc.Paths.Find("/api/messages").Get.Parameters {
		if p.Value.In == "query" {
			documented = append(documented, p.Value.Name)
		}
	}
	var handled []string
	for name := range listQueryParams {
		handled = append(handled, name)
	}
	sort.Strings(documented)
	sort.Strings(handled)
	if !slices.Equal(documented, handled) {
		t.Errorf("documented filters %v, handler reads %v", documented, handled)
	}
}

// jsonNames lists the JSON member names of a struct type.
func jsonNames(v any) []string {
	var names []string
	typ := reflect.TypeOf(v)
	for i := range typ.NumField() {
		name, _, _ := strings.Cut(typ.Field(i).Tag.Get("json"), ",")
		if name != "" && name != "-" {
			names = append(names, name)
		}
	}
	sort.Strings(names)
	return names
}

func TestOpenAPISchemasMatchWireTypes(t *testing.T) {
	t.Parallel()
	spec := ownSpec(t)
	for _, tc := range []struct {
		schema string
		wire   any
	}{
		{"MessageComposeModel", composeModel{}},
		{"MessageRecipientModel", recipientModel{}},
		{"Message", messageView{}},
		{"Recipient", recipientView{}},
		{"Attachment", attachmentView{}},
		{"Event", eventView{}},
		{"Problem", Problem{}},
		{"Tenant", tenantView{}},
		{"Account", accountView{}},
	} {
		schema := spec.Components.Schemas[tc.schema]
		if schema == nil {
			t.Errorf("no schema %s", tc.schema)
			continue
		}
		documented := slices.Sorted(slices.Values(schema.Properties.Keys))
		if wire := jsonNames(tc.wire); !slices.Equal(documented, wire) {
			t.Errorf("schema %s has properties %v; the Go type has %v", tc.schema, documented, wire)
		}
	}
}

// TestOpenAPIXMLNamesMatchCodec checks the document's xml names and
// namespaces against the members the XML codec reads and writes.
func TestOpenAPIXMLNamesMatchCodec(t *testing.T) {
	t.Parallel()
	spec := ownSpec(t)
	for _, tc := range []struct {
		schema  string
		members map[string]xmlMember
		all     bool // the schema lists every member, read-only ones included
	}{
		{"MessageComposeModel", composeMembers, false},
		{"Message", composeMembers, true},
		{"MessageRecipientModel", recipientMembers, false},
		{"Recipient", recipientMembers, true},
	} {
		schema := spec.Components.Schemas[tc.schema]
		seen := map[string]bool{}
		for _, prop := range schema.Properties.Keys {
			x := schema.Properties.Values[prop].XML
			if x == nil || x.Name == "" {
				t.Errorf("%s.%s has no xml name", tc.schema, prop)
				continue
			}
			space := x.Namespace
			if space == "" {
				space = schema.XML.Namespace
			}
			member, ok := tc.members[x.Name]
			switch {
			case !ok:
				t.Errorf("%s.%s: the codec has no member %s", tc.schema, prop, x.Name)
			case member.field != prop || member.space != space:
				t.Errorf("%s.%s: documented as %s in %s; the codec reads %s in %s", tc.schema, prop, x.Name, space, member.field, member.space)
			case member.readOnly && !tc.all:
				t.Errorf("%s.%s: an input model documents the read-only member %s", tc.schema, prop, x.Name)
			}
			seen[x.Name] = true
		}
		for name, member := range tc.members {
			if !seen[name] && (tc.all || !member.readOnly) {
				t.Errorf("%s does not document the codec's member %s", tc.schema, name)
			}
		}
	}
}

func TestOpenAPIFormSchemaMatchesCodec(t *testing.T) {
	t.Parallel()
	doc := loadOpenAPI(t)
	form := doc.Components.Schemas["MessageComposeForm"].Value
	matchesPattern := func(key string) bool {
		for pattern := range form.PatternProperties {
			if regexp.MustCompile(pattern).MatchString(key) {
				return true
			}
		}
		return false
	}
	for _, f := range composeFormFields {
		switch f.kind {
		case formRecipients:
			for _, member := range recipientFormFields {
				for _, key := range []string{f.wire + "[0]." + member.wire, f.wire + "[12][" + member.wire + "]"} {
					if !matchesPattern(key) {
						t.Errorf("form key %s matches no documented pattern", key)
					}
				}
			}
		case formGUIDs:
			if form.Properties[f.wire] == nil || !matchesPattern(f.wire+"[0]") || !matchesPattern(f.wire+"[]") {
				t.Errorf("form field %s is not documented with and without an index", f.wire)
			}
		default:
			if form.Properties[f.wire] == nil {
				t.Errorf("form field %s is not documented", f.wire)
			}
		}
	}
	if len(form.Properties) != len(composeFormFields)-3 {
		t.Errorf("the form schema has %d properties; the codec has %d non-recipient fields", len(form.Properties), len(composeFormFields)-3)
	}
}

// samplePre finds a sample on the help page by its element id.
func samplePre(t *testing.T, page, id string) string {
	t.Helper()
	m := regexp.MustCompile(`(?s)<pre id="` + id + `">(.*?)</pre>`).FindStringSubmatch(page)
	if m == nil {
		t.Fatalf("the help page has no <pre id=%q>", id)
	}
	return html.UnescapeString(m[1])
}

func TestHelpPage(t *testing.T) {
	t.Parallel()
	rec := serve(t, New(Deps{Logger: quietLogger}), http.MethodGet, "/help", nil)
	if rec.Code != http.StatusOK {
		t.Fatalf("status = %d, want 200 without a token; body %s", rec.Code, rec.Body)
	}
	if ct := rec.Header().Get("Content-Type"); !strings.HasPrefix(ct, "text/html") {
		t.Errorf("Content-Type = %q, want text/html", ct)
	}
	page := rec.Body.String()
	spec := ownSpec(t)

	t.Run("EveryEndpoint", func(t *testing.T) {
		t.Parallel()
		for _, path := range spec.Paths.Keys {
			for _, method := range specMethods {
				if spec.Paths.Values[path].operation(method) == nil {
					continue
				}
				heading := `">` + method + `</span> ` + path + `</h3>`
				if !strings.Contains(page, heading) {
					t.Errorf("the help page has no section for %s %s", method, path)
				}
			}
		}
	})

	t.Run("Topics", func(t *testing.T) {
		t.Parallel()
		for _, want := range []string{
			"Authentication", "subscription_id", "Formats", "Problem details", "application/problem+json",
			"If-Match", "ETag", "Message states", "partially_sent", "MessageComposeModel", "MessageRecipientModel",
		} {
			if !strings.Contains(page, want) {
				t.Errorf("the help page does not mention %q", want)
			}
		}
		if strings.Contains(page, "<script") {
			t.Error("the help page has a script")
		}
	})

	t.Run("Samples", func(t *testing.T) {
		t.Parallel()
		fromJSON, err := decodeJSON(strings.NewReader(samplePre(t, page, "sample-json")))
		if err != nil {
			t.Fatalf("decodeJSON(sample-json): %v", err)
		}
		jsonReq, err := fromJSON.toRequest()
		if err != nil {
			t.Fatalf("toRequest(sample-json): %v", err)
		}
		fromXML, err := decodeXML(strings.NewReader(samplePre(t, page, "sample-xml")))
		if err != nil {
			t.Fatalf("decodeXML(sample-xml): %v", err)
		}
		xmlReq, err := fromXML.toRequest()
		if err != nil {
			t.Fatalf("toRequest(sample-xml): %v", err)
		}
		for name, req := range map[string]domain.ComposeRequest{"json": jsonReq, "xml": xmlReq} {
			checkSampleRequest(t, name, req)
		}
		if !reflect.DeepEqual(jsonReq, xmlReq) {
			t.Errorf("the JSON and XML samples differ:\njson %+v\nxml  %+v", jsonReq, xmlReq)
		}
	})

	t.Run("XMLSampleShape", func(t *testing.T) {
		t.Parallel()
		sample := samplePre(t, page, "sample-xml")
		for _, want := range []string{
			`<MessageComposeModel xmlns:i="` + nsXSI + `" xmlns="` + nsModels + `">`,
			`<Id xmlns="` + nsBase + `">`,
			`<SubscriptionId xmlns="` + nsBase + `">`,
			`<Ts xmlns="` + nsBase + `"`,
			`<Attachments xmlns:d2p1="` + nsArrays + `"`,
		} {
			if !strings.Contains(sample, want) {
				t.Errorf("the XML sample lacks %s", want)
			}
		}
		// DataContractSerializer's order: the base class's members, then
		// CanDelete and Subject, then the rest alphabetically.
		order := []string{"Id", "SubscriptionId", "Ts", "CanDelete", "Subject", "Attachments", "Bcc", "Body", "Cc",
			"CreatedDate", "Importance", "MessageId", "ParentId", "References", "Send", "SenderAccountId",
			"SenderDisplayName", "SenderEmail", "To"}
		last := -1
		for _, name := range order {
			i := strings.Index(sample, "<"+name+" ")
			if j := strings.Index(sample, "<"+name+">"); i < 0 || j >= 0 && j < i {
				i = j
			}
			if i <= last {
				t.Errorf("element %s is missing or out of the seed's order", name)
			}
			last = i
		}
	})
}

// checkSampleRequest requires what a help sample promises: a draft from
// sender@example.com to example.net recipients that creates a new message.
func checkSampleRequest(t *testing.T, name string, req domain.ComposeRequest) {
	t.Helper()
	if req.SenderEmail != "sender@example.com" {
		t.Errorf("%s: sender_email = %q, want sender@example.com", name, req.SenderEmail)
	}
	if req.Send {
		t.Errorf("%s: send is true; a sample must store a draft", name)
	}
	if req.ID != uuid.Nil || req.TS != nil || req.ParentID != uuid.Nil || len(req.Attachments) > 0 || req.SubscriptionID != uuid.Nil {
		t.Errorf("%s: the sample names an id, ts, parent, subscription or attachments: %+v", name, req)
	}
	recipients := slices.Concat(req.To, req.Cc, req.Bcc)
	if len(req.To) == 0 || len(recipients) < 3 {
		t.Errorf("%s: want recipients in to, cc and bcc; got %+v", name, recipients)
	}
	for _, r := range recipients {
		if !strings.HasSuffix(r.EmailAddress, "@example.net") || r.AccountID != uuid.Nil {
			t.Errorf("%s: recipient %+v is not a plain example.net address", name, r)
		}
	}
	if req.Subject == "" || req.Body == "" || req.Importance != domain.ImportanceNormal {
		t.Errorf("%s: want a subject, a body and Normal importance; got %+v", name, req)
	}
}

func TestHelpMarkdown(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct{ in, want string }{
		{"plain", "plain"},
		{"a `b` c", "a <code>b</code> c"},
		{"<x> & `<y>`", "&lt;x&gt; &amp; <code>&lt;y&gt;</code>"},
		{"odd ` tick", "odd ` tick"},
		{"`a` and ` b", "<code>a</code> and ` b"},
	} {
		if got := string(inlineMarkdown(tc.in)); got != tc.want {
			t.Errorf("inlineMarkdown(%q) = %q, want %q", tc.in, got, tc.want)
		}
	}
	blocks := markdownBlocks("one\ntwo\n\n- a\n- `b`")
	if len(blocks) != 2 || blocks[0].Text != "one two" || len(blocks[1].Items) != 2 || blocks[1].Items[1] != "<code>b</code>" {
		t.Errorf("markdownBlocks = %+v", blocks)
	}
}

func TestHelpRejectsBrokenDocument(t *testing.T) {
	t.Parallel()
	var doc map[string]any
	if err := json.Unmarshal(openAPIDocument, &doc); err != nil {
		t.Fatal(err)
	}
	delete(doc["components"].(map[string]any)["schemas"].(map[string]any), "MessageRecipientModel")
	broken, err := json.Marshal(doc)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := renderHelp(broken); err == nil || !strings.Contains(err.Error(), "MessageRecipientModel") {
		t.Errorf("renderHelp with a dangling reference: err = %v, want one naming MessageRecipientModel", err)
	}
}

// docsFakes serves one fixed message and attachment, so the handlers' real
// answers can be checked against the document.
type docsFakes struct {
	tenant uuid.UUID
	msg    *domain.Message
	att    domain.AttachmentContent
}

func newDocsFakes() *docsFakes {
	tenant, id := uuid.New(), uuid.New()
	at := time.Date(2026, 6, 9, 6, 59, 25, 902831000, time.UTC)
	f := &docsFakes{tenant: tenant}
	f.att = domain.AttachmentContent{
		Attachment: domain.Attachment{ID: uuid.New(), SubscriptionID: tenant, Filename: "minutes.txt", ContentType: "text/plain; charset=utf-8",
			Size: 5, SHA256: make([]byte, 32), CreatedAt: at},
		Data: []byte("hello"),
	}
	f.msg = &domain.Message{
		ID: id, SubscriptionID: tenant, SenderAccountID: uuid.New(), SenderEmail: "sender@example.com", SenderDisplayName: "Example Sender",
		Recipients: []domain.Recipient{
			{Kind: domain.KindTo, Email: "ada@example.net", DisplayName: "Ada", Status: domain.RecipientDelivered, Attempts: 1, LastCode: 250, LastReply: "2.0.0 OK"},
			{Kind: domain.KindCc, Email: "mary@example.net", Status: domain.RecipientPending},
			{Kind: domain.KindBcc, Email: "inbox@example.com", AccountID: uuid.New(), Status: domain.RecipientPending},
		},
		Importance: domain.ImportanceHigh, MessageID: "<" + id.String() + "@example.com>", Subject: "Minutes", Body: "Hello",
		Attachments: []uuid.UUID{f.att.ID}, ConversationID: id, CreatedDate: at, UpdatedAt: at,
		State: domain.StateDraft, Version: 1,
	}
	return f
}

func (f *docsFakes) VerifyToken(_ context.Context, token string) (Principal, error) {
	if token != "good" {
		return Principal{}, domain.Errorf(domain.CodeUnauthorized, "invalid or expired token")
	}
	return Principal{SubscriptionID: f.tenant}, nil
}

func (f *docsFakes) find(tenant, id uuid.UUID) (*domain.Message, error) {
	if tenant != f.tenant || id != f.msg.ID {
		return nil, domain.ErrNotFound
	}
	m := *f.msg
	return &m, nil
}

func (f *docsFakes) GetMessage(_ context.Context, tenant, id uuid.UUID) (*domain.Message, error) {
	return f.find(tenant, id)
}

func (f *docsFakes) ListMessages(context.Context, uuid.UUID, domain.MessageFilter) (domain.MessagePage, error) {
	return domain.MessagePage{Messages: []*domain.Message{f.msg}, NextCursor: "next"}, nil
}

func (f *docsFakes) MessageEvents(_ context.Context, tenant, id uuid.UUID) ([]domain.Event, error) {
	if _, err := f.find(tenant, id); err != nil {
		return nil, err
	}
	return []domain.Event{
		{Sequence: 1, MessageID: id, Type: "created", CreatedAt: f.msg.CreatedDate},
		{Sequence: 2, MessageID: id, Type: "delivered", Recipient: "ada@example.net", SMTPCode: 250, Detail: "2.0.0 OK", CreatedAt: f.msg.UpdatedAt},
	}, nil
}

func (f *docsFakes) Compose(_ context.Context, _ uuid.UUID, req domain.ComposeRequest) (*domain.Message, error) {
	m := *f.msg
	if req.ID != uuid.Nil {
		m.Version = 2
	}
	if req.Send {
		m.State = domain.StateQueued
	}
	return &m, nil
}

func (f *docsFakes) Send(_ context.Context, tenant, id uuid.UUID, _ *domain.Version) (*domain.Message, error) {
	m, err := f.find(tenant, id)
	if err != nil {
		return nil, err
	}
	m.State, m.Version = domain.StateQueued, 2
	return m, nil
}

func (f *docsFakes) Delete(_ context.Context, tenant, id uuid.UUID, _ *domain.Version) error {
	_, err := f.find(tenant, id)
	return err
}

func (f *docsFakes) CreateAttachment(_ context.Context, a *domain.Attachment, _ []byte) error {
	a.CreatedAt = f.att.CreatedAt
	return nil
}

func (f *docsFakes) GetAttachment(_ context.Context, tenant, id uuid.UUID) (domain.Attachment, error) {
	if tenant != f.tenant || id != f.att.ID {
		return domain.Attachment{}, domain.ErrNotFound
	}
	return f.att.Attachment, nil
}

func (f *docsFakes) AttachmentContent(_ context.Context, tenant, id uuid.UUID) (domain.AttachmentContent, error) {
	if _, err := f.GetAttachment(context.Background(), tenant, id); err != nil {
		return domain.AttachmentContent{}, err
	}
	return f.att, nil
}

// TestOpenAPIDescribesAnswers sends real requests through the handlers and
// validates each request and answer against the document with
// kin-openapi's openapi3filter: documented status, content type, headers
// and, for JSON, the body's schema.
func TestOpenAPIDescribesAnswers(t *testing.T) {
	t.Parallel()
	doc := loadOpenAPI(t)
	fakes := newDocsFakes()
	srv := New(Deps{Verifier: fakes, Composer: fakes, Messages: fakes, Attachments: fakes, Logger: quietLogger})
	page := serve(t, srv, http.MethodGet, "/help", nil).Body.String()
	sampleJSON, sampleXML := samplePre(t, page, "sample-json"), samplePre(t, page, "sample-xml")

	var upload bytes.Buffer
	mw := multipart.NewWriter(&upload)
	part, err := mw.CreateFormFile("file", "minutes.txt")
	if err != nil {
		t.Fatal(err)
	}
	_, _ = part.Write([]byte("hello"))
	if err := mw.Close(); err != nil {
		t.Fatal(err)
	}

	msg, att := fakes.msg.ID.String(), fakes.att.ID.String()
	version := etag(fakes.msg.Version)
	for _, tc := range []struct {
		method, path, target string
		header               http.Header
		body                 string
		want                 int
		// refused marks a request the document itself rules out, as the handler does.
		refused bool
	}{
		{"POST", "/api/messages/sendmessage", "", http.Header{"Content-Type": {"application/json"}}, sampleJSON, 201, false},
		{"POST", "/api/messages/sendmessage", "", http.Header{"Content-Type": {"text/json"}}, sampleJSON, 201, false},
		{"POST", "/api/messages/sendmessage", "", http.Header{"Content-Type": {"application/xml"}}, sampleXML, 201, false},
		{"POST", "/api/messages/sendmessage", "", http.Header{"Content-Type": {"text/xml"}, "Accept": {"application/json"}}, sampleXML, 201, false},
		{"POST", "/api/messages/sendmessage", "", http.Header{"Content-Type": {"application/x-www-form-urlencoded"}},
			"sender_email=sender%40example.com&to%5B0%5D.email_address=ada%40example.net&Subject=Hi&send=true", 201, false},
		{"POST", "/api/messages/sendmessage", "", http.Header{"Content-Type": {"application/json"}}, `{"sender_emial":"x"}`, 400, true},
		{"POST", "/api/messages/sendmessage", "", http.Header{"Content-Type": {"text/plain"}}, "hello", 415, false},
		{"POST", "/api/messages/sendmessage", "", http.Header{"Content-Type": {"application/json"}, "Accept": {"image/png"}}, sampleJSON, 406, false},
		{"GET", "/api/messages", "/api/messages?state=draft&folder=drafts&limit=10&q=min", nil, "", 200, false},
		{"GET", "/api/messages", "/api/messages?colour=red", nil, "", 400, false},
		{"GET", "/api/messages/{id}", "/api/messages/" + msg, nil, "", 200, false},
		{"GET", "/api/messages/{id}", "/api/messages/" + msg, http.Header{"Accept": {"text/xml"}}, "", 200, false},
		{"GET", "/api/messages/{id}", "/api/messages/" + msg, http.Header{"If-None-Match": {version}}, "", 304, false},
		{"GET", "/api/messages/{id}", "/api/messages/" + uuid.NewString(), nil, "", 404, false},
		{"PUT", "/api/messages/{id}", "/api/messages/" + msg, http.Header{"Content-Type": {"application/json"}, "If-Match": {version}}, sampleJSON, 200, false},
		{"PATCH", "/api/messages/{id}", "/api/messages/" + msg, http.Header{"Content-Type": {"application/merge-patch+json"}, "If-Match": {version}}, `{"subject":"New"}`, 200, false},
		{"PATCH", "/api/messages/{id}", "/api/messages/" + msg, http.Header{"Content-Type": {"text/plain"}}, "x", 415, false},
		{"POST", "/api/messages/{id}/send", "/api/messages/" + msg + "/send", http.Header{"If-Match": {version}}, "", 202, false},
		{"POST", "/api/messages/{id}/send", "/api/messages/" + msg + "/send", http.Header{"If-Match": {"bogus"}}, "", 400, false},
		{"DELETE", "/api/messages/{id}", "/api/messages/" + msg, nil, "", 204, false},
		{"GET", "/api/messages/{id}/events", "/api/messages/" + msg + "/events", nil, "", 200, false},
		{"POST", "/api/attachments", "", http.Header{"Content-Type": {mw.FormDataContentType()}}, upload.String(), 201, false},
		{"GET", "/api/attachments/{id}", "/api/attachments/" + att, nil, "", 200, false},
		{"GET", "/api/attachments/{id}/content", "/api/attachments/" + att + "/content", nil, "", 200, false},
		{"GET", "/api/attachments/{id}", "/api/attachments/" + uuid.NewString(), nil, "", 404, false},
		{"GET", "/healthz", "", nil, "", 200, false},
		{"GET", "/readyz", "", nil, "", 200, false},
		{"GET", "/api/openapi.json", "", nil, "", 200, false},
		{"GET", "/help", "", nil, "", 200, false},
	} {
		target := cmp.Or(tc.target, tc.path)
		t.Run(tc.method+" "+target, func(t *testing.T) {
			header := tc.header.Clone()
			if header == nil {
				header = http.Header{}
			}
			if strings.HasPrefix(tc.path, "/api/") && tc.path != "/api/openapi.json" {
				header.Set("Authorization", "Bearer good")
			}
			newRequest := func() *http.Request {
				req := httptest.NewRequest(tc.method, target, strings.NewReader(tc.body))
				req.Header = header.Clone()
				return req
			}
			rec := httptest.NewRecorder()
			srv.Handler().ServeHTTP(rec, newRequest())
			if rec.Code != tc.want {
				t.Fatalf("status = %d, want %d; body %s", rec.Code, tc.want, rec.Body)
			}
			checkExchange(t, doc, tc.path, newRequest(), tc.refused, rec)
		})
	}
}

// checkExchange validates one request and its answer against the document.
func checkExchange(t *testing.T, doc *openapi3.T, path string, req *http.Request, refused bool, rec *httptest.ResponseRecorder) {
	t.Helper()
	item := doc.Paths.Find(path)
	if item == nil {
		t.Fatalf("no path %s in the document", path)
	}
	op := item.GetOperation(req.Method)
	if op == nil {
		t.Fatalf("no operation %s %s in the document", req.Method, path)
	}
	params := map[string]string{}
	if strings.Contains(path, "{id}") {
		rest := strings.TrimPrefix(req.URL.Path, strings.Split(path, "{id}")[0])
		params["id"], _, _ = strings.Cut(rest, "/")
	}
	mediaType, _, _ := mime.ParseMediaType(req.Header.Get("Content-Type"))
	isJSON := func(mt string) bool { return mt == "application/json" || strings.HasSuffix(mt, "+json") }
	opts := &openapi3filter.Options{
		AuthenticationFunc:      openapi3filter.NoopAuthenticationFunc,
		IncludeResponseStatus:   true,
		SchemaValidationOptions: []openapi3.SchemaValidationOption{openapi3.EnableJSONSchema2020()},
		// openapi3filter decodes JSON bodies only; the codecs' own tests cover the others.
		ExcludeRequestBody: !isJSON(mediaType),
	}
	in := &openapi3filter.RequestValidationInput{
		Request:    req,
		PathParams: params,
		Route:      &routers.Route{Spec: doc, Path: path, PathItem: item, Method: req.Method, Operation: op},
		Options:    opts,
	}
	switch err := openapi3filter.ValidateRequest(context.Background(), in); {
	case refused && err == nil:
		t.Error("the document allows a request the handler refuses")
	case !refused && err != nil:
		t.Errorf("the request does not match the document: %v", err)
	}
	respType, _, _ := mime.ParseMediaType(rec.Header().Get("Content-Type"))
	respOpts := *opts
	respOpts.ExcludeResponseBody = !isJSON(respType)
	in.Options = &respOpts
	out := &openapi3filter.ResponseValidationInput{
		RequestValidationInput: in,
		Status:                 rec.Code,
		Header:                 rec.Header(),
		Options:                &respOpts,
	}
	out.SetBodyBytes(rec.Body.Bytes())
	if err := openapi3filter.ValidateResponse(context.Background(), out); err != nil {
		t.Errorf("the answer (%d %s) does not match the document: %v\n%s", rec.Code, respType, err, rec.Body)
	}
}
