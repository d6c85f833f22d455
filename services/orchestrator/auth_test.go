package orchestrator

import (
	"bufio"
	"context"
	"crypto/tls"
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/lethe-dev/lethe/pkg/deadline"
	"github.com/lethe-dev/lethe/pkg/lifecycle"
	"github.com/lethe-dev/lethe/pkg/tlstest"
	"github.com/lethe-dev/lethe/services/orchestrator/auth"
	"github.com/lethe-dev/lethe/services/orchestrator/store"
)

// call makes one API call as token (none when ""), with extra headers;
// an answer that is not JSON reads as nil.
func (e *env) call(token, method, path, body string, headers ...string) (int, http.Header, map[string]any) {
	e.t.Helper()
	code, h, b := e.send(token, method, path, body, headers...)
	var out map[string]any
	json.Unmarshal(b, &out)
	return code, h, out
}

// snapshot is what a refused call must leave as it was: the requests,
// the tokens, and the state, deadline and log of the requests it named.
// (Other requests' logs grow by themselves: a notice delivered.)
type snapshot struct {
	requests int
	tokens   int
	states   string
}

func (e *env) snapshot(ids ...string) snapshot {
	e.t.Helper()
	ctx := context.Background()
	var s snapshot
	if err := e.store.Tx(ctx, func(tx store.Tx) error {
		for _, id := range ids {
			log, err := tx.RequestLog(ctx, id)
			if err != nil {
				return err
			}
			s.states += fmt.Sprintf("log %d;", len(log))
		}
		return nil
	}); err != nil {
		e.t.Fatal(err)
	}
	reqs, _, err := e.store.List(ctx, store.ListQuery{Limit: 1000})
	if err != nil {
		e.t.Fatal(err)
	}
	toks, err := e.store.Tokens(ctx)
	if err != nil {
		e.t.Fatal(err)
	}
	revoked := 0
	for _, k := range toks {
		if !k.RevokedAt.IsZero() {
			revoked++
		}
	}
	s.requests, s.tokens = len(reqs), len(toks)*1000+revoked
	for _, id := range ids {
		r, _, err := e.store.Get(ctx, id)
		if err != nil {
			e.t.Fatal(err)
		}
		s.states += string(r.State) + fmt.Sprint(r.Deadline.Unix()) + ";"
	}
	return s
}

