package app

import (
	"bytes"
	"html"
	"net/http"
	"regexp"
	"strings"
	"testing"

	"github.com/mailgate/mailgate/adapters/smtprelay/smtptest"
)

// TestHelpPageSamplesAreAccepted fetches /help and posts its JSON and XML
// samples, as a reader of the page would, with the tenant's own sender.
func TestHelpPageSamplesAreAccepted(t *testing.T) {
	t.Parallel()
	g := startGateway(t, smtptest.Options{})
	page := g.do(t, "GET", "/help", "", "", nil)
	if page.status != 200 || !strings.HasPrefix(page.header.Get("Content-Type"), "text/html") {
		t.Fatalf("/help: %d %s", page.status, page.header.Get("Content-Type"))
	}
	spec := g.do(t, "GET", "/api/openapi.json", "", "", nil)
	if spec.status != 200 || !bytes.Contains(spec.body, []byte(`"openapi": "3.1.0"`)) && !bytes.Contains(spec.body, []byte(`"openapi":"3.1.0"`)) {
		t.Fatalf("/api/openapi.json: %d %.200s", spec.status, spec.body)
	}
	for _, sample := range []struct{ id, contentType string }{
		{"sample-json", "application/json"},
		{"sample-xml", "application/xml"},
	} {
		m := regexp.MustCompile(`(?s)<pre id="` + sample.id + `"[^>]*>(.*?)</pre>`).FindSubmatch(page.body)
		if m == nil {
			t.Fatalf("/help has no %s", sample.id)
		}
		body := strings.ReplaceAll(html.UnescapeString(string(m[1])), "sender@example.com", g.sender.Email)
		res := g.do(t, "POST", "/api/messages/sendmessage", sample.contentType, g.token, []byte(body))
		if res.status != http.StatusCreated {
			t.Fatalf("posting the %s: %d %s", sample.id, res.status, res.body)
		}
	}
}
