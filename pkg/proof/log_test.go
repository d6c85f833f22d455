package proof_test

import (
	"errors"
	"fmt"
	"reflect"
	"strings"
	"testing"
	"time"

	"golang.org/x/mod/sumdb/tlog"

	"github.com/lethe-dev/lethe/pkg/deadline"
	"github.com/lethe-dev/lethe/pkg/proof"
	"github.com/lethe-dev/lethe/pkg/proof/prooftest"
)

var logStart = time.Date(2026, 2, 1, 8, 0, 0, 0, time.UTC)

// logEntries are n entries of n requests, as a busy orchestrator logs them.
func logEntries(from, n int) [][]byte {
	var out [][]byte
	for i := from; i < from+n; i++ {
		out = append(out, proof.Entry{RequestID: fmt.Sprintf("req-%05d", i), Event: proof.EventCreated, At: logStart.Add(time.Duration(i) * time.Second), Tenant: "demo", Type: "erasure"}.Encode())
	}
	return out
}

func TestTreeHeadsConsistent(t *testing.T) {
	w := prooftest.NewWorld(t)
	l := prooftest.NewMemLog(logEntries(0, 37)...)
	older := l.Head(w.Orchestrator, logStart.Add(time.Hour))
	for _, e := range logEntries(37, 1000) {
		l.Append(e)
	}
	newer := l.Head(w.Orchestrator, logStart.Add(2*time.Hour))
	for _, th := range []proof.TreeHead{older, newer} {
		if err := proof.VerifyTreeHead(w.Keys, th); err != nil {
			t.Errorf("tree head of size %d: %v", th.Size, err)
		}
	}
	if newer.Size != 1037 {
		t.Fatalf("newer tree head of size %d, want 1037", newer.Size)
	}
	if err := proof.CheckConsistency(older, newer, l.ProveTree(older.Size, newer.Size)); err != nil {
		t.Errorf("the log of %d extends the log of %d, but: %v", newer.Size, older.Size, err)
	}
	// A head is consistent with itself, and each smaller head with the newest.
	if err := proof.CheckConsistency(newer, newer, l.ProveTree(newer.Size, newer.Size)); err != nil {
		t.Errorf("a tree head is not consistent with itself: %v", err)
	}
	for _, size := range []int64{1, 2, 36, 512, 1000, 1036} {
		h := l.HeadAt(w.Orchestrator, size, logStart)
		if err := proof.CheckConsistency(h, newer, l.ProveTree(size, newer.Size)); err != nil {
			t.Errorf("size %d in size %d: %v", size, newer.Size, err)
		}
	}
	// The heads the other way round, or with the proof of another size, do not.
	if err := proof.CheckConsistency(newer, older, l.ProveTree(older.Size, newer.Size)); err == nil {
		t.Error("a newer head was accepted as the older one")
	}
	if err := proof.CheckConsistency(older, newer, l.ProveTree(older.Size+1, newer.Size)); err == nil {
		t.Error("the proof for another size was accepted")
	}
}

// Rewriting a past entry (the log recomputed with one earlier entry changed)
// cannot be hidden from whoever kept an older signed tree head.
func TestTreeHeadsRewrittenEntry(t *testing.T) {
	w := prooftest.NewWorld(t)
	const before = 37
	honest := logEntries(0, before)
	older := prooftest.NewMemLog(honest...).HeadAt(w.Orchestrator, before, logStart.Add(time.Hour))

	for _, i := range []int{0, 1, 18, before - 1} {
		t.Run(fmt.Sprintf("entry %d", i), func(t *testing.T) {
			rewritten := make([][]byte, len(honest))
			copy(rewritten, honest)
			rewritten[i] = proof.Entry{RequestID: fmt.Sprintf("req-%05d", i), Event: proof.EventFulfilled, At: logStart}.Encode()
			l := prooftest.NewMemLog(rewritten...)
			for _, e := range logEntries(before, 1000) {
				l.Append(e)
			}
			newer := l.Head(w.Orchestrator, logStart.Add(2*time.Hour))
			if err := proof.VerifyTreeHead(w.Keys, newer); err != nil {
				t.Fatalf("the rewritten log's head is signed all right: %v", err)
			}
			if err := proof.CheckConsistency(older, newer, l.ProveTree(before, l.Size())); err == nil {
				t.Error("a log with a rewritten past entry passed as consistent with the older head")
			}
			// Nor does the honest log's proof help.
			hl := prooftest.NewMemLog(honest...)
			for _, e := range logEntries(before, 1000) {
				hl.Append(e)
			}
			if err := proof.CheckConsistency(older, newer, hl.ProveTree(before, hl.Size())); err == nil {
				t.Error("the honest log's consistency proof passed for the rewritten log's head")
			}
		})
	}
}

