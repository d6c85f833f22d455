package auth

import (
	"context"
	"crypto/rand"
	"crypto/rsa"
	"encoding/base64"
	"encoding/json"
	"errors"
	"maps"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/go-jose/go-jose/v4"
)

const testAudience = "lethe-orchestrator"

// testIssuer is an identity provider the test serves: discovery and the
// JWKS of one RSA key.
type testIssuer struct {
	srv  *httptest.Server
	key  *rsa.PrivateKey // in the JWKS, kid "k1"
	now  time.Time
	oidc *OIDC
}

func newTestKey(t *testing.T) *rsa.PrivateKey {
	t.Helper()
	k, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	return k
}

func newTestIssuer(t *testing.T) *testIssuer {
	t.Helper()
	ti := &testIssuer{key: newTestKey(t), now: time.Date(2030, 1, 2, 3, 4, 5, 0, time.UTC)}
	mux := http.NewServeMux()
	ti.srv = httptest.NewServer(mux)
	t.Cleanup(ti.srv.Close)
	mux.HandleFunc("GET /.well-known/openid-configuration", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		_ = json.NewEncoder(w).Encode(map[string]any{
			"issuer":                                ti.srv.URL,
			"authorization_endpoint":                ti.srv.URL + "/authorize",
			"token_endpoint":                        ti.srv.URL + "/token",
			"jwks_uri":                              ti.srv.URL + "/jwks",
			"id_token_signing_alg_values_supported": []string{"RS256"},
		})
	})
	mux.HandleFunc("GET /jwks", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		_ = json.NewEncoder(w).Encode(jose.JSONWebKeySet{Keys: []jose.JSONWebKey{{
			Key: ti.key.Public(), KeyID: "k1", Algorithm: string(jose.RS256), Use: "sig",
		}}})
	})
	o, err := NewOIDC(t.Context(), OIDCConfig{
		Issuer:     ti.srv.URL,
		Audience:   testAudience,
		HTTPClient: ti.srv.Client(),
		Now:        func() time.Time { return ti.now },
	})
	if err != nil {
		t.Fatalf("NewOIDC: %v", err)
	}
	ti.oidc = o
	return ti
}

// claims are valid claims of a DPO of tenant acme, to be altered by a case.
func (ti *testIssuer) claims() map[string]any {
	return map[string]any{
		"iss":          ti.srv.URL,
		"sub":          "user-4711",
		"aud":          testAudience,
		"iat":          ti.now.Add(-time.Minute).Unix(),
		"exp":          ti.now.Add(time.Hour).Unix(),
		"name":         "Dana Pro",
		"email":        "dana@acme.example",
		"lethe_role":   "dpo",
		"lethe_tenant": "acme",
	}
}

