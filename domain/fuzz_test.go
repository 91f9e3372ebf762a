package domain_test

import (
	"errors"
	"net/mail"
	"strings"
	"testing"
	"unicode"
	"unicode/utf8"

	"github.com/mailgate/mailgate/domain"
)

// The seed corpora live in testdata/fuzz/<FuzzName>; plain `go test` runs them.

// requireFuzzDomainError fails unless err carries a *domain.Error: validators
// must refuse input with an error the HTTP layer can map, never a bare one.
func requireFuzzDomainError(t *testing.T, err error) {
	t.Helper()
	var de *domain.Error
	if !errors.As(err, &de) {
		t.Fatalf("got %T %v, want a *domain.Error", err, err)
	}
}

func FuzzNormalizeAddress(f *testing.F) {
	f.Fuzz(func(t *testing.T, raw string) {
		out, err := domain.NormalizeAddress("email", raw)
		if err != nil {
			requireFuzzDomainError(t, err)
			return
		}
		requireSafeAddress(t, raw, out)

		again, err := domain.NormalizeAddress("email", out)
		if err != nil {
			t.Fatalf("NormalizeAddress(%q) = %q, but normalizing that again fails: %v", raw, out, err)
		}
		if again != out {
			t.Fatalf("NormalizeAddress is not idempotent: %q -> %q -> %q", raw, out, again)
		}

		parsed, err := mail.ParseAddress(out)
		if err != nil {
			t.Fatalf("NormalizeAddress(%q) = %q, which net/mail rejects: %v", raw, out, err)
		}
		if parsed.Name != "" || parsed.Address != out {
			t.Fatalf("net/mail reads %q as name %q, address %q", out, parsed.Name, parsed.Address)
		}
	})
}

// requireSafeAddress checks that out is a bare addr-spec fit for an SMTP
// command and a header: one @, no specials or controls, a dot-atom local part
// and a lower-case domain.
func requireSafeAddress(t *testing.T, raw, out string) {
	t.Helper()
	if !utf8.ValidString(out) {
		t.Fatalf("NormalizeAddress(%q) = %q, which is not valid UTF-8", raw, out)
	}
	if n := strings.Count(out, "@"); n != 1 {
		t.Fatalf("NormalizeAddress(%q) = %q, with %d @ signs", raw, out, n)
	}
	for _, r := range out {
		if unicode.IsControl(r) || unicode.IsSpace(r) || strings.ContainsRune(`<>"(),;:\`, r) {
			t.Fatalf("NormalizeAddress(%q) = %q, which contains %U", raw, out, r)
		}
	}
	local, dom, _ := strings.Cut(out, "@")
	if local == "" || len(local) > 64 {
		t.Fatalf("NormalizeAddress(%q) = %q, with a local part of %d bytes", raw, out, len(local))
	}
	if dom == "" || strings.HasSuffix(dom, ".") {
		t.Fatalf("NormalizeAddress(%q) = %q, with domain %q", raw, out, dom)
	}
	if strings.ToLower(dom) != dom {
		t.Fatalf("NormalizeAddress(%q) = %q, whose domain is not lower-case", raw, out)
	}
	for _, r := range dom {
		ascii := r == '-' || r == '.' || r >= 'a' && r <= 'z' || r >= '0' && r <= '9'
		letter := r > unicode.MaxASCII && (unicode.IsLetter(r) || unicode.IsDigit(r) || unicode.Is(unicode.Mn, r))
		if !ascii && !letter {
			t.Fatalf("NormalizeAddress(%q) = %q, whose domain contains %U", raw, out, r)
		}
	}
}

func FuzzCheckHeaderText(f *testing.F) {
	f.Fuzz(func(t *testing.T, value string) {
		err := domain.CheckHeaderText("subject", value, domain.MaxSubjectLength)
		if err != nil {
			requireFuzzDomainError(t, err)
			return
		}
		if strings.ContainsAny(value, "\r\n\x00") {
			t.Fatalf("CheckHeaderText accepted %q, which holds CR, LF or NUL", value)
		}
		if !utf8.ValidString(value) {
			t.Fatalf("CheckHeaderText accepted %q, which is not valid UTF-8", value)
		}
		if len(value) > domain.MaxSubjectLength {
			t.Fatalf("CheckHeaderText accepted %d bytes, over the limit of %d", len(value), domain.MaxSubjectLength)
		}
	})
}

func FuzzParseReferences(f *testing.F) {
	f.Fuzz(func(t *testing.T, refs string) {
		ids, err := domain.ParseReferences("references", refs)
		if err != nil {
			requireFuzzDomainError(t, err)
			return
		}
		for _, id := range ids {
			if err := domain.CheckMessageID("references", id); err != nil {
				t.Fatalf("ParseReferences(%q) returned %q, which CheckMessageID rejects: %v", refs, id, err)
			}
		}
		if joined := strings.Join(ids, " "); strings.ContainsAny(joined, "\r\n") {
			t.Fatalf("ParseReferences(%q) returned ids that join to %q, with CR or LF", refs, joined)
		}
	})
}
