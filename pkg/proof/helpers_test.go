package proof_test

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"golang.org/x/mod/sumdb/tlog"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/lethe-dev/lethe/pkg/deadline"
	lethev1 "github.com/lethe-dev/lethe/pkg/gen/lethe/v1"
	"github.com/lethe-dev/lethe/pkg/proof"
)

// keysCreated is when the tests' keys come into use; every request is later.
var keysCreated = time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)

// memLog is a transparency log in memory: the stored hashes of tlog, in the
// order tlog numbers them, and the entries themselves.
type memLog struct {
	hashes  []tlog.Hash
	entries [][]byte
}

func newMemLog(t testing.TB, entries ...[]byte) *memLog {
	l := &memLog{}
	for _, e := range entries {
		l.append(t, e)
	}
	return l
}

func (l *memLog) size() int64 { return int64(len(l.entries)) }

func (l *memLog) reader() tlog.HashReader {
	return tlog.HashReaderFunc(func(indexes []int64) ([]tlog.Hash, error) {
		out := make([]tlog.Hash, len(indexes))
		for i, x := range indexes {
			if x < 0 || x >= int64(len(l.hashes)) {
				return nil, fmt.Errorf("stored hash %d not in a log of %d hashes", x, len(l.hashes))
			}
			out[i] = l.hashes[x]
		}
		return out, nil
	})
}

// append adds entry and returns its index.
func (l *memLog) append(t testing.TB, entry []byte) int64 {
	t.Helper()
	n := l.size()
	if got, want := int64(len(l.hashes)), tlog.StoredHashIndex(0, n); got != want {
		t.Fatalf("log of %d entries holds %d hashes, want %d", n, got, want)
	}
	hs, err := tlog.StoredHashes(n, entry, l.reader())
	if err != nil {
		t.Fatalf("stored hashes of entry %d: %v", n, err)
	}
	l.hashes = append(l.hashes, hs...)
	l.entries = append(l.entries, slices.Clone(entry))
	return n
}

func (l *memLog) root(t testing.TB, size int64) tlog.Hash {
	t.Helper()
	h, err := tlog.TreeHash(size, l.reader())
	if err != nil {
		t.Fatalf("tree hash of size %d: %v", size, err)
	}
	return h
}

// head signs the tree of the given size.
func (l *memLog) head(t testing.TB, s *proof.Signer, size int64, at time.Time) proof.TreeHead {
	t.Helper()
	return proof.SignTreeHead(s, size, l.root(t, size), at)
}

func (l *memLog) proveRecord(t testing.TB, index, size int64) tlog.RecordProof {
	t.Helper()
	p, err := tlog.ProveRecord(size, index, l.reader())
	if err != nil {
		t.Fatalf("prove record %d in tree %d: %v", index, size, err)
	}
	return p
}

func (l *memLog) proveTree(t testing.TB, older, newer int64) tlog.TreeProof {
	t.Helper()
	p, err := tlog.ProveTree(newer, older, l.reader())
	if err != nil {
		t.Fatalf("prove tree %d in tree %d: %v", older, newer, err)
	}
	return p
}

// newSigner makes a key pair in a fresh directory, as a connector or the
// orchestrator does on first start.
func newSigner(t testing.TB, owner string, now time.Time) *proof.Signer {
	t.Helper()
	s, err := proof.LoadOrCreateSigner(filepath.Join(t.TempDir(), "keys", owner+".key"), owner, now)
	if err != nil {
		t.Fatalf("signer for %s: %v", owner, err)
	}
	return s
}

// world is what an orchestrator holds: its signer, the connectors'
// signers, the keys file, and the transparency log shared by all requests.
type world struct {
	orch  *proof.Signer
	conns map[string]*proof.Signer
	keys  proof.KeySet
	log   *memLog
}

var testSystems = []string{"accounts", "billing", "crm"}

func newWorld(t testing.TB) *world {
	t.Helper()
	w := &world{orch: newSigner(t, proof.RoleOrchestrator, keysCreated), conns: map[string]*proof.Signer{}, log: &memLog{}}
	w.keys.Add(w.orch.Key)
	for _, sys := range testSystems {
		w.conns[sys] = newSigner(t, sys, keysCreated)
		w.keys.Add(w.conns[sys].Key)
	}
	if err := w.keys.Validate(); err != nil {
		t.Fatalf("keys: %v", err)
	}
	return w
}

