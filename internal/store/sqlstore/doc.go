// Package sqlstore is the one implementation of store.Store, written against
// database/sql and shared by the SQLite and PostgreSQL back ends.
//
// # One implementation, two dialects
//
// gantry runs on SQLite for a single server and on PostgreSQL for a
// highly available pair. The two must behave the same: a test suite that
// passes on one and a subtle difference on the other (an upsert that is not
// atomic, a lost nanosecond, an error that is not ErrConflict) would surface
// only in production. So there is exactly one copy of every query and every
// rule, here, and the back-end packages (store/sqlite, store/postgres) only
// open connections and describe their Dialect: the placeholder style, how to
// recognise a unique-constraint violation, and how to serialise concurrent
// migrations. Everything else is the common subset both engines speak:
// INSERT … ON CONFLICT for upserts, UPDATE … RETURNING, partial unique
// indexes, and plain column types (TEXT, BIGINT, INTEGER, BOOLEAN, BYTEA —
// SQLite accepts any type name and stores blobs unchanged).
//
// Queries are written with "?" placeholders, rebound to "$1, $2, …" for
// PostgreSQL (no query puts a literal "?" in SQL text), and sort text with
// "COLLATE bytewise", rebound to the engine's byte-order collation so that
// lists come out in the same order whatever the database's locale.
//
// # Representation
//
//   - Times are BIGINT nanoseconds since the Unix epoch, UTC; the zero
//     time.Time is NULL. This keeps full precision on both engines
//     (PostgreSQL's timestamptz has microseconds only), makes comparisons
//     plain integer comparisons, and keeps the tables identical. Times must
//     lie between the years 1678 and 2262.
//   - Labels, facts and other structured values are JSON text.
//   - Execution output and error text are made valid UTF-8 without NUL bytes
//     before they are written (PostgreSQL rejects both), so that one bad byte
//     in a script's output cannot fail a whole batch of updates.
//
// # Concurrency
//
// Every compare-and-set (join-token uses, schedule slots, leases, final
// execution states) is a single conditional UPDATE or INSERT … ON CONFLICT,
// so it is atomic on PostgreSQL under READ COMMITTED and on SQLite, where the
// back end serialises writers on one connection.
//
// # Migrations
//
// Schema changes live in migrations/NNNN_name.sql, embedded in the binary.
// New applies the missing ones in order, in one transaction, and records each
// version in schema_migrations. A database newer than the binary is refused.
package sqlstore
