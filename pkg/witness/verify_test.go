package witness

import (
	"bytes"
	"crypto/ed25519"
	"crypto/rand"
	"encoding/base64"
	"encoding/binary"
	"errors"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"filippo.io/torchwood"
	"golang.org/x/mod/sumdb/note"
)

func TestNewVerifier(t *testing.T) {
	s := newCosigner(t, "witness.example.org/w1")
	good := s.Verifier().String()
	name, rest, _ := strings.Cut(good, "+")
	hash, key, _ := strings.Cut(rest, "+")
	raw, _ := base64.StdEncoding.DecodeString(key)
	plain := append([]byte{0x01}, raw[1:]...) // an ordinary signed-note key

	v, err := NewVerifier(good + "\n")
	if err != nil || v.Name() != name || v.KeyHash() != s.KeyHash() || v.String() != good {
		t.Fatalf("NewVerifier(%q) = %v, %v", good, v, err)
	}
	for _, bad := range []string{
		"",
		name,
		name + "+" + hash,
		name + "+zzzzzzzz+" + key,
		name + "+0000000+" + key,
		"other.example/w+" + hash + "+" + key, // hash of another name
		name + "+" + hash + "+" + base64.StdEncoding.EncodeToString(plain),
		name + "+" + hash + "+" + base64.StdEncoding.EncodeToString(raw[:20]),
		"with space+" + hash + "+" + key,
	} {
		if _, err := NewVerifier(bad); !errors.Is(err, ErrVerifierKey) {
			t.Errorf("NewVerifier(%q) = %v, want ErrVerifierKey", bad, err)
		}
	}
}

// A cosignature made by hand from the C2SP text verifies, with its time:
// the format is the spec's, not only torchwood's.
func TestVerifyCosignatureByTheSpec(t *testing.T) {
	cp := newLog(t, testOrigin).checkpoint(t, "honest", 5)
	_, priv, _ := ed25519.GenerateKey(rand.Reader)
	v := cosignerOf(t, "witness.example.org/w1", priv).Verifier()
	at, err := VerifyCosignature(v, cp, cosignAt(t, "witness.example.org/w1", priv, 1796119200, cp))
	if want := time.Date(2026, 12, 1, 10, 0, 0, 0, time.UTC); err != nil || !at.Equal(want) {
		t.Fatalf("= %v, %v; want %v", at, err, want)
	}
}

func TestVerifyCosignature(t *testing.T) {
	lg := newLog(t, testOrigin)
	cp := lg.checkpoint(t, "honest", 5)
	_, priv, _ := ed25519.GenerateKey(rand.Reader)
	w1, w2 := cosignerOf(t, "witness.example.org/w1", priv), newCosigner(t, "witness.example.org/w2")
	line := cosign(t, w1, cp)
	text, _, _ := bytes.Cut(cp, []byte("\n\n"))
	text = append(text, '\n')
	other := lg.checkpoint(t, "other", 5)

	for _, tc := range []struct {
		name       string
		v          *torchwood.CosignatureVerifier
		checkpoint []byte
		line       []byte
		want       error
	}{
		{"signed checkpoint", w1.Verifier(), cp, line, nil},
		{"checkpoint text alone", w1.Verifier(), text, line, nil},
		{"checkpoint already carrying the cosignature", w1.Verifier(), append(bytes.Clone(cp), line...), line, nil},
		{"another witness's key", w2.Verifier(), cp, line, ErrBadCosignature},
		{"another checkpoint", w1.Verifier(), other, line, ErrBadCosignature},
		{"a plain signed-note signature by the same name and key is no cosignature", w1.Verifier(), cp,
			cosign(t, plainSigner(t, "witness.example.org/w1", priv), cp), ErrBadCosignature},
		{"no line end", w1.Verifier(), cp, bytes.TrimSuffix(line, []byte("\n")), ErrMalformedCosignature},
		{"two lines", w1.Verifier(), cp, append(bytes.Clone(line), line...), ErrMalformedCosignature},
		{"not base64", w1.Verifier(), cp, []byte("— witness.example.org/w1 !!!\n"), ErrMalformedCosignature},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := VerifyCosignature(tc.v, tc.checkpoint, tc.line)
			if tc.want == nil && err != nil || !errors.Is(err, tc.want) {
				t.Fatalf("err = %v, want %v", err, tc.want)
			}
		})
	}
}

