package devstack

import (
	"archive/zip"
	"bytes"
	"context"
	"database/sql"
	"encoding/hex"
	"encoding/json"
	"io"
	"io/fs"
	"math/rand/v2"
	"net/http"
	"os"
	"path/filepath"
	"reflect"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kfake"

	"github.com/lethe-dev/lethe/pkg/connector"
	"github.com/lethe-dev/lethe/pkg/exportbundle"
	"github.com/lethe-dev/lethe/pkg/piitest"
	"github.com/lethe-dev/lethe/pkg/proof"
	"github.com/lethe-dev/lethe/pkg/sqlitedb"
	"github.com/lethe-dev/lethe/services/orchestrator"
	"github.com/lethe-dev/lethe/services/orchestrator/store/storetest"
)

type harness struct {
	t     *testing.T
	s     *Stack
	logs  *piitest.Capture
	dir   string
	clock *clock
	// stop stops the stack (once; the test's cleanup does too).
	stop func()
}

// clock is the stack's clock: real time plus an offset a test can move
// forward, to see what happens years later without waiting for it.
type clock struct{ offset atomic.Int64 }

func (c *clock) Now() time.Time { return time.Now().Add(time.Duration(c.offset.Load())) }

// Jump moves every part of the stack d into the future at once.
func (c *clock) Jump(d time.Duration) { c.offset.Add(int64(d)) }

// start runs the whole stack in this process on free ports, seeded with 30
// people, with quick retries, on the harness's clock.
func start(t *testing.T, opts ...func(*Config)) *harness {
	t.Helper()
	h := &harness{t: t, logs: &piitest.Capture{}, dir: t.TempDir(), clock: &clock{}}
	ctx, cancel := context.WithCancel(context.Background())
	cfg := Config{
		DataDir: h.dir, Listen: "127.0.0.1:0", NATSPort: -1, AccountsListen: "127.0.0.1:0", People: 30,
		// Tests poll fast and read fresh gauges: no rate limit, no metrics cache.
		// No scheduled retention runs: a test that jumps the clock a year
		// would see the demo's old data swept under it; sweep tests run
		// them on demand.
		Orchestrator: orchestrator.Config{RetryInitial: 300 * time.Millisecond, RetryMax: time.Second, ScanInterval: 50 * time.Millisecond,
			RateLimit: -1, MetricsCache: -1, SweepInterval: -1},
		Now:    h.clock.Now,
		Logger: h.logs.Logger(),
	}
	for _, o := range opts {
		o(&cfg)
	}
	h.dir = cfg.DataDir
	s, err := Start(ctx, cfg)
	if err != nil {
		cancel()
		t.Fatal(err)
	}
	h.s = s
	var once sync.Once
	h.stop = func() {
		once.Do(func() {
			cancel()
			if err := s.Wait(); err != nil {
				t.Errorf("stack: %v", err)
			}
		})
	}
	t.Cleanup(h.stop)
	return h
}

// authorize gives a call to the API the admin token the stack wrote.
func (h *harness) authorize(req *http.Request) {
	h.t.Helper()
	if !strings.HasPrefix(req.URL.String(), h.s.API) {
		return
	}
	token, err := os.ReadFile(h.s.AdminTokenFile)
	if err != nil {
		h.t.Fatal(err)
	}
	req.Header.Set("Authorization", "Bearer "+strings.TrimSpace(string(token)))
}

func (h *harness) call(method, url, body string) (int, map[string]any) {
	h.t.Helper()
	req, _ := http.NewRequest(method, url, strings.NewReader(body))
	req.Header.Set("Content-Type", "application/json")
	h.authorize(req)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		h.t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	var out map[string]any
	if err := json.Unmarshal(b, &out); err != nil {
		h.t.Fatalf("%s %s: %q", method, url, b)
	}
	return resp.StatusCode, out
}

func (h *harness) waitState(id string, states ...string) map[string]any {
	h.t.Helper()
	var out map[string]any
	// Generous: a loaded CI machine running the race detector is slow, and
	// the wait ends as soon as the state is reached.
	for end := time.Now().Add(60 * time.Second); time.Now().Before(end); time.Sleep(50 * time.Millisecond) {
		_, out = h.call("GET", h.s.API+"/v1/requests/"+id, "")
		for _, st := range states {
			if out["state"] == st {
				return out
			}
		}
	}
	h.t.Fatalf("request %s is %v, want %v: %v", id, out["state"], states, out)
	return nil
}

