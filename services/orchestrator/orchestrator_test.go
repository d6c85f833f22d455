package orchestrator

import (
	"archive/zip"
	"bytes"
	"context"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"io/fs"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"golang.org/x/mod/sumdb/tlog"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/lethe-dev/lethe/pkg/blob"
	"github.com/lethe-dev/lethe/pkg/events"
	"github.com/lethe-dev/lethe/pkg/exportbundle"
	lethev1 "github.com/lethe-dev/lethe/pkg/gen/lethe/v1"
	"github.com/lethe-dev/lethe/pkg/piitest"
	"github.com/lethe-dev/lethe/pkg/proof"
	"github.com/lethe-dev/lethe/pkg/sqlitedb"
	"github.com/lethe-dev/lethe/services/orchestrator/auth"
	"github.com/lethe-dev/lethe/services/orchestrator/store"
)

const subjectEmail = "person-0042@example.com"

func erasure(verified bool) string {
	v := "false"
	if verified {
		v = "true"
	}
	return `{"type":"erasure","tenant":"demo","subject":{"email":"` + subjectEmail + `","user_id":"user-0042"},"verified":` + v + `}`
}

func TestBadInputChangesNothing(t *testing.T) {
	e := newEnv(t, nil)
	tests := []struct {
		name, method, path, body string
		want                     int
	}{
		{"malformed JSON", "POST", "/v1/requests", `{"type":`, 400},
		{"not an object", "POST", "/v1/requests", `[1,2]`, 400},
		{"empty body", "POST", "/v1/requests", ``, 400},
		{"two values", "POST", "/v1/requests", `{"type":"erasure"} {}`, 400},
		{"unknown type", "POST", "/v1/requests", `{"type":"shred","tenant":"demo","subject":{"email":"a@example.com"}}`, 400},
		{"missing email", "POST", "/v1/requests", `{"type":"erasure","tenant":"demo","subject":{"user_id":"u1"}}`, 400},
		{"invalid email", "POST", "/v1/requests", `{"type":"erasure","tenant":"demo","subject":{"email":"not-an-email"}}`, 400},
		{"email with a name", "POST", "/v1/requests", `{"type":"erasure","tenant":"demo","subject":{"email":"Bob <bob@example.com>"}}`, 400},
		{"missing tenant", "POST", "/v1/requests", `{"type":"erasure","subject":{"email":"a@example.com"}}`, 400},
		{"bad tenant format", "POST", "/v1/requests", `{"type":"erasure","tenant":"Demo Corp!","subject":{"email":"a@example.com"}}`, 400},
		{"unknown field", "POST", "/v1/requests", `{"type":"erasure","tenant":"demo","subject":{"email":"a@example.com"},"priority":1}`, 400},
		{"wrong field type", "POST", "/v1/requests", `{"type":"erasure","tenant":"demo","subject":{"email":"a@example.com"},"verified":"yes"}`, 400},
		{"bad received_at", "POST", "/v1/requests", `{"type":"erasure","tenant":"demo","subject":{"email":"a@example.com"},"received_at":"yesterday"}`, 400},
		{"future received_at", "POST", "/v1/requests", `{"type":"erasure","tenant":"demo","subject":{"email":"a@example.com"},"received_at":"2999-01-01T00:00:00Z"}`, 400},
		{"zero received_at", "POST", "/v1/requests", `{"type":"erasure","tenant":"demo","subject":{"email":"a@example.com"},"received_at":"0001-01-01T00:00:00Z"}`, 400},
		{"received_at before 1970", "POST", "/v1/requests", `{"type":"erasure","tenant":"demo","subject":{"email":"a@example.com"},"received_at":"1969-12-31T00:00:00Z"}`, 400},
		{"field in other case", "POST", "/v1/requests", `{"type":"erasure","tenant":"demo","subject":{"email":"a@example.com","EMAIL":"b@example.com"}}`, 400},
		{"top field in other case", "POST", "/v1/requests", `{"Type":"export","type":"erasure","tenant":"demo","subject":{"email":"a@example.com"}}`, 400},
		{"unknown field named like an email", "POST", "/v1/requests", `{"type":"erasure","tenant":"demo","subject":{"email":"a@example.com"},"sneaky@example.com":1}`, 400},
		{"over 64 KiB of trailing space", "POST", "/v1/requests", `{"type":"erasure","tenant":"demo","subject":{"email":"a@example.com"}}` + strings.Repeat(" ", 70<<10), 413},
		{"body over 64 KiB", "POST", "/v1/requests", `{"type":"erasure","tenant":"demo","subject":{"email":"a@example.com","user_id":"` + strings.Repeat("x", 70<<10) + `"}}`, 413},
		{"unknown id", "GET", "/v1/requests/req_nope", ``, 404},
		{"verify unknown id", "POST", "/v1/requests/req_nope/verify", `{"method":"document"}`, 404},
		{"list unknown state", "GET", "/v1/requests?state=done", ``, 400},
		{"list bad limit", "GET", "/v1/requests?limit=0", ``, 400},
		{"list bad cursor", "GET", "/v1/requests?cursor=!!!", ``, 400},
		{"unknown endpoint", "GET", "/v2/things", ``, 404},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			code, out := e.do(tt.method, tt.path, tt.body)
			if code != tt.want {
				t.Fatalf("%s %s = %d %v, want %d", tt.method, tt.path, code, out, tt.want)
			}
			if msg, _ := out["error"].(string); msg == "" {
				t.Fatalf("no error message: %v", out)
			}
			if strings.Contains(out["error"].(string), "@") {
				t.Fatalf("error message repeats the subject: %q", out["error"])
			}
		})
	}
	_, list := e.do("GET", "/v1/requests", "")
	if n := len(list["requests"].([]any)); n != 0 {
		t.Fatalf("bad input stored %d requests", n)
	}
	st, err := e.storeStats()
	if err != nil || st.OutboxDepth != 0 {
		t.Fatalf("bad input enqueued messages: %+v %v", st, err)
	}
}

func (e *env) storeStats() (struct{ OutboxDepth int }, error) {
	var out struct{ OutboxDepth int }
	out.OutboxDepth = int(counter(e.t, e.reg, "lethe_outbox_depth_messages", nil))
	return out, nil
}

