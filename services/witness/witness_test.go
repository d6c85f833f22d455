package witness

import (
	"bytes"
	"context"
	"errors"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"golang.org/x/mod/sumdb/note"
	"golang.org/x/mod/sumdb/tlog"

	tlogwitness "github.com/lethe-dev/lethe/pkg/witness"
)

// A log that grows is cosigned at each step, and each cosignature
// verifies with the witness's published key, by
// tlogwitness.VerifyCosignature and by note.Open over the checkpoint with
// the cosignature appended.
func TestGrowingLogIsCosigned(t *testing.T) {
	dir := t.TempDir()
	lg := newLog(t, testOrigin)
	s := startWitness(t, dir, lg.key())
	tree := newTree(t, "honest", 40)

	vkey, err := os.ReadFile(filepath.Join(dir, VKeyFile))
	if err != nil || strings.TrimSpace(string(vkey)) != s.w.VerifierKey() {
		t.Fatalf("%s = %q, %v; want %q", VKeyFile, vkey, err, s.w.VerifierKey())
	}
	v, err := tlogwitness.NewVerifier(string(vkey))
	if err != nil {
		t.Fatal(err)
	}
	if fi, err := os.Stat(filepath.Join(dir, KeyFile)); err != nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf("key file: %v, %v; want mode 0600", fi.Mode(), err)
	}

	old := int64(0)
	for _, size := range []int64{0, 1, 2, 3, 7, 8, 8, 20, 33, 40} {
		cp := lg.checkpoint(t, tree, size)
		before := time.Now().Add(-time.Second)
		line, err := s.client.AddCheckpoint(context.Background(), old, tree.proof(old, size), cp)
		if err != nil {
			t.Fatalf("size %d from %d: %v", size, old, err)
		}
		at, err := tlogwitness.VerifyCosignature(v, cp, line)
		if err != nil {
			t.Fatalf("size %d: cosignature %q: %v", size, line, err)
		}
		if at.Before(before.Truncate(time.Second)) || at.After(time.Now()) {
			t.Errorf("size %d: cosignature time %v, want about now", size, at)
		}
		// As any signed-note tool would check it: the log's key and the
		// witness's key, over the checkpoint with both signatures.
		logV, _ := note.NewVerifier(lg.vkey)
		n, err := note.Open(append(bytes.Clone(cp), line...), note.VerifierList(logV, v))
		if err != nil || len(n.Sigs) != 2 {
			t.Fatalf("size %d: note.Open = %v, %v; want the log's and the witness's signatures", size, n, err)
		}
		if got := s.latest(t); got.N != size || got.Hash != tree.root(size) {
			t.Fatalf("size %d: witness state %d", size, got.N)
		}
		old = size
	}
}

// refusedCase is a checkpoint the witness must not cosign, built over a
// witness that cosigned the honest tree at size 8.
type refusedCase struct {
	name    string
	request func(t *testing.T, lg testLog, honest *memTree) (old int64, proof tlog.TreeProof, cp []byte)
	wantErr error // tlogwitness.ErrInconsistent or the like; nil: a *tlogwitness.ConflictError
	// wantSize is the size the *tlogwitness.ConflictError carries.
	wantSize int64
	// evidence: the refused checkpoint is kept as proof of a fork.
	evidence bool
}

