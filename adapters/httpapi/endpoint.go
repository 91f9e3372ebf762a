package httpapi

import (
	"github.com/gin-gonic/gin"

	"github.com/mailgate/mailgate/domain"
)

// handler is the shape of every endpoint and middleware of the API: it
// returns its answer or an error and writes neither itself, so that mount
// is the one place answers are written and errors become problems.
//
// A nil answer with a nil error writes nothing: a middleware lets the
// chain continue (or has run it itself, with c.Next). An endpoint that had
// to stream its body would write it and return that too; none does, and
// TestOnlyTheMapperWritesAnswers would have to name it.
type handler func(c *gin.Context) (*answer, error)

// answer is a handler's successful response: a status, headers, and a body
// written in one of the ways bodyKind names.
type answer struct {
	status int
	// headers are set in order before the body is written, and kept when
	// encoding the body fails (a created message's Location still holds).
	headers [][2]string
	kind    bodyKind
	// body is what bodyJSON and bodyNegotiated encode as JSON.
	body any
	// xml encodes the XML form of a bodyNegotiated answer.
	xml func() ([]byte, error)
	// raw and contentType are a bodyRaw answer, sent as they are.
	raw         []byte
	contentType string
}

// bodyKind is how an answer's body is written.
type bodyKind int

const (
	// bodyNone sends the status alone (204, 304).
	bodyNone bodyKind = iota
	// bodyJSON encodes body as JSON, without HTML escaping.
	bodyJSON
	// bodyNegotiated follows Accept: XML clients get what xml encodes,
	// JSON clients get body, and a client refusing both gets 406.
	bodyNegotiated
	// bodyRaw sends bytes already encoded (files, the help page, a stored
	// answer replayed), even when there are none.
	bodyRaw
)

// jsonAnswer answers with body encoded as JSON.
func jsonAnswer(status int, body any) *answer {
	return &answer{status: status, kind: bodyJSON, body: body}
}

// negotiatedAnswer answers in JSON or XML, whichever the client accepts.
func negotiatedAnswer(status int, body any, encodeXML func() ([]byte, error)) *answer {
	return &answer{status: status, kind: bodyNegotiated, body: body, xml: encodeXML}
}

// rawAnswer answers with bytes that are already encoded.
func rawAnswer(status int, contentType string, data []byte) *answer {
	return &answer{status: status, kind: bodyRaw, raw: data, contentType: contentType}
}

// emptyAnswer answers with a status and no body.
func emptyAnswer(status int) *answer { return &answer{status: status, kind: bodyNone} }

// with adds a header to the answer.
func (a *answer) with(name, value string) *answer {
	a.headers = append(a.headers, [2]string{name, value})
	return a
}

// mount adapts a handler to gin: the answer is written, or the error is
// mapped to its problem by writeError. An answer ends the chain, so a
// middleware that answers (a replayed request) stops the endpoint too.
func (s *Server) mount(h handler) gin.HandlerFunc {
	return func(c *gin.Context) {
		a, err := h(c)
		switch {
		case err != nil:
			s.writeError(c, err)
		case a != nil:
			s.writeAnswer(c, a)
			c.Abort()
		}
	}
}

// writeAnswer writes a successful answer; a body that can't be encoded in
// a format the client accepts is answered with the problem instead.
func (s *Server) writeAnswer(c *gin.Context, a *answer) {
	for _, h := range a.headers {
		c.Header(h[0], h[1])
	}
	switch a.kind {
	case bodyRaw:
		c.Data(a.status, a.contentType, a.raw)
	case bodyNegotiated:
		switch responseFormat(c) {
		case formatXML:
			body, err := a.xml()
			if err != nil {
				s.writeError(c, err)
				return
			}
			c.Data(a.status, xmlContentType(c), body)
		case formatJSON:
			c.PureJSON(a.status, a.body)
		default:
			s.writeError(c, &domain.Error{Code: codeNotAcceptable, Message: "this endpoint answers in application/json or application/xml"})
		}
	case bodyJSON:
		c.PureJSON(a.status, a.body)
	case bodyNone:
		c.Status(a.status)
	}
}

// methodNotAllowed answers a known path asked with a method it doesn't take.
func methodNotAllowed(c *gin.Context) (*answer, error) {
	return nil, &domain.Error{Code: codeMethodNotAllowed, Message: "this endpoint does not take " + c.Request.Method}
}

// noSuchEndpoint answers a path the API doesn't have.
func noSuchEndpoint(*gin.Context) (*answer, error) {
	return nil, domain.Errorf(domain.CodeNotFound, "no such endpoint")
}

// router registers handlers on a gin group, each through mount: a route
// can only be added in the handler shape, so no endpoint writes its own
// errors.
type router struct {
	server *Server
	group  *gin.RouterGroup
}

// handle adds an endpoint for method and path.
func (r router) handle(method, path string, h handler) {
	r.group.Handle(method, path, r.server.mount(h))
}

// subgroup is a group under path whose endpoints pass through middleware first.
func (r router) subgroup(path string, middleware ...handler) router {
	chain := make([]gin.HandlerFunc, len(middleware))
	for i, m := range middleware {
		chain[i] = r.server.mount(m)
	}
	return router{server: r.server, group: r.group.Group(path, chain...)}
}
