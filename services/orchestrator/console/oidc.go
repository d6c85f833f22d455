package console

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"regexp"
	"sync"
	"time"

	"github.com/coreos/go-oidc/v3/oidc"
	"golang.org/x/oauth2"

	"github.com/lethe-dev/lethe/services/orchestrator/auth"
)

// OIDCClientConfig configures sign-in through the organisation's identity
// provider: the authorization code flow with PKCE (S256), a state bound to
// the browser and a nonce bound to the ID token. The ID token it returns
// is mapped to a principal by the API's rules (auth.OIDC: its role and
// tenant claims).
type OIDCClientConfig struct {
	// Provider is the issuer and its claims; its Audience is the client
	// id when empty.
	Provider auth.OIDCConfig
	// ClientID and ClientSecret are the console's client at the provider
	// (a public client has no secret: PKCE protects its code).
	ClientID, ClientSecret string
	// RedirectURL is where the provider sends the browser back: the
	// console's /console/login/oidc/callback.
	RedirectURL string
	// Scopes besides openid (profile by default).
	Scopes []string
}

// OIDCClient signs people in through the identity provider.
type OIDCClient struct {
	oauth  oauth2.Config
	verify *oidc.IDTokenVerifier
	auth   *auth.OIDC
	client *http.Client
	now    func() time.Time

	mu      sync.Mutex
	pending map[string]pendingLogin // by state
}

type pendingLogin struct {
	verifier, nonce string
	at              time.Time
}

// loginWindow is how long a sign-in at the provider may take.
const loginWindow = 10 * time.Minute

// NewOIDCClient discovers the provider and returns the client.
func NewOIDCClient(ctx context.Context, cfg OIDCClientConfig) (*OIDCClient, error) {
	if cfg.ClientID == "" || cfg.RedirectURL == "" {
		return nil, errors.New("console: OIDC sign-in needs a client id and a redirect URL")
	}
	pc := cfg.Provider
	if pc.Audience == "" {
		pc.Audience = cfg.ClientID
	}
	client := pc.HTTPClient
	if client == nil {
		client = &http.Client{Timeout: 10 * time.Second}
		pc.HTTPClient = client
	}
	now := pc.Now
	if now == nil {
		now = time.Now
	}
	a, err := auth.NewOIDC(ctx, pc)
	if err != nil {
		return nil, err
	}
	provider, err := oidc.NewProvider(oidc.ClientContext(ctx, client), pc.Issuer)
	if err != nil {
		return nil, fmt.Errorf("console: OIDC discovery: %w", err)
	}
	scopes := append([]string{oidc.ScopeOpenID}, cfg.Scopes...)
	if len(cfg.Scopes) == 0 {
		scopes = append(scopes, "profile")
	}
	return &OIDCClient{
		oauth: oauth2.Config{ClientID: cfg.ClientID, ClientSecret: cfg.ClientSecret, RedirectURL: cfg.RedirectURL,
			Endpoint: provider.Endpoint(), Scopes: scopes},
		verify:  provider.Verifier(&oidc.Config{ClientID: pc.Audience, Now: now}),
		auth:    a,
		client:  client,
		now:     now,
		pending: map[string]pendingLogin{},
	}, nil
}

const stateCookie = "lethe_console_oidc"

// handleOIDCStart sends the browser to the provider.
func (c *Console) handleOIDCStart(w http.ResponseWriter, r *http.Request) {
	o := c.cfg.OIDC
	state, nonce, verifier := random(), random(), oauth2.GenerateVerifier()
	now := time.Now()
	o.mu.Lock()
	for k, p := range o.pending {
		if now.Sub(p.at) > loginWindow {
			delete(o.pending, k)
		}
	}
	if len(o.pending) > 10000 {
		o.mu.Unlock()
		c.render(w, r, http.StatusServiceUnavailable, "login", nil, "Sign in", loginPage{Error: "Too many sign-ins under way: try again in a minute.", OIDC: true})
		return
	}
	o.pending[state] = pendingLogin{verifier: verifier, nonce: nonce, at: now}
	o.mu.Unlock()
	// Lax: the provider's redirect back is a top-level GET from its site.
	http.SetCookie(w, &http.Cookie{Name: stateCookie, Value: state, Path: Prefix + "login/oidc", MaxAge: int(loginWindow.Seconds()),
		HttpOnly: true, Secure: r.TLS != nil, SameSite: http.SameSiteLaxMode})
	http.Redirect(w, r, o.oauth.AuthCodeURL(state, oauth2.S256ChallengeOption(verifier), oidc.Nonce(nonce)), http.StatusFound)
}

var errorCode = regexp.MustCompile(`^[a-z_]{1,64}$`)

// handleOIDCCallback takes the provider's code: the state must be the
// one this browser was given, the code is exchanged with its PKCE
// verifier, the ID token's nonce must match.
func (c *Console) handleOIDCCallback(w http.ResponseWriter, r *http.Request) {
	o := c.cfg.OIDC
	refuse := func(status int, msg string) {
		c.render(w, r, status, "login", nil, "Sign in", loginPage{Error: msg, OIDC: true})
	}
	http.SetCookie(w, &http.Cookie{Name: stateCookie, Value: "", Path: Prefix + "login/oidc", MaxAge: -1, HttpOnly: true, Secure: r.TLS != nil, SameSite: http.SameSiteLaxMode})
	q := r.URL.Query()
	if e := q.Get("error"); e != "" {
		if !errorCode.MatchString(e) {
			e = "an error"
		}
		refuse(http.StatusUnauthorized, "The identity provider did not sign you in ("+e+").")
		return
	}
	state := q.Get("state")
	ck, err := r.Cookie(stateCookie)
	if state == "" || err != nil || ck.Value != state {
		refuse(http.StatusBadRequest, "This sign-in was not started from this browser, or took too long: start again.")
		return
	}
	o.mu.Lock()
	pl, ok := o.pending[state]
	delete(o.pending, state)
	o.mu.Unlock()
	if !ok || time.Since(pl.at) > loginWindow {
		refuse(http.StatusBadRequest, "This sign-in expired: start again.")
		return
	}
	ctx := context.WithValue(r.Context(), oauth2.HTTPClient, o.client)
	tok, err := o.oauth.Exchange(ctx, q.Get("code"), oauth2.VerifierOption(pl.verifier))
	if err != nil {
		c.log.Warn("console: OIDC code exchange failed", "err", err)
		refuse(http.StatusUnauthorized, "The identity provider did not accept the sign-in: start again.")
		return
	}
	raw, _ := tok.Extra("id_token").(string)
	if raw == "" {
		refuse(http.StatusUnauthorized, "The identity provider returned no ID token.")
		return
	}
	idt, err := o.verify.Verify(ctx, raw)
	if err != nil || idt.Nonce != pl.nonce {
		refuse(http.StatusUnauthorized, "The ID token does not verify, or is not the one for this sign-in.")
		return
	}
	p, err := o.auth.Authenticate(ctx, raw)
	if err != nil {
		msg := "The ID token does not give a role of Lethe."
		if errors.Is(err, auth.ErrInvalid) {
			msg = sentence(err.Error())
		}
		refuse(http.StatusForbidden, msg)
		return
	}
	if old := cookieValue(r); old != "" {
		c.sessions.end(old)
	}
	c.signIn(w, r, &session{p: p, bearer: raw, viaClient: true, expires: idt.Expiry})
	http.Redirect(w, r, Prefix, http.StatusSeeOther)
}
