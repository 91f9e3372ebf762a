package httpapi

import (
	_ "embed"
	"net/http"
	"sync"

	"github.com/gin-gonic/gin"
)

// openAPIDocument is the API's OpenAPI 3.1 description. It is the one source
// of the API's documentation: GET /api/openapi.json serves it as is and the
// help page is built from it.
//
//go:embed openapi.json
var openAPIDocument []byte

// serveOpenAPI answers the embedded OpenAPI document. It needs no token.
func serveOpenAPI(*gin.Context) (*answer, error) {
	return rawAnswer(http.StatusOK, "application/json", openAPIDocument), nil
}

// renderedHelp is the help page, rendered once per process: it depends only
// on embedded files.
var renderedHelp = sync.OnceValues(func() (helpPage, error) { return renderHelp(openAPIDocument) }) //nolint:gochecknoglobals // set once from embedded files, the same for every Server

// helpHandler renders the help page when the server is built, so a broken
// document shows at startup (and in tests) rather than on a reader's request.
func (s *Server) helpHandler() handler {
	page, err := renderedHelp()
	if err != nil {
		s.logger.Error("the help page can't be rendered", "error", err)
		return func(*gin.Context) (*answer, error) { return nil, err }
	}
	return func(*gin.Context) (*answer, error) {
		// The page is self-contained: no scripts, no external assets.
		return rawAnswer(http.StatusOK, "text/html; charset=utf-8", page.HTML).
			with("Content-Security-Policy", page.ContentSecurityPolicy).
			with("X-Content-Type-Options", "nosniff"), nil
	}
}

// routes lists the registered routes, for comparing them with the document.
func (s *Server) routes() gin.RoutesInfo { return s.engine.Routes() }
