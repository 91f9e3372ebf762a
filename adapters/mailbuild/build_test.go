package mailbuild_test

import (
	"bytes"
	"fmt"
	"io"
	"mime"
	"mime/quotedprintable"
	netmail "net/mail"
	"strings"
	"testing"
	"time"

	"github.com/mailgate/mailgate/adapters/mailbuild"
	"github.com/mailgate/mailgate/domain"
)

var testDate = time.Date(2024, time.March, 5, 14, 7, 9, 0, time.FixedZone("CET", 3600))

// newMessage returns a valid message with one recipient of each kind;
// options modify it before use.
func newMessage(options ...func(*domain.Message)) *domain.Message {
	msg := &domain.Message{
		SenderEmail:       "alice@example.com",
		SenderDisplayName: "Alice Example",
		Recipients: []domain.Recipient{
			{Kind: domain.KindTo, DisplayName: "Bob", Email: "bob@example.org"},
			{Kind: domain.KindCc, DisplayName: "Carol", Email: "carol@example.net"},
			{Kind: domain.KindBcc, DisplayName: "Hidden Dave", Email: "dave.secret@hidden.example"},
		},
		Importance: domain.ImportanceNormal,
		MessageID:  "<0f8c2a1e-5b7d-4c3a-9d2e-1a2b3c4d5e6f@example.com>",
		Subject:    "Quarterly report",
		Body:       "Hello Bob,\r\n\r\nsee attached.\r\n",
	}
	for _, o := range options {
		o(msg)
	}
	return msg
}

func build(t *testing.T, msg *domain.Message) []byte {
	t.Helper()
	raw, err := mailbuild.Build(msg, mailbuild.Options{Date: testDate})
	if err != nil {
		t.Fatalf("Build: %v", err)
	}
	if i := bareLineBreak(raw); i >= 0 {
		t.Fatalf("output has a bare CR or LF at byte %d:\n%q", i, raw)
	}
	return raw
}

func parse(t *testing.T, raw []byte) *netmail.Message {
	t.Helper()
	m, err := netmail.ReadMessage(bytes.NewReader(raw))
	if err != nil {
		t.Fatalf("net/mail cannot parse the output: %v\n%s", err, raw)
	}
	return m
}

func decodeText(t *testing.T, v string) string {
	t.Helper()
	var dec mime.WordDecoder
	s, err := dec.DecodeHeader(v)
	if err != nil {
		t.Fatalf("decode %q: %v", v, err)
	}
	return s
}

func decodeBody(t *testing.T, m *netmail.Message) string {
	t.Helper()
	if got := m.Header.Get("Content-Transfer-Encoding"); got != "quoted-printable" {
		t.Fatalf("Content-Transfer-Encoding = %q, want quoted-printable", got)
	}
	b, err := io.ReadAll(quotedprintable.NewReader(m.Body))
	if err != nil {
		t.Fatalf("decode body: %v", err)
	}
	return string(b)
}

// bareLineBreak is written independently of the package's own check.
func bareLineBreak(b []byte) int {
	for i := range b {
		if b[i] == '\r' && (i+1 >= len(b) || b[i+1] != '\n') {
			return i
		}
		if b[i] == '\n' && (i == 0 || b[i-1] != '\r') {
			return i
		}
	}
	return -1
}

// wantBody is the body a reader should see: every line break CRLF, ending in one.
func wantBody(body string) string {
	s := strings.ReplaceAll(body, "\r\n", "\n")
	s = strings.ReplaceAll(s, "\r", "\n")
	s = strings.ReplaceAll(s, "\n", "\r\n")
	if s != "" && !strings.HasSuffix(s, "\r\n") {
		s += "\r\n"
	}
	return s
}

