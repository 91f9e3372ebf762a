package httpapi

import (
	"mime"
	"strconv"
	"strings"

	"github.com/gin-gonic/gin"
)

type format int

const (
	formatNone format = iota
	formatJSON
	formatXML
)

// acceptRange is one media range of an Accept header with its quality.
type acceptRange struct {
	mediaType string
	q         float64
}

// parseAccept reads an Accept header (RFC 9110 12.5.1) with its q-values;
// a malformed range is skipped, as lenient servers do. gin's NegotiateFormat
// ignores q, so "application/json;q=0, application/xml" would get JSON.
func parseAccept(header string) []acceptRange {
	var out []acceptRange
	for _, part := range strings.Split(header, ",") {
		part = strings.TrimSpace(part)
		if part == "" {
			continue
		}
		mediaType, params, err := mime.ParseMediaType(part)
		if err != nil {
			continue
		}
		q := 1.0
		if v, ok := params["q"]; ok {
			if q, err = strconv.ParseFloat(v, 64); err != nil || q < 0 || q > 1 {
				continue
			}
		}
		out = append(out, acceptRange{mediaType: mediaType, q: q})
	}
	return out
}

// quality is the q the ranges give offered: the most specific matching
// range wins (type/subtype over type/* over */*); -1 when none matches.
func quality(ranges []acceptRange, offered string) float64 {
	major, _, _ := strings.Cut(offered, "/")
	best, specificity := -1.0, -1
	for _, r := range ranges {
		s := -1
		switch {
		case r.mediaType == offered:
			s = 2
		case r.mediaType == major+"/*":
			s = 1
		case r.mediaType == "*/*":
			s = 0
		}
		if s > specificity {
			best, specificity = r.q, s
		}
	}
	return best
}

// negotiate picks the offered media type with the highest q, the first
// offered on a tie; "" when every match has q=0 or nothing matches.
func negotiate(header string, offered ...string) string {
	ranges := parseAccept(header)
	chosen, chosenQ := "", 0.0
	for _, o := range offered {
		if q := quality(ranges, o); q > chosenQ {
			chosen, chosenQ = o, q
		}
	}
	return chosen
}

// responseFormat picks JSON or XML from Accept, honouring q-values. Without
// an Accept header an XML request gets XML back, anything else JSON. An
// Accept that names neither (text/html from a browser) gets JSON, as ASP.NET
// Web API falls back to its first formatter; only a client that refuses
// both with q=0 gets formatNone (406).
func responseFormat(c *gin.Context) format {
	header := strings.TrimSpace(c.GetHeader("Accept"))
	if header == "" {
		if requestIsXML(c) {
			return formatXML
		}
		return formatJSON
	}
	switch negotiate(header, "application/json", "text/json", "application/problem+json", "application/xml", "text/xml", "application/problem+xml") {
	case "application/json", "text/json", "application/problem+json":
		return formatJSON
	case "application/xml", "text/xml", "application/problem+xml":
		return formatXML
	}
	ranges := parseAccept(header)
	jsonRefused := quality(ranges, "application/json") == 0
	xmlRefused := quality(ranges, "application/xml") == 0
	switch {
	case !jsonRefused:
		return formatJSON
	case !xmlRefused:
		return formatXML
	}
	return formatNone
}

func requestIsXML(c *gin.Context) bool {
	mediaType, _, _ := mime.ParseMediaType(c.GetHeader("Content-Type"))
	return mediaType == "application/xml" || mediaType == "text/xml"
}

// xmlContentType answers text/xml to clients that prefer it, application/xml otherwise.
func xmlContentType(c *gin.Context) string {
	if negotiate(c.GetHeader("Accept"), "application/xml", "text/xml") == "text/xml" {
		return "text/xml; charset=utf-8"
	}
	return "application/xml; charset=utf-8"
}