func sign(t *testing.T, key *rsa.PrivateKey, kid string, claims map[string]any) string {
	t.Helper()
	signer, err := jose.NewSigner(
		jose.SigningKey{Algorithm: jose.RS256, Key: jose.JSONWebKey{Key: key, KeyID: kid}},
		(&jose.SignerOptions{}).WithType("JWT"))
	if err != nil {
		t.Fatal(err)
	}
	payload, err := json.Marshal(claims)
	if err != nil {
		t.Fatal(err)
	}
	jws, err := signer.Sign(payload)
	if err != nil {
		t.Fatal(err)
	}
	s, err := jws.CompactSerialize()
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func b64(t *testing.T, v any) string {
	t.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return base64.RawURLEncoding.EncodeToString(b)
}

func TestOIDCAuthenticate(t *testing.T) {
	ti := newTestIssuer(t)
	other := newTestKey(t) // not in the JWKS

	with := func(change func(c map[string]any)) string {
		c := ti.claims()
		change(c)
		return sign(t, ti.key, "k1", c)
	}
	tests := []struct {
		name  string
		token func() string
		want  Principal
		// wantErr is a part of the error message; "" for success.
		wantErr string
	}{
		{
			name:  "valid dpo of acme",
			token: func() string { return sign(t, ti.key, "k1", ti.claims()) },
			want: Principal{Kind: KindOIDC, ID: ti.srv.URL + "#user-4711", Name: "Dana Pro",
				Role: DPO, Tenant: "acme"},
		},
		{
			name: "valid admin acts for every tenant",
			token: func() string {
				return with(func(c map[string]any) { c["lethe_role"] = "admin"; delete(c, "lethe_tenant") })
			},
			want: Principal{Kind: KindOIDC, ID: ti.srv.URL + "#user-4711", Name: "Dana Pro",
				Role: Admin, Tenant: AnyTenant},
		},
		{
			name: "admin with a tenant claim still acts for every tenant",
			token: func() string {
				return with(func(c map[string]any) { c["lethe_role"] = "admin" })
			},
			want: Principal{Kind: KindOIDC, ID: ti.srv.URL + "#user-4711", Name: "Dana Pro",
				Role: Admin, Tenant: AnyTenant},
		},
		{
			name: "no name claim: the subject, never the e-mail",
			token: func() string {
				return with(func(c map[string]any) { delete(c, "name"); c["lethe_role"] = "auditor" })
			},
			want: Principal{Kind: KindOIDC, ID: ti.srv.URL + "#user-4711", Name: "user-4711",
				Role: Auditor, Tenant: "acme"},
		},
		{
			name: "audience among several",
			token: func() string {
				return with(func(c map[string]any) { c["aud"] = []string{"other-app", testAudience} })
			},
			want: Principal{Kind: KindOIDC, ID: ti.srv.URL + "#user-4711", Name: "Dana Pro",
				Role: DPO, Tenant: "acme"},
		},
		{
			name: "expired",
			token: func() string {
				return with(func(c map[string]any) { c["exp"] = ti.now.Add(-time.Second).Unix() })
			},
			wantErr: "the ID token has expired",
		},
		{
			name: "not yet valid",
			token: func() string {
				return with(func(c map[string]any) {
					c["nbf"] = ti.now.Add(time.Hour).Unix()
					c["exp"] = ti.now.Add(2 * time.Hour).Unix()
				})
			},
			wantErr: "the ID token is not valid yet",
		},
		{
			name:    "wrong audience",
			token:   func() string { return with(func(c map[string]any) { c["aud"] = "other-app" }) },
			wantErr: "the ID token is for another audience",
		},
		{
			name:    "wrong issuer",
			token:   func() string { return with(func(c map[string]any) { c["iss"] = "https://idp.evil.example" }) },
			wantErr: "the ID token is from another issuer",
		},
		{
			name:    "signed by an unknown key",
			token:   func() string { return sign(t, other, "k2", ti.claims()) },
			wantErr: "the ID token's signature does not verify",
		},
		{
			name:    "signed by another key under the known key's id",
			token:   func() string { return sign(t, other, "k1", ti.claims()) },
			wantErr: "the ID token's signature does not verify",
		},
		{
			name: "alg none",
			token: func() string {
				c := ti.claims()
				c["lethe_role"] = "admin"
				return b64(t, map[string]string{"alg": "none", "typ": "JWT"}) + "." + b64(t, c) + "."
			},
			wantErr: "the ID token is signed with an algorithm that is not accepted",
		},
		{
			name: "tampered payload",
			token: func() string {
				parts := strings.Split(sign(t, ti.key, "k1", ti.claims()), ".")
				c := ti.claims()
				c["lethe_role"] = "admin"
				parts[1] = b64(t, c)
				return strings.Join(parts, ".")
			},
			wantErr: "the ID token's signature does not verify",
		},
		{
			name:    "not a JWT",
			token:   func() string { return "Dana Pro:hunter2" },
			wantErr: "the bearer token is not a well-formed ID token",
		},
		{
			name:    "unknown role",
			token:   func() string { return with(func(c map[string]any) { c["lethe_role"] = "superuser" }) },
			wantErr: "the ID token's role claim names no role of Lethe",
		},
		{
			name:    "role claim not a string",
			token:   func() string { return with(func(c map[string]any) { c["lethe_role"] = []string{"admin"} }) },
			wantErr: "the ID token's role claim names no role of Lethe",
		},
		{
			name:    "missing role claim",
			token:   func() string { return with(func(c map[string]any) { delete(c, "lethe_role") }) },
			wantErr: "the ID token has no role claim",
		},
		{
			name:    "missing tenant claim",
			token:   func() string { return with(func(c map[string]any) { delete(c, "lethe_tenant") }) },
			wantErr: "the ID token has no tenant claim",
		},
		{
			name:    "empty tenant claim",
			token:   func() string { return with(func(c map[string]any) { c["lethe_tenant"] = "" }) },
			wantErr: "the ID token has no tenant claim",
		},
		{
			name:    "tenant claim not a string",
			token:   func() string { return with(func(c map[string]any) { c["lethe_tenant"] = 42 }) },
			wantErr: "the ID token has no tenant claim",
		},
		{
			name:    "non-admin claiming every tenant",
			token:   func() string { return with(func(c map[string]any) { c["lethe_tenant"] = AnyTenant }) },
			wantErr: "the ID token's tenant claim names no tenant",
		},
		{
			name:    "missing subject",
			token:   func() string { return with(func(c map[string]any) { delete(c, "sub") }) },
			wantErr: "the ID token has no subject",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			token := tt.token()
			got, err := ti.oidc.Authenticate(t.Context(), token)
			if tt.wantErr == "" {
				if err != nil {
					t.Fatalf("Authenticate: %v", err)
				}
				if got != tt.want {
					t.Fatalf("Authenticate = %+v, want %+v", got, tt.want)
				}
				return
			}
			if err == nil {
				t.Fatalf("Authenticate = %+v, want an error", got)
			}
			if !errors.Is(err, ErrInvalid) {
				t.Errorf("error %q does not wrap ErrInvalid", err)
			}
			if got != (Principal{}) {
				t.Errorf("Authenticate returned %+v with its error", got)
			}
			msg := err.Error()
			if !strings.Contains(msg, tt.wantErr) {
				t.Errorf("error %q, want it to say %q", msg, tt.wantErr)
			}
			// Nothing of the token or its claims in the message.
			for _, leak := range []string{token, "user-4711", "Dana", "dana@", "acme", "superuser",
				"other-app", "evil", testAudience, ti.srv.URL} {
				if strings.Contains(msg, leak) {
					t.Errorf("error %q echoes %q", msg, leak)
				}
			}
		})
	}
}