func TestErasureFlow(t *testing.T) {
	e := newEnv(t, nil)
	alpha, beta := &toySystem{}, &toySystem{}
	e.connect("alpha", alpha)
	e.connect("beta", beta)

	id := e.submit(erasure(false))
	time.Sleep(300 * time.Millisecond)
	if alpha.effectCount(events.TaskID(id, "alpha")) != 0 {
		t.Fatal("a task was published before the identity was verified")
	}
	_, view := e.do("GET", "/v1/requests/"+id, "")
	if view["state"] != "pending_verification" {
		t.Fatalf("state = %v", view["state"])
	}
	if code, out := e.do("POST", "/v1/requests/"+id+"/verify", `{"method":"document"}`); code != 200 || out["state"] != "open" {
		t.Fatalf("verify = %d %v", code, out)
	}
	if code, _ := e.do("POST", "/v1/requests/"+id+"/verify", `{"method":"document"}`); code != http.StatusConflict {
		t.Fatalf("second verify = %d, want 409", code)
	}
	view = e.waitState(id, "fulfilled")
	for sys, task := range tasksBySystem(view) {
		if task["state"] != "answered" || task["outcome"] != "erased" || task["attempts"].(float64) != 1 || task["answered_at"] == nil {
			t.Errorf("%s: %v", sys, task)
		}
	}
	if view["completed_at"] == nil {
		t.Error("no completed_at")
	}
	e.logs.NoneOf(t, subjectEmail, "user-0042")
	code, out := e.do("GET", "/v1/requests?state=fulfilled", "")
	if code != 200 || len(out["requests"].([]any)) != 1 {
		t.Fatalf("list fulfilled = %d %v", code, out)
	}
}

// download GETs path and checks the answer is an export bundle whose
// every file matches its manifest; it returns the manifest and its digest.
func (e *env) download(token, path string) (*exportbundle.Manifest, string, map[string][]byte) {
	e.t.Helper()
	code, h, body := e.send(token, "GET", path, "")
	if code != http.StatusOK || h.Get("Content-Type") != "application/zip" {
		e.t.Fatalf("GET %s = %d %s %q", path, code, h.Get("Content-Type"), body[:min(len(body), 200)])
	}
	m, digest, err := exportbundle.Check(bytes.NewReader(body), int64(len(body)))
	if err != nil {
		e.t.Fatalf("the bundle does not check: %v", err)
	}
	zr, err := zip.NewReader(bytes.NewReader(body), int64(len(body)))
	if err != nil {
		e.t.Fatal(err)
	}
	files := map[string][]byte{}
	for _, f := range zr.File {
		rc, err := f.Open()
		if err != nil {
			e.t.Fatal(err)
		}
		files[f.Name], _ = io.ReadAll(rc)
		rc.Close()
	}
	return m, hex.EncodeToString(digest[:]), files
}

func TestExportBundle(t *testing.T) {
	e := newEnv(t, nil)
	e.connect("alpha", &toySystem{})
	e.connect("beta", &toySystem{})
	id := e.submit(`{"type":"export","tenant":"demo","subject":{"email":"` + subjectEmail + `"},"verified":true}`)
	e.waitState(id, "fulfilled")
	// Until collected, the person's records are kept once, encrypted: in
	// no file (blobs, stores, receipts) in the clear.
	if found := piitest.FilesHolding(t, e.dir, `"plan":"pro"`); len(found) > 0 {
		t.Fatalf("the export is readable in %v", found)
	}
	// A HEAD (a link checker, curl -I) collects nothing.
	req, _ := http.NewRequest("HEAD", e.api+"/v1/requests/"+id+"/export", nil)
	req.Header.Set("Authorization", "Bearer "+e.token)
	if resp, err := http.DefaultClient.Do(req); err != nil || resp.StatusCode != 200 {
		t.Fatalf("HEAD export: %v %v", resp, err)
	}
	m, digest, files := e.download(e.token, "/v1/requests/"+id+"/export")
	if m.RequestID != id || m.Tenant != "demo" || len(m.Systems) != len(testSystems) {
		t.Fatalf("manifest: %+v", m)
	}
	for i, s := range testSystems {
		sys := m.Systems[i]
		if sys.Name != s || sys.Outcome != "exported" || !slices.Equal(sys.Categories, []string{"account"}) || sys.Records == nil {
			t.Errorf("%s: %+v", s, sys)
		}
		if got := string(files["systems/"+s+".json"]); got != `{"account":{"profile":[{"plan":"pro"}]}}` {
			t.Errorf("%s: records %s", s, got)
		}
	}
	if !bytes.Contains(files["index.html"], []byte("pro")) {
		t.Error("index.html does not show the records")
	}
	// The certificate quotes the manifest's digest, and verifies.
	c, err := e.certificate(id)
	if err != nil {
		t.Fatal(err)
	}
	if c.ExportManifestSHA256 != digest {
		t.Errorf("the certificate's manifest digest %q, the bundle's %q", c.ExportManifestSHA256, digest)
	}
	// Collected: the key is destroyed and the blobs deleted. A second
	// download is 410, and nothing is left.
	if code, out := e.do("GET", "/v1/requests/"+id+"/export", ""); code != http.StatusGone {
		t.Fatalf("second download = %d %v, want 410", code, out)
	}
	_, tasks, err := e.store.Get(context.Background(), id)
	if err != nil {
		t.Fatal(err)
	}
	for _, k := range tasks {
		if len(k.ExportKey) > 0 || len(k.ExportSHA256) == 0 {
			t.Errorf("%s after collection: export key kept (%d bytes), digest %x", k.System, len(k.ExportKey), k.ExportSHA256)
		}
	}
	if left := blobsUnder(t, e.dir, id); left != nil {
		t.Errorf("blobs left after collection: %v", left)
	}
	if !e.logged(id, proof.EventExportDeleted) {
		t.Error("the log does not record the export's deletion")
	}
}

// blobsUnder lists the files of a request's folder in the env's blob store.
func blobsUnder(t *testing.T, dir, requestID string) []string {
	t.Helper()
	var found []string
	filepath.WalkDir(filepath.Join(dir, "blobs", requestID), func(path string, d fs.DirEntry, err error) error {
		if err == nil && !d.IsDir() {
			found = append(found, path)
		}
		return nil
	})
	return found
}

// logged reports whether the log holds an event of the request.
func (e *env) logged(requestID, event string) bool {
	e.t.Helper()
	var found bool
	err := e.store.Tx(context.Background(), func(tx store.Tx) error {
		recs, err := tx.RequestLog(context.Background(), requestID)
		for _, r := range recs {
			if en, err := proof.DecodeEntry(r.Data); err == nil && en.Event == event {
				found = true
			}
		}
		return err
	})
	if err != nil {
		e.t.Fatal(err)
	}
	return found
}

