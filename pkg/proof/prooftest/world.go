// Package prooftest provides what tests of certificates of fulfilment need,
// as net/http/httptest does for HTTP: a transparency log in memory
// ([MemLog]) and a [World] that holds real keys and carries out requests
// as the orchestrator does, logging their events and issuing signed
// certificates that [proof.Verify] accepts. A test then changes what it
// wants to see caught.
//
//	w := prooftest.NewWorld(t)
//	r := w.Erase(t, "req-1", prooftest.Erasure{})
//	c := w.Certificate(t, r)
//	if err := w.Verify(c); err != nil { ... }
//
// Everything is deterministic but the keys: times are fixed (keys valid
// from [KeysFrom], requests received at [DefaultReceived] unless told). A
// World made by [NewSeededWorld] has fixed keys too, so that what it
// issues is the same, byte for byte, on every run.
package prooftest

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"maps"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/lethe-dev/lethe/pkg/deadline"
	"github.com/lethe-dev/lethe/pkg/exportbundle"
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

// SeededSigner is the signer of owner (proof.RoleOrchestrator or a system
// name), valid from notBefore, whose ed25519 seed is the SHA-256 of
// seed + "/" + owner: the same key on every run, made from a phrase. It is
// for tests and published test vectors only: anyone with the phrase has
// the private key. The key is in no key set.
func SeededSigner(tb testing.TB, seed, owner string, notBefore time.Time) *proof.Signer {
	tb.Helper()
	sum := sha256.Sum256([]byte(seed + "/" + owner))
	s, err := proof.SignerFromSeed(hex.EncodeToString(sum[:]), owner, notBefore)
	if err != nil {
		tb.Fatalf("signer for %s: %v", owner, err)
	}
	return s
}

// World is what an orchestrator holds: its signer, the connectors'
// signers, the keys file registering all of them, and the transparency log
// every request is logged in.
type World struct {
	// Dir holds each owner's key, DIR/OWNER/signing.key, with its public
	// entry beside it (see [World.PubPath]), and the keys file. It is ""
	// in a World made by [NewSeededWorld], which writes no file.
	Dir string
	// KeysPath is the keys file (proof.WriteKeySet) of Keys, in Dir; ""
	// when Dir is.
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

	// requests are the requests carried out, by id: a lift finds its
	// restriction here.
	requests map[string]*Request
}

// defaultSystems are the systems of a World made with none named: those
// that answer when [Erasure] names no answers.
func defaultSystems(systems []string) []string {
	if len(systems) == 0 {
		for _, a := range defaultAnswers {
			systems = append(systems, a.System)
		}
	}
	return systems
}

