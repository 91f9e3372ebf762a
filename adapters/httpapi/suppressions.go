package httpapi

import (
	"context"
	"net/http"
	"time"

	"github.com/gin-gonic/gin"
	"github.com/google/uuid"

	"github.com/mailgate/mailgate/adapters/httpapi/wire"
	"github.com/mailgate/mailgate/domain"
)

// SuppressionStore keeps a tenant's suppression list.
type SuppressionStore interface {
	ListSuppressions(ctx context.Context, tenant uuid.UUID, after string, limit int) ([]domain.Suppression, error)
	AddSuppression(ctx context.Context, tenant uuid.UUID, sup domain.Suppression) (domain.Suppression, error)
	RemoveSuppression(ctx context.Context, tenant uuid.UUID, email string) error
}

type suppressionView struct {
	Email     string    `json:"email"`
	Reason    string    `json:"reason"`
	Source    string    `json:"source"`
	SMTPCode  int       `json:"smtp_code,omitempty"`
	CreatedAt time.Time `json:"created_at"`
}

func newSuppressionView(s domain.Suppression) suppressionView {
	return suppressionView{Email: s.Email, Reason: s.Reason, Source: s.Source, SMTPCode: s.SMTPCode, CreatedAt: s.CreatedAt}
}

func (s *Server) registerSuppressions(r router) {
	r.handle(http.MethodGet, "/suppressions", s.listSuppressions)
	r.handle(http.MethodPost, "/suppressions", s.addSuppression)
	r.handle(http.MethodDelete, "/suppressions/:email", s.removeSuppression)
}

func (s *Server) listSuppressions(c *gin.Context) (*answer, error) {
	limit, err := parseLimit(c, "after")
	if err != nil {
		return nil, err
	}
	list, err := s.suppressions.ListSuppressions(c.Request.Context(), principalOf(c).SubscriptionID, c.Query("after"), limit)
	if err != nil {
		return nil, err
	}
	items := mapViews(list, newSuppressionView)
	next := ""
	if len(list) == limit {
		next = list[len(list)-1].Email
	}
	return jsonAnswer(http.StatusOK, gin.H{"items": items, "next_after": next}), nil
}

func (s *Server) addSuppression(c *gin.Context) (*answer, error) {
	var body struct {
		Email  string `json:"email"`
		Reason string `json:"reason"`
	}
	if err := decodeStrict(c, &body); err != nil {
		return nil, err
	}
	addr, err := domain.NormalizeAddress("email", wire.ASCIIAddress(body.Email))
	if err != nil {
		return nil, err
	}
	if err := domain.CheckHeaderText("reason", body.Reason, 500); err != nil {
		return nil, err
	}
	sup, err := s.suppressions.AddSuppression(c.Request.Context(), principalOf(c).SubscriptionID,
		domain.Suppression{Email: addr, Reason: body.Reason, Source: domain.SuppressionManual})
	if err != nil {
		return nil, err
	}
	return jsonAnswer(http.StatusCreated, newSuppressionView(sup)), nil
}

func (s *Server) removeSuppression(c *gin.Context) (*answer, error) {
	addr, err := domain.NormalizeAddress("email", wire.ASCIIAddress(c.Param("email")))
	if err != nil {
		return nil, domain.ErrNotFound
	}
	if err := s.suppressions.RemoveSuppression(c.Request.Context(), principalOf(c).SubscriptionID, addr); err != nil {
		return nil, err
	}
	return emptyAnswer(http.StatusNoContent), nil
}
