// Package prooftest provides what tests of certificates of fulfilment need,
// as net/http/httptest does for HTTP: a transparency log in memory
// ([MemLog]) and a [World] that holds real keys and carries out erasure
// requests as the orchestrator does, logging their events and issuing
// signed certificates that [proof.Verify] accepts. A test then changes what
// it wants to see caught.
//
//	w := prooftest.NewWorld(t)
//	r := w.Erase(t, "req-1", prooftest.Erasure{})
//	c := w.Certificate(t, r)
//	if err := w.Verify(c); err != nil { ... }
//
// Everything is deterministic but the keys: times are fixed (keys valid
// from [KeysFrom], requests received at [DefaultReceived] unless told).
package prooftest

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/lethe-dev/lethe/pkg/deadline"
	lethev1 "github.com/lethe-dev/lethe/pkg/gen/lethe/v1"
	"github.com/lethe-dev/lethe/pkg/proof"
)

var (
	// KeysFrom is when a World's keys come into use (1 Jan 2026): every
	// request is later.
	KeysFrom = time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	// DefaultReceived is when a request is received unless told otherwise.
	DefaultReceived = time.Date(2026, 2, 10, 9, 30, 0, 0, time.UTC)
)

// Tenant is the tenant of every request a World carries out.
const Tenant = "demo"

// NewSigner makes a key pair for owner (proof.RoleOrchestrator or a system
// name) valid from notBefore, in a fresh directory, as a connector or the
// orchestrator does on first start. It returns the signer and the path of
// the public entry written beside the private key (what `lethectl keys add`
// reads). The key is in no key set.
func NewSigner(tb testing.TB, owner string, notBefore time.Time) (*proof.Signer, string) {
	tb.Helper()
	return newSigner(tb, tb.TempDir(), owner, notBefore)
}

func newSigner(tb testing.TB, dir, owner string, notBefore time.Time) (*proof.Signer, string) {
	tb.Helper()
	path := filepath.Join(dir, owner, "signing.key")
	s, err := proof.LoadOrCreateSigner(path, owner, notBefore)
	if err != nil {
		tb.Fatalf("signer for %s: %v", owner, err)
	}
	return s, path + ".pub"
}

// World is what an orchestrator holds: its signer, the connectors'
// signers, the keys file registering all of them, and the transparency log
// every request is logged in.
type World struct {
	// Dir holds each owner's key, DIR/OWNER/signing.key, with its public
	// entry beside it (see [World.PubPath]), and the keys file.
	Dir string
	// KeysPath is the keys file (proof.WriteKeySet) of Keys, in Dir.
	KeysPath     string
	Orchestrator *proof.Signer
	// Connectors are the connectors' signers, by system.
	Connectors map[string]*proof.Signer
	// Keys registers the orchestrator's and the connectors' keys.
	Keys proof.KeySet
	Log  *MemLog
}

// NewWorld makes the orchestrator's key and one connector key per system,
// all valid from [KeysFrom], in a temporary directory, and an empty log.
// With no systems, they are accounts, billing and crm: those that answer
// when [Erasure] names no answers.
func NewWorld(tb testing.TB, systems ...string) *World {
	tb.Helper()
	if len(systems) == 0 {
		for _, a := range defaultAnswers {
			systems = append(systems, a.System)
		}
	}
	w := &World{Dir: tb.TempDir(), Connectors: map[string]*proof.Signer{}, Log: &MemLog{}}
	w.Orchestrator, _ = newSigner(tb, w.Dir, proof.RoleOrchestrator, KeysFrom)
	w.Keys.Add(w.Orchestrator.Key)
	for _, sys := range systems {
		w.Connectors[sys], _ = newSigner(tb, w.Dir, sys, KeysFrom)
		w.Keys.Add(w.Connectors[sys].Key)
	}
	if err := w.Keys.Validate(); err != nil {
		tb.Fatalf("keys: %v", err)
	}
	w.KeysPath = filepath.Join(w.Dir, "keys.json")
	if err := proof.WriteKeySet(w.KeysPath, w.Keys); err != nil {
		tb.Fatalf("keys file: %v", err)
	}
	return w
}

// PubPath is the public entry of owner's key (a system name or
// proof.RoleOrchestrator), as its owner wrote it on first start.
func (w *World) PubPath(owner string) string {
	return filepath.Join(w.Dir, owner, "signing.key.pub")
}

// Answer is what one system does for a request.
type Answer struct {
	System  string
	Outcome lethev1.Outcome
	// DeadLetter: the system never answered; its task ran out of
	// attempts. Outcome is then ignored.
	DeadLetter bool
	// Action, when set, is the action the connector's receipt says it did
	// (ACTION_ERASE otherwise, as the request asks).
	Action lethev1.Action
	// Receipt, when set, gives the receipt's content (counts, remaining,
	// legal basis, retain until, detail); the World fills in the rest
	// (request, task, system, action, outcome, time, attempt) and signs
	// it. It is copied, never changed. Unset, [World.Receipt]'s content
	// for the outcome is used.
	Receipt *lethev1.Receipt
}

