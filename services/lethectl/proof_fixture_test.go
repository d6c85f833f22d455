package main

import (
	"encoding/base64"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"google.golang.org/protobuf/types/known/timestamppb"

	lethev1 "github.com/lethe-dev/lethe/pkg/gen/lethe/v1"
	"github.com/lethe-dev/lethe/pkg/proof"
	"github.com/lethe-dev/lethe/pkg/proof/prooftest"
)

// received is when the tests' requests are received: 2 Mar 2026 (the keys
// are valid from prooftest.KeysFrom, 1 Jan 2026).
var received = time.Date(2026, 3, 2, 9, 0, 0, 0, time.UTC)

// fixture is the proof side of an orchestrator, a prooftest.World: an
// orchestrator key and the keys of accounts and billing (each in its own
// dir, with its .pub entry beside it), a keys file listing all three, and
// a transparency log in memory, which a proofServer serves.
type fixture struct {
	*prooftest.World

	mu    sync.Mutex
	clock time.Time // the tree heads served are signed a second apart
}

func newFixture(t *testing.T) *fixture {
	t.Helper()
	return &fixture{World: prooftest.NewWorld(t, "accounts", "billing"), clock: received}
}

// grow logs n more requests' created entries.
func (f *fixture) grow(n int) {
	for range n {
		id := fmt.Sprintf("req-other-%d", f.Log.Size())
		f.Log.Append(proof.Entry{RequestID: id, Event: proof.EventCreated, At: received, Tenant: "demo", Type: "erasure", SubjectHash: "h-" + id}.Encode())
	}
}

// checkpoint signs a checkpoint of the log as it is now, a second after
// the last head.
func (f *fixture) checkpoint(t *testing.T) []byte {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.clock = f.clock.Add(time.Second)
	return f.Log.CheckpointAt(t, f.Orchestrator, "lethe.example/log", f.Log.Size(), f.clock)
}

// treeHead signs the log as it is now, a second after the last head.
func (f *fixture) treeHead() proof.TreeHead {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.clock = f.clock.Add(time.Second)
	return f.Log.Head(f.Orchestrator, f.clock)
}

// answers: accounts erased everything, billing kept invoices under
// accounting law.
var answers = []prooftest.Answer{{
	System: "accounts", Outcome: lethev1.Outcome_OUTCOME_ERASED,
	Receipt: &lethev1.Receipt{Counts: []*lethev1.CategoryCount{{Category: "login_history", Count: 3}, {Category: "profile", Count: 1}}},
}, {
	System: "billing", Outcome: lethev1.Outcome_OUTCOME_RETAINED,
	Receipt: &lethev1.Receipt{
		Remaining:   2,
		Counts:      []*lethev1.CategoryCount{{Category: "invoice", Count: 2}},
		LegalBasis:  "Art. 17(3)(b) GDPR: accounting law",
		RetainUntil: timestamppb.New(time.Date(2036, 12, 31, 0, 0, 0, 0, time.UTC)),
	},
}}

// certificate issues the certificate of erasure request id, received at
// received and ended at completed (to the millisecond), partially
// retained: the answers above, a minute and two after receipt, and only
// the log entries the certificate needs. The bytes are what the server
// sends: the encoding and a newline.
func (f *fixture) certificate(t *testing.T, id string, completed time.Time) []byte {
	t.Helper()
	return f.issue(t, id, prooftest.Erasure{Completed: completed, Minimal: true}, false)
}