// A download link made for the person works once, for its request only,
// without a token; a wrong one reveals nothing.
func TestExportLink(t *testing.T) {
	e := newEnv(t, nil)
	e.connect("alpha", &toySystem{})
	e.connect("beta", &toySystem{})
	body := `{"type":"export","tenant":"demo","subject":{"email":"` + subjectEmail + `"},"verified":true}`
	id, other := e.submit(body), e.submit(strings.Replace(body, subjectEmail, "someone-else@example.com", 1))
	e.waitState(id, "fulfilled")
	e.waitState(other, "fulfilled")
	code, out := e.do("POST", "/v1/requests/"+id+"/export/link", "")
	if code != http.StatusCreated || out["single_use"] != true {
		t.Fatalf("make link = %d %v", code, out)
	}
	path := out["path"].(string)
	secret := path[strings.Index(path, "link=")+len("link="):]
	// A dpo of another tenant sees no such request, and cannot make a link.
	otherDPO := e.newToken(e.store, "other-dpo", "other", auth.DPO)
	for _, call := range []struct{ method, path string }{{"GET", "/v1/requests/" + id + "/export"}, {"POST", "/v1/requests/" + id + "/export/link"}} {
		if code, _, b := e.send(otherDPO, call.method, call.path, ""); code != http.StatusNotFound || bytes.Contains(b, []byte("plan")) {
			t.Errorf("%s %s as another tenant's dpo: %d %s, want 404", call.method, call.path, code, b)
		}
	}
	for name, p := range map[string]string{
		"wrong secret":       "/v1/requests/" + id + "/export?link=" + strings.Repeat("A", len(secret)),
		"another request":    "/v1/requests/" + other + "/export?link=" + secret,
		"no secret, no auth": "/v1/requests/" + id + "/export?link=",
	} {
		code, _, b := e.send("", "GET", p, "")
		if code == http.StatusOK || bytes.Contains(b, []byte(subjectEmail)) || bytes.Contains(b, []byte("plan")) {
			t.Errorf("%s: %d %s", name, code, b)
		}
	}
	// The try with another request's id spent the link: a link is
	// single-use whatever the outcome. A new one downloads.
	code, out = e.do("POST", "/v1/requests/"+id+"/export/link", "")
	if code != http.StatusCreated {
		t.Fatalf("make link = %d %v", code, out)
	}
	m, _, _ := e.download("", out["path"].(string))
	if m.RequestID != id {
		t.Fatalf("the link downloaded request %s", m.RequestID)
	}
	if code, _, b := e.send("", "GET", out["path"].(string), ""); code != http.StatusNotFound || !bytes.Contains(b, []byte("not valid")) {
		t.Errorf("a used link: %d %s, want 404", code, b)
	}
	// Making a link for a collected export is 410.
	if code, out := e.do("POST", "/v1/requests/"+id+"/export/link", ""); code != http.StatusGone {
		t.Errorf("link for a collected export = %d %v", code, out)
	}
	e.logs.NoneOf(t, subjectEmail, secret)
}

