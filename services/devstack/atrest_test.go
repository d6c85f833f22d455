package devstack

import (
	"net/http"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/lethe-dev/lethe/pkg/dataset"
	"github.com/lethe-dev/lethe/pkg/piitest"
)

// TestNothingLeftAtRest runs requests through the whole stack on the
// embedded default (NATS JetStream, SQLite) and then reads every byte of
// every file under its data directory (stores, WAL and journal files,
// JetStream's blocks, keys, receipts, files) for the person's email and
// user id:
//   - an erasure fulfilled: nowhere;
//   - an erasure partially retained: in billing's store only, whose
//     invoices the law keeps (the orchestrator keeps the identifiers the
//     deferred erasure needs sealed, the bus carries them sealed);
//   - an export downloaded, and an export never collected once it
//     expired: nowhere but in the systems of record the export read.
//
// The name is not scanned for: demo people share first and last names.
func TestNothingLeftAtRest(t *testing.T) {
	h := start(t)
	submit := func(typ string, i int) string {
		body := `{"type":"` + typ + `","tenant":"demo","subject":{"email":"` + dataset.DemoEmail(i) + `","user_id":"` + dataset.DemoUserID(i) + `"},"verified":true}`
		code, out := h.call("POST", h.s.API+"/v1/requests", body)
		if code != http.StatusAccepted {
			t.Fatalf("submit %s = %d %v", typ, code, out)
		}
		return out["id"].(string)
	}
	// scan waits a while for the files to settle (the orchestrator
	// truncates its WAL once identifiers are dropped, SQLite checkpoints)
	// and returns the files still holding person i, minus those allowed.
	scan := func(i int, allowed func(rel string) bool) []string {
		t.Helper()
		var left []string
		for end := time.Now().Add(15 * time.Second); ; time.Sleep(200 * time.Millisecond) {
			left = nil
			for _, id := range []string{dataset.DemoEmail(i), dataset.DemoUserID(i)} {
				for _, f := range piitest.FilesHolding(t, h.dir, id) {
					if !allowed(f) && !slices.Contains(left, f) {
						left = append(left, f)
					}
				}
			}
			if len(left) == 0 || time.Now().After(end) {
				return left
			}
		}
	}
	nowhere := func(string) bool { return false }
	// The systems of record, which an export reads and does not change.
	systemsOfRecord := func(rel string) bool {
		dir, file, _ := strings.Cut(filepath.ToSlash(rel), "/")
		return strings.HasPrefix(file, dir+".db") || strings.HasPrefix(rel, filepath.Join("recordings", "files"))
	}

	// person-0013 has only a card at billing: fulfilled.
	erased := submit("erasure", 13)
	h.waitState(erased, "fulfilled")
	if left := scan(13, nowhere); len(left) > 0 {
		t.Errorf("after a fulfilled erasure the person is still in %v", left)
	}

	// person-0005 has invoices, which billing keeps by law.
	retained := submit("erasure", 5)
	h.waitState(retained, "partially_retained")
	if left := scan(5, func(rel string) bool { return strings.HasPrefix(filepath.Base(rel), "billing.db") }); len(left) > 0 {
		t.Errorf("after a partially retained erasure the person is still in %v (want billing's invoices only)", left)
	}
	if held := piitest.FilesHolding(t, filepath.Join(h.dir, "billing"), dataset.DemoEmail(5)); len(held) == 0 {
		t.Error("billing's retained invoices do not hold the person: the scan proves nothing")
	}

	// An export, downloaded.
	collected := submit("export", 4)
	h.waitState(collected, "fulfilled")
	h.get(h.s.API + "/v1/requests/" + collected + "/export")
	if left := scan(4, systemsOfRecord); len(left) > 0 {
		t.Errorf("after an export was downloaded the person is still in %v", left)
	}

	// An export never collected, after it expired (7 days). A HEAD, which
	// collects nothing, sees it go.
	forgotten := submit("export", 7)
	h.waitState(forgotten, "fulfilled")
	h.clock.Jump(8 * 24 * time.Hour)
	for end := time.Now().Add(90 * time.Second); ; time.Sleep(100 * time.Millisecond) {
		if code := h.status("HEAD", h.s.API+"/v1/requests/"+forgotten+"/export"); code == http.StatusGone {
			break
		} else if time.Now().After(end) {
			t.Fatalf("the uncollected export did not expire: %d", code)
		}
	}
	if left := scan(7, systemsOfRecord); len(left) > 0 {
		t.Errorf("after an export expired the person is still in %v", left)
	}
	h.logs.NoneOf(t, dataset.DemoEmail(13), dataset.DemoEmail(5), dataset.DemoEmail(4), dataset.DemoEmail(7))
}
