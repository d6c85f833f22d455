package proof

import (
	"bytes"
	"crypto/ed25519"
	"encoding/base64"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

	"golang.org/x/mod/sumdb/note"
	"golang.org/x/mod/sumdb/tlog"
)

// A checkpoint is a tree head in the C2SP tlog-checkpoint format: a
// signed note (C2SP signed-note) whose text is the log's origin, its
// size, its root hash in base64, and one extension line with the time
// Lethe signed it ("time <RFC 3339, UTC, milliseconds>"), which the
// keys file's validity windows are checked at. Generic transparency-log
// tooling (witnesses, monitors, mirrors) reads it as it is; witnesses
// add their cosignatures to it as further signature lines.
//
// The note is signed by the orchestrator's ed25519 key under the key
// name origin. Its signature is over the note text itself, as the
// signed-note format says, not over Lethe's domain-separated message:
// the two cannot be confused, since a note text holds no NUL byte and
// every domain-separated message does.

// ErrCheckpoint is a checkpoint that does not parse or whose signature
// is not an orchestrator key's.
var ErrCheckpoint = errors.New("bad checkpoint")

// timeExtension prefixes the checkpoint's extension line with its time.
const timeExtension = "time "

// SignCheckpoint signs a checkpoint of the log named origin at size and
// root, at t.
func SignCheckpoint(s *Signer, origin string, size int64, root tlog.Hash, t time.Time) ([]byte, error) {
	if err := CheckOrigin(origin); err != nil {
		return nil, err
	}
	text := fmt.Sprintf("%s\n%d\n%s\n%s%s\n", origin, size, base64.StdEncoding.EncodeToString(root[:]), timeExtension,
		t.UTC().Truncate(time.Millisecond).Format(time.RFC3339Nano))
	signer, err := noteSigner(s, origin)
	if err != nil {
		return nil, err
	}
	return note.Sign(&note.Note{Text: text}, signer)
}

// OpenCheckpoint verifies a checkpoint's signature by an orchestrator key
// of ks valid at the checkpoint's time, and returns its tree head (with
// no Signature: the note holds it). Signatures by other keys (witnesses'
// cosignatures) are left to CheckCosignatures.
func OpenCheckpoint(ks KeySet, msg []byte) (TreeHead, error) {
	origin, _, _ := strings.Cut(string(msg), "\n")
	var verifiers []note.Verifier
	keys := map[uint32]Key{}
	for _, k := range ks.Keys {
		if k.Role != RoleOrchestrator {
			continue
		}
		v, err := noteVerifier(origin, k.Public)
		if err != nil {
			return TreeHead{}, fmt.Errorf("%w: %w", ErrCheckpoint, err)
		}
		verifiers = append(verifiers, v)
		keys[v.KeyHash()] = k
	}
	n, err := note.Open(msg, note.VerifierList(verifiers...))
	if err != nil {
		return TreeHead{}, fmt.Errorf("%w: not signed by an orchestrator key of the keys file for log %q: %w", ErrCheckpoint, origin, err)
	}
	th, err := parseCheckpoint(n.Text)
	if err != nil {
		return TreeHead{}, err
	}
	k := keys[n.Sigs[0].Hash]
	if _, err := ks.For(k.ID, RoleOrchestrator, "", th.Time); err != nil {
		return TreeHead{}, fmt.Errorf("%w: %w", ErrCheckpoint, err)
	}
	th.KeyID = k.ID
	return th, nil
}

// SplitNote cuts a signed note into its text, which ends in a newline,
// and its signature lines. A note's text lines are never empty, so its
// last empty line starts its signatures, as note.Open reads it.
func SplitNote(msg []byte) (text, sigs []byte, ok bool) {
	i := bytes.LastIndex(msg, []byte("\n\n"))
	if i < 0 {
		return nil, nil, false
	}
	return msg[:i+1], msg[i+2:], true
}

// CheckpointOrigin is the origin line of a checkpoint.
func CheckpointOrigin(msg []byte) string {
	origin, _, _ := strings.Cut(string(msg), "\n")
	return origin
}

// parseCheckpoint reads a checkpoint's text: exactly origin, size, root
// and the time extension.
func parseCheckpoint(text string) (TreeHead, error) {
	lines := strings.Split(strings.TrimSuffix(text, "\n"), "\n")
	if len(lines) != 4 || !strings.HasSuffix(text, "\n") {
		return TreeHead{}, fmt.Errorf("%w: want 4 lines (origin, size, root hash, time), got %d", ErrCheckpoint, len(lines))
	}
	size, err := strconv.ParseInt(lines[1], 10, 64)
	if err != nil || size < 0 || strconv.FormatInt(size, 10) != lines[1] {
		return TreeHead{}, fmt.Errorf("%w: size %q is not a decimal number", ErrCheckpoint, lines[1])
	}
	raw, err := base64.StdEncoding.Strict().DecodeString(lines[2])
	if err != nil || len(raw) != tlog.HashSize || base64.StdEncoding.EncodeToString(raw) != lines[2] {
		return TreeHead{}, fmt.Errorf("%w: root hash %q is not 32 bytes in canonical base64", ErrCheckpoint, lines[2])
	}
	at, ok := strings.CutPrefix(lines[3], timeExtension)
	t, err := time.Parse(time.RFC3339Nano, at)
	if !ok || err != nil || t.Location() != time.UTC || t.UTC().Truncate(time.Millisecond).Format(time.RFC3339Nano) != at {
		return TreeHead{}, fmt.Errorf("%w: the extension line %q is not \"time\" and an RFC 3339 UTC time", ErrCheckpoint, lines[3])
	}
	var root tlog.Hash
	copy(root[:], raw)
	return TreeHead{Size: size, Root: root, Time: t}, nil
}

// CheckOrigin refuses an origin a checkpoint cannot carry: it is the
// note's first line and its key name.
func CheckOrigin(origin string) error {
	if origin == "" || strings.ContainsAny(origin, "\n+ ") || !isPrint(origin) {
		return fmt.Errorf("%w: the log origin %q must be one line of printable characters without spaces or '+'", ErrCheckpoint, origin)
	}
	return nil
}

func isPrint(s string) bool {
	for _, r := range s {
		if r < 0x21 || r == 0x7f {
			return false
		}
	}
	return true
}

// NoteVerifierKey is the verifier key (C2SP signed-note: name+hash+key)
// of the orchestrator's public key for the log named origin, which
// generic tooling checks the checkpoints with.
func NoteVerifierKey(origin string, pub ed25519.PublicKey) (string, error) {
	return note.NewEd25519VerifierKey(origin, pub)
}

func noteVerifier(origin string, pub ed25519.PublicKey) (note.Verifier, error) {
	vkey, err := NoteVerifierKey(origin, pub)
	if err != nil {
		return nil, err
	}
	return note.NewVerifier(vkey)
}

// noteSigner signs notes with s's key under the key name origin.
func noteSigner(s *Signer, origin string) (note.Signer, error) {
	v, err := noteVerifier(origin, s.Key.Public)
	if err != nil {
		return nil, err
	}
	return keySigner{name: origin, hash: v.KeyHash(), priv: s.priv}, nil
}

type keySigner struct {
	name string
	hash uint32
	priv ed25519.PrivateKey
}

func (k keySigner) Name() string                    { return k.name }
func (k keySigner) KeyHash() uint32                 { return k.hash }
func (k keySigner) Sign(msg []byte) ([]byte, error) { return ed25519.Sign(k.priv, msg), nil }