// An export not collected in time expires: its key is destroyed, its
// blobs deleted, the deletion logged, and a download is 410. The blobs
// copied before (a backup) stay unreadable.
func TestExportExpires(t *testing.T) {
	clock := &fakeClock{t: time.Now()}
	e := newEnv(t, func(c *Config) { c.Now = clock.Now; c.ExportExpiry = 7 * 24 * time.Hour })
	e.connect("alpha", &toySystem{})
	e.connect("beta", &toySystem{})
	// The connectors' keys are valid from when they were registered, after
	// the clock was made: a clock still before them seals to no one (and,
	// frozen, never retries).
	clock.Set(time.Now())
	id := e.submit(`{"type":"export","tenant":"demo","subject":{"email":"` + subjectEmail + `"},"verified":true}`)
	e.waitState(id, "fulfilled")
	backup := blobsUnder(t, e.dir, id)
	if len(backup) != len(testSystems) {
		t.Fatalf("blobs of the export: %v", backup)
	}
	copies := map[string][]byte{}
	for _, p := range backup {
		copies[p], _ = os.ReadFile(p)
	}
	code, out := e.do("POST", "/v1/requests/"+id+"/export/link", "")
	if code != http.StatusCreated {
		t.Fatalf("make link = %d %v", code, out)
	}
	link := out["path"].(string)
	for _, tt := range []struct {
		after   time.Duration
		expired int
	}{{6 * 24 * time.Hour, 0}, {7*24*time.Hour + time.Minute, 1}} {
		clock.Set(clock.Now().Add(tt.after))
		if n, err := e.orch.engine.ExpireExports(context.Background()); err != nil || n != tt.expired {
			t.Fatalf("after %v: expired %d (%v), want %d", tt.after, n, err, tt.expired)
		}
		if tt.expired == 0 {
			// The export is still there, but the link (72 hours) is not.
			if code, _, b := e.send("", "GET", link, ""); code != http.StatusNotFound || !bytes.Contains(b, []byte("not valid")) {
				t.Errorf("an expired link: %d %s, want 404", code, b)
			}
		}
	}
	if code, out := e.do("GET", "/v1/requests/"+id+"/export", ""); code != http.StatusGone {
		t.Fatalf("download after expiry = %d %v, want 410", code, out)
	}
	if left := blobsUnder(t, e.dir, id); left != nil {
		t.Errorf("blobs left after expiry: %v", left)
	}
	if !e.logged(id, proof.EventExportDeleted) {
		t.Error("the log does not record the expiry")
	}
	// Nothing under the data folders reads in the clear, and the backup
	// opens with no key the orchestrator still holds.
	if found := piitest.FilesHolding(t, e.dir, `"plan":"pro"`); len(found) > 0 {
		t.Fatalf("the export is readable in %v", found)
	}
	restored, err := blob.NewFS(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	for p, b := range copies {
		rel, _ := filepath.Rel(filepath.Join(e.dir, "blobs"), p)
		if _, err := restored.Put(context.Background(), filepath.ToSlash(rel), bytes.NewReader(b)); err != nil {
			t.Fatal(err)
		}
	}
	_, tasks, err := e.store.Get(context.Background(), id)
	if err != nil {
		t.Fatal(err)
	}
	for _, k := range tasks {
		if _, err := e.orch.engine.ExportBlobs(k); err == nil {
			t.Errorf("%s: a key to read the backup is still held", k.System)
		}
	}
}

// The same task delivered twice: one effect, one receipt recorded.
func TestDuplicateDeliveryOneEffect(t *testing.T) {
	e := newEnv(t, nil)
	alpha := &toySystem{}
	e.connect("alpha", alpha)
	e.connect("beta", &toySystem{})
	id := e.submit(erasure(true))
	e.waitState(id, "fulfilled")

	// Deliver alpha's task again, as a broker would after a lost ack.
	task := &lethev1.Task{RequestId: id, TaskId: events.TaskID(id, "alpha"), System: "alpha", Action: lethev1.Action_ACTION_ERASE,
		Tenant: "demo", Subject: &lethev1.Subject{Email: subjectEmail}, Deadline: timestamppb.Now(), Attempt: 2}
	if err := proof.SignTask(e.orchestratorSigner(), task); err != nil {
		t.Fatal(err)
	}
	msg, _ := events.TaskMessage(task, "test", time.Now())
	if err := e.bus("test").Publish(context.Background(), events.TaskTopic("alpha"), msg); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(10 * time.Second)
	for counter(t, e.connReg, "lethe_connector_tasks_total", map[string]string{"system": "alpha", "outcome": "duplicate"}) < 1 {
		if time.Now().After(deadline) {
			t.Fatal("the connector never answered the second delivery")
		}
		time.Sleep(20 * time.Millisecond)
	}
	// And a receipt delivered twice (under another message id) is recorded once.
	rc := &lethev1.Receipt{RequestId: id, TaskId: events.TaskID(id, "alpha"), System: "alpha", Action: lethev1.Action_ACTION_ERASE,
		Outcome: lethev1.Outcome_OUTCOME_ERASED, Attempt: 7, ConnectorTime: timestamppb.Now()}
	if err := proof.SignReceipt(e.signer("alpha"), rc); err != nil {
		t.Fatal(err)
	}
	rmsg, _ := events.ReceiptMessage(rc, "test", time.Now())
	if err := e.bus("test").Publish(context.Background(), events.TopicReceipts, rmsg); err != nil {
		t.Fatal(err)
	}
	for counter(t, e.reg, "lethe_orchestrator_receipts_ignored_total", map[string]string{"reason": "duplicate"}) < 1 {
		if time.Now().After(deadline) {
			t.Fatal("the second receipt was not seen as a duplicate")
		}
		time.Sleep(20 * time.Millisecond)
	}
	if n := alpha.effectCount(events.TaskID(id, "alpha")); n != 1 {
		t.Fatalf("%d effects for one task", n)
	}
	if n := counter(t, e.reg, "lethe_orchestrator_receipts_accepted_total", map[string]string{"system": "alpha"}); n != 1 {
		t.Fatalf("%v receipts recorded for alpha", n)
	}
}

// The orchestrator stops mid-request; after a restart the request completes.
func TestRestartMidRequest(t *testing.T) {
	e := newEnv(t, nil)
	id := e.submit(erasure(true)) // no connector yet: the tasks wait on the bus
	e.shutdown()
	e.start()
	e.connect("alpha", &toySystem{})
	e.connect("beta", &toySystem{})
	view := e.waitState(id, "fulfilled")
	for sys, task := range tasksBySystem(view) {
		if task["outcome"] != "erased" {
			t.Errorf("%s: %v", sys, task)
		}
	}
}

// A system that fails for a while is retried with backoff and then answers.
func TestFailingSystemRetriedThenCompletes(t *testing.T) {
	e := newEnv(t, nil)
	alpha := &toySystem{failN: 4} // more than the SDK's own retries: the orchestrator retries too
	e.connect("alpha", alpha)
	e.connect("beta", &toySystem{})
	id := e.submit(erasure(true))
	view := e.waitState(id, "fulfilled")
	task := tasksBySystem(view)["alpha"]
	if task["attempts"].(float64) < 2 {
		t.Fatalf("alpha answered in %v attempts; expected retries", task["attempts"])
	}
	if n := waitCounter(t, e.reg, "lethe_orchestrator_task_retries_total", map[string]string{"system": "alpha"}, 1); n < 1 {
		t.Fatalf("retries counter = %v", n)
	}
}

// A connector down for a while: its tasks wait, the orchestrator re-attempts,
// and once it is back the request completes with one effect.
func TestConnectorDownThenBack(t *testing.T) {
	e := newEnv(t, nil)
	e.connect("beta", &toySystem{})
	id := e.submit(erasure(true))
	time.Sleep(700 * time.Millisecond) // past the first wait: a second attempt is published
	alpha := &toySystem{}
	e.connect("alpha", alpha)
	view := e.waitState(id, "fulfilled")
	if a := tasksBySystem(view)["alpha"]["attempts"].(float64); a < 2 {
		t.Fatalf("attempts = %v, want a retry while the connector was down", a)
	}
	if n := alpha.effectCount(events.TaskID(id, "alpha")); n != 1 {
		t.Fatalf("%d effects", n)
	}
}

// A system slower than what is asked of it works through a backlog: its
// queued tasks are not lost, so they are not re-attempted (a copy queued
// behind them would only lengthen the backlog) nor dead-lettered, however
// long their wait for an answer ran out ago; the wait is postponed while
// the system answers the tasks before them.
func TestBacklogIsNotRetried(t *testing.T) {
	e := newEnv(t, func(c *Config) { c.MaxAttempts = 2; c.RetryInitial = 200 * time.Millisecond })
	alpha := &toySystem{delay: 40 * time.Millisecond} // 16 tasks: 640 ms of work, three waits
	e.connect("alpha", alpha)
	e.connect("beta", &toySystem{})
	var ids []string
	for i := range 16 {
		ids = append(ids, e.submit(`{"type":"erasure","tenant":"demo","subject":{"email":"backlog-`+fmt.Sprint(i)+`@example.com"},"verified":true}`))
	}
	for _, id := range ids {
		view := e.waitState(id, "fulfilled")
		if k := tasksBySystem(view)["alpha"]; k["attempts"].(float64) != 1 {
			t.Errorf("alpha's task of %s: %v attempts, want 1", id, k["attempts"])
		}
		if n := alpha.effectCount(events.TaskID(id, "alpha")); n != 1 {
			t.Errorf("%d effects for %s", n, id)
		}
	}
	for name, want := range map[string]func(float64) bool{
		"lethe_orchestrator_task_retries_total":           func(n float64) bool { return n == 0 },
		"lethe_orchestrator_dead_letters_total":           func(n float64) bool { return n == 0 },
		"lethe_orchestrator_task_retries_postponed_total": func(n float64) bool { return n > 0 },
	} {
		if n := counter(t, e.reg, name, map[string]string{"system": "alpha"}); !want(n) {
			t.Errorf("%s{system=alpha} = %v", name, n)
		}
	}
}

// Past the last attempt the task is dead-lettered and the request shows
// which system failed.
func TestDeadLetter(t *testing.T) {
	e := newEnv(t, func(c *Config) { c.MaxAttempts = 2; c.RetryInitial = 100 * time.Millisecond })
	e.connect("beta", &toySystem{})
	id := e.submit(erasure(true))
	view := e.waitState(id, "failed")
	tasks := tasksBySystem(view)
	if tasks["alpha"]["state"] != "dead_letter" || !strings.Contains(tasks["alpha"]["detail"].(string), "no answer after 2 attempts") {
		t.Fatalf("alpha: %v", tasks["alpha"])
	}
	if tasks["beta"]["state"] != "answered" {
		t.Fatalf("beta: %v", tasks["beta"])
	}
	if n := waitCounter(t, e.reg, "lethe_orchestrator_dead_letters_total", map[string]string{"system": "alpha"}, 1); n != 1 {
		t.Fatalf("dead letters = %v", n)
	}
	// The system comes back and does the work late: the request is fulfilled after all.
	e.connect("alpha", &toySystem{})
	view = e.waitState(id, "fulfilled")
	if k := tasksBySystem(view)["alpha"]; k["outcome"] != "erased" {
		t.Fatalf("alpha after its late answer: %v", k)
	}
}

// A broker outage uses up no attempts: the wait for an answer starts when
// a task is really published.
func TestBrokerOutageUsesNoAttempts(t *testing.T) {
	e := newEnv(t, func(c *Config) { c.MaxAttempts = 2; c.RetryInitial = 100 * time.Millisecond })
	port := e.natsDown()
	id := e.submit(erasure(true))
	time.Sleep(time.Second) // ten times the first wait
	_, view := e.do("GET", "/v1/requests/"+id, "")
	for sys, k := range tasksBySystem(view) {
		if k["state"] != "published" || k["attempts"].(float64) != 1 {
			t.Fatalf("%s during the outage: %v", sys, k)
		}
	}
	e.natsUp(port)
	e.connect("alpha", &toySystem{})
	e.connect("beta", &toySystem{})
	e.waitState(id, "fulfilled")
}

// Once a request ends, no task message naming its subject is left in the
// outbox and the request keeps only the keyed hash.
func TestEndedRequestKeepsNoSubject(t *testing.T) {
	e := newEnv(t, nil)
	e.connect("alpha", &toySystem{})
	e.connect("beta", &toySystem{})
	id := e.submit(erasure(true))
	e.waitState(id, "fulfilled")
	db, err := sqlitedb.Open(filepath.Join(e.dataDir, "lethe.db"))
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	var outbox, subjects int
	if err := db.QueryRow(`SELECT count(*) FROM outbox WHERE task_id IS NOT NULL`).Scan(&outbox); err != nil {
		t.Fatal(err)
	}
	if err := db.QueryRow(`SELECT count(*) FROM requests WHERE sealed_subject IS NOT NULL OR subject_email IS NOT NULL OR subject_user_id IS NOT NULL`).Scan(&subjects); err != nil {
		t.Fatal(err)
	}
	if outbox != 0 || subjects != 0 {
		t.Fatalf("after the request ended: %d task messages in the outbox, %d requests with identifiers", outbox, subjects)
	}
	// Nor is a copy left in the bytes of the store's files: deleted rows
	// are overwritten (secure_delete) and the write-ahead log, which held
	// them, is truncated once they were dropped.
	var found []string
	for end := time.Now().Add(10 * time.Second); time.Now().Before(end); time.Sleep(100 * time.Millisecond) {
		if found = piitest.FilesHolding(t, e.dataDir, subjectEmail); len(found) == 0 {
			break
		}
	}
	if len(found) > 0 {
		t.Fatalf("the subject's email is still in %v after the request ended", found)
	}
}

// While a request is open its identifiers are kept, but sealed: neither
// the store's files (database, WAL) nor the outbox's task messages hold
// them in clear, and the connector still receives them.
func TestOpenRequestKeepsSubjectSealed(t *testing.T) {
	e := newEnv(t, nil)
	pending := e.submit(erasure(false)) // waits for its identity check
	alpha := &toySystem{}
	e.connect("alpha", alpha)
	e.connect("beta", &toySystem{})
	if found := piitest.FilesHolding(t, e.dataDir, subjectEmail); len(found) > 0 {
		t.Fatalf("an open request's email is in clear in %v", found)
	}
	if code, _ := e.do("POST", "/v1/requests/"+pending+"/verify", `{"method":"document"}`); code != http.StatusOK {
		t.Fatalf("verify = %d", code)
	}
	e.waitState(pending, "fulfilled")
	if got := alpha.subjects(); !slices.Equal(got, []string{subjectEmail}) {
		t.Fatalf("the connector received subjects %q, want the one sealed to it", got)
	}
}

// An account deletion opens one verified erasure request, however often
// the event is delivered.
func TestAccountDeletedOpensOneRequest(t *testing.T) {
	e := newEnv(t, nil)
	e.connect("alpha", &toySystem{})
	e.connect("beta", &toySystem{})
	// The service that emits the event seals its subject to the
	// orchestrator and signs it with its key, registered for its source
	// (here the test system alpha).
	seal := func(to *[32]byte) []byte {
		b, err := proof.SealSubject(to, &lethev1.Subject{Email: subjectEmail, UserId: "user-0042"})
		if err != nil {
			t.Fatal(err)
		}
		return b
	}
	own, err := e.taskKeys().OrchestratorSealKey(time.Now())
	if err != nil {
		t.Fatal(err)
	}
	ev := &lethev1.AccountDeleted{EventId: "acct-del-3f9a0c2b7d5e41f8a6b2c9d0e1f2a3b4", Tenant: "demo",
		SealedSubject: seal(own), DeletedAt: timestamppb.Now(), Source: "alpha"}
	if err := proof.SignAccountDeleted(e.signer("alpha"), ev); err != nil {
		t.Fatal(err)
	}
	b := e.bus("accounts")
	// Forged: unsigned, or signed by another system's key; or signed right
	// but sealed to another key than the orchestrator's. None opens a
	// request.
	unsigned := &lethev1.AccountDeleted{EventId: "acct-del-forged-1", Tenant: "demo",
		Subject: &lethev1.Subject{Email: "person-0043@example.com"}, DeletedAt: timestamppb.Now(), Source: "alpha"}
	otherKey := &lethev1.AccountDeleted{EventId: "acct-del-forged-2", Tenant: "demo",
		Subject: &lethev1.Subject{Email: "person-0043@example.com"}, DeletedAt: timestamppb.Now(), Source: "alpha"}
	if err := proof.SignAccountDeleted(e.signer("beta"), otherKey); err != nil {
		t.Fatal(err)
	}
	stranger, err := proof.LoadOrCreateSealKey(filepath.Join(t.TempDir(), "seal.key"))
	if err != nil {
		t.Fatal(err)
	}
	misSealed := &lethev1.AccountDeleted{EventId: "acct-del-forged-3", Tenant: "demo",
		SealedSubject: seal(stranger.Public), DeletedAt: timestamppb.Now(), Source: "alpha"}
	if err := proof.SignAccountDeleted(e.signer("alpha"), misSealed); err != nil {
		t.Fatal(err)
	}
	for _, forged := range []*lethev1.AccountDeleted{unsigned, otherKey, misSealed} {
		msg, _ := events.AccountDeletedMessage(forged, "test", time.Now())
		if err := b.Publish(context.Background(), events.TopicAccountDeleted, msg); err != nil {
			t.Fatal(err)
		}
	}
	for end := time.Now().Add(10 * time.Second); counter(t, e.reg, "lethe_orchestrator_events_refused_total", nil) < 3; time.Sleep(20 * time.Millisecond) {
		if time.Now().After(end) {
			t.Fatal("forged account.deleted events were not refused")
		}
	}
	for i := 0; i < 2; i++ {
		msg, _ := events.AccountDeletedMessage(ev, "test", time.Now())
		msg.ID += "-" + string(rune('a'+i)) // defeat broker de-duplication: the orchestrator must hold
		if err := b.Publish(context.Background(), events.TopicAccountDeleted, msg); err != nil {
			t.Fatal(err)
		}
	}
	var reqs []any
	for end := time.Now().Add(10 * time.Second); time.Now().Before(end); time.Sleep(50 * time.Millisecond) {
		_, out := e.do("GET", "/v1/requests?state=fulfilled", "")
		if reqs = out["requests"].([]any); len(reqs) > 0 {
			break
		}
	}
	time.Sleep(300 * time.Millisecond)
	_, out := e.do("GET", "/v1/requests", "")
	if all := out["requests"].([]any); len(all) != 1 || len(reqs) != 1 {
		t.Fatalf("%d requests, want 1: %v", len(all), out)
	}
	r := reqs[0].(map[string]any)
	if r["source"] != "account_deleted" || r["type"] != "erasure" || r["event_id"] != ev.EventId {
		t.Fatalf("request: %v", r)
	}
	// The request can be found from the event.
	_, out = e.do("GET", "/v1/requests?event_id="+ev.EventId, "")
	if found := out["requests"].([]any); len(found) != 1 || found[0].(map[string]any)["id"] != r["id"] {
		t.Fatalf("by event id: %v", out)
	}
	_, out = e.do("GET", "/v1/requests?event_id=acct-del-00000000000000000000000000000000", "")
	if found := out["requests"].([]any); len(found) != 0 {
		t.Fatalf("another event id found %v", found)
	}
}

func TestListPagination(t *testing.T) {
	e := newEnv(t, nil)
	for i := 0; i < 7; i++ {
		e.submit(erasure(false))
	}
	seen := map[string]bool{}
	cursor := ""
	pages := 0
	for {
		_, out := e.do("GET", "/v1/requests?state=pending_verification&limit=3&cursor="+cursor, "")
		for _, r := range out["requests"].([]any) {
			id := r.(map[string]any)["id"].(string)
			if seen[id] {
				t.Fatalf("%s on two pages", id)
			}
			seen[id] = true
		}
		pages++
		if cursor = out["next_cursor"].(string); cursor == "" {
			break
		}
	}
	if len(seen) != 7 || pages != 3 {
		t.Fatalf("%d requests on %d pages", len(seen), pages)
	}
}

// Receipts that are not what they claim are rejected, counted, and change
// nothing: from an unknown key, from a key registered for another system,
// and a valid receipt replayed for a different task.
func TestForgedReceiptsRejected(t *testing.T) {
	e := newEnv(t, nil)
	e.connect("alpha", &toySystem{})
	e.connect("beta", &toySystem{})
	done := e.submit(erasure(true))
	e.waitState(done, "fulfilled")
	cert, err := e.certificate(done)
	if err != nil {
		t.Fatal(err)
	}
	var valid *lethev1.Receipt // alpha's real, signed answer to the first request
	for _, s := range cert.Systems {
		if s.System == "alpha" {
			valid = &lethev1.Receipt{}
			if err := proto.Unmarshal(s.Receipt, valid); err != nil {
				t.Fatal(err)
			}
		}
	}

	// A second request whose alpha task stays open: its connector is gone.
	e.stopConnector("alpha")
	id := e.submit(erasure(true))
	e.waitTask(id, "beta", "answered")
	task := events.TaskID(id, "alpha")
	stranger, err := proof.LoadOrCreateSigner(filepath.Join(t.TempDir(), "signing.key"), "alpha", time.Now())
	if err != nil {
		t.Fatal(err)
	}
	forged := func(signer *proof.Signer) *lethev1.Receipt {
		r := &lethev1.Receipt{RequestId: id, TaskId: task, System: "alpha", Action: lethev1.Action_ACTION_ERASE,
			Outcome: lethev1.Outcome_OUTCOME_ERASED, Attempt: 1, ConnectorTime: timestamppb.Now()}
		if err := proof.SignReceipt(signer, r); err != nil {
			t.Fatal(err)
		}
		return r
	}
	replayed := proto.Clone(valid).(*lethev1.Receipt)
	replayed.RequestId, replayed.TaskId = id, task

	tests := []struct {
		name    string
		receipt *lethev1.Receipt
		reason  string
	}{
		{"unknown key", forged(stranger), "unknown_key"},
		{"key registered for another system", forged(e.signer("beta")), "wrong_system"},
		{"valid receipt replayed for another task", replayed, "bad_signature"},
	}
	for i, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			before := counter(t, e.reg, "lethe_orchestrator_receipts_rejected_total", map[string]string{"reason": tt.reason})
			msg, _ := events.ReceiptMessage(tt.receipt, "attacker", time.Now())
			msg.ID += fmt.Sprint(i)
			if err := e.bus("attacker").Publish(context.Background(), events.TopicReceipts, msg); err != nil {
				t.Fatal(err)
			}
			for end := time.Now().Add(10 * time.Second); counter(t, e.reg, "lethe_orchestrator_receipts_rejected_total", map[string]string{"reason": tt.reason}) <= before; time.Sleep(20 * time.Millisecond) {
				if time.Now().After(end) {
					t.Fatalf("not rejected as %s", tt.reason)
				}
			}
			_, view := e.do("GET", "/v1/requests/"+id, "")
			if view["state"] != "open" || tasksBySystem(view)["alpha"]["state"] != "published" {
				t.Fatalf("a rejected receipt changed the request: %v", view)
			}
		})
	}
	// The valid receipt as it is answers the first request's task, which
	// is done: ignored, and the second request is still waiting.
	msg, _ := events.ReceiptMessage(valid, "attacker", time.Now())
	msg.ID += "-again"
	if err := e.bus("attacker").Publish(context.Background(), events.TopicReceipts, msg); err != nil {
		t.Fatal(err)
	}
	time.Sleep(300 * time.Millisecond)
	if _, view := e.do("GET", "/v1/requests/"+id, ""); tasksBySystem(view)["alpha"]["state"] != "published" {
		t.Fatalf("the replayed receipt answered the second request: %v", view)
	}
}

