package subprocessors

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/lethe-dev/lethe/pkg/connector"
	"github.com/lethe-dev/lethe/pkg/connector/connectortest"
	"github.com/lethe-dev/lethe/services/subprocessors/standin"
)

const token = "test-token"

func person(i int) connector.Subject {
	return connector.Subject{Email: fmt.Sprintf("person-%04d@example.com", i), UserID: fmt.Sprintf("user-%04d", i)}
}

func task(s connector.Subject, id string) connector.Task {
	return connector.Task{RequestID: id, TaskID: id + "." + Name, Tenant: "demo", Subject: s, Attempt: 1}
}

// open opens the connector on a fresh data directory with cfg, the secrets
// being token unless cfg says otherwise.
func open(t *testing.T, cfg Config) *System {
	t.Helper()
	if cfg.Getenv == nil {
		cfg.Getenv = func(string) string { return token }
	}
	s, err := Open(context.Background(), connector.Env{DataDir: t.TempDir()}, cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

// demo starts the stand-in vendors and a connector configured with the demo
// vendors file pointing at them.
func demo(t *testing.T, people int) (*System, *standin.Server) {
	t.Helper()
	vendors := standin.New(people, token)
	srv := httptest.NewServer(vendors)
	t.Cleanup(srv.Close)
	return open(t, Config{VendorsYAML: DemoVendors, Vars: map[string]string{"base": srv.URL}}), vendors
}

// accessVendors are the demo's vendors that have an access API.
func accessVendors(t *testing.T) []Vendor {
	t.Helper()
	vs, err := ParseVendors(DemoVendors)
	if err != nil {
		t.Fatal(err)
	}
	var out []Vendor
	for _, v := range vs {
		if v.Access.URL != "" {
			out = append(out, v)
		}
	}
	if len(out) == 0 || len(out) == len(vs) {
		t.Fatalf("the demo has %d vendors, %d with an access API: want some of each", len(vs), len(out))
	}
	return out
}

// The suite's absent subject must export as not_found, which a connector
// with a vendor it cannot ask never answers: that vendor is listed in every
// export (see TestExportDemo). So the suite runs on the demo's vendors with
// an access API, and counts what remains at those.
func TestConformance(t *testing.T) {
	connectortest.Run(t, func(t *testing.T) connectortest.Fixture {
		vendors := standin.New(20, token)
		srv := httptest.NewServer(vendors)
		t.Cleanup(srv.Close)
		vs := accessVendors(t)
		sys := open(t, Config{Vendors: vs, Vars: map[string]string{"base": srv.URL}})
		return connectortest.Fixture{
			System:  sys,
			Present: person(1),
			Absent:  person(14), // seeded, but no vendor holds them
			Remaining: func(_ context.Context, s connector.Subject) (int64, error) {
				var n int64
				for _, v := range vs {
					if vendors.Holds(v.Name, s.Email) {
						n++
					}
				}
				return n, nil
			},
		}
	})
}

func TestEraseCountsEachVendor(t *testing.T) {
	sys, vendors := demo(t, 20)
	tests := []struct {
		who  int
		want []string
	}{
		{3, []string{standin.Enrichment, standin.SupportDesk, standin.ErrorTracking, standin.Captioning}},
		{15, []string{standin.Enrichment, standin.SupportDesk}},
		{17, []string{standin.Enrichment, standin.ErrorTracking, standin.Captioning}},
		{18, []string{standin.SupportDesk}},
	}
	for _, tt := range tests {
		res, err := sys.Erase(context.Background(), task(person(tt.who), fmt.Sprint("r", tt.who)))
		if err != nil {
			t.Fatal(err)
		}
		if res.Outcome != connector.Erased || len(res.Counts) != len(tt.want) || res.Remaining != 0 {
			t.Fatalf("person %d: %+v, want erased by %v", tt.who, res, tt.want)
		}
		for _, v := range tt.want {
			if res.Counts[v] != 1 {
				t.Errorf("person %d: counts %v, want %s", tt.who, res.Counts, v)
			}
		}
		for _, v := range vendors.Vendors() {
			if vendors.Holds(v, person(tt.who).Email) {
				t.Errorf("person %d: %s still holds the subject", tt.who, v)
			}
		}
	}
}

// A vendor answering 503 twice: the first two erasures are retryable
// failures, the vendors that confirmed are not called again, the third
// erasure completes.
func TestRetryCallsOnlyVendorsNotYetConfirmed(t *testing.T) {
	ctx := context.Background()
	sys, vendors := demo(t, 20)
	vendors.FailNext(standin.SupportDesk, 2)
	tk := task(person(2), "r3")
	for attempt := 1; attempt <= 2; attempt++ {
		_, err := sys.Erase(ctx, tk)
		if err == nil || !connector.IsRetryable(err) {
			t.Fatalf("attempt %d: err = %v, want retryable", attempt, err)
		}
		if !strings.Contains(err.Error(), "support_desk") || !strings.Contains(err.Error(), "503") {
			t.Fatalf("attempt %d: error does not say which vendor failed how: %v", attempt, err)
		}
	}
	res, err := sys.Erase(ctx, tk)
	if err != nil {
		t.Fatalf("third attempt: %v", err)
	}
	if res.Outcome != connector.Erased || len(res.Counts) != 4 || res.Remaining != 0 {
		t.Fatalf("third attempt = %+v, want erased by all four vendors", res)
	}
	got := map[string]int{}
	for _, v := range vendors.Vendors() {
		got[v] = vendors.Deletions(v)
	}
	want := map[string]int{standin.Enrichment: 1, standin.ErrorTracking: 1, standin.Captioning: 1, standin.SupportDesk: 3}
	for v, n := range want {
		if got[v] != n {
			t.Errorf("%s got %d deletion calls, want %d", v, got[v], n)
		}
	}
	// The same task again: no call, the same answer.
	again, err := sys.Erase(ctx, tk)
	if err != nil || again.Outcome != connector.Erased || len(again.Counts) != 4 {
		t.Fatalf("repeat = %+v, %v", again, err)
	}
	for _, v := range vendors.Vendors() {
		if vendors.Deletions(v) != want[v] {
			t.Errorf("repeat called %s again", v)
		}
	}
}

func TestWrongTokenIsPermanent(t *testing.T) {
	vendors := standin.New(20, token)
	srv := httptest.NewServer(vendors)
	defer srv.Close()
	sys := open(t, Config{VendorsYAML: DemoVendors, Vars: map[string]string{"base": srv.URL},
		Getenv: func(string) string { return "wrong-token" }})
	_, err := sys.Erase(context.Background(), task(person(1), "r4"))
	if err == nil || connector.IsRetryable(err) {
		t.Fatalf("err = %v, want a permanent error", err)
	}
	if !strings.Contains(err.Error(), "401") {
		t.Fatalf("error does not give the status: %v", err)
	}
	if !vendors.Holds(standin.Enrichment, person(1).Email) {
		t.Fatal("vendor deleted without credentials")
	}
}

// statusVendor is a vendor answering every call with status.
func statusVendor(t *testing.T, status int) string {
	t.Helper()
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.WriteHeader(status)
	}))
	t.Cleanup(srv.Close)
	return srv.URL
}

