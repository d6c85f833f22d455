package witness

import (
	"bytes"
	"crypto"
	"crypto/ed25519"
	"encoding/base64"
	"errors"
	"fmt"
	"io"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/lethe-dev/lethe/pkg/proof"

	"filippo.io/torchwood"
	"golang.org/x/mod/sumdb/note"
)

// algCosignatureV1 is the signature type byte of an ed25519 cosignature/v1
// key in a vkey and in its key hash (C2SP tlog-cosignature).
const algCosignatureV1 = 0x04

// ErrVerifierKey is a verifier key that does not parse.
var ErrVerifierKey = errors.New("malformed witness verifier key")

// NewVerifier parses a witness's verifier key: a C2SP signed-note vkey
// "<name>+<key hash, 8 hex digits>+<base64 of 0x04 || ed25519 public key>"
// (the cosignature/v1 signature type). The verifier checks cosignatures
// (note.Open with it, [VerifyCosignature] or [Cosignatures]);
// golang.org/x/mod's note.NewVerifier knows only plain ed25519 keys
// (type 0x01).
func NewVerifier(vkey string) (*torchwood.CosignatureVerifier, error) {
	name, rest, ok1 := strings.Cut(strings.TrimSpace(vkey), "+")
	hash16, key64, ok2 := strings.Cut(rest, "+")
	hash, err1 := strconv.ParseUint(hash16, 16, 32)
	key, err2 := base64.StdEncoding.DecodeString(key64)
	if !ok1 || !ok2 || len(hash16) != 8 || err1 != nil || err2 != nil ||
		len(key) != 1+ed25519.PublicKeySize || key[0] != algCosignatureV1 {
		return nil, ErrVerifierKey
	}
	// torchwood makes its cosignature verifier only from a signer; one
	// that holds the public key alone never signs.
	s, err := torchwood.NewCosignatureSigner(name, publicOnly(key[1:]))
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrVerifierKey, err)
	}
	v := s.Verifier()
	if v.KeyHash() != uint32(hash) {
		return nil, fmt.Errorf("%w: key hash does not match name and key", ErrVerifierKey)
	}
	return v, nil
}

// publicOnly is a crypto.Signer with only a public key.
type publicOnly ed25519.PublicKey

func (k publicOnly) Public() crypto.PublicKey { return ed25519.PublicKey(k) }

func (publicOnly) Sign(io.Reader, []byte, crypto.SignerOpts) ([]byte, error) {
	return nil, errors.New("a verifier key cannot sign")
}

// Errors of [VerifyCosignature] and [Cosignatures].
var (
	ErrMalformedCosignature = errors.New("malformed cosignature line")
	ErrBadCosignature       = errors.New("cosignature does not verify")
	// ErrMalformedCheckpoint is a checkpoint note whose signature lines
	// do not parse ([Cosignatures] only).
	ErrMalformedCheckpoint = errors.New("malformed signed checkpoint note")
)

// VerifyCosignature checks that line, a note signature line
// ("— <name> <base64>\n", as [Client.AddCheckpoint] returns it), is the
// cosignature/v1 of the witness v over checkpoint (the checkpoint note,
// with or without its signatures, which are ignored) and returns when the
// witness made it. v is a cosignature verifier, never a plain signed-note
// one: a plain ed25519 signature carries no time.
func VerifyCosignature(v *torchwood.CosignatureVerifier, checkpoint, line []byte) (time.Time, error) {
	sig, err := parseSignatureLine(line)
	if err != nil {
		return time.Time{}, err
	}
	if sig.Name != v.Name() || sig.Hash != v.KeyHash() {
		return time.Time{}, fmt.Errorf("%w: signed by %s, not by witness %s", ErrBadCosignature, sig.Name, v.Name())
	}
	// The signatures checkpoint carries are dropped: note.Open would
	// check only the first of two by one key.
	text, _, ok := proof.SplitNote(checkpoint)
	if !ok {
		text = checkpoint
	}
	return verifyLine(v, text, line, sig)
}

// Cosignature is a witness's cosignature that [Cosignatures] found valid.
type Cosignature struct {
	// Verifier is the witness key, one of those Cosignatures was given,
	// that made it; Verifier.Name() names the witness.
	Verifier *torchwood.CosignatureVerifier
	// Time is when the witness cosigned, as its cosignature says.
	Time time.Time
}

