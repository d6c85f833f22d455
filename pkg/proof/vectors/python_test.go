package vectors_test

import (
	"bytes"
	"crypto/ed25519"
	"crypto/sha256"
	"encoding/base64"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"filippo.io/torchwood"

	"github.com/lethe-dev/lethe/pkg/proof"
	"github.com/lethe-dev/lethe/pkg/proof/prooftest"
	"github.com/lethe-dev/lethe/pkg/proof/vectors"
	"github.com/lethe-dev/lethe/pkg/witness"
)

// The second verifier, verifiers/python/lethe_verify.py, is written from
// docs/spec alone. These tests run it where python3 with the cryptography
// package is (CI installs Debian's python3-cryptography) and fail on any
// disagreement with the Go verifier: on a vector, or on a variant made
// here (the canonical form, the checkpoint's note, witnesses'
// cosignatures). A disagreement is a bug of one verifier or of the
// specification.

// python is the command running the Python verifier, or a skip.
func python(t *testing.T) (root string, run func(args ...string) (stdout string, code int)) {
	t.Helper()
	py, why := pythonWithCryptography()
	if py == "" {
		t.Skipf("%s: the Python verifier (verifiers/python) is not checked against the Go one (Debian: apt-get install python3-cryptography tzdata)", why)
	}
	root = filepath.Dir(filepath.Dir(filepath.Dir(folder(t)))) // docs/spec/vectors
	script := filepath.Join(root, "verifiers", "python", "lethe_verify.py")
	return root, func(args ...string) (string, int) {
		t.Helper()
		cmd := exec.Command(py, append([]string{script}, args...)...)
		var stdout, stderr bytes.Buffer
		cmd.Stdout, cmd.Stderr = &stdout, &stderr
		err := cmd.Run()
		var exit *exec.ExitError
		switch {
		case errors.As(err, &exit):
			return stdout.String() + stderr.String(), exit.ExitCode()
		case err != nil:
			t.Fatalf("python3 %s: %v", script, err)
		}
		return stdout.String() + stderr.String(), 0
	}
}

// pythonWithCryptography finds a python3 with the cryptography package
// and the time zone database: the one on PATH, else Debian's, which
// .ci/run installs python3-cryptography for (a python3 of pyenv's, say,
// may come first on PATH without it). It says why when there is none.
func pythonWithCryptography() (path, why string) {
	why = "no python3 on PATH"
	candidates := []string{"/usr/bin/python3"}
	if py, err := exec.LookPath("python3"); err == nil {
		candidates = append([]string{py}, candidates...)
	}
	for _, py := range candidates {
		if _, err := os.Stat(py); err != nil {
			continue
		}
		out, err := exec.Command(py, "-c", `from cryptography.hazmat.primitives.asymmetric import ed25519; import zoneinfo; zoneinfo.ZoneInfo("Europe/Paris")`).CombinedOutput()
		if err == nil {
			return py, ""
		}
		why = fmt.Sprintf("%s has no cryptography package or no time zone database: %v: %s", py, err, bytes.TrimSpace(out))
	}
	return "", why
}

// pyResult is one vector as lethe_verify.py --vectors --json reports it.
type pyResult struct {
	File     string `json:"file"`
	OK       bool   `json:"ok"`
	How      string `json:"how"`
	Why      string `json:"why"`
	Problems []struct {
		Code    string `json:"code"`
		Message string `json:"message"`
	} `json:"problems"`
}