func tasks(view map[string]any) map[string]map[string]any {
	out := map[string]map[string]any{}
	for _, t := range view["tasks"].([]any) {
		m := t.(map[string]any)
		out[m["system"].(string)] = m
	}
	return out
}

// rowsMentioning opens every SQLite file under the stack's data dir and
// returns "file:table" for each table with a row whose text holds one of
// the identifiers: an independent look at what the systems still hold.
func (h *harness) rowsMentioning(ids ...string) []string {
	h.t.Helper()
	var found []string
	err := filepath.WalkDir(h.dir, func(path string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() || !strings.HasSuffix(path, ".db") {
			return err
		}
		db, err := sqlitedb.Open(path)
		if err != nil {
			return err
		}
		defer db.Close()
		tables, err := column[string](db, `SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite_%'`)
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(h.dir, path)
		for _, table := range tables {
			rows, err := db.Query(`SELECT * FROM "` + table + `"`)
			if err != nil {
				return err
			}
			cols, _ := rows.Columns()
			vals := make([]any, len(cols))
			ptrs := make([]any, len(cols))
			for i := range vals {
				ptrs[i] = &vals[i]
			}
			hit := false
			for rows.Next() && !hit {
				if err := rows.Scan(ptrs...); err != nil {
					rows.Close()
					return err
				}
				for _, v := range vals {
					var s string
					switch v := v.(type) {
					case string:
						s = v
					case []byte:
						s = string(v)
					}
					for _, id := range ids {
						if s != "" && strings.Contains(strings.ToLower(s), strings.ToLower(id)) {
							hit = true
						}
					}
				}
			}
			rows.Close()
			if hit {
				found = append(found, rel+":"+table)
			}
		}
		return nil
	})
	if err != nil {
		h.t.Fatal(err)
	}
	return found
}

// onlyRetained checks that nothing of a person whose erasure is partially
// retained is left anywhere but in billing's invoices, kept by law (the
// orchestrator's request keeps the identifiers its deferred erasure needs
// sealed, so they do not show).
func (h *harness) onlyRetained(ids ...string) {
	h.t.Helper()
	for _, place := range h.rowsMentioning(ids...) {
		if place != "billing/billing.db:invoices" {
			h.t.Errorf("the person is still in %s", place)
		}
	}
}

func column[T any](db *sql.DB, q string) ([]T, error) {
	rows, err := db.Query(q)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var out []T
	for rows.Next() {
		var v T
		if err := rows.Scan(&v); err != nil {
			return nil, err
		}
		out = append(out, v)
	}
	return out, rows.Err()
}

func TestErasureEndToEnd(t *testing.T) { matrix(t, erasureEndToEnd) }

func erasureEndToEnd(t *testing.T, h *harness) {
	email, userID := "person-0003@example.com", "user-0003"
	before := h.rowsMentioning(email)
	if len(before) < 4 {
		t.Fatalf("the seeded person is in too few places to prove anything: %v", before)
	}
	filesBefore := countFiles(t, filepath.Join(h.dir, "recordings", "files"))

	code, out := h.call("POST", h.s.API+"/v1/requests", `{"type":"erasure","tenant":"demo","subject":{"email":"`+email+`"}}`)
	if code != http.StatusAccepted || out["state"] != "pending_verification" {
		t.Fatalf("submit = %d %v", code, out)
	}
	id := out["id"].(string)
	if code, out := h.call("POST", h.s.API+"/v1/requests/"+id+"/verify", `{"method":"document"}`); code != 200 {
		t.Fatalf("verify = %d %v", code, out)
	}
	// Billing keeps the person's invoices by law: the request is answered
	// in full but ends partially retained, billing's erasure deferred to
	// the end of the retention (TestDeferredErasureEndToEnd goes on there).
	view := h.waitState(id, "partially_retained")
	ts := tasks(view)
	if len(ts) != 5 {
		t.Fatalf("%d systems answered, want 5: %v", len(ts), view)
	}
	for sys, task := range ts {
		want := "erased"
		if sys == "billing" {
			want = "retained"
		}
		if task["outcome"] != want {
			t.Errorf("%s answered %v, want %s: %v", sys, task["outcome"], want, task)
		}
	}
	if b := ts["billing"]; b["legal_basis"] == "" || b["retain_until"] == nil {
		t.Errorf("billing retained without legal basis or date: %v", b)
	} else if b["state"] != "deferred" || b["next_attempt_at"] != b["retain_until"] {
		t.Errorf("billing's erasure is not deferred to its retain-until date: %v", b)
	}
	h.checkCertificate(id, email)

	h.onlyRetained(email, userID)
	if after := countFiles(t, filepath.Join(h.dir, "recordings", "files")); after >= filesBefore {
		t.Errorf("recording files: %d before, %d after", filesBefore, after)
	}
	h.logs.NoneOf(t, email, userID)
}