// answer is what one system does for a request.
type answer struct {
	system  string
	outcome lethev1.Outcome
	// deadLetter: the system never answered; its task ran out of attempts.
	deadLetter bool
	// action, when set, is the action the connector says it did.
	action lethev1.Action
}

// defaultAnswers: one system erased, one retained by law, one held nothing.
var defaultAnswers = []answer{
	{system: "accounts", outcome: lethev1.Outcome_OUTCOME_ERASED},
	{system: "billing", outcome: lethev1.Outcome_OUTCOME_RETAINED},
	{system: "crm", outcome: lethev1.Outcome_OUTCOME_NOT_FOUND},
}

// request is an erasure request the world carried out: its log entries
// (by index) and the systems' results.
type request struct {
	id          string
	subjectHash string
	received    time.Time
	deadline    time.Time
	original    *time.Time // set when the deadline was extended
	completed   time.Time
	state       string
	entries     []int64
	results     []proof.SystemResult
	receipts    map[string]*lethev1.Receipt
}

type requestOpts struct {
	received  time.Time
	completed time.Time // zero: three days after receipt
	answers   []answer  // nil: defaultAnswers
	extendTo  *time.Time
	// state overrides the state the answers give (and the log records).
	state string
}

// erase carries out an erasure request as an orchestrator would, appending
// its events to the log.
func (w *world) erase(t testing.TB, id string, o requestOpts) *request {
	t.Helper()
	if o.received.IsZero() {
		o.received = time.Date(2026, 2, 10, 9, 30, 0, 0, time.UTC)
	}
	if o.completed.IsZero() {
		o.completed = o.received.Add(72 * time.Hour)
	}
	if o.answers == nil {
		o.answers = defaultAnswers
	}
	sum := sha256.Sum256([]byte("subject key|" + id))
	r := &request{
		id:          id,
		subjectHash: hex.EncodeToString(sum[:]),
		received:    o.received,
		deadline:    deadline.OneMonth(o.received),
		completed:   o.completed,
		receipts:    map[string]*lethev1.Receipt{},
	}
	add := func(e proof.Entry) {
		e.RequestID = id
		r.entries = append(r.entries, w.log.append(t, e.Encode()))
	}
	received, due := r.received, r.deadline
	add(proof.Entry{Event: proof.EventCreated, At: received, Tenant: "demo", Type: "erasure", SubjectHash: r.subjectHash, ReceivedAt: &received, Deadline: &due})
	add(proof.Entry{Event: proof.EventVerified, At: received.Add(time.Minute)})
	if o.extendTo != nil {
		orig, ext := r.deadline, *o.extendTo
		r.original, r.deadline = &orig, ext
		add(proof.Entry{Event: proof.EventExtended, At: received.Add(90 * time.Second), Deadline: &ext, Detail: "complex request"})
	}
	failed := false
	for _, a := range o.answers {
		add(proof.Entry{Event: proof.EventTaskPublished, At: received.Add(2 * time.Minute), System: a.system, Attempt: 1})
		if a.deadLetter {
			failed = true
			add(proof.Entry{Event: proof.EventDeadLetter, At: received.Add(time.Hour), System: a.system, Attempt: 5, Detail: "out of attempts"})
			r.results = append(r.results, proof.SystemResult{System: a.system, Outcome: proof.OutcomeDeadLetter, Detail: "out of attempts"})
			continue
		}
		rc := w.receipt(t, id, a.system, a.outcome, received.Add(10*time.Minute))
		if a.action != lethev1.Action_ACTION_UNSPECIFIED {
			rc.Action = a.action
			if err := proof.SignReceipt(w.conns[a.system], rc); err != nil {
				t.Fatal(err)
			}
		}
		raw, err := proto.Marshal(rc)
		if err != nil {
			t.Fatal(err)
		}
		res, err := proof.SystemResultOf(raw)
		if err != nil {
			t.Fatalf("system result of %s: %v", a.system, err)
		}
		h, err := proof.ReceiptHash(rc)
		if err != nil {
			t.Fatal(err)
		}
		add(proof.Entry{Event: proof.EventReceiptAccepted, At: received.Add(11 * time.Minute), System: a.system, Attempt: 1, Outcome: res.Outcome, ReceiptHash: hex.EncodeToString(h[:])})
		r.results = append(r.results, res)
		r.receipts[a.system] = rc
		if a.outcome == lethev1.Outcome_OUTCOME_FAILED {
			failed = true
		}
	}
	slices.SortFunc(r.results, func(a, b proof.SystemResult) int { return strings.Compare(a.System, b.System) })
	r.state = "fulfilled"
	if failed {
		r.state = "failed"
	}
	if o.state != "" {
		r.state = o.state
	}
	final := proof.EventFulfilled
	if r.state == "failed" {
		final = proof.EventFailed
	}
	add(proof.Entry{Event: final, At: r.completed})
	return r
}

