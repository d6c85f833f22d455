package store

import (
	"context"
	"errors"
	"fmt"
	"net/url"
	"strings"
)

// Open opens the store a URL names: "sqlite:PATH" (the embedded default,
// e.g. sqlite:./data/lethe.db) or "postgres://user:pass@host:5432/db"
// ("postgresql://" too). A URL that names neither is a clear error, which
// never repeats a password.
func Open(ctx context.Context, rawURL string) (Store, error) {
	switch {
	case rawURL == "":
		return nil, errors.New("store: empty URL: want sqlite:PATH or postgres://host/db")
	case strings.HasPrefix(rawURL, "sqlite:"):
		path := strings.TrimPrefix(strings.TrimPrefix(rawURL, "sqlite:"), "//")
		if path == "" {
			return nil, errors.New("store: sqlite: URL names no file (want sqlite:./data/lethe.db)")
		}
		return OpenSQLite(path)
	case strings.HasPrefix(rawURL, "postgres://"), strings.HasPrefix(rawURL, "postgresql://"):
		u, err := url.Parse(rawURL)
		if err != nil {
			return nil, fmt.Errorf("store: not a PostgreSQL URL (%s)", redact(rawURL))
		}
		if u.Host == "" {
			return nil, fmt.Errorf("store: %s names no host", u.Redacted())
		}
		return OpenPostgres(ctx, rawURL)
	}
	return nil, fmt.Errorf("store: unknown kind of store %q: want sqlite:PATH or postgres://host/db", redact(rawURL))
}

// redact drops anything that looks like credentials from a URL that did
// not parse.
func redact(raw string) string {
	if i := strings.LastIndex(raw, "@"); i >= 0 {
		if j := strings.Index(raw, "://"); j >= 0 && j < i {
			return raw[:j+3] + "***" + raw[i:]
		}
		return "***" + raw[i:]
	}
	return raw
}