func countFiles(t *testing.T, dir string) int {
	n := 0
	filepath.WalkDir(dir, func(path string, d fs.DirEntry, err error) error {
		if err == nil && !d.IsDir() && !strings.HasSuffix(path, ".db") && !strings.Contains(path, ".db-") && !strings.HasSuffix(path, ".key") {
			n++
		}
		return nil
	})
	return n
}

func TestExportEndToEnd(t *testing.T) { matrix(t, exportEndToEnd) }

func exportEndToEnd(t *testing.T, h *harness) {
	email := "person-0004@example.com"
	// Look-alikes the export must not collect: the same address in
	// another tenant, and addresses that only contain it.
	h.exec("accounts/accounts.db", `INSERT INTO users (id, tenant, email, name, created_at) VALUES
		('user-lookalike-1', 'other', 'person-0004@example.com', 'Other Tenant', '2024-01-01T00:00:00Z'),
		('user-lookalike-2', 'demo', 'person-0004@example.com.evil', 'Suffix Lookalike', '2024-01-01T00:00:00Z')`)
	h.exec("emailanalytics/emailanalytics.db", `INSERT INTO email_events (id, tenant, email, campaign_id, event_type, at) VALUES
		('ev-lookalike-1', 'demo', 'xperson-0004@example.com', 'c-1', 'open', '2024-01-01T00:00:00Z'),
		('ev-lookalike-2', 'other', 'person-0004@example.com', 'c-1', 'open', '2024-01-01T00:00:00Z')`)
	_, out := h.call("POST", h.s.API+"/v1/requests", `{"type":"export","tenant":"demo","subject":{"email":"`+email+`","user_id":"user-0004"},"verified":true}`)
	id := out["id"].(string)
	view := h.waitState(id, "fulfilled")
	for sys, task := range tasks(view) {
		if task["outcome"] != "exported" {
			t.Errorf("%s answered %v, want exported", sys, task["outcome"])
		}
	}
	bundle := h.get(h.s.API + "/v1/requests/" + id + "/export")
	m, digest, err := exportbundle.Check(bytes.NewReader(bundle), int64(len(bundle)))
	if err != nil {
		t.Fatalf("the bundle does not check: %v", err)
	}
	zr, err := zip.NewReader(bytes.NewReader(bundle), int64(len(bundle)))
	if err != nil {
		t.Fatal(err)
	}
	if len(m.Systems) != len(orchestrator.DefaultSystems) {
		t.Fatalf("the manifest lists %d systems, want %d", len(m.Systems), len(orchestrator.DefaultSystems))
	}
	for _, sys := range m.Systems {
		if sys.Outcome != "exported" || sys.Records == nil || len(sys.Categories) == 0 {
			t.Errorf("%s: %+v", sys.Name, sys)
			continue
		}
		// The records are what the system holds of the person: its own
		// export of the same task, made now.
		want, err := h.s.systems()[sys.Name].Export(t.Context(), connector.Task{RequestID: id, TaskID: id + "." + sys.Name,
			Tenant: "demo", Subject: connector.Subject{Email: email, UserID: "user-0004"}})
		if err != nil {
			t.Fatal(err)
		}
		if got := zipFile(t, zr, sys.Records.Path); !jsonEqual(got, want.Export) {
			t.Errorf("%s: the bundle's records\n%s\nare not what the system holds\n%s", sys.Name, got, want.Export)
		}
		if sys.Name == "recordings" && len(sys.Files) == 0 {
			t.Error("the recordings' videos are not in the bundle")
		}
	}
	for _, f := range zr.File {
		b := zipFile(t, zr, f.Name)
		for _, other := range []string{"lookalike", "person-0004@example.com.evil", "xperson-0004", "Other Tenant", "person-0014@", "user-0014"} {
			if bytes.Contains(b, []byte(other)) {
				t.Errorf("%s holds %q: the export collected someone else's data", f.Name, other)
			}
		}
	}
	page := zipFile(t, zr, "index.html")
	for _, heading := range []string{"Your account", "Sign-ins", "Billing", "Emails and engagement", "Recordings", "Your contributions"} {
		if !bytes.Contains(page, []byte(heading)) {
			t.Errorf("index.html does not show the category %q", heading)
		}
	}
	c, _, _ := h.verifyCertificate(id, email, "user-0004")
	if c.ExportManifestSHA256 != hex.EncodeToString(digest[:]) {
		t.Errorf("the certificate quotes manifest %q, the bundle's is %x", c.ExportManifestSHA256, digest)
	}
	// An export changes nothing.
	if places := h.rowsMentioning(email); len(places) < 4 {
		t.Errorf("after export the person is only in %v", places)
	}
	h.logs.NoneOf(t, email, "user-0004")
}