func TestVerifyTreeHead(t *testing.T) {
	w := prooftest.NewWorld(t)
	l := prooftest.NewMemLog(logEntries(0, 10)...)
	at := logStart.Add(time.Hour)
	stranger, _ := prooftest.NewSigner(t, proof.RoleOrchestrator, prooftest.KeysFrom)
	retiredAt := logStart
	retiredKs := w.Keys
	retired := w.Orchestrator.Key
	retired.NotAfter = &retiredAt
	retiredKs.Add(retired)

	tests := []struct {
		name   string
		keys   proof.KeySet
		change func(*proof.TreeHead)
		want   error // nil: verifies
	}{
		{"as signed", w.Keys, func(*proof.TreeHead) {}, nil},
		{"size", w.Keys, func(th *proof.TreeHead) { th.Size++ }, proof.ErrBadSignature},
		{"size smaller", w.Keys, func(th *proof.TreeHead) { th.Size-- }, proof.ErrBadSignature},
		{"root", w.Keys, func(th *proof.TreeHead) { th.Root[31] ^= 1 }, proof.ErrBadSignature},
		{"root of another size", w.Keys, func(th *proof.TreeHead) { th.Root = l.Root(9) }, proof.ErrBadSignature},
		{"time", w.Keys, func(th *proof.TreeHead) { th.Time = th.Time.Add(time.Millisecond) }, proof.ErrBadSignature},
		{"signature", w.Keys, func(th *proof.TreeHead) { th.Signature[0] ^= 1 }, proof.ErrBadSignature},
		{"signature dropped", w.Keys, func(th *proof.TreeHead) { th.Signature = nil }, proof.ErrBadSignature},
		{"unknown key", w.Keys, func(th *proof.TreeHead) { *th = l.HeadAt(stranger, 10, at) }, proof.ErrUnknownKey},
		{"connector key", w.Keys, func(th *proof.TreeHead) { *th = l.HeadAt(w.Connectors["accounts"], 10, at) }, proof.ErrWrongSystem},
		{"key retired before the head", retiredKs, func(*proof.TreeHead) {}, proof.ErrKeyNotValid},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			th := l.HeadAt(w.Orchestrator, 10, at)
			tt.change(&th)
			err := proof.VerifyTreeHead(tt.keys, th)
			if tt.want == nil && err != nil || !errors.Is(err, tt.want) {
				t.Errorf("VerifyTreeHead = %v, want %v", err, tt.want)
			}
		})
	}
}

func TestInclusionEveryEntry(t *testing.T) {
	w := prooftest.NewWorld(t)
	entries := logEntries(0, 1000)
	l := prooftest.NewMemLog(entries...)
	th := l.Head(w.Orchestrator, logStart.Add(time.Hour))
	if err := proof.VerifyTreeHead(w.Keys, th); err != nil {
		t.Fatal(err)
	}
	if want := l.Root(l.Size()); th.Root != want {
		t.Fatalf("tree head root %v, want %v", th.Root, want)
	}
	for i, e := range entries {
		p := l.ProveRecord(int64(i), th.Size)
		if err := proof.CheckInclusion(th, int64(i), e, p); err != nil {
			t.Fatalf("entry %d: %v", i, err)
		}
		// The same proof proves neither another entry nor another index.
		if err := proof.CheckInclusion(th, int64(i), entries[(i+1)%len(entries)], p); err == nil {
			t.Fatalf("entry %d's proof proves entry %d", i, (i+1)%len(entries))
		}
		if err := proof.CheckInclusion(th, int64((i+1)%len(entries)), e, p); err == nil {
			t.Fatalf("entry %d's proof proves it at index %d", i, (i+1)%len(entries))
		}
	}
	// An entry proved in an older, smaller tree is not proved in this one.
	old := l.HeadAt(w.Orchestrator, 500, logStart)
	if err := proof.CheckInclusion(th, 10, entries[10], l.ProveRecord(10, old.Size)); err == nil {
		t.Error("a proof against the tree of 500 passed against the tree of 1000")
	}
	if err := proof.CheckInclusion(old, 700, entries[700], l.ProveRecord(700, th.Size)); err == nil {
		t.Error("entry 700 proved in a tree of 500")
	}
}

