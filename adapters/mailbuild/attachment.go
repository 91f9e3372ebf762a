package mailbuild

import (
	"errors"
	"fmt"
	"maps"
	"mime"
	"slices"
	"strconv"
	"strings"

	"github.com/mailgate/mailgate/domain"
)

// maxFilenameLength matches the 255 bytes most file systems allow, which
// is also what uploads are cut to.
const maxFilenameLength = 255

// fallbackContentType labels attachments whose declared type cannot be sent as is.
const fallbackContentType = "application/octet-stream"

// maxParamLength is the longest parameter (or fragment of one) written in
// one piece, so that " param;" fits a folded line.
const maxParamLength = maxFieldLine - 4

// attachmentEntity is one attachment as a base64 leaf named both in
// Content-Disposition's filename, the standard place, and in Content-Type's
// name, which older clients read instead.
func attachmentEntity(i int, a domain.AttachmentContent) (entity, error) {
	if err := domain.CheckHeaderText("attachments["+strconv.Itoa(i)+"].filename", a.Filename, maxFilenameLength); err != nil {
		return entity{}, err
	}
	mediaType, params := attachmentType(a.ContentType)
	var dispositionParams []param
	if a.Filename != "" {
		params = append(params, nameParam(a.Filename))
		dispositionParams = filenameParams(a.Filename)
	}
	return entity{
		mediaType:         mediaType,
		params:            params,
		disposition:       "attachment",
		dispositionParams: dispositionParams,
		transferEncoding:  "base64",
		content:           a.Data,
	}, nil
}

// attachmentType parses the declared content type. Types that cannot label a
// base64 leaf (none, malformed, multipart/*, message/* which RFC 2046 limits
// to 7bit, 8bit or binary) become application/octet-stream: the bytes still
// arrive intact, and the filename tells the reader what they are. Declared
// parameters are kept, but for the name (set from the filename) and any too
// long to fold.
func attachmentType(declared string) (string, []param) {
	mediaType, declaredParams, err := mime.ParseMediaType(declared)
	if errors.Is(err, mime.ErrInvalidMediaParameter) {
		declaredParams, err = nil, nil
	}
	major, _, ok := strings.Cut(mediaType, "/")
	if err != nil || !ok || major == "multipart" || major == "message" ||
		mime.FormatMediaType(mediaType, nil) == "" {
		return fallbackContentType, nil
	}
	var params []param
	for _, key := range slices.Sorted(maps.Keys(declaredParams)) {
		if key == "name" {
			continue
		}
		if p := formatParam(key, declaredParams[key]); p != "" && len(p) <= maxParamLength {
			params = append(params, param{p})
		}
	}
	return mediaType, params
}

// nameParam is Content-Type's name: quoted when short printable ASCII, RFC
// 2047 encoded words otherwise, since the clients that read this parameter
// predate RFC 2231.
func nameParam(filename string) param {
	if !needsEncoding(filename) {
		if p := formatParam("name", filename); len(p) <= maxParamLength {
			return param{p}
		}
	}
	words := strings.Fields(bEncode(filename))
	words[0] = `name="` + words[0]
	words[len(words)-1] += `"`
	return words
}

// maxParamSection is the most encoded characters per RFC 2231 continuation,
// so that each section with its name and charset prefix stays within
// maxParamLength.
const maxParamSection = 50

// filenameParams is Content-Disposition's filename: quoted when short
// printable ASCII, otherwise RFC 2231 percent-encoded UTF-8 split into
// continuations (filename*0*, filename*1*, ...) that each fit a line.
func filenameParams(filename string) []param {
	if !needsEncoding(filename) {
		if p := formatParam("filename", filename); len(p) <= maxParamLength {
			return []param{{p}}
		}
	}
	var sections []string
	var cur strings.Builder
	for i := 0; i < len(filename); i++ {
		c := filename[i]
		token := string(c)
		if !isAttributeChar(c) {
			token = fmt.Sprintf("%%%02X", c)
		}
		if cur.Len()+len(token) > maxParamSection {
			sections = append(sections, cur.String())
			cur.Reset()
		}
		cur.WriteString(token)
	}
	sections = append(sections, cur.String())

	if len(sections) == 1 {
		return []param{{"filename*=utf-8''" + sections[0]}}
	}
	params := make([]param, len(sections))
	for n, s := range sections {
		if n == 0 {
			s = "utf-8''" + s
		}
		params[n] = param{"filename*" + strconv.Itoa(n) + "*=" + s}
	}
	return params
}

// isAttributeChar reports whether c may appear unescaped in an RFC 2231
// value: printable ASCII except space, "*", "'", "%" and the RFC 2045 tspecials.
func isAttributeChar(c byte) bool {
	return c > ' ' && c < 0x7f && !strings.ContainsRune(`*'%()<>@,;:\"/[]?=`, rune(c))
}
