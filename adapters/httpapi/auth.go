package httpapi

import (
	"context"
	"strings"

	"github.com/gin-gonic/gin"
	"github.com/google/uuid"

	"github.com/mailgate/mailgate/domain"
)

// Principal is the authenticated caller.
type Principal struct {
	SubscriptionID uuid.UUID
	Admin          bool
}

// TokenVerifier checks a bearer token and says who presented it. It returns
// a domain Error with CodeUnauthorized for any bad token.
type TokenVerifier interface {
	VerifyToken(ctx context.Context, token string) (Principal, error)
}

const (
	ctxPrincipal = "mailgate.principal"
	ctxRequestID = "mailgate.request_id"
)

// authenticate requires a valid bearer token on every request it guards.
func (s *Server) authenticate(c *gin.Context) (*answer, error) {
	header := c.GetHeader("Authorization")
	scheme, token, ok := strings.Cut(header, " ")
	if !ok || !strings.EqualFold(scheme, "Bearer") || strings.TrimSpace(token) == "" {
		c.Header("WWW-Authenticate", `Bearer realm="mailgate"`)
		return nil, domain.Errorf(domain.CodeUnauthorized, "a bearer token is required")
	}
	principal, err := s.verifier.VerifyToken(c.Request.Context(), strings.TrimSpace(token))
	if err != nil {
		c.Header("WWW-Authenticate", `Bearer realm="mailgate", error="invalid_token"`)
		return nil, err
	}
	c.Set(ctxPrincipal, principal)
	return nil, nil
}

func principalOf(c *gin.Context) Principal {
	p, _ := c.Get(ctxPrincipal)
	principal, _ := p.(Principal)
	return principal
}
