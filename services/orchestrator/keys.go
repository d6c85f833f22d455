package orchestrator

import (
	"errors"
	"log/slog"
	"os"
	"sync"
	"time"

	"github.com/lethe-dev/lethe/pkg/proof"
)

// registry is the keys file that says which public keys may answer for
// which system. It is read again when it changes, so a key can be added
// (rotation) or retired without a restart.
type registry struct {
	path string
	own  proof.Key // the orchestrator's own key, always listed
	log  *slog.Logger

	mu      sync.Mutex
	keys    proof.KeySet
	modTime time.Time
	checked time.Time
}

func newRegistry(path string, own proof.Key, log *slog.Logger) (*registry, error) {
	r := &registry{path: path, own: own, log: log}
	if err := r.load(); err != nil {
		return nil, err
	}
	return r, nil
}

func (r *registry) load() error {
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
func (r *registry) KeySet() proof.KeySet {
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

// rejectReason names why a receipt's signature was refused, for the
// lethe_receipts_rejected_total counter.
func rejectReason(err error) string {
	switch {
	case errors.Is(err, proof.ErrUnknownKey):
		return "unknown_key"
	case errors.Is(err, proof.ErrWrongSystem):
		return "wrong_system"
	case errors.Is(err, proof.ErrKeyNotValid):
		return "key_not_valid"
	default:
		return "bad_signature"
	}
}