var refusedCases = []refusedCase{
	{
		name: "fork at the same size",
		request: func(t *testing.T, lg testLog, _ *memTree) (int64, tlog.TreeProof, []byte) {
			return 8, nil, lg.checkpoint(t, newTree(t, "rewritten", 8), 8)
		},
		wantErr: tlogwitness.ErrInconsistent, evidence: true,
	},
	{
		name: "fork at a larger size, with the forked tree's own proof",
		request: func(t *testing.T, lg testLog, _ *memTree) (int64, tlog.TreeProof, []byte) {
			fork := newTree(t, "rewritten", 13)
			return 8, fork.proof(8, 13), lg.checkpoint(t, fork, 13)
		},
		wantErr: tlogwitness.ErrInconsistent, evidence: true,
	},
	{
		name: "fork that keeps the first entries and rewrites the last",
		request: func(t *testing.T, lg testLog, honest *memTree) (int64, tlog.TreeProof, []byte) {
			fork := newTree(t, "honest", 6)
			for i := range 6 {
				fork.append([]byte{byte(i)})
			}
			return 8, honest.proof(8, 12), lg.checkpoint(t, fork, 12)
		},
		wantErr: tlogwitness.ErrInconsistent, evidence: true,
	},
	{
		name: "a smaller tree",
		request: func(t *testing.T, lg testLog, honest *memTree) (int64, tlog.TreeProof, []byte) {
			return 5, nil, lg.checkpoint(t, honest, 5)
		},
		wantSize: 8,
	},
	{
		name: "a smaller tree claiming the size cosigned as old size",
		request: func(t *testing.T, lg testLog, honest *memTree) (int64, tlog.TreeProof, []byte) {
			return 8, nil, lg.checkpoint(t, honest, 5)
		},
		wantErr: tlogwitness.ErrRefused,
	},
	{
		name: "a good proof from an old size that is not the witness's",
		request: func(t *testing.T, lg testLog, honest *memTree) (int64, tlog.TreeProof, []byte) {
			return 4, honest.proof(4, 12), lg.checkpoint(t, honest, 12)
		},
		wantSize: 8,
	},
	{
		name: "the first request of a log client that lost its state",
		request: func(t *testing.T, lg testLog, honest *memTree) (int64, tlog.TreeProof, []byte) {
			return 0, nil, lg.checkpoint(t, honest, 12)
		},
		wantSize: 8,
	},
	{
		name: "an honest checkpoint with a proof of the wrong sizes",
		request: func(t *testing.T, lg testLog, honest *memTree) (int64, tlog.TreeProof, []byte) {
			return 8, honest.proof(7, 12), lg.checkpoint(t, honest, 12)
		},
		wantErr: tlogwitness.ErrInconsistent, evidence: true,
	},
	{
		name: "an unknown log",
		request: func(t *testing.T, _ testLog, honest *memTree) (int64, tlog.TreeProof, []byte) {
			other := newLog(t, "other.example/log")
			return 8, honest.proof(8, 12), other.checkpoint(t, honest, 12)
		},
		wantErr: tlogwitness.ErrUnknownLog,
	},
	{
		name: "signed by another key under the log's name",
		request: func(t *testing.T, _ testLog, honest *memTree) (int64, tlog.TreeProof, []byte) {
			impostor := newLog(t, testOrigin)
			return 8, honest.proof(8, 12), impostor.checkpoint(t, honest, 12)
		},
		wantErr: tlogwitness.ErrLogSignature,
	},
	{
		name: "a signature by the log's key that does not verify",
		request: func(t *testing.T, lg testLog, honest *memTree) (int64, tlog.TreeProof, []byte) {
			cp := lg.checkpoint(t, honest, 12)
			// The signed text changed after signing: its time line.
			return 8, honest.proof(8, 12), bytes.Replace(cp, []byte("time 2026"), []byte("time 2027"), 1)
		},
		wantErr: tlogwitness.ErrLogSignature,
	},
}

