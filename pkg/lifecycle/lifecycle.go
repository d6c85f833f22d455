// Package lifecycle is the one vocabulary of a data-subject request's life:
// its type, the states a request and each system's task go through, the
// outcomes a system answers, and the rule that derives how a request
// ended from its systems' outcomes. The orchestrator, the connector SDK,
// the certificates and the CLI all speak it, so none can drift from the
// others.
//
// The names are contracts: they are stored, sent in the API's JSON and
// written into signed certificates.
package lifecycle

import (
	"strings"
	"time"

	lethev1 "github.com/lethe-dev/lethe/pkg/gen/lethe/v1"
)

// Type is what a request asks for.
type Type string

// Request types.
const (
	Erasure Type = "erasure" // GDPR Art. 17
	Export  Type = "export"  // GDPR Art. 15 and 20
	// ConsentWithdrawal (Art. 7(3)) and Objection (Art. 21) name purposes:
	// the data of those purposes only is erased, and the person
	// suppressed for them; the rest (the account) stays.
	ConsentWithdrawal Type = "consent_withdrawal"
	Objection         Type = "objection"
	// Sweep is a retention run: a policy's data past its period deleted
	// in every system it names (Art. 5(1)(e)), whoever it is about. The
	// orchestrator starts it; it is not a person's request.
	Sweep Type = "sweep"
	// Reapply erases again, in a system restored from a backup, everyone
	// erased since the backup, named by keyed hashes only.
	Reapply Type = "reapply"
	// Restriction (Art. 18): every system keeps the person's data but
	// marks it restricted, not to be processed, until a Lift of it.
	Restriction Type = "restriction"
	// Lift ends a restriction: every system removes its marks. An
	// operator opens it (POST /v1/requests/{id}/lift); it names no one.
	Lift Type = "lift"
)

// Types are the types of requests people file, in the order they are
// shown (a Sweep is not one).
func Types() []Type { return []Type{Erasure, Export, ConsentWithdrawal, Objection, Restriction} }

// ByPurpose reports whether requests of t name purposes and erase only
// their data.
func (t Type) ByPurpose() bool { return t == ConsentWithdrawal || t == Objection }

// Action is the task action a request of this type sends each system.
func (t Type) Action() lethev1.Action {
	switch t {
	case Export:
		return lethev1.Action_ACTION_EXPORT
	case Sweep:
		return lethev1.Action_ACTION_SWEEP
	case Reapply:
		return lethev1.Action_ACTION_REAPPLY
	case Restriction:
		return lethev1.Action_ACTION_RESTRICT
	case Lift:
		return lethev1.Action_ACTION_LIFT
	}
	return lethev1.Action_ACTION_ERASE
}

// Answers reports whether a system may answer a task of a request of
// type t with outcome o: a restriction is restricted, a lift lifted, and
// no other request either; a failure, or nothing held, answers any. No
// other outcome (none, or one this version does not know) answers
// anything.
func (t Type) Answers(o Outcome) bool {
	switch o {
	case Restricted:
		return t == Restriction
	case Lifted:
		return t == Lift
	case Erased, Exported, Retained:
		return t != Restriction && t != Lift
	case NotFound, OutcomeFailed:
		return true
	}
	return false
}

// State is where a request is:
// PendingVerification -> Open -> Fulfilled | PartiallyRetained | Failed.
// A partially retained erasure becomes Fulfilled when its deferred
// erasures are done. A request pending verification may instead end
// Denied (refused, Art. 12(5)) or Expired (its identity never checked).
type State string

// Request states.
const (
	PendingVerification State = "pending_verification"
	Open                State = "open"
	Fulfilled           State = "fulfilled"
	PartiallyRetained   State = "partially_retained"
	Failed              State = "failed"
	Denied              State = "denied"
	Expired             State = "expired"
)

// States are the request states, in lifecycle order.
func States() []State {
	return []State{PendingVerification, Open, Fulfilled, PartiallyRetained, Failed, Denied, Expired}
}

// Known reports whether s is a request state.
func (s State) Known() bool {
	for _, k := range States() {
		if s == k {
			return true
		}
	}
	return false
}

// Ended reports whether the request has its answer and a certificate:
// every system has answered or run out of attempts, or the request was
// refused or expired. (A partially retained request has ended and still
// has deferred erasures to run.)
func (s State) Ended() bool {
	return s.Known() && s != PendingVerification && s != Open
}

// TaskState is where one system's part of a request is.
type TaskState string

// Task states.
const (
	TaskPending    TaskState = "pending"     // the request awaits identity verification
	TaskPublished  TaskState = "published"   // sent (or in the outbox), awaiting a receipt
	TaskRetrying   TaskState = "retrying"    // the last attempt failed; another is scheduled
	TaskAnswered   TaskState = "answered"    // a receipt was recorded
	TaskDeadLetter TaskState = "dead_letter" // out of attempts
	// TaskDeferred: the system answered that it retains data by law until
	// a date; at that date a follow-up erasure runs.
	TaskDeferred TaskState = "deferred"
)