// The certificate of an ended request verifies offline with the keys file,
// and its page renders.
func TestCertificate(t *testing.T) {
	e := newEnv(t, nil)
	e.connect("alpha", &toySystem{})
	e.connect("beta", &toySystem{})
	id := e.submit(erasure(false))
	if code, _ := e.do("GET", "/v1/requests/"+id+"/certificate", ""); code != http.StatusConflict {
		t.Fatalf("certificate of an open request = %d, want 409", code)
	}
	e.do("POST", "/v1/requests/"+id+"/verify", `{"method":"document"}`)
	e.waitState(id, "fulfilled")
	c, err := e.certificate(id)
	if err != nil {
		t.Fatalf("the certificate does not verify: %v", err)
	}
	if c.State != "fulfilled" || !c.DeadlineMet || len(c.Systems) != 2 || len(c.Log.Entries) < 6 {
		t.Fatalf("certificate: state %s, met %v, %d systems, %d entries", c.State, c.DeadlineMet, len(c.Systems), len(c.Log.Entries))
	}
	page := string(e.raw("GET", "/v1/requests/"+id+"/certificate.html"))
	for _, want := range []string{"Certificate of fulfilment", "Verified", "alpha", "beta", "Erased"} {
		if !strings.Contains(page, want) {
			t.Errorf("the page lacks %q", want)
		}
	}
	if strings.Contains(string(e.raw("GET", "/v1/requests/"+id+"/certificate")), subjectEmail) {
		t.Error("the certificate names the subject")
	}
	if code, _ := e.do("GET", "/v1/requests/req_nope/certificate", ""); code != http.StatusNotFound {
		t.Errorf("certificate of an unknown request = %d, want 404", code)
	}
}

