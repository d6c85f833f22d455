// Package pseudonym turns subject identifiers into keyed hashes: the form in
// which Lethe keeps them for proof and suppression lists, without keeping the
// identifier itself.
package pseudonym

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
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