func TestStatusClassification(t *testing.T) {
	tests := []struct {
		status    int
		outcome   connector.Outcome // when no error
		retryable bool              // when an error
	}{
		{http.StatusOK, connector.Erased, false},
		{http.StatusAccepted, connector.Erased, false},
		{http.StatusNoContent, connector.Erased, false},
		{http.StatusNotFound, connector.NotFound, false},
		{http.StatusTooManyRequests, "", true},
		{http.StatusInternalServerError, "", true},
		{http.StatusBadGateway, "", true},
		{http.StatusServiceUnavailable, "", true},
		{http.StatusBadRequest, "", false},
		{http.StatusForbidden, "", false},
		{http.StatusConflict, "", false},
		{http.StatusMovedPermanently, "", false}, // no Location: not followed
	}
	for _, tt := range tests {
		t.Run(http.StatusText(tt.status), func(t *testing.T) {
			sys := open(t, Config{Vendors: []Vendor{{Name: "v", Delete: Request{URL: "{base}/people/{email}"}}},
				Vars: map[string]string{"base": statusVendor(t, tt.status)}})
			res, err := sys.Erase(context.Background(), task(person(1), "r5"))
			if tt.outcome != "" {
				if err != nil || res.Outcome != tt.outcome {
					t.Fatalf("= %q, %v; want %q", res.Outcome, err, tt.outcome)
				}
				return
			}
			if err == nil || connector.IsRetryable(err) != tt.retryable {
				t.Fatalf("err = %v, retryable %v; want an error, retryable %v", err, connector.IsRetryable(err), tt.retryable)
			}
		})
	}
}

