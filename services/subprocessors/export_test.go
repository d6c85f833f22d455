package subprocessors

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"reflect"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/lethe-dev/lethe/pkg/connector"
	"github.com/lethe-dev/lethe/services/subprocessors/standin"
)

// exportTask is an export task with a deadline, as the orchestrator sends.
func exportTask(s connector.Subject, id string) connector.Task {
	t := task(s, id)
	t.Deadline = time.Date(2026, 4, 1, 12, 0, 0, 0, time.UTC)
	return t
}

// decode parses an export as the SDK and the bundle read it.
func decode(t *testing.T, res connector.Result) connector.Records {
	t.Helper()
	var r connector.Records
	if err := json.Unmarshal(res.Export, &r); err != nil {
		t.Fatalf("export is not records by category, then table: %v: %s", err, res.Export)
	}
	return r
}

// asJSON is v through JSON, as the export holds it.
func asJSON(t *testing.T, v any) any {
	t.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	var out any
	if err := json.Unmarshal(b, &out); err != nil {
		t.Fatal(err)
	}
	return out
}

// The demo: each vendor with an access API gives the person's records,
// filed under its data category and name; captioning, which has none, is
// told of the request and listed with the time it was.
func TestExportDemo(t *testing.T) {
	categories := map[string]string{}
	vs, err := ParseVendors(DemoVendors)
	if err != nil {
		t.Fatal(err)
	}
	for _, v := range vs {
		if v.Access.URL != "" {
			categories[v.Name] = v.DataCategory
			if categories[v.Name] == "" {
				categories[v.Name] = DefaultDataCategory
			}
		}
	}
	tests := []struct {
		who     int
		holders []string // vendors with an access API holding the person
	}{
		{1, []string{standin.Enrichment, standin.SupportDesk, standin.ErrorTracking}},
		{15, []string{standin.Enrichment, standin.SupportDesk}},
		{17, []string{standin.Enrichment, standin.ErrorTracking}},
		{14, nil}, // held by no vendor that can be asked: captioning's row only
	}
	for _, tt := range tests {
		t.Run(fmt.Sprint("person ", tt.who), func(t *testing.T) {
			sys, vendors := demo(t, 20)
			subj := person(tt.who)
			tk := exportTask(subj, fmt.Sprint("req_e", tt.who))
			before := time.Now().UTC().Truncate(time.Second)
			res, err := sys.Export(context.Background(), tk)
			if err != nil {
				t.Fatal(err)
			}
			after := time.Now().UTC()
			if res.Outcome != connector.Exported {
				t.Fatalf("outcome %q, want exported", res.Outcome)
			}
			recs := decode(t, res)

			wantCounts := map[string]int64{}
			for _, v := range tt.holders {
				want := vendors.Records(v, subj.Email)
				if len(want) == 0 {
					t.Fatalf("the stand-in's %s holds no records of person %d", v, tt.who)
				}
				got := recs[categories[v]][v]
				if !reflect.DeepEqual(asJSON(t, got), asJSON(t, want)) {
					t.Errorf("%s's rows under %s = %v, want %v", v, categories[v], got, want)
				}
				wantCounts[v] = int64(len(want))
			}
			if !reflect.DeepEqual(res.Counts, wantCounts) {
				t.Errorf("counts = %v, want %v", res.Counts, wantCounts)
			}

			// Nothing else than those tables and captioning's row.
			tables := 0
			for _, ts := range recs {
				tables += len(ts)
			}
			if tables != len(tt.holders)+1 {
				t.Errorf("export has %d tables, want %d: %s", tables, len(tt.holders)+1, res.Export)
			}
			listed := recs[DefaultDataCategory][withoutExportTable]
			if len(listed) != 1 || listed[0]["vendor"] != standin.Captioning || listed[0]["status"] != "contacted, no export API" {
				t.Fatalf("vendors without export = %v", listed)
			}
			at, err := time.Parse(time.RFC3339, fmt.Sprint(listed[0]["notified_at"]))
			if err != nil || at.Location() != time.UTC || at.Before(before) || at.After(after) {
				t.Errorf("notified_at = %v (%v), want RFC 3339 UTC between %v and %v", listed[0]["notified_at"], err, before, after)
			}
			want := []standin.Notification{{Type: "access", Email: subj.Email, Reference: tk.RequestID, RespondBy: "2026-04-01T12:00:00Z"}}
			if got := vendors.Notifications(standin.Captioning); !reflect.DeepEqual(got, want) {
				t.Errorf("captioning received %+v, want %+v", got, want)
			}

			// An export changes nothing at the vendors.
			for _, v := range tt.holders {
				if !vendors.Holds(v, subj.Email) || vendors.Deletions(v) != 0 {
					t.Errorf("the export deleted at %s", v)
				}
			}
		})
	}
}

