package store

import (
	"errors"
	"fmt"
	"strings"

	"github.com/jackc/pgx/v5/pgconn"
	"modernc.org/sqlite"
	sqlite3 "modernc.org/sqlite/lib"
)

// ErrUnavailable wraps a failure of the store to take a write (or to be
// reached) that is not the request's fault and passes by itself: the disk
// or database is full, the server refuses connections for now. The
// transaction changed nothing; the same call succeeds once it is over (the
// API answers 503 with Retry-After; the loops back off).
var ErrUnavailable = errors.New("the store cannot take it now (full or unreachable)")

// unavailable wraps err with ErrUnavailable when it is such a failure.
func unavailable(err error) error {
	if err == nil || errors.Is(err, ErrUnavailable) {
		return err
	}
	var se *sqlite.Error
	var pe *pgconn.PgError
	var ce *pgconn.ConnectError
	switch {
	case errors.As(err, &se) && se.Code()&0xff == sqlite3.SQLITE_FULL:
	case errors.As(err, &pe) && (strings.HasPrefix(pe.Code, "53") || strings.HasPrefix(pe.Code, "08")):
		// 53: insufficient resources (disk full, out of memory, too many
		// connections); 08: connection exception.
	case errors.As(err, &ce):
	default:
		return err
	}
	return fmt.Errorf("%w: %w", ErrUnavailable, err)
}

// IsUnavailable reports whether err, from any of the store's methods, is
// such a failure.
func IsUnavailable(err error) bool { return errors.Is(unavailable(err), ErrUnavailable) }