func TestEntryRoundTrip(t *testing.T) {
	paris, err := time.LoadLocation("Europe/Paris")
	if err != nil {
		paris = time.FixedZone("CET", 3600)
	}
	received := time.Date(2026, 2, 10, 9, 30, 0, 0, time.UTC)
	due := time.Date(2026, 3, 10, 23, 59, 59, 0, time.UTC)
	tests := []proof.Entry{
		{RequestID: "req-1", Event: proof.EventCreated, At: received, Tenant: "demo", Type: "erasure", SubjectHash: strings.Repeat("ab", 32), ReceivedAt: &received, Deadline: &due},
		{RequestID: "req-1", Event: proof.EventReceiptAccepted, At: received.Add(1234567 * time.Nanosecond), System: "accounts", Attempt: 3, Outcome: "erased", ReceiptHash: strings.Repeat("0f", 32)},
		{RequestID: "req-1", Event: proof.EventDeadLetter, At: received.In(paris), System: "crm", Detail: "out of attempts; \"quoted\" <html> & ünïcode"},
		{RequestID: "req-1", Event: proof.EventFulfilled, At: received.In(paris).Add(999 * time.Microsecond)},
	}
	for _, e := range tests {
		t.Run(e.Event, func(t *testing.T) {
			b := e.Encode()
			got, err := proof.DecodeEntry(b)
			if err != nil {
				t.Fatalf("DecodeEntry(%s): %v", b, err)
			}
			if !got.At.Equal(e.At.Truncate(time.Millisecond)) || got.At.Location() != time.UTC {
				t.Errorf("at = %v, want %v in UTC", got.At, e.At.Truncate(time.Millisecond))
			}
			want := e
			want.At = got.At
			if !reflect.DeepEqual(got.Encode(), b) || got.RequestID != want.RequestID || got.Detail != want.Detail || got.ReceiptHash != want.ReceiptHash {
				t.Errorf("round trip: got %+v from %s, want %+v", got, b, want)
			}
		})
	}
}

// One instant, one encoding: every time of an entry is written in UTC.
func TestEntryEncodesTimesInUTC(t *testing.T) {
	zone := time.FixedZone("UTC+2", 2*3600)
	received := time.Date(2026, 2, 10, 9, 30, 0, 0, time.UTC)
	due := time.Date(2026, 3, 10, 23, 59, 59, 0, time.UTC)
	receivedZ, dueZ := received.In(zone), due.In(zone)
	utc := proof.Entry{RequestID: "req-1", Event: proof.EventCreated, At: received, ReceivedAt: &received, Deadline: &due,
		OriginalDeadline: &received, RetainUntil: &due}
	zoned := proof.Entry{RequestID: "req-1", Event: proof.EventCreated, At: receivedZ, ReceivedAt: &receivedZ, Deadline: &dueZ,
		OriginalDeadline: &receivedZ, RetainUntil: &dueZ}
	if a, b := utc.Encode(), zoned.Encode(); !reflect.DeepEqual(a, b) {
		t.Errorf("one entry, two encodings:\n %s\n %s", a, b)
	}
	if receivedZ.Location() != zone || dueZ.Location() != zone {
		t.Error("Encode changed the caller's times")
	}
}

