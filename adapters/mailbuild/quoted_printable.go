package mailbuild

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
func qpLiteral(c byte) bool {
	return (c >= ' ' && c <= '~' && c != '=') || c == '\t'
}

// endsLine reports whether rest, what follows a character, starts a hard
// line break or is empty: whitespace there would be lost in transport.
func endsLine(rest []byte) bool {
	return len(rest) == 0 || (len(rest) >= 2 && rest[0] == '\r' && rest[1] == '\n')
}