// Every refusal leaves the witness's state as it was, a fork's checkpoint
// is kept as evidence, and the honest log goes on being cosigned.
func TestRefusedCheckpoints(t *testing.T) {
	for _, tc := range refusedCases {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			lg := newLog(t, testOrigin)
			s := startWitness(t, dir, lg.key())
			honest := newTree(t, "honest", 12)
			ctx := context.Background()
			if _, err := s.client.AddCheckpoint(ctx, 0, nil, lg.checkpoint(t, honest, 8)); err != nil {
				t.Fatal(err)
			}
			_, cosigned, _ := s.w.Latest(testOrigin)

			old, proof, cp := tc.request(t, lg, honest)
			line, err := s.client.AddCheckpoint(ctx, old, proof, cp)
			if line != nil {
				t.Fatalf("cosigned: %q", line)
			}
			checkRefusal(t, err, tc.wantErr, tc.wantSize)
			if tree, now, _ := s.w.Latest(testOrigin); tree.N != 8 || tree.Hash != honest.root(8) || !bytes.Equal(now, cosigned) {
				t.Fatalf("state changed to size %d", tree.N)
			}
			if ev, _ := os.ReadDir(filepath.Join(dir, evidenceDir)); (len(ev) > 0) != tc.evidence {
				t.Errorf("evidence files: %d, want some: %v", len(ev), tc.evidence)
			}
			if _, err := s.client.AddCheckpoint(ctx, 8, honest.proof(8, 12), lg.checkpoint(t, honest, 12)); err != nil {
				t.Fatalf("honest checkpoint after the refusal: %v", err)
			}
		})
	}
}

func checkRefusal(t *testing.T, err, wantErr error, wantSize int64) {
	t.Helper()
	if wantErr != nil {
		if !errors.Is(err, wantErr) {
			t.Fatalf("err = %v, want %v", err, wantErr)
		}
		return
	}
	ce, ok := errors.AsType[*tlogwitness.ConflictError](err)
	if !ok || ce.Size != wantSize {
		t.Fatalf("err = %v, want a conflict at size %d", err, wantSize)
	}
}

// A new witness over the same state directory, after a restart, keeps its
// key and refuses what conflicts with what the first one cosigned.
func TestRestartKeepsRefusing(t *testing.T) {
	dir := t.TempDir()
	lg := newLog(t, testOrigin)
	honest := newTree(t, "honest", 12)
	ctx := context.Background()

	first := startWitness(t, dir, lg.key())
	if _, err := first.client.AddCheckpoint(ctx, 0, nil, lg.checkpoint(t, honest, 8)); err != nil {
		t.Fatal(err)
	}
	if _, err := New(Config{Dir: dir, Name: "witness.example.org/w1", Logs: []LogKey{lg.key()}}); err == nil {
		t.Fatal("a second witness opened a state directory in use")
	}
	vkey := first.w.VerifierKey()
	first.stop()

	for _, tc := range refusedCases {
		t.Run(tc.name, func(t *testing.T) {
			s := startWitness(t, dir, lg.key())
			defer s.stop()
			if s.w.VerifierKey() != vkey {
				t.Fatalf("key changed across the restart: %s, was %s", s.w.VerifierKey(), vkey)
			}
			old, proof, cp := tc.request(t, lg, honest)
			_, err := s.client.AddCheckpoint(ctx, old, proof, cp)
			checkRefusal(t, err, tc.wantErr, tc.wantSize)
			if got := s.latest(t); got.N != 8 || got.Hash != honest.root(8) {
				t.Fatalf("state changed to size %d", got.N)
			}
		})
	}

	s := startWitness(t, dir, lg.key())
	if _, err := s.client.AddCheckpoint(ctx, 8, honest.proof(8, 12), lg.checkpoint(t, honest, 12)); err != nil {
		t.Fatalf("honest checkpoint after the restart: %v", err)
	}
}

// A state file that is damaged stops the witness from starting, rather
// than letting it start afresh and cosign any history.
func TestCorruptStateRefusesToStart(t *testing.T) {
	dir := t.TempDir()
	lg := newLog(t, testOrigin)
	honest := newTree(t, "honest", 8)
	s := startWitness(t, dir, lg.key())
	if _, err := s.client.AddCheckpoint(context.Background(), 0, nil, lg.checkpoint(t, honest, 8)); err != nil {
		t.Fatal(err)
	}
	s.stop()
	path := filepath.Join(dir, logsDir, logFileName(testOrigin))
	b, _ := os.ReadFile(path)
	if err := os.WriteFile(path, bytes.Replace(b, []byte(`"size": 8`), []byte(`"size": 3`), 1), 0o600); err != nil {
		t.Fatal(err)
	}
	if w, err := New(Config{Dir: dir, Name: "witness.example.org/w1", Logs: []LogKey{lg.key()}}); err == nil {
		w.Close()
		t.Fatal("started over a state whose size does not match its checkpoint")
	}
}