// defaultAnswers: one system erased, one retained by law, one held nothing.
var defaultAnswers = []Answer{
	{System: "accounts", Outcome: lethev1.Outcome_OUTCOME_ERASED},
	{System: "billing", Outcome: lethev1.Outcome_OUTCOME_RETAINED},
	{System: "crm", Outcome: lethev1.Outcome_OUTCOME_NOT_FOUND},
}

// Erasure says how an erasure request goes. The zero value is a request
// received at [DefaultReceived] and fulfilled three days later: accounts
// erased the subject's data, billing retained invoices by law, crm held
// nothing.
type Erasure struct {
	Received  time.Time // zero: DefaultReceived
	Completed time.Time // zero: three days after Received
	// Answers are the systems' answers, in order: the i-th comes i+1
	// minutes after receipt. Nil: the default answers above.
	Answers []Answer
	// ExtendTo, when set, is the deadline the request was extended to.
	ExtendTo *time.Time
	// State, when set, is the state the request ended in, instead of the
	// one the answers give ("failed" if a system failed or ran out of
	// attempts, "fulfilled" otherwise). The log's final event follows it.
	State string
	// Minimal logs only the entries a certificate needs: created, each
	// system's answer (receipt_accepted or dead_letter), extended if
	// ExtendTo is set, and the end. Otherwise, as the orchestrator does,
	// verified and each system's task_published are logged too.
	Minimal bool
}

// Request is an erasure request a World carried out.
type Request struct {
	ID          string
	SubjectHash string // as the orchestrator's keyed hash would be: hex, 64 digits
	Received    time.Time
	Deadline    time.Time
	// OriginalDeadline is set when the deadline was extended.
	OriginalDeadline *time.Time
	Completed        time.Time
	State            string
	// Entries are the indexes of the request's entries in the World's log.
	Entries []int64

	results []proof.SystemResult
}

// Erase carries out erasure request id as an orchestrator would, appending
// its events to the log, and returns it. Issue its certificate with
// [World.Certificate].
func (w *World) Erase(tb testing.TB, id string, e Erasure) *Request {
	tb.Helper()
	if e.Received.IsZero() {
		e.Received = DefaultReceived
	}
	if e.Completed.IsZero() {
		e.Completed = e.Received.Add(72 * time.Hour)
	}
	if e.Answers == nil {
		e.Answers = defaultAnswers
	}
	sum := sha256.Sum256([]byte("subject key|" + id))
	r := &Request{
		ID:          id,
		SubjectHash: hex.EncodeToString(sum[:]),
		Received:    e.Received,
		Deadline:    deadline.OneMonth(e.Received),
		Completed:   e.Completed,
	}
	add := func(en proof.Entry) {
		en.RequestID = id
		r.Entries = append(r.Entries, w.Log.Append(en.Encode()))
	}
	received, due := r.Received, r.Deadline
	add(proof.Entry{Event: proof.EventCreated, At: received, Tenant: Tenant, Type: "erasure", SubjectHash: r.SubjectHash, ReceivedAt: &received, Deadline: &due})
	if !e.Minimal {
		add(proof.Entry{Event: proof.EventVerified, At: received.Add(10 * time.Second)})
	}
	if e.ExtendTo != nil {
		orig, ext := r.Deadline, *e.ExtendTo
		r.OriginalDeadline, r.Deadline = &orig, ext
		add(proof.Entry{Event: proof.EventExtended, At: received.Add(20 * time.Second), Deadline: &ext, Detail: "complex request"})
	}
	failed := false
	for i, a := range e.Answers {
		if !e.Minimal {
			add(proof.Entry{Event: proof.EventTaskPublished, At: received.Add(30 * time.Second), System: a.System, Attempt: 1})
		}
		at := received.Add(time.Duration(i+1) * time.Minute)
		if a.DeadLetter {
			failed = true
			add(proof.Entry{Event: proof.EventDeadLetter, At: at, System: a.System, Attempt: 5, Detail: "out of attempts"})
			r.results = append(r.results, proof.SystemResult{System: a.System, Outcome: proof.OutcomeDeadLetter, Detail: "out of attempts"})
			continue
		}
		rc := w.receipt(tb, id, a, at)
		raw, err := proto.Marshal(rc)
		if err != nil {
			tb.Fatalf("receipt of %s: %v", a.System, err)
		}
		res, err := proof.SystemResultOf(raw)
		if err != nil {
			tb.Fatalf("system result of %s: %v", a.System, err)
		}
		h, err := proof.ReceiptHash(rc)
		if err != nil {
			tb.Fatalf("receipt hash of %s: %v", a.System, err)
		}
		add(proof.Entry{Event: proof.EventReceiptAccepted, At: at, System: a.System, Attempt: 1, Outcome: res.Outcome, ReceiptHash: hex.EncodeToString(h[:])})
		r.results = append(r.results, res)
		if a.Outcome == lethev1.Outcome_OUTCOME_FAILED {
			failed = true
		}
	}
	slices.SortFunc(r.results, func(a, b proof.SystemResult) int { return strings.Compare(a.System, b.System) })
	r.State = "fulfilled"
	if failed {
		r.State = "failed"
	}
	if e.State != "" {
		r.State = e.State
	}
	final := proof.EventFulfilled
	if r.State == "failed" {
		final = proof.EventFailed
	}
	add(proof.Entry{Event: final, At: r.Completed})
	return r
}

