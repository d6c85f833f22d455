package proof_test

import (
	"bytes"
	"encoding/base64"
	"errors"
	"math/rand"
	"strings"
	"testing"
	"time"

	"google.golang.org/protobuf/proto"

	"github.com/lethe-dev/lethe/pkg/deadline"
	lethev1 "github.com/lethe-dev/lethe/pkg/gen/lethe/v1"
	"github.com/lethe-dev/lethe/pkg/proof"
	"github.com/lethe-dev/lethe/pkg/proof/prooftest"
)

func TestCertificateVerifies(t *testing.T) {
	w := prooftest.NewWorld(t)
	w.Erase(t, "req-0", prooftest.Erasure{}) // the log holds other requests
	r := w.Erase(t, "req-1", prooftest.Erasure{})
	w.Erase(t, "req-2", prooftest.Erasure{}) // and goes on after this one
	c := w.Certificate(t, r)

	got, err := proof.Verify(c.Encode(), w.Keys)
	if err != nil {
		t.Fatalf("a certificate as issued does not verify: %v", err)
	}
	if got.RequestID != "req-1" || got.State != "fulfilled" || !got.DeadlineMet || len(got.Systems) != 3 {
		t.Errorf("read back %+v", got)
	}
	if got.Version != proof.CertificateVersion || got.KeyID != w.Orchestrator.Key.ID {
		t.Errorf("version %d key %s", got.Version, got.KeyID)
	}
	// As served, with a final newline, it verifies too.
	if _, err := proof.Verify(append(c.Encode(), '\n'), w.Keys); err != nil {
		t.Errorf("with a final newline: %v", err)
	}
	// The summary a person reads is the receipts'.
	want := map[string]struct {
		outcome   string
		remaining int64
		basis     bool
	}{"accounts": {"erased", 0, false}, "billing": {"retained", 3, true}, "crm": {"not_found", 0, false}}
	for _, s := range got.Systems {
		wnt := want[s.System]
		if s.Outcome != wnt.outcome || s.Remaining != wnt.remaining || (s.LegalBasis != "") != wnt.basis || (s.RetainUntil != nil) != wnt.basis {
			t.Errorf("%s: %+v", s.System, s)
		}
		if s.KeyID != w.Connectors[s.System].Key.ID || s.ConnectorTime == nil || len(s.Receipt) == 0 {
			t.Errorf("%s: key %s, connector time %v, %d receipt bytes", s.System, s.KeyID, s.ConnectorTime, len(s.Receipt))
		}
	}
}

// Every single-byte change of a certificate fails verification.
func TestCertificateTamperedBytes(t *testing.T) {
	w := prooftest.NewWorld(t)
	w.Erase(t, "req-0", prooftest.Erasure{})
	r := w.Erase(t, "req-1", prooftest.Erasure{Answers: []prooftest.Answer{
		{System: "accounts", Outcome: lethev1.Outcome_OUTCOME_ERASED},
		{System: "billing", Outcome: lethev1.Outcome_OUTCOME_RETAINED},
	}})
	orig := w.Certificate(t, r).Encode()
	if _, err := proof.Verify(orig, w.Keys); err != nil {
		t.Fatalf("before tampering: %v", err)
	}
	rng := rand.New(rand.NewSource(20260210))
	b := bytes.Clone(orig)
	tested := 0
	for i := range b {
		// Every position, each to a different byte value (drawn at random
		// among the 255 others).
		was := b[i]
		b[i] = was ^ byte(1+rng.Intn(255))
		if _, err := proof.Verify(b, w.Keys); err == nil {
			t.Errorf("byte %d changed from %q to %q: the certificate still verifies", i, was, b[i])
		}
		b[i] = was
		tested++
	}
	if !bytes.Equal(b, orig) {
		t.Fatal("the test did not restore the certificate")
	}
	if tested != len(orig) {
		t.Fatalf("tested %d positions of %d", tested, len(orig))
	}
	t.Logf("%d single-byte changes, one at each of the certificate's %d positions: every one failed", tested, len(orig))
}

