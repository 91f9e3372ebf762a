package db

import (
	"context"
	"errors"
	"fmt"
	"regexp"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"
)

// DefaultRuntimeRole is the role the gateway works as: it owns no table, is
// not a superuser and has no BYPASSRLS, so row-level security applies to it.
const DefaultRuntimeRole = "mailgate_app"

var roleName = regexp.MustCompile(`^[a-z_][a-z0-9_]{0,62}$`)

// ValidRoleName reports whether name is a plain lower-case identifier.
func ValidRoleName(name string) bool { return roleName.MatchString(name) }

// EnsureRuntimeRole creates the runtime role if it is missing (LOGIN, no
// password: set one, or use certificate or IAM auth, as your platform
// prefers), checks it can't bypass row-level security, and grants it what the
// gateway needs on the schema the pool's search_path points at: data
// manipulation on every table (River's included), sequences and functions,
// and nothing that changes the schema. Run it as the schema owner.
func EnsureRuntimeRole(ctx context.Context, pool *pgxpool.Pool, role string) error {
	if !ValidRoleName(role) {
		return fmt.Errorf("runtime role %q must be a lower-case identifier", role)
	}
	ident := pgx.Identifier{role}.Sanitize()
	var exists bool
	if err := pool.QueryRow(ctx, `SELECT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = $1)`, role).Scan(&exists); err != nil {
		return fmt.Errorf("look up runtime role %s: %w", role, err)
	}
	// Only create it when missing, so an owner without CREATEROLE can
	// migrate once a DBA has made the role.
	if !exists {
		_, err := pool.Exec(ctx, `CREATE ROLE `+ident+` LOGIN NOSUPERUSER NOCREATEDB NOCREATEROLE NOBYPASSRLS`)
		var pgErr *pgconn.PgError
		// Another migrator may create it at the same moment: duplicate_object, or
		// a unique violation on pg_authid when the two race inside the catalog.
		if err != nil && !(errors.As(err, &pgErr) && (pgErr.Code == "42710" || pgErr.Code == "23505")) {
			return fmt.Errorf("create runtime role %s: %w", role, err)
		}
	}
	var super, bypass bool
	if err := pool.QueryRow(ctx, `SELECT rolsuper, rolbypassrls FROM pg_roles WHERE rolname = $1`, role).Scan(&super, &bypass); err != nil {
		return fmt.Errorf("inspect runtime role %s: %w", role, err)
	}
	if super || bypass {
		return fmt.Errorf("runtime role %s is a superuser or has BYPASSRLS; row-level security would not apply to it", role)
	}
	var schema, me string
	var meSuper bool
	if err := pool.QueryRow(ctx, `SELECT current_schema(), current_user, (SELECT rolsuper FROM pg_roles WHERE rolname = current_user)`).Scan(&schema, &me, &meSuper); err != nil {
		return fmt.Errorf("current schema: %w", err)
	}
	s := pgx.Identifier{schema}.Sanitize()
	grants := []string{
		`GRANT USAGE ON SCHEMA ` + s + ` TO ` + ident,
		`GRANT SELECT, INSERT, UPDATE, DELETE ON ALL TABLES IN SCHEMA ` + s + ` TO ` + ident,
		`GRANT USAGE, SELECT, UPDATE ON ALL SEQUENCES IN SCHEMA ` + s + ` TO ` + ident,
		`GRANT EXECUTE ON ALL FUNCTIONS IN SCHEMA ` + s + ` TO ` + ident,
	}
	if !meSuper && me != role {
		var member bool
		if err := pool.QueryRow(ctx, `SELECT pg_has_role(current_user, $1, 'MEMBER')`, role).Scan(&member); err != nil {
			return fmt.Errorf("check role membership: %w", err)
		}
		if !member {
			// Lets the owner's connections SET ROLE to the runtime role.
			grants = append(grants, `GRANT `+ident+` TO `+pgx.Identifier{me}.Sanitize())
		}
	}
	for _, g := range grants {
		if _, err := pool.Exec(ctx, g); err != nil {
			return fmt.Errorf("grant to %s: %w", role, err)
		}
	}
	return nil
}

// UseRuntimeRole makes every connection of the pool work as role: a
// connection that logged in as another user (the owner or a superuser, as in
// development) switches to it with SET ROLE, so row-level security applies
// however the gateway was configured.
func UseRuntimeRole(cfg *pgxpool.Config, role string) error {
	if !ValidRoleName(role) {
		return fmt.Errorf("runtime role %q must be a lower-case identifier", role)
	}
	previous := cfg.AfterConnect
	cfg.AfterConnect = func(ctx context.Context, conn *pgx.Conn) error {
		if previous != nil {
			if err := previous(ctx, conn); err != nil {
				return err
			}
		}
		var user string
		if err := conn.QueryRow(ctx, `SELECT session_user`).Scan(&user); err != nil {
			return fmt.Errorf("read session user: %w", err)
		}
		if user == role {
			return nil
		}
		if _, err := conn.Exec(ctx, `SET ROLE `+pgx.Identifier{role}.Sanitize()); err != nil {
			return fmt.Errorf("switch to runtime role %s (run mailgate migrate, which creates it): %w", role, err)
		}
		return nil
	}
	return nil
}