// One permanent failure makes the task's error permanent, even if another
// vendor's failure was retryable.
func TestPermanentFailureWins(t *testing.T) {
	sys := open(t, Config{Vendors: []Vendor{
		{Name: "busy", Delete: Request{URL: "{busy}/p/{email}"}},
		{Name: "broken", Delete: Request{URL: "{broken}/p/{email}"}},
	}, Vars: map[string]string{"busy": statusVendor(t, 503), "broken": statusVendor(t, 400)}})
	_, err := sys.Erase(context.Background(), task(person(1), "r6"))
	if err == nil || connector.IsRetryable(err) {
		t.Fatalf("err = %v, want permanent", err)
	}
	if !strings.Contains(err.Error(), "busy") || !strings.Contains(err.Error(), "broken") {
		t.Fatalf("error does not name both vendors: %v", err)
	}
}

func TestErrorsHoldNoSubjectIdentifier(t *testing.T) {
	subj := connector.Subject{Email: "Jane.O'Brien+news@Example.com", UserID: "user-secret-4242"}
	forbidden := []string{
		strings.ToLower(subj.Email), "jane.o", url.QueryEscape(strings.ToLower(subj.Email)),
		url.PathEscape(strings.ToLower(subj.Email)), subj.UserID,
	}
	closed := httptest.NewServer(http.NotFoundHandler())
	closed.Close() // connection refused from now on
	var slowOnce sync.Once
	release := make(chan struct{})
	slow := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		select {
		case <-r.Context().Done():
		case <-release:
		}
	}))
	t.Cleanup(func() { slowOnce.Do(func() { close(release) }); slow.Close() })

	tests := []struct {
		name      string
		base      string
		getenv    func(string) string
		subj      connector.Subject
		retryable bool
	}{
		{"503", statusVendor(t, 503), nil, subj, true},
		{"401", "", func(string) string { return "wrong" }, subj, false},
		{"403", statusVendor(t, 403), nil, subj, false},
		{"connection refused", closed.URL, nil, subj, true},
		{"timeout", slow.URL, nil, subj, true},
		{"task without the user id a template needs", statusVendor(t, 200), nil, connector.Subject{Email: subj.Email}, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			base := tt.base
			if base == "" {
				srv := httptest.NewServer(standin.New(5, token))
				t.Cleanup(srv.Close)
				base = srv.URL + "/enrichment/v1"
			}
			sys := open(t, Config{
				Vendors: []Vendor{{
					Name:   "v",
					Delete: Request{Method: "DELETE", URL: "{base}/people/{email}?uid={user_id}", Body: `{"email": "{email}", "id": "{user_id}"}`},
					Access: Request{URL: "{base}/people/{email}"},
					Auth:   Auth{Header: "Authorization", Scheme: "Bearer", Env: "TOKEN"},
				}},
				Vars: map[string]string{"base": base}, Getenv: tt.getenv, Timeout: timeoutFor(tt.base, slow.URL),
			})
			for _, op := range []func(context.Context, connector.Task) (connector.Result, error){sys.Erase, sys.Export} {
				_, err := op(context.Background(), task(tt.subj, "r7"))
				if tt.name == "task without the user id a template needs" && err == nil {
					continue // export's template needs no user id
				}
				if err == nil {
					t.Fatal("no error")
				}
				if connector.IsRetryable(err) != tt.retryable {
					t.Errorf("retryable = %v, want %v: %v", !tt.retryable, tt.retryable, err)
				}
				msg := strings.ToLower(err.Error())
				for _, f := range forbidden {
					if strings.Contains(msg, strings.ToLower(f)) {
						t.Fatalf("error holds the subject (%q): %s", f, err)
					}
				}
				if !strings.Contains(msg, "vendor v") || !strings.Contains(msg, "{email}") {
					t.Errorf("error does not say which vendor and call: %s", err)
				}
			}
		})
	}
}

