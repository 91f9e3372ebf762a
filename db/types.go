package db

import (
	"context"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	pgxuuid "github.com/vgarvardt/pgx-google-uuid/v5"
)

// RegisterTypes teaches every connection of the pool to encode and decode
// google/uuid values natively. Without it pgx encodes a uuid.UUID through
// its driver.Valuer (a string, parsed back), which the delivery benchmark's
// profile showed as 13 % of the worker's CPU, most of it in the arrays of
// the bulk statements.
func RegisterTypes(cfg *pgxpool.Config) {
	previous := cfg.AfterConnect
	cfg.AfterConnect = func(ctx context.Context, conn *pgx.Conn) error {
		pgxuuid.Register(conn.TypeMap())
		if previous != nil {
			return previous(ctx, conn)
		}
		return nil
	}
}
