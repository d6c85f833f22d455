// Package pseudonym turns subject identifiers into keyed hashes: the form in
// which Lethe keeps them for proof and suppression lists, without keeping the
// identifier itself.
package pseudonym

import (
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
)

// Normalize puts an identifier in the form that is hashed, so that
// "Person@Example.com " and "person@example.com" hash alike.
func Normalize(id string) string { return strings.ToLower(strings.TrimSpace(id)) }

// Hash is the hex HMAC-SHA256 of the normalized identifier under key.
func Hash(key []byte, id string) string {
	m := hmac.New(sha256.New, key)
	m.Write([]byte(Normalize(id)))
	return hex.EncodeToString(m.Sum(nil))
}

// KeyFromEnvOrFile returns the hash key held (hex or raw) in the environment
// variable env if it is set, else the key in file path, creating the file
// with a new random 32-byte key on first use. Keeping the key stable keeps
// hashes comparable across restarts.
func KeyFromEnvOrFile(env, path string) ([]byte, error) {
	if v := os.Getenv(env); v != "" {
		if b, err := hex.DecodeString(v); err == nil && len(b) >= 16 {
			return b, nil
		}
		return []byte(v), nil
	}
	if b, err := os.ReadFile(path); err == nil {
		if len(b) < 16 {
			return nil, fmt.Errorf("hash key %s: too short", path)
		}
		return b, nil
	} else if !errors.Is(err, fs.ErrNotExist) {
		return nil, fmt.Errorf("hash key: %w", err)
	}
	key := make([]byte, 32)
	if _, err := rand.Read(key); err != nil {
		return nil, fmt.Errorf("hash key: %w", err)
	}
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		return nil, fmt.Errorf("hash key: %w", err)
	}
	// O_EXCL: if another process created it meanwhile, use theirs.
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if errors.Is(err, fs.ErrExist) {
		return KeyFromEnvOrFile(env, path)
	}
	if err != nil {
		return nil, fmt.Errorf("hash key: %w", err)
	}
	defer f.Close()
	if _, err := f.Write(key); err != nil {
		return nil, fmt.Errorf("hash key: %w", err)
	}
	return key, f.Sync()
}