// Cosignatures returns which of the witness keys vs cosigned checkpoint:
// a signed checkpoint note as a certificate carries it, the log's
// signature line and witnesses' cosignature lines after its text, in any
// order. It is what lethectl verify --witness and the orchestrator's
// quorum check ask: the entries are in the order of vs, one per key that
// cosigned (the earliest, if it did twice), and a key that did not is
// absent; how many are required is the caller's to decide. A witness
// given with two keys (a rotation) may appear twice: count names, not
// entries, when the quorum is of witnesses. Keys of vs given twice count
// once.
//
// Only the cosignatures are checked, not the log's signature: check that
// with the log's keys (pkg/proof's OpenCheckpoint). Lines by other keys,
// the log's, or witnesses not in vs, are skipped. But a line by a key of
// vs that does not verify is an error wrapping [ErrBadCosignature], as
// note.Open has it, not a witness fewer: the note was altered or made up,
// and whoever checks it should learn so. A note whose signature lines do
// not parse is [ErrMalformedCheckpoint].
func Cosignatures(vs []*torchwood.CosignatureVerifier, checkpoint []byte) ([]Cosignature, error) {
	text, sigs, ok := proof.SplitNote(checkpoint)
	if !ok || len(sigs) == 0 {
		return nil, fmt.Errorf("%w: no signature lines after an empty line", ErrMalformedCheckpoint)
	}
	var keys []*torchwood.CosignatureVerifier
	for _, v := range vs {
		if !slices.ContainsFunc(keys, func(k *torchwood.CosignatureVerifier) bool { return k.String() == v.String() }) {
			keys = append(keys, v)
		}
	}
	found := make([]*Cosignature, len(keys))
	for line := range bytes.Lines(sigs) {
		sig, err := parseSignatureLine(line)
		if err != nil {
			return nil, fmt.Errorf("%w: %w", ErrMalformedCheckpoint, err)
		}
		// Two keys may share a name and a key hash (a 32-bit hash): the
		// line is valid if one of them verifies it.
		var bad error
		for i, v := range keys {
			if sig.Name != v.Name() || sig.Hash != v.KeyHash() {
				continue
			}
			at, err := verifyLine(v, text, line, sig)
			if err != nil {
				bad = fmt.Errorf("witness %s: %w", v.Name(), err)
				continue
			}
			if found[i] == nil || at.Before(found[i].Time) {
				found[i] = &Cosignature{Verifier: v, Time: at}
			}
			bad = nil
			break
		}
		if bad != nil {
			return nil, bad
		}
	}
	var out []Cosignature
	for _, c := range found {
		if c != nil {
			out = append(out, *c)
		}
	}
	return out, nil
}

// verifyLine checks line, whose parse is sig and whose name and key hash
// are v's, as v's cosignature over the note text, and returns its time.
func verifyLine(v *torchwood.CosignatureVerifier, text, line []byte, sig note.Signature) (time.Time, error) {
	msg := append(append(bytes.Clone(text), '\n'), line...)
	n, err := note.Open(msg, note.VerifierList(v))
	if err != nil {
		return time.Time{}, fmt.Errorf("%w: %w", ErrBadCosignature, err)
	}
	if len(n.Sigs) != 1 || n.Sigs[0] != sig {
		return time.Time{}, ErrBadCosignature
	}
	ts, err := torchwood.CosignatureTimestamp(sig)
	if err != nil {
		return time.Time{}, fmt.Errorf("%w: %w", ErrMalformedCosignature, err)
	}
	return time.Unix(ts, 0).UTC(), nil
}

// parseSignatureLine reads one note signature line and the key hash that
// starts its signature.
func parseSignatureLine(line []byte) (note.Signature, error) {
	s, ok := strings.CutPrefix(string(line), "— ")
	s, ok2 := strings.CutSuffix(s, "\n")
	name, b64, ok3 := strings.Cut(s, " ")
	raw, err := base64.StdEncoding.DecodeString(b64)
	if !ok || !ok2 || !ok3 || strings.ContainsAny(s, "\n") || name == "" || err != nil || len(raw) < 4 {
		return note.Signature{}, ErrMalformedCosignature
	}
	hash := uint32(raw[0])<<24 | uint32(raw[1])<<16 | uint32(raw[2])<<8 | uint32(raw[3])
	return note.Signature{Name: name, Hash: hash, Base64: b64}, nil
}

// Quorum is how many witnesses a check requires by default: all those
// given, counted as cosignatures are, by name (a witness's rotated keys
// are one witness).
func Quorum(vs []*torchwood.CosignatureVerifier) int {
	names := map[string]bool{}
	for _, v := range vs {
		names[v.Name()] = true
	}
	return len(names)
}

// CheckWitnessed checks that at least quorum of the witnesses vs, counted
// by name, cosigned checkpoint (a signed note): what `lethectl verify
// --witness` requires of a certificate's checkpoint. The log's own
// signature is not checked here (proof.OpenCheckpoint does).
func CheckWitnessed(checkpoint []byte, vs []*torchwood.CosignatureVerifier, quorum int) error {
	cosigs, err := Cosignatures(vs, checkpoint)
	if err != nil {
		return fmt.Errorf("witnesses: %w", err)
	}
	names := map[string]bool{}
	for _, cs := range cosigs {
		names[cs.Verifier.Name()] = true
	}
	if len(names) < quorum {
		return fmt.Errorf("witnesses: the checkpoint is cosigned by %d of the witnesses given, %d required", len(names), quorum)
	}
	return nil
}