func TestOIDCClaimNames(t *testing.T) {
	ti := newTestIssuer(t)
	o, err := NewOIDC(t.Context(), OIDCConfig{
		Issuer:      ti.srv.URL,
		Audience:    testAudience,
		TenantClaim: "org",
		RoleClaim:   "https://lethe.dev/role",
		NameClaim:   "preferred_username",
		HTTPClient:  ti.srv.Client(),
		Now:         func() time.Time { return ti.now },
	})
	if err != nil {
		t.Fatal(err)
	}
	c := ti.claims()
	maps.Copy(c, map[string]any{"org": "globex", "https://lethe.dev/role": "intake", "preferred_username": "form-bot"})
	got, err := o.Authenticate(t.Context(), sign(t, ti.key, "k1", c))
	if err != nil {
		t.Fatal(err)
	}
	want := Principal{Kind: KindOIDC, ID: ti.srv.URL + "#user-4711", Name: "form-bot", Role: Intake, Tenant: "globex"}
	if got != want {
		t.Fatalf("Authenticate = %+v, want %+v", got, want)
	}
}

func TestOIDCClockInjected(t *testing.T) {
	ti := newTestIssuer(t)
	token := sign(t, ti.key, "k1", ti.claims()) // expires at now + 1h
	if _, err := ti.oidc.Authenticate(t.Context(), token); err != nil {
		t.Fatalf("before expiry: %v", err)
	}
	ti.now = ti.now.Add(2 * time.Hour)
	if _, err := ti.oidc.Authenticate(t.Context(), token); !errors.Is(err, ErrInvalid) ||
		!strings.Contains(err.Error(), "expired") {
		t.Fatalf("after expiry: %v, want expired", err)
	}
}

func TestOIDCEmptyBearer(t *testing.T) {
	ti := newTestIssuer(t)
	if _, err := ti.oidc.Authenticate(t.Context(), ""); !errors.Is(err, ErrNoCredentials) {
		t.Fatalf("Authenticate(\"\") = %v, want ErrNoCredentials", err)
	}
}

func TestOIDCKeysUnavailable(t *testing.T) {
	ti := newTestIssuer(t)
	token := sign(t, ti.key, "k1", ti.claims())
	ti.srv.Close()
	_, err := ti.oidc.Authenticate(t.Context(), token)
	if !errors.Is(err, ErrInvalid) || !strings.Contains(err.Error(), "keys could not be fetched") {
		t.Fatalf("Authenticate = %v, want the keys could not be fetched", err)
	}
}

func TestNewOIDCErrors(t *testing.T) {
	notFound := httptest.NewServer(http.NotFoundHandler())
	t.Cleanup(notFound.Close)
	mismatch := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		_, _ = w.Write([]byte(`{"issuer":"https://idp.elsewhere.example","jwks_uri":"https://idp.elsewhere.example/jwks"}`))
	}))
	t.Cleanup(mismatch.Close)
	tests := []struct {
		name string
		cfg  OIDCConfig
	}{
		{"discovery answers 404", OIDCConfig{Issuer: notFound.URL, Audience: testAudience, HTTPClient: notFound.Client()}},
		{"discovery names another issuer", OIDCConfig{Issuer: mismatch.URL, Audience: testAudience, HTTPClient: mismatch.Client()}},
		{"no issuer", OIDCConfig{Audience: testAudience}},
		{"no audience", OIDCConfig{Issuer: notFound.URL}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
			defer cancel()
			if o, err := NewOIDC(ctx, tt.cfg); err == nil {
				t.Fatalf("NewOIDC = %v, want an error", o)
			}
		})
	}
}

var _ Authenticator = (*OIDC)(nil)
