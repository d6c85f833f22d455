package console

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base64"
	"errors"
	"net/http"
	"strings"
	"sync"
	"time"

	"golang.org/x/time/rate"

	"github.com/lethe-dev/lethe/services/orchestrator/auth"
	"github.com/lethe-dev/lethe/services/orchestrator/store"
)

// cookieName names the session cookie; over TLS it is __Host- prefixed
// (Secure, path /, no domain: no other host or path can set it).
const (
	cookieName    = "lethe_console"
	cookieNameTLS = "__Host-lethe_console"
)

// session is a signed-in principal. The cookie holds a random 256-bit id;
// the server keeps the session under the id's SHA-256, in memory only.
type session struct {
	p auth.Principal
	// tokenHash is the API token's hash (KindToken): the token is checked
	// again at every request, so a revoked or expired one ends the
	// session at once. bearer is an ID token (KindOIDC), verified again
	// at every request until it expires.
	tokenHash []byte
	bearer    string
	// viaClient: bearer came from the console's OIDC client, and is
	// checked with its verifier (its audience is the console's client).
	viaClient bool
	// expires ends an OIDC session with its identity provider's word.
	expires time.Time
	csrf    string

	created time.Time
	mu      sync.Mutex
	seen    time.Time
	flash   string
}

// takeFlash returns the message a redirect left for the next page, once.
func (s *session) takeFlash() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	f := s.flash
	s.flash = ""
	return f
}

func (s *session) setFlash(msg string) {
	s.mu.Lock()
	s.flash = msg
	s.mu.Unlock()
}

// checkCSRF reports whether a POST carries the session's CSRF token, as
// the form field csrf or the header X-CSRF-Token (htmx).
func (s *session) checkCSRF(r *http.Request) bool {
	got := r.Header.Get("X-CSRF-Token")
	if got == "" {
		r.Body = http.MaxBytesReader(nil, r.Body, maxForm)
		got = r.PostFormValue("csrf")
	}
	return got != "" && subtle.ConstantTimeCompare([]byte(got), []byte(s.csrf)) == 1
}

// maxForm bounds a form's body.
const maxForm = 64 << 10

type sessions struct {
	idle, lifetime time.Duration

	mu    sync.Mutex
	byID  map[[32]byte]*session
	swept time.Time
}

func newSessions(idle, lifetime time.Duration) *sessions {
	return &sessions{idle: idle, lifetime: lifetime, byID: map[[32]byte]*session{}}
}

func random() string {
	var b [32]byte
	if _, err := rand.Read(b[:]); err != nil {
		panic(err) // crypto/rand does not fail on a supported platform
	}
	return base64.RawURLEncoding.EncodeToString(b[:])
}

func key(id string) [32]byte { return sha256.Sum256([]byte(id)) }

// start keeps s and returns its id.
func (ss *sessions) start(s *session, now time.Time) string {
	id := random()
	s.created, s.seen, s.csrf = now, now, random()
	ss.mu.Lock()
	defer ss.mu.Unlock()
	if now.Sub(ss.swept) > time.Minute {
		for k, o := range ss.byID {
			if ss.over(o, now) {
				delete(ss.byID, k)
			}
		}
		ss.swept = now
	}
	ss.byID[key(id)] = s
	return id
}

func (ss *sessions) over(s *session, now time.Time) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return now.Sub(s.seen) >= ss.idle || now.Sub(s.created) >= ss.lifetime || (!s.expires.IsZero() && !now.Before(s.expires))
}

// get returns the live session of id, touched, or why there is none.
func (ss *sessions) get(id string, now time.Time) (*session, string) {
	ss.mu.Lock()
	defer ss.mu.Unlock()
	s, ok := ss.byID[key(id)]
	if !ok {
		return nil, "none"
	}
	if ss.over(s, now) {
		delete(ss.byID, key(id))
		return nil, "expired"
	}
	s.mu.Lock()
	s.seen = now
	s.mu.Unlock()
	return s, ""
}

