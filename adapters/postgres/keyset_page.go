package postgres

import (
	"strconv"
	"strings"
	"time"

	"github.com/google/uuid"

	"github.com/mailgate/mailgate/domain"
)

// keysetList builds the WHERE clause of a newest-first list that pages by
// a (time, id) keyset cursor, numbering its arguments as they are added.
type keysetList struct {
	args  []any
	where []string
}

// arg adds a query argument and returns its placeholder.
func (q *keysetList) arg(v any) string {
	q.args = append(q.args, v)
	return "$" + strconv.Itoa(len(q.args))
}

// and adds a condition.
func (q *keysetList) and(cond string) { q.where = append(q.where, cond) }

// after keeps the rows that come after cursor (a next_cursor this list
// returned) in (atColumn, idColumn) descending order; "" keeps all.
func (q *keysetList) after(cursor, atColumn, idColumn string) error {
	if cursor == "" {
		return nil
	}
	at, id, err := decodeCursor(cursor)
	if err != nil {
		return err
	}
	q.and("(" + atColumn + ", " + idColumn + ") < (" + q.arg(at) + ", " + q.arg(id) + ")")
	return nil
}

// clause is the conditions joined for WHERE ("true" with none).
func (q *keysetList) clause() string {
	if len(q.where) == 0 {
		return "true"
	}
	return strings.Join(q.where, " AND ")
}

// pageLimit is a list's page size: the default when unset, never past the maximum.
func pageLimit(n int) int {
	if n <= 0 {
		n = domain.DefaultListLimit
	}
	return min(n, domain.MaxListLimit)
}

// trimPage cuts rows fetched with one extra (LIMIT limit+1) to limit, and
// returns the cursor of the next page when there is one.
func trimPage[T any](rows []T, limit int, key func(T) (time.Time, uuid.UUID)) ([]T, string) {
	if len(rows) <= limit {
		return rows, ""
	}
	rows = rows[:limit]
	return rows, encodeCursor(key(rows[limit-1]))
}