// The wire format, by raw HTTP: malformed bodies get 400, a wrong old
// size 409 with the size cosigned as text/x.tlog.size.
func TestAddCheckpointHTTP(t *testing.T) {
	lg := newLog(t, testOrigin)
	s := startWitness(t, t.TempDir(), lg.key())
	honest := newTree(t, "honest", 12)
	if _, err := s.client.AddCheckpoint(context.Background(), 0, nil, lg.checkpoint(t, honest, 8)); err != nil {
		t.Fatal(err)
	}
	good := string(tlogwitness.FormatAddRequest(tlogwitness.AddRequest{OldSize: 8, Proof: honest.proof(8, 12), Checkpoint: lg.checkpoint(t, honest, 12)}))
	cp12 := string(lg.checkpoint(t, honest, 12))
	hash := encodeHash(honest.root(3))

	for _, tc := range []struct {
		name, method, body string
		status             int
		contentType, want  string
	}{
		{name: "empty body", body: "", status: 400},
		{name: "no empty line", body: "old 8\n" + cp12, status: 400},
		{name: "no checkpoint", body: "old 8\n\n", status: 400},
		{name: "no old line", body: "\n" + cp12, status: 400},
		{name: "old size with a leading zero", body: "old 08\n" + hash + "\n\n" + cp12, status: 400},
		{name: "negative old size", body: "old -1\n\n" + cp12, status: 400},
		{name: "another keyword", body: "new 8\n\n" + cp12, status: 400},
		{name: "proof line not base64", body: "old 8\nnot base64!\n\n" + cp12, status: 400},
		{name: "proof line of 31 bytes", body: "old 8\nAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA==\n\n" + cp12, status: 400},
		{name: "64 proof lines", body: "old 8\n" + strings.Repeat(hash+"\n", 64) + "\n" + cp12, status: 400},
		{name: "proof from size 0", body: "old 0\n" + hash + "\n\n" + cp12, status: 400},
		{name: "old size above the checkpoint's", body: "old 13\n\n" + cp12, status: 400},
		{name: "not a signed note", body: "old 8\n\n" + testOrigin + "\n12\n" + encodeHash(honest.root(12)) + "\n", status: 400},
		{name: "signed note that is no checkpoint", body: "old 8\n\n" + string(lg.signText(t, testOrigin+"\nhello\n")), status: 400},
		{name: "checkpoint with a non-canonical size", body: "old 8\n\n" + string(lg.signText(t, testOrigin+"\n+12\n"+encodeHash(honest.root(12))+"\n")), status: 400},
		{name: "unknown origin", body: "old 8\n\n" + string(newLog(t, "other.example/x").checkpoint(t, honest, 12)), status: 404},
		{name: "wrong old size", body: "old 5\n" + hash + "\n\n" + cp12, status: 409, contentType: tlogwitness.SizeContentType, want: "8\n"},
		{name: "bad proof", body: "old 8\n" + hash + "\n\n" + cp12, status: 422},
		{name: "GET", method: "GET", body: "", status: 405},
		{name: "too large", body: good + strings.Repeat("x", tlogwitness.MaxRequestBytes), status: 413},
		// Last: it moves the witness to size 12.
		{name: "good", body: good, status: 200, contentType: "text/plain; charset=utf-8", want: "— witness.example.org/w1 "},
	} {
		t.Run(tc.name, func(t *testing.T) {
			method := tc.method
			if method == "" {
				method = http.MethodPost
			}
			req, _ := http.NewRequest(method, s.srv.URL+tlogwitness.AddCheckpointPath, strings.NewReader(tc.body))
			resp, err := s.srv.Client().Do(req)
			if err != nil {
				t.Fatal(err)
			}
			b, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			if resp.StatusCode != tc.status {
				t.Fatalf("status %d (%q), want %d", resp.StatusCode, b, tc.status)
			}
			if tc.contentType != "" && resp.Header.Get("Content-Type") != tc.contentType {
				t.Errorf("Content-Type %q, want %q", resp.Header.Get("Content-Type"), tc.contentType)
			}
			if !strings.HasPrefix(string(b), tc.want) {
				t.Errorf("body %q, want it to start with %q", b, tc.want)
			}
			if want := int64(8); tc.status != 200 && s.latest(t).N != want {
				t.Errorf("state moved to %d", s.latest(t).N)
			}
		})
	}
}