func TestMissingIdentifierIsNotSent(t *testing.T) {
	var calls int
	var mu sync.Mutex
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		calls++
		mu.Unlock()
		w.WriteHeader(http.StatusNotFound)
	}))
	defer srv.Close()
	sys := open(t, Config{Vendors: []Vendor{{Name: "v", Delete: Request{URL: "{base}/people/{email}"}}},
		Vars: map[string]string{"base": srv.URL}})
	_, err := sys.Erase(context.Background(), task(connector.Subject{UserID: "user-0001"}, "r8"))
	if err == nil || connector.IsRetryable(err) {
		t.Fatalf("err = %v, want permanent", err)
	}
	if calls != 0 {
		t.Fatalf("vendor called %d times with an empty email (a 404 would read as 'holds nothing')", calls)
	}
}

// The request a vendor receives: method, escaped URL, JSON body, auth header.
func TestRequestRendering(t *testing.T) {
	type seen struct {
		method, path, query, auth, ctype string
		body                             map[string]string
	}
	got := make(chan seen, 1)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		s := seen{method: r.Method, path: r.URL.Path, query: r.URL.Query().Get("tenant"), auth: r.Header.Get("X-Key"), ctype: r.Header.Get("Content-Type")}
		b, _ := io.ReadAll(r.Body)
		if err := json.Unmarshal(b, &s.body); err != nil {
			t.Errorf("body %q is not JSON: %v", b, err)
		}
		got <- s
		w.WriteHeader(http.StatusAccepted)
	}))
	defer srv.Close()
	sys := open(t, Config{Vendors: []Vendor{{
		Name:   "v",
		Delete: Request{Method: "post", URL: "{base}/u/{user_id}/erase?tenant={tenant}", Body: `{"email": "{email}", "note": "x"}`},
		Auth:   Auth{Header: "X-Key", Env: "K"},
	}}, Vars: map[string]string{"base": srv.URL}, Getenv: func(k string) string { return "secret-" + k }})
	subj := connector.Subject{Email: ` A"b+c&d@Example.com `, UserID: "u/1 2"}
	tk := task(subj, "r9")
	tk.Tenant = "t&x"
	if _, err := sys.Erase(context.Background(), tk); err != nil {
		t.Fatal(err)
	}
	s := <-got
	want := seen{method: "POST", path: "/u/u/1 2/erase", query: "t&x", auth: "secret-K", ctype: "application/json",
		body: map[string]string{"email": `a"b+c&d@example.com`, "note": "x"}}
	if s.method != want.method || s.path != want.path || s.query != want.query || s.auth != want.auth ||
		s.ctype != want.ctype || s.body["email"] != want.body["email"] || s.body["note"] != want.body["note"] {
		t.Fatalf("vendor saw %+v, want %+v", s, want)
	}
}

func TestSeedIsNoOp(t *testing.T) {
	sys, vendors := demo(t, 5)
	if err := sys.Seed(context.Background(), 300); err != nil {
		t.Fatal(err)
	}
	if vendors.Holds(standin.Enrichment, person(299).Email) {
		t.Fatal("seeding the connector changed a vendor")
	}
}

// withAccess is a vendors file of one vendor "a" with an access API and the
// given extra line.
func withAccess(line string) string {
	return "vendors:\n  - name: a\n    delete: {url: \"{base}/p/{email}\"}\n    access: {url: \"{base}/p/{email}\"}\n    " + line + "\n"
}

