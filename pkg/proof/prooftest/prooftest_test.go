package prooftest_test

import (
	"fmt"
	"reflect"
	"strings"
	"testing"
	"time"

	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/lethe-dev/lethe/pkg/deadline"
	lethev1 "github.com/lethe-dev/lethe/pkg/gen/lethe/v1"
	"github.com/lethe-dev/lethe/pkg/lifecycle"
	"github.com/lethe-dev/lethe/pkg/proof"
	"github.com/lethe-dev/lethe/pkg/proof/prooftest"
)

// Every kind of request a World carries out yields a certificate that
// verifies, telling what the options say.
func TestWorldCertificatesVerify(t *testing.T) {
	extended := time.Date(2026, 5, 10, 23, 59, 59, 0, time.UTC) // DefaultReceived's, extended
	original := time.Date(2026, 3, 10, 23, 59, 59, 0, time.UTC)
	billingKept := &lethev1.Receipt{
		Counts:     []*lethev1.CategoryCount{{Category: "invoice", Count: 2}},
		Remaining:  2,
		LegalBasis: "accounting law",
	}
	billingKeptUntil := proto.CloneOf(billingKept)
	billingKeptUntil.RetainUntil = timestamppb.New(time.Date(2036, 12, 31, 0, 0, 0, 0, time.UTC))
	paris := &deadline.Spec{TimeZone: "Europe/Paris", RollToWorkingDay: true, Holidays: []string{"2026-03-10", "2026-12-25"}}
	tests := []struct {
		name        string
		erasure     prooftest.Erasure
		state       lifecycle.State
		entries     int
		systems     string // system=outcome/remaining, in order
		deadline    time.Time
		extended    bool
		deadlineMet bool
	}{
		{"the default request", prooftest.Erasure{}, "partially_retained", 10,
			"accounts=erased/0 billing=retained/3 crm=not_found/0", original, false, true},
		{"minimal", prooftest.Erasure{Minimal: true}, "partially_retained", 5,
			"accounts=erased/0 billing=retained/3 crm=not_found/0", original, false, true},
		{"extended, told at once, and late", prooftest.Erasure{Extend: &prooftest.Extend{Notices: []prooftest.Notice{{}, {Channel: "webhook"}}},
			Completed: extended.Add(time.Second)}, "partially_retained", 13,
			"accounts=erased/0 billing=retained/3 crm=not_found/0", extended, true, false},
		{"extended, never told, answered after the original deadline", prooftest.Erasure{Extend: &prooftest.Extend{},
			Completed: original.Add(time.Hour)}, "partially_retained", 11,
			"accounts=erased/0 billing=retained/3 crm=not_found/0", extended, true, false},
		{"a tenant's policy: the deadline rolls past a holiday", prooftest.Erasure{Policy: paris}, "partially_retained", 10,
			"accounts=erased/0 billing=retained/3 crm=not_found/0", time.Date(2026, 3, 11, 22, 59, 59, 0, time.UTC), false, true},
		{"a dead letter", prooftest.Erasure{Answers: []prooftest.Answer{
			{System: "crm", DeadLetter: true},
			{System: "accounts", Outcome: lethev1.Outcome_OUTCOME_ERASED},
		}}, "failed", 7, "accounts=erased/0 crm=dead_letter/0", original, false, true},
		{"a failed receipt", prooftest.Erasure{Answers: []prooftest.Answer{
			{System: "accounts", Outcome: lethev1.Outcome_OUTCOME_FAILED},
		}}, "failed", 5, "accounts=failed/0", original, false, true},
		{"the receipt's content given: retained with no date, fulfilled", prooftest.Erasure{Minimal: true, Answers: []prooftest.Answer{
			{System: "billing", Outcome: lethev1.Outcome_OUTCOME_RETAINED, Receipt: billingKept},
		}}, "fulfilled", 3, "billing=retained/2", original, false, true},
		{"the receipt's content given: retained until a date, partially_retained", prooftest.Erasure{Minimal: true, Answers: []prooftest.Answer{
			{System: "billing", Outcome: lethev1.Outcome_OUTCOME_RETAINED, Receipt: billingKeptUntil},
		}}, "partially_retained", 3, "billing=retained/2", original, false, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			w := prooftest.NewWorld(t)
			w.Erase(t, "req-0", prooftest.Erasure{}) // the log holds other requests
			r := w.Erase(t, "req-1", tt.erasure)
			c := w.Certificate(t, r)
			if err := w.Verify(c); err != nil {
				t.Fatalf("Verify = %v", err)
			}
			var systems []string
			for _, s := range c.Systems {
				systems = append(systems, fmt.Sprintf("%s=%s/%d", s.System, s.Outcome, s.Remaining))
			}
			if got := strings.Join(systems, " "); got != tt.systems {
				t.Errorf("systems %s, want %s", got, tt.systems)
			}
			if c.State != tt.state || len(c.Log.Entries) != tt.entries || !c.Deadline.Equal(tt.deadline) || (c.Extension != nil) != tt.extended || c.DeadlineMet != tt.deadlineMet {
				t.Errorf("state %s, %d entries, deadline %s, extension %+v, deadline met %v; want %s, %d, %s, %v, %v",
					c.State, len(c.Log.Entries), c.Deadline, c.Extension, c.DeadlineMet, tt.state, tt.entries, tt.deadline, tt.extended, tt.deadlineMet)
			}
			if c.Log.TreeHead.Size != w.Log.Size() || r.Entries[0] == 0 {
				t.Errorf("tree head of size %d, first entry %d; want the whole log of %d, after req-0's", c.Log.TreeHead.Size, r.Entries[0], w.Log.Size())
			}
			if (tt.erasure.Policy != nil) != (c.DeadlinePolicy != nil) {
				t.Errorf("deadline policy %+v", c.DeadlinePolicy)
			}
		})
	}
	// The templates are copied, never changed.
	if billingKept.RequestId != "" || billingKept.Signature != nil || billingKeptUntil.Signature != nil {
		t.Errorf("the answer's receipt was changed: %v", billingKept)
	}
}