// Tree heads from before and after 1,000 more requests are consistent; a
// rewritten past entry makes the check fail.
func TestLogConsistency(t *testing.T) {
	e := newEnv(t, nil)
	var keys proof.KeySet
	json.Unmarshal(e.raw("GET", "/v1/keys"), &keys)
	head := func() proof.TreeHead {
		var th proof.TreeHead
		if err := json.Unmarshal(e.raw("GET", "/v1/log/tree-head"), &th); err != nil {
			t.Fatal(err)
		}
		if err := proof.VerifyTreeHead(keys, th); err != nil {
			t.Fatal(err)
		}
		return th
	}
	consistent := func(older, newer proof.TreeHead) error {
		var out struct{ Proof tlog.TreeProof }
		json.Unmarshal(e.raw("GET", fmt.Sprintf("/v1/log/consistency?old=%d&new=%d", older.Size, newer.Size)), &out)
		return proof.CheckConsistency(older, newer, out.Proof)
	}
	e.submit(erasure(false))
	older := head()
	for i := 0; i < 1000; i++ {
		e.submit(erasure(false))
	}
	newer := head()
	if newer.Size != older.Size+1000 {
		t.Fatalf("sizes %d -> %d", older.Size, newer.Size)
	}
	if err := consistent(older, newer); err != nil {
		t.Fatalf("the grown log is not consistent: %v", err)
	}
	if code, _ := e.do("GET", fmt.Sprintf("/v1/log/consistency?old=%d&new=%d", newer.Size, older.Size), ""); code != http.StatusBadRequest {
		t.Fatalf("old > new = %d, want 400", code)
	}

	// Rewrite the first entry and recompute the whole tree, as someone
	// covering their tracks would: the old head exposes it.
	e.shutdown()
	rewriteFirstEntry(t, filepath.Join(e.dataDir, "lethe.db"))
	e.start()
	if err := consistent(older, head()); err == nil {
		t.Fatal("a rewritten log passed the consistency check")
	}
}