// exec runs SQL on a demo system's database under the stack's data folder.
func (h *harness) exec(file, query string) {
	h.t.Helper()
	db, err := sqlitedb.Open(filepath.Join(h.dir, file))
	if err != nil {
		h.t.Fatal(err)
	}
	defer db.Close()
	if _, err := db.Exec(query); err != nil {
		h.t.Fatal(err)
	}
}

func zipFile(t *testing.T, zr *zip.Reader, name string) []byte {
	t.Helper()
	rc, err := zr.Open(name)
	if err != nil {
		t.Fatal(err)
	}
	defer rc.Close()
	b, err := io.ReadAll(rc)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func jsonEqual(a, b []byte) bool {
	var x, y any
	return json.Unmarshal(a, &x) == nil && json.Unmarshal(b, &y) == nil && reflect.DeepEqual(x, y)
}

// Deleting an account in the demo app opens a verified erasure request.
func TestAccountDeletionEndToEnd(t *testing.T) {
	h := start(t)
	email := "person-0005@example.com"
	code, out := h.call("POST", h.s.AccountsAPI+"/v1/accounts/delete", `{"tenant":"demo","email":"`+email+`"}`)
	if code != http.StatusAccepted {
		t.Fatalf("delete account = %d %v", code, out)
	}
	var id string
	for end := time.Now().Add(15 * time.Second); id == "" && time.Now().Before(end); time.Sleep(50 * time.Millisecond) {
		_, list := h.call("GET", h.s.API+"/v1/requests?event_id="+out["event_id"].(string), "")
		for _, r := range list["requests"].([]any) {
			if r.(map[string]any)["source"] == "account_deleted" {
				id = r.(map[string]any)["id"].(string)
			}
		}
	}
	if id == "" {
		t.Fatal("no request was opened from the account deletion")
	}
	h.waitState(id, "partially_retained")
	h.onlyRetained(email)
	h.logs.NoneOf(t, email)
}

// A connector that is down when the request comes is waited for and
// retried; once it starts, the request completes.
func TestConnectorDownEndToEnd(t *testing.T) {
	h := start(t, func(c *Config) { c.Without = []string{"recordings"} })
	_, out := h.call("POST", h.s.API+"/v1/requests", `{"type":"erasure","tenant":"demo","subject":{"email":"person-0006@example.com"},"verified":true}`)
	id := out["id"].(string)
	time.Sleep(800 * time.Millisecond)
	_, view := h.call("GET", h.s.API+"/v1/requests/"+id, "")
	if view["state"] != "open" {
		t.Fatalf("with recordings down the request is %v", view["state"])
	}
	h.s.StartConnector("recordings")
	view = h.waitState(id, "partially_retained")
	if a := tasks(view)["recordings"]["attempts"].(float64); a < 2 {
		t.Errorf("recordings answered at attempt %v; expected a retry while it was down", a)
	}
}

// checkCertificate fetches a request's certificate and the keys file,
// verifies the certificate offline, shows that changing any of a seeded
// sample of 2,000 byte positions makes it fail, and that its page renders.
func (h *harness) checkCertificate(id string, subject ...string) {
	t := h.t
	t.Helper()
	c, cert, keys := h.verifyCertificate(id, subject...)
	if len(c.Systems) != len(orchestrator.DefaultSystems) || !c.DeadlineMet {
		t.Fatalf("certificate: %d systems, deadline met %v", len(c.Systems), c.DeadlineMet)
	}
	rng := rand.New(rand.NewPCG(1, uint64(len(cert))))
	positions := 2000
	for i := 0; i < positions; i++ {
		p := rng.IntN(len(cert))
		bad := bytes.Clone(cert)
		bad[p] ^= byte(1 + rng.IntN(255))
		if _, err := proof.Verify(bad, keys); err == nil {
			t.Fatalf("changing byte %d (%q) of the certificate went unnoticed", p, cert[p])
		}
	}
	t.Logf("%d single-byte changes of a %d-byte certificate: all failed verification", positions, len(cert))
	page := string(h.get(h.s.API + "/v1/requests/" + id + "/certificate.html"))
	if !strings.Contains(page, "Verified") || !strings.Contains(page, "Retained by law") {
		t.Errorf("the certificate page does not say it verified, or lacks the retained row")
	}
}

// verifyCertificate fetches a request's certificate and the keys file (GET
// /v1/keys), verifies the certificate offline as a third party would, and
// checks that it names none of subject and that every system that erased
// found nothing left on a second look.
func (h *harness) verifyCertificate(id string, subject ...string) (*proof.Certificate, []byte, proof.KeySet) {
	t := h.t
	t.Helper()
	cert := h.get(h.s.API + "/v1/requests/" + id + "/certificate")
	keys := h.keys()
	c, err := proof.Verify(cert, keys)
	if err != nil {
		t.Fatalf("the certificate does not verify: %v", err)
	}
	for _, s := range c.Systems {
		// A dry run erases nothing: its counts, and what remains, are what
		// a real run would take.
		if s.Outcome == "erased" && s.Remaining != 0 && (c.Sweep == nil || !c.Sweep.DryRun) {
			t.Errorf("%s: erased but %d records remain on a second look", s.System, s.Remaining)
		}
	}
	for _, id := range subject {
		if strings.Contains(strings.ToLower(string(cert)), strings.ToLower(id)) {
			t.Errorf("the certificate names the subject (%q)", id)
		}
	}
	return c, cert, keys
}

// keys is the orchestrator's keys file, as GET /v1/keys serves it.
func (h *harness) keys() proof.KeySet {
	h.t.Helper()
	var keys proof.KeySet
	if err := json.Unmarshal(h.get(h.s.API+"/v1/keys"), &keys); err != nil {
		h.t.Fatal(err)
	}
	return keys
}

// status makes a call and returns its status code only.
func (h *harness) status(method, url string) int {
	h.t.Helper()
	req, _ := http.NewRequest(method, url, nil)
	h.authorize(req)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		h.t.Fatal(err)
	}
	resp.Body.Close()
	return resp.StatusCode
}

