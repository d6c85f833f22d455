package witness

import (
	"crypto/rand"
	"encoding/base64"
	"fmt"
	"io"
	"log/slog"
	"net/http/httptest"
	"testing"
	"time"

	"golang.org/x/mod/sumdb/note"
	"golang.org/x/mod/sumdb/tlog"

	tlogwitness "github.com/lethe-dev/lethe/pkg/witness"
)

const testOrigin = "lethe.example/demo"

// memTree is a Merkle tree over entries in memory, built with tlog as
// the orchestrator's log is.
type memTree struct {
	t      testing.TB
	hashes []tlog.Hash // stored hashes, by tlog.StoredHashIndex
	n      int64
}

// newTree is a tree of size entries, each made from prefix and its index:
// two prefixes are two different histories.
func newTree(t testing.TB, prefix string, size int) *memTree {
	m := &memTree{t: t}
	for i := range size {
		m.append(fmt.Appendf(nil, "%s entry %d", prefix, i))
	}
	return m
}

func (m *memTree) append(data []byte) {
	hs, err := tlog.StoredHashes(m.n, data, m)
	if err != nil {
		m.t.Fatal(err)
	}
	m.hashes = append(m.hashes, hs...)
	m.n++
}

func (m *memTree) ReadHashes(idx []int64) ([]tlog.Hash, error) {
	out := make([]tlog.Hash, len(idx))
	for i, x := range idx {
		out[i] = m.hashes[x]
	}
	return out, nil
}

// root is the root hash of the tree's first n entries.
func (m *memTree) root(n int64) tlog.Hash {
	h, err := tlog.TreeHash(n, m)
	if err != nil {
		m.t.Fatal(err)
	}
	return h
}

// proof is the consistency proof from size old to size n (empty from 0).
func (m *memTree) proof(old, n int64) tlog.TreeProof {
	if old == 0 || old == n {
		return nil
	}
	p, err := tlog.ProveTree(n, old, m)
	if err != nil {
		m.t.Fatal(err)
	}
	return p
}

// testLog is a log's signing key.
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

func (l testLog) key() LogKey { return LogKey{Origin: l.origin, VKey: l.vkey} }

// checkpoint signs the tree head of m's first n entries, with a time
// extension line as Lethe's checkpoints carry.
func (l testLog) checkpoint(t testing.TB, m *memTree, n int64) []byte {
	return l.signText(t, checkpointText(l.origin, n, m.root(n)))
}

func checkpointText(origin string, n int64, root tlog.Hash) string {
	return fmt.Sprintf("%s\n%d\n%s\ntime %s\n", origin, n, base64.StdEncoding.EncodeToString(root[:]),
		time.Date(2026, 12, 1, 10, 0, 0, 0, time.UTC).Format(time.RFC3339Nano))
}

func (l testLog) signText(t testing.TB, text string) []byte {
	b, err := note.Sign(&note.Note{Text: text}, l.signer)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// server runs a witness over dir behind a real HTTP server.
type server struct {
	w      *Witness
	srv    *httptest.Server
	client *tlogwitness.Client
}

func startWitness(t testing.TB, dir string, logs ...LogKey) *server {
	t.Helper()
	w, err := New(Config{Dir: dir, Name: "witness.example.org/w1", Logs: logs,
		Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(w)
	v, err := tlogwitness.NewVerifier(w.VerifierKey())
	if err != nil {
		t.Fatal(err)
	}
	s := &server{w: w, srv: srv, client: &tlogwitness.Client{URL: srv.URL, Verifier: v, HTTPClient: srv.Client()}}
	t.Cleanup(s.stop)
	return s
}

// stop closes the server and frees the state directory; twice is fine.
func (s *server) stop() {
	if s.srv != nil {
		s.srv.Close()
		s.w.Close()
		s.srv = nil
	}
}

// latest is the tree head the witness last cosigned for testOrigin.
func (s *server) latest(t testing.TB) tlog.Tree {
	t.Helper()
	tree, _, ok := s.w.Latest(testOrigin)
	if !ok {
		t.Fatal("witness cosigned nothing")
	}
	return tree
}
