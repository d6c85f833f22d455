// Package keyring is the orchestrator's view of the keys file: which public
// keys may answer for which system, read again when the file changes so
// that a key is added (rotation) or retired without a restart.
package keyring

import (
	"log/slog"
	"os"
	"sync"
	"time"

	"github.com/lethe-dev/lethe/pkg/proof"
)

// Ring is the keys file that says which public keys may answer for which
// system. It is read again when it changes.
type Ring struct {
	path string
	own  proof.Key // the orchestrator's own key, always listed
	log  *slog.Logger

	mu      sync.Mutex
	keys    proof.KeySet
	modTime time.Time
	checked time.Time
}

// Open reads the keys file at path; own, the orchestrator's key, is always
// listed.
func Open(path string, own proof.Key, log *slog.Logger) (*Ring, error) {
	r := &Ring{path: path, own: own, log: log}
	if err := r.load(); err != nil {
		return nil, err
	}
	return r, nil
}

func (r *Ring) load() error {
	ks, err := proof.ReadKeySet(r.path)
	if err != nil {
		return err
	}
	// The file's entry for our own key wins: it holds the validity an
	// operator registered (and a retirement), which a key handed in through
	// the environment cannot know.
	if _, err := ks.Find(r.own.ID); err != nil {
		ks.Add(r.own)
	}
	r.keys = ks
	if fi, err := os.Stat(r.path); err == nil {
		r.modTime = fi.ModTime()
	}
	return nil
}

// KeySet returns the current keys, re-reading the file (at most once a
// second) if it changed. A file that no longer parses keeps the last good
// keys, and says so.
func (r *Ring) KeySet() proof.KeySet {
	r.mu.Lock()
	defer r.mu.Unlock()
	if time.Since(r.checked) >= time.Second {
		r.checked = time.Now()
		if fi, err := os.Stat(r.path); err == nil && !fi.ModTime().Equal(r.modTime) {
			if err := r.load(); err != nil {
				r.log.Error("keys file not reloaded, keeping the last good keys", "path", r.path, "err", err)
			} else {
				r.log.Info("keys file reloaded", "path", r.path, "keys", len(r.keys.Keys))
			}
		}
	}
	return r.keys
}
