package proof_test

import (
	"bytes"
	"encoding/base64"
	"errors"
	"fmt"
	"math/rand"
	"slices"
	"strings"
	"testing"
	"time"

	"google.golang.org/protobuf/proto"

	"github.com/lethe-dev/lethe/pkg/deadline"
	lethev1 "github.com/lethe-dev/lethe/pkg/gen/lethe/v1"
	"github.com/lethe-dev/lethe/pkg/lifecycle"
	"github.com/lethe-dev/lethe/pkg/proof"
	"github.com/lethe-dev/lethe/pkg/proof/prooftest"
)

func TestCertificateVerifies(t *testing.T) {
	for _, version := range []int{1, 2} {
		t.Run(fmt.Sprintf("version %d", version), func(t *testing.T) { certificateVerifies(t, version) })
	}
}

func certificateVerifies(t *testing.T, version int) {
	w := prooftest.NewWorld(t)
	if version == 2 {
		w.Origin = "lethe.example/log"
	}
	w.Erase(t, "req-0", prooftest.Erasure{}) // the log holds other requests
	r := w.Erase(t, "req-1", prooftest.Erasure{})
	w.Erase(t, "req-2", prooftest.Erasure{}) // and goes on after this one
	c := w.Certificate(t, r)

	got, err := proof.Verify(c.Encode(), w.Keys)
	if err != nil {
		t.Fatalf("a certificate as issued does not verify: %v", err)
	}
	if got.RequestID != "req-1" || got.State != "partially_retained" || !got.DeadlineMet || len(got.Systems) != 3 {
		t.Errorf("read back %+v", got)
	}
	if got.Version != version || got.KeyID != w.Orchestrator.Key.ID {
		t.Errorf("version %d key %s", got.Version, got.KeyID)
	}
	// Sign's encoding is Encode's, byte for byte.
	if signed := c.Sign(w.Orchestrator); !bytes.Equal(signed, c.Encode()) {
		t.Errorf("Sign returned\n%s\nEncode gives\n%s", signed, c.Encode())
	}
	// As served, with a final newline, it verifies too.
	if _, err := proof.Verify(append(c.Encode(), '\n'), w.Keys); err != nil {
		t.Errorf("with a final newline: %v", err)
	}
	// The summary a person reads is the receipts'.
	want := map[string]struct {
		outcome   lifecycle.Outcome
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

// Every single-byte change of a certificate fails verification: a plain
// one, and one with every optional part (a tenant's deadline policy, an
// extension told on two channels, an answer before a deferred erasure).
func TestCertificateTamperedBytes(t *testing.T) {
	tests := []struct {
		name    string
		erasure prooftest.Erasure
		follow  bool
	}{
		{"plain", prooftest.Erasure{Answers: []prooftest.Answer{
			{System: "accounts", Outcome: lethev1.Outcome_OUTCOME_ERASED},
			{System: "billing", Outcome: lethev1.Outcome_OUTCOME_RETAINED},
		}}, false},
		{"policy, extension, follow-up", prooftest.Erasure{
			Minimal: true,
			Policy:  &deadline.Spec{TimeZone: "Europe/Paris", RollToWorkingDay: true, Holidays: []string{"2026-03-10"}},
			Extend:  &prooftest.Extend{Notices: []prooftest.Notice{{Channel: "bus"}, {Channel: "webhook"}}},
			Answers: []prooftest.Answer{{System: "billing", Outcome: lethev1.Outcome_OUTCOME_RETAINED}},
		}, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			w := prooftest.NewWorld(t)
			w.Erase(t, "req-0", prooftest.Erasure{})
			r := w.Erase(t, "req-1", tt.erasure)
			if tt.follow {
				w.FollowUp(t, r, prooftest.FollowUp{})
			}
			orig := w.Certificate(t, r).Encode()
			if _, err := proof.Verify(orig, w.Keys); err != nil {
				t.Fatalf("before tampering: %v", err)
			}
			if tt.follow && !bytes.Contains(orig, []byte(`"answered_at"`)) {
				t.Fatalf("not every optional part is there: %s", orig)
			}
			rng := rand.New(rand.NewSource(20260210))
			b := bytes.Clone(orig)
			tested := 0
			for i := range b {
				// Every position, each to a different byte value (drawn at
				// random among the 255 others).
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
		})
	}
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
	// The earlier reading of "two further months": 28 April, not 30.
	extended := deadline.Policy{}.Extended(received)
	if want := time.Date(2026, 4, 28, 23, 59, 59, 0, time.UTC); !extended.Equal(want) {
		t.Fatalf("extended deadline %s, want %s", extended, want)
	}
	told := &prooftest.Extend{Notices: []prooftest.Notice{{}}} // a minute after the extension
	neverTold := &prooftest.Extend{}
	toldLate := &prooftest.Extend{Notices: []prooftest.Notice{{At: due.Add(time.Second)}}}
	toldAtTheLastSecond := &prooftest.Extend{Notices: []prooftest.Notice{{At: due}, {At: due.Add(time.Hour), Channel: "webhook"}}}
	tests := []struct {
		name      string
		completed time.Time
		extend    *prooftest.Extend
		change    func(*proof.Certificate)
		want      string // "": verifies
		met       bool   // when it verifies
	}{
		{"on time", received.AddDate(0, 0, 3), nil, nil, "", true},
		{"at the deadline's last second", due, nil, nil, "", true},
		{"late", due.Add(time.Second), nil, nil, "", false},
		{"extended, told, on time", due.AddDate(0, 1, 0), told, nil, "", true},
		{"extended, told, answered at the last second", extended, told, nil, "", true},
		{"extended, told, late", extended.Add(time.Second), told, nil, "", false},
		{"extended, never told: late after the original deadline", due.Add(time.Second), neverTold, nil, "", false},
		{"extended, never told: on time before it", due, neverTold, nil, "", true},
		{"extended, told after the original deadline: no effect", due.AddDate(0, 0, 2), toldLate, nil, "", false},
		{"extended, told at the original deadline's last second", due.AddDate(0, 0, 2), toldAtTheLastSecond, nil, "", true},
		{"on time but deadline_met false", received.AddDate(0, 0, 3), nil,
			func(c *proof.Certificate) { c.DeadlineMet = false }, "deadline_met is false", false},
		{"late but deadline_met true", due.Add(time.Second), nil,
			func(c *proof.Certificate) { c.DeadlineMet = true }, "deadline_met is true", false},
		{"deadline a day later", due.Add(12 * time.Hour), nil,
			func(c *proof.Certificate) { c.Deadline = due.AddDate(0, 0, 1); c.DeadlineMet = true }, "not one month after receipt", false},
		{"deadline a day earlier", received.AddDate(0, 0, 3), nil,
			func(c *proof.Certificate) { c.Deadline = due.AddDate(0, 0, -1) }, "not one month after receipt", false},
		{"deadline a second later", due.Add(time.Second), nil,
			func(c *proof.Certificate) { c.Deadline = due.Add(time.Second); c.DeadlineMet = true }, "not one month after receipt", false},
		{"deadline thirty days on", received.AddDate(0, 0, 3), nil,
			func(c *proof.Certificate) { c.Deadline = received.AddDate(0, 0, 30) }, "not one month after receipt", false},
		{"extended without saying so", due.AddDate(0, 1, 0), told,
			func(c *proof.Certificate) { c.Extension = nil }, "not one month after receipt", false},
		{"an extension the log has, hidden", due.AddDate(0, 0, -1), told,
			func(c *proof.Certificate) { c.Extension, c.Deadline = nil, due }, "the log records an extension of the deadline, the certificate shows none", false},
		{"wrong original deadline", due.AddDate(0, 1, 0), told,
			func(c *proof.Certificate) { c.Extension.OriginalDeadline = due.AddDate(0, 0, 1) }, "extension: original deadline", false},
		{"extended beyond two more months", extended.Add(time.Hour), told,
			func(c *proof.Certificate) { c.Deadline = extended.AddDate(0, 0, 1); c.DeadlineMet = true }, "not the two further months", false},
		{"extended by the later reading (30 April)", extended.Add(time.Hour), told,
			func(c *proof.Certificate) { c.Deadline = extended.AddDate(0, 0, 2); c.DeadlineMet = true }, "not the two further months", false},
		{"extended to before the deadline", due.AddDate(0, 0, -10), told,
			func(c *proof.Certificate) { c.Deadline = due.AddDate(0, 0, -1) }, "not the two further months", false},
		{"deadline_met with the notice never delivered, answered after the original deadline", due.AddDate(0, 0, 2), neverTold,
			func(c *proof.Certificate) { c.DeadlineMet = true }, "deadline_met is true, but completion 2026-03-02T23:59:59Z against deadline 2026-02-28T23:59:59Z says false", false},
		{"deadline_met with the notice delivered after the original deadline", due.AddDate(0, 0, 2), toldLate,
			func(c *proof.Certificate) { c.DeadlineMet = true }, "deadline_met is true", false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			w := prooftest.NewWorld(t)
			c := w.Certificate(t, w.Erase(t, "req-1", prooftest.Erasure{Received: received, Completed: tt.completed, Extend: tt.extend}))
			if tt.change == nil {
				if err := w.Verify(c); err != nil {
					t.Fatalf("Verify = %v", err)
				}
				if c.DeadlineMet != tt.met {
					t.Errorf("deadline_met %v, want %v", c.DeadlineMet, tt.met)
				}
				return
			}
			tt.change(c)
			c.Sign(w.Orchestrator)
			checkFails(t, w, c, tt.want)
		})
	}
}

// A tenant's policy: in Paris, rolling to the next working day. Received
// on 1 April 2026, a request is due on Friday 1 May, a public holiday, so
// at the end of Monday 4 May in Paris.
func TestCertificateDeadlinePolicy(t *testing.T) {
	received := time.Date(2026, 4, 1, 8, 0, 0, 0, time.UTC)
	paris := deadline.Spec{TimeZone: "Europe/Paris", RollToWorkingDay: true, Holidays: []string{"2026-05-01", "2026-12-25"}}
	due := time.Date(2026, 5, 4, 21, 59, 59, 0, time.UTC)       // 23:59:59 CEST
	extended := time.Date(2026, 7, 1, 21, 59, 59, 0, time.UTC)  // Wednesday 1 July
	unrolled := time.Date(2026, 5, 1, 21, 59, 59, 0, time.UTC)  // the holiday itself
	byDefault := time.Date(2026, 5, 1, 23, 59, 59, 0, time.UTC) // UTC, no roll
	afterDefault := byDefault.Add(36 * time.Hour)               // 3 May: late by default, on time in Paris
	told := &prooftest.Extend{Notices: []prooftest.Notice{{Channel: "webhook"}}}

	tests := []struct {
		name      string
		policy    *deadline.Spec
		extend    *prooftest.Extend
		completed time.Time
		change    func(*proof.Certificate)
		want      string // "": verifies
	}{
		{"on time in Paris, late by the default policy", &paris, nil, afterDefault, nil, ""},
		{"extended under the policy", &paris, told, due.AddDate(0, 1, 0), nil, ""},
		{"another zone", &paris, nil, afterDefault, func(c *proof.Certificate) {
			c.DeadlinePolicy.TimeZone = "Europe/Berlin"
		}, "the certificate's deadline policy is not the one the log recorded"},
		{"the policy dropped", &paris, nil, received.Add(time.Hour), func(c *proof.Certificate) {
			c.DeadlinePolicy = nil
		}, "the certificate's deadline policy is not the one the log recorded"},
		{"the policy dropped, the deadline made to match", &paris, nil, received.Add(time.Hour), func(c *proof.Certificate) {
			c.DeadlinePolicy, c.Deadline = nil, byDefault
		}, "the certificate's deadline policy is not the one the log recorded"},
		{"the holiday dropped", &paris, nil, received.Add(time.Hour), func(c *proof.Certificate) {
			c.DeadlinePolicy.Holidays = nil
		}, "deadline 2026-05-04T21:59:59Z is not one month after receipt (2026-05-01T23:59:59+02:00)"},
		{"the deadline not rolled", &paris, nil, received.Add(time.Hour), func(c *proof.Certificate) {
			c.Deadline = unrolled
		}, "deadline 2026-05-01T21:59:59Z is not one month after receipt (2026-05-04T23:59:59+02:00) under the request's deadline policy"},
		{"the extended deadline by the default policy", &paris, told, received.Add(time.Hour), func(c *proof.Certificate) {
			c.Deadline = deadline.Policy{}.Extended(received)
		}, "not the two further months"},
		{"a policy claimed for a default request", nil, nil, received.Add(time.Hour), func(c *proof.Certificate) {
			c.DeadlinePolicy = &paris
		}, "the certificate's deadline policy is not the one the log recorded"},
		{"the default policy written out", nil, nil, received.Add(time.Hour), func(c *proof.Certificate) {
			c.DeadlinePolicy = &deadline.Spec{TimeZone: "UTC"}
		}, "deadline policy: not canonical"},
		{"an unknown zone", &paris, nil, received.Add(time.Hour), func(c *proof.Certificate) {
			c.DeadlinePolicy.TimeZone = "Mars/Olympus_Mons"
		}, `unknown time zone "Mars/Olympus_Mons"`},
		{"a holiday that is not a date", &paris, nil, received.Add(time.Hour), func(c *proof.Certificate) {
			c.DeadlinePolicy.Holidays = []string{"1 May"}
		}, `holiday "1 May" is not a date`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			w := prooftest.NewWorld(t)
			c := w.Certificate(t, w.Erase(t, "req-1", prooftest.Erasure{Received: received, Completed: tt.completed, Policy: tt.policy, Extend: tt.extend}))
			if tt.change == nil {
				if err := w.Verify(c); err != nil {
					t.Fatalf("Verify = %v", err)
				}
				want := due
				if tt.extend != nil {
					want = extended
				}
				// The request keeps only the holidays that can move its
				// deadlines: not Christmas.
				if !c.Deadline.Equal(want) || !c.DeadlineMet || c.DeadlinePolicy == nil || strings.Join(c.DeadlinePolicy.Holidays, ",") != "2026-05-01" {
					t.Errorf("deadline %s (want %s), met %v, policy %+v", c.Deadline, want, c.DeadlineMet, c.DeadlinePolicy)
				}
				return
			}
			tt.change(c)
			c.Sign(w.Orchestrator)
			checkFails(t, w, c, tt.want)
		})
	}

	// The log's own created entry gives another deadline than the policy:
	// the log is rewritten, and the certificate issued from it honestly.
	w := prooftest.NewWorld(t)
	r := w.Erase(t, "req-1", prooftest.Erasure{Received: received, Policy: &paris})
	rewriteEntry(t, w, r.Entries[0], func(e *proof.Entry) { e.Deadline = &unrolled })
	checkFails(t, w, w.Certificate(t, r), "the log recorded a deadline that is not one month after receipt (2026-05-04T23:59:59+02:00)")
}

