// Package logtest captures a service's slog output in tests, so that a test
// can check that no personal data reached the logs.
package logtest

import (
	"bytes"
	"log/slog"
	"strings"
	"sync"
	"testing"
)

// Capture collects log lines written from many goroutines.
type Capture struct {
	mu sync.Mutex
	b  bytes.Buffer
}

// Write implements io.Writer.
func (c *Capture) Write(p []byte) (int, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.b.Write(p)
}

// String returns everything logged so far.
func (c *Capture) String() string {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.b.String()
}

// Logger returns a debug-level text logger writing to c.
func (c *Capture) Logger() *slog.Logger {
	return slog.New(slog.NewTextHandler(c, &slog.HandlerOptions{Level: slog.LevelDebug}))
}

// NoneOf fails t if anything was logged that contains one of ids (compared
// case-insensitively), or if nothing was logged at all: a test that
// captured no log proves nothing.
func (c *Capture) NoneOf(t testing.TB, ids ...string) {
	t.Helper()
	logs := strings.ToLower(c.String())
	if logs == "" {
		t.Fatal("no logs were captured")
	}
	for _, id := range ids {
		if id != "" && strings.Contains(logs, strings.ToLower(id)) {
			t.Errorf("%q appears in the logs", id)
		}
	}
}
