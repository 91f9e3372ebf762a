package httpapi

import (
	"bytes"
	"errors"
	"net/url"
	"strings"
	"testing"

	"github.com/mailgate/mailgate/adapters/httpapi/wire"
	"github.com/mailgate/mailgate/domain"
)

// The seed corpora live in testdata/fuzz/<FuzzName>; plain `go test` runs
// them. Each target feeds a hostile body through a decoder and toRequest,
// then through the domain checks the compose service applies next.

func FuzzDecodeJSON(f *testing.F) {
	f.Fuzz(func(t *testing.T, body []byte) {
		m, err := wire.DecodeJSON(bytes.NewReader(body), strictDecode)
		requireDecodedModelSafe(t, "decodeJSON", m, err)
	})
}

func FuzzDecodeXML(f *testing.F) {
	f.Fuzz(func(t *testing.T, body []byte) {
		// A bytes.Reader never fails, so every error is about the document.
		m, err := wire.DecodeXML(bytes.NewReader(body), strictDecode)
		requireDecodedModelSafe(t, "decodeXML", m, err)
	})
}

func FuzzDecodeForm(f *testing.F) {
	f.Fuzz(func(t *testing.T, body string) {
		values, err := url.ParseQuery(body)
		if err != nil {
			return // the HTTP layer refuses such a body before decodeForm sees it
		}
		m, err := wire.DecodeForm(values, strictDecode)
		requireDecodedModelSafe(t, "decodeForm", m, err)
	})
}

// requireDecodedModelSafe checks what a decoder returned: a refusal must be
// a *domain.Error, and an accepted model must convert, and then validate or
// be refused, without panicking and again only with domain errors.
func requireDecodedModelSafe(t *testing.T, decoder string, m wire.ComposeModel, err error) {
	t.Helper()
	if err != nil {
		requireFuzzDomainError(t, decoder, err)
		return
	}
	req, err := m.Request()
	if err != nil {
		requireFuzzDomainError(t, "Request", err)
		return
	}
	addresses := []string{req.SenderEmail}
	for _, list := range [][]domain.RecipientInput{req.To, req.Cc, req.Bcc} {
		for _, r := range list {
			addresses = append(addresses, r.EmailAddress)
		}
	}
	for _, a := range addresses {
		out, err := domain.NormalizeAddress("email_address", a)
		if err != nil {
			requireFuzzDomainError(t, "NormalizeAddress", err)
			continue
		}
		if strings.ContainsAny(out, "\r\n\x00<>") {
			t.Fatalf("NormalizeAddress(%q) = %q, which could break an SMTP command", a, out)
		}
	}
	for field, value := range map[string]string{"subject": req.Subject, "sender_display_name": req.SenderDisplayName} {
		if err := domain.CheckHeaderText(field, value, domain.MaxSubjectLength); err != nil {
			requireFuzzDomainError(t, "CheckHeaderText", err)
		} else if strings.ContainsAny(value, "\r\n\x00") {
			t.Fatalf("%s %q passed CheckHeaderText with CR, LF or NUL", field, value)
		}
	}
	if _, err := domain.ParseReferences("references", req.References); err != nil {
		requireFuzzDomainError(t, "ParseReferences", err)
	}
	if req.MessageID != "" {
		if err := domain.CheckMessageID("message_id", req.MessageID); err != nil {
			requireFuzzDomainError(t, "CheckMessageID", err)
		}
	}
}

// requireFuzzDomainError fails unless err is, or wraps, a *domain.Error, so
// that the one error mapping in this package can turn it into a status.
func requireFuzzDomainError(t *testing.T, step string, err error) {
	t.Helper()
	var de *domain.Error
	if !errors.As(err, &de) {
		t.Fatalf("%s returned %T %v, want a *domain.Error", step, err, err)
	}
}
