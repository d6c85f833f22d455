package console

import (
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"io"
	"net/http"
	"net/http/cookiejar"
	"net/http/httptest"
	"net/url"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/go-jose/go-jose/v4"

	"github.com/lethe-dev/lethe/services/orchestrator/auth"
	"github.com/lethe-dev/lethe/services/orchestrator/httpapi"
	"github.com/lethe-dev/lethe/services/orchestrator/store"
)

// provider is a tiny OpenID provider: discovery, keys, an authorization
// endpoint that signs in whoever comes (with the claims set), and a token
// endpoint that checks the PKCE verifier.
type provider struct {
	t      *testing.T
	srv    *httptest.Server
	key    *rsa.PrivateKey
	claims map[string]any

	mu    sync.Mutex
	codes map[string]grant
}

type grant struct{ challenge, nonce, redirect string }

const clientID = "lethe-console"

func newProvider(t *testing.T) *provider {
	key, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	p := &provider{t: t, key: key, codes: map[string]grant{},
		claims: map[string]any{"sub": "u-1", "name": "Dana Pro", "lethe_role": "dpo", "lethe_tenant": "acme"}}
	mux := http.NewServeMux()
	p.srv = httptest.NewServer(mux)
	t.Cleanup(p.srv.Close)
	mux.HandleFunc("GET /.well-known/openid-configuration", func(w http.ResponseWriter, r *http.Request) {
		json.NewEncoder(w).Encode(map[string]any{"issuer": p.srv.URL, "authorization_endpoint": p.srv.URL + "/authorize",
			"token_endpoint": p.srv.URL + "/token", "jwks_uri": p.srv.URL + "/jwks", "id_token_signing_alg_values_supported": []string{"RS256"}})
	})
	mux.HandleFunc("GET /jwks", func(w http.ResponseWriter, r *http.Request) {
		json.NewEncoder(w).Encode(jose.JSONWebKeySet{Keys: []jose.JSONWebKey{{Key: key.Public(), KeyID: "k1", Algorithm: "RS256", Use: "sig"}}})
	})
	mux.HandleFunc("GET /authorize", func(w http.ResponseWriter, r *http.Request) {
		q := r.URL.Query()
		if q.Get("response_type") != "code" || q.Get("client_id") != clientID || q.Get("code_challenge_method") != "S256" || q.Get("code_challenge") == "" {
			http.Error(w, "bad authorization request", http.StatusBadRequest)
			return
		}
		code := random()
		p.mu.Lock()
		p.codes[code] = grant{challenge: q.Get("code_challenge"), nonce: q.Get("nonce"), redirect: q.Get("redirect_uri")}
		p.mu.Unlock()
		http.Redirect(w, r, q.Get("redirect_uri")+"?code="+code+"&state="+url.QueryEscape(q.Get("state")), http.StatusFound)
	})
	mux.HandleFunc("POST /token", func(w http.ResponseWriter, r *http.Request) {
		r.ParseForm()
		p.mu.Lock()
		g, ok := p.codes[r.PostForm.Get("code")]
		delete(p.codes, r.PostForm.Get("code"))
		p.mu.Unlock()
		sum := sha256.Sum256([]byte(r.PostForm.Get("code_verifier")))
		if !ok || base64.RawURLEncoding.EncodeToString(sum[:]) != g.challenge || r.PostForm.Get("redirect_uri") != g.redirect {
			w.Header().Set("Content-Type", "application/json")
			w.WriteHeader(http.StatusBadRequest)
			io.WriteString(w, `{"error":"invalid_grant"}`)
			return
		}
		claims := map[string]any{"iss": p.srv.URL, "aud": clientID, "iat": time.Now().Unix(), "exp": time.Now().Add(time.Hour).Unix(), "nonce": g.nonce}
		for k, v := range p.claims {
			claims[k] = v
		}
		w.Header().Set("Content-Type", "application/json")
		json.NewEncoder(w).Encode(map[string]any{"access_token": "at", "token_type": "Bearer", "expires_in": 3600, "id_token": p.sign(claims)})
	})
	return p
}