func TestBuildHeaders(t *testing.T) {
	msg := newMessage(func(m *domain.Message) {
		m.InReplyTo = "<parent@example.org>"
		m.References = "<root@example.org>   <parent@example.org>"
		m.Recipients = append(m.Recipients,
			domain.Recipient{Kind: domain.KindTo, Email: "erin@example.org"},
			domain.Recipient{Kind: domain.KindCc, DisplayName: "Frank F.", Email: "frank@example.net"},
		)
	})
	m := parse(t, build(t, msg))
	h := m.Header

	from, err := h.AddressList("From")
	if err != nil || len(from) != 1 || from[0].Name != "Alice Example" || from[0].Address != "alice@example.com" {
		t.Errorf("From = %v (%v), want Alice Example <alice@example.com>", from, err)
	}
	assertAddresses(t, h, "To", "Bob <bob@example.org>", "<erin@example.org>")
	assertAddresses(t, h, "Cc", "Carol <carol@example.net>", "Frank F. <frank@example.net>")

	checks := map[string]string{
		"Subject":      "Quarterly report",
		"Message-Id":   msg.MessageID,
		"In-Reply-To":  "<parent@example.org>",
		"References":   "<root@example.org> <parent@example.org>",
		"Mime-Version": "1.0",
		"Importance":   "normal",
		"X-Priority":   "3",
	}
	for key, want := range checks {
		if got := decodeText(t, h.Get(key)); got != want {
			t.Errorf("%s = %q, want %q", key, got, want)
		}
	}
	mediaType, params, err := mime.ParseMediaType(h.Get("Content-Type"))
	if err != nil || mediaType != "text/plain" || params["charset"] != "utf-8" {
		t.Errorf("Content-Type = %q, want text/plain; charset=utf-8", h.Get("Content-Type"))
	}
	date, err := h.Date()
	if err != nil || !date.Equal(testDate) {
		t.Errorf("Date = %v (%v), want %v", date, err, testDate)
	}
	if got := decodeBody(t, m); got != msg.Body {
		t.Errorf("body = %q, want %q", got, msg.Body)
	}
}

func assertAddresses(t *testing.T, h netmail.Header, key string, want ...string) {
	t.Helper()
	list, err := h.AddressList(key)
	if err != nil {
		t.Fatalf("%s %q: %v", key, h.Get(key), err)
	}
	var got []string
	for _, a := range list {
		if a.Name == "" {
			got = append(got, "<"+a.Address+">")
		} else {
			got = append(got, a.Name+" <"+a.Address+">")
		}
	}
	if strings.Join(got, ", ") != strings.Join(want, ", ") {
		t.Errorf("%s = %q, want %q", key, got, want)
	}
}

func TestBuildOmitsBcc(t *testing.T) {
	msg := newMessage(func(m *domain.Message) {
		m.Recipients = append(m.Recipients, domain.Recipient{Kind: domain.KindBcc, DisplayName: "Zoë Secret", Email: "zoe@bcc.example"})
	})
	raw := build(t, msg)
	m := parse(t, raw)
	if _, ok := m.Header["Bcc"]; ok {
		t.Errorf("output has a Bcc header: %q", m.Header["Bcc"])
	}
	lower := strings.ToLower(string(raw))
	for _, leak := range []string{"bcc", "dave.secret", "hidden.example", "hidden dave", "zoe@bcc.example"} {
		if strings.Contains(lower, leak) {
			t.Errorf("output contains %q:\n%s", leak, raw)
		}
	}
}

func TestBuildBccOnlyUsesUndisclosedRecipients(t *testing.T) {
	msg := newMessage(func(m *domain.Message) {
		m.Recipients = []domain.Recipient{{Kind: domain.KindBcc, Email: "dave.secret@hidden.example"}}
	})
	raw := build(t, msg)
	m := parse(t, raw)
	if got := m.Header.Get("To"); got != "undisclosed-recipients:;" {
		t.Errorf("To = %q, want the empty group", got)
	}
	if _, ok := m.Header["Cc"]; ok {
		t.Error("Cc header present without cc recipients")
	}
	if bytes.Contains(raw, []byte("dave.secret")) {
		t.Errorf("bcc address leaked:\n%s", raw)
	}
}

