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
	"maps"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/lethe-dev/lethe/pkg/deadline"
	lethev1 "github.com/lethe-dev/lethe/pkg/gen/lethe/v1"
	"github.com/lethe-dev/lethe/pkg/lifecycle"
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
	// Origin, when set, names the log, and certificates are of version 2:
	// proved against a checkpoint of it. Unset: version 1, against a
	// signed tree head.
	Origin string
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
// received at [DefaultReceived] and answered three days later: accounts
// erased the subject's data, billing retained invoices by law until the
// end of 2036 (so the request ends partially_retained; see
// [World.FollowUp]), crm held nothing.
type Erasure struct {
	Received time.Time // zero: DefaultReceived
	// Completed is when the request ended: zero, three days after
	// Received.
	Completed time.Time
	// Answers are the systems' answers, in order: the i-th comes i+1
	// minutes after receipt. Nil: the default answers above.
	Answers []Answer
	// Policy is the tenant's deadline policy; nil: the default (UTC, no
	// roll). The request keeps Policy.For(Received), as the orchestrator
	// does, and nil when that is the default.
	Policy *deadline.Spec
	// Extend, when set, extends the deadline (Art. 12(3)).
	Extend *Extend
	// State, when set, is the state the request ended in, instead of the
	// one the answers give (lifecycle.FinalState: failed if a system
	// failed or ran out of attempts; otherwise partially_retained if a
	// system retained data until a date; otherwise fulfilled). The log's
	// final event follows it.
	State lifecycle.State
	// Minimal logs only the entries a certificate needs: created, each
	// system's answer (receipt_accepted or dead_letter), extended and
	// notice_delivered if Extend is set, and the end. Otherwise, as the
	// orchestrator does, verified, each system's task_published and
	// erasure_deferred (for data retained until a date) are logged too.
	Minimal bool
}

// Extend says how a request's deadline was extended: to
// Policy.Extended(received), as the law allows, the only date a certificate
// may show.
type Extend struct {
	At     time.Time // zero: 20 seconds after receipt
	Reason string    // "": DefaultReason
	// Notices are the deliveries of the notice of the extension to the
	// data subject, each logged (notice_delivered), in any order. None:
	// the person was never told, and the extension has no effect.
	Notices []Notice
}

// DefaultReason is the reason of an extension unless told.
const DefaultReason = "the request covers many systems, some of them run by processors"

// Notice is one delivery of the notice of an extension.
type Notice struct {
	At      time.Time // zero: a minute after the extension
	Channel string    // "": "bus"
}

// FollowUp says how the deferred erasure of a request that ended
// partially_retained goes, at the latest retain_until date of its systems.
type FollowUp struct {
	// Answers are the deferred systems' answers, the i-th i+1 minutes
	// after that date. Nil: each system that retained data until a date
	// answers erased, counting what it had kept.
	Answers []Answer
	// Completed is when the request ends again: zero, an hour after that
	// date.
	Completed time.Time
	// State, when set, is the state it ends in, instead of the one the
	// answers give (see [Erasure]).
	State lifecycle.State
}

// Request is an erasure request a World carried out.
type Request struct {
	ID          string
	SubjectHash string // as the orchestrator's keyed hash would be: hex, 64 digits
	Received    time.Time
	// Policy is the deadline policy the request keeps; nil: the default.
	Policy   *deadline.Spec
	Deadline time.Time
	// Extension is set when the deadline was extended. Its notice's
	// deliveries are read from the log when a certificate is issued.
	Extension *proof.Extension
	// Answered is set once the request ended again after a follow-up: when
	// it was first answered (partially_retained).
	Answered  *time.Time
	Completed time.Time
	State     lifecycle.State
	// Entries are the indexes of the request's entries in the World's log,
	// in order.
	Entries []int64

	results []proof.SystemResult
	minimal bool
}