// checkFails verifies c and requires an error that says want; reSigned
// certificates must be caught by what the checks find, not the signature.
func checkFails(t *testing.T, w *prooftest.World, c *proof.Certificate, want string) {
	t.Helper()
	_, err := proof.Verify(c.Encode(), w.Keys)
	if err == nil {
		t.Fatalf("the certificate verifies; want a failure saying %q", want)
	}
	if !strings.Contains(err.Error(), want) {
		t.Errorf("Verify = %v\nwant it to say %q", err, want)
	}
}

func TestCertificateSwappedReceipt(t *testing.T) {
	w := prooftest.NewWorld(t)
	a := w.Certificate(t, w.Erase(t, "req-1", prooftest.Erasure{}))
	b := w.Certificate(t, w.Erase(t, "req-2", prooftest.Erasure{}))
	for _, c := range []*proof.Certificate{a, b} {
		if err := w.Verify(c); err != nil {
			t.Fatalf("%s before the swap: %v", c.RequestID, err)
		}
	}
	for i := range a.Systems {
		t.Run(a.Systems[i].System, func(t *testing.T) {
			x, y := prooftest.Clone(t, a), prooftest.Clone(t, b)
			x.Systems[i], y.Systems[i] = y.Systems[i], x.Systems[i]
			checkFails(t, w, x, "certificate signature")
			checkFails(t, w, y, "certificate signature")
			// Even signed again by the orchestrator's key, another
			// request's receipt is caught.
			x.Sign(w.Orchestrator)
			checkFails(t, w, x, "not this request's")
		})
	}
	// A receipt of the same request, but for a task of another system.
	x := prooftest.Clone(t, a)
	x.Systems[0].Receipt = x.Systems[1].Receipt
	x.Sign(w.Orchestrator)
	checkFails(t, w, x, "not this request's")
}

func TestCertificateDroppedSystem(t *testing.T) {
	w := prooftest.NewWorld(t)
	c := w.Certificate(t, w.Erase(t, "req-1", prooftest.Erasure{}))
	for i := range c.Systems {
		t.Run(c.Systems[i].System, func(t *testing.T) {
			x := prooftest.Clone(t, c)
			x.Systems = append(x.Systems[:i:i], x.Systems[i+1:]...)
			checkFails(t, w, x, "certificate signature")
			x.Sign(w.Orchestrator)
			checkFails(t, w, x, "the log names "+c.Systems[i].System)
		})
	}
	x := prooftest.Clone(t, c)
	x.Systems = nil
	x.Sign(w.Orchestrator)
	checkFails(t, w, x, "names no system")
}

func TestCertificateWrongSigner(t *testing.T) {
	w := prooftest.NewWorld(t)
	r := w.Erase(t, "req-1", prooftest.Erasure{})
	stranger, _ := prooftest.NewSigner(t, proof.RoleOrchestrator, prooftest.KeysFrom)
	tests := []struct {
		name   string
		signer *proof.Signer
		want   error
	}{
		{"unknown orchestrator key", stranger, proof.ErrUnknownKey},
		{"connector key", w.Connectors["accounts"], proof.ErrWrongSystem},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := w.Certificate(t, r)
			c.Sign(tt.signer)
			if err := w.Verify(c); !errors.Is(err, tt.want) {
				t.Errorf("Verify = %v, want %v", err, tt.want)
			}
		})
	}
	// The orchestrator key retired before completion no longer signs.
	c := w.Certificate(t, r)
	ks := w.Keys
	k := w.Orchestrator.Key
	retired := r.Completed.Add(-time.Hour)
	k.NotAfter = &retired
	ks.Add(k)
	if _, err := proof.Verify(c.Encode(), ks); !errors.Is(err, proof.ErrKeyNotValid) {
		t.Errorf("Verify with the orchestrator key retired = %v, want %v", err, proof.ErrKeyNotValid)
	}
	// Nor does one that verifies without the keys.
	if _, err := proof.Verify(c.Encode(), proof.KeySet{}); !errors.Is(err, proof.ErrUnknownKey) {
		t.Errorf("Verify with no keys = %v, want %v", err, proof.ErrUnknownKey)
	}
}