func TestBuildCcOnlyHasNoTo(t *testing.T) {
	msg := newMessage(func(m *domain.Message) {
		m.Recipients = []domain.Recipient{{Kind: domain.KindCc, Email: "carol@example.net"}}
	})
	m := parse(t, build(t, msg))
	if _, ok := m.Header["To"]; ok {
		t.Errorf("To = %q, want none", m.Header.Get("To"))
	}
	assertAddresses(t, m.Header, "Cc", "<carol@example.net>")
}

func TestBuildOmitsEmptyThreadHeaders(t *testing.T) {
	m := parse(t, build(t, newMessage()))
	for _, key := range []string{"In-Reply-To", "References"} {
		if _, ok := m.Header[key]; ok {
			t.Errorf("%s present although empty", key)
		}
	}
}

func TestBuildSubjectRoundTrips(t *testing.T) {
	subjects := map[string]string{
		"empty":              "",
		"ascii":              "Meeting at 10:00 (room 4)",
		"accents":            "Réunion à 10h — café offert",
		"cjk":                "会議の議事録と次回の予定について、ご確認をお願いします。",
		"emoji":              "Launch 🚀 today",
		"looks encoded":      "=?utf-8?q?not_really?=",
		"encoded inside":     "Re: =?x",
		"tab":                "a\tb",
		"long word":          strings.Repeat("x", 300),
		"long non-ascii":     strings.Repeat("ж", 400),
		"long with spaces":   strings.TrimSpace(strings.Repeat("lorem ipsum ", 80)),
		"question and under": "what? _really_ = yes",
		"at the limit":       strings.Repeat("é", domain.MaxSubjectLength/2),
	}
	for name, subject := range subjects {
		t.Run(name, func(t *testing.T) {
			raw := build(t, newMessage(func(m *domain.Message) { m.Subject = subject }))
			assertHeaderBlockASCII(t, raw)
			m := parse(t, raw)
			if got := decodeText(t, m.Header.Get("Subject")); got != subject {
				t.Errorf("Subject = %q, want %q", got, subject)
			}
		})
	}
}

func TestBuildDisplayNamesRoundTrip(t *testing.T) {
	names := map[string]string{
		"plain":         "Bob Builder",
		"comma":         "O'Brien, Pat",
		"quotes":        `Pat "the boss" \ Smith`,
		"accents":       "José Núñez",
		"specials":      "Zoë (work) <z>",
		"looks encoded": "=?utf-8?b?SGk=?=",
		"cjk":           "山田 太郎",
		"long":          strings.Repeat("Ä", domain.MaxDisplayNameLength/2),
	}
	for name, display := range names {
		t.Run(name, func(t *testing.T) {
			msg := newMessage(func(m *domain.Message) {
				m.SenderDisplayName = display
				m.Recipients[0].DisplayName = display
				m.Recipients[1].DisplayName = display
			})
			raw := build(t, msg)
			assertHeaderBlockASCII(t, raw)
			m := parse(t, raw)
			for _, key := range []string{"From", "To", "Cc"} {
				list, err := m.Header.AddressList(key)
				if err != nil || len(list) != 1 {
					t.Fatalf("%s %q: %v", key, m.Header.Get(key), err)
				}
				if list[0].Name != display {
					t.Errorf("%s name = %q, want %q", key, list[0].Name, display)
				}
			}
		})
	}
}

// assertHeaderBlockASCII checks the header is 7-bit and folded within the
// 78 columns RFC 5322 recommends (every test address is short enough).
func assertHeaderBlockASCII(t *testing.T, raw []byte) {
	t.Helper()
	header, _, ok := bytes.Cut(raw, []byte("\r\n\r\n"))
	if !ok {
		t.Fatal("no blank line after the header")
	}
	for _, line := range strings.Split(string(header), "\r\n") {
		if len(line) > 78 {
			t.Errorf("header line of %d bytes", len(line))
		}
		for _, c := range []byte(line) {
			if c > '~' || c < ' ' && c != '\t' {
				t.Fatalf("non-ASCII byte %#x in header line %q", c, line)
			}
		}
	}
}

