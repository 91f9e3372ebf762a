package httpapi

import (
	"context"
	"errors"
	"io"
	"net"
	"net/http"
	"os"
	"time"

	"github.com/gin-gonic/gin"
)

// Bounds are the time limits every request is held to.
type Bounds struct {
	// Request is the server-side deadline of a request, from its headers to
	// its answer; every database call runs under it. 0 means none.
	Request time.Duration
	// BodyMinRate is the slowest a request body may arrive, in bytes a
	// second, once BodyGrace has passed since the headers (0: no minimum).
	// A body that falls behind is cut with a 408 and the connection closed.
	BodyMinRate int64
	BodyGrace   time.Duration
}

// unavailableRetryAfter is the Retry-After of a 503: long enough for a pool
// to reconnect, short enough that a client resumes soon after an outage.
const unavailableRetryAfter = "2"

const ctxPacedBody = "mailgate.paced_body"

// boundRequest puts the request under its deadline and paces its body. The
// body's read deadline is set on the connection itself, so it holds even
// when no handler reads the body (a refused request whose rest the server
// would otherwise wait for).
func (s *Server) boundRequest(c *gin.Context) {
	if s.bounds.Request <= 0 {
		c.Next()
		return
	}
	start := time.Now()
	ctx, cancel := context.WithTimeout(c.Request.Context(), s.bounds.Request)
	defer cancel()
	c.Request = c.Request.WithContext(ctx)
	if c.Request.ContentLength != 0 && c.Request.Body != nil && c.Request.Body != http.NoBody {
		body := &pacedBody{
			body: c.Request.Body, conn: http.NewResponseController(c.Writer),
			start: start, hard: start.Add(s.bounds.Request), minRate: s.bounds.BodyMinRate, grace: s.bounds.BodyGrace,
		}
		_ = body.conn.SetReadDeadline(body.deadline())
		c.Request.Body = body
		c.Set(ctxPacedBody, body)
	}
	c.Next()
}

// pacedBody enforces the body's minimum rate and deadline: before each read
// the connection's read deadline moves to the moment the bytes read so far
// stop covering the minimum rate, never past the request's deadline.
type pacedBody struct {
	body    io.ReadCloser
	conn    *http.ResponseController
	start   time.Time
	hard    time.Time
	minRate int64
	grace   time.Duration
	read    int64
	// tooSlow is set once a read ran out of time, so the answer is a 408
	// whatever error the decoder made of it.
	tooSlow bool
}

func (b *pacedBody) deadline() time.Time {
	if b.minRate <= 0 {
		return b.hard
	}
	earned := time.Duration(float64(b.read) / float64(b.minRate) * float64(time.Second))
	if d := b.start.Add(b.grace + earned); d.Before(b.hard) {
		return d
	}
	return b.hard
}

func (b *pacedBody) Read(p []byte) (int, error) {
	_ = b.conn.SetReadDeadline(b.deadline())
	n, err := b.body.Read(p)
	b.read += int64(n)
	var netErr net.Error
	switch {
	case errors.Is(err, os.ErrDeadlineExceeded) || errors.As(err, &netErr) && netErr.Timeout():
		b.tooSlow = true
		return n, errBodyTooSlow
	case errors.Is(err, io.EOF):
		// The server now reads ahead to notice a client that hangs up; that
		// read must not run into the body's deadline.
		_ = b.conn.SetReadDeadline(time.Time{})
	}
	return n, err
}

func (b *pacedBody) Close() error { return b.body.Close() }

var errBodyTooSlow = errors.New("the request body arrived too slowly")

// bodyTooSlow reports whether the request's body ran out of time.
func bodyTooSlow(c *gin.Context) bool {
	v, ok := c.Get(ctxPacedBody)
	if !ok {
		return false
	}
	b, _ := v.(*pacedBody)
	return b != nil && b.tooSlow
}