// The notice of an extension, read from the log into the certificate.
func TestWorldExtensionNotice(t *testing.T) {
	at := prooftest.DefaultReceived.Add(time.Hour)
	w := prooftest.NewWorld(t)
	r := w.Erase(t, "req-1", prooftest.Erasure{Extend: &prooftest.Extend{At: at, Reason: "many systems", Notices: []prooftest.Notice{
		{At: at.Add(2 * time.Minute), Channel: "webhook"}, {At: at.Add(time.Minute), Channel: "bus"}, {At: at.Add(3 * time.Minute), Channel: "webhook"},
	}}})
	c := w.Certificate(t, r)
	if err := w.Verify(c); err != nil {
		t.Fatalf("Verify = %v", err)
	}
	x := c.Extension
	if x == nil || !x.At.Equal(at) || x.Reason != "many systems" || !x.OriginalDeadline.Equal(time.Date(2026, 3, 10, 23, 59, 59, 0, time.UTC)) ||
		x.NoticeDeliveredAt == nil || !x.NoticeDeliveredAt.Equal(at.Add(time.Minute)) || strings.Join(x.NoticeChannels, ",") != "bus,webhook" {
		t.Errorf("extension %+v", x)
	}
	if !c.EffectiveDeadline().Equal(c.Deadline) {
		t.Errorf("effective deadline %s, want the extended %s", c.EffectiveDeadline(), c.Deadline)
	}
}

// A request that ended partially_retained, followed up at retain_until:
// both its certificates verify, the second with the first answer's time.
func TestWorldFollowUp(t *testing.T) {
	tests := []struct {
		name     string
		minimal  bool
		followUp prooftest.FollowUp
		state    lifecycle.State
		entries  int // after the follow-up
		systems  string
	}{
		{"billing erases at last", false, prooftest.FollowUp{}, "fulfilled", 13, "accounts=erased/0 billing=erased/0 crm=not_found/0"},
		{"minimal", true, prooftest.FollowUp{}, "fulfilled", 7, "accounts=erased/0 billing=erased/0 crm=not_found/0"},
		{"billing never answers", true, prooftest.FollowUp{Answers: []prooftest.Answer{{System: "billing", DeadLetter: true}}},
			"failed", 7, "accounts=erased/0 billing=dead_letter/0 crm=not_found/0"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			w := prooftest.NewWorld(t)
			r := w.Erase(t, "req-1", prooftest.Erasure{Minimal: tt.minimal})
			first := w.Certificate(t, r)
			if err := w.Verify(first); err != nil || first.State != "partially_retained" || first.AnsweredAt != nil {
				t.Fatalf("first certificate: state %s, answered at %v, Verify = %v", first.State, first.AnsweredAt, err)
			}
			answered := r.Completed
			w.FollowUp(t, r, tt.followUp)
			c := w.Certificate(t, r)
			if err := w.Verify(c); err != nil {
				t.Fatalf("Verify = %v", err)
			}
			var systems []string
			for _, s := range c.Systems {
				systems = append(systems, fmt.Sprintf("%s=%s/%d", s.System, s.Outcome, s.Remaining))
			}
			if got := strings.Join(systems, " "); got != tt.systems {
				t.Errorf("systems %s, want %s", got, tt.systems)
			}
			if c.State != tt.state || len(c.Log.Entries) != tt.entries || c.AnsweredAt == nil || !c.AnsweredAt.Equal(answered) ||
				!c.RespondedAt().Equal(answered) || !c.DeadlineMet || !c.CompletedAt.After(time.Date(2036, 12, 31, 0, 0, 0, 0, time.UTC)) {
				t.Errorf("state %s, %d entries, answered at %v, completed %s, deadline met %v; want %s, %d, %s",
					c.State, len(c.Log.Entries), c.AnsweredAt, c.CompletedAt, c.DeadlineMet, tt.state, tt.entries, answered)
			}
			// The first certificate still verifies: the log only grew.
			if err := w.Verify(first); err != nil {
				t.Errorf("the first certificate after the follow-up: %v", err)
			}
		})
	}
}

