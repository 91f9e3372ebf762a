package mailbuild

import (
	"bytes"
	"testing"
)

// crlfByByte is the line-ending rule a byte at a time, the reference
// normalizeLineEndings must agree with.
func crlfByByte(s string) []byte {
	var out []byte
	for i := 0; i < len(s); i++ {
		switch {
		case s[i] == '\r' && i+1 < len(s) && s[i+1] == '\n':
			out = append(out, '\r', '\n')
			i++
		case s[i] == '\r' || s[i] == '\n':
			out = append(out, '\r', '\n')
		default:
			out = append(out, s[i])
		}
	}
	return out
}

var lineEndingCases = []string{
	"", "a", "\n", "\r", "\r\n", "\n\r", "\r\r\n", "\r\n\n", "a\nb", "a\rb", "a\r\nb",
	"line\r", "line\n", "mixed\r\nendings\nand\rbare\r\r\n\n\rcarriage returns",
	"no break at all, just one long line of text",
}

func TestNormalizeLineEndings(t *testing.T) {
	for _, s := range lineEndingCases {
		if got, want := normalizeLineEndings(s), crlfByByte(s); !bytes.Equal(got, want) {
			t.Errorf("normalizeLineEndings(%q) = %q, want %q", s, got, want)
		}
	}
}

func FuzzNormalizeLineEndings(f *testing.F) {
	for _, s := range lineEndingCases {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		if got, want := normalizeLineEndings(s), crlfByByte(s); !bytes.Equal(got, want) {
			t.Fatalf("normalizeLineEndings(%q) = %q, want %q", s, got, want)
		}
	})
}
