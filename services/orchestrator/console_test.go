package orchestrator

import (
	"context"
	"io"
	"net/http"
	"net/http/cookiejar"
	"net/url"
	"regexp"
	"strings"
	"testing"

	"github.com/lethe-dev/lethe/pkg/deadline"
	"github.com/lethe-dev/lethe/services/orchestrator/auth"
)

// The console (/console/): its pages and forms over plain HTTP here; in a
// real browser in console_browser_test.go.

// consoleClient is a browser-like HTTP client: a cookie jar, redirects
// not followed, so that each answer is seen as it came.
type consoleClient struct {
	t    *testing.T
	base string
	c    *http.Client
	csrf string
}

func (e *env) consoleClient() *consoleClient {
	jar, _ := cookiejar.New(nil)
	return &consoleClient{t: e.t, base: e.api, c: &http.Client{Jar: jar, CheckRedirect: func(*http.Request, []*http.Request) error {
		return http.ErrUseLastResponse
	}}}
}

type page struct {
	status int
	header http.Header
	body   string
}

func (c *consoleClient) do(method, path string, form url.Values, headers ...string) page {
	c.t.Helper()
	var body io.Reader
	if form != nil {
		body = strings.NewReader(form.Encode())
	}
	req, _ := http.NewRequest(method, c.base+path, body)
	if form != nil {
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	}
	for i := 0; i+1 < len(headers); i += 2 {
		req.Header.Set(headers[i], headers[i+1])
	}
	resp, err := c.c.Do(req)
	if err != nil {
		c.t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	p := page{status: resp.StatusCode, header: resp.Header, body: string(b)}
	if m := csrfField.FindStringSubmatch(p.body); m != nil {
		c.csrf = m[1]
	}
	return p
}

var csrfField = regexp.MustCompile(`name="csrf" value="([^"]+)"`)

func (c *consoleClient) get(path string) page { c.t.Helper(); return c.do("GET", path, nil) }

// post sends a form with the session's CSRF token.
func (c *consoleClient) post(path string, form url.Values) page {
	c.t.Helper()
	if form == nil {
		form = url.Values{}
	}
	form.Set("csrf", c.csrf)
	return c.do("POST", path, form)
}

// signIn signs in with token and reads a page for its CSRF token.
func (c *consoleClient) signIn(token string) {
	c.t.Helper()
	p := c.do("POST", "/console/login", url.Values{"token": {token}})
	if p.status != http.StatusSeeOther || p.header.Get("Location") != "/console/" {
		c.t.Fatalf("sign in = %d %s: %.300s", p.status, p.header.Get("Location"), p.body)
	}
	if p := c.get("/console/"); p.status != http.StatusOK || c.csrf == "" {
		c.t.Fatalf("overview after sign-in = %d: %.300s", p.status, p.body)
	}
}

// signedOut reports whether GET path sends the client to the sign-in page.
func (c *consoleClient) signedOut(path string) bool {
	c.t.Helper()
	p := c.get(path)
	return p.status == http.StatusSeeOther && strings.HasPrefix(p.header.Get("Location"), "/console/login")
}

func (e *env) state(id string) string {
	e.t.Helper()
	r, _, err := e.store.Get(context.Background(), id)
	if err != nil {
		e.t.Fatal(err)
	}
	return string(r.State)
}

func demoTenants(t *testing.T) *deadline.Tenants {
	t.Helper()
	ts, err := deadline.ParseTenants([]byte("tenants:\n  demo:\n    time_zone: Europe/Paris\n"))
	if err != nil {
		t.Fatal(err)
	}
	return ts
}

func TestConsoleHandlers(t *testing.T) {
	e := newEnv(t, func(c *Config) { c.Deadlines = demoTenants(t) })
	e.connect("alpha", &toySystem{})
	e.connect("beta", &toySystem{})
	const email = "console-person-0042@example.com"

	// Headers, on every answer.
	anon := e.consoleClient()
	for _, path := range []string{"/console/login", "/console/static/console.css", "/console/static/htmx.min.js"} {
		p := anon.get(path)
		if p.status != http.StatusOK {
			t.Fatalf("GET %s = %d", path, p.status)
		}
		h := p.header
		if csp := h.Get("Content-Security-Policy"); !strings.Contains(csp, "default-src 'self'") || !strings.Contains(csp, "script-src 'self'") ||
			!strings.Contains(csp, "style-src 'self'") || strings.Contains(csp, "unsafe") {
			t.Errorf("%s: CSP %q", path, csp)
		}
		for k, v := range map[string]string{"X-Frame-Options": "DENY", "X-Content-Type-Options": "nosniff", "Referrer-Policy": "no-referrer"} {
			if h.Get(k) != v {
				t.Errorf("%s: %s = %q, want %q", path, k, h.Get(k), v)
			}
		}
	}
	login := anon.get("/console/login")
	if login.header.Get("Cache-Control") != "no-store" || !strings.Contains(login.body, `name="token"`) ||
		!strings.Contains(login.body, "The local default: paste the token in data/admin.token") {
		t.Errorf("login page: cache %q, body %.400s", login.header.Get("Cache-Control"), login.body)
	}
	if strings.Contains(login.body, "<script>") || strings.Contains(login.body, " onclick=") || strings.Contains(login.body, " style=") {
		t.Error("the login page has inline script or style")
	}
	if !anon.signedOut("/console/") || !anon.signedOut("/console/requests") {
		t.Error("a page without a session is not sent to the sign-in")
	}
	if p := anon.do("POST", "/console/login", url.Values{"token": {"lethe_nope"}}); p.status != http.StatusUnauthorized || !strings.Contains(p.body, "not valid") {
		t.Errorf("a bad token = %d", p.status)
	}

	// An admin files a request; forms without the CSRF token change nothing.
	admin := e.consoleClient()
	admin.signIn(e.token)
	if p := admin.get("/console/"); p.header.Get("Cache-Control") != "no-store" || !strings.Contains(p.body, "Overview") {
		t.Errorf("overview: %d %.300s", p.status, p.body)
	}
	p := admin.post("/console/requests/new", url.Values{"type": {"erasure"}, "tenant": {"demo"}, "email": {"not-an-email"}})
	if p.status != http.StatusBadRequest || !strings.Contains(p.body, "Email is not a valid email address") {
		t.Errorf("a bad email = %d %.200s", p.status, p.body)
	}
	p = admin.post("/console/requests/new", url.Values{"type": {"erasure"}, "tenant": {"demo"}, "email": {email}})
	loc := p.header.Get("Location")
	if p.status != http.StatusSeeOther || !strings.HasPrefix(loc, "/console/requests/req_") {
		t.Fatalf("file a request = %d %q %.300s", p.status, loc, p.body)
	}
	id := strings.TrimPrefix(loc, "/console/requests/")
	pending := admin.get(loc)
	if !strings.Contains(pending.body, `id="verify-form"`) || strings.Contains(pending.body, email) {
		t.Errorf("pending request page: verify form %v, email shown %v", strings.Contains(pending.body, `id="verify-form"`), strings.Contains(pending.body, email))
	}
	_, _, tokens0 := e.send(e.token, "GET", "/v1/tokens", "")
	actions := []string{
		"/console/logout", "/console/requests/lookup", "/console/requests/new",
		"/console/requests/" + id + "/verify", "/console/requests/" + id + "/deny", "/console/requests/" + id + "/extend",
		"/console/requests/" + id + "/tasks/beta/retry", "/console/requests/" + id + "/tasks/beta/resolve", "/console/requests/" + id + "/export-link",
		"/console/deadletters/retry", "/console/deadletters/replay", "/console/tokens", "/console/tokens/tok_x/revoke",
	}
	form := url.Values{"type": {"erasure"}, "tenant": {"demo"}, "email": {"other@example.com"}, "method": {"document"}, "reason": {"excessive"},
		"note": {"x"}, "system": {"beta"}, "sel": {id + "/beta"}, "name": {"forged"}, "role": {"admin"}, "q": {id}}
	for _, path := range actions {
		for name, f := range map[string]url.Values{"no token": form, "a wrong token": withCSRF(form, "forged-"+admin.csrf)} {
			if p := admin.do("POST", path, f); p.status != http.StatusForbidden {
				t.Errorf("POST %s with %s = %d, want 403", path, name, p.status)
			}
		}
		// From another site, even with the right token.
		if p := admin.do("POST", path, withCSRF(form, admin.csrf), "Sec-Fetch-Site", "cross-site"); p.status != http.StatusForbidden {
			t.Errorf("POST %s from another site = %d, want 403", path, p.status)
		}
	}
	if got := e.state(id); got != "pending_verification" {
		t.Errorf("after forged POSTs the request is %s", got)
	}
	if _, _, tokens1 := e.send(e.token, "GET", "/v1/tokens", ""); string(tokens0) != string(tokens1) {
		t.Error("forged POSTs changed the tokens")
	}
	if admin.signedOut("/console/") {
		t.Fatal("a forged logout signed the admin out")
	}

	// The lookup by email finds the request by its keyed hash, and shows
	// no address.
	p = admin.post("/console/requests/lookup", url.Values{"q": {strings.ToUpper(email)}})
	if p.status != http.StatusSeeOther || !strings.Contains(p.header.Get("Location"), "subject=") || strings.Contains(p.header.Get("Location"), "example") {
		t.Fatalf("lookup = %d %q", p.status, p.header.Get("Location"))
	}
	if list := admin.get(p.header.Get("Location")); !strings.Contains(list.body, id) || strings.Contains(strings.ToLower(list.body), email) {
		t.Errorf("lookup list: has id %v", strings.Contains(list.body, id))
	}

	// The list's filters: type, state, deadline window (a month away).
	for query, want := range map[string]bool{"?type=erasure": true, "?type=export": false, "?state=active&window=later": true,
		"?state=active&window=overdue": false, "?state=fulfilled": false, "?tenant=demo": true, "?tenant=other": false} {
		if p := admin.get("/console/requests" + query); p.status != http.StatusOK || strings.Contains(p.body, id) != want {
			t.Errorf("list %s = %d, shows the request %v, want %v", query, p.status, !want, want)
		}
	}
	if p := admin.get("/console/requests?state=bogus"); p.status != http.StatusBadRequest {
		t.Errorf("an unknown state = %d", p.status)
	}

	// Roles and tenants, as the API enforces them.
	auditor := e.consoleClient()
	auditor.signIn(e.newToken(e.store, "auditor", "demo", auth.Auditor))
	ap := auditor.get("/console/requests/" + id)
	if ap.status != http.StatusOK || strings.Contains(ap.body, "<form method=\"post\" action=\"/console/requests/"+id) {
		t.Errorf("auditor's request page = %d, with an action form", ap.status)
	}
	if p := auditor.post("/console/requests/"+id+"/verify", url.Values{"method": {"document"}}); p.status != http.StatusForbidden {
		t.Errorf("auditor's verify with a valid session and CSRF = %d, want 403", p.status)
	}
	if p := auditor.get("/console/tokens"); p.status != http.StatusForbidden {
		t.Errorf("auditor's tokens page = %d", p.status)
	}
	other := e.consoleClient()
	other.signIn(e.newToken(e.store, "other-dpo", "other", auth.DPO))
	if p := other.get("/console/requests/" + id); p.status != http.StatusNotFound {
		t.Errorf("another tenant's request page = %d, want 404", p.status)
	}
	if p := other.post("/console/requests/"+id+"/verify", url.Values{"method": {"document"}}); p.status != http.StatusNotFound {
		t.Errorf("another tenant's verify = %d, want 404", p.status)
	}
	if p := other.get("/console/requests?tenant=demo"); strings.Contains(p.body, id) {
		t.Error("another tenant's list shows the request")
	}
	intake := e.consoleClient()
	intake.signIn(e.newToken(e.store, "form", "demo", auth.Intake))
	if p := intake.get("/console/requests/" + id); p.status != http.StatusNotFound {
		t.Errorf("intake sees a request it did not file: %d", p.status)
	}
	if got := e.state(id); got != "pending_verification" {
		t.Errorf("after refused actions the request is %s", got)
	}

	// Verified through the console, it ends; then no page names the person.
	p = admin.post("/console/requests/"+id+"/verify", url.Values{"method": {"bogus"}})
	if p.status != http.StatusBadRequest || !strings.Contains(p.body, "Method must be one of") {
		t.Errorf("a bad method = %d", p.status)
	}
	if p := admin.post("/console/requests/"+id+"/verify", url.Values{"method": {"document"}, "note": {"passport seen"}}); p.status != http.StatusSeeOther {
		t.Fatalf("verify = %d %.300s", p.status, p.body)
	}
	e.waitState(id, "fulfilled")
	for _, path := range []string{"/console/", "/console/requests", "/console/requests/" + id, "/console/requests/" + id + "/live?v=x",
		"/console/requests/" + id + "/certificate", "/console/requests/" + id + "/certificate.json", "/console/deadletters"} {
		p := admin.get(path)
		if p.status != http.StatusOK {
			t.Errorf("GET %s = %d", path, p.status)
		}
		if strings.Contains(strings.ToLower(p.body), email) {
			t.Errorf("GET %s shows the subject's email after the request ended", path)
		}
	}
	if p := admin.get("/console/requests/" + id); !strings.Contains(p.body, "Certificate of fulfilment issued") || !strings.Contains(p.body, "passport seen") ||
		strings.Contains(p.body, "hx-trigger") {
		t.Errorf("ended request page: %.2000s", p.body)
	}
	e.logs.NoneOf(t, email)

	// A revoked token ends its sessions at the next request.
	var tokID string
	all, _ := e.store.Tokens(context.Background())
	for _, k := range all {
		if k.Name == "auditor" {
			tokID = k.ID
		}
	}
	if p := admin.post("/console/tokens/"+tokID+"/revoke", nil); p.status != http.StatusSeeOther {
		t.Fatalf("revoke = %d", p.status)
	}
	if p := auditor.get("/console/"); p.status != http.StatusSeeOther || p.header.Get("Location") != "/console/login?why=revoked" {
		t.Errorf("a revoked token's session: %d %q", p.status, p.header.Get("Location"))
	}
	// A token made here works at once; its secret is shown once.
	p = admin.post("/console/tokens", url.Values{"name": {"privacy-team"}, "role": {"dpo"}, "tenant": {"demo"}})
	m := regexp.MustCompile(`value="(lethe_[^"]+)"`).FindStringSubmatch(p.body)
	if p.status != http.StatusCreated || m == nil {
		t.Fatalf("create token = %d", p.status)
	}
	e.consoleClient().signIn(m[1])
	if p := admin.get("/console/tokens"); strings.Contains(p.body, m[1]) {
		t.Error("the token list shows a secret")
	}

	// Sign-out ends the session: the cookie no longer opens a page.
	if p := admin.post("/console/logout", nil); p.status != http.StatusSeeOther {
		t.Fatalf("logout = %d", p.status)
	}
	if !admin.signedOut("/console/") {
		t.Error("the session outlived its sign-out")
	}

	// Failed sign-ins are limited per address.
	codes := []int{}
	for range 7 {
		codes = append(codes, anon.do("POST", "/console/login", url.Values{"token": {"lethe_wrong"}}).status)
	}
	if codes[len(codes)-1] != http.StatusTooManyRequests {
		t.Errorf("failed sign-ins: %v, want 429 at the end", codes)
	}
}

func withCSRF(form url.Values, token string) url.Values {
	f := url.Values{}
	for k, v := range form {
		f[k] = v
	}
	f.Set("csrf", token)
	return f
}
