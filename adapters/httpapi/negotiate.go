package httpapi

import (
	"mime"
	"strings"

	"github.com/gin-gonic/gin"
)

type format int

const (
	formatNone format = iota
	formatJSON
	formatXML
)

// responseFormat picks JSON or XML from Accept. Without an Accept header an
// XML request gets XML back, anything else JSON.
func responseFormat(c *gin.Context) format {
	if strings.TrimSpace(c.GetHeader("Accept")) == "" {
		if requestIsXML(c) {
			return formatXML
		}
		return formatJSON
	}
	switch c.NegotiateFormat("application/json", "text/json", "application/xml", "text/xml", "application/problem+json", "application/problem+xml") {
	case "application/json", "text/json", "application/problem+json":
		return formatJSON
	case "application/xml", "text/xml", "application/problem+xml":
		return formatXML
	}
	return formatNone
}

func requestIsXML(c *gin.Context) bool {
	mediaType, _, _ := mime.ParseMediaType(c.GetHeader("Content-Type"))
	return mediaType == "application/xml" || mediaType == "text/xml"
}

// xmlContentType answers text/xml to clients that asked for it, application/xml otherwise.
func xmlContentType(c *gin.Context) string {
	if c.NegotiateFormat("application/xml", "text/xml") == "text/xml" {
		return "text/xml; charset=utf-8"
	}
	return "application/xml; charset=utf-8"
}