// issue issues the certificate of erasure request id carried out as e says
// (received at received and answered as above unless it says otherwise),
// and, with followUp, ended again once billing's deferred erasure ran at
// its retain_until date (billing then erased). The bytes are what the
// server sends.
func (f *fixture) issue(t *testing.T, id string, e prooftest.Erasure, followUp bool) []byte {
	t.Helper()
	if e.Received.IsZero() {
		e.Received = received
	}
	if e.Answers == nil {
		e.Answers = answers
	}
	r := f.Erase(t, id, e)
	if followUp {
		f.FollowUp(t, r, prooftest.FollowUp{})
	}
	return append(f.Certificate(t, r).Encode(), '\n')
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
// following their contract: the bearer token testToken, GET /v1/keys (the keys file), the
// certificates of ended requests (409 while a request runs, 404 unknown),
// GET /v1/log/tree-head (signed now) and GET /v1/log/consistency.
type proofServer struct {
	*httptest.Server
	f *fixture

	mu           sync.Mutex
	certs        map[string][]byte // certificate bytes as issued, by request id
	running      map[string]bool   // requests that have not ended
	keys         []byte            // when set, served instead of the keys file
	tamperProof  bool              // flip a bit of every consistency proof
	corruptTiles bool              // flip a bit of every tile served
	// unwitnessed counts, per ended request, the 409s its certificate
	// answers before it is issued (witnesses yet to cosign).
	unwitnessed map[string]int
}

func newProofServer(t *testing.T, f *fixture) *proofServer {
	t.Helper()
	s := &proofServer{f: f, certs: map[string][]byte{}, running: map[string]bool{}, unwitnessed: map[string]int{}}
	mux := http.NewServeMux()
	mux.HandleFunc("GET /v1/keys", func(w http.ResponseWriter, r *http.Request) {
		s.mu.Lock()
		b := s.keys
		s.mu.Unlock()
		if b == nil {
			var err error
			if b, err = os.ReadFile(f.KeysPath); err != nil {
				writeErr(w, http.StatusInternalServerError, "keys unavailable")
				return
			}
		}
		w.Header().Set("Content-Type", "application/json")
		w.Write(b)
	})
	mux.HandleFunc("GET /v1/requests/{id}/certificate", func(w http.ResponseWriter, r *http.Request) { s.certificate(w, r, false) })
	mux.HandleFunc("GET /v1/requests/{id}", func(w http.ResponseWriter, r *http.Request) {
		s.mu.Lock()
		_, ended := s.certs[r.PathValue("id")]
		s.mu.Unlock()
		if !ended {
			writeErr(w, http.StatusNotFound, "request not found")
			return
		}
		writeJSONReply(w, http.StatusOK, snapshot(r.PathValue("id"), "erasure", "fulfilled", received.AddDate(0, 1, 0), received.Format(time.RFC3339)))
	})
	mux.HandleFunc("GET /v1/requests/{id}/certificate.html", func(w http.ResponseWriter, r *http.Request) { s.certificate(w, r, true) })
	mux.HandleFunc("GET /v1/log/tree-head", func(w http.ResponseWriter, r *http.Request) {
		writeJSONReply(w, http.StatusOK, f.treeHead())
	})
	mux.HandleFunc("GET /v1/log/consistency", s.consistency)
	mux.HandleFunc("GET /log/checkpoint", func(w http.ResponseWriter, r *http.Request) {
		w.Write(f.checkpoint(t))
	})
	mux.HandleFunc("GET /log/tile/", func(w http.ResponseWriter, r *http.Request) {
		tile, err := proof.ParseTilePath(strings.TrimPrefix(r.URL.Path, "/log/"))
		if err != nil {
			writeErr(w, http.StatusNotFound, "no such tile")
			return
		}
		b, err := f.Log.Tile(tile)
		if err != nil {
			writeErr(w, http.StatusNotFound, err.Error())
			return
		}
		if s.corruptTiles {
			b[len(b)-1] ^= 1
		}
		w.Write(b)
	})
	s.Server = httptest.NewServer(requireBearer(testToken, mux))
	t.Cleanup(s.Close)
	return s
}

func (s *proofServer) certificate(w http.ResponseWriter, r *http.Request, html bool) {
	id := r.PathValue("id")
	s.mu.Lock()
	b, ok := s.certs[id]
	running := s.running[id]
	waiting := s.unwitnessed[id] > 0
	if waiting {
		s.unwitnessed[id]--
	}
	s.mu.Unlock()
	switch {
	case running:
		writeErr(w, http.StatusConflict, "request has not ended")
	case waiting:
		writeErr(w, http.StatusConflict, "no certificate yet: it is issued when the request ends (and, with witnesses, once they have cosigned the log's checkpoint)")
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
	if err1 != nil || err2 != nil || oldSize < 1 || oldSize > newSize || newSize > s.f.Log.Size() {
		writeErr(w, http.StatusBadRequest, "bad sizes")
		return
	}
	// The log only grows (a rewrite keeps its size): the sizes stay valid.
	p := s.f.Log.ProveTree(oldSize, newSize)
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
