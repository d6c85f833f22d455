package prooftest_test

import (
	"fmt"
	"reflect"
	"strings"
	"testing"
	"time"

	lethev1 "github.com/lethe-dev/lethe/pkg/gen/lethe/v1"
	"github.com/lethe-dev/lethe/pkg/proof"
	"github.com/lethe-dev/lethe/pkg/proof/prooftest"
)

// Every kind of request a World carries out yields a certificate that
// verifies, telling what the options say.
func TestWorldCertificatesVerify(t *testing.T) {
	extended := time.Date(2026, 5, 10, 23, 59, 59, 0, time.UTC)
	billingKept := &lethev1.Receipt{
		Counts:     []*lethev1.CategoryCount{{Category: "invoice", Count: 2}},
		Remaining:  2,
		LegalBasis: "accounting law",
	}
	tests := []struct {
		name        string
		erasure     prooftest.Erasure
		state       string
		entries     int
		systems     string // system=outcome/remaining, in order
		original    bool   // the deadline was extended
		deadlineMet bool
	}{
		{"the default request", prooftest.Erasure{}, "fulfilled", 9,
			"accounts=erased/0 billing=retained/3 crm=not_found/0", false, true},
		{"minimal", prooftest.Erasure{Minimal: true}, "fulfilled", 5,
			"accounts=erased/0 billing=retained/3 crm=not_found/0", false, true},
		{"extended and late", prooftest.Erasure{ExtendTo: &extended, Completed: extended.Add(time.Second)}, "fulfilled", 10,
			"accounts=erased/0 billing=retained/3 crm=not_found/0", true, false},
		{"a dead letter", prooftest.Erasure{Answers: []prooftest.Answer{
			{System: "crm", DeadLetter: true},
			{System: "accounts", Outcome: lethev1.Outcome_OUTCOME_ERASED},
		}}, "failed", 7, "accounts=erased/0 crm=dead_letter/0", false, true},
		{"a failed receipt", prooftest.Erasure{Answers: []prooftest.Answer{
			{System: "accounts", Outcome: lethev1.Outcome_OUTCOME_FAILED},
		}}, "failed", 5, "accounts=failed/0", false, true},
		{"the receipt's content given, state partially_retained", prooftest.Erasure{Minimal: true, State: "partially_retained", Answers: []prooftest.Answer{
			{System: "billing", Outcome: lethev1.Outcome_OUTCOME_RETAINED, Receipt: billingKept},
		}}, "partially_retained", 3, "billing=retained/2", false, true},
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
			if c.State != tt.state || len(c.Log.Entries) != tt.entries || (c.OriginalDeadline != nil) != tt.original || c.DeadlineMet != tt.deadlineMet {
				t.Errorf("state %s, %d entries, original deadline %v, deadline met %v; want %s, %d, %v, %v",
					c.State, len(c.Log.Entries), c.OriginalDeadline, c.DeadlineMet, tt.state, tt.entries, tt.original, tt.deadlineMet)
			}
			if c.Log.TreeHead.Size != w.Log.Size() || r.Entries[0] == 0 {
				t.Errorf("tree head of size %d, first entry %d; want the whole log of %d, after req-0's", c.Log.TreeHead.Size, r.Entries[0], w.Log.Size())
			}
		})
	}
	// The template is copied, never changed.
	if billingKept.RequestId != "" || billingKept.Signature != nil {
		t.Errorf("the answer's receipt was changed: %v", billingKept)
	}
}

func TestWorldReceiptNotLogged(t *testing.T) {
	w := prooftest.NewWorld(t, "accounts")
	r := w.Erase(t, "req-1", prooftest.Erasure{Answers: []prooftest.Answer{{System: "accounts", Outcome: lethev1.Outcome_OUTCOME_ERASED}}})
	rc := w.Receipt(t, "req-1", "accounts", lethev1.Outcome_OUTCOME_ERASED, r.Received.Add(time.Hour))
	if err := proof.VerifyReceipt(w.Keys, rc); err != nil {
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
