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
	// MaxMessageIDLength lets one msg-id, which is never folded inside,
	// share a line with the longest field name it goes in ("In-Reply-To: ",
	// 13 octets) within RFC 5322's 998.
	MaxMessageIDLength  = 998 - len("In-Reply-To: ")
	MaxReferencesLength = 8000
	// MaxClientMessageIDLength bounds a client's own message_id, a
	// free-form string kept as its reference.
	MaxClientMessageIDLength = 998
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
// The local part may hold UTF-8 (RFC 6531); such an address is delivered only
// through a relay that offers SMTPUTF8.
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

// maxLocalPartLength is RFC 5321's limit, in octets (UTF-8 ones included).
const maxLocalPartLength = 64

// checkDotAtom accepts RFC 5322 dot-atom local parts of atext, extended with
// UTF-8 as RFC 6531 does. Each refusal names its cause.
func checkDotAtom(field, local string) error {
	if local == "" || len(local) > maxLocalPartLength {
		return FieldError(field, "must have a local part of 1 to %d bytes (UTF-8 characters count as 2 to 4)", maxLocalPartLength)
	}
	if local[0] == '.' || local[len(local)-1] == '.' || strings.Contains(local, "..") {
		return FieldError(field, "has a local part with a misplaced dot")
	}
	for _, r := range local {
		switch {
		case r < 0x80 && isAText(byte(r)):
		case r >= 0x80 && unicode.IsPrint(r):
			// RFC 6531 UTF8-non-ascii; control and format characters are
			// refused by the branch below.
		case r == ' ' || r == '"' || r == '<' || r == '>' || r == '(' || r == ')' || r == ',' || r == ';' || r == ':':
			return FieldError(field, "must be a bare address such as name@example.com (no display name, quotes, brackets, commas or spaces)")
		default:
			return FieldError(field, "has %q in its local part, which an address can't hold", r)
		}
	}
	return nil
}

// isAText reports whether c is RFC 5322 atext or a dot.
func isAText(c byte) bool {
	return c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '.' || strings.IndexByte("!#$%&'*+-/=?^_`{|}~", c) >= 0
}

// IsASCII reports whether s is 7-bit.
func IsASCII(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] >= 0x80 {
			return false
		}
	}
	return true
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

// CheckMessageID validates a Message-ID as RFC 5322's msg-id: "<" dot-atom
// "@" (dot-atom or [no-fold-literal]) ">", in ASCII, short enough to stay on
// one line (see MaxMessageIDLength). Ids are never UTF-8 on the wire, so they
// need no SMTPUTF8.
func CheckMessageID(field, id string) error {
	if err := CheckHeaderText(field, id, MaxMessageIDLength); err != nil {
		return err
	}
	if !validMsgID(id) {
		return FieldError(field, "must be a msg-id such as <unique@example.com> (ASCII, one @, no spaces)")
	}
	return nil
}

// validMsgID checks the msg-id syntax of RFC 5322 section 3.6.4.
func validMsgID(id string) bool {
	if len(id) < 5 || id[0] != '<' || id[len(id)-1] != '>' {
		return false
	}
	left, right, ok := strings.Cut(id[1:len(id)-1], "@")
	if !ok || !validDotAtomText(left) {
		return false
	}
	if strings.HasPrefix(right, "[") && strings.HasSuffix(right, "]") && len(right) >= 2 {
		for i := 1; i < len(right)-1; i++ {
			// dtext: printable ASCII but "[", "]" and "\\".
			if c := right[i]; c < '!' || c > '~' || c == '[' || c == ']' || c == '\\' {
				return false
			}
		}
		return true
	}
	return validDotAtomText(right)
}

// validDotAtomText reports whether s is ASCII dot-atom-text.
func validDotAtomText(s string) bool {
	if s == "" || s[0] == '.' || s[len(s)-1] == '.' || strings.Contains(s, "..") {
		return false
	}
	for i := 0; i < len(s); i++ {
		if !isAText(s[i]) {
			return false
		}
	}
	return true
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

// MsgIDsIn returns the valid msg-ids among the white-space separated words
// of a client's free-form references, in order, without repeats.
func MsgIDsIn(refs string) []string {
	var ids []string
	seen := map[string]bool{}
	for _, word := range strings.Fields(refs) {
		if CheckMessageID("references", word) == nil && !seen[word] {
			seen[word] = true
			ids = append(ids, word)
		}
	}
	return ids
}
