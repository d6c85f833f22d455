package proof_test

import (
	"bytes"
	"encoding/json"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/lethe-dev/lethe/pkg/deadline"
	lethev1 "github.com/lethe-dev/lethe/pkg/gen/lethe/v1"
	"github.com/lethe-dev/lethe/pkg/proof"
	"github.com/lethe-dev/lethe/pkg/proof/prooftest"
)

// Fuzz targets of proof.Verify, the auditor's offline check of a
// certificate of fulfilment. The certificates are real ones, issued by a
// prooftest.World as the orchestrator issues them, whose keys come from
// fixed seeds: every fuzzing process issues the same bytes, so an input
// saved by one is read the same way by another.

// certWorld is a World with fixed keys and the certificates it issued.
type certWorld struct {
	w *prooftest.World
	// originals are the certificates' encodings, as issued.
	originals [][]byte
	certs     []*proof.Certificate
}

func newCertWorld(tb testing.TB) *certWorld {
	tb.Helper()
	signer := func(seed byte, owner string) *proof.Signer {
		s, err := proof.SignerFromSeed(strings.Repeat(fmt.Sprintf("%02x", seed), 32), owner, prooftest.KeysFrom)
		if err != nil {
			tb.Fatal(err)
		}
		return s
	}
	w := &prooftest.World{Dir: tb.TempDir(), Connectors: map[string]*proof.Signer{}, Log: &prooftest.MemLog{}}
	w.Orchestrator = signer(0x01, proof.RoleOrchestrator)
	w.Keys.Add(w.Orchestrator.Key)
	for i, sys := range []string{"accounts", "billing", "crm"} {
		w.Connectors[sys] = signer(byte(0x10+i), sys)
		w.Keys.Add(w.Connectors[sys].Key)
	}
	cw := &certWorld{w: w}
	issue := func(r *prooftest.Request) {
		c := w.Certificate(tb, r)
		enc := c.Encode()
		if _, err := proof.Verify(enc, w.Keys); err != nil {
			tb.Fatalf("certificate %s as issued does not verify: %v", r.ID, err)
		}
		cw.originals = append(cw.originals, enc)
		cw.certs = append(cw.certs, c)
	}
	// The log holds other requests before and between them.
	w.Erase(tb, "req-0", prooftest.Erasure{})
	// Plain: accounts erased, billing retained until 2036, crm held nothing.
	issue(w.Erase(tb, "req-1", prooftest.Erasure{}))
	// Every optional part: a tenant's policy, an extension told on two
	// channels, an answer before the deferred erasure that ended it.
	r := w.Erase(tb, "req-2", prooftest.Erasure{
		Minimal: true,
		Policy:  &deadline.Spec{TimeZone: "Europe/Paris", RollToWorkingDay: true, Holidays: []string{"2026-03-10"}},
		Extend:  &prooftest.Extend{Notices: []prooftest.Notice{{Channel: "bus"}, {Channel: "webhook"}}},
		Answers: []prooftest.Answer{{System: "billing", Outcome: lethev1.Outcome_OUTCOME_RETAINED}},
	})
	w.FollowUp(tb, r, prooftest.FollowUp{})
	issue(r)
	// Failed: a system out of attempts, another that failed.
	issue(w.Erase(tb, "req-3", prooftest.Erasure{Answers: []prooftest.Answer{
		{System: "accounts", Outcome: lethev1.Outcome_OUTCOME_FAILED},
		{System: "crm", DeadLetter: true},
	}}))
	return cw
}

// original reports whether data is, but for the final newline Verify
// allows, one of the certificates as issued.
func (cw *certWorld) original(data []byte) bool {
	data = bytes.TrimSuffix(data, []byte("\n"))
	return slices.ContainsFunc(cw.originals, func(o []byte) bool { return bytes.Equal(o, data) })
}

// seed calls add with each certificate as issued and its number.
func (cw *certWorld) seed(add func(i int, orig []byte)) {
	for i, o := range cw.originals {
		add(i, o)
	}
}

