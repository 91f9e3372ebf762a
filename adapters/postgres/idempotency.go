package postgres

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"

	"github.com/mailgate/mailgate/domain"
)

// ErrIdempotencyInProgress means another request with the same key has not finished.
var ErrIdempotencyInProgress = &domain.Error{Code: domain.CodeConflict, Field: "Idempotency-Key", Message: "a request with this Idempotency-Key is still in progress"}

// errIdempotencyMismatch is the key reused for another request.
var errIdempotencyMismatch = &domain.Error{Code: domain.CodeIdempotencyMismatch, Field: "Idempotency-Key", Message: "this Idempotency-Key was used for a different request"}

// ClaimIdempotencyKey reserves a key for a request. It returns the stored
// response when the key already served the same request; otherwise the
// caller now owns the key, must run the request, and records or releases
// the key with the claim returned.
func (s *Store) ClaimIdempotencyKey(ctx context.Context, tenant uuid.UUID, key string, requestHash []byte) (*domain.IdempotentResponse, domain.IdempotencyClaim, error) {
	var (
		replay *domain.IdempotentResponse
		claim  domain.IdempotencyClaim
	)
	err := s.inTx(ctx, tenantScope(tenant), func(tx pgx.Tx) error {
		err := tx.QueryRow(ctx, `INSERT INTO idempotency_keys (subscription_id, key, request_hash) VALUES ($1, $2, $3)
			ON CONFLICT DO NOTHING RETURNING created_at`, tenant, key, requestHash).Scan(&claim.At)
		if err == nil {
			return nil
		}
		if !errors.Is(err, pgx.ErrNoRows) {
			return fmt.Errorf("claim idempotency key: %w", err)
		}
		var (
			hash        []byte
			status      int
			body        []byte
			ids         []uuid.UUID
			created     time.Time
			contentType string
		)
		err = tx.QueryRow(ctx, `SELECT request_hash, status, response, message_ids, created_at, content_type FROM idempotency_keys
			WHERE subscription_id = $1 AND key = $2 FOR UPDATE`, tenant, key).Scan(&hash, &status, &body, &ids, &created, &contentType)
		if err != nil {
			return fmt.Errorf("read idempotency key: %w", err)
		}
		if time.Since(created) > domain.IdempotencyKeyTTL {
			// Expired: the key starts over for this request.
			return tx.QueryRow(ctx, `UPDATE idempotency_keys SET request_hash = $3, status = 0, response = NULL, message_ids = '{}', created_at = clock_timestamp()
				WHERE subscription_id = $1 AND key = $2 RETURNING created_at`, tenant, key, requestHash).Scan(&claim.At)
		}
		if !bytes.Equal(hash, requestHash) {
			return errIdempotencyMismatch
		}
		if status == 0 && len(ids) == 0 && time.Since(created) > domain.IdempotencyClaimLease {
			// The request that claimed the key died before creating
			// anything: this one takes the claim over. clock_timestamp, not
			// now(): the claim must differ from the one it replaces.
			return tx.QueryRow(ctx, `UPDATE idempotency_keys SET created_at = clock_timestamp() WHERE subscription_id = $1 AND key = $2
				RETURNING created_at`, tenant, key).Scan(&claim.At)
		}
		if status == 0 {
			return ErrIdempotencyInProgress
		}
		replay = &domain.IdempotentResponse{Status: status, Body: body, ContentType: contentType}
		for _, id := range ids {
			replay.MessageIDs = append(replay.MessageIDs, id.String())
		}
		return nil
	})
	return replay, claim, err
}

// FinishIdempotencyKey stores the response of the request that holds claim
// on the key; nothing when the claim was taken over (only the claim's
// holder can have created under the key, so what is there is its own).
func (s *Store) FinishIdempotencyKey(ctx context.Context, tenant uuid.UUID, key string, claim domain.IdempotencyClaim, resp domain.IdempotentResponse) error {
	return s.inTx(ctx, tenantScope(tenant), func(tx pgx.Tx) error {
		_, err := tx.Exec(ctx, `UPDATE idempotency_keys SET status = $3, response = $4, content_type = $5
			WHERE subscription_id = $1 AND key = $2 AND created_at = $6`,
			tenant, key, resp.Status, resp.Body, resp.ContentType, claim.At)
		return err
	})
}

// ReleaseIdempotencyKey forgets a key whose request failed, so it can be
// retried; a claim taken over since is the new owner's and stays.
func (s *Store) ReleaseIdempotencyKey(ctx context.Context, tenant uuid.UUID, key string, claim domain.IdempotencyClaim) error {
	return s.inTx(ctx, tenantScope(tenant), func(tx pgx.Tx) error {
		_, err := tx.Exec(ctx, `DELETE FROM idempotency_keys WHERE subscription_id = $1 AND key = $2 AND status = 0 AND message_ids = '{}' AND created_at = $3`,
			tenant, key, claim.At)
		return err
	})
}

// PurgeIdempotencyKeys deletes keys past their 24 hours (operator).
func (s *Store) PurgeIdempotencyKeys(ctx context.Context, createdBefore time.Time) (int64, error) {
	var n int64
	err := s.inTx(ctx, operatorScope, func(tx pgx.Tx) error {
		tag, err := tx.Exec(ctx, `DELETE FROM idempotency_keys WHERE created_at < $1`, createdBefore)
		n = tag.RowsAffected()
		return err
	})
	if err != nil && !errors.Is(err, context.Canceled) {
		return 0, fmt.Errorf("purge idempotency keys: %w", err)
	}
	return n, err
}
