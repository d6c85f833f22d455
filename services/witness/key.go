package witness

import (
	"crypto/ed25519"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"

	"github.com/lethe-dev/lethe/pkg/datadir"
)

// The witness's key files in its state directory.
const (
	// KeyFile holds the hex of the witness's 32-byte ed25519 seed, as
	// Lethe's other key files do (pkg/proof). It is made at the first
	// start, 0600, and never replaced: a new key is a new witness.
	KeyFile = "witness.key"
	// VKeyFile holds the witness's verifier key, for the operator to
	// hand to whoever checks its cosignatures (see
	// [github.com/lethe-dev/lethe/pkg/witness.NewVerifier]).
	VKeyFile = "witness.vkey"
)

// loadOrCreateKey reads the witness's key from dir, making it on first use.
func loadOrCreateKey(dir string) (ed25519.PrivateKey, error) {
	path := filepath.Join(dir, KeyFile)
	b, err := os.ReadFile(path)
	if errors.Is(err, fs.ErrNotExist) {
		seed := make([]byte, ed25519.SeedSize)
		if _, err := rand.Read(seed); err != nil {
			return nil, fmt.Errorf("witness key: %w", err)
		}
		if err := createOnce(path, []byte(hex.EncodeToString(seed)+"\n")); err != nil {
			return nil, fmt.Errorf("witness key: %w", err)
		}
		// Read it back: another process may have made it first.
		b, err = os.ReadFile(path)
	}
	if err != nil {
		return nil, fmt.Errorf("witness key: %w", err)
	}
	seed, err := hex.DecodeString(strings.TrimSpace(string(b)))
	if err != nil || len(seed) != ed25519.SeedSize {
		return nil, fmt.Errorf("witness key %s: not the hex of a %d-byte ed25519 seed", path, ed25519.SeedSize)
	}
	if err := datadir.Tighten(path); err != nil {
		return nil, fmt.Errorf("witness key: %w", err)
	}
	return ed25519.NewKeyFromSeed(seed), nil
}

// createOnce writes b to path, durably, unless path exists: it is written
// to a temporary file and linked into place, which fails rather than
// replaces a key another process made meanwhile.
func createOnce(path string, b []byte) error {
	tmp, err := writeTemp(path, b)
	if err != nil {
		return err
	}
	defer os.Remove(tmp)
	if err := os.Link(tmp, path); err != nil && !errors.Is(err, fs.ErrExist) {
		return err
	}
	return syncDir(filepath.Dir(path))
}