// Erase carries out erasure request id as an orchestrator would, appending
// its events to the log in the order of their times, and returns it. Issue
// its certificate with [World.Certificate].
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
		Completed:   e.Completed,
		minimal:     e.Minimal,
	}
	var policy deadline.Policy
	if e.Policy != nil {
		if spec := e.Policy.For(e.Received); !spec.IsDefault() {
			r.Policy = &spec
		}
	}
	if r.Policy != nil {
		var err error
		if policy, err = r.Policy.Policy(); err != nil {
			tb.Fatalf("deadline policy: %v", err)
		}
	}
	r.Deadline = policy.Deadline(e.Received).UTC()

	var log []proof.Entry
	add := func(en proof.Entry) { log = append(log, en) }
	received, due := r.Received, r.Deadline
	add(proof.Entry{Event: proof.EventCreated, At: received, Tenant: Tenant, Type: lifecycle.Erasure, SubjectHash: r.SubjectHash,
		ReceivedAt: &received, Deadline: &due, DeadlinePolicy: r.Policy})
	if !e.Minimal {
		add(proof.Entry{Event: proof.EventVerified, At: received.Add(10 * time.Second)})
	}
	if x := e.Extend; x != nil {
		at, reason := x.At, x.Reason
		if at.IsZero() {
			at = received.Add(20 * time.Second)
		}
		if reason == "" {
			reason = DefaultReason
		}
		orig, ext := r.Deadline, policy.Extended(e.Received).UTC()
		r.Deadline = ext
		r.Extension = &proof.Extension{At: at.UTC().Truncate(time.Millisecond), Reason: reason, OriginalDeadline: orig}
		add(proof.Entry{Event: proof.EventExtended, At: at, Deadline: &ext, OriginalDeadline: &orig, ReasonSHA256: proof.ReasonHash(reason)})
		for _, n := range x.Notices {
			if n.At.IsZero() {
				n.At = at.Add(time.Minute)
			}
			if n.Channel == "" {
				n.Channel = "bus"
			}
			add(proof.Entry{Event: proof.EventNoticeDelivered, At: n.At, Notice: proof.NoticeExtension, Channel: n.Channel})
		}
	}
	for _, a := range e.Answers {
		if !e.Minimal {
			add(proof.Entry{Event: proof.EventTaskPublished, At: received.Add(30 * time.Second), System: a.System, Attempt: 1})
		}
	}
	for i, a := range e.Answers {
		w.answer(tb, r, a, received.Add(time.Duration(i+1)*time.Minute), add)
	}
	r.State = e.State
	if r.State == "" {
		r.State = stateOf(r.results)
	}
	add(proof.Entry{Event: finalEvent(r.State), At: r.Completed})
	w.append(r, log)
	return r
}

// FollowUp carries out the deferred erasure of r, which ended
// partially_retained, as the orchestrator does at the systems'
// retain_until dates: it logs their new answers and the new end, and r,
// first answered when it ended, ends again (fulfilled when each of them
// erased). Issue the certificate again with [World.Certificate].
func (w *World) FollowUp(tb testing.TB, r *Request, f FollowUp) {
	tb.Helper()
	var deferred []string
	var latest time.Time
	for _, s := range r.results {
		if partOf(s).Defers(lifecycle.Erasure) {
			deferred = append(deferred, s.System)
			if s.RetainUntil.After(latest) {
				latest = *s.RetainUntil
			}
		}
	}
	if len(deferred) == 0 {
		tb.Fatalf("request %s: no system retained data until a date: nothing to follow up", r.ID)
	}
	if f.Answers == nil {
		for _, sys := range deferred {
			f.Answers = append(f.Answers, Answer{System: sys, Outcome: lethev1.Outcome_OUTCOME_ERASED, Receipt: erasedAsKept(r.results, sys)})
		}
	}
	if f.Completed.IsZero() {
		f.Completed = latest.Add(time.Hour)
	}
	var log []proof.Entry
	add := func(en proof.Entry) { log = append(log, en) }
	for _, a := range f.Answers {
		if !r.minimal {
			add(proof.Entry{Event: proof.EventTaskPublished, At: latest, System: a.System, Attempt: 1})
		}
	}
	for i, a := range f.Answers {
		w.answer(tb, r, a, latest.Add(time.Duration(i+1)*time.Minute), add)
	}
	if r.Answered == nil {
		answered := r.Completed
		r.Answered = &answered
	}
	r.Completed = f.Completed
	r.State = f.State
	if r.State == "" {
		r.State = stateOf(r.results)
	}
	add(proof.Entry{Event: finalEvent(r.State), At: r.Completed})
	w.append(r, log)
}

// erasedAsKept is the receipt content of a deferred erasure: what system
// kept, now erased, none remaining.
func erasedAsKept(results []proof.SystemResult, system string) *lethev1.Receipt {
	r := &lethev1.Receipt{}
	for _, s := range results {
		if s.System == system {
			for _, cat := range slices.Sorted(maps.Keys(s.Counts)) {
				r.Counts = append(r.Counts, &lethev1.CategoryCount{Category: cat, Count: s.Counts[cat]})
			}
		}
	}
	return r
}

