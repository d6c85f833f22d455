package httpapi

import (
	"context"
	"errors"
	"math"
	"mime"
	"net"
	"net/http"
	"slices"
	"strconv"
	"sync"
	"time"

	"golang.org/x/time/rate"

	"github.com/lethe-dev/lethe/pkg/proof"
	"github.com/lethe-dev/lethe/services/orchestrator/auth"
)

// Every route but /healthz passes one guard, in this order, each refusal
// changing nothing:
//  1. a browser's cross-site call: an Origin not allowed is 403, and a
//     state-changing call that is not application/json is 415 (a form or
//     a text/plain fetch cannot send JSON without a preflight);
//  2. who calls: no or a bad bearer token is 401;
//  3. how often: past the caller's rate, 429 with Retry-After;
//  4. what the role may do: 403.
// Then the handler runs under a deadline, with the principal in its
// context; it checks the tenant of what it touches (another tenant's
// request is 404, as a missing one is).

// DefaultHandlerTimeout bounds a handler; downloads get DownloadTimeout,
// and an export bundle (gigabytes of recordings) ExportTimeout.
const (
	DefaultHandlerTimeout = 15 * time.Second
	DownloadTimeout       = 2 * time.Minute
	ExportTimeout         = 2 * time.Hour
)

type principalKey struct{}

// who is the principal a guarded handler serves.
func who(r *http.Request) auth.Principal {
	p, _ := r.Context().Value(principalKey{}).(auth.Principal)
	return p
}

// actor is the principal as the log names it.
func actor(p auth.Principal) *proof.Actor {
	return &proof.Actor{Kind: p.Kind, ID: p.ID, Name: p.Name, Role: string(p.Role)}
}

// route is one endpoint: the roles allowed and the handler's deadline.
// A route byLink also serves a caller with no token but a download link
// (?link=), which the handler checks: the data subject, who has no
// account.
type route struct {
	roles   []auth.Role
	timeout time.Duration
	byLink  bool
	h       http.HandlerFunc
}

func roles(r ...auth.Role) []auth.Role { return r }

var (
	anyRole  = roles(auth.Admin, auth.DPO, auth.Intake, auth.Auditor)
	readers  = roles(auth.Admin, auth.DPO, auth.Auditor)
	deciders = roles(auth.Admin, auth.DPO)
	admins   = roles(auth.Admin)
)

// guard wraps a route's handler in the checks above.
func (a *API) guard(rt route) http.Handler {
	timeout := rt.timeout
	if timeout == 0 {
		timeout = a.opts.HandlerTimeout
	}
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if !a.origin(w, r) {
			return
		}
		if r.Method != http.MethodGet && r.Method != http.MethodHead && !isJSON(r.Header.Get("Content-Type")) {
			writeError(w, http.StatusUnsupportedMediaType, "a state-changing call must be sent as content-type: application/json")
			return
		}
		if rt.byLink && r.Header.Get("Authorization") == "" && r.URL.Query().Has("link") {
			// Guessing links is what a caller without a token could try:
			// every try counts against its address, whatever the rate limit.
			if !a.allowLink(w, clientIP(r)) {
				return
			}
			ctx, cancel := context.WithTimeout(r.Context(), timeout)
			defer cancel()
			rt.h(w, r.WithContext(ctx))
			return
		}
		p, err := a.opts.Auth.Authenticate(r.Context(), auth.Bearer(r.Header.Get("Authorization")))
		if err != nil {
			if !a.allow(w, "ip:"+clientIP(r)) {
				return
			}
			if !errors.Is(err, auth.ErrInvalid) && !errors.Is(err, auth.ErrNoCredentials) {
				a.log.Error("authentication", "err", err)
				writeError(w, http.StatusServiceUnavailable, "could not check the token")
				return
			}
			w.Header().Set("WWW-Authenticate", `Bearer realm="lethe"`)
			writeError(w, http.StatusUnauthorized, err.Error())
			return
		}
		if !a.allow(w, p.Kind+":"+p.ID) {
			return
		}
		if !slices.Contains(rt.roles, p.Role) {
			writeError(w, http.StatusForbidden, "the role "+string(p.Role)+" may not do this")
			return
		}
		if a.opts.Tokens != nil {
			a.opts.Tokens.Used(r.Context(), p)
		}
		ctx, cancel := context.WithTimeout(context.WithValue(r.Context(), principalKey{}, p), timeout)
		defer cancel()
		rt.h(w, r.WithContext(ctx))
	})
}

