package main

import (
	"encoding/base64"
	"encoding/hex"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strconv"
	"sync"
	"testing"
	"time"

	"golang.org/x/mod/sumdb/tlog"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/lethe-dev/lethe/pkg/deadline"
	lethev1 "github.com/lethe-dev/lethe/pkg/gen/lethe/v1"
	"github.com/lethe-dev/lethe/pkg/proof"
)

// Fixed times, so outputs can be checked: the keys are valid from 1 Jan
// 2026, the requests are received on 2 Mar 2026.
var (
	keysFrom = time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	received = time.Date(2026, 3, 2, 9, 0, 0, 0, time.UTC)
)

// fixture is the proof side of an orchestrator, built with pkg/proof as
// the orchestrator builds it: an orchestrator key and two connector keys
// (in their own data dirs, with the .pub entries beside them), a keys file
// listing all three, and a transparency log kept in memory.
type fixture struct {
	dir      string
	keysPath string
	orch     *proof.Signer
	signers  map[string]*proof.Signer // by system

	mu      sync.Mutex // the fake server reads what a test appends
	entries [][]byte
	hashes  []tlog.Hash // tlog's stored hashes
	clock   time.Time   // tree heads are signed a second apart
}

func newFixture(t *testing.T) *fixture {
	t.Helper()
	f := &fixture{dir: t.TempDir(), signers: map[string]*proof.Signer{}, clock: received}
	var ks proof.KeySet
	for _, owner := range []string{proof.RoleOrchestrator, "accounts", "billing"} {
		s, err := proof.LoadOrCreateSigner(filepath.Join(f.dir, owner, "signing.key"), owner, keysFrom)
		if err != nil {
			t.Fatal(err)
		}
		if owner == proof.RoleOrchestrator {
			f.orch = s
		} else {
			f.signers[owner] = s
		}
		ks.Add(s.Key)
	}
	f.keysPath = filepath.Join(f.dir, "keys.json")
	if err := proof.WriteKeySet(f.keysPath, ks); err != nil {
		t.Fatal(err)
	}
	return f
}

// pubPath is where a system's public entry was written.
func (f *fixture) pubPath(system string) string {
	return filepath.Join(f.dir, system, "signing.key.pub")
}

// ReadHashes implements tlog.HashReader. Callers hold f.mu.
func (f *fixture) ReadHashes(indexes []int64) ([]tlog.Hash, error) {
	out := make([]tlog.Hash, len(indexes))
	for i, x := range indexes {
		if x < 0 || x >= int64(len(f.hashes)) {
			return nil, fmt.Errorf("no stored hash %d", x)
		}
		out[i] = f.hashes[x]
	}
	return out, nil
}

// appendEntry logs an entry and returns its index.
func (f *fixture) appendEntry(t *testing.T, e proof.Entry) int64 {
	t.Helper()
	return f.appendBytes(t, e.Encode())
}

func (f *fixture) appendBytes(t *testing.T, b []byte) int64 {
	t.Helper()
	f.mu.Lock()
	defer f.mu.Unlock()
	n := int64(len(f.entries))
	hs, err := tlog.StoredHashes(n, b, f)
	if err != nil {
		t.Fatal(err)
	}
	f.hashes = append(f.hashes, hs...)
	f.entries = append(f.entries, b)
	return n
}

// grow logs n more requests' created entries.
func (f *fixture) grow(t *testing.T, n int) {
	t.Helper()
	for range n {
		id := fmt.Sprintf("req-other-%d", len(f.entries))
		f.appendEntry(t, proof.Entry{RequestID: id, Event: proof.EventCreated, At: received, Tenant: "demo", Type: "erasure", SubjectHash: "h-" + id})
	}
}

// rewrite replaces entry i and rebuilds the tree: the log lies about its
// past, yet its new tree heads are properly signed.
func (f *fixture) rewrite(t *testing.T, i int, e proof.Entry) {
	t.Helper()
	f.mu.Lock()
	entries := f.entries
	entries[i] = e.Encode()
	f.entries, f.hashes = nil, nil
	f.mu.Unlock()
	for _, b := range entries {
		f.appendBytes(t, b)
	}
}

// treeHead signs the log as it is now.
func (f *fixture) treeHead(t *testing.T) proof.TreeHead {
	t.Helper()
	th, err := f.signHead()
	if err != nil {
		t.Fatal(err)
	}
	return th
}