// Every route, as every role, on its own tenant's request and another's,
// answers exactly; bad tokens are 401 everywhere; a refused call changes
// nothing.
func TestEveryRouteByRoleAndTenant(t *testing.T) {
	// No connector runs and no retry comes during the test: the store
	// changes only by the calls made.
	e := newEnv(t, func(c *Config) { c.RetryInitial, c.RetryMax = time.Hour, time.Hour })
	tokens := map[string]string{
		"admin":   e.token,
		"dpo":     e.newToken(e.store, "privacy-team", "demo", auth.DPO),
		"intake":  e.newToken(e.store, "web-form", "demo", auth.Intake),
		"auditor": e.newToken(e.store, "audit-firm", "demo", auth.Auditor),
	}
	// fresh files a pending request of tenant as the intake token of that
	// tenant (so that "own" is one the demo intake token submitted).
	intakeOther := e.newToken(e.store, "other-form", "other", auth.Intake)
	fresh := func(tenant string) string {
		tok := tokens["intake"]
		if tenant != "demo" {
			tok = intakeOther
		}
		code, _, out := e.call(tok, "POST", "/v1/requests", `{"type":"erasure","tenant":"`+tenant+`","subject":{"email":"`+subjectEmail+`"}}`)
		if code != http.StatusAccepted {
			t.Fatalf("file a request: %d %v", code, out)
		}
		return out["id"].(string)
	}
	spare := func() string {
		k, _, err := (&auth.Tokens{Store: e.store, Now: time.Now}).Create(context.Background(), "spare", "demo", auth.Auditor, time.Time{})
		if err != nil {
			t.Fatal(err)
		}
		return k.ID
	}
	// Expected codes: own tenant, other tenant, per role.
	type codes map[string][2]int
	all := func(own, other int) codes {
		return codes{"admin": {own, own}, "dpo": {own, other}, "intake": {own, other}, "auditor": {own, other}}
	}
	routes := []struct {
		method, path, body string // {id}, {tenant}, {token} are filled in
		want               codes
	}{
		{"POST", "/v1/requests", `{"type":"erasure","tenant":"{tenant}","subject":{"email":"` + subjectEmail + `"}}`,
			codes{"admin": {202, 202}, "dpo": {202, 403}, "intake": {202, 403}, "auditor": {403, 403}}},
		{"POST", "/v1/requests", `{"type":"erasure","tenant":"{tenant}","subject":{"email":"` + subjectEmail + `"},"verified":true}`,
			codes{"admin": {202, 202}, "dpo": {202, 403}, "intake": {403, 403}, "auditor": {403, 403}}},
		{"GET", "/v1/requests?tenant={tenant}", "", all(200, 403)},
		{"GET", "/v1/requests/{id}", "", all(200, 404)},
		{"POST", "/v1/requests/{id}/verify", `{"method":"document"}`, codes{"admin": {200, 200}, "dpo": {200, 404}, "intake": {403, 403}, "auditor": {403, 403}}},
		{"POST", "/v1/requests/{id}/deny", `{"reason":"excessive"}`, codes{"admin": {200, 200}, "dpo": {200, 404}, "intake": {403, 403}, "auditor": {403, 403}}},
		{"POST", "/v1/requests/{id}/extend", `{"reason":"volume"}`, codes{"admin": {200, 200}, "dpo": {200, 404}, "intake": {403, 403}, "auditor": {403, 403}}},
		{"GET", "/v1/requests/{id}/export", "", codes{"admin": {409, 409}, "dpo": {409, 404}, "intake": {403, 403}, "auditor": {403, 403}}},
		{"POST", "/v1/requests/{id}/tasks/alpha/retry", "", codes{"admin": {409, 409}, "dpo": {409, 404}, "intake": {403, 403}, "auditor": {403, 403}}},
		{"POST", "/v1/requests/{id}/tasks/alpha/resolve", `{"note":"erased by hand"}`, codes{"admin": {409, 409}, "dpo": {409, 404}, "intake": {403, 403}, "auditor": {403, 403}}},
		{"GET", "/v1/deadletters", "", codes{"admin": {200, 200}, "dpo": {200, 200}, "intake": {403, 403}, "auditor": {200, 200}}},
		{"POST", "/v1/deadletters/replay", `{"system":"alpha"}`, codes{"admin": {200, 200}, "dpo": {200, 200}, "intake": {403, 403}, "auditor": {403, 403}}},
		{"GET", "/v1/requests/{id}/certificate", "", codes{"admin": {409, 409}, "dpo": {409, 404}, "intake": {403, 403}, "auditor": {409, 404}}},
		{"GET", "/v1/requests/{id}/certificate.html", "", codes{"admin": {409, 409}, "dpo": {409, 404}, "intake": {403, 403}, "auditor": {409, 404}}},
		{"GET", "/v1/deadline?tenant={tenant}", "", all(200, 403)},
		{"GET", "/v1/keys", "", codes{"admin": {200, 200}, "dpo": {200, 200}, "intake": {403, 403}, "auditor": {200, 200}}},
		{"GET", "/v1/log/tree-head", "", codes{"admin": {200, 200}, "dpo": {200, 200}, "intake": {403, 403}, "auditor": {200, 200}}},
		{"GET", "/v1/log/consistency?old=1&new=1", "", codes{"admin": {200, 200}, "dpo": {200, 200}, "intake": {403, 403}, "auditor": {200, 200}}},
		{"POST", "/v1/tokens", `{"name":"n","tenant":"{tenant}","role":"auditor"}`, codes{"admin": {201, 201}, "dpo": {403, 403}, "intake": {403, 403}, "auditor": {403, 403}}},
		{"GET", "/v1/tokens", "", codes{"admin": {200, 200}, "dpo": {403, 403}, "intake": {403, 403}, "auditor": {403, 403}}},
		{"DELETE", "/v1/tokens/{token}", "{}", codes{"admin": {200, 200}, "dpo": {403, 403}, "intake": {403, 403}, "auditor": {403, 403}}},
	}

	// Tokens that must not work: none, made up, expired, revoked.
	ctx := context.Background()
	_, expiredSecret, err := (&auth.Tokens{Store: e.store, Now: time.Now}).Create(ctx, "expired", "demo", auth.DPO, time.Now().Add(-time.Minute))
	if err != nil {
		t.Fatal(err)
	}
	revokedTok, revokedSecret, err := (&auth.Tokens{Store: e.store, Now: time.Now}).Create(ctx, "revoked", "demo", auth.Admin, time.Time{})
	if err != nil {
		t.Fatal(err)
	}
	if code, _, _ := e.call(revokedSecret, "GET", "/v1/keys", ""); code != 200 {
		t.Fatalf("the token works before its revocation: %d", code)
	}
	if code, _, _ := e.call(e.token, "DELETE", "/v1/tokens/"+revokedTok.ID, "{}"); code != 200 {
		t.Fatalf("revoke = %d", code)
	}
	bad := map[string]string{"none": "", "made up": auth.TokenPrefix + strings.Repeat("A", 43), "expired": expiredSecret,
		"revoked": revokedSecret, "not a bearer": "Basic YWRtaW46YWRtaW4="}

	for _, rt := range routes {
		for _, tenant := range []string{"demo", "other"} {
			side := 0
			if tenant != "demo" {
				side = 1
			}
			for _, role := range []string{"admin", "dpo", "intake", "auditor"} {
				id := fresh(tenant)
				path := strings.NewReplacer("{id}", id, "{tenant}", tenant, "{token}", spare()).Replace(rt.path)
				body := strings.ReplaceAll(rt.body, "{tenant}", tenant)
				name := fmt.Sprintf("%s %s as %s on %s", rt.method, rt.path, role, tenant)
				before := e.snapshot(id)
				code, _, out := e.call(tokens[role], rt.method, path, body)
				if want := rt.want[role][side]; code != want {
					t.Errorf("%s = %d %v, want %d", name, code, out, want)
				}
				if code >= 400 {
					if after := e.snapshot(id); after != before {
						t.Errorf("%s was refused (%d) and changed the store: %+v -> %+v", name, code, before, after)
					}
				}
			}
			if tenant == "other" {
				continue
			}
			id := fresh(tenant)
			path := strings.NewReplacer("{id}", id, "{tenant}", tenant, "{token}", spare()).Replace(rt.path)
			body := strings.ReplaceAll(rt.body, "{tenant}", tenant)
			for what, tok := range bad {
				before := e.snapshot(id)
				var code int
				if what == "not a bearer" {
					code, _, _ = e.call("", rt.method, path, body, "Authorization", tok)
				} else {
					code, _, _ = e.call(tok, rt.method, path, body)
				}
				if code != http.StatusUnauthorized {
					t.Errorf("%s %s with a %s token = %d, want 401", rt.method, rt.path, what, code)
				}
				if after := e.snapshot(id); after != before {
					t.Errorf("%s %s with a %s token changed the store", rt.method, rt.path, what)
				}
			}
		}
	}
	if code, _, _ := e.call("", "GET", "/healthz", ""); code != 200 {
		t.Errorf("/healthz without a token = %d, want 200", code)
	}
	e.logs.NoneOf(t, subjectEmail)
}

