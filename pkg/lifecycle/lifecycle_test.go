package lifecycle

import (
	"testing"
	"time"

	lethev1 "github.com/lethe-dev/lethe/pkg/gen/lethe/v1"
)

func TestFinalState(t *testing.T) {
	until := time.Date(2036, 1, 1, 0, 0, 0, 0, time.UTC)
	tests := []struct {
		name  string
		typ   Type
		parts []Part
		want  State
	}{
		{"all erased", Erasure, []Part{{Outcome: Erased}, {Outcome: NotFound}}, Fulfilled},
		{"all exported", Export, []Part{{Outcome: Exported}, {Outcome: NotFound}}, Fulfilled},
		{"retained until a date", Erasure, []Part{{Outcome: Erased}, {Outcome: Retained, RetainUntil: until}}, PartiallyRetained},
		{"retained with no date defers nothing", Erasure, []Part{{Outcome: Retained}}, Fulfilled},
		{"an export is not deferred", Export, []Part{{Outcome: Retained, RetainUntil: until}}, Fulfilled},
		{"a dead letter fails it", Erasure, []Part{{Outcome: Retained, RetainUntil: until}, {Outcome: DeadLetter}}, Failed},
		{"a failed answer fails it", Export, []Part{{Outcome: OutcomeFailed}, {Outcome: Exported}}, Failed},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := FinalState(tt.typ, tt.parts); got != tt.want {
				t.Errorf("FinalState = %s, want %s", got, tt.want)
			}
			if !FinalState(tt.typ, tt.parts).Ended() {
				t.Error("a final state has not ended")
			}
		})
	}
}

func TestOutcomeNamesMatchTheContract(t *testing.T) {
	for _, o := range Outcomes() {
		p := o.Proto()
		if p == lethev1.Outcome_OUTCOME_UNSPECIFIED {
			t.Fatalf("%s has no protobuf value", o)
		}
		if got := OutcomeOf(p); got != o {
			t.Errorf("OutcomeOf(%v) = %q, want %q", p, got, o)
		}
	}
	if got := OutcomeOf(lethev1.Outcome_OUTCOME_UNSPECIFIED); got != "unspecified" {
		t.Errorf("unspecified = %q", got)
	}
	if DeadLetter.Proto() != lethev1.Outcome_OUTCOME_UNSPECIFIED {
		t.Error("dead_letter is no receipt's outcome")
	}
}

func TestStates(t *testing.T) {
	for _, s := range States() {
		if !s.Known() {
			t.Errorf("%s unknown", s)
		}
		if s.Ended() != (s != PendingVerification && s != Open) {
			t.Errorf("%s.Ended() = %v", s, s.Ended())
		}
	}
	if State("deferred").Known() {
		t.Error("deferred is a task state, not a request state")
	}
	if Erasure.Action() != lethev1.Action_ACTION_ERASE || Export.Action() != lethev1.Action_ACTION_EXPORT {
		t.Error("actions")
	}
}

// Which outcome answers which request: a restriction only "restricted",
// a lift only "lifted", and no outcome this version does not know.
func TestAnswers(t *testing.T) {
	for _, tt := range []struct {
		typ  Type
		o    Outcome
		want bool
	}{
		{Erasure, Erased, true},
		{Erasure, Restricted, false},
		{Export, Exported, true},
		{Restriction, Restricted, true},
		{Restriction, Erased, false},
		{Lift, Lifted, true},
		{Lift, Retained, false},
		{Restriction, NotFound, true},
		{Lift, OutcomeFailed, true},
		{Erasure, "unspecified", false},
		{Erasure, "vanished", false},
		{Sweep, Erased, true},
	} {
		if got := tt.typ.Answers(tt.o); got != tt.want {
			t.Errorf("%s answered %q: %v, want %v", tt.typ, tt.o, got, tt.want)
		}
	}
}