func TestConfigValidation(t *testing.T) {
	ok := "  - name: good\n    delete: {url: \"{base}/p/{email}\"}\n"
	tests := []struct {
		name string
		yaml string
		want []string // all in the error
	}{
		{"no vendors", "vendors: []\n", []string{"no vendors"}},
		{"unknown key", "vendors:\n  - name: a\n    delete: {url: \"{base}/p/{email}\"}\n    delete_url: x\n", []string{"delete_url"}},
		{"no name", "vendors:\n" + ok + "  - delete: {url: \"{base}/x\"}\n", []string{"vendor #2", "no name"}},
		{"bad name", "vendors:\n  - name: Big Vendor\n    delete: {url: \"{base}/x\"}\n", []string{`"Big Vendor"`, "name"}},
		{"duplicate", "vendors:\n" + ok + ok, []string{`"good"`, "twice"}},
		{"no url", "vendors:\n  - name: a\n    delete: {method: DELETE}\n", []string{`"a"`, "delete.url"}},
		{"bad method", "vendors:\n  - name: a\n    delete: {method: PATCH, url: \"{base}/x\"}\n", []string{`"a"`, "PATCH"}},
		{"unknown variable", "vendors:\n  - name: a\n    delete: {url: \"{base}/p/{mail}\"}\n", []string{`"a"`, "{mail}"}},
		{"relative url", "vendors:\n  - name: a\n    delete: {url: \"/p/{email}\"}\n", []string{`"a"`, "absolute"}},
		{"body not json", "vendors:\n  - name: a\n    delete: {method: POST, url: \"{base}/x\", body: '{\"email\": {email}}'}\n", []string{`"a"`, "JSON"}},
		{"access not GET", "vendors:\n  - name: a\n    delete: {url: \"{base}/x\"}\n    access: {method: POST, url: \"{base}/x\"}\n", []string{`"a"`, "access"}},
		{"auth without env", "vendors:\n  - name: a\n    delete: {url: \"{base}/x\"}\n    auth: {header: X-Key}\n", []string{`"a"`, "env"}},
		{"secret unset", "vendors:\n  - name: a\n    delete: {url: \"{base}/x\"}\n    auth: {header: X-Key, env: UNSET_VAR}\n", []string{`"a"`, "UNSET_VAR", "empty"}},
		{"access without url", "vendors:\n  - name: a\n    delete: {url: \"{base}/x\"}\n    access: {method: GET}\n", []string{`"a"`, "access.url"}},
		{"data_category capitals", withAccess("data_category: Billing"), []string{`"a"`, `"Billing"`, "snake_case"}},
		{"data_category dash", withAccess("data_category: sub-processors"), []string{`"a"`, `"sub-processors"`, "snake_case"}},
		{"data_category digit first", withAccess("data_category: 2fa"), []string{`"a"`, `"2fa"`, "snake_case"}},
		{"data_category space", withAccess("data_category: \"billing data\""), []string{`"a"`, `"billing data"`, "snake_case"}},
		{"data_category without access", "vendors:\n  - name: a\n    delete: {url: \"{base}/x\"}\n    data_category: billing\n", []string{`"a"`, "data_category", "access"}},
		{"notify with access", withAccess("notify: {url: \"{base}/n\"}"), []string{`"a"`, "notify", "access API"}},
		{"notify bad method", "vendors:\n  - name: a\n    delete: {url: \"{base}/x\"}\n    notify: {method: DELETE, url: \"{base}/n\"}\n", []string{`"a"`, "notify.method", "DELETE"}},
		{"notify without url", "vendors:\n  - name: a\n    delete: {url: \"{base}/x\"}\n    notify: {body: '{}'}\n", []string{`"a"`, "notify.url"}},
		{"notify unknown variable", "vendors:\n  - name: a\n    delete: {url: \"{base}/x\"}\n    notify: {url: \"{base}/n\", body: '{\"id\": \"{request}\"}'}\n", []string{`"a"`, "notify", "{request}"}},
		{"notify body not json", "vendors:\n  - name: a\n    delete: {url: \"{base}/x\"}\n    notify: {url: \"{base}/n\", body: '{\"email\": {email}}'}\n", []string{`"a"`, "notify", "JSON"}},
		{"reserved name", "vendors:\n  - name: vendors_without_export\n    delete: {url: \"{base}/x\"}\n", []string{`"vendors_without_export"`, "name"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := Open(context.Background(), connector.Env{DataDir: t.TempDir()}, Config{
				VendorsYAML: []byte(tt.yaml), Vars: map[string]string{"base": "http://127.0.0.1:1"},
				Getenv: func(k string) string {
					if k == "UNSET_VAR" {
						return ""
					}
					return token
				},
			})
			if err == nil {
				t.Fatal("accepted")
			}
			for _, w := range tt.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q does not mention %q", err, w)
				}
			}
		})
	}
	// The demo file is valid, with {base} given.
	if _, err := LoadConfig("", map[string]string{"base": "http://127.0.0.1:8090"}); err != nil {
		t.Fatal(err)
	}
	cfg, _ := LoadConfig("", map[string]string{"base": "http://127.0.0.1:8090"})
	if _, err := Open(context.Background(), connector.Env{DataDir: t.TempDir()}, cfg); err != nil {
		t.Fatalf("demo config: %v", err)
	}
	if _, err := Open(context.Background(), connector.Env{DataDir: t.TempDir()}, Config{VendorsYAML: DemoVendors}); err == nil || !strings.Contains(err.Error(), "{base}") {
		t.Fatalf("demo file without {base}: %v", err)
	}
	// The task's values are not the caller's to give.
	for _, k := range []string{"email", "request_id", "deadline"} {
		_, err := Open(context.Background(), connector.Env{DataDir: t.TempDir()}, Config{VendorsYAML: DemoVendors,
			Vars: map[string]string{"base": "http://127.0.0.1:1", k: "x"}, Getenv: func(string) string { return token }})
		if err == nil || !strings.Contains(err.Error(), "{"+k+"}") {
			t.Errorf("caller's variable {%s}: %v", k, err)
		}
	}
}