// Lists and the intake role: a list never crosses tenants, and an intake
// token sees only what it submitted.
func TestListsStayInTheirTenant(t *testing.T) {
	e := newEnv(t, nil)
	dpo := e.newToken(e.store, "privacy-team", "demo", auth.DPO)
	formA := e.newToken(e.store, "form-a", "demo", auth.Intake)
	formB := e.newToken(e.store, "form-b", "demo", auth.Intake)
	otherDPO := e.newToken(e.store, "other-team", "other", auth.DPO)
	submit := func(tok, tenant string) string {
		code, _, out := e.call(tok, "POST", "/v1/requests", `{"type":"erasure","tenant":"`+tenant+`","subject":{"email":"`+subjectEmail+`"}}`)
		if code != 202 {
			t.Fatalf("submit = %d %v", code, out)
		}
		return out["id"].(string)
	}
	a1, a2, b1, o1 := submit(formA, "demo"), submit(formA, "demo"), submit(formB, "demo"), submit(otherDPO, "other")
	ids := func(tok string) []string {
		code, _, out := e.call(tok, "GET", "/v1/requests", "")
		if code != 200 {
			t.Fatalf("list = %d %v", code, out)
		}
		var got []string
		for _, r := range out["requests"].([]any) {
			got = append(got, r.(map[string]any)["id"].(string))
		}
		return got
	}
	for _, tt := range []struct {
		who  string
		tok  string
		want []string
	}{
		{"admin", e.token, []string{a1, a2, b1, o1}},
		{"dpo of demo", dpo, []string{a1, a2, b1}},
		{"form a", formA, []string{a1, a2}},
		{"form b", formB, []string{b1}},
		{"dpo of other", otherDPO, []string{o1}},
	} {
		got := strings.Join(ids(tt.tok), ",")
		for _, id := range []string{a1, a2, b1, o1} {
			if strings.Contains(got, id) != strings.Contains(strings.Join(tt.want, ","), id) {
				t.Errorf("%s lists %s, want %v", tt.who, got, tt.want)
				break
			}
		}
	}
	if code, _, _ := e.call(formB, "GET", "/v1/requests/"+a1, ""); code != 404 {
		t.Errorf("form b reads form a's request: %d, want 404", code)
	}
}

