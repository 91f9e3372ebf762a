package wire

import (
	"bytes"
	"fmt"
	"io"
	"mime"
	"strings"

	"golang.org/x/text/encoding"
	"golang.org/x/text/encoding/unicode"

	"github.com/mailgate/mailgate/domain"
)

// UTF8XML returns an XML body as UTF-8: a UTF-16 one (by BOM, or declared
// charset=utf-16 in Content-Type, as .NET's XmlWriter and Web API's
// formatters may send) is transcoded. It reports whether it transcoded, so
// the document's own encoding="utf-16" declaration can be accepted.
func UTF8XML(body io.Reader, contentType string) (io.Reader, bool, error) {
	data, err := io.ReadAll(body)
	if err != nil {
		return nil, false, fmt.Errorf("read XML body: %w", err)
	}
	_, params, _ := mime.ParseMediaType(contentType)
	charset := strings.ToLower(params["charset"])
	var enc encoding.Encoding
	switch {
	case bytes.HasPrefix(data, []byte{0xFE, 0xFF}), bytes.HasPrefix(data, []byte{0xFF, 0xFE}):
		// The BOM says which byte order, whatever the header claims.
		enc = unicode.UTF16(unicode.BigEndian, unicode.ExpectBOM)
	case strings.HasPrefix(charset, "utf-16"):
		// Without a BOM the first character, "<" (or white space), shows
		// the order: .NET's Encoding.Unicode writes little-endian and
		// labels it plain utf-16.
		order := unicode.BigEndian
		if charset == "utf-16le" || len(data) >= 2 && data[0] != 0 && data[1] == 0 {
			order = unicode.LittleEndian
		}
		enc = unicode.UTF16(order, unicode.IgnoreBOM)
	case charset == "" || charset == "utf-8" || charset == "us-ascii":
		return bytes.NewReader(data), false, nil
	default:
		return nil, false, domain.FieldError("", "the body's charset %q is not one the gateway reads; send UTF-8 or UTF-16", charset)
	}
	out, err := enc.NewDecoder().Bytes(data)
	if err != nil {
		return nil, false, domain.FieldError("", "the body is not valid UTF-16")
	}
	return bytes.NewReader(out), true, nil
}