// Cosignatures says which of the witnesses a verifier trusts cosigned a
// checkpoint as a certificate carries it.
func TestCosignatures(t *testing.T) {
	lg := newLog(t, testOrigin)
	cp := lg.checkpoint(t, "honest", 5)
	other := lg.checkpoint(t, "other", 5)
	const t1, t2 = 1796119200, 1796119260 // 10:00 and 10:01 on 2026-12-01
	type witness struct {
		name string
		priv ed25519.PrivateKey
		v    *torchwood.CosignatureVerifier
	}
	newWitness := func(name string) witness {
		_, priv, _ := ed25519.GenerateKey(rand.Reader)
		return witness{name, priv, cosignerOf(t, name, priv).Verifier()}
	}
	a, b, c := newWitness("a.example/w"), newWitness("b.example/w"), newWitness("c.example/w")
	rotated := newWitness("a.example/w") // a's next key: same name
	stranger := newWitness("stranger.example/w")
	line := func(w witness, ts uint64) []byte { return cosignAt(t, w.name, w.priv, ts, cp) }
	with := func(lines ...[]byte) []byte { return slices.Concat(append([][]byte{cp}, lines...)...) }
	vs := []*torchwood.CosignatureVerifier{a.v, b.v, c.v}

	type want struct {
		key string
		at  int64
	}
	for _, tc := range []struct {
		name       string
		vs         []*torchwood.CosignatureVerifier
		checkpoint []byte
		want       []want
		wantErr    error
	}{
		{"the log's signature alone", vs, cp, nil, nil},
		{"no witness trusted", nil, with(line(a, t1)), nil, nil},
		{"two of three, in the order given", vs, with(line(c, t2), line(a, t1)), []want{{a.v.String(), t1}, {c.v.String(), t2}}, nil},
		{"other witnesses' and the log's lines are skipped", vs,
			with(line(stranger, t1), cosign(t, plainSigner(t, b.name, b.priv), cp), line(b, t2)), []want{{b.v.String(), t2}}, nil},
		{"twice by one witness: the earliest", vs, with(line(a, t2), line(a, t1)), []want{{a.v.String(), t1}}, nil},
		{"a key given twice counts once", []*torchwood.CosignatureVerifier{a.v, b.v, a.v}, with(line(a, t1)), []want{{a.v.String(), t1}}, nil},
		{"a witness's two keys are two entries", []*torchwood.CosignatureVerifier{a.v, rotated.v}, with(line(rotated, t2), line(a, t1)),
			[]want{{a.v.String(), t1}, {rotated.v.String(), t2}}, nil},
		{"a cosignature of another checkpoint", vs, with(line(a, t1), cosignAt(t, b.name, b.priv, t1, other)), nil, ErrBadCosignature},
		{"a cosignature with its time changed", vs, with(retime(t, line(a, t1), t2)), nil, ErrBadCosignature},
		{"a cosignature line cut short", vs, with(line(a, t1)[:40], []byte("\n")), nil, ErrBadCosignature},
		{"no signatures", vs, cp[:bytes.Index(cp, []byte("\n\n"))+1], nil, ErrMalformedCheckpoint},
		{"a last line without its newline", vs, bytes.TrimSuffix(with(line(a, t1)), []byte("\n")), nil, ErrMalformedCheckpoint},
		{"a line that is no signature", vs, with([]byte("hello\n")), nil, ErrMalformedCheckpoint},
		// As note.Open reads it, the last empty line starts the
		// signatures: the log's signature line becomes text, which the
		// cosignature is not over.
		{"an empty line among the signatures", vs, with([]byte("\n"), line(a, t1)), nil, ErrBadCosignature},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := Cosignatures(tc.vs, tc.checkpoint)
			if tc.wantErr != nil {
				if !errors.Is(err, tc.wantErr) || got != nil {
					t.Fatalf("= %v, %v; want %v", got, err, tc.wantErr)
				}
				return
			}
			if err != nil || len(got) != len(tc.want) {
				t.Fatalf("= %v, %v; want %v", got, err, tc.want)
			}
			for i, w := range tc.want {
				if got[i].Verifier.String() != w.key || !got[i].Time.Equal(time.Unix(w.at, 0)) {
					t.Fatalf("[%d] = %s at %v, want %s at %v", i, got[i].Verifier, got[i].Time, w.key, time.Unix(w.at, 0).UTC())
				}
			}
		})
	}
}

// The cosignatures the Client returns, appended to the checkpoint, are
// what Cosignatures finds, and what note.Open accepts with the log's key
// and the witnesses' keys: generic signed-note tooling reads the note as
// it is.
func TestCosignaturesOfClientLines(t *testing.T) {
	lg := newLog(t, testOrigin)
	cp := lg.checkpoint(t, "honest", 5)
	w1, w2 := newCosigner(t, "w1.example/w"), newCosigner(t, "w2.example/w")
	note1, note2 := cosign(t, w1, cp), cosign(t, w2, cp)
	signed := slices.Concat(cp, note1, note2)
	got, err := Cosignatures([]*torchwood.CosignatureVerifier{w2.Verifier(), w1.Verifier()}, signed)
	if err != nil || len(got) != 2 || got[0].Verifier != w2.Verifier() || got[1].Verifier != w1.Verifier() {
		t.Fatalf("= %v, %v", got, err)
	}
	if d := time.Since(got[0].Time); d < -time.Second || d > time.Minute {
		t.Errorf("cosigned at %v, want about now", got[0].Time)
	}
	logV, _ := note.NewVerifier(lg.vkey)
	if n, err := note.Open(signed, note.VerifierList(logV, w1.Verifier(), w2.Verifier())); err != nil || len(n.Sigs) != 3 {
		t.Fatalf("note.Open = %v, %v", n, err)
	}
}

// retime changes the time a cosignature line says, not its signature.
func retime(t *testing.T, line []byte, ts uint64) []byte {
	name, b64, _ := strings.Cut(strings.TrimSuffix(strings.TrimPrefix(string(line), "— "), "\n"), " ")
	raw, err := base64.StdEncoding.DecodeString(b64)
	if err != nil {
		t.Fatal(err)
	}
	binary.BigEndian.PutUint64(raw[4:12], ts)
	return fmt.Appendf(nil, "— %s %s\n", name, base64.StdEncoding.EncodeToString(raw))
}
