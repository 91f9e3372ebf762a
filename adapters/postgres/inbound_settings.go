package postgres

import (
	"context"
	"fmt"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"

	"github.com/mailgate/mailgate/domain"
)

// InboundSettings is a tenant's side of inbound mail.
type InboundSettings struct {
	// ReturnPathDomain is the tenant's own return-path domain, "" for the
	// gateway's bounce domain.
	ReturnPathDomain string
	ReplyRouting     bool
}

// SetInboundSettings changes a tenant's return-path domain and reply
// routing (operator); nil leaves a setting as it is, an empty domain
// goes back to the gateway's bounce domain. A return-path domain belongs
// to one tenant only: bounces arriving there are that tenant's.
func (s *Store) SetInboundSettings(ctx context.Context, tenant uuid.UUID, returnPathDomain *string, replyRouting *bool) (InboundSettings, error) {
	var out InboundSettings
	err := s.inTx(ctx, operatorScope, func(tx pgx.Tx) error {
		var rpd *string
		if returnPathDomain != nil && *returnPathDomain != "" {
			rpd = returnPathDomain
		}
		err := tx.QueryRow(ctx, `UPDATE subscriptions SET
				return_path_domain = CASE WHEN $2 THEN $3 ELSE return_path_domain END,
				reply_routing = coalesce($4, reply_routing)
			WHERE id = $1 RETURNING coalesce(return_path_domain, ''), reply_routing`,
			tenant, returnPathDomain != nil, rpd, replyRouting).Scan(&out.ReturnPathDomain, &out.ReplyRouting)
		return interpretError(err, "set inbound settings",
			onUnique(&domain.Error{Code: domain.CodeConflict, Field: "return_path_domain", Message: "another tenant uses this return-path domain"}))
	})
	if err == nil {
		s.returnPaths.invalidate()
	}
	return out, err
}

// maxDomainLength is the longest domain name DNS allows (RFC 1035).
const maxDomainLength = 253

// IsReturnPathDomain reports whether some tenant uses d as its return-path
// domain, so the inbound listener accepts mail for it. Answers are cached
// (see returnPathCache for how long, and why that is safe across replicas).
func (s *Store) IsReturnPathDomain(ctx context.Context, d string) (bool, error) {
	if len(d) > maxDomainLength {
		// No tenant can have it, and a cache key this long would only waste the cache's memory.
		return false, nil
	}
	found, ok, generation := s.returnPaths.get(d)
	if ok {
		return found, nil
	}
	err := s.inTx(ctx, operatorScope, func(tx pgx.Tx) error {
		return tx.QueryRow(ctx, `SELECT EXISTS (SELECT 1 FROM subscriptions WHERE return_path_domain = $1)`, d).Scan(&found)
	})
	if err != nil {
		return false, fmt.Errorf("look up return-path domain: %w", err)
	}
	s.returnPaths.put(d, found, generation)
	return found, nil
}