func TestDecodeEntryRejectsNonCanonical(t *testing.T) {
	received := time.Date(2026, 2, 10, 9, 30, 0, 0, time.UTC)
	due := time.Date(2026, 3, 10, 23, 59, 59, 0, time.UTC)
	e := proof.Entry{RequestID: "req-1", Event: proof.EventCreated, At: received, Tenant: "demo", Type: "erasure", SubjectHash: "abcd", ReceivedAt: &received, Deadline: &due}
	canonical := string(e.Encode())
	if _, err := proof.DecodeEntry([]byte(canonical)); err != nil {
		t.Fatalf("the canonical encoding %s: %v", canonical, err)
	}
	const wantCanonical = `{"request_id":"req-1","event":"created","at":"2026-02-10T09:30:00Z","tenant":"demo","type":"erasure","subject_hash":"abcd","received_at":"2026-02-10T09:30:00Z","deadline":"2026-03-10T23:59:59Z"}`
	if canonical != wantCanonical {
		t.Fatalf("encoding\n %s\nwant\n %s", canonical, wantCanonical)
	}
	tests := []struct{ name, from, to string }{
		{"fields reordered", `{"request_id":"req-1","event":"created"`, `{"event":"created","request_id":"req-1"`},
		{"space after a colon", `"event":"created"`, `"event": "created"`},
		{"space after a comma", `,"at"`, `, "at"`},
		{"indented", `{"request_id"`, "{\n  \"request_id\""},
		{"trailing newline", `"}`, "\"}\n"},
		{"at not in UTC", `"at":"2026-02-10T09:30:00Z"`, `"at":"2026-02-10T10:30:00+01:00"`},
		{"received_at not in UTC", `"received_at":"2026-02-10T09:30:00Z"`, `"received_at":"2026-02-10T10:30:00+01:00"`},
		{"deadline not in UTC", `"deadline":"2026-03-10T23:59:59Z"`, `"deadline":"2026-03-11T00:59:59+01:00"`},
		{"at with +00:00", `"at":"2026-02-10T09:30:00Z"`, `"at":"2026-02-10T09:30:00+00:00"`},
		{"at with trailing zeros", `"at":"2026-02-10T09:30:00Z"`, `"at":"2026-02-10T09:30:00.000Z"`},
		{"at below the millisecond", `"at":"2026-02-10T09:30:00Z"`, `"at":"2026-02-10T09:30:00.0001Z"`},
		{"unknown field", `"tenant":"demo"`, `"tenant":"demo","email":"x"`},
		{"field name in other case", `"tenant"`, `"Tenant"`},
		{"field repeated", `"tenant":"demo"`, `"tenant":"demo","tenant":"demo"`},
		{"empty field written out", `"subject_hash":"abcd"`, `"subject_hash":"abcd","system":""`},
		{"escaped character", `"demo"`, `"d\u0065mo"`},
		{"two values", `"}`, `"}{}`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if !strings.Contains(canonical, tt.from) {
				t.Fatalf("%q is not in %s", tt.from, canonical)
			}
			b := strings.Replace(canonical, tt.from, tt.to, 1)
			if e, err := proof.DecodeEntry([]byte(b)); err == nil {
				t.Errorf("DecodeEntry accepted %s as %+v", b, e)
			}
		})
	}
}

// The log hashes leaves as RFC 6962 does (0x00 prefix), as tlog does.
func TestRecordHash(t *testing.T) {
	b := []byte(`{"request_id":"req-1"}`)
	if proof.RecordHash(b) != tlog.RecordHash(b) {
		t.Error("RecordHash differs from tlog.RecordHash")
	}
}