func TestWorldReceiptNotLogged(t *testing.T) {
	w := prooftest.NewWorld(t, "accounts")
	r := w.Erase(t, "req-1", prooftest.Erasure{Answers: []prooftest.Answer{{System: "accounts", Outcome: lethev1.Outcome_OUTCOME_ERASED}}})
	rc := w.Receipt(t, "req-1", "accounts", lethev1.Outcome_OUTCOME_ERASED, r.Received.Add(time.Hour))
	if err := proof.VerifyReceipt(w.Keys, rc, r.Received.Add(time.Hour)); err != nil {
		t.Fatalf("the receipt does not verify: %v", err)
	}
	ks, err := proof.ReadKeySet(w.KeysPath)
	if err != nil || len(ks.Keys) != 2 {
		t.Fatalf("keys file: %d keys, %v; want the orchestrator's and accounts'", len(ks.Keys), err)
	}
	if pub, err := proof.ReadPublicKey(w.PubPath("accounts")); err != nil || pub.ID != w.Connectors["accounts"].Key.ID {
		t.Errorf("public entry of accounts: %+v, %v", pub, err)
	}
}

func TestMemLog(t *testing.T) {
	w := prooftest.NewWorld(t)
	l := prooftest.NewMemLog()
	for i := range 20 {
		if got := l.Append([]byte(fmt.Sprintf(`{"n":%d}`, i))); got != int64(i) {
			t.Fatalf("entry %d appended at %d", i, got)
		}
	}
	at := prooftest.KeysFrom.Add(time.Hour)
	older, newer := l.HeadAt(w.Orchestrator, 7, at), l.Head(w.Orchestrator, at)
	if newer.Size != 20 || !reflect.DeepEqual(newer, l.HeadAt(w.Orchestrator, 20, at)) || newer.Root != l.Root(20) {
		t.Fatalf("head of the whole log %+v", newer)
	}
	if err := proof.CheckConsistency(older, newer, l.ProveTree(7, 20)); err != nil {
		t.Errorf("consistency: %v", err)
	}
	if le := l.Logged(3, 7); proof.CheckInclusion(older, 3, le.Entry, le.Proof) != nil || string(le.Entry) != `{"n":3}` {
		t.Errorf("entry 3 in the tree of 7: %s", le.Entry)
	}

	// A rewritten past is caught by the older head, though its new heads
	// are signed.
	l.Rewrite(2, []byte(`{"n":-2}`))
	rewritten := l.Head(w.Orchestrator, at)
	if err := proof.VerifyTreeHead(w.Keys, rewritten); err != nil || rewritten.Size != 20 {
		t.Fatalf("head after rewriting: size %d, %v", rewritten.Size, err)
	}
	if err := proof.CheckConsistency(older, rewritten, l.ProveTree(7, 20)); err == nil {
		t.Error("a rewritten log passed as consistent with the older head")
	}

	for name, misuse := range map[string]func(){
		"a tree larger than the log": func() { l.Root(21) },
		"an entry beyond the tree":   func() { l.ProveRecord(7, 7) },
		"an older tree larger":       func() { l.ProveTree(8, 7) },
		"rewriting past the end":     func() { l.Rewrite(20, nil) },
	} {
		func() {
			defer func() {
				if recover() == nil {
					t.Errorf("%s: no panic", name)
				}
			}()
			misuse()
		}()
	}
}