// Waiting reports whether the orchestrator acts on the task again at a
// time of its own (a wait for an answer, a retry, a deferred erasure).
func (s TaskState) Waiting() bool {
	return s == TaskPublished || s == TaskRetrying || s == TaskDeferred
}

// Outcome is a system's answer to a task.
type Outcome string

// Outcomes. The first seven are what a receipt says; DeadLetter is what a
// certificate says of a system that never answered; Resolved of a failure
// an operator fixed by hand (no receipt: the log records who, and the
// note's hash).
const (
	Erased        Outcome = "erased"
	Exported      Outcome = "exported"
	NotFound      Outcome = "not_found"  // the system held nothing of the person
	Retained      Outcome = "retained"   // kept by law (Art. 17(3)), until a date
	Restricted    Outcome = "restricted" // kept, marked not to be processed (Art. 18)
	Lifted        Outcome = "lifted"     // a restriction's marks removed
	OutcomeFailed Outcome = "failed"
	DeadLetter    Outcome = "dead_letter"
	Resolved      Outcome = "resolved"
)

// Outcomes are the outcomes a receipt can carry.
func Outcomes() []Outcome {
	return []Outcome{Erased, Exported, NotFound, Retained, OutcomeFailed, Restricted, Lifted}
}

// OutcomeOf names a receipt's outcome ("unspecified" for none: it is
// what certificates have always said of one).
func OutcomeOf(o lethev1.Outcome) Outcome {
	return Outcome(strings.ToLower(strings.TrimPrefix(o.String(), "OUTCOME_")))
}

// Proto is the receipt's enum value of an outcome.
func (o Outcome) Proto() lethev1.Outcome {
	return lethev1.Outcome(lethev1.Outcome_value["OUTCOME_"+strings.ToUpper(string(o))])
}

// Done reports whether the outcome is the system's part done: the data
// erased, exported, restricted or set free, or none held, or the failure
// resolved by hand.
func (o Outcome) Done() bool {
	return o == Erased || o == Exported || o == NotFound || o == Resolved || o == Restricted || o == Lifted
}

// Words says the outcome in words, as the console and the certificate
// page show it.
func (o Outcome) Words() string {
	if w, ok := outcomeWords[o]; ok {
		return w
	}
	return string(o)
}

var outcomeWords = map[Outcome]string{
	Erased: "Erased", Exported: "Exported", NotFound: "Nothing held", Retained: "Retained by law",
	Restricted: "Restricted (kept, not processed)", Lifted: "Restriction lifted",
	DeadLetter: "Did not answer", OutcomeFailed: "Failed", Resolved: "Resolved by hand",
}

// Part is how one system's part of a request ended, as far as the
// request's final state depends on it.
type Part struct {
	Outcome Outcome
	// RetainUntil is the date until which a Retained answer keeps data
	// (zero for none).
	RetainUntil time.Time
}

// Defers reports whether the part leaves an erasure to run later: data
// kept by law until a date, after which it must go.
func (p Part) Defers(t Type) bool {
	return t == Erasure && p.Outcome == Retained && !p.RetainUntil.IsZero()
}

// FinalState derives how a request of type t ended from how each system's
// part ended: Failed if any system failed or never answered; otherwise
// PartiallyRetained while an erasure is deferred to a retention's end;
// otherwise Fulfilled. The orchestrator ends requests by it and a
// certificate's verifier checks the state by it.
func FinalState(t Type, parts []Part) State {
	state := Fulfilled
	for _, p := range parts {
		switch {
		case p.Outcome == DeadLetter || p.Outcome == OutcomeFailed:
			return Failed
		case p.Defers(t):
			state = PartiallyRetained
		}
	}
	return state
}

// VerificationMethods are how a data subject's identity can be checked
// (the method of an identity check on record).
var VerificationMethods = []string{"email_code", "account_session", "document", "other"}

// DenialGrounds are why a request can be refused: manifestly unfounded or
// excessive (Art. 12(5)), or the identity not established (Art. 12(6)).
var DenialGrounds = []string{"manifestly_unfounded", "excessive", "identity_not_established", "other"}

// LiftReasons are why a restriction of processing ends (Art. 18(1) and
// (3)): the accuracy the person contested is verified (a), the person's
// objection is decided (d), the legal claims it preserved data for are
// settled (c), the person asked for it, or another reason.
var LiftReasons = []string{"accuracy_verified", "objection_decided", "claims_settled", "subject_request", "other"}

// MaxNote bounds the note of a decision (an identity check, a refusal):
// a line for the record, never personal data, kept for good.
const MaxNote = 500