// The fields added later come after the others, left out when empty, in
// UTC: an older entry keeps its one encoding, and a newer one has one too.
func TestEntryNewFields(t *testing.T) {
	at := time.Date(2026, 2, 11, 9, 30, 0, 0, time.UTC)
	orig := time.Date(2026, 3, 10, 23, 59, 59, 0, time.UTC)
	ext := time.Date(2026, 5, 10, 23, 59, 59, 0, time.UTC)
	paris := time.FixedZone("CET", 3600)
	until := time.Date(2036, 12, 31, 0, 0, 0, 0, time.UTC)
	untilZ := until.In(paris)
	tests := []struct {
		name string
		e    proof.Entry
		want string
	}{
		{"extended", proof.Entry{RequestID: "req-1", Event: proof.EventExtended, At: at, Deadline: &ext, OriginalDeadline: &orig, ReasonSHA256: proof.ReasonHash("many systems")},
			`{"request_id":"req-1","event":"extended","at":"2026-02-11T09:30:00Z","deadline":"2026-05-10T23:59:59Z","original_deadline":"2026-03-10T23:59:59Z","reason_sha256":"` + proof.ReasonHash("many systems") + `"}`},
		{"notice_delivered", proof.Entry{RequestID: "req-1", Event: proof.EventNoticeDelivered, At: at, Notice: proof.NoticeExtension, Channel: "webhook"},
			`{"request_id":"req-1","event":"notice_delivered","at":"2026-02-11T09:30:00Z","notice":"extension","channel":"webhook"}`},
		{"erasure_deferred", proof.Entry{RequestID: "req-1", Event: proof.EventErasureDeferred, At: at, System: "billing", RetainUntil: &untilZ},
			`{"request_id":"req-1","event":"erasure_deferred","at":"2026-02-11T09:30:00Z","system":"billing","retain_until":"2036-12-31T00:00:00Z"}`},
		{"partially_retained", proof.Entry{RequestID: "req-1", Event: proof.EventPartiallyRetained, At: at},
			`{"request_id":"req-1","event":"partially_retained","at":"2026-02-11T09:30:00Z"}`},
		{"created with a policy", proof.Entry{RequestID: "req-1", Event: proof.EventCreated, At: at, Tenant: "acme-fr", Detail: "source=api",
			DeadlinePolicy: &deadline.Spec{TimeZone: "Europe/Paris", RollToWorkingDay: true, Holidays: []string{"2026-05-01"}}},
			`{"request_id":"req-1","event":"created","at":"2026-02-11T09:30:00Z","tenant":"acme-fr","detail":"source=api","deadline_policy":{"time_zone":"Europe/Paris","roll_to_working_day":true,"holidays":["2026-05-01"]}}`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			b := tt.e.Encode()
			if string(b) != tt.want {
				t.Fatalf("encoding\n %s\nwant\n %s", b, tt.want)
			}
			got, err := proof.DecodeEntry(b)
			if err != nil {
				t.Fatalf("DecodeEntry: %v", err)
			}
			if !reflect.DeepEqual(got.Encode(), b) {
				t.Errorf("round trip: %s", got.Encode())
			}
		})
	}
	if h := proof.ReasonHash("many systems"); len(h) != 64 || h == proof.ReasonHash("many systems ") || strings.ToLower(h) != h {
		t.Errorf("ReasonHash = %s", h)
	}
}

func TestNoticeDeliveries(t *testing.T) {
	at := time.Date(2026, 2, 11, 9, 30, 0, 0, time.UTC)
	n := func(event, notice, channel string, after time.Duration) proof.Entry {
		return proof.Entry{RequestID: "req-1", Event: event, At: at.Add(after), Notice: notice, Channel: channel}
	}
	tests := []struct {
		name     string
		entries  []proof.Entry
		first    string // "": none
		channels string
	}{
		{"none", []proof.Entry{n(proof.EventCreated, "", "", 0)}, "", ""},
		{"one", []proof.Entry{n(proof.EventNoticeDelivered, proof.NoticeExtension, "bus", time.Minute)}, "2026-02-11T09:31:00Z", "bus"},
		{"the first of several, channels once each and sorted", []proof.Entry{
			n(proof.EventNoticeDelivered, proof.NoticeExtension, "webhook", 3*time.Minute),
			n(proof.EventNoticeDelivered, proof.NoticeExtension, "bus", 2*time.Minute),
			n(proof.EventNoticeDelivered, proof.NoticeExtension, "webhook", time.Minute),
		}, "2026-02-11T09:31:00Z", "bus,webhook"},
		{"another notice, or another event, does not count", []proof.Entry{
			n(proof.EventNoticeDelivered, "other", "bus", time.Minute),
			n(proof.EventTaskPublished, proof.NoticeExtension, "bus", time.Minute),
			n(proof.EventNoticeDelivered, proof.NoticeExtension, "webhook", time.Hour),
		}, "2026-02-11T10:30:00Z", "webhook"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			first, channels := proof.NoticeDeliveries(tt.entries, proof.NoticeExtension)
			got := ""
			if first != nil {
				got = first.Format(time.RFC3339)
			}
			if got != tt.first || strings.Join(channels, ",") != tt.channels {
				t.Errorf("first %q on %v, want %q on %s", got, channels, tt.first, tt.channels)
			}
		})
	}
}
