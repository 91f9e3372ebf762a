package mailbuild

import (
	"bytes"
	"crypto"
	"errors"
	"fmt"
	"strings"

	msgauth "github.com/emersion/go-msgauth/dkim"

	"github.com/mailgate/mailgate/domain"
)

// signedHeaders are the header fields covered by every signature, in h= order.
// A field named here that the message lacks is signed as absent, so adding
// it later breaks the signature. The fields a mail client shows as who sent
// the message and what it is about are listed twice ("oversigned"), which
// also stops a relay from prepending a second copy that some clients would
// display instead of ours.
var signedHeaders = []string{ //nolint:gochecknoglobals // read-only: the headers every signature covers
	"From", "From",
	"Sender", "Sender",
	"Reply-To", "Reply-To",
	"To", "To",
	"Cc", "Cc",
	"Subject", "Subject",
	"Date",
	"Message-ID",
	"In-Reply-To",
	"References",
	"MIME-Version",
	"Content-Type",
	"Content-Transfer-Encoding",
}

// DKIMSigner signs messages for one domain and selector. It is immutable and safe
// for concurrent use.
type DKIMSigner struct {
	domain    string
	selector  string
	algorithm DKIMAlgorithm
	key       crypto.Signer
}

// NewDKIMSigner returns a DKIMSigner for domain and selector with the PEM private key
// (see parsePrivateKey for the accepted forms). Domain and selector are
// lower-cased; the domain must be fully qualified and in its ASCII form.
func NewDKIMSigner(domainName, selector string, privatePEM []byte) (*DKIMSigner, error) {
	d, err := domain.NormalizeDomain(fieldDomain, domainName)
	if err != nil {
		return nil, err
	}
	sel, err := normalizeSelector(selector)
	if err != nil {
		return nil, err
	}
	if n := len(sel) + len("._domainkey.") + len(d); n > 253 {
		return nil, domain.FieldError(fieldSelector, "makes the key's DNS name %d characters long, the limit is 253", n)
	}
	key, alg, err := parsePrivateKey(privatePEM)
	if err != nil {
		return nil, err
	}
	return &DKIMSigner{domain: d, selector: sel, algorithm: alg, key: key}, nil
}

// Domain returns the signing domain, the d= tag.
func (s *DKIMSigner) Domain() string { return s.domain }

// Selector returns the selector, the s= tag.
func (s *DKIMSigner) Selector() string { return s.selector }

// Algorithm returns the algorithm the key dictates, the a= tag.
func (s *DKIMSigner) Algorithm() DKIMAlgorithm { return s.algorithm }

// Sign returns message with a DKIM-Signature header field prepended, using
// relaxed/relaxed canonicalization. The message must be a complete RFC 5322
// message with CRLF line endings and exactly one From field; a bare CR or LF
// is refused because the relay would rewrite it and break the body hash.
// The t= tag records the time of the call, so signing the same message twice
// gives different bytes.
func (s *DKIMSigner) Sign(message []byte) ([]byte, error) {
	if i := bareLineBreak(message); i >= 0 {
		return nil, fmt.Errorf("dkim: bare CR or LF at byte %d of the message", i)
	}
	if err := checkSignableHeader(message); err != nil {
		return nil, fmt.Errorf("dkim: %w", err)
	}

	signer, err := msgauth.NewSigner(&msgauth.SignOptions{
		Domain:                 s.domain,
		Selector:               s.selector,
		Signer:                 s.key,
		Hash:                   crypto.SHA256,
		HeaderCanonicalization: msgauth.CanonicalizationRelaxed,
		BodyCanonicalization:   msgauth.CanonicalizationRelaxed,
		HeaderKeys:             signedHeaders,
	})
	if err != nil {
		return nil, fmt.Errorf("dkim: %w", err)
	}
	_, writeErr := signer.Write(message)
	// Close must run even after a failed write: it stops the signing goroutine.
	if err := errors.Join(writeErr, signer.Close()); err != nil {
		return nil, fmt.Errorf("dkim: sign: %w", err)
	}
	sig := signer.Signature()

	out := make([]byte, 0, len(sig)+len(message))
	out = append(out, sig...)
	out = append(out, message...)
	if i := bareLineBreak(out[:len(sig)]); i >= 0 || !strings.HasSuffix(sig, "\r\n") {
		return nil, fmt.Errorf("dkim: internal error: malformed signature field %q", sig)
	}
	return out, nil
}

// normalizeSelector lower-cases a selector and checks that it is one or more
// DNS labels of letters, digits and inner hyphens, as RFC 6376 requires.
func normalizeSelector(raw string) (string, error) {
	sel := strings.ToLower(raw)
	if sel == "" {
		return "", domain.FieldError(fieldSelector, "is required")
	}
	for label := range strings.SplitSeq(sel, ".") {
		if label == "" || len(label) > 63 || label[0] == '-' || label[len(label)-1] == '-' {
			return "", domain.FieldError(fieldSelector, "%q has an empty, over-long or hyphen-edged label", raw)
		}
		for i := 0; i < len(label); i++ {
			c := label[i]
			if !(c == '-' || c >= 'a' && c <= 'z' || c >= '0' && c <= '9') {
				return "", domain.FieldError(fieldSelector, "%q may only hold letters, digits, hyphens and dots", raw)
			}
		}
	}
	return sel, nil
}

// checkSignableHeader makes sure the message has a header section ended by an empty
// line, with well-formed fields and exactly one From, so the signature covers
// the author that readers will see.
func checkSignableHeader(message []byte) error {
	froms := 0
	rest := message
	for first := true; ; first = false {
		line, after, found := bytes.Cut(rest, []byte("\r\n"))
		if !found {
			return errors.New("the header section is not ended by an empty line")
		}
		rest = after
		if len(line) == 0 {
			break
		}
		if line[0] == ' ' || line[0] == '\t' {
			if first {
				return errors.New("the message starts with a continuation line")
			}
			continue
		}
		name, _, ok := bytes.Cut(line, []byte(":"))
		if !ok || !validFieldName(name) {
			return fmt.Errorf("malformed header line %q", truncate(line, 40))
		}
		if bytes.EqualFold(name, []byte("From")) {
			froms++
		}
	}
	if froms != 1 {
		return fmt.Errorf("the message has %d From fields, want exactly 1", froms)
	}
	return nil
}

// validFieldName reports whether name is an RFC 5322 field name: printable
// US-ASCII other than the colon.
func validFieldName(name []byte) bool {
	if len(name) == 0 {
		return false
	}
	for _, c := range name {
		if c < 33 || c > 126 {
			return false
		}
	}
	return true
}

// truncate shortens b for an error message.
func truncate(b []byte, n int) []byte {
	if len(b) > n {
		return b[:n]
	}
	return b
}