// receipt is a connector's signed answer to request id's task.
func (w *world) receipt(t testing.TB, id, system string, outcome lethev1.Outcome, at time.Time) *lethev1.Receipt {
	t.Helper()
	r := &lethev1.Receipt{
		RequestId:     id,
		TaskId:        id + "." + system,
		System:        system,
		Action:        lethev1.Action_ACTION_ERASE,
		Outcome:       outcome,
		ConnectorTime: timestamppb.New(at),
		Attempt:       1,
	}
	switch outcome {
	case lethev1.Outcome_OUTCOME_ERASED:
		r.Counts = []*lethev1.CategoryCount{{Category: "login_history", Count: 12}, {Category: "profile", Count: 1}}
	case lethev1.Outcome_OUTCOME_RETAINED:
		r.Counts = []*lethev1.CategoryCount{{Category: "invoices", Count: 3}, {Category: "profile", Count: 1}}
		r.LegalBasis = "Art. 17(3)(b) GDPR: tax law requires invoices for 10 years"
		r.RetainUntil = timestamppb.New(time.Date(2036, 12, 31, 0, 0, 0, 0, time.UTC))
		r.Remaining = 3
	case lethev1.Outcome_OUTCOME_FAILED:
		r.Detail = "permission denied"
	}
	if err := proof.SignReceipt(w.conns[system], r); err != nil {
		t.Fatalf("sign receipt: %v", err)
	}
	return r
}

// certificate issues request r's certificate against the log as it stands.
func (w *world) certificate(t testing.TB, r *request) *proof.Certificate {
	t.Helper()
	size := w.log.size()
	c := &proof.Certificate{
		RequestID:        r.id,
		Tenant:           "demo",
		Type:             "erasure",
		SubjectHash:      r.subjectHash,
		ReceivedAt:       r.received,
		Deadline:         r.deadline,
		OriginalDeadline: r.original,
		CompletedAt:      r.completed,
		State:            r.state,
		DeadlineMet:      !r.completed.After(r.deadline),
		Systems:          slices.Clone(r.results),
		Log:              proof.LogProof{TreeHead: w.log.head(t, w.orch, size, r.completed.Add(time.Minute))},
	}
	for _, i := range r.entries {
		c.Log.Entries = append(c.Log.Entries, w.loggedEntry(t, i, size))
	}
	c.Sign(w.orch)
	return c
}

func (w *world) loggedEntry(t testing.TB, index, size int64) proof.LoggedEntry {
	t.Helper()
	return proof.LoggedEntry{Index: index, Entry: w.log.entries[index], Proof: w.log.proveRecord(t, index, size)}
}

// verify runs proof.Verify over the certificate's encoding.
func (w *world) verify(c *proof.Certificate) error {
	_, err := proof.Verify(c.Encode(), w.keys)
	return err
}

// clone deep-copies a certificate through its encoding.
func clone(t testing.TB, c *proof.Certificate) *proof.Certificate {
	t.Helper()
	out := &proof.Certificate{}
	if err := json.Unmarshal(c.Encode(), out); err != nil {
		t.Fatalf("certificate does not decode: %v", err)
	}
	return out
}
