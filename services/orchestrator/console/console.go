// Package console is the privacy team's console: server-rendered pages
// under /console/ of the orchestrator's listener, over the same lifecycle
// and store as the HTTP API and under the same rules (roles, tenants, an
// intake principal seeing only what it submitted: httpapi.Roles and
// httpapi.Visible, enforced here on the server whatever a page shows).
//
// A person signs in with an API token (or through the identity provider
// when one is configured); the session lives in memory, behind a random
// cookie, and every POST carries a CSRF token tied to it. Pages are plain
// HTML forms and links that work without scripts; a vendored htmx
// (static/, no CDN) only refreshes an open request's page as it moves.
// The Content-Security-Policy allows scripts and styles from the console
// itself only, none inline.
package console

import (
	"embed"
	"errors"
	"io/fs"
	"log/slog"
	"net/http"
	"slices"
	"strings"
	"time"

	"golang.org/x/time/rate"

	"github.com/lethe-dev/lethe/pkg/deadline"
	"github.com/lethe-dev/lethe/services/orchestrator/auth"
	"github.com/lethe-dev/lethe/services/orchestrator/httpapi"
	"github.com/lethe-dev/lethe/services/orchestrator/metrics"
	"github.com/lethe-dev/lethe/services/orchestrator/store"
)

//go:embed static
var staticFS embed.FS

// Defaults of a session's life.
const (
	DefaultIdleTimeout = 30 * time.Minute
	DefaultLifetime    = 12 * time.Hour
)

// Prefix is where the console is served.
const Prefix = "/console/"

// Config is what the console needs, ready to use.
type Config struct {
	Life  httpapi.Lifecycle
	Store store.Store
	// Auth authenticates the token pasted at sign-in (the API's chain);
	// Tokens lists, issues and revokes tokens and re-checks a session's
	// token at each request.
	Auth    auth.Authenticator
	Tokens  *auth.Tokens
	Metrics *metrics.Metrics
	// Systems are the registered systems; Channels the channels a notice
	// to a person goes out on (proof.ChannelBus, ChannelWebhook).
	Systems, Channels []string
	// Deadlines are the tenants' deadline policies: their time zones are
	// the zones pages show dates in.
	Deadlines *deadline.Tenants
	// HashKey keys the subject hash (as the engine's), for a lookup by
	// email that keeps no email.
	HashKey []byte
	// OIDC, if set, offers sign-in through the identity provider.
	OIDC *OIDCClient
	// IdleTimeout ends a session unused that long; Lifetime ends any
	// session that old.
	IdleTimeout, Lifetime time.Duration
	// SignInFailures is the rate at which an address may fail to sign in,
	// with bursts of 5 (default one per 12 s).
	SignInFailures rate.Limit
	Logger         *slog.Logger
	// Now is the clock of sessions; time.Now when nil. Pages show the
	// lifecycle's clock.
	Now func() time.Time
}

// Console serves the console's pages.
type Console struct {
	cfg      Config
	log      *slog.Logger
	sessions *sessions
	failures *limiter
	pages    map[string]*pageTemplate
}