// The deadline arithmetic: each certificate here is signed again after the
// change, so only the arithmetic can catch it.
func TestCertificateDeadlineArithmetic(t *testing.T) {
	received := time.Date(2026, 1, 31, 16, 0, 0, 0, time.UTC)
	due := deadline.OneMonth(received) // 28 Feb 2026, 23:59:59
	if want := time.Date(2026, 2, 28, 23, 59, 59, 0, time.UTC); !due.Equal(want) {
		t.Fatalf("deadline %s, want %s", due, want)
	}
	extended := deadline.OneMonth(deadline.AddMonths(received, 2)) // 30 Apr 2026
	tests := []struct {
		name      string
		completed time.Time
		extendTo  *time.Time
		change    func(*proof.Certificate)
		want      string // "": verifies
	}{
		{"on time", received.AddDate(0, 0, 3), nil, nil, ""},
		{"at the deadline's last second", due, nil, nil, ""},
		{"late", due.Add(time.Second), nil, nil, ""},
		{"extended, on time", due.AddDate(0, 1, 0), &extended, nil, ""},
		{"extended to the last day", extended, &extended, nil, ""},
		{"on time but deadline_met false", received.AddDate(0, 0, 3), nil,
			func(c *proof.Certificate) { c.DeadlineMet = false }, "deadline_met is false"},
		{"late but deadline_met true", due.Add(time.Second), nil,
			func(c *proof.Certificate) { c.DeadlineMet = true }, "deadline_met is true"},
		{"deadline a day later", due.Add(12 * time.Hour), nil,
			func(c *proof.Certificate) { c.Deadline = due.AddDate(0, 0, 1); c.DeadlineMet = true }, "not one month after receipt"},
		{"deadline a day earlier", received.AddDate(0, 0, 3), nil,
			func(c *proof.Certificate) { c.Deadline = due.AddDate(0, 0, -1) }, "not one month after receipt"},
		{"deadline a second later", due.Add(time.Second), nil,
			func(c *proof.Certificate) { c.Deadline = due.Add(time.Second); c.DeadlineMet = true }, "not one month after receipt"},
		{"deadline thirty days on", received.AddDate(0, 0, 3), nil,
			func(c *proof.Certificate) { c.Deadline = received.AddDate(0, 0, 30) }, "not one month after receipt"},
		{"extended without saying so", due.AddDate(0, 1, 0), &extended,
			func(c *proof.Certificate) { c.OriginalDeadline = nil }, "not one month after receipt"},
		{"wrong original deadline", due.AddDate(0, 1, 0), &extended,
			func(c *proof.Certificate) { o := due.AddDate(0, 0, 1); c.OriginalDeadline = &o }, "original deadline"},
		{"extended beyond two more months", extended.Add(time.Hour), &extended,
			func(c *proof.Certificate) { c.Deadline = extended.AddDate(0, 0, 1); c.DeadlineMet = true }, "outside the two further months"},
		{"extended to before the deadline", due.AddDate(0, 0, -10), &extended,
			func(c *proof.Certificate) { c.Deadline = due.AddDate(0, 0, -1) }, "outside the two further months"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			w := prooftest.NewWorld(t)
			c := w.Certificate(t, w.Erase(t, "req-1", prooftest.Erasure{Received: received, Completed: tt.completed, ExtendTo: tt.extendTo}))
			if tt.change == nil {
				if err := w.Verify(c); err != nil {
					t.Fatalf("Verify = %v", err)
				}
				if got, want := c.DeadlineMet, !tt.completed.After(c.Deadline); got != want {
					t.Errorf("deadline_met %v, want %v", got, want)
				}
				return
			}
			tt.change(c)
			c.Sign(w.Orchestrator)
			checkFails(t, w, c, tt.want)
		})
	}
}