// Every vector: the Python verifier says of it what index.json says, for
// the reason it says, and reports the very problems the Go verifier
// reports, in its words and order (docs/spec gives every message).
func TestPythonVerifierVectors(t *testing.T) {
	_, run := python(t)
	dir := folder(t)
	out, code := run("--vectors", dir, "--json")
	var report struct {
		Summary map[string]int `json:"summary"`
		Results []pyResult     `json:"results"`
	}
	if err := json.Unmarshal([]byte(out), &report); err != nil {
		t.Fatalf("lethe_verify.py --vectors (exit %d) did not write its JSON report: %v\n%s", code, err, out)
	}
	t.Logf("Python verifier over %s: %v", dir, report.Summary)
	for _, r := range report.Results {
		if !r.OK {
			t.Errorf("%s: the Python verifier disagrees with index.json: %s %v", r.File, r.Why, r.Problems)
		}
	}
	if code != 0 {
		t.Errorf("lethe_verify.py --vectors exited %d", code)
	}

	b, err := os.ReadFile(filepath.Join(dir, vectors.IndexFile))
	if err != nil {
		t.Fatal(err)
	}
	var index []vectors.Vector
	if err := json.Unmarshal(b, &index); err != nil {
		t.Fatal(err)
	}
	if len(index) != len(report.Results) {
		t.Fatalf("index.json has %d vectors, the Python verifier checked %d", len(index), len(report.Results))
	}
	keys := map[string]proof.KeySet{}
	for i, v := range index {
		ks, ok := keys[v.Keys]
		if !ok {
			if ks, err = proof.ReadKeySet(filepath.Join(dir, v.Keys)); err != nil {
				t.Fatal(err)
			}
			keys[v.Keys] = ks
		}
		data, err := os.ReadFile(filepath.Join(dir, filepath.FromSlash(v.File)))
		if err != nil {
			t.Fatal(err)
		}
		_, goErr := proof.Verify(data, ks)
		var py []string
		for _, p := range report.Results[i].Problems {
			py = append(py, p.Message)
		}
		if d := sameProblems(messages(goErr), py); d != "" {
			t.Errorf("%s: the two verifiers report different problems: %s", v.File, d)
		}
	}
}

// messages are an error of proof.Verify (or lethectl's witness check), a
// problem a line.
func messages(err error) []string {
	if err == nil {
		return nil
	}
	return strings.Split(err.Error(), "\n")
}

// sameProblems compares the Go verifier's problems with the Python one's,
// word for word, but for the reasons of a parser: the two read JSON and
// protobuf with libraries of their own, and may refuse a certificate that
// is not read at all at one point or the other of step 1 (verification.md
// allows it). "" when they agree.
func sameProblems(goMsgs, pyMsgs []string) string {
	fatal := func(m string) bool {
		return strings.HasPrefix(m, "not a certificate") || strings.HasPrefix(m, "not in canonical form")
	}
	if len(goMsgs) == 1 && fatal(goMsgs[0]) {
		if len(pyMsgs) == 1 && fatal(pyMsgs[0]) {
			return ""
		}
		return fmt.Sprintf("Go: %q; Python: %q", goMsgs, pyMsgs)
	}
	if len(goMsgs) != len(pyMsgs) {
		return fmt.Sprintf("Go: %q; Python: %q", goMsgs, pyMsgs)
	}
	for i := range goMsgs {
		g, p := goMsgs[i], pyMsgs[i]
		for _, reason := range []string{": receipt does not decode: ", ": log entry: "} {
			if j, k := strings.Index(g, reason), strings.Index(p, reason); j >= 0 && k >= 0 {
				g, p = g[:j], p[:k]
			}
		}
		if g != p {
			return fmt.Sprintf("problem %d: Go %q, Python %q", i+1, goMsgs[i], pyMsgs[i])
		}
	}
	return ""
}

// A variant of a vector, checked by both verifiers, as lethectl verify
// and lethe_verify.py check it: the certificate, its keys, the witnesses
// required and how many.
type variant struct {
	name      string
	data      []byte
	keys      string // keys file, relative to the vectors' folder
	witnesses []string
	quorum    int
}

// The variants agree: verified by both, or by neither for the same
// problems (exit code 2 by both for a witness key that does not parse).
func TestPythonVerifierVariants(t *testing.T) {
	_, run := python(t)
	dir := folder(t)
	ks, err := proof.ReadKeySet(filepath.Join(dir, vectors.KeysFile))
	if err != nil {
		t.Fatal(err)
	}
	tmp := t.TempDir()
	for _, v := range variants(t, dir) {
		t.Run(v.name, func(t *testing.T) {
			goCode, goMsgs := goVerdict(t, v, ks)
			path := filepath.Join(tmp, v.name+".json")
			if err := os.WriteFile(path, v.data, 0o644); err != nil {
				t.Fatal(err)
			}
			args := []string{path, "--keys", filepath.Join(dir, v.keys)}
			for _, w := range v.witnesses {
				args = append(args, "--witness", w)
			}
			if v.quorum != 0 {
				args = append(args, "--witness-quorum", fmt.Sprint(v.quorum))
			}
			out, pyCode := run(args...)
			if pyCode != goCode {
				t.Fatalf("Go: exit %d %q; Python: exit %d:\n%s", goCode, goMsgs, pyCode, out)
			}
			t.Logf("both verifiers: exit %d %q", goCode, goMsgs)
			if goCode != 1 {
				return
			}
			var pyMsgs []string
			for _, line := range strings.Split(out, "\n") {
				if rest, ok := strings.CutPrefix(line, "  - ["); ok {
					_, msg, _ := strings.Cut(rest, "] ")
					pyMsgs = append(pyMsgs, msg)
				}
			}
			if d := sameProblems(goMsgs, pyMsgs); d != "" {
				t.Errorf("the two verifiers report different problems: %s", d)
			}
		})
	}
}

