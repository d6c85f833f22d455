package witness

import (
	"crypto/ed25519"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/binary"
	"errors"
	"fmt"
	"strings"
	"testing"

	"filippo.io/torchwood"
	"github.com/lethe-dev/lethe/pkg/proof"
	"golang.org/x/mod/sumdb/note"
)

const testOrigin = "lethe.example/demo"

// testLog is a log's signing key. (services/witness's tests have a fuller
// one, over real Merkle trees: these tests need signed checkpoints only.)
type testLog struct {
	origin string
	signer note.Signer
	vkey   string
}

func newLog(t testing.TB, origin string) testLog {
	skey, vkey, err := note.GenerateKey(rand.Reader, origin)
	if err != nil {
		t.Fatal(err)
	}
	s, err := note.NewSigner(skey)
	if err != nil {
		t.Fatal(err)
	}
	return testLog{origin: origin, signer: s, vkey: vkey}
}

// checkpoint is the log's signed checkpoint at size of a history named
// history: two names are two different trees, whose root hashes differ.
func (l testLog) checkpoint(t testing.TB, history string, size int64) []byte {
	root := sha256.Sum256(fmt.Appendf(nil, "%s %d", history, size))
	text := fmt.Sprintf("%s\n%d\n%s\ntime 2026-12-01T10:00:00Z\n", l.origin, size, base64.StdEncoding.EncodeToString(root[:]))
	b, err := note.Sign(&note.Note{Text: text}, l.signer)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func newCosigner(t testing.TB, name string) *torchwood.CosignatureSigner {
	_, priv, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	return cosignerOf(t, name, priv)
}

func cosignerOf(t testing.TB, name string, priv ed25519.PrivateKey) *torchwood.CosignatureSigner {
	s, err := torchwood.NewCosignatureSigner(name, priv)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// plainSigner signs notes with priv under name as an ordinary signed-note
// ed25519 key (type 0x01), not as a cosigner.
func plainSigner(t testing.TB, name string, priv ed25519.PrivateKey) note.Signer {
	vkey, err := note.NewEd25519VerifierKey(name, priv.Public().(ed25519.PublicKey))
	if err != nil {
		t.Fatal(err)
	}
	parts := strings.Split(vkey, "+")
	skey := "PRIVATE+KEY+" + name + "+" + parts[1] + "+" + base64.StdEncoding.EncodeToString(append([]byte{0x01}, priv.Seed()...))
	s, err := note.NewSigner(skey)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// cosign returns s's signature line over the checkpoint note cp.
func cosign(t testing.TB, s note.Signer, cp []byte) []byte {
	_, err := note.Open(cp, note.VerifierList()) // the text, whatever signed it
	unverified, ok := errors.AsType[*note.UnverifiedNoteError](err)
	if !ok {
		t.Fatalf("open: %v", err)
	}
	text := unverified.Note.Text
	signed, err := note.Sign(&note.Note{Text: text}, s)
	if err != nil {
		t.Fatal(err)
	}
	return signed[len(text)+1:]
}

// cosignAt makes, by hand as C2SP tlog-cosignature describes it, the
// cosignature line of the witness name with key priv over the checkpoint
// note cp, at the Unix time ts: torchwood's signer signs at time.Now only.
func cosignAt(t testing.TB, name string, priv ed25519.PrivateKey, ts uint64, cp []byte) []byte {
	text, _, ok := proof.SplitNote(cp)
	if !ok {
		t.Fatalf("checkpoint %q has no signatures", cp)
	}
	hash := cosignerOf(t, name, priv).KeyHash()
	sig := binary.BigEndian.AppendUint32(nil, hash)
	sig = binary.BigEndian.AppendUint64(sig, ts)
	sig = append(sig, ed25519.Sign(priv, fmt.Appendf(nil, "cosignature/v1\ntime %d\n%s", ts, text))...)
	return fmt.Appendf(nil, "— %s %s\n", name, base64.StdEncoding.EncodeToString(sig))
}
