package mailbuild

import "encoding/binary"

// appendQuotedPrintable appends content, whose line breaks are CRLF,
// encoded as quoted-printable (RFC 2045 6.7) to dst: '=' and every byte
// outside printable ASCII as =XX, a space or tab that would end a line
// encoded too, hard line breaks kept, and soft breaks ("=" CRLF) so no
// line is longer than 76 characters. mime/quotedprintable's Writer does
// the same through a method call per byte; this copies each run of bytes
// that stand for themselves in one append and goes byte by byte only where
// something must be encoded or a line ends, which shows in the delivery of
// large text bodies (BenchmarkDeliveryDrain/100KB).
func appendQuotedPrintable(dst, content []byte) []byte {
	const (
		maxLine = 76
		hex     = "0123456789ABCDEF"
	)
	lineLen := 0
	for i := 0; i < len(content); {
		// A run of literal bytes, as long as the line has room for it and
		// the "=" of a soft break after it.
		if room := maxLine - 1 - lineLen; room > 0 {
			end, j := min(len(content), i+room), i
			for j+8 <= end && allLiteral8(binary.LittleEndian.Uint64(content[j:])) {
				j += 8
			}
			for j < end && qpLiteral(content[j]) {
				j++
			}
			if j > i && (content[j-1] == ' ' || content[j-1] == '\t') && endsLine(content[j:]) {
				j-- // trailing whitespace is encoded below
			}
			if j > i {
				dst = append(dst, content[i:j]...)
				lineLen += j - i
				i = j
				continue
			}
		}
		c := content[i]
		if c == '\r' && i+1 < len(content) && content[i+1] == '\n' {
			dst = append(dst, '\r', '\n')
			lineLen = 0
			i += 2
			continue
		}
		encode := !qpLiteral(c) || ((c == ' ' || c == '\t') && endsLine(content[i+1:]))
		width := 1
		if encode {
			width = 3
		}
		// Room for the character and the "=" of a soft break after it.
		if lineLen+width > maxLine-1 {
			dst = append(dst, '=', '\r', '\n')
			lineLen = 0
		}
		if encode {
			dst = append(dst, '=', hex[c>>4], hex[c&0x0f])
		} else {
			dst = append(dst, c)
		}
		lineLen += width
		i++
	}
	return dst
}

// qpLiteral reports whether c may stand for itself in quoted-printable
// (a space or tab only when a line doesn't end right after it).
func qpLiteral(c byte) bool { return qpLiterals[c] == '1' }

// qpLiterals holds qpLiteral's answer for every byte value: printable ASCII
// but '=', and tab. One load a byte instead of four comparisons, in the
// loop that copies runs of literal text.
const qpLiterals = "0000000001000000000000000000000011111111111111111111111111111011" +
	"1111111111111111111111111111111111111111111111111111111111111110" +
	"0000000000000000000000000000000000000000000000000000000000000000" +
	"0000000000000000000000000000000000000000000000000000000000000000"

// allLiteral8 reports whether the eight bytes of w are all printable ASCII
// other than '=', which most of a text body is: eight bytes a step through
// the run instead of one (the classic "has a byte less than / more than /
// equal to" word tests, exact as booleans for these bounds). A tab makes it
// false; the byte loop after it takes tabs one at a time.
func allLiteral8(w uint64) bool {
	const (
		ones  = 0x0101010101010101
		highs = 0x8080808080808080
	)
	below := (w - ones*' ') &^ w      // a byte < 0x20
	above := (w + ones*(127-'~')) | w // a byte > 0x7e
	x := w ^ (ones * '=')
	equals := (x - ones) &^ x // a byte == '='
	return (below|above|equals)&highs == 0
}

// endsLine reports whether rest, what follows a character, starts a hard
// line break or is empty: whitespace there would be lost in transport.
func endsLine(rest []byte) bool {
	return len(rest) == 0 || (len(rest) >= 2 && rest[0] == '\r' && rest[1] == '\n')
}