// NewWorld makes the orchestrator's key and one connector key per system,
// all valid from [KeysFrom], in a temporary directory, and an empty log.
// With no systems, they are accounts, billing and crm: those that answer
// when [Erasure] names no answers.
func NewWorld(tb testing.TB, systems ...string) *World {
	tb.Helper()
	w := &World{Dir: tb.TempDir(), Connectors: map[string]*proof.Signer{}, Log: &MemLog{}}
	w.Orchestrator, _ = newSigner(tb, w.Dir, proof.RoleOrchestrator, KeysFrom)
	w.Keys.Add(w.Orchestrator.Key)
	for _, sys := range defaultSystems(systems) {
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

// NewSeededWorld is [NewWorld] with keys made from seed ([SeededSigner]),
// the same on every run, and no file written (Dir and KeysPath are
// empty): with the fixed times, what it issues is the same, byte for byte,
// every time, as published test vectors must be.
func NewSeededWorld(tb testing.TB, seed string, systems ...string) *World {
	tb.Helper()
	w := &World{Connectors: map[string]*proof.Signer{}, Log: &MemLog{}}
	w.Orchestrator = SeededSigner(tb, seed, proof.RoleOrchestrator, KeysFrom)
	w.Keys.Add(w.Orchestrator.Key)
	for _, sys := range defaultSystems(systems) {
		w.Connectors[sys] = SeededSigner(tb, seed, sys, KeysFrom)
		w.Keys.Add(w.Connectors[sys].Key)
	}
	if err := w.Keys.Validate(); err != nil {
		tb.Fatalf("keys: %v", err)
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
	// attempts. Outcome is then ignored. (A system that answered failed,
	// and not to be tried again, is a dead letter too: the orchestrator
	// logs no receipt of it. Say why in Detail.)
	DeadLetter bool
	// Detail is, for a dead letter, why, as the certificate says it; "":
	// "no answer after N attempts".
	Detail string
	// Action, when set, is the action the connector's receipt says it did
	// (the request type's action otherwise, as the request asks).
	Action lethev1.Action
	// Receipt, when set, gives the receipt's content (counts, remaining,
	// legal basis, retain until, detail, export); the World fills in the
	// rest (request, task, system, action, outcome, time, attempt, and
	// what the task asked, echoed: the sweep, the purposes' categories,
	// the restriction lifted) and signs it. It is copied, never changed.
	// Unset, [World.Receipt]'s content for the outcome is used.
	Receipt *lethev1.Receipt
	// At, when set, is when the orchestrator received the answer (the
	// log's time, and the receipt's connector time) or gave up on the
	// task. Zero: the i-th answer of a request comes i+1 minutes after
	// receipt, or, after more than one attempt, when the last attempt's
	// wait is over.
	At time.Time
	// Signer, when set, signs the receipt instead of the system's key in
	// the World (a key rotated, unknown, or another system's).
	Signer *proof.Signer
	// Attempts is how many times the task was sent, each logged
	// (task_published): the last one answered, or, for a dead letter,
	// the last one went unanswered. Zero: one sent (and, for a dead
	// letter, its entry says 5 attempts).
	Attempts int
}

// defaultAnswers: one system erased, one retained by law, one held nothing.
var defaultAnswers = []Answer{
	{System: "accounts", Outcome: lethev1.Outcome_OUTCOME_ERASED},
	{System: "billing", Outcome: lethev1.Outcome_OUTCOME_RETAINED},
	{System: "crm", Outcome: lethev1.Outcome_OUTCOME_NOT_FOUND},
}

// Erasure says how a request goes: an erasure unless Type says otherwise.
// The zero value is an erasure received at [DefaultReceived] and answered
// three days later: accounts erased the subject's data, billing retained
// invoices by law until the end of 2036 (so the request ends
// partially_retained; see [World.FollowUp]), crm held nothing.
type Erasure struct {
	Received time.Time // zero: DefaultReceived
	// Completed is when the request ended: zero, three days after
	// Received.
	Completed time.Time
	// Answers are the systems' answers, in order: the i-th comes i+1
	// minutes after receipt unless it says when. Nil: the default answers
	// above.
	Answers []Answer
	// Policy is the tenant's deadline policy; nil: the default (UTC, no
	// roll). The request keeps Policy.For(Received), as the orchestrator
	// does, and nil when that is the default.
	Policy *deadline.Spec
	// Extend, when set, extends the deadline (Art. 12(3)).
	Extend *Extend
	// State, when set, is the state the request ended in, instead of the
	// one the answers give (lifecycle.FinalState: failed if a system
	// failed or ran out of attempts; otherwise partially_retained if an
	// erasure's system retained data until a date; otherwise fulfilled).
	// The log's final event follows it.
	State lifecycle.State
	// Minimal logs only the entries a certificate needs: created, each
	// system's answer (receipt_accepted or dead_letter), extended and
	// notice_delivered if Extend is set, and the end (with
	// export_assembled before it for an export, and the lifted entry of
	// a lift's restriction). Otherwise, as the orchestrator does,
	// verified, each attempt's task_published and erasure_deferred (for
	// data retained until a date, when the request ends) are logged too.
	Minimal bool

	// Type is the request's type; "": erasure. The tasks' action, and so
	// the receipts', is the type's (lifecycle.Type.Action). A sweep, a
	// re-application and a lift are about no one: they have no subject
	// hash. An export's exported receipts carry the export's references
	// (a default records document unless Receipt says), and when it ends
	// the digest of its manifest is logged (export_assembled) and
	// certified.
	Type lifecycle.Type
	// Source, when set, is where the request came from ("api",
	// "schedule", ...): its created entry's detail is "source=" and it,
	// as the orchestrator logs it.
	Source string
	// Created is when the request was created in Lethe (the created
	// entry's time), which may be after it was received (a letter
	// entered later); zero: Received.
	Created time.Time
	// By is who submitted the request through the API (the created
	// entry's actor).
	By *proof.Actor
	// Verification, when set, is the identity check a person made
	// (its At zero: 10 seconds after Created): the verified entry records
	// its actor, method and note's hash, and the certificate the
	// decision. Unset, the verified entry names no one (an event's
	// verification, or a request about no one).
	Verification *proof.Decision
	// Denial, when set, refuses the request while it waits for its
	// identity check (its At zero: a day after Created): it ends denied
	// then, no system asked, and the certificate shows the decision.
	// Answers, Extend, Completed and State are ignored.
	Denial *proof.Decision
	// Expired: the identity was never checked, and the request ends
	// expired at Completed (zero: 30 days after Created), no system
	// asked. Answers, Extend and State are ignored.
	Expired bool
	// Sweep, Purposes, Reapply and Lift are the scope of a request of
	// type sweep, consent_withdrawal or objection, reapply, and lift:
	// logged in its created entry, certified, and echoed by the receipts
	// (the sweep, for each system its own categories; the purposes'
	// categories of the system; the restriction lifted). A lift that ends
	// fulfilled records the lift in its restriction's log (a lifted
	// entry, just before the lift's end): the restriction must be a
	// request of this World, whose certificate then shows the lift.
	Sweep    *proof.SweepRun
	Purposes *proof.PurposeScope
	Reapply  *proof.ReapplyScope
	Lift     *proof.LiftScope
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
	// By is who extended it through the API (the extended entry's actor).
	By *proof.Actor
	// Deadline, when set, is the extended deadline logged and certified
	// instead of the one the law allows: a lie for a verifier to catch.
	Deadline time.Time
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
	// after that date unless it says when. Nil: each system that retained
	// data until a date answers erased, counting what it had kept.
	Answers []Answer
	// Completed is when the request ends again: zero, an hour after that
	// date.
	Completed time.Time
	// State, when set, is the state it ends in, instead of the one the
	// answers give (see [Erasure]).
	State lifecycle.State
}

// Request is a request a World carried out.
type Request struct {
	ID string
	// Type is the request's type (erasure unless [Erasure] said).
	Type        lifecycle.Type
	SubjectHash string // as the orchestrator's keyed hash would be: hex, 64 digits; "" for a request about no one
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
	// Sweep, Purposes, Reapply and Lift are the request's scope, as
	// [Erasure] gave it.
	Sweep    *proof.SweepRun
	Purposes *proof.PurposeScope
	Reapply  *proof.ReapplyScope
	Lift     *proof.LiftScope
	// Manifest is, for an export that ended, its bundle's manifest.json
	// (exportbundle.Manifest.Encode), whose digest the log and the
	// certificate hold.
	Manifest []byte

	results []proof.SystemResult
	minimal bool
	// notes are the notes of the decisions made on the request, by event
	// (verified, denied): the log keeps their hashes.
	notes map[string]string
	// attempts are the attempts each system's task has had.
	attempts map[string]int
}

// aboutNoOne reports whether requests of type t name no one.
func aboutNoOne(t lifecycle.Type) bool {
	return t == lifecycle.Sweep || t == lifecycle.Reapply || t == lifecycle.Lift
}

// Erase carries out request id as an orchestrator would, appending its
// events to the log in the order of their times, and returns it. Issue its
// certificate with [World.Certificate].
func (w *World) Erase(tb testing.TB, id string, e Erasure) *Request {
	tb.Helper()
	if e.Received.IsZero() {
		e.Received = DefaultReceived
	}
	if e.Created.IsZero() {
		e.Created = e.Received
	}
	if e.Completed.IsZero() {
		e.Completed = e.Received.Add(72 * time.Hour)
		if e.Expired {
			e.Completed = e.Created.Add(deadline.DefaultVerificationExpiry)
		}
	}
	if e.Answers == nil {
		e.Answers = defaultAnswers
	}
	if e.Type == "" {
		e.Type = lifecycle.Erasure
	}
	r := &Request{
		ID:        id,
		Type:      e.Type,
		Received:  e.Received,
		Completed: e.Completed,
		Sweep:     clone(tb, e.Sweep),
		Purposes:  clone(tb, e.Purposes),
		Reapply:   clone(tb, e.Reapply),
		Lift:      clone(tb, e.Lift),
		minimal:   e.Minimal,
		notes:     map[string]string{},
		attempts:  map[string]int{},
	}
	if w.requests == nil {
		w.requests = map[string]*Request{}
	}
	w.requests[id] = r // its receipts echo what it asked
	if !aboutNoOne(e.Type) {
		sum := sha256.Sum256([]byte("subject key|" + id))
		r.SubjectHash = hex.EncodeToString(sum[:])
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
	created := proof.Entry{Event: proof.EventCreated, At: e.Created, Tenant: Tenant, Type: e.Type, SubjectHash: r.SubjectHash,
		ReceivedAt: &received, Deadline: &due, DeadlinePolicy: r.Policy, Actor: e.By,
		Sweep: r.Sweep, Purposes: r.Purposes, Reapply: r.Reapply, Lift: r.Lift}
	if e.Source != "" {
		created.Detail = "source=" + e.Source
	}
	add(created)
	switch {
	case e.Denial != nil:
		d := *e.Denial
		if d.At.IsZero() {
			d.At = e.Created.Add(24 * time.Hour)
		}
		r.notes[proof.EventDenied] = d.Note
		add(proof.Entry{Event: proof.EventDenied, At: d.At, Actor: &d.Actor, Ground: d.Ground, NoteSHA256: noteHash(d.Note)})
		r.State, r.Completed = lifecycle.Denied, d.At.UTC().Truncate(time.Millisecond)
		w.append(r, log)
		return r
	case e.Expired:
		add(proof.Entry{Event: proof.EventExpired, At: r.Completed,
			Detail: "identity not checked within " + deadline.DefaultVerificationExpiry.String()})
		r.State = lifecycle.Expired
		w.append(r, log)
		return r
	}
	opened := e.Created.Add(10 * time.Second)
	if v := e.Verification; v != nil {
		d := *v
		if d.At.IsZero() {
			d.At = opened
		}
		opened = d.At
		r.notes[proof.EventVerified] = d.Note
		add(proof.Entry{Event: proof.EventVerified, At: d.At, Actor: &d.Actor, Method: d.Method, NoteSHA256: noteHash(d.Note)})
	} else if !e.Minimal {
		add(proof.Entry{Event: proof.EventVerified, At: opened})
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
		if !x.Deadline.IsZero() {
			ext = x.Deadline
		}
		r.Deadline = ext
		r.Extension = &proof.Extension{At: at.UTC().Truncate(time.Millisecond), Reason: reason, OriginalDeadline: orig}
		add(proof.Entry{Event: proof.EventExtended, At: at, Deadline: &ext, OriginalDeadline: &orig, ReasonSHA256: proof.ReasonHash(reason), Actor: x.By})
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
	published := received.Add(30 * time.Second)
	if e.Verification != nil || !e.Created.Equal(e.Received) {
		published = opened // sent when the request opens
	}
	for i, a := range e.Answers {
		at := w.publish(r, a, published, add)
		if !a.At.IsZero() {
			at = a.At
		} else if at.IsZero() {
			at = received.Add(time.Duration(i+1) * time.Minute)
		}
		w.answer(tb, r, a, at, add)
	}
	r.State = e.State
	if r.State == "" {
		r.State = stateOf(r.Type, r.results)
	}
	w.end(tb, r, e.Answers, add)
	w.append(r, log)
	return r
}

// publish logs the attempts of a's task, the first at first, each after
// the orchestrator's wait for an answer to the one before (30 seconds,
// doubling), unless the request is minimal. It returns when the last
// attempt's wait was over, for an answer after several attempts; zero for
// one.
func (w *World) publish(r *Request, a Answer, first time.Time, add func(proof.Entry)) time.Time {
	n := max(a.Attempts, 1)
	at, wait := first, 30*time.Second
	for range n {
		r.attempts[a.System]++
		if !r.minimal {
			add(proof.Entry{Event: proof.EventTaskPublished, At: at, System: a.System, Attempt: r.attempts[a.System]})
		}
		at, wait = at.Add(wait), min(2*wait, 30*time.Minute)
	}
	if n == 1 {
		return time.Time{}
	}
	return at
}

// end logs how a round of answers ended the request, as the orchestrator
// does when its last system answers: the erasures deferred by this
// round's answers, an export's manifest, a lift recorded in its
// restriction's log, and the end itself.
func (w *World) end(tb testing.TB, r *Request, round []Answer, add func(proof.Entry)) {
	tb.Helper()
	if !r.minimal {
		for _, s := range r.results {
			if !slices.ContainsFunc(round, func(a Answer) bool { return a.System == s.System }) || !partOf(s).Defers(r.Type) {
				continue
			}
			add(proof.Entry{Event: proof.EventErasureDeferred, At: r.Completed, System: s.System, RetainUntil: s.RetainUntil})
		}
	}
	if r.Type == lifecycle.Export {
		m, err := exportManifest(r).Encode()
		if err != nil {
			tb.Fatalf("export manifest of %s: %v", r.ID, err)
		}
		r.Manifest = m
		sum := sha256.Sum256(m)
		add(proof.Entry{Event: proof.EventExportAssembled, At: r.Completed, ManifestSHA256: hex.EncodeToString(sum[:])})
	}
	if r.Type == lifecycle.Lift && r.State == lifecycle.Fulfilled && r.Lift != nil {
		if _, ok := w.requests[r.Lift.Restriction]; !ok {
			tb.Fatalf("lift %s: no restriction %s in the World", r.ID, r.Lift.Restriction)
		}
		add(proof.Entry{RequestID: r.Lift.Restriction, Event: proof.EventLifted, At: r.Completed,
			Lift: &proof.LiftScope{Restriction: r.Lift.Restriction, Reason: r.Lift.Reason, By: r.ID}})
	}
	add(proof.Entry{Event: finalEvent(r.State), At: r.Completed})
}

// exportManifest is an ended export's manifest, read from its systems'
// answers as the orchestrator's engine.Manifest reads it from its tasks.
func exportManifest(r *Request) *exportbundle.Manifest {
	m := &exportbundle.Manifest{Format: exportbundle.Format, RequestID: r.ID, Tenant: Tenant, GeneratedAt: r.Completed.UTC()}
	for _, s := range r.results {
		sys := exportbundle.System{Name: s.System, Outcome: string(s.Outcome)}
		switch s.Outcome {
		case lifecycle.DeadLetter:
			sys.Note = "This service could not answer in time; your request's record says why."
		case lifecycle.NotFound:
			sys.Note = "This service holds no data about you."
		case lifecycle.Resolved:
			sys.Note = "This service's part was settled by hand by the privacy team."
		}
		if len(s.Counts) > 0 {
			sys.Counts = s.Counts
		}
		rc := &lethev1.Receipt{}
		if s.Outcome == lifecycle.Exported && proto.Unmarshal(s.Receipt, rc) == nil {
			sys.Categories = rc.GetExportCategories()
			sys.Records = &exportbundle.File{Path: exportbundle.RecordsPath(s.System), ContentType: "application/json",
				Size: rc.GetExportSize(), SHA256: hex.EncodeToString(rc.GetExportSha256()), Ref: rc.GetExportRef()}
			names := make([]string, len(rc.GetExportFiles()))
			for i, f := range rc.GetExportFiles() {
				names[i] = f.GetName()
			}
			paths := exportbundle.FilePaths(s.System, names)
			for i, f := range rc.GetExportFiles() {
				sys.Files = append(sys.Files, exportbundle.File{Path: paths[i], Category: f.GetCategory(), ContentType: f.GetContentType(),
					Size: f.GetSize(), SHA256: hex.EncodeToString(f.GetSha256()), Ref: f.GetRef()})
			}
		}
		m.Systems = append(m.Systems, sys)
	}
	return m
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
		if partOf(s).Defers(r.Type) {
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
	for i, a := range f.Answers {
		at := w.publish(r, a, latest, add)
		if !a.At.IsZero() {
			at = a.At
		} else if at.IsZero() {
			at = latest.Add(time.Duration(i+1) * time.Minute)
		}
		w.answer(tb, r, a, at, add)
	}
	if r.Answered == nil {
		answered := r.Completed
		r.Answered = &answered
	}
	r.Completed = f.Completed
	r.State = f.State
	if r.State == "" {
		r.State = stateOf(r.Type, r.results)
	}
	w.end(tb, r, f.Answers, add)
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
	attempt := max(r.attempts[a.System], 1)
	if a.DeadLetter {
		if a.Attempts == 0 {
			attempt = 5
		}
		detail := a.Detail
		if detail == "" {
			detail = fmt.Sprintf("no answer after %d attempts", attempt)
		}
		add(proof.Entry{Event: proof.EventDeadLetter, At: at, System: a.System, Attempt: attempt})
		res = proof.SystemResult{System: a.System, Outcome: lifecycle.DeadLetter, Detail: detail}
	} else {
		rc := w.receipt(tb, r.ID, a, at, attempt)
		raw, err := proto.MarshalOptions{Deterministic: true}.Marshal(rc)
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
		add(proof.Entry{Event: proof.EventReceiptAccepted, At: at, System: a.System, Attempt: attempt, Outcome: res.Outcome, ReceiptHash: hex.EncodeToString(h[:])})
	}
	r.results = slices.DeleteFunc(r.results, func(s proof.SystemResult) bool { return s.System == a.System })
	r.results = append(r.results, res)
	slices.SortFunc(r.results, func(a, b proof.SystemResult) int { return strings.Compare(a.System, b.System) })
}

// append logs entries in the order of their times, as they happened. An
// entry that names a request (a lift's lifted entry) is that request's.
func (w *World) append(r *Request, entries []proof.Entry) {
	slices.SortStableFunc(entries, func(a, b proof.Entry) int { return a.At.Compare(b.At) })
	for _, en := range entries {
		owner := r
		if en.RequestID == "" {
			en.RequestID = r.ID
		} else if o, ok := w.requests[en.RequestID]; ok {
			owner = o
		}
		owner.Entries = append(owner.Entries, w.Log.Append(en.Encode()))
	}
}

// stateOf is the state the systems' answers give to a request of type t,
// as the orchestrator and the verifier have it (lifecycle.FinalState).
func stateOf(t lifecycle.Type, results []proof.SystemResult) lifecycle.State {
	parts := make([]lifecycle.Part, 0, len(results))
	for _, s := range results {
		parts = append(parts, partOf(s))
	}
	return lifecycle.FinalState(t, parts)
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
	case lifecycle.Denied:
		return proof.EventDenied
	case lifecycle.Expired:
		return proof.EventExpired
	}
	return proof.EventFulfilled
}

// noteHash is what the log keeps of a decision's note: its hash, or
// nothing for none.
func noteHash(note string) string {
	if note == "" {
		return ""
	}
	return proof.ReasonHash(note)
}

// Receipt is system's signed answer, at the given connector time, to
// request id's task (an erasure's, unless id is a request of the World of
// another type). Its content follows the outcome: erased, login_history 12
// and profile 1; retained, invoices 3 and profile 1, 3 remaining, kept
// under tax law until the end of 2036; failed, "permission denied";
// exported, a records document of the account category. It is not
// logged: the log never accepted it.
func (w *World) Receipt(tb testing.TB, id, system string, outcome lethev1.Outcome, at time.Time) *lethev1.Receipt {
	tb.Helper()
	return w.receipt(tb, id, Answer{System: system, Outcome: outcome}, at, 1)
}

func (w *World) receipt(tb testing.TB, id string, a Answer, at time.Time, attempt int) *lethev1.Receipt {
	tb.Helper()
	req := w.requests[id]
	if req == nil || req.ID != id {
		req = &Request{ID: id, Type: lifecycle.Erasure}
	}
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
	case a.Outcome == lethev1.Outcome_OUTCOME_EXPORTED:
		// The records document, as a connector stores it in the blob
		// store: in the folder of the request and the system.
		doc := []byte(`{"account":{"profile":[{"id":"` + id + "/" + a.System + `"}]}}`)
		sum := sha256.Sum256(doc)
		r.Counts = []*lethev1.CategoryCount{{Category: "account", Count: 1}}
		r.ExportRef, r.ExportSha256, r.ExportSize = id+"/"+a.System+"/records.json", sum[:], int64(len(doc))
		r.ExportCategories = []string{"account"}
	}
	r.RequestId, r.TaskId, r.System = id, id+"."+a.System, a.System
	r.Action, r.Outcome = req.Type.Action(), a.Outcome
	if a.Action != lethev1.Action_ACTION_UNSPECIFIED {
		r.Action = a.Action
	}
	// What the task asked, echoed, as a connector answers it.
	if s := req.Sweep; s != nil {
		r.Sweep = &lethev1.Sweep{Policy: s.Policy, Categories: s.Systems[a.System], Clock: s.Clock, Cutoff: timestamppb.New(s.Cutoff), DryRun: s.DryRun}
	}
	if p := req.Purposes; p != nil {
		r.Categories = p.Systems[a.System]
	}
	if l := req.Lift; l != nil {
		r.RestrictionId = l.Restriction
	}
	r.ConnectorTime, r.Attempt = timestamppb.New(at), uint32(attempt)
	s := a.Signer
	if s == nil {
		var ok bool
		if s, ok = w.Connectors[a.System]; !ok {
			tb.Fatalf("no connector key for system %s", a.System)
		}
	}
	if err := proof.SignReceipt(s, r); err != nil {
		tb.Fatalf("sign receipt of %s: %v", a.System, err)
	}
	return r
}

// Certificate issues request r's certificate against the log as it stands,
// signed by the orchestrator, with a tree head (or checkpoint) signed a
// minute after the request ended. The extension's notice deliveries, the
// decisions people made and a restriction's lift are read from the log
// ([proof.NoticeDeliveries], [proof.DecisionOf]) and deadline_met follows
// from the answer and the effective deadline, as the orchestrator issues
// them.
func (w *World) Certificate(tb testing.TB, r *Request) *proof.Certificate {
	tb.Helper()
	return w.CertificateAt(tb, r, r.Completed.Add(time.Minute))
}

// CertificateAt is [World.Certificate] issued at the given time (its
// checkpoint's or tree head's): a certificate issued again later, when
// the request changed after it ended (a restriction lifted, a notice
// delivered).
func (w *World) CertificateAt(tb testing.TB, r *Request, signed time.Time) *proof.Certificate {
	tb.Helper()
	size := w.Log.Size()
	typ := r.Type
	if typ == "" {
		typ = lifecycle.Erasure
	}
	c := &proof.Certificate{
		RequestID:   r.ID,
		Tenant:      Tenant,
		Type:        typ,
		SubjectHash: r.SubjectHash,
		ReceivedAt:  r.Received,
		Deadline:    r.Deadline,
		CompletedAt: r.Completed,
		State:       r.State,
		Systems:     slices.Clone(r.results),
		Sweep:       clone(tb, r.Sweep),
		Purposes:    clone(tb, r.Purposes),
		Reapply:     clone(tb, r.Reapply),
	}
	if typ == lifecycle.Lift {
		c.Lift = clone(tb, r.Lift)
	}
	if w.Origin == "" {
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
		e, err := proof.DecodeEntry(le.Entry)
		if err != nil {
			continue
		}
		logged = append(logged, e)
		switch e.Event {
		case proof.EventVerified:
			c.Verification = proof.DecisionOf(e, r.notes[e.Event])
		case proof.EventDenied:
			c.Denial = proof.DecisionOf(e, r.notes[e.Event])
		case proof.EventLifted:
			c.Lift = e.Lift
		}
	}
	if r.Type == lifecycle.Export && len(r.Manifest) > 0 {
		sum := sha256.Sum256(r.Manifest)
		c.ExportManifestSHA256 = hex.EncodeToString(sum[:])
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

// Request is the request id the World carried out; nil if none.
func (w *World) Request(id string) *Request { return w.requests[id] }

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

// clone deep-copies a scope through its JSON, so that what a request,
// its log and its certificate hold are each their own; nil stays nil.
func clone[T any](tb testing.TB, v *T) *T {
	tb.Helper()
	if v == nil {
		return nil
	}
	b, err := json.Marshal(v)
	if err != nil {
		tb.Fatalf("clone: %v", err)
	}
	out := new(T)
	if err := json.Unmarshal(b, out); err != nil {
		tb.Fatalf("clone: %v", err)
	}
	return out
}