// Requests at once from the same old size to different sizes: exactly
// one is cosigned, the others learn the new size; none rolls back another.
func TestConcurrentRequestsOneWins(t *testing.T) {
	lg := newLog(t, testOrigin)
	s := startWitness(t, t.TempDir(), lg.key())
	honest := newTree(t, "honest", 20)
	ctx := context.Background()
	if _, err := s.client.AddCheckpoint(ctx, 0, nil, lg.checkpoint(t, honest, 8)); err != nil {
		t.Fatal(err)
	}
	var (
		wg        sync.WaitGroup
		mu        sync.Mutex
		winners   []int64
		conflicts int
	)
	for size := int64(9); size <= 20; size++ {
		cp := lg.checkpoint(t, honest, size)
		wg.Go(func() {
			_, err := s.client.AddCheckpoint(ctx, 8, honest.proof(8, size), cp)
			mu.Lock()
			defer mu.Unlock()
			if err == nil {
				winners = append(winners, size)
			} else if _, ok := errors.AsType[*tlogwitness.ConflictError](err); ok {
				conflicts++
			} else {
				t.Errorf("size %d: %v", size, err)
			}
		})
	}
	wg.Wait()
	if len(winners) != 1 || conflicts != 11 {
		t.Fatalf("cosigned %v, %d conflicts; want one cosigned, 11 conflicts", winners, conflicts)
	}
	if got := s.latest(t); got.N != winners[0] {
		t.Fatalf("state %d, cosigned %d", got.N, winners[0])
	}
}

// A state that could not be saved stops the witness from cosigning that
// log: it no longer knows what is on disk.
func TestFailedSaveRefusesUntilRestart(t *testing.T) {
	dir := t.TempDir()
	lg := newLog(t, testOrigin)
	tree := newTree(t, "honest", 12)
	s := startWitness(t, dir, lg.key())
	ctx := context.Background()
	if _, err := s.client.AddCheckpoint(ctx, 0, nil, lg.checkpoint(t, tree, 8)); err != nil {
		t.Fatal(err)
	}
	logs := filepath.Join(dir, logsDir)
	if err := os.Rename(logs, logs+".away"); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(logs, nil, 0o600); err != nil { // a file where the folder was
		t.Fatal(err)
	}
	if _, err := s.client.AddCheckpoint(ctx, 8, tree.proof(8, 10), lg.checkpoint(t, tree, 10)); !errors.Is(err, tlogwitness.ErrRefused) {
		t.Fatalf("err = %v, want a refusal (500)", err)
	}
	if err := errors.Join(os.Remove(logs), os.Rename(logs+".away", logs)); err != nil {
		t.Fatal(err)
	}
	if _, err := s.client.AddCheckpoint(ctx, 8, tree.proof(8, 10), lg.checkpoint(t, tree, 10)); !errors.Is(err, tlogwitness.ErrRefused) {
		t.Fatalf("err = %v, want refusals until a restart", err)
	}
	s.stop()
	s = startWitness(t, dir, lg.key())
	if _, err := s.client.AddCheckpoint(ctx, 8, tree.proof(8, 10), lg.checkpoint(t, tree, 10)); err != nil {
		t.Fatalf("after the restart: %v", err)
	}
}