func (p *provider) sign(claims map[string]any) string {
	s, err := jose.NewSigner(jose.SigningKey{Algorithm: jose.RS256, Key: jose.JSONWebKey{Key: p.key, KeyID: "k1"}}, (&jose.SignerOptions{}).WithType("JWT"))
	if err != nil {
		p.t.Fatal(err)
	}
	b, _ := json.Marshal(claims)
	jws, err := s.Sign(b)
	if err != nil {
		p.t.Fatal(err)
	}
	out, _ := jws.CompactSerialize()
	return out
}

// stubLife is the lifecycle as far as these pages use it: its clock.
type stubLife struct{ httpapi.Lifecycle }

func (stubLife) Now() time.Time { return time.Now().UTC() }

func TestOIDCSignIn(t *testing.T) {
	p := newProvider(t)
	st, err := store.OpenSQLite(filepath.Join(t.TempDir(), "lethe.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	mux := http.NewServeMux()
	srv := httptest.NewServer(mux)
	t.Cleanup(srv.Close)
	client, err := NewOIDCClient(t.Context(), OIDCClientConfig{Provider: auth.OIDCConfig{Issuer: p.srv.URL}, ClientID: clientID,
		RedirectURL: srv.URL + "/console/login/oidc/callback"})
	if err != nil {
		t.Fatal(err)
	}
	tokens := &auth.Tokens{Store: st, Now: time.Now}
	c, err := New(Config{Life: stubLife{}, Store: st, Auth: auth.Chain{Tokens: tokens}, Tokens: tokens, OIDC: client, HashKey: []byte("0123456789abcdef")})
	if err != nil {
		t.Fatal(err)
	}
	mux.Handle("/console/", c.Handler())

	browser := func() *http.Client {
		jar, _ := cookiejar.New(nil)
		return &http.Client{Jar: jar}
	}
	get := func(hc *http.Client, u string) (int, string, string) {
		t.Helper()
		resp, err := hc.Get(u)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, resp.Request.URL.Path, string(b)
	}

	// The login page offers it; the round trip signs a dpo of acme in.
	if _, _, body := get(browser(), srv.URL+"/console/login"); !strings.Contains(body, "/console/login/oidc") {
		t.Error("the login page offers no sign-in through the identity provider")
	}
	dana := browser()
	code, path, body := get(dana, srv.URL+"/console/login/oidc")
	if code != http.StatusOK || path != "/console/" || !strings.Contains(body, "Dana Pro") || !strings.Contains(body, "acme") {
		t.Fatalf("OIDC sign-in ended at %d %s: %.400s", code, path, body)
	}
	if code, path, _ := get(dana, srv.URL+"/console/requests"); code != http.StatusOK || path != "/console/requests" {
		t.Errorf("a page after the OIDC sign-in: %d %s", code, path)
	}

	// A callback this browser did not start, or a code used twice, signs
	// no one in.
	stranger := browser()
	if code, _, _ := get(stranger, srv.URL+"/console/login/oidc/callback?code=x&state=y"); code != http.StatusBadRequest {
		t.Errorf("a callback without its state cookie = %d", code)
	}
	noRedirect := browser()
	noRedirect.CheckRedirect = func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }
	resp, err := noRedirect.Get(srv.URL + "/console/login/oidc")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	auth1, _ := url.Parse(resp.Header.Get("Location"))
	if auth1.Query().Get("code_challenge") == "" || auth1.Query().Get("nonce") == "" {
		t.Errorf("the authorization request has no PKCE challenge or nonce: %s", auth1)
	}
	resp, err = noRedirect.Get(auth1.String())
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	back := resp.Header.Get("Location")
	tampered := strings.Replace(back, "state=", "state=x", 1)
	if code, _, _ := get(noRedirect, tampered); code != http.StatusBadRequest {
		t.Errorf("a callback with another state = %d", code)
	}

	// An ID token with no role of Lethe is refused.
	p.claims["lethe_role"] = "visitor"
	if code, path, body := get(browser(), srv.URL+"/console/login/oidc"); code != http.StatusForbidden || !strings.Contains(body, "role") {
		t.Errorf("a token without a role = %d %s %.300s", code, path, body)
	}
}