// public guards a read anyone may make (the log, for mirrors and
// witnesses): no token, the caller's address rate-limited, the handler
// timeout.
func (a *API) public(h http.HandlerFunc) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if !a.allow(w, "ip:"+clientIP(r)) {
			return
		}
		ctx, cancel := context.WithTimeout(r.Context(), a.opts.HandlerTimeout)
		defer cancel()
		h(w, r.WithContext(ctx))
	})
}

// origin refuses a call from a browser origin not allowed (403), and
// gives an allowed one the CORS headers its browser needs. A call
// without an Origin (curl, lethectl, a server) gets none.
func (a *API) origin(w http.ResponseWriter, r *http.Request) bool {
	o := r.Header.Get("Origin")
	if o == "" {
		return true
	}
	if !slices.Contains(a.opts.AllowedOrigins, o) {
		writeError(w, http.StatusForbidden, "requests from this origin are not allowed (see --allowed-origins)")
		return false
	}
	h := w.Header()
	h.Set("Access-Control-Allow-Origin", o)
	h.Add("Vary", "Origin")
	return true
}

// handlePreflight answers a browser's CORS preflight: for an allowed
// origin, which methods and headers its call may use.
func (a *API) handlePreflight(w http.ResponseWriter, r *http.Request) {
	if r.Header.Get("Origin") == "" || !a.origin(w, r) {
		if r.Header.Get("Origin") == "" {
			writeError(w, http.StatusNotFound, "no such endpoint")
		}
		return
	}
	h := w.Header()
	h.Set("Access-Control-Allow-Methods", "GET, POST, DELETE")
	h.Set("Access-Control-Allow-Headers", "Authorization, Content-Type")
	h.Set("Access-Control-Max-Age", "600")
	w.WriteHeader(http.StatusNoContent)
}

func isJSON(contentType string) bool {
	mt, _, err := mime.ParseMediaType(contentType)
	return err == nil && mt == "application/json"
}

func clientIP(r *http.Request) string {
	host, _, err := net.SplitHostPort(r.RemoteAddr)
	if err != nil {
		return r.RemoteAddr
	}
	return host
}

// limiter is a token bucket per caller (a token, an OIDC subject, or the
// address of calls that did not authenticate).
type limiter struct {
	rate  rate.Limit
	burst int

	mu      sync.Mutex
	buckets map[string]*bucket
	swept   time.Time
}

type bucket struct {
	l    *rate.Limiter
	seen time.Time
}

// allow takes one call from key's bucket, or answers 429 with the wait.
func (a *API) allow(w http.ResponseWriter, key string) bool { return allowBy(w, a.limits, key) }

// allowLink takes one try of a download link from an address's bucket.
func (a *API) allowLink(w http.ResponseWriter, ip string) bool { return allowBy(w, a.linkTries, ip) }

func allowBy(w http.ResponseWriter, l *limiter, key string) bool {
	if l == nil {
		return true
	}
	ok, wait := l.take(key, time.Now())
	if ok {
		return true
	}
	w.Header().Set("Retry-After", strconv.Itoa(int(math.Ceil(max(wait.Seconds(), 1)))))
	writeError(w, http.StatusTooManyRequests, "too many requests: slow down")
	return false
}

func (l *limiter) take(key string, now time.Time) (bool, time.Duration) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.buckets == nil {
		l.buckets = map[string]*bucket{}
	}
	if now.Sub(l.swept) > 10*time.Minute {
		// Forget callers idle long enough to have a full bucket again.
		for k, b := range l.buckets {
			if now.Sub(b.seen) > 10*time.Minute {
				delete(l.buckets, k)
			}
		}
		l.swept = now
	}
	b, ok := l.buckets[key]
	if !ok {
		b = &bucket{l: rate.NewLimiter(l.rate, l.burst)}
		l.buckets[key] = b
	}
	b.seen = now
	res := b.l.ReserveN(now, 1)
	if d := res.DelayFrom(now); d > 0 {
		res.CancelAt(now)
		return false, d
	}
	return true, 0
}