// A look-alike of the person, at every vendor: none of their rows in the
// person's export, none of the person's in theirs.
func TestExportLookAlike(t *testing.T) {
	sys, vendors := demo(t, 20)
	real := person(1)
	alikes := []string{"person-00010@example.com", "xperson-0001@example.com", "person-0001@example.com.invalid"}
	var alikeIDs []string
	for _, e := range alikes {
		alikeIDs = append(alikeIDs, fmt.Sprintf("user-%04d", vendors.AddPerson(e)))
	}
	res, err := sys.Export(context.Background(), exportTask(real, "req_la"))
	if err != nil || res.Outcome != connector.Exported {
		t.Fatalf("export = %q, %v", res.Outcome, err)
	}
	recs := decode(t, res)
	for _, v := range []string{standin.Enrichment, standin.SupportDesk, standin.ErrorTracking} {
		var got []map[string]any
		for _, tables := range recs {
			got = append(got, tables[v]...)
		}
		if !reflect.DeepEqual(asJSON(t, got), asJSON(t, vendors.Records(v, real.Email))) {
			t.Errorf("%s: export rows %v, want the person's only: %v", v, got, vendors.Records(v, real.Email))
		}
	}
	for _, s := range append(alikes, alikeIDs...) {
		if bytes.Contains(res.Export, []byte(`"`+s+`"`)) {
			t.Errorf("the person's export holds the look-alike's %s", s)
		}
	}
	// And the other way round.
	res, err = sys.Export(context.Background(), exportTask(connector.Subject{Email: alikes[0]}, "req_la2"))
	if err != nil || res.Outcome != connector.Exported {
		t.Fatalf("look-alike export = %q, %v", res.Outcome, err)
	}
	for _, s := range []string{real.Email, real.UserID} {
		if bytes.Contains(res.Export, []byte(`"`+s+`"`)) {
			t.Errorf("the look-alike's export holds the person's %s", s)
		}
	}
}

// recorder is a vendor that records the requests it receives and answers
// them with status.
type recorder struct {
	mu     sync.Mutex
	status int
	seen   []seenRequest
	srv    *httptest.Server
}

type seenRequest struct {
	Method, Path, Query, Auth, ContentType string
	Body                                   map[string]string
}

func newRecorder(t *testing.T, status int) *recorder {
	t.Helper()
	rec := &recorder{status: status}
	rec.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		s := seenRequest{Method: r.Method, Path: r.URL.Path, Query: r.URL.RawQuery, Auth: r.Header.Get("X-Key"), ContentType: r.Header.Get("Content-Type")}
		if b, _ := io.ReadAll(r.Body); len(b) > 0 {
			if err := json.Unmarshal(b, &s.Body); err != nil {
				t.Errorf("body %q is not JSON: %v", b, err)
			}
		}
		rec.mu.Lock()
		rec.seen = append(rec.seen, s)
		status := rec.status
		rec.mu.Unlock()
		w.WriteHeader(status)
	}))
	t.Cleanup(rec.srv.Close)
	return rec
}