// Browser safety: a form-encoded or text/plain POST is 415, a foreign
// Origin 403 even with a good token; an allowed origin passes.
func TestBrowserCallsRefused(t *testing.T) {
	e := newEnv(t, func(c *Config) { c.AllowedOrigins = []string{"https://privacy.example.com"} })
	before := e.snapshot()
	for _, tt := range []struct {
		name    string
		headers []string
		want    int
	}{
		{"text/plain", []string{"Content-Type", "text/plain"}, 415},
		{"form", []string{"Content-Type", "application/x-www-form-urlencoded"}, 415},
		{"no content type", []string{"Content-Type", ""}, 415},
		{"foreign origin", []string{"Origin", "https://evil.example"}, 403},
		{"foreign origin, text/plain", []string{"Origin", "https://evil.example", "Content-Type", "text/plain"}, 403},
	} {
		code, h, _ := e.call(e.token, "POST", "/v1/requests", erasure(true), tt.headers...)
		if code != tt.want || h.Get("Access-Control-Allow-Origin") != "" {
			t.Errorf("%s = %d (CORS %q), want %d and no CORS header", tt.name, code, h.Get("Access-Control-Allow-Origin"), tt.want)
		}
	}
	if after := e.snapshot(); after != before {
		t.Errorf("refused browser calls changed the store: %+v -> %+v", before, after)
	}
	code, h, out := e.call(e.token, "POST", "/v1/requests", erasure(false), "Origin", "https://privacy.example.com")
	if code != 202 || h.Get("Access-Control-Allow-Origin") != "https://privacy.example.com" {
		t.Errorf("allowed origin = %d %v, CORS %q", code, out, h.Get("Access-Control-Allow-Origin"))
	}
	// A preflight: allowed for the configured origin, refused for another.
	code, h, _ = e.call("", "OPTIONS", "/v1/requests", "", "Origin", "https://privacy.example.com", "Access-Control-Request-Method", "POST")
	if code != 204 || !strings.Contains(h.Get("Access-Control-Allow-Headers"), "Authorization") {
		t.Errorf("preflight of an allowed origin = %d %v", code, h)
	}
	if code, h, _ := e.call("", "OPTIONS", "/v1/requests", "", "Origin", "https://evil.example"); code != 403 || h.Get("Access-Control-Allow-Origin") != "" {
		t.Errorf("preflight of a foreign origin = %d %v", code, h)
	}
}

// A body that never finishes is cut at the read timeout; a burst past the
// rate is 429 with Retry-After.
func TestServerLimits(t *testing.T) {
	e := newEnv(t, func(c *Config) { c.ReadTimeout = 300 * time.Millisecond; c.RateLimit = 2 })
	conn, err := net.Dial("tcp", strings.TrimPrefix(e.api, "http://"))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	fmt.Fprintf(conn, "POST /v1/requests HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nAuthorization: Bearer %s\r\nContent-Length: 1000\r\n\r\n{\"type\":", e.token)
	start := time.Now()
	conn.SetReadDeadline(time.Now().Add(10 * time.Second))
	resp, err := http.ReadResponse(bufio.NewReader(conn), nil)
	if err == nil {
		resp.Body.Close()
		if resp.StatusCode < 400 {
			t.Errorf("a half-sent body was answered %d", resp.StatusCode)
		}
	}
	if held := time.Since(start); held > 5*time.Second {
		t.Errorf("a half-sent body held the connection %v", held)
	}

	limited := 0
	for range 12 {
		code, h, _ := e.call(e.token, "GET", "/v1/keys", "")
		if code == http.StatusTooManyRequests {
			limited++
			if h.Get("Retry-After") == "" {
				t.Error("429 without Retry-After")
			}
		}
	}
	if limited == 0 {
		t.Error("12 calls at once past a rate of 2/s (burst 4) were all served")
	}
}