func TestBuildImportance(t *testing.T) {
	tests := []struct {
		importance        domain.Importance
		header, xPriority string
	}{
		{domain.ImportanceLow, "low", "5"},
		{domain.ImportanceNormal, "normal", "3"},
		{domain.ImportanceHigh, "high", "1"},
	}
	for _, tt := range tests {
		t.Run(tt.importance.String(), func(t *testing.T) {
			m := parse(t, build(t, newMessage(func(m *domain.Message) { m.Importance = tt.importance })))
			if got := m.Header.Get("Importance"); got != tt.header {
				t.Errorf("Importance = %q, want %q", got, tt.header)
			}
			if got := m.Header.Get("X-Priority"); got != tt.xPriority {
				t.Errorf("X-Priority = %q, want %q", got, tt.xPriority)
			}
		})
	}
}

func TestBuildBodyRoundTrips(t *testing.T) {
	bodies := map[string]string{
		"empty":               "",
		"hostile line breaks": "a\rb\nc\r\n.\r\nd\n.\n",
		"lone dot line":       "before\r\n.\r\nafter",
		"dots":                ".\r\n..\r\n.x\r\n",
		"cr lf cr":            "\r\n\r\r\n\n\r",
		"only cr":             "\r",
		"no final newline":    "no newline at the end",
		"trailing spaces":     "keep these   \r\nand tabs\t\t\nend",
		"from line":           "From the start\n>From quoted\n",
		"non-ascii":           "Grüße aus Köln 🌧️\n日本語のテキスト\n",
		"equals and qp-like":  "a=b =3D =\r\n=\n",
		"long line":           strings.Repeat("0123456789", 200),
		"long non-ascii line": strings.Repeat("é", 3000),
		"control chars":       "bell\a esc\x1b del\x7f",
		"smtp command":        "\r\n.\r\nMAIL FROM:<evil@example.com>\r\nRCPT TO:<victim@example.com>\n.\n",
	}
	for name, body := range bodies {
		t.Run(name, func(t *testing.T) {
			raw := build(t, newMessage(func(m *domain.Message) { m.Body = body }))
			for _, line := range strings.Split(string(raw), "\r\n") {
				if len(line) > 78 {
					t.Errorf("line of %d bytes: %q", len(line), line)
				}
				for _, c := range []byte(line) {
					if c > '~' {
						t.Fatalf("8-bit byte %#x in output line %q", c, line)
					}
				}
			}
			m := parse(t, raw)
			if got, want := decodeBody(t, m), wantBody(body); got != want {
				t.Errorf("body = %q, want %q", got, want)
			}
		})
	}
}

func TestBuildEndsWithCRLF(t *testing.T) {
	for _, body := range []string{"", "x", "x\n", "x\r"} {
		raw := build(t, newMessage(func(m *domain.Message) { m.Body = body }))
		if !bytes.HasSuffix(raw, []byte("\r\n")) {
			t.Errorf("body %q: output does not end with CRLF: %q", body, raw[max(0, len(raw)-20):])
		}
	}
}

func TestBuildZeroDateUsesNow(t *testing.T) {
	before := time.Now().Add(-time.Second)
	raw, err := mailbuild.Build(newMessage(), mailbuild.Options{})
	if err != nil {
		t.Fatal(err)
	}
	date, err := parse(t, raw).Header.Date()
	if err != nil {
		t.Fatal(err)
	}
	if date.Before(before.Truncate(time.Second)) || date.After(time.Now().Add(time.Second)) {
		t.Errorf("Date = %v, want about now", date)
	}
}

func TestBuildIsDeterministic(t *testing.T) {
	a := build(t, newMessage())
	b := build(t, newMessage())
	if !bytes.Equal(a, b) {
		t.Errorf("two builds differ:\n%s\n---\n%s", a, b)
	}
}