// What the orchestrator signs must agree with the log and the receipts:
// each change here is signed again, so only those checks can catch it.
func TestCertificateDisagreesWithLogOrReceipts(t *testing.T) {
	w := prooftest.NewWorld(t)
	r := w.Erase(t, "req-1", prooftest.Erasure{})
	other := w.Erase(t, "req-2", prooftest.Erasure{})
	c := w.Certificate(t, r)
	size := w.Log.Size()
	if err := w.Verify(c); err != nil {
		t.Fatal(err)
	}
	sys := func(c *proof.Certificate, name string) *proof.SystemResult {
		for i := range c.Systems {
			if c.Systems[i].System == name {
				return &c.Systems[i]
			}
		}
		t.Fatalf("no system %s", name)
		return nil
	}
	tests := []struct {
		name   string
		change func(*proof.Certificate)
		want   string
	}{
		{"a log entry of another request", func(c *proof.Certificate) {
			c.Log.Entries = append(c.Log.Entries, w.Log.Logged(other.Entries[0], size))
		}, "belongs to request req-2"},
		{"another request's entries instead", func(c *proof.Certificate) {
			c.Log.Entries = nil
			for _, i := range other.Entries {
				c.Log.Entries = append(c.Log.Entries, w.Log.Logged(i, size))
			}
		}, "belongs to request req-2"},
		{"an entry at another index", func(c *proof.Certificate) { c.Log.Entries[1].Index++ }, "is not in the log"},
		{"an entry with another's proof", func(c *proof.Certificate) { c.Log.Entries[1].Proof = c.Log.Entries[2].Proof }, "is not in the log"},
		{"an entry changed", func(c *proof.Certificate) {
			c.Log.Entries[1].Entry = []byte(strings.Replace(string(c.Log.Entries[1].Entry), "verified", "extended", 1))
		}, "is not in the log"},
		{"a tree head of another size", func(c *proof.Certificate) {
			c.Log.TreeHead = w.Log.HeadAt(w.Orchestrator, size-1, c.Log.TreeHead.Time)
		}, "is not in the log"},
		{"a tree head signed by a connector key", func(c *proof.Certificate) {
			c.Log.TreeHead = w.Log.HeadAt(w.Connectors["accounts"], size, c.Log.TreeHead.Time)
		}, "tree head: key not registered"},
		{"a tree head with its signature broken", func(c *proof.Certificate) { c.Log.TreeHead.Signature[7] ^= 1 }, "tree head: signature does not verify"},
		{"the created entry dropped", func(c *proof.Certificate) { c.Log.Entries = c.Log.Entries[1:] }, `no "created" entry`},
		{"the final entry dropped", func(c *proof.Certificate) { c.Log.Entries = c.Log.Entries[:len(c.Log.Entries)-1] }, "no entry ending the request"},
		{"a receipt_accepted entry dropped", func(c *proof.Certificate) {
			for i, le := range c.Log.Entries {
				if strings.Contains(string(le.Entry), `"event":"receipt_accepted","at"`) && strings.Contains(string(le.Entry), `"system":"billing"`) {
					c.Log.Entries = append(c.Log.Entries[:i:i], c.Log.Entries[i+1:]...)
					return
				}
			}
			t.Fatal("no receipt_accepted entry for billing")
		}, "billing: the log did not accept this receipt"},
		{"subject hash", func(c *proof.Certificate) { c.SubjectHash = other.SubjectHash }, "does not match the request the log recorded"},
		{"tenant", func(c *proof.Certificate) { c.Tenant = "other" }, "does not match the request the log recorded"},
		{"type", func(c *proof.Certificate) { c.Type = "export" }, "does not match the request the log recorded"},
		{"received at", func(c *proof.Certificate) {
			c.ReceivedAt = c.ReceivedAt.Add(time.Hour)
			c.Deadline = deadline.OneMonth(c.ReceivedAt)
		}, "does not match the request the log recorded"},
		{"completed at", func(c *proof.Certificate) { c.CompletedAt = c.CompletedAt.Add(-time.Hour) }, "the log ended the request"},
		{"state failed", func(c *proof.Certificate) { c.State = "failed" }, "the log ended the request"},
		{"a summary's remaining", func(c *proof.Certificate) { sys(c, "billing").Remaining = 0 }, "summary does not match"},
		{"a summary's outcome", func(c *proof.Certificate) { sys(c, "billing").Outcome = "erased" }, "summary does not match"},
		{"a summary's counts", func(c *proof.Certificate) { sys(c, "accounts").Counts["profile"] = 0 }, "summary does not match"},
		{"a summary's legal basis", func(c *proof.Certificate) { sys(c, "billing").LegalBasis = "consent" }, "summary does not match"},
		{"a summary's system", func(c *proof.Certificate) { sys(c, "crm").System = "ads" }, "the log names crm"},
		{"a receipt not in the log", func(c *proof.Certificate) {
			// A valid receipt of the right connector, for the right task,
			// but not the one the log accepted.
			rc := w.Receipt(t, "req-1", "accounts", lethev1.Outcome_OUTCOME_NOT_FOUND, r.Received.Add(20*time.Minute))
			raw, err := proto.Marshal(rc)
			if err != nil {
				t.Fatal(err)
			}
			res, err := proof.SystemResultOf(raw)
			if err != nil {
				t.Fatal(err)
			}
			*sys(c, "accounts") = res
		}, "accounts: the log did not accept this receipt"},
		{"a receipt with its signature broken", func(c *proof.Certificate) {
			rc := &lethev1.Receipt{}
			if err := proto.Unmarshal(sys(c, "crm").Receipt, rc); err != nil {
				t.Fatal(err)
			}
			rc.Remaining = 0
			rc.Signature[5] ^= 1
			raw, _ := proto.Marshal(rc)
			res, err := proof.SystemResultOf(raw)
			if err != nil {
				t.Fatal(err)
			}
			*sys(c, "crm") = res
		}, "signature does not verify"},
		{"a receipt that does not decode", func(c *proof.Certificate) { sys(c, "crm").Receipt = []byte{0xff, 0xff} }, "does not decode"},
		{"systems out of order", func(c *proof.Certificate) { c.Systems[0], c.Systems[1] = c.Systems[1], c.Systems[0] }, "not in order"},
		{"a system listed twice", func(c *proof.Certificate) { c.Systems = append(c.Systems, c.Systems[2]) }, "listed twice"},
		{"a system without a receipt", func(c *proof.Certificate) { sys(c, "crm").Receipt = nil }, `no receipt for outcome "not_found"`},
		{"a dead letter the log never saw", func(c *proof.Certificate) {
			c.Systems = append(c.Systems, proof.SystemResult{System: "warehouse", Outcome: proof.OutcomeDeadLetter})
			c.State = "failed"
		}, "warehouse: the log does not name this system"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			x := prooftest.Clone(t, c)
			tt.change(x)
			x.Sign(w.Orchestrator)
			checkFails(t, w, x, tt.want)
		})
	}
}

