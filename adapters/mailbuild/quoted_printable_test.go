package mailbuild

import (
	"bytes"
	"encoding/binary"
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

// quotedPrintableByByte is the encoder's rule applied one byte at a time,
// the reference the run-copying encoder must match exactly.
func quotedPrintableByByte(content []byte) []byte {
	var dst []byte
	lineLen := 0
	for i := 0; i < len(content); i++ {
		c := content[i]
		if c == '\r' && i+1 < len(content) && content[i+1] == '\n' {
			dst, lineLen = append(dst, '\r', '\n'), 0
			i++
			continue
		}
		encode := c == '=' || (c < ' ' && c != '\t') || c > '~'
		if c == ' ' || c == '\t' {
			rest := content[i+1:]
			encode = len(rest) == 0 || (len(rest) >= 2 && rest[0] == '\r' && rest[1] == '\n')
		}
		width := 1
		if encode {
			width = 3
		}
		if lineLen+width > 75 {
			dst, lineLen = append(dst, '=', '\r', '\n'), 0
		}
		if encode {
			dst = append(dst, '=', "0123456789ABCDEF"[c>>4], "0123456789ABCDEF"[c&0x0f])
		} else {
			dst = append(dst, c)
		}
		lineLen += width
	}
	return dst
}

// checkSameAsByByte fails unless the encoder's output is the reference's.
func checkSameAsByByte(t *testing.T, content []byte) {
	t.Helper()
	if got, want := appendQuotedPrintable(nil, content), quotedPrintableByByte(content); !bytes.Equal(got, want) {
		t.Fatalf("%q encodes to\n%q\nwant\n%q", content, got, want)
	}
}

func TestQuotedPrintableMatchesByByte(t *testing.T) {
	for _, c := range quotedPrintableCases {
		checkSameAsByByte(t, []byte(c))
	}
	// Every line length around the soft-break boundary, ending in each kind of byte.
	for n := 70; n <= 80; n++ {
		for _, tail := range []string{" ", "\t", "=", "é", "x", " \r\n", "\t\r\nnext"} {
			checkSameAsByByte(t, []byte(strings.Repeat("a", n)+tail))
			checkSameAsByByte(t, []byte(strings.Repeat("a ", n/2)+tail))
		}
	}
}

func FuzzQuotedPrintable(f *testing.F) {
	for _, c := range quotedPrintableCases {
		f.Add(c)
	}
	f.Fuzz(func(t *testing.T, s string) {
		// Content reaches the encoder with CRLF line breaks only.
		content := normalizeLineEndings(s)
		checkQuotedPrintable(t, content)
		checkSameAsByByte(t, content)
	})
}

// BenchmarkQuotedPrintable encodes a 100 KB text body, with the byte-by-byte
// rule beside it for comparison.
func BenchmarkQuotedPrintable(b *testing.B) {
	body := normalizeLineEndings(strings.Repeat("All work and no play makes a fast gateway. Déjà vu = 1.\n", 100<<10/56))
	b.Run("runs", func(b *testing.B) {
		b.SetBytes(int64(len(body)))
		for b.Loop() {
			_ = appendQuotedPrintable(nil, body)
		}
	})
	b.Run("byte_by_byte", func(b *testing.B) {
		b.SetBytes(int64(len(body)))
		for b.Loop() {
			_ = quotedPrintableByByte(body)
		}
	})
}

// TestQPLiteralsTable checks the lookup table against RFC 2045's rule
// written as comparisons.
func TestQPLiteralsTable(t *testing.T) {
	for c := 0; c < 256; c++ {
		want := (c >= ' ' && c <= '~' && c != '=') || c == '\t'
		if got := qpLiteral(byte(c)); got != want {
			t.Errorf("qpLiteral(%#02x) = %v, want %v", c, got, want)
		}
	}
}

// TestAllLiteral8 checks the word test against qpLiteral for words built
// around every byte value in every position, beside each boundary byte.
func TestAllLiteral8(t *testing.T) {
	fillers := []byte{' ', '!', '<', '>', 'a', '~', '\t', '=', 0x1f, 0x7f, 0x80, 0xff, 0x00}
	for _, filler := range fillers {
		for pos := 0; pos < 8; pos++ {
			for c := 0; c < 256; c++ {
				var word [8]byte
				for i := range word {
					word[i] = filler
				}
				word[pos] = byte(c)
				want := true
				for _, b := range word {
					want = want && qpLiteral(b) && b != '\t'
				}
				if got := allLiteral8(binary.LittleEndian.Uint64(word[:])); got != want {
					t.Fatalf("allLiteral8(%q) = %v, want %v", word, got, want)
				}
			}
		}
	}
}