// FuzzVerifyCertificate: any bytes in place of a certificate. Verify never
// panics, and accepts only a certificate exactly as issued (with or
// without a final newline): the format has one encoding and the
// orchestrator's signature covers all of it, so a certificate that reads
// differently in any way, signed content or layout, fails.
func FuzzVerifyCertificate(f *testing.F) {
	cw := newCertWorld(f)
	cw.seed(func(_ int, o []byte) {
		f.Add(o)
		f.Add(append(bytes.Clone(o), '\n'))
		// The same content laid out otherwise: indented with its keys sorted,
		// and with one space more.
		var v any
		if err := json.Unmarshal(o, &v); err != nil {
			f.Fatal(err)
		}
		indented, _ := json.MarshalIndent(v, "", "  ")
		f.Add(indented)
		f.Add(bytes.Replace(o, []byte(`","`), []byte(`", "`), 1))
	})
	f.Add([]byte(`{}`))
	f.Add([]byte(`{"version":1}`))
	f.Add([]byte(`null`))
	f.Add([]byte(`[]`))
	f.Add([]byte(`{"version":1,"systems":[{"system":"accounts","receipt":"AAAA"}],"log":{"entries":[{"index":-1,"entry":{},"proof":null}]}}`))
	f.Add([]byte("\xff\xfe"))

	f.Fuzz(func(t *testing.T, data []byte) {
		c, err := proof.Verify(data, cw.w.Keys)
		if err != nil {
			return
		}
		if c == nil {
			t.Fatal("Verify accepted a certificate and returned none")
		}
		if !cw.original(data) {
			t.Fatalf("a certificate that is not one as issued verifies:\n%s", data)
		}
	})
}

// FuzzVerifyMutated: a certificate as issued with bytes [pos, pos+cut)
// replaced by patch (an overwrite, an insertion or a deletion). Unless the
// result is the certificate as issued, Verify fails; whatever it is, it
// never panics.
func FuzzVerifyMutated(f *testing.F) {
	cw := newCertWorld(f)
	cw.seed(func(i int, o []byte) {
		f.Add(uint8(i), uint32(0), uint8(0), []byte{}) // unchanged
		f.Add(uint8(i), uint32(bytes.Index(o, []byte(`"deadline_met":`))+15), uint8(4), []byte("fals"))
		f.Add(uint8(i), uint32(bytes.Index(o, []byte(`"remaining":`))+12), uint8(1), []byte("0"))
		f.Add(uint8(i), uint32(bytes.Index(o, []byte(`"completed_at":"`))+16), uint8(4), []byte("2027"))
		f.Add(uint8(i), uint32(bytes.Index(o, []byte(`"outcome":"`))+11), uint8(6), []byte("erased"))
		f.Add(uint8(i), uint32(bytes.Index(o, []byte(`"signature":"`))+13), uint8(1), []byte("B"))
		f.Add(uint8(i), uint32(len(o)), uint8(0), []byte("\n"))
		f.Add(uint8(i), uint32(len(o)/2), uint8(0), []byte(" "))
	})

	f.Fuzz(func(t *testing.T, which uint8, pos uint32, cut uint8, patch []byte) {
		orig := cw.originals[int(which)%len(cw.originals)]
		p := int(pos % uint32(len(orig)+1))
		end := min(p+int(cut), len(orig))
		b := make([]byte, 0, len(orig)+len(patch))
		b = append(append(append(b, orig[:p]...), patch...), orig[end:]...)
		if _, err := proof.Verify(b, cw.w.Keys); err == nil && !cw.original(b) {
			t.Fatalf("bytes [%d,%d) of certificate %d replaced by %q: it still verifies", p, end, which, patch)
		}
	})
}

