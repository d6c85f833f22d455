// Package piitest helps tests check that personal data went nowhere it
// should not: into the logs (capture them with a [Capture]), or into the
// bytes of a system's files after an erasure ([FilesHolding]).
package piitest

import (
	"bytes"
	"errors"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
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

// FilesHolding lists the files under dir whose raw bytes contain s, in any
// case: a look at what a store really keeps, free pages and journals
// included.
func FilesHolding(t testing.TB, dir, s string) []string {
	t.Helper()
	var found []string
	err := filepath.WalkDir(dir, func(path string, d os.DirEntry, err error) error {
		if errors.Is(err, fs.ErrNotExist) {
			return nil // removed since its folder was listed
		}
		if err != nil || d.IsDir() {
			return err
		}
		b, err := os.ReadFile(path)
		if errors.Is(err, fs.ErrNotExist) {
			// A live service's temporary file (the NATS server's o.dat.tmp,
			// say), renamed or removed between the listing and the read:
			// it is no longer there to hold anything.
			return nil
		}
		if err != nil {
			return err
		}
		if bytes.Contains(bytes.ToLower(b), []byte(strings.ToLower(s))) {
			rel, _ := filepath.Rel(dir, path)
			found = append(found, rel)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return found
}