func (r *recorder) requests() []seenRequest {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]seenRequest(nil), r.seen...)
}

func (r *recorder) answer(status int) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.status = status
}

// The notify request a vendor receives; a retry of the same task lists the
// same time and does not notify again; another task notifies again.
func TestExportNotify(t *testing.T) {
	vendor := newRecorder(t, http.StatusAccepted)
	sys := open(t, Config{Vendors: []Vendor{{
		Name:   "payroll",
		Delete: Request{URL: "{base}/people/{email}"},
		Notify: Request{Method: "put", URL: "{base}/privacy/{tenant}/access-requests/{request_id}?user={user_id}",
			Body: `{"email": "{email}", "due": "{deadline}", "kind": "art15"}`},
		Auth: Auth{Header: "X-Key", Env: "K"},
	}}, Vars: map[string]string{"base": vendor.srv.URL}, Getenv: func(k string) string { return "secret-" + k }})
	subj := connector.Subject{Email: " Jane.Doe+x@Example.com ", UserID: "u 1"}
	tk := exportTask(subj, "req_n1")
	res, err := sys.Export(context.Background(), tk)
	if err != nil || res.Outcome != connector.Exported {
		t.Fatalf("export = %q, %v", res.Outcome, err)
	}
	if len(res.Counts) != 0 {
		t.Errorf("counts = %v: the vendor returned no records", res.Counts)
	}
	want := []seenRequest{{Method: "PUT", Path: "/privacy/demo/access-requests/req_n1", Query: "user=u%201", Auth: "secret-K",
		ContentType: "application/json", Body: map[string]string{"email": "jane.doe+x@example.com", "due": "2026-04-01T12:00:00Z", "kind": "art15"}}}
	if got := vendor.requests(); !reflect.DeepEqual(got, want) {
		t.Fatalf("vendor received %+v, want %+v", got, want)
	}
	recs := decode(t, res)
	if len(recs) != 1 || len(recs[DefaultDataCategory]) != 1 {
		t.Fatalf("export = %s", res.Export)
	}
	row := recs[DefaultDataCategory][withoutExportTable]
	if len(row) != 1 || len(row[0]) != 3 || row[0]["vendor"] != "payroll" || row[0]["status"] != "contacted, no export API" {
		t.Fatalf("row = %v", row)
	}
	first := row[0]["notified_at"]

	// The same task again, a second later: no call, the same time.
	time.Sleep(1100 * time.Millisecond)
	again, err := sys.Export(context.Background(), tk)
	if err != nil || !bytes.Equal(again.Export, res.Export) {
		t.Fatalf("repeat = %s, %v; want %s", again.Export, err, res.Export)
	}
	if n := len(vendor.requests()); n != 1 {
		t.Fatalf("vendor notified %d times for one task", n)
	}
	// Another request: notified again, at its own time.
	other, err := sys.Export(context.Background(), exportTask(subj, "req_n2"))
	if err != nil {
		t.Fatal(err)
	}
	if got := vendor.requests(); len(got) != 2 || got[1].Path != "/privacy/demo/access-requests/req_n2" {
		t.Fatalf("vendor received %+v", got)
	}
	if at := decode(t, other)[DefaultDataCategory][withoutExportTable][0]["notified_at"]; at == first {
		t.Errorf("second request listed the first one's time %v", at)
	}
}

