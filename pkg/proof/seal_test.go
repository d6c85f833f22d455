package proof_test

import (
	"bytes"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	lethev1 "github.com/lethe-dev/lethe/pkg/gen/lethe/v1"
	"github.com/lethe-dev/lethe/pkg/proof"
	"golang.org/x/crypto/nacl/box"
)

// A subject sealed to a connector's key opens with that key only, holds
// no readable identifier, and the key survives a reload from its file.
func TestSealedSubject(t *testing.T) {
	dir := t.TempDir()
	alpha, err := proof.LoadOrCreateSealKey(filepath.Join(dir, "alpha.seal"))
	if err != nil {
		t.Fatal(err)
	}
	again, err := proof.LoadOrCreateSealKey(filepath.Join(dir, "alpha.seal"))
	if err != nil || *again.Public != *alpha.Public {
		t.Fatalf("the sealing key changed on reload: %v", err)
	}
	beta, err := proof.LoadOrCreateSealKey(filepath.Join(dir, "beta.seal"))
	if err != nil {
		t.Fatal(err)
	}
	subject := &lethev1.Subject{Email: "person-0001@example.com", UserId: "user-0001"}
	sealed, err := proof.SealSubject(alpha.Public, subject)
	if err != nil {
		t.Fatal(err)
	}
	if strings.Contains(string(sealed), "person-0001") || strings.Contains(string(sealed), "user-0001") {
		t.Fatal("the sealed subject is readable")
	}
	got, err := again.OpenSubject(sealed)
	if err != nil || got.GetEmail() != subject.GetEmail() || got.GetUserId() != subject.GetUserId() {
		t.Fatalf("open = %v, %v", got, err)
	}
	if _, err := beta.OpenSubject(sealed); err == nil {
		t.Fatal("another connector's key opened the subject")
	}
	sealed[len(sealed)-1] ^= 1
	if _, err := alpha.OpenSubject(sealed); err == nil {
		t.Fatal("a changed sealed subject opened")
	}
}

// SealKeyFor picks the newest valid key of the system that has a sealing
// key, and says when there is none.
func TestSealKeyFor(t *testing.T) {
	now := time.Date(2026, 6, 1, 0, 0, 0, 0, time.UTC)
	old, fresh := [32]byte{1}, [32]byte{2}
	retired := now.Add(-time.Hour)
	ks := proof.KeySet{Keys: []proof.Key{
		{ID: "a1", Role: proof.RoleConnector, System: "alpha", NotBefore: now.AddDate(-1, 0, 0), Seal: old[:]},
		{ID: "a2", Role: proof.RoleConnector, System: "alpha", NotBefore: now.AddDate(0, -1, 0), Seal: fresh[:]},
		{ID: "a3", Role: proof.RoleConnector, System: "alpha", NotBefore: now.AddDate(0, 0, -1)}, // no sealing key
		{ID: "b1", Role: proof.RoleConnector, System: "beta", NotBefore: now.AddDate(-1, 0, 0), NotAfter: &retired, Seal: old[:]},
	}}
	if k, err := ks.SealKeyFor("alpha", now); err != nil || *k != fresh {
		t.Errorf("alpha: %v %v", k, err)
	}
	for _, sys := range []string{"beta", "gamma"} {
		if _, err := ks.SealKeyFor(sys, now); !errors.Is(err, proof.ErrNoSealKey) {
			t.Errorf("%s: %v, want ErrNoSealKey", sys, err)
		}
	}
}

// In production the sealing key may come from the environment, as the
// signing key does; it is the same key as in a file with that content.
func TestSealKeyFromEnvironment(t *testing.T) {
	file, err := proof.LoadOrCreateSealKey(filepath.Join(t.TempDir(), "seal.key"))
	if err != nil {
		t.Fatal(err)
	}
	t.Setenv(proof.SealKeyEnv, "zz")
	if _, err := proof.LoadOrCreateSealKey(filepath.Join(t.TempDir(), "unused")); err == nil {
		t.Error("a malformed key was taken")
	}
	priv := strings.Repeat("4a", 32)
	t.Setenv(proof.SealKeyEnv, priv)
	k, err := proof.LoadOrCreateSealKey(filepath.Join(t.TempDir(), "unused"))
	if err != nil {
		t.Fatal(err)
	}
	sealed, _ := proof.Seal(k.Public, []byte("x"))
	if _, err := file.Open(sealed); err == nil {
		t.Error("another key opened it")
	}
	if b, err := k.Open(sealed); err != nil || string(b) != "x" {
		t.Errorf("open = %q %v", b, err)
	}
}