// A token is kept only as its hash: its plaintext is in none of the
// store's files.
func TestTokenPlaintextNotStored(t *testing.T) {
	e := newEnv(t, nil)
	code, _, out := e.call(e.token, "POST", "/v1/tokens", `{"name":"web-form","tenant":"demo","role":"intake","expires_at":"2099-01-01T00:00:00Z"}`)
	if code != 201 {
		t.Fatalf("create = %d %v", code, out)
	}
	secret := out["token"].(string)
	if code, _, _ := e.call(secret, "GET", "/v1/requests", ""); code != 200 {
		t.Fatalf("the new token does not work: %d", code)
	}
	_, _, list := e.call(e.token, "GET", "/v1/tokens", "")
	if strings.Contains(fmt.Sprint(list), secret) {
		t.Error("the token list shows a secret")
	}
	e.shutdown() // the WAL is checkpointed into the file
	for _, s := range []string{secret, e.token} {
		if files := piitestFilesHolding(t, e.dataDir, s); len(files) > 0 {
			t.Errorf("a token's plaintext is in %v", files)
		}
	}
	e.logs.NoneOf(t, secret)
}

func piitestFilesHolding(t *testing.T, dir, s string) []string {
	t.Helper()
	var out []string
	filepath.WalkDir(dir, func(path string, d os.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		b, err := os.ReadFile(path)
		if err == nil && strings.Contains(string(b), s) {
			out = append(out, path)
		}
		return nil
	})
	return out
}

// Identity checks and refusals on record: who and how, in the log and
// the certificate; a request never verified expires on its tenant's time,
// dropping the person's identifiers.
func TestDecisionsOnRecord(t *testing.T) {
	// An hour ahead: the orchestrator's key, made now, is valid then.
	clock := &fakeClock{t: time.Now().UTC().Add(time.Hour).Truncate(time.Millisecond)}
	e := newEnv(t, func(c *Config) { c.Now = clock.Now })
	dpo := e.newToken(e.store, "privacy-team", "demo", auth.DPO)
	intake := e.newToken(e.store, "web-form", "demo", auth.Intake)
	submit := func() string {
		code, _, out := e.call(intake, "POST", "/v1/requests", erasure(false))
		if code != 202 {
			t.Fatalf("submit = %d %v", code, out)
		}
		return out["id"].(string)
	}

	// Bad decisions are 400 and change nothing.
	id := submit()
	before := e.snapshot(id)
	for _, body := range []string{`{}`, `{"method":"telepathy"}`, `{"method":"document","note":"` + strings.Repeat("x", 501) + `"}`,
		`{"method":"document","reason":"excessive"}`, `{"method":"document","extra":1}`} {
		if code, _, _ := e.call(dpo, "POST", "/v1/requests/"+id+"/verify", body); code != 400 {
			t.Errorf("verify %s = %d, want 400", body, code)
		}
	}
	for _, body := range []string{`{}`, `{"reason":"bored"}`, `{"reason":"excessive","method":"document"}`} {
		if code, _, _ := e.call(dpo, "POST", "/v1/requests/"+id+"/deny", body); code != 400 {
			t.Errorf("deny %s = %d, want 400", body, code)
		}
	}
	if after := e.snapshot(id); after != before {
		t.Errorf("refused decisions changed the store")
	}

	// Deny: the request ends denied, its certificate names the ground and
	// who decided, and verifies.
	if code, _, out := e.call(dpo, "POST", "/v1/requests/"+id+"/deny", `{"reason":"manifestly_unfounded","note":"third identical request this week"}`); code != 200 || out["state"] != "denied" {
		t.Fatalf("deny = %d %v", code, out)
	}
	if code, _, _ := e.call(dpo, "POST", "/v1/requests/"+id+"/verify", `{"method":"document"}`); code != 409 {
		t.Errorf("verify after deny = %d, want 409", code)
	}
	c, err := e.certificate(id)
	if err != nil {
		t.Fatalf("certificate of a denied request: %v", err)
	}
	if c.State != lifecycle.Denied || c.Denial == nil || c.Denial.Ground != "manifestly_unfounded" || c.Denial.Actor.Name != "privacy-team" ||
		c.Denial.Actor.Role != "dpo" || c.Denial.Note != "third identical request this week" || len(c.Systems) != 0 {
		t.Errorf("denied certificate: state %s, denial %+v, %d systems", c.State, c.Denial, len(c.Systems))
	}

	// Verify: who and how are in the certificate too.
	id2 := submit()
	if code, _, out := e.call(dpo, "POST", "/v1/requests/"+id2+"/verify", `{"method":"email_code","note":"code sent to the address on file"}`); code != 200 {
		t.Fatalf("verify = %d %v", code, out)
	}
	e.clock = clock // the connectors answer on the orchestrator's clock
	e.connect("alpha", &toySystem{})
	e.connect("beta", &toySystem{})
	e.waitState(id2, "fulfilled")
	c, err = e.certificate(id2)
	if err != nil {
		t.Fatal(err)
	}
	if v := c.Verification; v == nil || v.Method != "email_code" || v.Actor.Kind != auth.KindToken || v.Actor.Name != "privacy-team" {
		t.Errorf("verification in the certificate: %+v", v)
	}

	// Expiry: after 30 days (the default) unverified, the request ends
	// expired and keeps no identifier.
	id3 := submit()
	clock.Set(clock.Now().Add(30*24*time.Hour + time.Minute))
	view := e.waitState(id3, "expired")
	if view["completed_at"] == nil {
		t.Errorf("expired request: %v", view)
	}
	r, _, err := e.store.Get(context.Background(), id3)
	if err != nil || r.SealedSubject != nil || r.ClearEmail != "" || r.ClearUserID != "" {
		t.Errorf("an expired request keeps the subject: %+v %v", r, err)
	}
	c, err = e.certificate(id3)
	if err != nil || c.State != lifecycle.Expired {
		t.Errorf("certificate of an expired request: %v %v", c, err)
	}
	_, _, list := e.call(dpo, "GET", "/v1/requests?state=expired", "")
	if !strings.Contains(fmt.Sprint(list), id3) {
		t.Errorf("?state=expired does not list %s", id3)
	}
	e.logs.NoneOf(t, subjectEmail)
}