// rewriteEntry changes the log's entry at index: the log lies about its
// past, its heads are still properly signed.
func rewriteEntry(t *testing.T, w *prooftest.World, index int64, change func(*proof.Entry)) {
	t.Helper()
	e, err := proof.DecodeEntry(w.Log.Logged(index, w.Log.Size()).Entry)
	if err != nil {
		t.Fatal(err)
	}
	change(&e)
	w.Log.Rewrite(index, e.Encode())
}

// An extension must be the log's one extension, made before the original
// deadline, with the reason and notice the log recorded: each change here
// is signed again, so only those checks can catch it.
func TestCertificateExtension(t *testing.T) {
	at := prooftest.DefaultReceived.Add(24 * time.Hour)
	original := deadline.OneMonth(prooftest.DefaultReceived)
	extend := prooftest.Extend{At: at, Reason: "many systems", Notices: []prooftest.Notice{{Channel: "bus"}, {At: at.Add(time.Hour), Channel: "webhook"}}}
	w := prooftest.NewWorld(t)
	r := w.Erase(t, "req-1", prooftest.Erasure{Extend: &extend, Completed: original.AddDate(0, 0, 3)})
	c := w.Certificate(t, r)
	if err := w.Verify(c); err != nil {
		t.Fatalf("Verify = %v", err)
	}
	if !c.DeadlineMet || c.Extension.NoticeDeliveredAt == nil || !c.Extension.NoticeDeliveredAt.Equal(at.Add(time.Minute)) {
		t.Fatalf("deadline met %v, extension %+v", c.DeadlineMet, c.Extension)
	}
	tests := []struct {
		name   string
		change func(*proof.Certificate)
		want   string
	}{
		{"the extended entry dropped", func(c *proof.Certificate) {
			c.Log.Entries = slices.DeleteFunc(c.Log.Entries, func(le proof.LoggedEntry) bool {
				return strings.Contains(string(le.Entry), `"event":"extended"`)
			})
		}, "extension: the log records no extension of the deadline"},
		{"the reason changed", func(c *proof.Certificate) { c.Extension.Reason = "the person asked for too much" }, "extension: the reason is not the one the log recorded"},
		{"no reason", func(c *proof.Certificate) { c.Extension.Reason = "" }, "extension: no reason given"},
		{"made at another time", func(c *proof.Certificate) { c.Extension.At = at.Add(-time.Hour) }, "extension: made at 2026-02-11T08:30:00Z, the log says at 2026-02-11T09:30:00Z"},
		{"the notice told earlier", func(c *proof.Certificate) {
			earlier := at.Add(time.Second)
			c.Extension.NoticeDeliveredAt = &earlier
		}, "extension: the notice's delivery (2026-02-11T09:30:01Z on [bus webhook]) is not what the log's notice_delivered entries say (2026-02-11T09:31:00Z on [bus webhook])"},
		{"the notice's delivery dropped", func(c *proof.Certificate) {
			c.Extension.NoticeDeliveredAt, c.Extension.NoticeChannels = nil, nil
			c.DeadlineMet = false
		}, "extension: the notice's delivery (never on [])"},
		{"a channel added", func(c *proof.Certificate) { c.Extension.NoticeChannels = append(c.Extension.NoticeChannels, "post") }, "extension: the notice's delivery"},
		{"the notice_delivered entries dropped", func(c *proof.Certificate) {
			c.Log.Entries = slices.DeleteFunc(c.Log.Entries, func(le proof.LoggedEntry) bool {
				return strings.Contains(string(le.Entry), `"event":"notice_delivered"`)
			})
		}, "is not what the log's notice_delivered entries say (never on [])"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			x := prooftest.Clone(t, c)
			tt.change(x)
			x.Sign(w.Orchestrator)
			checkFails(t, w, x, tt.want)
		})
	}

	// What the log itself says, issued honestly from it.
	logTests := []struct {
		name  string
		erase prooftest.Erasure
		// rewrite changes the log entry of the given event (the first one).
		event   string
		rewrite func(*proof.Entry)
		want    string
	}{
		{"two extensions", prooftest.Erasure{Extend: &extend}, proof.EventVerified, func(e *proof.Entry) {
			ext, orig := deadline.Policy{}.Extended(prooftest.DefaultReceived), original
			*e = proof.Entry{RequestID: e.RequestID, Event: proof.EventExtended, At: e.At, Deadline: &ext, OriginalDeadline: &orig, ReasonSHA256: proof.ReasonHash("again")}
		}, "extension: the log records 2 extensions of the deadline; the law allows one"},
		{"the log's original deadline is another", prooftest.Erasure{Extend: &extend}, proof.EventExtended, func(e *proof.Entry) {
			o := e.OriginalDeadline.AddDate(0, 0, 1)
			e.OriginalDeadline = &o
		}, "extension: the deadlines the log recorded are not the certificate's"},
		{"the log's extended deadline is another", prooftest.Erasure{Extend: &extend}, proof.EventExtended, func(e *proof.Entry) {
			d := e.Deadline.AddDate(0, 0, 2)
			e.Deadline = &d
		}, "extension: the deadlines the log recorded are not the certificate's"},
		{"extended after the original deadline", prooftest.Erasure{
			Extend:    &prooftest.Extend{At: original.Add(time.Second), Notices: []prooftest.Notice{{}}},
			Completed: original.AddDate(0, 0, 3),
		}, "", nil, "extension: made at 2026-03-11T00:00:00Z, after the original deadline 2026-03-10T23:59:59Z: too late to extend"},
	}
	for _, tt := range logTests {
		t.Run(tt.name, func(t *testing.T) {
			w := prooftest.NewWorld(t)
			r := w.Erase(t, "req-1", tt.erase)
			if tt.rewrite != nil {
				for _, i := range r.Entries {
					if e, _ := proof.DecodeEntry(w.Log.Logged(i, w.Log.Size()).Entry); e.Event == tt.event {
						rewriteEntry(t, w, i, tt.rewrite)
						break
					}
				}
			}
			checkFails(t, w, w.Certificate(t, r), tt.want)
		})
	}
}

