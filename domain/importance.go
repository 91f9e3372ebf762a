package domain

import (
	"strconv"
	"strings"
)

// Importance is the message priority; the numbers are the wire values of the seed API.
type Importance int

// The importance levels.
const (
	ImportanceLow    Importance = 0
	ImportanceNormal Importance = 1
	ImportanceHigh   Importance = 2
)

var importanceNames = [...]string{"Low", "Normal", "High"} //nolint:gochecknoglobals // read-only: the .NET enum names

// Valid reports whether i is one of the defined levels.
func (i Importance) Valid() bool { return i >= ImportanceLow && i <= ImportanceHigh }

// String returns the level's name as the XML wire format spells it.
func (i Importance) String() string {
	if !i.Valid() {
		return "Importance(" + strconv.Itoa(int(i)) + ")"
	}
	return importanceNames[i]
}

// ParseImportance accepts a level's name (any case) or its number.
func ParseImportance(s string) (Importance, error) {
	s = strings.TrimSpace(s)
	for i, name := range importanceNames {
		if strings.EqualFold(s, name) {
			return Importance(i), nil
		}
	}
	n, err := strconv.Atoi(s)
	if err != nil || !Importance(n).Valid() {
		return 0, FieldError("importance", "must be Low, Normal or High (0, 1 or 2), got %q", s)
	}
	return Importance(n), nil
}
