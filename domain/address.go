package domain

import (
	"strings"
	"unicode"
	"unicode/utf8"
)

// Limits on header-bound input. RFC 5321 caps a path at 256 octets; the
// others keep a single header line well under the 998-octet limit after encoding.
const (
	MaxAddressLength     = 254
	MaxDisplayNameLength = 256
	MaxSubjectLength     = 998
	MaxMessageIDLength   = 995
	MaxReferencesLength  = 8000
)

// CheckHeaderText rejects values that could break out of a header line or
// smuggle SMTP commands: CR, LF, NUL and every other control character
// except horizontal tab, and invalid UTF-8.
func CheckHeaderText(field, value string, maxLen int) error {
	if len(value) > maxLen {
		return FieldError(field, "is longer than %d bytes", maxLen)
	}
	if !utf8.ValidString(value) {
		return FieldError(field, "is not valid UTF-8")
	}
	for _, r := range value {
		if r == '\t' {
			continue
		}
		if unicode.IsControl(r) || r == '\u2028' || r == '\u2029' {
			return FieldError(field, "contains a control character (CR, LF, NUL or similar)")
		}
	}
	return nil
}

// NormalizeAddress validates a bare addr-spec (local@domain) and returns it with
// the domain lower-cased. Display names, angle brackets, comments, groups,
// quoted local parts and control characters are refused: a name has its own
// field, and only a dot-atom local part is safe to put in an SMTP command.
func NormalizeAddress(field, raw string) (string, error) {
	if err := CheckHeaderText(field, raw, MaxAddressLength); err != nil {
		return "", err
	}
	s := strings.TrimSpace(raw)
	if s == "" {
		return "", FieldError(field, "is required")
	}
	if strings.Count(s, "@") != 1 {
		return "", FieldError(field, "must be a bare address such as name@example.com, with exactly one @")
	}
	at := strings.IndexByte(s, '@')
	local, domainPart := s[:at], s[at+1:]
	if strings.ContainsAny(domainPart, " \t") {
		return "", FieldError(field, "has white space in its domain")
	}
	if err := checkDotAtom(field, local); err != nil {
		return "", err
	}
	d, err := NormalizeDomain(field, domainPart)
	if err != nil {
		return "", err
	}
	return local + "@" + d, nil
}

// checkDotAtom accepts RFC 5322 dot-atom local parts of ASCII atext.
func checkDotAtom(field, local string) error {
	if local == "" || len(local) > 64 {
		return FieldError(field, "must have a local part of 1 to 64 characters")
	}
	if local[0] == '.' || local[len(local)-1] == '.' || strings.Contains(local, "..") {
		return FieldError(field, "has a local part with a misplaced dot")
	}
	for i := 0; i < len(local); i++ {
		c := local[i]
		if c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '.' || strings.IndexByte("!#$%&'*+-/=?^_`{|}~", c) >= 0 {
			continue
		}
		return FieldError(field, "must be a bare address such as name@example.com (no display name, quotes, brackets or spaces)")
	}
	return nil
}

// NormalizeDomain lower-cases a domain, drops one trailing dot, and checks its labels.
func NormalizeDomain(field, raw string) (string, error) {
	trimmed := strings.TrimSuffix(strings.TrimSpace(raw), ".")
	for i := 0; i < len(trimmed); i++ {
		if trimmed[i] >= 0x80 {
			// Checked before lower-casing, which maps some non-ASCII letters
			// (the Kelvin sign) onto ASCII ones.
			return "", FieldError(field, "domain %q must be given in its ASCII (xn--) form", trimmed)
		}
	}
	d := strings.ToLower(trimmed)
	if d == "" || len(d) > 253 {
		return "", FieldError(field, "has an invalid domain")
	}
	labels := strings.Split(d, ".")
	if len(labels) < 2 {
		return "", FieldError(field, "domain %q is not fully qualified", d)
	}
	for _, label := range labels {
		if label == "" || len(label) > 63 || label[0] == '-' || label[len(label)-1] == '-' {
			return "", FieldError(field, "domain %q has an invalid label", d)
		}
		for _, r := range label {
			if r > 127 {
				// Internationalized names are compared in their ASCII form;
				// the edges (API, CLI) convert them with IDNA before this.
				return "", FieldError(field, "domain %q must be given in its ASCII (xn--) form", d)
			}
			if !(r == '-' || r >= 'a' && r <= 'z' || r >= '0' && r <= '9') {
				return "", FieldError(field, "domain %q has an invalid character", d)
			}
		}
	}
	return d, nil
}

// DomainOf returns the domain part of a normalized address.
func DomainOf(address string) string {
	return address[strings.LastIndexByte(address, '@')+1:]
}

// CheckMessageID validates a Message-ID: one msg-id in angle brackets, no spaces.
func CheckMessageID(field, id string) error {
	if err := CheckHeaderText(field, id, MaxMessageIDLength); err != nil {
		return err
	}
	if len(id) < 5 || id[0] != '<' || id[len(id)-1] != '>' || strings.ContainsAny(id[1:len(id)-1], "<> \t\"\\") || !strings.Contains(id, "@") {
		return FieldError(field, "must look like <unique@domain>")
	}
	return nil
}

// ParseReferences validates a References value: msg-ids separated by white space.
func ParseReferences(field, refs string) ([]string, error) {
	if err := CheckHeaderText(field, refs, MaxReferencesLength); err != nil {
		return nil, err
	}
	ids := strings.Fields(refs)
	for _, id := range ids {
		if err := CheckMessageID(field, id); err != nil {
			return nil, err
		}
	}
	return ids, nil
}
