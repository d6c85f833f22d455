package store

import (
	"context"
	"errors"
	"fmt"
	"net/url"
	"strings"

	"github.com/lethe-dev/lethe/pkg/durability"
)

// Option changes how a store is opened.
type Option func(*options)

type options struct{ durability durability.Mode }

// WithDurability sets how far a commit goes before it returns.
// [durability.Strict] (the default): SQLite runs with synchronous=FULL (an
// fsync per commit), PostgreSQL connections with synchronous_commit=on
// (the commit waits for its WAL record to be flushed). [durability.Fast]:
// synchronous=NORMAL, synchronous_commit=off, which lose nothing when a
// process crashes but may lose the last commits on a power loss (or, for
// PostgreSQL, a crash of its server). A synchronous_commit the PostgreSQL
// URL sets itself (remote_apply for synchronous standbys, say) wins.
func WithDurability(m durability.Mode) Option {
	return func(o *options) { o.durability = m }
}

func apply(opts []Option) options {
	var o options
	for _, opt := range opts {
		opt(&o)
	}
	return o
}

// Open opens the store a URL names: "sqlite:PATH" (the embedded default,
// e.g. sqlite:./data/lethe.db) or "postgres://user:pass@host:5432/db"
// ("postgresql://" too). A URL that names neither is a clear error, which
// never repeats a password. opts say how durable commits are (by default
// synced to the disk: see [WithDurability]).
func Open(ctx context.Context, rawURL string, opts ...Option) (Store, error) {
	switch {
	case rawURL == "":
		return nil, errors.New("store: empty URL: want sqlite:PATH or postgres://host/db")
	case strings.HasPrefix(rawURL, "sqlite:"):
		path := strings.TrimPrefix(strings.TrimPrefix(rawURL, "sqlite:"), "//")
		if path == "" {
			return nil, errors.New("store: sqlite: URL names no file (want sqlite:./data/lethe.db)")
		}
		return OpenSQLite(path, opts...)
	case strings.HasPrefix(rawURL, "postgres://"), strings.HasPrefix(rawURL, "postgresql://"):
		u, err := url.Parse(rawURL)
		if err != nil {
			return nil, fmt.Errorf("store: not a PostgreSQL URL (%s)", redact(rawURL))
		}
		if u.Host == "" {
			return nil, fmt.Errorf("store: %s names no host", u.Redacted())
		}
		return OpenPostgres(ctx, rawURL, opts...)
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