// Defaults: a vendor's data category, the notify method.
func TestConfigDefaults(t *testing.T) {
	sys := open(t, Config{VendorsYAML: []byte(`vendors:
  - name: filed
    delete: {url: "{base}/p/{email}"}
    access: {url: "{base}/p/{email}"}
    data_category: engagement
  - name: unfiled
    delete: {url: "{base}/p/{email}"}
    access: {url: "{base}/p/{email}"}
  - name: told
    delete: {url: "{base}/p/{email}"}
    notify: {url: "{base}/requests/{request_id}", body: '{"email": "{email}", "due": "{deadline}"}'}
  - name: told_by_put
    delete: {url: "{base}/p/{email}"}
    notify: {method: put, url: "{base}/requests/{request_id}"}
`), Vars: map[string]string{"base": "http://127.0.0.1:1"}})
	want := []struct{ category, notify string }{{"engagement", ""}, {DefaultDataCategory, ""}, {"", "POST"}, {"", "PUT"}}
	for i, v := range sys.vendors {
		if v.Access.URL != "" && v.DataCategory != want[i].category {
			t.Errorf("%s: data category %q, want %q", v.Name, v.DataCategory, want[i].category)
		}
		if v.Notify.Method != want[i].notify {
			t.Errorf("%s: notify method %q, want %q", v.Name, v.Notify.Method, want[i].notify)
		}
	}
}

// errors.Is still sees a cancelled context through the connector's errors.
func TestCancelledContext(t *testing.T) {
	sys, _ := demo(t, 5)
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if _, err := sys.Erase(ctx, task(person(1), "c1")); !errors.Is(err, context.Canceled) {
		t.Fatalf("err = %v", err)
	}
}

// Erasures run side by side, as a connector's handlers run them, reuse
// their connections to the vendors instead of opening one per call.
func TestConcurrentErasuresReuseConnections(t *testing.T) {
	const people, handlers = 300, callsAtOnce
	vendors := standin.New(people, token)
	srv := httptest.NewUnstartedServer(vendors)
	var opened atomic.Int64
	srv.Config.ConnState = func(_ net.Conn, s http.ConnState) {
		if s == http.StateNew {
			opened.Add(1)
		}
	}
	srv.Start()
	t.Cleanup(srv.Close)
	sys := open(t, Config{VendorsYAML: DemoVendors, Vars: map[string]string{"base": srv.URL}})
	var next atomic.Int64
	var wg sync.WaitGroup
	for range handlers {
		wg.Go(func() {
			for i := int(next.Add(1)); i <= people; i = int(next.Add(1)) {
				if _, err := sys.Erase(context.Background(), task(person(i), fmt.Sprint("r", i))); err != nil {
					t.Error(err)
					return
				}
			}
		})
	}
	wg.Wait()
	// One connection per handler, and a few more where a call dialled
	// just before another's connection came back.
	if n := opened.Load(); n > 2*handlers {
		t.Errorf("%d erasures from %d handlers opened %d connections to the vendors, want at most %d", people, handlers, n, 2*handlers)
	}
}