// answer logs system a's answer at the given time and sets its result,
// replacing an earlier one.
func (w *World) answer(tb testing.TB, r *Request, a Answer, at time.Time, add func(proof.Entry)) {
	tb.Helper()
	var res proof.SystemResult
	if a.DeadLetter {
		add(proof.Entry{Event: proof.EventDeadLetter, At: at, System: a.System, Attempt: 5, Detail: "out of attempts"})
		res = proof.SystemResult{System: a.System, Outcome: lifecycle.DeadLetter, Detail: "out of attempts"}
	} else {
		rc := w.receipt(tb, r.ID, a, at)
		raw, err := proto.Marshal(rc)
		if err != nil {
			tb.Fatalf("receipt of %s: %v", a.System, err)
		}
		if res, err = proof.SystemResultOf(raw); err != nil {
			tb.Fatalf("system result of %s: %v", a.System, err)
		}
		h, err := proof.ReceiptHash(rc)
		if err != nil {
			tb.Fatalf("receipt hash of %s: %v", a.System, err)
		}
		add(proof.Entry{Event: proof.EventReceiptAccepted, At: at, System: a.System, Attempt: 1, Outcome: res.Outcome, ReceiptHash: hex.EncodeToString(h[:])})
		if partOf(res).Defers(lifecycle.Erasure) && !r.minimal {
			add(proof.Entry{Event: proof.EventErasureDeferred, At: at, System: a.System, RetainUntil: res.RetainUntil})
		}
	}
	r.results = slices.DeleteFunc(r.results, func(s proof.SystemResult) bool { return s.System == a.System })
	r.results = append(r.results, res)
	slices.SortFunc(r.results, func(a, b proof.SystemResult) int { return strings.Compare(a.System, b.System) })
}

// append logs entries in the order of their times, as they happened.
func (w *World) append(r *Request, entries []proof.Entry) {
	slices.SortStableFunc(entries, func(a, b proof.Entry) int { return a.At.Compare(b.At) })
	for _, en := range entries {
		en.RequestID = r.ID
		r.Entries = append(r.Entries, w.Log.Append(en.Encode()))
	}
}

// stateOf is the state the systems' answers give to an erasure, as the
// orchestrator and the verifier have it (lifecycle.FinalState).
func stateOf(results []proof.SystemResult) lifecycle.State {
	parts := make([]lifecycle.Part, 0, len(results))
	for _, s := range results {
		parts = append(parts, partOf(s))
	}
	return lifecycle.FinalState(lifecycle.Erasure, parts)
}

// partOf is how a system's part ended, as the request's state depends on
// it.
func partOf(s proof.SystemResult) lifecycle.Part {
	p := lifecycle.Part{Outcome: s.Outcome}
	if s.RetainUntil != nil {
		p.RetainUntil = *s.RetainUntil
	}
	return p
}

// finalEvent is the log event that ends a request in state.
func finalEvent(state lifecycle.State) string {
	switch state {
	case lifecycle.Failed:
		return proof.EventFailed
	case lifecycle.PartiallyRetained:
		return proof.EventPartiallyRetained
	}
	return proof.EventFulfilled
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
// request ended. The extension's notice deliveries are read from the log
// ([proof.NoticeDeliveries]) and deadline_met follows from the answer and
// the effective deadline, as the orchestrator issues them.
func (w *World) Certificate(tb testing.TB, r *Request) *proof.Certificate {
	tb.Helper()
	size := w.Log.Size()
	c := &proof.Certificate{
		RequestID:   r.ID,
		Tenant:      Tenant,
		Type:        lifecycle.Erasure,
		SubjectHash: r.SubjectHash,
		ReceivedAt:  r.Received,
		Deadline:    r.Deadline,
		CompletedAt: r.Completed,
		State:       r.State,
		Systems:     slices.Clone(r.results),
	}
	if signed := r.Completed.Add(time.Minute); w.Origin == "" {
		th := w.Log.HeadAt(w.Orchestrator, size, signed)
		c.Version, c.Log.TreeHead = 1, &th
	} else {
		c.Log.Checkpoint = string(w.Log.CheckpointAt(tb, w.Orchestrator, w.Origin, size, signed))
	}
	if r.Policy != nil {
		p := *r.Policy
		p.Holidays = slices.Clone(p.Holidays)
		c.DeadlinePolicy = &p
	}
	if r.Answered != nil {
		a := *r.Answered
		c.AnsweredAt = &a
	}
	var logged []proof.Entry
	for _, i := range r.Entries {
		le := w.Log.Logged(i, size)
		c.Log.Entries = append(c.Log.Entries, le)
		// An entry a test made undecodable is the verifier's to catch.
		if e, err := proof.DecodeEntry(le.Entry); err == nil {
			logged = append(logged, e)
		}
	}
	if r.Extension != nil {
		x := *r.Extension
		x.NoticeDeliveredAt, x.NoticeChannels = proof.NoticeDeliveries(logged, proof.NoticeExtension)
		c.Extension = &x
	}
	c.DeadlineMet = !c.RespondedAt().After(c.EffectiveDeadline())
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
