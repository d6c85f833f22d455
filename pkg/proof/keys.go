// Package proof is what makes Lethe's answers checkable by anyone with the
// public keys alone: ed25519 keys and the keys file that publishes them,
// signed receipts, a transparency log (an RFC 6962 Merkle tree, built on
// golang.org/x/mod/sumdb/tlog) with signed tree heads, and certificates of
// fulfilment that verify offline.
package proof

import (
	"crypto/ed25519"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"
)

// Key roles.
const (
	RoleOrchestrator = "orchestrator"
	RoleConnector    = "connector"
)

// Key is a public key and what it may sign: a connector key answers for one
// system; the orchestrator's key signs tree heads and certificates. A key is
// valid from NotBefore until NotAfter (open-ended when nil): rotating a key
// means adding the new one while the old stays valid, then retiring the old
// one by setting its NotAfter.
type Key struct {
	ID        string            `json:"key_id"`
	Role      string            `json:"role"`
	System    string            `json:"system,omitempty"`
	Public    ed25519.PublicKey `json:"public_key"`
	NotBefore time.Time         `json:"not_before"`
	NotAfter  *time.Time        `json:"not_after,omitempty"`
	// Seal is a connector's X25519 public key, which its tasks' subject
	// identifiers are sealed to (see SealKey).
	Seal []byte `json:"seal_key,omitempty"`
}

// ValidAt reports whether the key was valid at t.
func (k Key) ValidAt(t time.Time) bool {
	return !t.Before(k.NotBefore) && (k.NotAfter == nil || t.Before(*k.NotAfter))
}

// KeyID names a public key: its owner and the start of its SHA-256.
func KeyID(owner string, pub ed25519.PublicKey) string {
	sum := sha256.Sum256(pub)
	return owner + "-" + hex.EncodeToString(sum[:8])
}

// Errors of key look-ups and signature checks; errors.Is works through the
// wrapping that adds context.
var (
	ErrUnknownKey   = errors.New("key not in the keys file")
	ErrWrongSystem  = errors.New("key not registered for this system")
	ErrKeyNotValid  = errors.New("key not valid at the time of signing")
	ErrBadSignature = errors.New("signature does not verify")
)

// KeySet is a keys file: every public key a verifier may need, with its
// validity. It is what GET /v1/keys serves and `lethectl keys export` saves.
type KeySet struct {
	Keys []Key `json:"keys"`
}

// Find returns the key with id.
func (ks KeySet) Find(id string) (Key, error) {
	for _, k := range ks.Keys {
		if k.ID == id {
			return k, nil
		}
	}
	return Key{}, fmt.Errorf("%w: %s", ErrUnknownKey, id)
}

// For returns the key id if it may sign as role (and system) at t.
func (ks KeySet) For(id, role, system string, at time.Time) (Key, error) {
	k, err := ks.Find(id)
	if err != nil {
		return Key{}, err
	}
	if k.Role != role || (role == RoleConnector && k.System != system) {
		return Key{}, fmt.Errorf("%w: %s is a %s key for %q, not for %q", ErrWrongSystem, id, k.Role, k.System, system)
	}
	if !k.ValidAt(at) {
		return Key{}, fmt.Errorf("%w: %s at %s", ErrKeyNotValid, id, at.UTC().Format(time.RFC3339))
	}
	return k, nil
}

// Add adds or replaces keys by id, keeping the set sorted by id. It works
// on a fresh copy of the list, so adding to a copy of a KeySet (one a
// registry handed out, say) never changes the set it was copied from.
func (ks *KeySet) Add(keys ...Key) {
	ks.Keys = slices.Clone(ks.Keys)
	for _, k := range keys {
		ks.Keys = slices.DeleteFunc(ks.Keys, func(o Key) bool { return o.ID == k.ID })
		ks.Keys = append(ks.Keys, k)
	}
	slices.SortFunc(ks.Keys, func(a, b Key) int { return strings.Compare(a.ID, b.ID) })
}

// Validate reports a key that cannot be used.
func (ks KeySet) Validate() error {
	seen := map[string]bool{}
	for _, k := range ks.Keys {
		switch {
		case len(k.Public) != ed25519.PublicKeySize:
			return fmt.Errorf("key %q: public key must be %d bytes", k.ID, ed25519.PublicKeySize)
		case k.Role != RoleConnector && k.Role != RoleOrchestrator:
			return fmt.Errorf("key %q: role must be %q or %q", k.ID, RoleConnector, RoleOrchestrator)
		case k.Role == RoleConnector && k.System == "":
			return fmt.Errorf("key %q: a connector key names its system", k.ID)
		case seen[k.ID]:
			return fmt.Errorf("key %q: listed twice", k.ID)
		case k.NotAfter != nil && !k.NotAfter.After(k.NotBefore):
			return fmt.Errorf("key %q: not_after is not after not_before", k.ID)
		}
		seen[k.ID] = true
	}
	return nil
}

// ReadKeySet reads a keys file; a missing file is an empty set.
func ReadKeySet(path string) (KeySet, error) {
	var ks KeySet
	b, err := os.ReadFile(path)
	if errors.Is(err, fs.ErrNotExist) {
		return ks, nil
	}
	if err != nil {
		return ks, fmt.Errorf("keys file: %w", err)
	}
	if err := json.Unmarshal(b, &ks); err != nil {
		return ks, fmt.Errorf("keys file %s: %w", path, err)
	}
	if err := ks.Validate(); err != nil {
		return ks, fmt.Errorf("keys file %s: %w", path, err)
	}
	return ks, nil
}

// WriteKeySet writes a keys file atomically, readable by its owner only
// (0600): it holds no secret, but it lives among a data directory's files,
// all of which are private.
func WriteKeySet(path string, ks KeySet) error {
	b, err := json.MarshalIndent(ks, "", "  ")
	if err != nil {
		return err
	}
	return writeAtomic(path, append(b, '\n'), 0o600)
}