// A service restarted keeps its public entry as it is: the signer read
// again carries the sealing key the entry holds, so the entry (which may
// be a read-only mount) is not written again.
func TestPublicEntryKeptOnRestart(t *testing.T) {
	dir := t.TempDir()
	s, err := proof.LoadOrCreateSigner(filepath.Join(dir, "signing.key"), "alpha", time.Now())
	if err != nil {
		t.Fatal(err)
	}
	seal, err := proof.SealingKeyIn(dir, s)
	if err != nil {
		t.Fatal(err)
	}
	pub := filepath.Join(dir, "signing.key.pub")
	before, err := os.Stat(pub)
	if err != nil {
		t.Fatal(err)
	}
	again, err := proof.LoadOrCreateSigner(filepath.Join(dir, "signing.key"), "alpha", time.Now())
	if err != nil {
		t.Fatal(err)
	}
	if len(again.Key.Seal) != 32 || [32]byte(again.Key.Seal) != *seal.Public {
		t.Fatal("the signer read again lost its sealing key")
	}
	if _, err := proof.SealingKeyIn(dir, again); err != nil {
		t.Fatal(err)
	}
	after, err := os.Stat(pub)
	if err != nil || !os.SameFile(before, after) {
		t.Fatal("the restart wrote the public entry again (a read-only mount would fail)")
	}
}

// Seal and Open speak NaCl's anonymous box exactly: what one seals, the
// other opens, both ways, so sealed data stored by an earlier version (or
// made by another NaCl implementation) still opens.
func TestSealIsNaClAnonymousBox(t *testing.T) {
	pub, priv, err := box.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	t.Setenv(proof.SealKeyEnv, hex.EncodeToString(priv[:]))
	k, err := proof.LoadOrCreateSealKey(filepath.Join(t.TempDir(), "unused.seal"))
	if err != nil || *k.Public != *pub {
		t.Fatalf("key from the environment: %v", err)
	}
	for _, msg := range [][]byte{nil, []byte("x"), []byte(strings.Repeat("person-0001@example.com ", 100))} {
		byNaCl, err := box.SealAnonymous(nil, msg, pub, rand.Reader)
		if err != nil {
			t.Fatal(err)
		}
		if got, err := k.Open(byNaCl); err != nil || !bytes.Equal(got, msg) {
			t.Errorf("Open of box.SealAnonymous's (%d bytes) = %q, %v", len(msg), got, err)
		}
		ours, err := proof.Seal(pub, msg)
		if err != nil {
			t.Fatal(err)
		}
		if got, ok := box.OpenAnonymous(nil, ours, pub, priv); !ok || !bytes.Equal(got, msg) {
			t.Errorf("box.OpenAnonymous of Seal's (%d bytes) failed", len(msg))
		}
	}
	for _, bad := range [][]byte{nil, make([]byte, box.AnonymousOverhead-1), make([]byte, box.AnonymousOverhead)} {
		if _, err := k.Open(bad); !errors.Is(err, proof.ErrNotSealedToUs) {
			t.Errorf("Open of %d bytes: %v, want ErrNotSealedToUs", len(bad), err)
		}
	}
}

// One Sealer's envelopes, to several recipients, are each an anonymous
// box its recipient alone opens.
func TestSealerToSeveral(t *testing.T) {
	sealer, err := proof.NewSealer()
	if err != nil {
		t.Fatal(err)
	}
	subject := &lethev1.Subject{Email: "person-0001@example.com"}
	type recipient struct {
		pub, priv *[32]byte
		sealed    []byte
	}
	var rs []recipient
	for range 3 {
		pub, priv, err := box.GenerateKey(rand.Reader)
		if err != nil {
			t.Fatal(err)
		}
		sealed, err := sealer.SealSubject(pub, subject)
		if err != nil {
			t.Fatal(err)
		}
		rs = append(rs, recipient{pub, priv, sealed})
	}
	for i, r := range rs {
		for j, o := range rs {
			_, ok := box.OpenAnonymous(nil, o.sealed, r.pub, r.priv)
			if ok != (i == j) {
				t.Errorf("recipient %d opening envelope %d: %v", i, j, ok)
			}
		}
		if i > 0 && bytes.Equal(r.sealed[32:], rs[0].sealed[32:]) {
			t.Errorf("envelopes %d and 0 share their ciphertext", i)
		}
	}
}
