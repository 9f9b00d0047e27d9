package sqlstore

import (
	"strconv"
	"strings"
)

// Placeholder is how a dialect writes bind parameters.
type Placeholder int

const (
	// Question binds parameters as "?" (SQLite).
	Question Placeholder = iota
	// Dollar binds parameters as "$1", "$2", … (PostgreSQL).
	Dollar
)

// Dialect is what differs between the SQL engines sqlstore runs on.
type Dialect struct {
	// Name identifies the engine in error messages ("sqlite", "postgres").
	Name string
	// Placeholder is the bind-parameter style of the engine.
	Placeholder Placeholder
	// IsUniqueViolation reports whether err is a violation of a primary key
	// or unique constraint; such errors become store.ErrConflict.
	IsUniqueViolation func(err error) bool
	// MigrationLock, if not empty, is executed first in the migration
	// transaction to keep concurrent servers from migrating at once (e.g. an
	// advisory lock). SQLite needs none: its write transactions are already
	// exclusive.
	MigrationLock string
	// Bytewise names the collation that orders text by bytes (code
	// points), which queries write as "COLLATE bytewise": lists must come
	// out in the same order whatever the database's locale.
	Bytewise string
}

// rebind rewrites a query written with "?" placeholders and "COLLATE
// bytewise" for the dialect.
func (d Dialect) rebind(query string) string {
	query = strings.ReplaceAll(query, "COLLATE bytewise", "COLLATE "+d.Bytewise)
	if d.Placeholder != Dollar || !strings.Contains(query, "?") {
		return query
	}
	var b strings.Builder
	b.Grow(len(query) + 16)
	n := 0
	for i := 0; i < len(query); i++ {
		if query[i] == '?' {
			n++
			b.WriteByte('$')
			b.WriteString(strconv.Itoa(n))
			continue
		}
		b.WriteByte(query[i])
	}
	return b.String()
}