// Signer holds a private key.
type Signer struct {
	Key  Key
	priv ed25519.PrivateKey
}

// Sign signs msg in the given domain: the domain keeps a signature made for
// one kind of document from being valid for another.
func (s *Signer) Sign(domain string, msg []byte) []byte {
	return ed25519.Sign(s.priv, domainMessage(domain, msg))
}

func domainMessage(domain string, msg []byte) []byte {
	return append([]byte("lethe/"+domain+"/v1\x00"), msg...)
}

// verify checks sig over msg in domain with k.
func verify(k Key, domain string, msg, sig []byte) error {
	if !ed25519.Verify(k.Public, domainMessage(domain, msg), sig) {
		return fmt.Errorf("%w (key %s)", ErrBadSignature, k.ID)
	}
	return nil
}

// LoadOrCreateSigner reads the private key at path (the hex of its 32-byte
// seed), creating it on first use. owner is "orchestrator" or a system name.
// A public entry for the keys file is written beside it (path + ".pub"), for
// an operator to register. Both files are 0600, the folder made for them
// 0700: a key file found in place, which may be a read-only mount, is only
// read.
func LoadOrCreateSigner(path, owner string, now time.Time) (*Signer, error) {
	seed, err := os.ReadFile(path)
	if errors.Is(err, fs.ErrNotExist) {
		raw := make([]byte, ed25519.SeedSize)
		if _, err := rand.Read(raw); err != nil {
			return nil, fmt.Errorf("signing key: %w", err)
		}
		if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
			return nil, fmt.Errorf("signing key: %w", err)
		}
		if err := writeAtomic(path, []byte(hex.EncodeToString(raw)+"\n"), 0o600); err != nil {
			return nil, fmt.Errorf("signing key: %w", err)
		}
		seed, err = os.ReadFile(path)
	}
	if err != nil {
		return nil, fmt.Errorf("signing key: %w", err)
	}
	s, err := SignerFromSeed(string(seed), owner, now)
	if err != nil {
		return nil, fmt.Errorf("signing key %s: %w", path, err)
	}
	// The public entry keeps the validity start of its first writing.
	pubPath := path + ".pub"
	if b, err := os.ReadFile(pubPath); err == nil {
		var prev Key
		if json.Unmarshal(b, &prev) == nil && prev.ID == s.Key.ID {
			s.Key.NotBefore, s.Key.Seal = prev.NotBefore, prev.Seal
			return s, nil
		}
	}
	b, _ := json.MarshalIndent(s.Key, "", "  ")
	if err := writeAtomic(pubPath, append(b, '\n'), 0o600); err != nil {
		return nil, fmt.Errorf("signing key: %w", err)
	}
	return s, nil
}

// SignerFromSeed makes the signer of owner ("orchestrator" or a system)
// from the hex of a 32-byte ed25519 seed, as kept in a key file or handed
// in by a secret store; its key is valid from notBefore.
func SignerFromSeed(seedHex, owner string, notBefore time.Time) (*Signer, error) {
	raw, err := hex.DecodeString(strings.TrimSpace(seedHex))
	if err != nil || len(raw) != ed25519.SeedSize {
		return nil, fmt.Errorf("not the hex of a %d-byte ed25519 seed", ed25519.SeedSize)
	}
	priv := ed25519.NewKeyFromSeed(raw)
	pub := priv.Public().(ed25519.PublicKey)
	s := &Signer{priv: priv, Key: Key{ID: KeyID(owner, pub), Role: RoleConnector, System: owner, Public: pub, NotBefore: notBefore.UTC().Truncate(time.Second)}}
	if owner == RoleOrchestrator {
		s.Key.Role, s.Key.System = RoleOrchestrator, ""
	}
	return s, nil
}

// SigningKeyEnv names the environment variable that may hold a service's
// signing key (the hex of its seed) in production, instead of a file.
const SigningKeyEnv = "LETHE_SIGNING_KEY"

// LoadSigner is the signer of owner: from $LETHE_SIGNING_KEY if set (its
// validity starting at notBefore, which an operator registers with it),
// else from the key file at path, created on first use.
func LoadSigner(path, owner string, notBefore time.Time) (*Signer, error) {
	if v := os.Getenv(SigningKeyEnv); v != "" {
		s, err := SignerFromSeed(v, owner, notBefore)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", SigningKeyEnv, err)
		}
		return s, nil
	}
	return LoadOrCreateSigner(path, owner, notBefore)
}

// ReadPublicKey reads the public entry LoadOrCreateSigner wrote.
func ReadPublicKey(path string) (Key, error) {
	var k Key
	b, err := os.ReadFile(path)
	if err != nil {
		return k, fmt.Errorf("public key: %w", err)
	}
	if err := json.Unmarshal(b, &k); err != nil {
		return k, fmt.Errorf("public key %s: %w", path, err)
	}
	return k, KeySet{Keys: []Key{k}}.Validate()
}

// writeAtomic writes path by a rename, with mode. A folder it makes is 0700;
// one that exists is left as it is (a keys file's may be an operator's).
func writeAtomic(path string, b []byte, mode os.FileMode) error {
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		return err
	}
	tmp, err := os.CreateTemp(filepath.Dir(path), "."+filepath.Base(path)+"-*")
	if err != nil {
		return err
	}
	defer os.Remove(tmp.Name())
	if _, err := tmp.Write(b); err != nil {
		tmp.Close()
		return err
	}
	if err := errors.Join(tmp.Chmod(mode), tmp.Sync(), tmp.Close()); err != nil {
		return err
	}
	return os.Rename(tmp.Name(), path)
}