// A connector's signed, logged answer to another action than the request's
// does not fulfil it.
func TestCertificateReceiptForAnotherAction(t *testing.T) {
	w := prooftest.NewWorld(t)
	c := w.Certificate(t, w.Erase(t, "req-1", prooftest.Erasure{Answers: []prooftest.Answer{
		{System: "accounts", Outcome: lethev1.Outcome_OUTCOME_EXPORTED, Action: lethev1.Action_ACTION_EXPORT},
		{System: "crm", Outcome: lethev1.Outcome_OUTCOME_NOT_FOUND},
	}}))
	checkFails(t, w, c, "accounts: the receipt answers a ACTION_EXPORT, not a erasure")
}

func TestCertificateDeadLetter(t *testing.T) {
	answers := []prooftest.Answer{
		{System: "accounts", Outcome: lethev1.Outcome_OUTCOME_ERASED},
		{System: "billing", DeadLetter: true},
		{System: "crm", Outcome: lethev1.Outcome_OUTCOME_NOT_FOUND},
	}
	tests := []struct {
		name  string
		state string // "": what the answers give
		want  string // "": verifies
	}{
		{"state failed", "", ""},
		{"state fulfilled", "fulfilled", `state "fulfilled" does not follow`},
		{"state partially_retained", "partially_retained", `state "partially_retained" does not follow`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			w := prooftest.NewWorld(t)
			r := w.Erase(t, "req-1", prooftest.Erasure{Answers: answers, State: tt.state})
			c := w.Certificate(t, r)
			if tt.want == "" {
				if c.State != "failed" {
					t.Fatalf("state %q", c.State)
				}
				if err := w.Verify(c); err != nil {
					t.Fatalf("Verify = %v", err)
				}
				return
			}
			checkFails(t, w, c, tt.want)
		})
	}
	// A dead letter dressed as a system that held nothing has no receipt.
	w := prooftest.NewWorld(t)
	c := w.Certificate(t, w.Erase(t, "req-1", prooftest.Erasure{Answers: answers}))
	c.Systems[1].Outcome = "not_found"
	c.Sign(w.Orchestrator)
	checkFails(t, w, c, `no receipt for outcome "not_found"`)
}