func TestBuildRejectsMalformedInput(t *testing.T) {
	tests := map[string]func(*domain.Message){
		"no sender":            func(m *domain.Message) { m.SenderEmail = "" },
		"sender with newline":  func(m *domain.Message) { m.SenderEmail = "a@example.com\r\nBcc: x@example.com" },
		"sender with brackets": func(m *domain.Message) { m.SenderEmail = "a@example.com> <b@example.com" },
		"name with newline":    func(m *domain.Message) { m.SenderDisplayName = "A\nBcc: x@example.com" },
		"recipient no address": func(m *domain.Message) { m.Recipients[0].Email = "" },
		"recipient with CR":    func(m *domain.Message) { m.Recipients[1].Email = "c@example.net\r" },
		"subject with newline": func(m *domain.Message) { m.Subject = "hi\r\nBcc: x@example.com" },
		"no message id":        func(m *domain.Message) { m.MessageID = "" },
		"message id no angle":  func(m *domain.Message) { m.MessageID = "abc@example.com" },
		"message id injection": func(m *domain.Message) { m.MessageID = "<a@b>\r\nBcc: x@example.com" },
		"bad in-reply-to":      func(m *domain.Message) { m.InReplyTo = "parent" },
		"bad references":       func(m *domain.Message) { m.References = "<a@b> nope" },
		"unknown importance":   func(m *domain.Message) { m.Importance = 7 },
	}
	for name, mutate := range tests {
		t.Run(name, func(t *testing.T) {
			if raw, err := mailbuild.Build(newMessage(mutate), mailbuild.Options{Date: testDate}); err == nil {
				t.Errorf("Build succeeded:\n%s", raw)
			}
		})
	}
	if _, err := mailbuild.Build(nil, mailbuild.Options{}); err == nil {
		t.Error("Build(nil) succeeded")
	}
}

func TestBuildErrorWrapsDomainError(t *testing.T) {
	_, err := mailbuild.Build(newMessage(func(m *domain.Message) { m.MessageID = "bad" }), mailbuild.Options{})
	if domain.ErrorCodeOf(err) != domain.CodeInvalid {
		t.Errorf("error %v has code %q, want %q", err, domain.ErrorCodeOf(err), domain.CodeInvalid)
	}
}

// Long msg-ids are folded between ids only: a fold inside "<left@right>"
// inserts a space a reader keeps, so the id no longer matches and threading
// breaks (go-message folds anywhere once a value passes 76 columns).
func TestBuildNeverFoldsInsideMsgID(t *testing.T) {
	t.Parallel()
	longID := func(n int, c string) string {
		return "<" + strings.Repeat(c, n-len("<@a-corp.test>")) + "@a-corp.test>"
	}
	tests := []struct {
		name               string
		messageID, inReply string
		refs               []string
	}{
		{"JustPastAFold", longID(80, "x"), longID(80, "y"), []string{longID(70, "r"), longID(75, "s")}},
		{"AtTheLimit", longID(domain.MaxMessageIDLength, "x"), longID(domain.MaxMessageIDLength, "y"),
			[]string{longID(domain.MaxMessageIDLength, "p"), longID(domain.MaxMessageIDLength, "q"), "<short@a-corp.test>"}},
		{"ManyShort", "<a@b.example>", "<c@d.example>", strings.Fields(strings.Repeat("<0123456789@x.example> ", 40))},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			raw := build(t, newMessage(func(m *domain.Message) {
				m.MessageID, m.InReplyTo, m.References = tt.messageID, tt.inReply, strings.Join(tt.refs, " ")
			}))
			header, _, _ := bytes.Cut(raw, []byte("\r\n\r\n"))
			for _, line := range strings.Split(string(header), "\r\n") {
				if len(line) > 998 {
					t.Errorf("header line of %d octets, over RFC 5322's 998", len(line))
				}
			}
			m := parse(t, raw)
			// Unfolding (RFC 5322 3.2.2) removes CRLF only: a fold inside an
			// id would leave a space in it.
			unfold := func(key string) []string { return strings.Fields(m.Header.Get(key)) }
			if got := unfold("Message-ID"); len(got) != 1 || got[0] != tt.messageID {
				t.Errorf("Message-ID unfolds to %q, want %q", got, tt.messageID)
			}
			if got := unfold("In-Reply-To"); len(got) != 1 || got[0] != tt.inReply {
				t.Errorf("In-Reply-To unfolds to %q, want %q", got, tt.inReply)
			}
			if got := unfold("References"); strings.Join(got, " ") != strings.Join(tt.refs, " ") {
				t.Errorf("References unfold to %q, want %q", got, tt.refs)
			}
		})
	}
}