// A request answered partially_retained, then followed up at retain_until:
// both certificates verify; lies about either are caught.
func TestCertificateDeferredErasure(t *testing.T) {
	w := prooftest.NewWorld(t)
	r := w.Erase(t, "req-1", prooftest.Erasure{})
	first := w.Certificate(t, r)
	answered := r.Completed
	w.FollowUp(t, r, prooftest.FollowUp{})
	final := w.Certificate(t, r)
	for _, c := range []*proof.Certificate{first, final} {
		if err := w.Verify(c); err != nil {
			t.Fatalf("%s certificate: Verify = %v", c.State, err)
		}
	}
	if first.State != "partially_retained" || first.AnsweredAt != nil || final.State != "fulfilled" || final.AnsweredAt == nil ||
		!final.AnsweredAt.Equal(answered) || !final.DeadlineMet {
		t.Fatalf("first %s answered %v; final %s answered %v, deadline met %v", first.State, first.AnsweredAt, final.State, final.AnsweredAt, final.DeadlineMet)
	}
	billing := func(c *proof.Certificate) *proof.SystemResult {
		for i := range c.Systems {
			if c.Systems[i].System == "billing" {
				return &c.Systems[i]
			}
		}
		t.Fatal("no billing")
		return nil
	}
	tests := []struct {
		name   string
		c      *proof.Certificate
		change func(*proof.Certificate)
		want   string
	}{
		{"answered_at changed", final, func(c *proof.Certificate) {
			a := c.AnsweredAt.Add(-time.Hour)
			c.AnsweredAt = &a
		}, "answered_at is 2026-02-13T08:30:00Z, but the log first answered the request at 2026-02-13T09:30:00Z"},
		{"answered_at dropped, deadline_met kept", final, func(c *proof.Certificate) { c.AnsweredAt = nil },
			"deadline_met is true, but completion 2036-12-31T01:00:00Z against deadline 2026-03-10T23:59:59Z says false"},
		{"answered_at set to the end", final, func(c *proof.Certificate) {
			a := c.CompletedAt
			c.AnsweredAt = &a
		}, "answered_at is 2036-12-31T01:00:00Z, but the log first answered the request at 2026-02-13T09:30:00Z"},
		{"answered_at on the first certificate", first, func(c *proof.Certificate) {
			a := c.CompletedAt
			c.AnsweredAt = &a
		}, "answered_at 2026-02-13T09:30:00Z is not before completed_at"},
		{"the final certificate with billing's first, retained receipt", final, func(c *proof.Certificate) {
			*billing(c) = *billing(first)
			c.State = "partially_retained"
		}, "billing: the log did not accept this receipt"},
		{"the final certificate ending at the first answer", final, func(c *proof.Certificate) {
			c.CompletedAt, c.AnsweredAt = *c.AnsweredAt, nil
		}, "the log ended the request fulfilled at 2036-12-31T01:00:00Z, the certificate says fulfilled at 2026-02-13T09:30:00Z"},
		{"the first certificate claiming fulfilled", first, func(c *proof.Certificate) { c.State = "fulfilled" },
			`state "fulfilled" does not follow from the systems' answers ("partially_retained")`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			x := prooftest.Clone(t, tt.c)
			tt.change(x)
			x.Sign(w.Orchestrator)
			checkFails(t, w, x, tt.want)
		})
	}
}

