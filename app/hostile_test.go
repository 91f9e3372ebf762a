package app

import (
	"bytes"
	"fmt"
	"mime/multipart"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/mailgate/mailgate/adapters/smtprelay/smtptest"
)

// smugglingPayloads are header-injection and SMTP-smuggling attempts.
var smugglingPayloads = []string{
	"x\r\nBcc: victim@example.com",
	"x\nBcc: victim@example.com",
	"x\r\n.\r\nMAIL FROM:<ceo@bank.example>",
	"x\n.\nMAIL FROM:<ceo@bank.example>",
	"x\n.\r\nRCPT TO:<victim@example.com>",
	"x\r.\rDATA",
	"x\x00y",
	"x\u2028Bcc: victim@example.com",
}

// TestInjectionInEveryField puts every payload into every header-bound field
// and into the body. A header-bound field must be refused; the body must
// arrive as exactly one message with no bare CR or LF on the wire.
func TestInjectionInEveryField(t *testing.T) {
	t.Parallel()
	g := startGateway(t, smtptest.Options{})
	base := func() map[string]any {
		return map[string]any{
			"sender_email": g.sender.Email, "sender_display_name": "Sender", "subject": "s", "body": "b", "send": true,
			"to": []map[string]string{{"display_name": "Ada", "email_address": "ada@example.net"}},
		}
	}
	fields := map[string]func(m map[string]any, p string){
		"subject":             func(m map[string]any, p string) { m["subject"] = p },
		"sender_display_name": func(m map[string]any, p string) { m["sender_display_name"] = p },
		"sender_email":        func(m map[string]any, p string) { m["sender_email"] = strings.Replace(p, "x", g.sender.Email, 1) },
		"to[0].display_name": func(m map[string]any, p string) {
			m["to"] = []map[string]string{{"display_name": p, "email_address": "ada@example.net"}}
		},
		"to[0].email_address": func(m map[string]any, p string) {
			m["to"] = []map[string]string{{"email_address": strings.Replace(p, "x", "ada@example.net", 1)}}
		},
		"message_id": func(m map[string]any, p string) {
			m["message_id"] = "<" + strings.Replace(p, "x", "id@example.net", 1) + ">"
		},
		"references": func(m map[string]any, p string) { m["references"] = "<a@example.net>" + p },
	}
	for name, set := range fields {
		for _, p := range smugglingPayloads {
			m := base()
			set(m, p)
			res := g.postJSON(t, mustJSON(m))
			if res.status != http.StatusBadRequest && res.status != http.StatusForbidden {
				t.Errorf("%s = %q was accepted (%d)", name, p, res.status)
			}
		}
	}
	if n := g.countRows(t, `SELECT count(*) FROM messages WHERE subscription_id = $1`); n != 0 {
		t.Fatalf("refused payloads wrote %d messages", n)
	}

	// In the body every payload but NUL is legal text: it must arrive intact
	// as one message, normalized to CRLF, never as a second SMTP transaction.
	sent := 0
	for _, p := range smugglingPayloads {
		m := base()
		m["body"] = "start " + p + " end"
		res := g.postJSON(t, mustJSON(m))
		if strings.ContainsRune(p, 0) {
			if res.status != http.StatusBadRequest {
				t.Errorf("NUL in the body accepted (%d)", res.status)
			}
			continue
		}
		if res.status != http.StatusCreated {
			t.Fatalf("body %q refused: %d %s", p, res.status, res.body)
		}
		sent++
	}
	got := g.relay.WaitForMessages(t, sent, 20*time.Second)
	time.Sleep(200 * time.Millisecond)
	if len(g.relay.Messages()) != sent {
		t.Fatalf("relay got %d messages for %d sends: a payload split a transaction", len(g.relay.Messages()), sent)
	}
	for _, r := range got {
		if r.From != g.sender.Email || len(r.To) != 1 || r.To[0] != "ada@example.net" {
			t.Fatalf("smuggled envelope: from %q to %v", r.From, r.To)
		}
		stripped := bytes.ReplaceAll(r.Data, []byte("\r\n"), nil)
		if bytes.ContainsAny(stripped, "\r\n") {
			t.Fatalf("bare CR or LF on the wire:\n%q", r.Data)
		}
	}
}

