package proof

import (
	"crypto/ecdh"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"time"

	"golang.org/x/crypto/blake2b"
	"golang.org/x/crypto/curve25519"
	"golang.org/x/crypto/nacl/box"
	"golang.org/x/crypto/nacl/secretbox"
	"golang.org/x/crypto/salsa20/salsa"
	"google.golang.org/protobuf/proto"

	lethev1 "github.com/lethe-dev/lethe/pkg/gen/lethe/v1"
)

// A task's subject identifiers travel sealed to the connector that acts on
// them (NaCl box, X25519 + XSalsa20-Poly1305, anonymous sender: the task's
// signature already says who sent it): a broker's disk, a Kafka topic or a
// subscriber with read rights holds no readable identifier. Each connector
// keeps a sealing key beside its signing key; its public half is in the
// connector's entry of the keys file (seal_key).

// SealKey is a connector's X25519 key pair.
type SealKey struct {
	Public, private *[32]byte
	// opener is the private key as crypto/ecdh holds it, made once: NaCl
	// box derives the public half again on every open, a second scalar
	// multiplication each time.
	opener     *ecdh.PrivateKey
	openerOnce sync.Once
}

// ErrNoSealKey is returned when a system has no sealing key registered.
var ErrNoSealKey = errors.New("no sealing key registered for the system")

// SealKeyEnv names the environment variable that may hold a service's
// sealing key (the hex of its 32-byte X25519 private key) in production,
// instead of a file, as SigningKeyEnv does its signing key.
const SealKeyEnv = "LETHE_SEAL_KEY"

// LoadOrCreateSealKey is the sealing key from $LETHE_SEAL_KEY if set, else
// the one at path (the hex of its 32-byte private key), created (0600) on
// first use.
func LoadOrCreateSealKey(path string) (*SealKey, error) {
	if v := os.Getenv(SealKeyEnv); v != "" {
		k, err := parseSealKey(v)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", SealKeyEnv, err)
		}
		return k, nil
	}
	b, err := os.ReadFile(path)
	if errors.Is(err, fs.ErrNotExist) {
		pub, priv, err := box.GenerateKey(rand.Reader)
		if err != nil {
			return nil, fmt.Errorf("sealing key: %w", err)
		}
		if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
			return nil, fmt.Errorf("sealing key: %w", err)
		}
		if err := writeAtomic(path, []byte(hex.EncodeToString(priv[:])+"\n"), 0o600); err != nil {
			return nil, fmt.Errorf("sealing key: %w", err)
		}
		return &SealKey{Public: pub, private: priv}, nil
	}
	if err != nil {
		return nil, fmt.Errorf("sealing key: %w", err)
	}
	k, err := parseSealKey(string(b))
	if err != nil {
		return nil, fmt.Errorf("sealing key %s: %w", path, err)
	}
	return k, nil
}

func parseSealKey(hexKey string) (*SealKey, error) {
	raw, err := hex.DecodeString(strings.TrimSpace(hexKey))
	if err != nil || len(raw) != 32 {
		return nil, errors.New("not the hex of a 32-byte X25519 key")
	}
	var priv [32]byte
	copy(priv[:], raw)
	pub, err := keyPair(&priv)
	if err != nil {
		return nil, err
	}
	return &SealKey{Public: pub, private: &priv}, nil
}

// keyPair derives the public half of an X25519 private key.
func keyPair(priv *[32]byte) (*[32]byte, error) {
	b, err := curve25519.X25519(priv[:], curve25519.Basepoint)
	if err != nil {
		return nil, fmt.Errorf("sealing key: %w", err)
	}
	var pub [32]byte
	copy(pub[:], b)
	return &pub, nil
}

// AttachSealKey records the connector's sealing key in its public entry
// (the .pub file beside its signing key), which the keys file takes with
// `lethectl keys add`.
func AttachSealKey(pubPath string, k *Key, seal *SealKey) error {
	if slices.Equal(k.Seal, seal.Public[:]) {
		return nil
	}
	k.Seal = slices.Clone(seal.Public[:])
	b, _ := json.MarshalIndent(k, "", "  ")
	return writeAtomic(pubPath, append(b, '\n'), 0o600)
}

// SealingKeyIn loads (creating it on first use) the sealing key kept in
// dir/seal.key beside the signer's key, and records it in the signer's
// public entry, dir/signing.key.pub.
func SealingKeyIn(dir string, s *Signer) (*SealKey, error) {
	seal, err := LoadOrCreateSealKey(filepath.Join(dir, "seal.key"))
	if err != nil {
		return nil, err
	}
	if err := AttachSealKey(filepath.Join(dir, "signing.key.pub"), &s.Key, seal); err != nil {
		return nil, fmt.Errorf("signing key: %w", err)
	}
	return seal, nil
}

// SealKeyFor is the sealing key of system at t: that of its newest
// connector key valid at t that has one.
func (ks KeySet) SealKeyFor(system string, at time.Time) (*[32]byte, error) {
	return ks.sealKeyOf(RoleConnector, system, at)
}

// OrchestratorSealKey is the orchestrator's sealing key at t, which
// exports are sealed to.
func (ks KeySet) OrchestratorSealKey(at time.Time) (*[32]byte, error) {
	return ks.sealKeyOf(RoleOrchestrator, "", at)
}