func (f *fixture) signHead() (proof.TreeHead, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	n := int64(len(f.entries))
	root, err := tlog.TreeHash(n, f)
	if err != nil {
		return proof.TreeHead{}, err
	}
	f.clock = f.clock.Add(time.Second)
	return proof.SignTreeHead(f.orch, n, root, f.clock), nil
}

// certificate issues the certificate of erasure request id, as the
// orchestrator does when the request ends at completed (to the
// millisecond): accounts erased everything, billing kept invoices under
// accounting law. The bytes are what the server sends: the encoding and
// a newline.
func (f *fixture) certificate(t *testing.T, id string, completed time.Time) []byte {
	t.Helper()
	dl := deadline.OneMonth(received)
	c := proof.Certificate{
		RequestID: id, Tenant: "demo", Type: "erasure", SubjectHash: "h-" + id,
		ReceivedAt: received, Deadline: dl, CompletedAt: completed,
		State: "partially_retained", DeadlineMet: !completed.After(dl),
	}
	logged := []int64{f.appendEntry(t, proof.Entry{
		RequestID: id, Event: proof.EventCreated, At: received, Tenant: c.Tenant, Type: c.Type,
		SubjectHash: c.SubjectHash, ReceivedAt: &received, Deadline: &dl,
	})}
	receipts := []*lethev1.Receipt{{
		System: "accounts", Outcome: lethev1.Outcome_OUTCOME_ERASED,
		Counts: []*lethev1.CategoryCount{{Category: "login_history", Count: 3}, {Category: "profile", Count: 1}},
	}, {
		System: "billing", Outcome: lethev1.Outcome_OUTCOME_RETAINED, Remaining: 2,
		Counts:      []*lethev1.CategoryCount{{Category: "invoice", Count: 2}},
		LegalBasis:  "Art. 17(3)(b) GDPR: accounting law",
		RetainUntil: timestamppb.New(time.Date(2036, 12, 31, 0, 0, 0, 0, time.UTC)),
	}}
	for i, r := range receipts {
		r.RequestId, r.TaskId, r.Action, r.Attempt = id, id+"."+r.System, lethev1.Action_ACTION_ERASE, 1
		r.ConnectorTime = timestamppb.New(received.Add(time.Duration(i+1) * time.Minute))
		if err := proof.SignReceipt(f.signers[r.System], r); err != nil {
			t.Fatal(err)
		}
		b, err := proto.Marshal(r)
		if err != nil {
			t.Fatal(err)
		}
		res, err := proof.SystemResultOf(b)
		if err != nil {
			t.Fatal(err)
		}
		c.Systems = append(c.Systems, res)
		h, err := proof.ReceiptHash(r)
		if err != nil {
			t.Fatal(err)
		}
		logged = append(logged, f.appendEntry(t, proof.Entry{
			RequestID: id, Event: proof.EventReceiptAccepted, At: r.ConnectorTime.AsTime(),
			System: r.System, Attempt: 1, Outcome: res.Outcome, ReceiptHash: hex.EncodeToString(h[:]),
		}))
	}
	logged = append(logged, f.appendEntry(t, proof.Entry{RequestID: id, Event: proof.EventFulfilled, At: completed}))

	f.mu.Lock()
	if f.clock.Before(completed) {
		f.clock = completed // the tree head is signed after the last entry
	}
	f.mu.Unlock()
	c.Log.TreeHead = f.treeHead(t)
	f.mu.Lock()
	for _, i := range logged {
		p, err := tlog.ProveRecord(c.Log.TreeHead.Size, i, f)
		if err != nil {
			t.Fatal(err)
		}
		c.Log.Entries = append(c.Log.Entries, proof.LoggedEntry{Index: i, Entry: f.entries[i], Proof: p})
	}
	f.mu.Unlock()
	c.Sign(f.orch)
	return append(c.Encode(), '\n')
}

// writeFile writes b to a new file in dir and returns its path.
func writeFile(t *testing.T, dir, name string, b []byte) string {
	t.Helper()
	p := filepath.Join(dir, name)
	if err := os.WriteFile(p, b, 0o644); err != nil {
		t.Fatal(err)
	}
	return p
}