// New returns the console over cfg.
func New(cfg Config) (*Console, error) {
	if cfg.Life == nil || cfg.Store == nil || cfg.Auth == nil || cfg.Tokens == nil {
		return nil, errors.New("console: needs the lifecycle, the store, the authenticator and the tokens")
	}
	if cfg.IdleTimeout <= 0 {
		cfg.IdleTimeout = DefaultIdleTimeout
	}
	if cfg.Lifetime <= 0 {
		cfg.Lifetime = DefaultLifetime
	}
	if cfg.SignInFailures == 0 {
		cfg.SignInFailures = rate.Every(12 * time.Second)
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	pages, err := parsePages()
	if err != nil {
		return nil, err
	}
	return &Console{cfg: cfg, log: cfg.Logger.With("component", "console"), pages: pages,
		sessions: newSessions(cfg.IdleTimeout, cfg.Lifetime),
		failures: &limiter{rate: cfg.SignInFailures, burst: 5}}, nil
}

// route is a page: the roles that may see or do it.
type route struct {
	roles []auth.Role
	h     func(w http.ResponseWriter, r *http.Request, s *session)
}

// Handler serves everything under Prefix.
func (c *Console) Handler() http.Handler {
	mux := http.NewServeMux()
	static, _ := fs.Sub(staticFS, "static")
	files := http.StripPrefix(Prefix+"static/", http.FileServerFS(static))
	mux.Handle("GET "+Prefix+"static/", http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Cache-Control", "public, max-age=3600")
		files.ServeHTTP(w, r)
	}))
	mux.HandleFunc("GET "+Prefix+"login", c.handleLoginPage)
	mux.HandleFunc("POST "+Prefix+"login", c.handleLogin)
	if c.cfg.OIDC != nil {
		mux.HandleFunc("GET "+Prefix+"login/oidc", c.handleOIDCStart)
		mux.HandleFunc("GET "+Prefix+"login/oidc/callback", c.handleOIDCCallback)
	}
	handle := func(pattern string, roles []auth.Role, h func(http.ResponseWriter, *http.Request, *session)) {
		mux.Handle(pattern, c.guard(route{roles: roles, h: h}))
	}
	any, readers, deciders, admins, submitters := httpapi.Roles.Any, httpapi.Roles.Readers, httpapi.Roles.Deciders, httpapi.Roles.Admins, httpapi.Roles.Submitters
	handle("POST "+Prefix+"logout", any, c.handleLogout)
	handle("GET "+Prefix+"{$}", any, c.handleOverview)
	handle("GET "+Prefix+"requests", any, c.handleRequests)
	handle("POST "+Prefix+"requests/lookup", any, c.handleLookup)
	handle("GET "+Prefix+"requests/new", submitters, c.handleNewForm)
	handle("POST "+Prefix+"requests/new", submitters, c.handleNew)
	handle("GET "+Prefix+"requests/{id}", any, c.handleRequest)
	handle("GET "+Prefix+"requests/{id}/live", any, c.handleLive)
	handle("POST "+Prefix+"requests/{id}/verify", deciders, c.handleVerify)
	handle("POST "+Prefix+"requests/{id}/deny", deciders, c.handleDeny)
	handle("POST "+Prefix+"requests/{id}/extend", deciders, c.handleExtend)
	handle("POST "+Prefix+"requests/{id}/tasks/{system}/retry", deciders, c.handleRetry)
	handle("POST "+Prefix+"requests/{id}/tasks/{system}/resolve", deciders, c.handleResolve)
	handle("POST "+Prefix+"requests/{id}/export-link", deciders, c.handleExportLink)
	handle("GET "+Prefix+"requests/{id}/certificate", readers, c.handleCertificate)
	handle("GET "+Prefix+"requests/{id}/certificate.json", readers, c.handleCertificateJSON)
	handle("GET "+Prefix+"deadletters", readers, c.handleDeadLetters)
	handle("POST "+Prefix+"deadletters/retry", deciders, c.handleRetrySelected)
	handle("POST "+Prefix+"deadletters/replay", deciders, c.handleReplay)
	handle("GET "+Prefix+"tokens", admins, c.handleTokens)
	handle("POST "+Prefix+"tokens", admins, c.handleCreateToken)
	handle("POST "+Prefix+"tokens/{id}/revoke", admins, c.handleRevokeToken)
	mux.HandleFunc(Prefix, func(w http.ResponseWriter, r *http.Request) {
		c.notFound(w, r, c.sessions.peek(r, c.cfg.Now()))
	})
	// A POST from another site (a form or a fetch) is refused before
	// anything else: Sec-Fetch-Site, or Origin against Host.
	cop := http.NewCrossOriginProtection()
	cop.SetDenyHandler(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		c.fail(w, r, nil, http.StatusForbidden, "This form was sent from another site, so it was refused; nothing was changed.")
	}))
	return secureHeaders(cop.Handler(mux))
}

// csp is the Content-Security-Policy of every answer: scripts and styles
// from the console's own files only, nothing inline, no frames, forms
// posted back to the console only.
const csp = "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; connect-src 'self'; " +
	"font-src 'self'; object-src 'none'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'"

func secureHeaders(h http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		hd := w.Header()
		hd.Set("Content-Security-Policy", csp)
		hd.Set("X-Frame-Options", "DENY")
		hd.Set("X-Content-Type-Options", "nosniff")
		hd.Set("Referrer-Policy", "no-referrer")
		hd.Set("Cross-Origin-Opener-Policy", "same-origin")
		hd.Set("Permissions-Policy", "camera=(), microphone=(), geolocation=()")
		if r.TLS != nil {
			hd.Set("Strict-Transport-Security", "max-age=31536000")
		}
		if !strings.HasPrefix(r.URL.Path, Prefix+"static/") {
			hd.Set("Cache-Control", "no-store")
		}
		h.ServeHTTP(w, r)
	})
}

// guard lets a route's handler run for a live session of a principal
// whose role it allows, and, for a POST, whose CSRF token came with it.
// Every refusal changes nothing.
func (c *Console) guard(rt route) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		s, why := c.session(r)
		if s == nil {
			c.signInAgain(w, r, why)
			return
		}
		if r.Method == http.MethodPost && !s.checkCSRF(r) {
			c.log.Warn("console: POST without a valid CSRF token refused", "path", r.URL.Path, "principal", s.p.ID)
			c.fail(w, r, s, http.StatusForbidden, "This form has expired or was not sent by this console (missing or wrong CSRF token); nothing was changed. Reload the page and try again.")
			return
		}
		if !slices.Contains(rt.roles, s.p.Role) {
			c.fail(w, r, s, http.StatusForbidden, "The role "+string(s.p.Role)+" may not do this.")
			return
		}
		c.cfg.Tokens.Used(r.Context(), s.p)
		rt.h(w, r, s)
	})
}

// signInAgain sends a caller without a session to the sign-in page: an
// htmx call through HX-Redirect, a page through a redirect.
func (c *Console) signInAgain(w http.ResponseWriter, r *http.Request, why string) {
	to := Prefix + "login"
	if why != "" {
		to += "?why=" + why
	}
	if r.Header.Get("HX-Request") != "" {
		w.Header().Set("HX-Redirect", to)
		w.WriteHeader(http.StatusUnauthorized)
		return
	}
	if r.Method == http.MethodPost {
		// Nothing is done: the form is not replayed after the sign-in.
		http.Redirect(w, r, to, http.StatusSeeOther)
		return
	}
	http.Redirect(w, r, to, http.StatusSeeOther)
}

func clientIP(r *http.Request) string {
	addr := r.RemoteAddr
	if i := strings.LastIndexByte(addr, ':'); i > 0 {
		addr = addr[:i]
	}
	return strings.Trim(addr, "[]")
}