func rewriteFirstEntry(t *testing.T, path string) {
	t.Helper()
	db, err := sqlitedb.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	rows, err := db.Query(`SELECT data FROM log_entries ORDER BY idx`)
	if err != nil {
		t.Fatal(err)
	}
	var entries [][]byte
	for rows.Next() {
		var b []byte
		rows.Scan(&b)
		entries = append(entries, b)
	}
	rows.Close()
	entries[0] = []byte(strings.Replace(string(entries[0]), `"erasure"`, `"export"`, 1))
	var hashes []tlog.Hash
	reader := tlog.HashReaderFunc(func(idx []int64) ([]tlog.Hash, error) {
		out := make([]tlog.Hash, len(idx))
		for i, x := range idx {
			out[i] = hashes[x]
		}
		return out, nil
	})
	for n, data := range entries {
		hs, err := tlog.StoredHashes(int64(n), data, reader)
		if err != nil {
			t.Fatal(err)
		}
		hashes = append(hashes, hs...)
	}
	tx, _ := db.Begin()
	tx.Exec(`UPDATE log_entries SET data = ? WHERE idx = 0`, entries[0])
	for i, h := range hashes {
		if _, err := tx.Exec(`UPDATE log_hashes SET hash = ? WHERE idx = ?`, h[:], i); err != nil {
			t.Fatal(err)
		}
	}
	if err := tx.Commit(); err != nil {
		t.Fatal(err)
	}
}