// proofServer serves the orchestrator's proof endpoints from a fixture,
// following their contract: GET /v1/keys (the keys file), the
// certificates of ended requests (409 while a request runs, 404 unknown),
// GET /v1/log/tree-head (signed now) and GET /v1/log/consistency.
type proofServer struct {
	*httptest.Server
	f *fixture

	mu          sync.Mutex
	certs       map[string][]byte // certificate bytes as issued, by request id
	running     map[string]bool   // requests that have not ended
	keys        []byte            // when set, served instead of the keys file
	tamperProof bool              // flip a bit of every consistency proof
}

func newProofServer(t *testing.T, f *fixture) *proofServer {
	t.Helper()
	s := &proofServer{f: f, certs: map[string][]byte{}, running: map[string]bool{}}
	mux := http.NewServeMux()
	mux.HandleFunc("GET /v1/keys", func(w http.ResponseWriter, r *http.Request) {
		s.mu.Lock()
		b := s.keys
		s.mu.Unlock()
		if b == nil {
			var err error
			if b, err = os.ReadFile(f.keysPath); err != nil {
				writeErr(w, http.StatusInternalServerError, "keys unavailable")
				return
			}
		}
		w.Header().Set("Content-Type", "application/json")
		w.Write(b)
	})
	mux.HandleFunc("GET /v1/requests/{id}/certificate", func(w http.ResponseWriter, r *http.Request) { s.certificate(w, r, false) })
	mux.HandleFunc("GET /v1/requests/{id}/certificate.html", func(w http.ResponseWriter, r *http.Request) { s.certificate(w, r, true) })
	mux.HandleFunc("GET /v1/log/tree-head", func(w http.ResponseWriter, r *http.Request) {
		th, err := f.signHead()
		if err != nil {
			writeErr(w, http.StatusInternalServerError, "no tree head")
			return
		}
		writeJSONReply(w, http.StatusOK, th)
	})
	mux.HandleFunc("GET /v1/log/consistency", s.consistency)
	s.Server = httptest.NewServer(mux)
	t.Cleanup(s.Close)
	return s
}

func (s *proofServer) certificate(w http.ResponseWriter, r *http.Request, html bool) {
	id := r.PathValue("id")
	s.mu.Lock()
	b, ok := s.certs[id]
	running := s.running[id]
	s.mu.Unlock()
	switch {
	case running:
		writeErr(w, http.StatusConflict, "request has not ended")
	case !ok:
		writeErr(w, http.StatusNotFound, "request not found")
	case html:
		w.Header().Set("Content-Type", "text/html; charset=utf-8")
		fmt.Fprintf(w, "<!doctype html><title>Certificate of fulfilment %s</title><p>%d bytes</p>\n", id, len(b))
	default:
		w.Header().Set("Content-Type", "application/json")
		w.Write(b)
	}
}

func (s *proofServer) consistency(w http.ResponseWriter, r *http.Request) {
	oldSize, err1 := strconv.ParseInt(r.URL.Query().Get("old"), 10, 64)
	newSize, err2 := strconv.ParseInt(r.URL.Query().Get("new"), 10, 64)
	s.f.mu.Lock()
	size := int64(len(s.f.entries))
	var p tlog.TreeProof
	var err error
	if err1 == nil && err2 == nil && 0 < oldSize && oldSize <= newSize && newSize <= size {
		p, err = tlog.ProveTree(newSize, oldSize, s.f)
	}
	s.f.mu.Unlock()
	switch {
	case err1 != nil || err2 != nil || oldSize < 1 || oldSize > newSize || newSize > size:
		writeErr(w, http.StatusBadRequest, "bad sizes")
		return
	case err != nil:
		writeErr(w, http.StatusInternalServerError, "no proof")
		return
	}
	hashes := []string{}
	for _, h := range p {
		hashes = append(hashes, base64.StdEncoding.EncodeToString(h[:]))
	}
	s.mu.Lock()
	if s.tamperProof && len(p) > 0 {
		b := p[0]
		b[0] ^= 1
		hashes[0] = base64.StdEncoding.EncodeToString(b[:])
	}
	s.mu.Unlock()
	writeJSONReply(w, http.StatusOK, map[string]any{"old": oldSize, "new": newSize, "proof": hashes})
}
