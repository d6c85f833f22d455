package pseudonym

import (
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

// KeyEnv names the environment variable that holds a service's hash key.
const KeyEnv = "LETHE_HASH_KEY"

// minKeyLen is the shortest key accepted: 128 bits as hex would be 32.
const minKeyLen = 16

// LoadKey returns the key of a service's keyed hashes (the dataset
// engine's hash strategy, suppression lists, the orchestrator's subject hash): the text of $LETHE_HASH_KEY if set, else that of
// dataDir/hash.key, which is created on first use with 32 random bytes in
// hex, readable by its owner only. Both are used the same way, so the file's
// content can be moved into the variable without changing any hash.
func LoadKey(dataDir string) ([]byte, error) {
	if v := strings.TrimSpace(os.Getenv(KeyEnv)); v != "" {
		if len(v) < minKeyLen {
			return nil, fmt.Errorf("pseudonym: %s is shorter than %d characters", KeyEnv, minKeyLen)
		}
		return []byte(v), nil
	}
	// The folder is private (0700), as everything under a data directory.
	if err := datadir.Ensure(dataDir); err != nil {
		return nil, fmt.Errorf("pseudonym: hash key directory: %w", err)
	}
	path := filepath.Join(dataDir, "hash.key")
	if err := datadir.Tighten(path); err != nil {
		return nil, fmt.Errorf("pseudonym: hash key: %w", err)
	}
	if b, err := os.ReadFile(path); err == nil {
		return checkKeyFile(path, b)
	} else if !errors.Is(err, fs.ErrNotExist) {
		return nil, fmt.Errorf("pseudonym: read hash key: %w", err)
	}
	raw := make([]byte, 32)
	if _, err := rand.Read(raw); err != nil {
		return nil, fmt.Errorf("pseudonym: generate hash key: %w", err)
	}
	key := []byte(hex.EncodeToString(raw))
	// Written to a temporary file and linked into place: a reader never sees
	// half a key, and of two processes starting together one key wins.
	tmp, err := os.CreateTemp(dataDir, ".hash.key-*")
	if err != nil {
		return nil, fmt.Errorf("pseudonym: write hash key: %w", err)
	}
	defer os.Remove(tmp.Name())
	_, werr := tmp.Write(append(key, '\n'))
	if err := errors.Join(werr, tmp.Chmod(0o600), tmp.Sync(), tmp.Close()); err != nil {
		return nil, fmt.Errorf("pseudonym: write hash key: %w", err)
	}
	if err := os.Link(tmp.Name(), path); err != nil {
		if errors.Is(err, fs.ErrExist) {
			b, err := os.ReadFile(path)
			if err != nil {
				return nil, fmt.Errorf("pseudonym: read hash key: %w", err)
			}
			return checkKeyFile(path, b)
		}
		return nil, fmt.Errorf("pseudonym: write hash key: %w", err)
	}
	return key, nil
}

func checkKeyFile(path string, b []byte) ([]byte, error) {
	k := strings.TrimSpace(string(b))
	if len(k) < minKeyLen {
		return nil, fmt.Errorf("pseudonym: hash key file %s is shorter than %d characters", path, minKeyLen)
	}
	return []byte(k), nil
}