// FuzzVerifyResigned is FuzzVerifyMutated by a forger who holds the
// orchestrator's signing key (and nothing else: not the connectors' keys,
// and the tree head stays the one the log signed): the mutated certificate
// is read, signed again and verified. What it may still get through is
// only what the receipts and the log already say: if it verifies, it tells
// the same story as the certificate as issued (the same request, deadline,
// extension, decisions, end, state and systems' answers, times compared
// as instants), and every log entry it shows is one the original showed.
func FuzzVerifyResigned(f *testing.F) {
	cw := newCertWorld(f)
	cw.seed(func(i int, o []byte) {
		f.Add(uint8(i), uint32(0), uint8(0), []byte{})
		f.Add(uint8(i), uint32(bytes.Index(o, []byte(`"deadline_met":`))+15), uint8(4), []byte("fals"))
		f.Add(uint8(i), uint32(bytes.Index(o, []byte(`"state":"`))+9), uint8(4), []byte("fail"))
		f.Add(uint8(i), uint32(bytes.Index(o, []byte(`"received_at":"`))+15), uint8(20), []byte("2026-02-10T10:30:00+01:00"))
		f.Add(uint8(i), uint32(bytes.Index(o, []byte(`"outcome":"`))+11), uint8(6), []byte("erased"))
		f.Add(uint8(i), uint32(bytes.Index(o, []byte(`{"index":`))), uint8(0), []byte{})
	})

	f.Fuzz(func(t *testing.T, which uint8, pos uint32, cut uint8, patch []byte) {
		i := int(which) % len(cw.originals)
		orig := cw.originals[i]
		p := int(pos % uint32(len(orig)+1))
		end := min(p+int(cut), len(orig))
		b := make([]byte, 0, len(orig)+len(patch))
		b = append(append(append(b, orig[:p]...), patch...), orig[end:]...)
		c := &proof.Certificate{}
		if json.Unmarshal(b, c) != nil {
			return
		}
		c.Sign(cw.w.Orchestrator)
		got, err := proof.Verify(c.Encode(), cw.w.Keys)
		if err != nil {
			return
		}
		want := cw.certs[i]
		if g, w := story(got), story(want); g != w {
			t.Fatalf("signed again, a changed certificate verifies and tells another story:\n got %s\nwant %s", g, w)
		}
		shown := map[int64]string{}
		for _, le := range want.Log.Entries {
			shown[le.Index] = string(le.Entry)
		}
		for _, le := range got.Log.Entries {
			if e, ok := shown[le.Index]; !ok || e != string(le.Entry) {
				t.Fatalf("signed again, a certificate verifies with log entry %d the original did not show: %s", le.Index, le.Entry)
			}
		}
	})
}

// story is what a certificate tells, times as instants (in UTC): all of it
// but its signature, its log entries (compared apart) and the detail of a
// system that never answered (the orchestrator's words, which no receipt
// or log entry holds).
func story(c *proof.Certificate) string {
	x := *c
	x.Signature = nil
	x.Log.Entries = nil
	utc := func(t *time.Time) {
		if t != nil {
			*t = t.UTC()
		}
	}
	for _, t := range []*time.Time{&x.ReceivedAt, &x.Deadline, &x.CompletedAt, &x.Log.TreeHead.Time} {
		utc(t)
	}
	if x.AnsweredAt != nil {
		a := x.AnsweredAt.UTC()
		x.AnsweredAt = &a
	}
	if c.Extension != nil {
		e := *c.Extension
		utc(&e.At)
		utc(&e.OriginalDeadline)
		if e.NoticeDeliveredAt != nil {
			d := e.NoticeDeliveredAt.UTC()
			e.NoticeDeliveredAt = &d
		}
		x.Extension = &e
	}
	for _, d := range []**proof.Decision{&x.Verification, &x.Denial} {
		if *d != nil {
			v := **d
			utc(&v.At)
			*d = &v
		}
	}
	x.Systems = nil
	for _, s := range c.Systems {
		if s.RetainUntil != nil {
			r := s.RetainUntil.UTC()
			s.RetainUntil = &r
		}
		if s.ConnectorTime != nil {
			r := s.ConnectorTime.UTC()
			s.ConnectorTime = &r
		}
		if len(s.Receipt) == 0 {
			s.Detail = ""
		}
		x.Systems = append(x.Systems, s)
	}
	if p := c.DeadlinePolicy; p != nil && len(p.Holidays) == 0 {
		q := *p
		q.Holidays = nil
		x.DeadlinePolicy = &q
	}
	b, err := json.Marshal(x)
	if err != nil {
		return "unencodable: " + err.Error()
	}
	return string(b)
}