// A notification that fails fails the export (retryable as any call), and
// lists nothing; once it passes, the vendor is listed.
func TestExportNotifyFailure(t *testing.T) {
	tests := []struct {
		status    int
		retryable bool
	}{
		{http.StatusServiceUnavailable, true},
		{http.StatusTooManyRequests, true},
		{http.StatusNotFound, false}, // the call went nowhere
		{http.StatusBadRequest, false},
	}
	for _, tt := range tests {
		t.Run(http.StatusText(tt.status), func(t *testing.T) {
			vendor := newRecorder(t, tt.status)
			sys := open(t, Config{Vendors: []Vendor{{Name: "v", Delete: Request{URL: "{base}/p/{email}"},
				Notify: Request{URL: "{base}/notify", Body: `{"email": "{email}"}`}}},
				Vars: map[string]string{"base": vendor.srv.URL}})
			tk := exportTask(person(1), "req_nf")
			_, err := sys.Export(context.Background(), tk)
			if err == nil || connector.IsRetryable(err) != tt.retryable {
				t.Fatalf("err = %v, retryable %v; want retryable %v", err, connector.IsRetryable(err), tt.retryable)
			}
			if msg := err.Error(); !strings.Contains(msg, "vendor v") || strings.Contains(msg, person(1).Email) {
				t.Fatalf("error = %s", msg)
			}
			vendor.answer(http.StatusOK)
			res, err := sys.Export(context.Background(), tk)
			if err != nil || res.Outcome != connector.Exported {
				t.Fatalf("after recovery = %q, %v", res.Outcome, err)
			}
			if n := len(vendor.requests()); n != 2 {
				t.Fatalf("vendor called %d times, want 2", n)
			}
		})
	}
}

// A vendor without an access API nor a notify call is listed as such, with
// a warning that names the vendor and not the person.
func TestExportVendorWithoutContact(t *testing.T) {
	var logs bytes.Buffer
	var mu sync.Mutex
	log := slog.New(slog.NewTextHandler(writerFunc(func(p []byte) (int, error) {
		mu.Lock()
		defer mu.Unlock()
		return logs.Write(p)
	}), nil))
	s, err := Open(context.Background(), connector.Env{DataDir: t.TempDir(), Logger: log}, Config{
		Vendors: []Vendor{{Name: "printer", Delete: Request{URL: "http://127.0.0.1:1/p/{email}"}}}})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	res, err := s.Export(context.Background(), exportTask(person(3), "req_nc"))
	if err != nil || res.Outcome != connector.Exported || len(res.Counts) != 0 {
		t.Fatalf("export = %+v, %v", res, err)
	}
	want := connector.Records{DefaultDataCategory: {withoutExportTable: {{"vendor": "printer", "status": "no export API and no way to contact it configured"}}}}
	if got := decode(t, res); !reflect.DeepEqual(got, want) {
		t.Fatalf("export = %v, want %v", got, want)
	}
	mu.Lock()
	out := logs.String()
	mu.Unlock()
	if !strings.Contains(out, "level=WARN") || !strings.Contains(out, "printer") {
		t.Errorf("no warning naming the vendor: %q", out)
	}
	if strings.Contains(out, person(3).Email) || strings.Contains(out, person(3).UserID) {
		t.Errorf("log holds the person: %q", out)
	}
}

type writerFunc func([]byte) (int, error)

func (f writerFunc) Write(p []byte) (int, error) { return f(p) }

// bodyVendor answers every GET with status and body.
func bodyVendor(t *testing.T, status int, body []byte) string {
	t.Helper()
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(status)
		w.Write(body)
	}))
	t.Cleanup(srv.Close)
	return srv.URL
}