func (ss *sessions) end(id string) {
	ss.mu.Lock()
	delete(ss.byID, key(id))
	ss.mu.Unlock()
}

// peek returns the session of a request, if any, without checking its
// principal again: for the not-found page's header.
func (ss *sessions) peek(r *http.Request, now time.Time) *session {
	id := cookieValue(r)
	if id == "" {
		return nil
	}
	s, _ := ss.get(id, now)
	return s
}

func cookieValue(r *http.Request) string {
	for _, name := range []string{cookieNameTLS, cookieName} {
		if ck, err := r.Cookie(name); err == nil && ck.Value != "" {
			return ck.Value
		}
	}
	return ""
}

// session returns the request's live session with its principal checked
// again (a token revoked or expired since ends it), or why there is none.
func (c *Console) session(r *http.Request) (*session, string) {
	id := cookieValue(r)
	if id == "" {
		return nil, ""
	}
	s, why := c.sessions.get(id, c.cfg.Now())
	if s == nil {
		return nil, why
	}
	p, err := c.recheck(r.Context(), s)
	if err != nil {
		c.sessions.end(id)
		if errors.Is(err, auth.ErrInvalid) {
			c.log.Info("console: session ended, its credential no longer valid", "principal", s.p.ID)
			return nil, "revoked"
		}
		c.log.Error("console: could not check the session's credential", "err", err)
		return nil, "unavailable"
	}
	s.mu.Lock()
	s.p = p
	s.mu.Unlock()
	return s, ""
}

// recheck authenticates a session's credential again.
func (c *Console) recheck(ctx context.Context, s *session) (auth.Principal, error) {
	if s.tokenHash == nil {
		if s.viaClient && c.cfg.OIDC != nil {
			return c.cfg.OIDC.auth.Authenticate(ctx, s.bearer)
		}
		return c.cfg.Auth.Authenticate(ctx, s.bearer)
	}
	k, err := c.cfg.Tokens.Store.TokenByHash(ctx, s.tokenHash)
	switch {
	case errors.Is(err, store.ErrNotFound):
		return auth.Principal{}, auth.ErrInvalid
	case err != nil:
		return auth.Principal{}, err
	case !k.RevokedAt.IsZero(), !k.ExpiresAt.IsZero() && !c.cfg.Tokens.Now().Before(k.ExpiresAt):
		return auth.Principal{}, auth.ErrInvalid
	}
	return auth.Principal{Kind: auth.KindToken, ID: k.ID, Name: k.Name, Role: auth.Role(k.Role), Tenant: k.Tenant}, nil
}

// signIn starts a session for p and sets its cookie.
func (c *Console) signIn(w http.ResponseWriter, r *http.Request, s *session) {
	id := c.sessions.start(s, c.cfg.Now())
	ck := &http.Cookie{Name: cookieName, Value: id, Path: Prefix, HttpOnly: true, SameSite: http.SameSiteStrictMode}
	if r.TLS != nil {
		ck.Name, ck.Path, ck.Secure = cookieNameTLS, "/", true
	}
	http.SetCookie(w, ck)
	c.log.Info("console: signed in", "principal", s.p.ID, "kind", s.p.Kind, "role", s.p.Role, "tenant", s.p.Tenant)
}

func (c *Console) clearCookie(w http.ResponseWriter, r *http.Request) {
	ck := &http.Cookie{Name: cookieName, Value: "", Path: Prefix, MaxAge: -1, HttpOnly: true, SameSite: http.SameSiteStrictMode}
	if r.TLS != nil {
		ck.Name, ck.Path, ck.Secure = cookieNameTLS, "/", true
	}
	http.SetCookie(w, ck)
}

var signInReasons = map[string]string{
	"expired":     "Your session ended (idle too long, or too old): sign in again.",
	"revoked":     "The token of your session was revoked or has expired: sign in with a valid one.",
	"none":        "You are signed out.",
	"unavailable": "Your credential could not be checked just now: sign in again.",
	"out":         "You are signed out.",
}