// The state follows from the answers: failed, else partially_retained
// while a system keeps data until a date, else fulfilled.
func TestCertificateState(t *testing.T) {
	keptForever := &lethev1.Receipt{Remaining: 1, Counts: []*lethev1.CategoryCount{{Category: "invoice", Count: 1}}, LegalBasis: "legal claims"}
	erased := []prooftest.Answer{
		{System: "accounts", Outcome: lethev1.Outcome_OUTCOME_ERASED},
		{System: "crm", Outcome: lethev1.Outcome_OUTCOME_NOT_FOUND},
	}
	retainedNoDate := []prooftest.Answer{
		{System: "accounts", Outcome: lethev1.Outcome_OUTCOME_ERASED},
		{System: "billing", Outcome: lethev1.Outcome_OUTCOME_RETAINED, Receipt: keptForever},
	}
	tests := []struct {
		name    string
		answers []prooftest.Answer // nil: erased, retained until 2036, not found
		state   lifecycle.State    // "": what the answers give
		want    string             // "": verifies
	}{
		{"retained until a date: partially_retained", nil, "", ""},
		{"all erased: fulfilled", erased, "", ""},
		{"retained with no date: fulfilled", retainedNoDate, "", ""},
		{"partially_retained claimed with no system retained", erased, "partially_retained", `state "partially_retained" does not follow from the systems' answers ("fulfilled")`},
		{"partially_retained claimed with data retained with no date", retainedNoDate, "partially_retained", `state "partially_retained" does not follow`},
		{"fulfilled claimed while a system retained until a date", nil, "fulfilled", `state "fulfilled" does not follow from the systems' answers ("partially_retained")`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			w := prooftest.NewWorld(t)
			c := w.Certificate(t, w.Erase(t, "req-1", prooftest.Erasure{Answers: tt.answers, State: tt.state}))
			if tt.want == "" {
				if err := w.Verify(c); err != nil {
					t.Fatalf("state %s: Verify = %v", c.State, err)
				}
				return
			}
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
		{"entries out of the log's order", func(c *proof.Certificate) {
			c.Log.Entries[1], c.Log.Entries[2] = c.Log.Entries[2], c.Log.Entries[1]
		}, "the entries are not in the log's order"},
		{"an entry with another's proof", func(c *proof.Certificate) { c.Log.Entries[1].Proof = c.Log.Entries[2].Proof }, "is not in the log"},
		{"an entry changed", func(c *proof.Certificate) {
			c.Log.Entries[1].Entry = []byte(strings.Replace(string(c.Log.Entries[1].Entry), "verified", "extended", 1))
		}, "is not in the log"},
		{"a tree head of another size", func(c *proof.Certificate) {
			th := w.Log.HeadAt(w.Orchestrator, size-1, c.Log.TreeHead.Time)
			c.Log.TreeHead = &th
		}, "is not in the log"},
		{"a tree head signed by a connector key", func(c *proof.Certificate) {
			th := w.Log.HeadAt(w.Connectors["accounts"], size, c.Log.TreeHead.Time)
			c.Log.TreeHead = &th
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
			c.Systems = append(c.Systems, proof.SystemResult{System: "warehouse", Outcome: lifecycle.DeadLetter})
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
		state lifecycle.State // "": what the answers give
		want  string          // "": verifies
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