// Outcomes of exports from vendors that all have an access API.
func TestExportOutcome(t *testing.T) {
	row := []byte(`{"id": 1}`)
	tests := []struct {
		name    string
		vendors map[string]string // name -> base
		outcome connector.Outcome
		counts  map[string]int64
	}{
		{"all 404", map[string]string{"a": statusVendor(t, 404), "b": statusVendor(t, 404)}, connector.NotFound, nil},
		{"empty array", map[string]string{"a": bodyVendor(t, 200, []byte(`[]`)), "b": statusVendor(t, 404)}, connector.NotFound, nil},
		{"empty records", map[string]string{"a": bodyVendor(t, 200, []byte(`{"records": [], "count": 0}`))}, connector.NotFound, nil},
		{"empty object", map[string]string{"a": bodyVendor(t, 200, []byte(`{}`))}, connector.NotFound, nil},
		{"one holds", map[string]string{"a": bodyVendor(t, 200, row), "b": statusVendor(t, 404)}, connector.Exported, map[string]int64{"a": 1}},
		{"both hold", map[string]string{"a": bodyVendor(t, 200, row), "b": bodyVendor(t, 200, []byte(`[{"x": 1}, {"x": 2}]`))},
			connector.Exported, map[string]int64{"a": 1, "b": 2}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var vs []Vendor
			vars := map[string]string{}
			for name, base := range tt.vendors {
				vs = append(vs, Vendor{Name: name, Delete: Request{URL: "{" + name + "}/p/{email}"}, Access: Request{URL: "{" + name + "}/p/{email}"}})
				vars[name] = base
			}
			sys := open(t, Config{Vendors: vs, Vars: vars})
			res, err := sys.Export(context.Background(), exportTask(person(1), "req_o"))
			if err != nil || res.Outcome != tt.outcome {
				t.Fatalf("= %q, %v; want %q", res.Outcome, err, tt.outcome)
			}
			if len(res.Counts) != len(tt.counts) || (tt.counts != nil && !reflect.DeepEqual(res.Counts, tt.counts)) {
				t.Fatalf("counts = %v, want %v", res.Counts, tt.counts)
			}
			if tt.outcome == connector.NotFound && len(res.Export) != 0 {
				t.Fatalf("not found with records %s", res.Export)
			}
		})
	}
}

// timeoutFor is a vendor call's timeout in tests: short for the vendor
// that never answers (slow), time enough for the others, 8 MiB answers
// among them, on a loaded machine.
func timeoutFor(base, slow string) time.Duration {
	if base == slow {
		return 200 * time.Millisecond
	}
	return 10 * time.Second
}

// A vendor that fails: retryable or not, and never the person's email nor
// the vendor's answer in the error.
func TestExportVendorFailures(t *testing.T) {
	subj := person(7)
	const marker = "SECRET-ANSWER"
	pad := func(n int) []byte { // a JSON array of one row, n bytes long
		head, tail := `[{"email": "`+subj.Email+`", "note": "`+marker, `"}]`
		return []byte(head + strings.Repeat("x", n-len(head)-len(tail)) + tail)
	}
	release := make(chan struct{})
	slow := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		select {
		case <-r.Context().Done():
		case <-release:
		}
	}))
	t.Cleanup(func() { close(release); slow.Close() })
	tests := []struct {
		name      string
		base      string
		retryable bool
		want      string // in the error
	}{
		{"503", statusVendor(t, 503), true, "status 503"},
		{"500 with a body", bodyVendor(t, 500, pad(200)), true, "status 500"},
		{"timeout", slow.URL, true, "deadline"},
		{"over 8 MiB", bodyVendor(t, 200, pad(maxBody+1)), false, "over 8388608 bytes"},
		{"not JSON", bodyVendor(t, 200, []byte(subj.Email+" "+marker)), false, "not JSON"},
		{"a JSON string", bodyVendor(t, 200, []byte(`"`+subj.Email+marker+`"`)), false, "JSON string"},
		{"rows not objects", bodyVendor(t, 200, []byte(`["`+subj.Email+`", "`+marker+`"]`)), false, "record 1"},
		{"null row", bodyVendor(t, 200, []byte(`[{"a": 1}, null]`)), false, "record 2"},
		{"data after the JSON", bodyVendor(t, 200, []byte(`{"a": "`+marker+`"} {"b": 2}`)), false, "after"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			sys := open(t, Config{Vendors: []Vendor{{Name: "v", Delete: Request{URL: "{base}/p/{email}"}, Access: Request{URL: "{base}/p/{email}"}}},
				Vars: map[string]string{"base": tt.base}, Timeout: timeoutFor(tt.base, slow.URL)})
			_, err := sys.Export(context.Background(), exportTask(subj, "req_f"))
			if err == nil {
				t.Fatal("no error")
			}
			if connector.IsRetryable(err) != tt.retryable {
				t.Errorf("retryable = %v, want %v: %v", connector.IsRetryable(err), tt.retryable, err)
			}
			msg := err.Error()
			if !strings.Contains(msg, tt.want) || !strings.Contains(msg, "vendor v") || !strings.Contains(msg, "{email}") {
				t.Errorf("error %q does not say %q of which vendor and call", msg, tt.want)
			}
			if strings.Contains(strings.ToLower(msg), subj.Email) || strings.Contains(msg, "person-0007") || strings.Contains(msg, marker) {
				t.Errorf("error holds the person or the answer: %s", msg)
			}
		})
	}
	// Up to the bound is fine.
	sys := open(t, Config{Vendors: []Vendor{{Name: "v", Delete: Request{URL: "{base}/p/{email}"}, Access: Request{URL: "{base}/p/{email}"}}},
		Vars: map[string]string{"base": bodyVendor(t, 200, pad(maxBody))}})
	if res, err := sys.Export(context.Background(), exportTask(subj, "req_f")); err != nil || res.Counts["v"] != 1 {
		t.Fatalf("answer of exactly %d bytes: %v, %v", maxBody, res.Counts, err)
	}
}

