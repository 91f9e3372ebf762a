package httpapi

import (
	"github.com/google/uuid"

	"github.com/mailgate/mailgate/adapters/httpapi/wire"
)

// parseGUID reads a GUID in a path, query or body member by the wire
// model's rules (plain, braced or parenthesized; empty is absent).
func parseGUID(field, s string) (uuid.UUID, error) { return wire.ParseGUID(field, s) }

// optionalID is id, or nil for the zero GUID, which answers show as null.
func optionalID(id uuid.UUID) *uuid.UUID { return wire.OptionalID(id) }
