package httpapi

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"mime"
	"strconv"
	"strings"
	"time"

	"github.com/gin-gonic/gin"
	"golang.org/x/text/encoding"
	"golang.org/x/text/encoding/unicode"

	"github.com/mailgate/mailgate/domain"
)

// decodeOptions say how a compose model is read.
type decodeOptions struct {
	// strict refuses unknown members with 400. By default they are ignored,
	// as Json.NET, DataContractSerializer and MVC form binding ignore them,
	// so a client one model version ahead keeps working.
	strict bool
	// utf16 says an XML body was transcoded from UTF-16, so its
	// encoding="utf-16" declaration is true of the original and accepted.
	utf16 bool
}

// requestDecodeOptions reads "Prefer: handling=strict" (RFC 7240 section
// 4.4), the standard way for a client to ask for strict input checks.
func requestDecodeOptions(c *gin.Context) decodeOptions {
	for _, h := range c.Request.Header.Values("Prefer") {
		for _, pref := range strings.Split(h, ",") {
			name, value, _ := strings.Cut(strings.TrimSpace(pref), "=")
			if strings.EqualFold(strings.TrimSpace(name), "handling") && strings.EqualFold(strings.Trim(strings.TrimSpace(value), `"`), "strict") {
				return decodeOptions{strict: true}
			}
		}
	}
	return decodeOptions{}
}

// serverOwned are members of the answer that the gateway alone sets. They
// are refused in every mode rather than ignored: a client that sends
// "state": "sent" must learn that it set nothing (no mass assignment).
var serverOwned = map[string]bool{
	"state": true, "in_reply_to": true, "conversation_id": true, "updated_at": true,
	"last_error": true, "header_message_id": true, "header_references": true,
	"version": true, "queued_at": true, "job_id": true, "send_slot": true,
}

// serverOwnedRecipient are the recipient members the gateway alone sets.
var serverOwnedRecipient = map[string]bool{
	"status": true, "attempts": true, "last_code": true, "last_reply": true,
	"possible_duplicate": true, "in_flight_since": true,
}

// memberName folds a member name as Json.NET matches it, case-insensitive
// and in either spelling (ConversationId, conversation_id).
func memberName(key string) string { return strings.ToLower(snakeCase(key)) }

// checkServerOwnedJSON refuses server-owned members of a JSON compose model
// and of its recipients.
func checkServerOwnedJSON(data []byte) error {
	var top map[string]json.RawMessage
	if json.Unmarshal(data, &top) != nil {
		return nil // not an object: the typed decode reports it
	}
	for key, raw := range top {
		name := memberName(key)
		if serverOwned[name] {
			return domain.FieldError(name, "is set by the gateway and can't be assigned")
		}
		if name != "to" && name != "cc" && name != "bcc" {
			continue
		}
		var list []map[string]json.RawMessage
		if json.Unmarshal(raw, &list) != nil {
			continue
		}
		for i, r := range list {
			for k := range r {
				if n := memberName(k); serverOwnedRecipient[n] {
					return domain.FieldError(name+"["+strconv.Itoa(i)+"]."+n, "is set by the gateway and can't be assigned")
				}
			}
		}
	}
	return nil
}

// wireTS is ts as clients send it: base64 text (Json.NET, DataContract XML)
// or an array of byte values (DataContractJsonSerializer writes byte[] so).
type wireTS string

// UnmarshalJSON implements json.Unmarshaler.
func (t *wireTS) UnmarshalJSON(data []byte) error {
	data = bytes.TrimSpace(data)
	if len(data) > 0 && data[0] == '[' {
		var values []int
		if err := json.Unmarshal(data, &values); err != nil {
			return domain.FieldError("ts", "must be base64 text or an array of byte values")
		}
		b := make([]byte, len(values))
		for i, v := range values {
			if v < 0 || v > 255 {
				return domain.FieldError("ts", "must be base64 text or an array of byte values (0 to 255)")
			}
			b[i] = byte(v)
		}
		*t = wireTS(base64.StdEncoding.EncodeToString(b))
		return nil
	}
	var s string
	if err := json.Unmarshal(data, &s); err != nil {
		return domain.FieldError("ts", "must be base64 text or an array of byte values")
	}
	*t = wireTS(s)
	return nil
}

// parseWireDate reads a date as .NET clients send it: ISO 8601 (Json.NET,
// DataContract XML) or "\/Date(ms±hhmm)\/" (DataContractJsonSerializer;
// JSON decoding has already turned "\/" into "/").
func parseWireDate(s string) (time.Time, error) {
	s = strings.TrimSpace(s)
	if inner, ok := strings.CutPrefix(s, "/Date("); ok {
		inner, ok = strings.CutSuffix(inner, ")/")
		if !ok {
			return time.Time{}, fmt.Errorf("bad date %q", s)
		}
		ms, offset := inner, ""
		if i := strings.LastIndexAny(inner, "+-"); i > 0 {
			ms, offset = inner[:i], inner[i:]
		}
		n, err := strconv.ParseInt(ms, 10, 64)
		if err != nil {
			return time.Time{}, fmt.Errorf("bad date %q", s)
		}
		t := time.UnixMilli(n).UTC()
		if offset != "" {
			// The offset says where the client was; the instant is the ms.
			if len(offset) != 5 || strings.Trim(offset[1:], "0123456789") != "" {
				return time.Time{}, fmt.Errorf("bad date %q", s)
			}
			h, _ := strconv.Atoi(offset[1:3])
			m, _ := strconv.Atoi(offset[3:])
			secs := h*3600 + m*60
			if offset[0] == '-' {
				secs = -secs
			}
			t = t.In(time.FixedZone("", secs))
		}
		return t, nil
	}
	return parseDate(s)
}

// utf8XML returns an XML body as UTF-8: a UTF-16 one (by BOM, or declared
// charset=utf-16 in Content-Type, as .NET's XmlWriter and Web API's
// formatters may send) is transcoded. It reports whether it transcoded, so
// the document's own encoding="utf-16" declaration can be accepted.
func utf8XML(body io.Reader, contentType string) (io.Reader, bool, error) {
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