// UTF-8 addresses (RFC 6531) go into the header as UTF-8 for an SMTPUTF8
// relay, and as 7-bit encoded groups when downgraded for one without it.
func TestBuildUTF8Addresses(t *testing.T) {
	t.Parallel()
	msg := newMessage(func(m *domain.Message) {
		m.Recipients = []domain.Recipient{
			{Kind: domain.KindTo, DisplayName: "José", Email: "jösé@example.org"},
			{Kind: domain.KindCc, Email: "用户@xn--fsqu00a.xn--4rr70v"},
			{Kind: domain.KindCc, DisplayName: "Bob", Email: "bob@example.org"},
		}
	})
	t.Run("UTF8Header", func(t *testing.T) {
		t.Parallel()
		raw := build(t, msg)
		m := parse(t, raw)
		to, err := m.Header.AddressList("To")
		if err != nil || len(to) != 1 || to[0].Address != "jösé@example.org" || to[0].Name != "José" {
			t.Fatalf("To = %v, %v; want José <jösé@example.org>", to, err)
		}
		cc, err := m.Header.AddressList("Cc")
		if err != nil || len(cc) != 2 || cc[0].Address != "用户@xn--fsqu00a.xn--4rr70v" {
			t.Fatalf("Cc = %v, %v", cc, err)
		}
	})
	t.Run("Downgraded", func(t *testing.T) {
		t.Parallel()
		raw, err := mailbuild.Build(msg, mailbuild.Options{Date: testDate, Downgrade: true})
		if err != nil {
			t.Fatalf("Build: %v", err)
		}
		for i, c := range raw {
			if c >= 0x80 {
				t.Fatalf("downgraded message has an 8-bit byte at %d:\n%s", i, raw)
			}
		}
		m := parse(t, raw)
		if got := decodeText(t, strings.TrimSuffix(m.Header.Get("To"), " :;")); got != "José <jösé@example.org>" {
			t.Errorf("To's group name decodes to %q, want the original address", got)
		}
		cc, err := m.Header.AddressList("Cc")
		if err != nil || len(cc) != 1 || cc[0].Address != "bob@example.org" {
			t.Errorf("Cc = %v, %v; want the empty group and bob@example.org", cc, err)
		}
	})
}

// BenchmarkBuild renders text bodies the size of the delivery drains':
// one long line (as BenchmarkDeliveryDrain sends) and short lines ending
// in LF, the common case of a body typed or templated by hand.
func BenchmarkBuild(b *testing.B) {
	const sentence = "All work and no play makes a fast gateway. "
	for _, size := range []int{2 << 10, 100 << 10} {
		bodies := map[string]string{
			"one_line": strings.Repeat(sentence, size/len(sentence)+1)[:size],
			"lf_lines": strings.Repeat(sentence+sentence+"\n", size/(2*len(sentence)+1)+1)[:size],
		}
		for _, shape := range []string{"one_line", "lf_lines"} {
			msg := newMessage(func(m *domain.Message) { m.Body = bodies[shape] })
			b.Run(fmt.Sprintf("%dKB/%s", size>>10, shape), func(b *testing.B) {
				b.SetBytes(int64(size))
				b.ReportAllocs()
				for b.Loop() {
					if _, err := mailbuild.Build(msg, mailbuild.Options{Date: testDate}); err != nil {
						b.Fatal(err)
					}
				}
			})
		}
	}
}