func TestHostileSizes(t *testing.T) {
	t.Parallel()
	g := startGateway(t, smtptest.Options{})

	t.Run("BodyOverTheCapIs413", func(t *testing.T) {
		big := bytes.Repeat([]byte("a"), 13<<20)
		res := g.postJSON(t, append(append([]byte(`{"subject":"`), big...), []byte(`"}`)...))
		assertProblem(t, res, http.StatusRequestEntityTooLarge, "")
	})
	t.Run("TooManyRecipients", func(t *testing.T) {
		to := make([]map[string]string, 101)
		for i := range to {
			to[i] = map[string]string{"email_address": fmt.Sprintf("r%d@example.net", i)}
		}
		res := g.postJSON(t, mustJSON(map[string]any{"sender_email": g.sender.Email, "to": to}))
		assertProblem(t, res, http.StatusBadRequest, "to")
	})
	t.Run("DeepJSON", func(t *testing.T) {
		body := `{"subject":"x","to":` + strings.Repeat("[", 100) + strings.Repeat("]", 100) + `}`
		assertProblem(t, g.postJSON(t, []byte(body)), http.StatusBadRequest, "")
	})
	t.Run("DeepXML", func(t *testing.T) {
		body := `<MessageComposeModel xmlns="http://schemas.datacontract.org/2004/07/CompleteEmpireApp.Api.Models">` +
			strings.Repeat("<To>", 50) + strings.Repeat("</To>", 50) + `</MessageComposeModel>`
		res := g.do(t, "POST", "/api/messages/sendmessage", "application/xml", g.token, []byte(body))
		assertXMLProblem(t, res, http.StatusBadRequest)
	})
	t.Run("XMLEntityExpansion", func(t *testing.T) {
		body := `<?xml version="1.0"?><!DOCTYPE lolz [<!ENTITY lol "lol"><!ENTITY lol2 "&lol;&lol;&lol;">]>` +
			`<MessageComposeModel xmlns="http://schemas.datacontract.org/2004/07/CompleteEmpireApp.Api.Models"><Subject>&lol2;</Subject></MessageComposeModel>`
		res := g.do(t, "POST", "/api/messages/sendmessage", "application/xml", g.token, []byte(body))
		assertXMLProblem(t, res, http.StatusBadRequest)
	})
	t.Run("ExecutableAttachmentRefused", func(t *testing.T) {
		for _, f := range []struct{ name, ct string }{
			{"invoice.pdf", "application/pdf"}, // content says program
			{"run.exe", "application/octet-stream"},
			{"script.js", "text/plain"},
		} {
			var buf bytes.Buffer
			w := multipart.NewWriter(&buf)
			part, _ := w.CreateFormFile("file", f.name)
			_, _ = part.Write(append([]byte("MZ\x90\x00\x03\x00\x00\x00\x04\x00\x00\x00\xff\xff"), make([]byte, 200)...))
			_ = w.Close()
			res := g.do(t, "POST", "/api/attachments", w.FormDataContentType(), g.token, buf.Bytes())
			assertProblem(t, res, http.StatusBadRequest, "file")
		}
		if n := g.countRows(t, `SELECT count(*) FROM attachments WHERE subscription_id = $1`); n != 0 {
			t.Fatalf("refused uploads stored %d attachments", n)
		}
	})
	t.Run("AttachmentOverTheCap", func(t *testing.T) {
		var buf bytes.Buffer
		w := multipart.NewWriter(&buf)
		part, _ := w.CreateFormFile("file", "big.bin")
		_, _ = part.Write(make([]byte, 10<<20+1))
		_ = w.Close()
		res := g.do(t, "POST", "/api/attachments", w.FormDataContentType(), g.token, buf.Bytes())
		assertProblem(t, res, http.StatusRequestEntityTooLarge, "file")
	})
}

func assertXMLProblem(t *testing.T, res response, status int) {
	t.Helper()
	if res.status != status || !strings.HasPrefix(res.header.Get("Content-Type"), "application/problem+xml") ||
		!bytes.Contains(res.body, []byte("urn:ietf:rfc:7807")) {
		t.Fatalf("want an XML problem %d, got %d %s: %s", status, res.status, res.header.Get("Content-Type"), res.body)
	}
}
