package httpapi

import (
	"net/http"
	"strings"

	"github.com/gin-gonic/gin"
)

// routeWords are the literal path segments of the registered routes, lower-cased.
type routeWords map[string]bool

// newRouteWords collects the literal segments of e's routes (not :params).
func newRouteWords(e *gin.Engine) routeWords {
	words := routeWords{}
	for _, r := range e.Routes() {
		for _, seg := range strings.Split(r.Path, "/") {
			if seg != "" && !strings.HasPrefix(seg, ":") && !strings.HasPrefix(seg, "*") {
				words[strings.ToLower(seg)] = true
			}
		}
	}
	return words
}

// canonicalPath lower-cases the segments that spell a route's literal
// segment in another case and drops one trailing slash, so
// /api/Messages/SendMessage/ is routed as /api/messages/sendmessage, as
// ASP.NET routes it, with no redirect (a redirected POST loses its body in
// many clients). Parameter segments (ids, addresses, domains) keep their case.
func (w routeWords) canonicalPath(p string) string {
	if p == "" || p == "/" {
		return p
	}
	if len(p) > 1 && strings.HasSuffix(p, "/") {
		p = p[:len(p)-1]
	}
	segs := strings.Split(p, "/")
	for i, seg := range segs {
		if lower := strings.ToLower(seg); lower != seg && w[lower] {
			segs[i] = lower
		}
	}
	return strings.Join(segs, "/")
}

// handler routes every request by its canonical path.
func (w routeWords) handler(next http.Handler) http.Handler {
	return http.HandlerFunc(func(rw http.ResponseWriter, r *http.Request) {
		if path := w.canonicalPath(r.URL.Path); path != r.URL.Path {
			r2 := r.Clone(r.Context())
			r2.URL.Path = path
			if r.URL.RawPath != "" {
				r2.URL.RawPath = w.canonicalPath(r.URL.RawPath)
			}
			r = r2
		}
		next.ServeHTTP(rw, r)
	})
}