type loginPage struct {
	Notice, Error string
	OIDC          bool
}

func (c *Console) handleLoginPage(w http.ResponseWriter, r *http.Request) {
	if s, _ := c.session(r); s != nil {
		http.Redirect(w, r, Prefix, http.StatusSeeOther)
		return
	}
	c.render(w, r, http.StatusOK, "login", nil, "Sign in", loginPage{Notice: signInReasons[r.URL.Query().Get("why")], OIDC: c.cfg.OIDC != nil})
}

// handleLogin signs in with an API token pasted in the form field token.
// Failures are counted per address: past a few, the address waits.
func (c *Console) handleLogin(w http.ResponseWriter, r *http.Request) {
	ip := clientIP(r)
	if !c.failures.has(ip, time.Now()) {
		w.Header().Set("Retry-After", "12")
		c.render(w, r, http.StatusTooManyRequests, "login", nil, "Sign in",
			loginPage{Error: "Too many failed sign-ins from this address: wait a minute and try again.", OIDC: c.cfg.OIDC != nil})
		return
	}
	r.Body = http.MaxBytesReader(w, r.Body, maxForm)
	token := strings.TrimSpace(r.PostFormValue("token"))
	p, err := c.cfg.Auth.Authenticate(r.Context(), token)
	if err != nil {
		if !errors.Is(err, auth.ErrInvalid) && !errors.Is(err, auth.ErrNoCredentials) {
			c.log.Error("console: sign-in", "err", err)
			c.render(w, r, http.StatusServiceUnavailable, "login", nil, "Sign in",
				loginPage{Error: "The token could not be checked just now: try again in a moment.", OIDC: c.cfg.OIDC != nil})
			return
		}
		c.failures.take(ip, time.Now())
		c.log.Info("console: sign-in refused", "addr", ip)
		msg := "This token is not valid: it may be mistyped, revoked or expired."
		if token == "" {
			msg = "Paste a token to sign in."
		}
		c.render(w, r, http.StatusUnauthorized, "login", nil, "Sign in", loginPage{Error: msg, OIDC: c.cfg.OIDC != nil})
		return
	}
	s := &session{p: p}
	if p.Kind == auth.KindToken {
		s.tokenHash = auth.Hash(token)
	} else {
		s.bearer = token
	}
	if old := cookieValue(r); old != "" {
		c.sessions.end(old) // a new session id at each sign-in
	}
	c.signIn(w, r, s)
	c.cfg.Tokens.Used(r.Context(), p)
	http.Redirect(w, r, Prefix, http.StatusSeeOther)
}

func (c *Console) handleLogout(w http.ResponseWriter, r *http.Request, s *session) {
	c.sessions.end(cookieValue(r))
	c.clearCookie(w, r)
	c.log.Info("console: signed out", "principal", s.p.ID)
	http.Redirect(w, r, Prefix+"login?why=out", http.StatusSeeOther)
}

// limiter is a token bucket per address of failed sign-ins.
type limiter struct {
	rate  rate.Limit
	burst int

	mu      sync.Mutex
	buckets map[string]*rate.Limiter
	swept   time.Time
}

func (l *limiter) bucket(key string, now time.Time) *rate.Limiter {
	if l.buckets == nil {
		l.buckets = map[string]*rate.Limiter{}
	}
	if now.Sub(l.swept) > 10*time.Minute {
		for k, b := range l.buckets {
			if b.TokensAt(now) >= float64(l.burst) {
				delete(l.buckets, k)
			}
		}
		l.swept = now
	}
	b, ok := l.buckets[key]
	if !ok {
		b = rate.NewLimiter(l.rate, l.burst)
		l.buckets[key] = b
	}
	return b
}

// has reports whether key may try again.
func (l *limiter) has(key string, now time.Time) bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.bucket(key, now).TokensAt(now) >= 1
}

// take counts a failure of key.
func (l *limiter) take(key string, now time.Time) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.bucket(key, now).AllowN(now, 1)
}