// With --tls-cert and --tls-key the API speaks TLS only.
func TestAPIOverTLS(t *testing.T) {
	pki := tlstest.New(t, "api")
	e := newEnv(t, func(c *Config) { c.TLSCert, c.TLSKey = pki.ServerCert, pki.ServerKey })
	host := strings.TrimPrefix(e.api, "http://")
	client := &http.Client{Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pki.Pool}}}
	req, _ := http.NewRequest("GET", "https://"+host+"/v1/keys", nil)
	req.Header.Set("Authorization", "Bearer "+e.token)
	resp, err := client.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 200 || resp.TLS == nil {
		t.Fatalf("over TLS: %d (tls %v)", resp.StatusCode, resp.TLS != nil)
	}
	if resp, err := http.Get("http://" + host + "/healthz"); err == nil {
		resp.Body.Close()
		if resp.StatusCode == 200 {
			t.Error("the TLS API answered plain HTTP")
		}
	}
}

// Each tenant's unverified requests expire on its own time: a tenant that
// waits a year keeps its requests pending, and holds up no one else's
// expiry however many it has.
func TestExpiryPerTenant(t *testing.T) {
	tenants, err := deadline.ParseTenants([]byte("tenants:\n  patient: {verification_expiry: 8760h}\n"))
	if err != nil {
		t.Fatal(err)
	}
	clock := &fakeClock{t: time.Now().UTC().Add(time.Hour).Truncate(time.Millisecond)}
	e := newEnv(t, func(c *Config) { c.Deadlines, c.Now = tenants, clock.Now })
	received := clock.Now().AddDate(0, 0, -40).Format(time.RFC3339)
	submit := func(tenant string) string {
		code, _, out := e.call(e.token, "POST", "/v1/requests", `{"type":"erasure","tenant":"`+tenant+`","subject":{"email":"`+subjectEmail+`"},"received_at":"`+received+`"}`)
		if code != 202 {
			t.Fatalf("submit = %d %v", code, out)
		}
		return out["id"].(string)
	}
	var patient []string
	for range 3 {
		patient = append(patient, submit("patient")) // received first: the oldest
	}
	demo := submit("demo")
	// Back-dated 40 days, filed now: the wait counts from filing, so it is
	// not expired at once.
	time.Sleep(10 * e.cfg.ScanInterval)
	if _, view := e.do("GET", "/v1/requests/"+demo, ""); view["state"] != "pending_verification" {
		t.Fatalf("a back-dated request is %v as soon as it is filed", view["state"])
	}
	clock.Set(clock.Now().AddDate(0, 0, 31))
	e.waitState(demo, "expired")
	for _, id := range patient {
		if _, view := e.do("GET", "/v1/requests/"+id, ""); view["state"] != "pending_verification" {
			t.Errorf("a request of the patient tenant is %v after 40 days", view["state"])
		}
	}
}