// A system that answered failed (a signed receipt) makes the request failed.
func TestCertificateFailedReceipt(t *testing.T) {
	answers := []prooftest.Answer{
		{System: "accounts", Outcome: lethev1.Outcome_OUTCOME_ERASED},
		{System: "crm", Outcome: lethev1.Outcome_OUTCOME_FAILED},
	}
	w := prooftest.NewWorld(t)
	c := w.Certificate(t, w.Erase(t, "req-1", prooftest.Erasure{Answers: answers}))
	if err := w.Verify(c); err != nil || c.State != "failed" {
		t.Fatalf("state %q, Verify = %v", c.State, err)
	}
	w2 := prooftest.NewWorld(t)
	c2 := w2.Certificate(t, w2.Erase(t, "req-1", prooftest.Erasure{Answers: answers, State: "fulfilled"}))
	checkFails(t, w2, c2, `state "fulfilled" does not follow`)
}

func TestVerifyRejectsMalformed(t *testing.T) {
	w := prooftest.NewWorld(t)
	c := w.Certificate(t, w.Erase(t, "req-1", prooftest.Erasure{}))
	enc := string(c.Encode())
	v2 := prooftest.Clone(t, c)
	v2.Sign(w.Orchestrator)
	v2.Version = 2
	// The signature's last base64 character before its padding carries
	// bits a lenient decoder ignores: set one, and the bytes decode alike.
	sig := `"signature":"` + base64.StdEncoding.EncodeToString(c.Signature) + `"`
	if !strings.HasSuffix(enc, sig+"}") || !strings.HasSuffix(sig, `=="`) {
		t.Fatalf("the certificate does not end with its signature: %s", enc[len(enc)-120:])
	}
	const alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/"
	last := len(enc) - len(`=="}`) - 1
	loose := enc[:last] + string(alphabet[strings.IndexByte(alphabet, enc[last])|1]) + enc[last+1:]
	looseSig := loose[strings.LastIndex(loose, `"signature":"`)+len(`"signature":"`) : len(loose)-len(`"}`)]
	if b, err := base64.StdEncoding.DecodeString(looseSig); err != nil || !bytes.Equal(b, c.Signature) || looseSig == base64.StdEncoding.EncodeToString(c.Signature) {
		t.Fatalf("the loose base64 does not decode to the signature: %v", err)
	}
	tests := []struct {
		name string
		data string
		want string
	}{
		{"empty", "", "not a certificate"},
		{"a field name in upper case", strings.Replace(enc, `{"version":1,`, `{"VERSION":1,`, 1), "not in canonical form"},
		{"a nested field name in other case", strings.Replace(enc, `"tree_head":{"size"`, `"tree_head":{"Size"`, 1), "not in canonical form"},
		{"a field repeated", strings.Replace(enc, `{"version":1,`, `{"version":1,"version":1,`, 1), "not in canonical form"},
		{"loose base64 in the signature", loose, "not in canonical form"},
		{"an escaped character", strings.Replace(enc, `"tenant":"demo"`, `"tenant":"d\u0065mo"`, 1), "not in canonical form"},
		{"not JSON", "certificate", "not a certificate"},
		{"unknown field", strings.Replace(enc, `{"version":1,`, `{"version":1,"note":"x",`, 1), "not a certificate"},
		{"indented", strings.Replace(enc, `{"version":1,`, "{\n  \"version\": 1,", 1), "not in canonical form"},
		{"two certificates", enc + "\n" + enc, "not a certificate"},
		{"another version", string(v2.Encode()), "version 2"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := proof.Verify([]byte(tt.data), w.Keys)
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Errorf("Verify = %v, want it to say %q", err, tt.want)
			}
		})
	}
}