// goVerdict is what lethectl verify says: exit 0, 1 with the problems, or
// 2 for a witness key that does not parse.
func goVerdict(t *testing.T, v variant, ks proof.KeySet) (int, []string) {
	t.Helper()
	if v.keys != vectors.KeysFile {
		var err error
		if ks, err = proof.ReadKeySet(filepath.Join(folder(t), v.keys)); err != nil {
			t.Fatal(err)
		}
	}
	var ws []*torchwood.CosignatureVerifier
	for _, w := range v.witnesses {
		wv, err := witness.NewVerifier(strings.TrimSpace(w))
		if err != nil {
			return 2, nil
		}
		ws = append(ws, wv)
	}
	quorum := v.quorum
	if quorum < 0 || quorum > len(ws) {
		return 2, nil
	}
	if quorum == 0 {
		quorum = witness.Quorum(ws)
	}
	c, err := proof.Verify(v.data, ks)
	if err == nil && len(ws) > 0 {
		err = witnessed(c, ws, quorum)
	}
	if err != nil {
		return 1, messages(err)
	}
	return 0, nil
}

// witnessed is lethectl verify's check of --witness (services/lethectl,
// checkWitnessed, which a test of this module cannot import).
func witnessed(c *proof.Certificate, vs []*torchwood.CosignatureVerifier, quorum int) error {
	if c.Log.Checkpoint == "" {
		return fmt.Errorf("witnesses: the certificate (version %d) carries no checkpoint for witnesses to cosign", c.Version)
	}
	return witness.CheckWitnessed([]byte(c.Log.Checkpoint), vs, quorum)
}

// The vectors' orchestrator key and witnesses' keys, made from phrases:
// the variants are signed again as the orchestrator would sign them.
var (
	orchestratorSeed = sha256.Sum256([]byte(vectors.Seed + "/" + proof.RoleOrchestrator))
	orchestratorKey  = ed25519.NewKeyFromSeed(orchestratorSeed[:])
)

func witnessKey(label string) ed25519.PrivateKey {
	seed := sha256.Sum256([]byte("lethe python verifier test witness/" + label))
	return ed25519.NewKeyFromSeed(seed[:])
}

// noteKeyHash is the signed-note key hash of a key of type alg.
func noteKeyHash(name string, alg byte, pub ed25519.PublicKey) uint32 {
	sum := sha256.Sum256(append([]byte(name+"\n"+string([]byte{alg})), pub...))
	return binary.BigEndian.Uint32(sum[:4])
}

// signLine is a note signature line by an ed25519 key (type 0x01).
func signLine(name string, priv ed25519.PrivateKey, text string) string {
	sig := make([]byte, 4, 68)
	binary.BigEndian.PutUint32(sig, noteKeyHash(name, 0x01, priv.Public().(ed25519.PublicKey)))
	sig = append(sig, ed25519.Sign(priv, []byte(text))...)
	return "— " + name + " " + base64.StdEncoding.EncodeToString(sig) + "\n"
}

// cosignLine is a witness's cosignature/v1 line over a checkpoint's text,
// made at ts (seconds).
func cosignLine(name string, priv ed25519.PrivateKey, text string, ts uint64) string {
	sig := make([]byte, 12, 76)
	binary.BigEndian.PutUint32(sig, noteKeyHash(name, 0x04, priv.Public().(ed25519.PublicKey)))
	binary.BigEndian.PutUint64(sig[4:], ts)
	sig = append(sig, ed25519.Sign(priv, []byte(fmt.Sprintf("cosignature/v1\ntime %d\n%s", ts, text)))...)
	return "— " + name + " " + base64.StdEncoding.EncodeToString(sig) + "\n"
}

// witnessVKey is a witness's verifier key (C2SP signed-note vkey, type 0x04).
func witnessVKey(name string, priv ed25519.PrivateKey) string {
	pub := priv.Public().(ed25519.PublicKey)
	return fmt.Sprintf("%s+%08x+%s", name, noteKeyHash(name, 0x04, pub), base64.StdEncoding.EncodeToString(append([]byte{0x04}, pub...)))
}