func (h *harness) get(url string) []byte {
	h.t.Helper()
	req, _ := http.NewRequest("GET", url, nil)
	h.authorize(req)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		h.t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != http.StatusOK {
		h.t.Fatalf("GET %s = %d %s", url, resp.StatusCode, b)
	}
	return b
}

// matrix runs an end-to-end test on every pair of engines: {NATS embedded,
// NATS external, Kafka (franz-go's kfake, spoken to by kafka-go)} x {SQLite,
// PostgreSQL}. A cell whose engine this machine lacks is skipped, saying
// why.
func matrix(t *testing.T, test func(*testing.T, *harness)) {
	matrixStart(t, func(t *testing.T, start func(...func(*Config)) *harness) { test(t, start()) })
}

// matrixStart is matrix for a test that configures its stack (a webhook it
// serves, say): it gets a start function for the cell's engines.
func matrixStart(t *testing.T, test func(t *testing.T, start func(...func(*Config)) *harness)) {
	buses := []struct {
		name string
		url  func(t *testing.T) string
	}{
		{"nats-embedded", func(*testing.T) string { return "" }},
		{"nats-external", func(t *testing.T) string {
			u := os.Getenv("LETHE_TEST_NATS_URL")
			if u == "" {
				t.Skip("LETHE_TEST_NATS_URL is not set: no external NATS server")
			}
			return u
		}},
		{"kafka-kfake", func(t *testing.T) string {
			c, err := kfake.NewCluster(kfake.NumBrokers(1))
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(c.Close)
			return "kafka://" + strings.Join(c.ListenAddrs(), ",")
		}},
	}
	stores := []struct {
		name string
		url  func(t *testing.T) string
	}{
		{"sqlite", func(*testing.T) string { return "" }},
		{"postgres", func(t *testing.T) string { return storetest.PostgresDSN(t) }},
	}
	for _, b := range buses {
		for _, st := range stores {
			t.Run(b.name+"/"+st.name, func(t *testing.T) {
				busURL, storeURL := b.url(t), st.url(t)
				prefix := "e2e" + strconv.FormatInt(time.Now().UnixNano(), 36)
				test(t, func(opts ...func(*Config)) *harness {
					t.Helper()
					engines := func(c *Config) { c.BusURL, c.BusPrefix, c.StoreURL = busURL, prefix, storeURL }
					return start(t, append([]func(*Config){engines}, opts...)...)
				})
			})
		}
	}
}