// Receipt is system's signed answer, at the given connector time, to
// request id's erasure task. Its content follows the outcome: erased,
// login_history 12 and profile 1; retained, invoices 3 and profile 1, 3
// remaining, kept under tax law until the end of 2036; failed, "permission
// denied". It is not logged: the log never accepted it.
func (w *World) Receipt(tb testing.TB, id, system string, outcome lethev1.Outcome, at time.Time) *lethev1.Receipt {
	tb.Helper()
	return w.receipt(tb, id, Answer{System: system, Outcome: outcome}, at)
}

func (w *World) receipt(tb testing.TB, id string, a Answer, at time.Time) *lethev1.Receipt {
	tb.Helper()
	r := &lethev1.Receipt{}
	switch {
	case a.Receipt != nil:
		r = proto.CloneOf(a.Receipt)
	case a.Outcome == lethev1.Outcome_OUTCOME_ERASED:
		r.Counts = []*lethev1.CategoryCount{{Category: "login_history", Count: 12}, {Category: "profile", Count: 1}}
	case a.Outcome == lethev1.Outcome_OUTCOME_RETAINED:
		r.Counts = []*lethev1.CategoryCount{{Category: "invoices", Count: 3}, {Category: "profile", Count: 1}}
		r.LegalBasis = "Art. 17(3)(b) GDPR: tax law requires invoices for 10 years"
		r.RetainUntil = timestamppb.New(time.Date(2036, 12, 31, 0, 0, 0, 0, time.UTC))
		r.Remaining = 3
	case a.Outcome == lethev1.Outcome_OUTCOME_FAILED:
		r.Detail = "permission denied"
	}
	r.RequestId, r.TaskId, r.System = id, id+"."+a.System, a.System
	r.Action, r.Outcome = lethev1.Action_ACTION_ERASE, a.Outcome
	if a.Action != lethev1.Action_ACTION_UNSPECIFIED {
		r.Action = a.Action
	}
	r.ConnectorTime, r.Attempt = timestamppb.New(at), 1
	s, ok := w.Connectors[a.System]
	if !ok {
		tb.Fatalf("no connector key for system %s", a.System)
	}
	if err := proof.SignReceipt(s, r); err != nil {
		tb.Fatalf("sign receipt of %s: %v", a.System, err)
	}
	return r
}

// Certificate issues request r's certificate against the log as it stands,
// signed by the orchestrator, with a tree head signed a minute after the
// request ended.
func (w *World) Certificate(tb testing.TB, r *Request) *proof.Certificate {
	tb.Helper()
	size := w.Log.Size()
	c := &proof.Certificate{
		RequestID:        r.ID,
		Tenant:           Tenant,
		Type:             "erasure",
		SubjectHash:      r.SubjectHash,
		ReceivedAt:       r.Received,
		Deadline:         r.Deadline,
		OriginalDeadline: r.OriginalDeadline,
		CompletedAt:      r.Completed,
		State:            r.State,
		DeadlineMet:      !r.Completed.After(r.Deadline),
		Systems:          slices.Clone(r.results),
		Log:              proof.LogProof{TreeHead: w.Log.HeadAt(w.Orchestrator, size, r.Completed.Add(time.Minute))},
	}
	for _, i := range r.Entries {
		c.Log.Entries = append(c.Log.Entries, w.Log.Logged(i, size))
	}
	c.Sign(w.Orchestrator)
	return c
}

// Verify runs proof.Verify over the certificate's encoding with the World's
// keys.
func (w *World) Verify(c *proof.Certificate) error {
	_, err := proof.Verify(c.Encode(), w.Keys)
	return err
}

// Clone deep-copies a certificate through its encoding, for a test to
// change the copy.
func Clone(tb testing.TB, c *proof.Certificate) *proof.Certificate {
	tb.Helper()
	out := &proof.Certificate{}
	if err := json.Unmarshal(c.Encode(), out); err != nil {
		tb.Fatalf("certificate does not decode: %v", err)
	}
	return out
}