// variants are the cases both verifiers check, made from the vectors.
func variants(t *testing.T, dir string) []variant {
	t.Helper()
	read := func(file string) []byte {
		b, err := os.ReadFile(filepath.Join(dir, filepath.FromSlash(file)))
		if err != nil {
			t.Fatal(err)
		}
		return b
	}
	erasure := read("valid/erasure-fulfilled.json")
	decode := func(data []byte) *proof.Certificate {
		var c proof.Certificate
		if err := json.Unmarshal(data, &c); err != nil {
			t.Fatal(err)
		}
		return &c
	}
	signer, err := proof.SignerFromSeed(fmt.Sprintf("%x", orchestratorSeed), proof.RoleOrchestrator, prooftest.KeysFrom)
	if err != nil {
		t.Fatal(err)
	}
	if c := decode(erasure); c.KeyID != signer.Key.ID {
		t.Fatalf("the vectors' orchestrator key is %s, this test's %s", c.KeyID, signer.Key.ID)
	}
	resign := func(c *proof.Certificate) []byte {
		c.Sign(signer)
		return append(c.Encode(), '\n')
	}
	// withCheckpoint is the erasure's certificate on another checkpoint,
	// made of the text of the erasure's and signature lines (signed
	// again).
	text := strings.SplitAfterN(decode(erasure).Log.Checkpoint, "\n\n", 2)[0]
	text = strings.TrimSuffix(text, "\n")
	origin, _, _ := strings.Cut(text, "\n")
	withCheckpoint := func(note string) []byte {
		c := decode(erasure)
		c.Log.Checkpoint = note
		return resign(c)
	}
	signed := func(text string) string { return text + "\n" + signLine(origin, orchestratorKey, text) }
	// replaceText is the checkpoint's text with one line replaced, signed.
	replaceText := func(line int, with string) []byte {
		lines := strings.Split(strings.TrimSuffix(text, "\n"), "\n")
		lines[line] = with
		t := strings.Join(lines, "\n") + "\n"
		return withCheckpoint(signed(t))
	}
	// replace changes the bytes of the erasure once, not signed again.
	replace := func(old, new string) []byte {
		if !bytes.Contains(erasure, []byte(old)) {
			t.Fatalf("the erasure vector has no %q", old)
		}
		return bytes.Replace(erasure, []byte(old), []byte(new), 1)
	}
	sig := decode(erasure).Signature
	sig64 := base64.StdEncoding.EncodeToString(sig)

	w1, w1b, w2 := witnessKey("w1"), witnessKey("w1, rotated"), witnessKey("w2")
	const w1Name, w2Name = "witness.example/w1", "witness.example/w2"
	vk1, vk1b, vk2 := witnessVKey(w1Name, w1), witnessVKey(w1Name, w1b), witnessVKey(w2Name, w2)
	const ts = 1770715990 // 2026-02-10T09:33:10Z
	cosigned := func(lines ...string) []byte {
		return withCheckpoint(signed(text) + strings.Join(lines, ""))
	}
	flip := func(line string) string { // a bit of the signature flipped
		b := []byte(line)
		i := len(b) - 8 // a digit of the signature, before any padding
		b[i] = base64Digit(b[i], 0x10)
		return string(b)
	}

	vs := []variant{
		// The canonical form (canonical-json.md): refused whatever the
		// content.
		{name: "signature-unpadded", data: replace(sig64, strings.TrimRight(sig64, "="))},
		{name: "signature-url-alphabet", data: replace(sig64, base64.URLEncoding.EncodeToString(sig))},
		{name: "time-plus-zero-offset", data: replace(`"completed_at":"2026-02-10T09:32:07.019Z"`, `"completed_at":"2026-02-10T09:32:07.019+00:00"`)},
		{name: "time-trailing-zero", data: replace(`"completed_at":"2026-02-10T09:32:07.019Z"`, `"completed_at":"2026-02-10T09:32:07.0190Z"`)},
		{name: "escaped-slash", data: replace("/", `\/`)},
		{name: "escaped-em-dash", data: replace("—", `\u2014`)},
		{name: "two-newlines", data: append(bytes.Clone(erasure), '\n')},
		{name: "carriage-return", data: append(bytes.TrimSuffix(bytes.Clone(erasure), []byte("\n")), '\r', '\n')},
		{name: "byte-order-mark", data: append([]byte("\xef\xbb\xbf"), erasure...)},
		{name: "field-name-upper-case", data: replace(`"tenant"`, `"Tenant"`)},
		{name: "field-twice", data: replace(`"tenant":"demo",`, `"tenant":"demo","tenant":"demo",`)},
		{name: "signature-null", data: replace(`"signature":"`+sig64+`"`, `"signature":null`)},
		{name: "number-with-fraction", data: replace(`"version":2`, `"version":2.0`)},
		// Canonical, signed again: verified (caveats.md).
		{name: "offset-time-resigned", data: func() []byte {
			c := decode(erasure)
			c.CompletedAt = c.CompletedAt.In(time.FixedZone("", 3600))
			return resign(c)
		}()},
		{name: "denied-systems-empty-list", data: func() []byte {
			c := decode(read("valid/denied.json"))
			c.Systems = []proof.SystemResult{}
			return resign(c)
		}()},
		// The checkpoint's note (README.md, "Version 2").
		{name: "checkpoint-as-issued", data: withCheckpoint(signed(text))},
		{name: "checkpoint-unknown-signature-line", data: withCheckpoint(signed(text) + signLine("other.example/log", witnessKey("other"), text))},
		{name: "checkpoint-signed-twice", data: withCheckpoint(signed(text) + signLine(origin, orchestratorKey, text))},
		{name: "checkpoint-signature-padding-bits", data: func() []byte {
			line := signLine(origin, orchestratorKey, text)
			i := strings.Index(line, "=\n")
			c := []byte(line)
			c[i-1] = base64Digit(c[i-1], 1) // 68 bytes: the last digit before = has 2 unused bits
			return withCheckpoint(text + "\n" + string(c))
		}()},
		{name: "checkpoint-other-origin", data: func() []byte {
			other := strings.Replace(text, origin, "another.example/log", 1)
			return withCheckpoint(other + "\n" + signLine("another.example/log", orchestratorKey, other))
		}()},
		{name: "checkpoint-origin-with-space", data: func() []byte {
			other := strings.Replace(text, origin, "vectors lethe example", 1)
			return withCheckpoint(other + "\n" + "— vectors " + strings.SplitN(signLine("vectors", orchestratorKey, other), " ", 3)[2])
		}()},
		{name: "checkpoint-five-lines", data: func() []byte { return withCheckpoint(signed(text + "extra line\n")) }()},
		{name: "checkpoint-time-offset", data: replaceText(3, "time 2026-02-10T09:33:07.019+00:00")},
		{name: "checkpoint-time-four-digits", data: replaceText(3, "time 2026-02-10T09:33:07.0190Z")},
		{name: "checkpoint-time-no-fraction", data: replaceText(3, "time 2026-02-10T09:33:07Z")},
		{name: "checkpoint-time-before-key", data: replaceText(3, "time 2025-12-31T23:59:59.5Z")},
		{name: "checkpoint-no-time", data: replaceText(3, "timestamp 2026-02-10T09:33:07.019Z")},
		{name: "checkpoint-size-plus", data: replaceText(1, "+16")},
		{name: "checkpoint-size-leading-zero", data: replaceText(1, "016")},
		{name: "checkpoint-root-padding-bits", data: func() []byte {
			lines := strings.Split(text, "\n")
			b := []byte(lines[2])
			b[len(b)-2] = base64Digit(b[len(b)-2], 1)
			return replaceText(2, string(b))
		}()},
		{name: "checkpoint-signature-flipped", data: withCheckpoint(flip(signed(text)))},
		{name: "checkpoint-no-signature", data: withCheckpoint(text + "\n")},
		{name: "checkpoint-hyphen-not-em-dash", data: withCheckpoint(strings.Replace(signed(text), "— ", "- ", 1))},
		{name: "checkpoint-by-connector-key-and-orchestrator", data: withCheckpoint(signed(text) + signLine(origin, connectorKey("accounts"), text))},
		// Witnesses (README.md, "Witnesses").
		{name: "witness-one-of-one", data: cosigned(cosignLine(w1Name, w1, text, ts)), witnesses: []string{vk1}},
		{name: "witness-none-required", data: cosigned(cosignLine(w1Name, w1, text, ts))},
		{name: "witness-one-of-two", data: cosigned(cosignLine(w1Name, w1, text, ts)), witnesses: []string{vk1, vk2}},
		{name: "witness-one-of-two-quorum-one", data: cosigned(cosignLine(w1Name, w1, text, ts)), witnesses: []string{vk1, vk2}, quorum: 1},
		{name: "witness-two-of-two", data: cosigned(cosignLine(w2Name, w2, text, ts+1), cosignLine(w1Name, w1, text, ts)), witnesses: []string{vk1, vk2}},
		{name: "witness-other-witness", data: cosigned(cosignLine(w2Name, w2, text, ts)), witnesses: []string{vk1}},
		{name: "witness-flipped", data: cosigned(flip(cosignLine(w1Name, w1, text, ts))), witnesses: []string{vk1}},
		{name: "witness-flipped-not-required", data: cosigned(flip(cosignLine(w1Name, w1, text, ts))), witnesses: []string{vk2}},
		{name: "witness-twice", data: cosigned(cosignLine(w1Name, w1, text, ts), cosignLine(w1Name, w1, text, ts+60)), witnesses: []string{vk1}},
		{name: "witness-of-another-checkpoint", data: cosigned(cosignLine(w1Name, w1, strings.Replace(text, "\n16\n", "\n17\n", 1), ts)), witnesses: []string{vk1}},
		{name: "witness-time-past-int64", data: cosigned(cosignLine(w1Name, w1, text, 1<<63)), witnesses: []string{vk1}},
		{name: "witness-rotated-both-keys", data: cosigned(cosignLine(w1Name, w1, text, ts), cosignLine(w1Name, w1b, text, ts)), witnesses: []string{vk1, vk1b}},
		{name: "witness-rotated-both-keys-quorum-one", data: cosigned(cosignLine(w1Name, w1, text, ts), cosignLine(w1Name, w1b, text, ts)), witnesses: []string{vk1, vk1b}, quorum: 1},
		{name: "witness-key-given-twice", data: cosigned(cosignLine(w1Name, w1, text, ts)), witnesses: []string{vk1, vk1}},
		{name: "witness-version-1", data: read("valid/version-1.json"), witnesses: []string{vk1}},
		{name: "witness-key-malformed", data: cosigned(cosignLine(w1Name, w1, text, ts)), witnesses: []string{strings.Replace(vk1, "+", "-", 1)}},
		{name: "witness-key-plain-ed25519", data: cosigned(cosignLine(w1Name, w1, text, ts)), witnesses: []string{plainVKey(w1Name, w1)}},
		{name: "witness-quorum-too-high", data: cosigned(cosignLine(w1Name, w1, text, ts)), witnesses: []string{vk1}, quorum: 2},
		{name: "witness-invalid-certificate", data: func() []byte {
			b := cosigned(cosignLine(w1Name, w1, text, ts))
			return bytes.Replace(b, []byte(`"tenant":"demo"`), []byte(`"tenant":"dema"`), 1)
		}(), witnesses: []string{vk1}},
	}
	for i := range vs {
		vs[i].keys = vectors.KeysFile
	}
	// The key rotation's vectors, re-issued on a checkpoint of another
	// time (keys.md, "Key rotation").
	rotation := read("valid/key-rotation-reissued.json")
	vs = append(vs, variant{name: "rotation-reissued", data: rotation, keys: vectors.RotationKeysFile})
	// What docs/spec/examples keeps, for want of a vector of it: a
	// system resolved by hand (version 1, keys of its own).
	vs = append(vs, variant{name: "examples-erasure-resolved", data: read("../examples/certificates/erasure-resolved.json"), keys: "../examples/keys.json"})
	return vs
}

// base64Digit is the base64 digit d with its value's low bits changed
// (xor bits), in the standard alphabet.
func base64Digit(d byte, bits byte) byte {
	const alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/"
	i := strings.IndexByte(alphabet, d)
	return alphabet[i^int(bits)]
}

// connectorKey is the private key of a connector of the vectors.
func connectorKey(system string) ed25519.PrivateKey {
	seed := sha256.Sum256([]byte(vectors.Seed + "/" + system))
	return ed25519.NewKeyFromSeed(seed[:])
}

// plainVKey is a plain ed25519 signed-note verifier key (type 0x01), which
// is not a witness's.
func plainVKey(name string, priv ed25519.PrivateKey) string {
	pub := priv.Public().(ed25519.PublicKey)
	return fmt.Sprintf("%s+%08x+%s", name, noteKeyHash(name, 0x01, pub), base64.StdEncoding.EncodeToString(append([]byte{0x01}, pub...)))
}