// One vendor failing fails the export even if others answered, and a
// retry after it recovers gives everything, the vendor without an access
// API notified once.
func TestExportRetry(t *testing.T) {
	sys, vendors := demo(t, 20)
	vendors.FailNext(standin.ErrorTracking, 1)
	tk := exportTask(person(2), "req_r")
	_, err := sys.Export(context.Background(), tk)
	if err == nil || !connector.IsRetryable(err) || !strings.Contains(err.Error(), "error_tracking") {
		t.Fatalf("err = %v, want retryable, naming error_tracking", err)
	}
	res, err := sys.Export(context.Background(), tk)
	if err != nil || res.Outcome != connector.Exported || len(res.Counts) != 3 {
		t.Fatalf("retry = %+v, %v", res, err)
	}
	if n := len(vendors.Notifications(standin.Captioning)); n != 1 {
		t.Fatalf("captioning notified %d times", n)
	}
}

func TestParseRows(t *testing.T) {
	tests := []struct {
		body string
		want string // the rows as JSON, or "error"
	}{
		{`{"a": 1, "b": "x"}`, `[{"a":1,"b":"x"}]`},
		{`[{"a": 1}, {"a": 2}]`, `[{"a":1},{"a":2}]`},
		{`{"records": [{"a": 1}], "count": 1, "next": null}`, `[{"a":1}]`},
		{`{"records": "not an array", "a": 1}`, `[{"a":1,"records":"not an array"}]`},
		{`{"nested": {"b": [1, 2]}, "n": null}`, `[{"n":null,"nested":{"b":[1,2]}}]`},
		{`{"id": 123456789012345678901234567890}`, `[{"id":123456789012345678901234567890}]`},
		{` [] `, `[]`},
		{`{}`, `[]`},
		{`{"records": []}`, `[]`},
		{``, "error"},
		{`null`, "error"},
		{`"x"`, "error"},
		{`12`, "error"},
		{`[1]`, "error"},
		{`[{}, []]`, "error"},
		{`{"records": [1]}`, "error"},
		{`{"a": 1}{"b": 2}`, "error"},
		{`{"a": `, "error"},
	}
	for _, tt := range tests {
		rows, err := parseRows([]byte(tt.body))
		if tt.want == "error" {
			if err == nil {
				t.Errorf("%q: rows %v, want an error", tt.body, rows)
			}
			continue
		}
		if err != nil {
			t.Errorf("%q: %v", tt.body, err)
			continue
		}
		if rows == nil {
			rows = []map[string]any{}
		}
		got, _ := json.Marshal(rows)
		if string(got) != tt.want {
			t.Errorf("%q: rows %s, want %s", tt.body, got, tt.want)
		}
	}
}