func (ks KeySet) sealKeyOf(role, system string, at time.Time) (*[32]byte, error) {
	var best *Key
	for i, k := range ks.Keys {
		if k.Role == role && k.System == system && k.ValidAt(at) && len(k.Seal) == 32 &&
			(best == nil || k.NotBefore.After(best.NotBefore)) {
			best = &ks.Keys[i]
		}
	}
	if best == nil {
		if role == RoleOrchestrator {
			system = "the orchestrator"
		}
		return nil, fmt.Errorf("%w: %s (register its signing.key.pub with lethectl keys add)", ErrNoSealKey, system)
	}
	var pub [32]byte
	copy(pub[:], best.Seal)
	return &pub, nil
}

// Seal seals data to the holder of a sealing key: a task's subject to
// its connector, an export to the orchestrator. The format is NaCl's
// anonymous box (box.SealAnonymous: an ephemeral public key, then
// XSalsa20-Poly1305 under the key HSalsa20 derives from the X25519 shared
// secret, the nonce BLAKE2b-192 of both public keys), made here with two
// scalar multiplications where box.SealAnonymous takes three.
func Seal(to *[32]byte, data []byte) ([]byte, error) {
	s, err := NewSealer()
	if err != nil {
		return nil, err
	}
	return s.Seal(to, data)
}

// A Sealer seals to several recipients under one ephemeral key: one
// scalar multiplication per recipient, instead of two, for a request's
// subject sealed to each of its systems. Each envelope is still an
// anonymous box its recipient alone opens (the key and the nonce are
// the recipient's); what the shared ephemeral key tells, that the
// envelopes were made together, the tasks that carry them tell already
// (one request id). Use one Sealer per message set, never longer.
type Sealer struct{ eph *ecdh.PrivateKey }

// NewSealer makes a fresh ephemeral key.
func NewSealer() (*Sealer, error) {
	eph, err := ecdh.X25519().GenerateKey(rand.Reader)
	if err != nil {
		return nil, fmt.Errorf("seal: %w", err)
	}
	return &Sealer{eph: eph}, nil
}

// Seal seals data to the holder of the sealing key to.
func (s *Sealer) Seal(to *[32]byte, data []byte) ([]byte, error) {
	peer, err := ecdh.X25519().NewPublicKey(to[:])
	if err != nil {
		return nil, fmt.Errorf("seal: %w", err)
	}
	shared, err := s.eph.ECDH(peer)
	if err != nil {
		return nil, fmt.Errorf("seal: %w", err)
	}
	ephPub := s.eph.PublicKey().Bytes()
	key, nonce := boxKey(shared), sealNonce(ephPub, to[:])
	out := make([]byte, 0, box.AnonymousOverhead+len(data))
	return secretbox.Seal(append(out, ephPub...), data, &nonce, &key), nil
}

// SealSubject seals a subject to the holder of to, as [SealSubject].
func (s *Sealer) SealSubject(to *[32]byte, subject *lethev1.Subject) ([]byte, error) {
	b, err := proto.MarshalOptions{Deterministic: true}.Marshal(subject)
	if err != nil {
		return nil, err
	}
	return s.Seal(to, b)
}

// Open opens data sealed to k; ErrNotSealedToUs for anything else.
func (k *SealKey) Open(sealed []byte) ([]byte, error) {
	k.openerOnce.Do(func() { k.opener, _ = ecdh.X25519().NewPrivateKey(k.private[:]) })
	if k.opener == nil || len(sealed) < box.AnonymousOverhead {
		return nil, ErrNotSealedToUs
	}
	eph, err := ecdh.X25519().NewPublicKey(sealed[:32])
	if err != nil {
		return nil, ErrNotSealedToUs
	}
	shared, err := k.opener.ECDH(eph)
	if err != nil {
		return nil, ErrNotSealedToUs // a low-order point
	}
	key, nonce := boxKey(shared), sealNonce(sealed[:32], k.Public[:])
	b, ok := secretbox.Open(nil, sealed[32:], &nonce, &key)
	if !ok {
		return nil, ErrNotSealedToUs
	}
	return b, nil
}

// boxKey is NaCl box's key from an X25519 shared secret (box.Precompute).
func boxKey(shared []byte) [32]byte {
	var in, key [32]byte
	copy(in[:], shared)
	salsa.HSalsa20(&key, new([16]byte), &in, &salsa.Sigma)
	return key
}

// sealNonce is the nonce of an anonymous box: BLAKE2b-192 of the
// ephemeral public key and the recipient's.
func sealNonce(ephPub, to []byte) [24]byte {
	h, _ := blake2b.New(24, nil) // cannot fail for this size, without a key
	h.Write(ephPub)
	h.Write(to)
	var nonce [24]byte
	copy(nonce[:], h.Sum(nil))
	return nonce
}

// ErrNotSealedToUs is returned for data not sealed to the key, or changed.
var ErrNotSealedToUs = errors.New("not sealed to this key, or changed")

// SealSubject seals a subject to a connector's sealing key.
func SealSubject(to *[32]byte, s *lethev1.Subject) ([]byte, error) {
	sealer, err := NewSealer()
	if err != nil {
		return nil, err
	}
	return sealer.SealSubject(to, s)
}

// OpenSubject opens a subject sealed to k.
func (k *SealKey) OpenSubject(sealed []byte) (*lethev1.Subject, error) {
	b, err := k.Open(sealed)
	if err != nil {
		return nil, fmt.Errorf("the subject: %w", err)
	}
	s := &lethev1.Subject{}
	if err := proto.Unmarshal(b, s); err != nil {
		return nil, fmt.Errorf("sealed subject: %w", err)
	}
	return s, nil
}
