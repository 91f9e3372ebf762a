package mailbuild

import (
	"bytes"
	"io"
	"mime/quotedprintable"
	"strings"
	"testing"
)

// checkQuotedPrintable fails unless encoded decodes back to content and
// keeps every line within 76 characters of printable ASCII.
func checkQuotedPrintable(t *testing.T, content []byte) {
	t.Helper()
	encoded := appendQuotedPrintable(nil, content)
	decoded, err := io.ReadAll(quotedprintable.NewReader(bytes.NewReader(encoded)))
	if err != nil {
		t.Fatalf("decode %q: %v", encoded, err)
	}
	if !bytes.Equal(decoded, content) {
		t.Fatalf("%q decodes to %q, want %q", encoded, decoded, content)
	}
	for _, line := range strings.Split(string(encoded), "\r\n") {
		if len(line) > 76 {
			t.Fatalf("line of %d characters: %q", len(line), line)
		}
		if strings.HasSuffix(line, " ") || strings.HasSuffix(line, "\t") {
			t.Fatalf("line ends in whitespace: %q", line)
		}
		for _, c := range []byte(line) {
			if (c < ' ' && c != '\t') || c > '~' {
				t.Fatalf("byte %#x in %q", c, line)
			}
		}
	}
}

var quotedPrintableCases = []string{
	"", "plain", "a=b", "tab\tend\t", "space at end ", "two lines \r\nsecond\r\n", "ünïcödé",
	strings.Repeat("x", 200), strings.Repeat("=", 100), strings.Repeat("é", 60), strings.Repeat("a ", 80) + "\r\n",
	strings.Repeat("y", 75) + " \r\n", "\r\n\r\n", "line\r\n ",
}

func TestQuotedPrintableRoundTrips(t *testing.T) {
	for _, c := range quotedPrintableCases {
		checkQuotedPrintable(t, []byte(c))
	}
}

func FuzzQuotedPrintable(f *testing.F) {
	for _, c := range quotedPrintableCases {
		f.Add(c)
	}
	f.Fuzz(func(t *testing.T, s string) {
		// Content reaches the encoder with CRLF line breaks only.
		checkQuotedPrintable(t, normalizeLineEndings(s))
	})
}