// Key rotation: a new key added to the keys file is accepted beside the
// old one without a restart; once the old one is retired, its receipts are
// refused.
func TestKeyRotation(t *testing.T) {
	e := newEnv(t, nil)
	e.connect("beta", &toySystem{})
	old := e.signer("alpha")
	fresh, err := proof.LoadOrCreateSigner(filepath.Join(t.TempDir(), "signing.key"), "alpha", time.Now())
	if err != nil {
		t.Fatal(err)
	}
	fresh.Key.Seal = old.Key.Seal // the signing key rotates; the connector's sealing key stays
	keysFile := filepath.Join(e.dataDir, "keys.json")
	edit := func(change func(*proof.KeySet)) {
		ks, err := proof.ReadKeySet(keysFile)
		if err != nil {
			t.Fatal(err)
		}
		change(&ks)
		if err := proof.WriteKeySet(keysFile, ks); err != nil {
			t.Fatal(err)
		}
		time.Sleep(1100 * time.Millisecond) // the registry looks at the file once a second
	}
	answer := func(id string, s *proof.Signer, attempt uint32, at time.Time) {
		r := &lethev1.Receipt{RequestId: id, TaskId: events.TaskID(id, "alpha"), System: "alpha", Action: lethev1.Action_ACTION_ERASE,
			Outcome: lethev1.Outcome_OUTCOME_ERASED, Attempt: attempt, ConnectorTime: timestamppb.New(at)}
		if err := proof.SignReceipt(s, r); err != nil {
			t.Fatal(err)
		}
		msg, _ := events.ReceiptMessage(r, "alpha", time.Now())
		if err := e.bus("alpha").Publish(context.Background(), events.TopicReceipts, msg); err != nil {
			t.Fatal(err)
		}
	}

	edit(func(ks *proof.KeySet) { ks.Add(fresh.Key) })
	for _, s := range []*proof.Signer{old, fresh} { // both accepted during the overlap
		id := e.submit(erasure(true))
		answer(id, s, 1, time.Now())
		e.waitState(id, "fulfilled")
		if _, err := e.certificate(id); err != nil {
			t.Fatalf("certificate with %s: %v", s.Key.ID, err)
		}
	}

	retired := time.Now().Add(-time.Second)
	edit(func(ks *proof.KeySet) {
		k, _ := ks.Find(old.Key.ID)
		k.NotAfter = &retired
		ks.Add(k)
	})
	refused := func(reason string, n float64) {
		t.Helper()
		for end := time.Now().Add(10 * time.Second); counter(t, e.reg, "lethe_orchestrator_receipts_rejected_total", map[string]string{"reason": reason}) < n; time.Sleep(20 * time.Millisecond) {
			if time.Now().After(end) {
				t.Fatalf("no receipt refused for %s", reason)
			}
		}
	}
	// The retired key signs an answer dated before its retirement (a
	// leaked key, or a replay): it is judged when received, and refused.
	id := e.submit(erasure(true))
	answer(id, old, 1, retired.Add(-time.Second))
	refused("key_not_valid", 1)
	// A valid key's answer dated an hour after the orchestrator's clock is
	// refused too: no answer is dated after it was received (5 minutes of
	// clock skew aside).
	answer(id, fresh, 2, time.Now().Add(time.Hour))
	refused("clock_skew", 1)
	answer(id, fresh, 3, time.Now()) // another message id: the broker would drop a second answer of one attempt
	e.waitState(id, "fulfilled")
	if _, err := e.certificate(id); err != nil {
		t.Fatal(err)
	}
}

// A task on the bus carries the subject sealed to its connector: the
// message the broker keeps holds no email or user id (its bytes, as the
// outbox published them, and the broker's files); the connector opens it
// and erases.
func TestTasksCarryNoReadableSubject(t *testing.T) {
	e := newEnv(t, nil)
	id := e.submit(erasure(true))
	e.waitTask(id, "alpha", "published")
	var payloads [][]byte
	for end := time.Now().Add(10 * time.Second); len(payloads) < 2 && time.Now().Before(end); time.Sleep(50 * time.Millisecond) {
		payloads = nil
		db, err := sqlitedb.Open(filepath.Join(e.dataDir, "lethe.db"))
		if err != nil {
			t.Fatal(err)
		}
		rows, err := db.Query(`SELECT payload FROM outbox WHERE task_id IS NOT NULL AND published_at IS NOT NULL`)
		if err != nil {
			t.Fatal(err)
		}
		for rows.Next() {
			var b []byte
			rows.Scan(&b)
			payloads = append(payloads, b)
		}
		rows.Close()
		db.Close()
	}
	if len(payloads) < 2 {
		t.Fatalf("%d tasks published", len(payloads))
	}
	for _, data := range payloads {
		task := &lethev1.Task{}
		if err := proto.Unmarshal(data, task); err != nil {
			t.Fatal(err)
		}
		if task.GetSubject() != nil || len(task.GetSealedSubject()) == 0 {
			t.Fatalf("the task carries subject %v, sealed %d bytes", task.GetSubject(), len(task.GetSealedSubject()))
		}
		for _, s := range []string{subjectEmail, "user-0042"} {
			if strings.Contains(string(data), s) {
				t.Fatalf("a task message holds %q", s)
			}
		}
	}
	for _, s := range []string{subjectEmail, "user-0042"} {
		if found := piitest.FilesHolding(t, filepath.Join(e.dir, "nats"), s); len(found) > 0 {
			t.Fatalf("the broker's files hold %q: %v", s, found)
		}
	}
	alpha := &toySystem{}
	e.connect("alpha", alpha)
	e.connect("beta", &toySystem{})
	e.waitState(id, "fulfilled")
	if alpha.effectCount(events.TaskID(id, "alpha")) != 1 {
		t.Fatal("the connector did not act on the sealed task")
	}
}

// A system whose sealing key is not registered gets no task (its subject
// could not be sealed to it): its attempt fails and is retried, while the
// other systems go on.
func TestSystemWithoutSealingKeyHoldsUpNoOne(t *testing.T) {
	e := newEnv(t, func(c *Config) { c.RetryInitial, c.RetryMax = time.Hour, time.Hour })
	keysFile := filepath.Join(e.dataDir, "keys.json")
	ks, err := proof.ReadKeySet(keysFile)
	if err != nil {
		t.Fatal(err)
	}
	k, err := ks.Find(e.signer("beta").Key.ID)
	if err != nil {
		t.Fatal(err)
	}
	k.Seal = nil
	ks.Add(k)
	if err := proof.WriteKeySet(keysFile, ks); err != nil {
		t.Fatal(err)
	}
	time.Sleep(1100 * time.Millisecond) // the registry looks at the file once a second
	alpha := &toySystem{}
	e.connect("alpha", alpha)
	e.connect("beta", &toySystem{})
	id := e.submit(erasure(true))
	e.waitTask(id, "alpha", "answered")
	_, view := e.do("GET", "/v1/requests/"+id, "")
	beta := tasksBySystem(view)["beta"]
	if beta["state"] != "retrying" || !strings.Contains(fmt.Sprint(beta["detail"]), "no sealing key") {
		t.Fatalf("beta's task: %v", beta)
	}
}
