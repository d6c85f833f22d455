// Package httpserve runs an HTTP server until its context ends, then
// stops it: requests under way are answered in full, and connections that
// never sent a whole request neither hold the stop nor fail it.
package httpserve

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"sync"
	"time"
)

// Serve serves srv on ln (over TLS when cert is set) until ctx ends, then
// stops it, waiting at most grace for the requests under way. It returns
// nil after a clean stop (or when srv was closed by its owner), and an
// error when serving failed or the requests under way outlasted grace.
func Serve(ctx context.Context, srv *http.Server, ln net.Listener, cert, key string, grace time.Duration) error {
	trackFresh(srv)
	served := make(chan error, 1)
	go func() {
		if cert != "" {
			served <- srv.ServeTLS(ln, cert, key)
		} else {
			served <- srv.Serve(ln)
		}
	}()
	select {
	case err := <-served:
		if errors.Is(err, http.ErrServerClosed) {
			return nil // closed by its owner
		}
		return fmt.Errorf("http: %w", err)
	case <-ctx.Done():
	}
	sctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), grace)
	defer cancel()
	if err := srv.Shutdown(sctx); err != nil {
		return fmt.Errorf("http: stop: %w", err)
	}
	if err := <-served; !errors.Is(err, http.ErrServerClosed) {
		return fmt.Errorf("http: %w", err)
	}
	return nil
}

// freshConns are a server's connections that have not sent a whole
// request yet. Shutdown waits for requests under way and closes idle
// connections, but takes one that has sent nothing for a request about to
// come and waits 5 s for it: as long as a usual grace. An HTTP client
// dials such connections ahead (two requests at once, one served on the
// other's connection), so a clean stop failed with a deadline. They hold
// no work: once Shutdown has begun, the server drops a request whose
// header it finishes reading unanswered, so cutting them (and those
// accepted while the listener closes) takes nothing the server would
// have served. close runs on Shutdown, after it has begun, for that.
type freshConns struct {
	mu      sync.Mutex
	conns   map[net.Conn]bool
	closing bool
}

// trackFresh follows srv's connections through srv.ConnState.
func trackFresh(srv *http.Server) {
	f := &freshConns{conns: map[net.Conn]bool{}}
	srv.RegisterOnShutdown(f.close)
	next := srv.ConnState
	srv.ConnState = func(c net.Conn, st http.ConnState) {
		f.mu.Lock()
		switch {
		case st == http.StateNew && f.closing:
			c.Close()
		case st == http.StateNew:
			f.conns[c] = true
		default:
			delete(f.conns, c)
		}
		f.mu.Unlock()
		if next != nil {
			next(c, st)
		}
	}
}

// close cuts the connections that have sent nothing, now and from now on.
func (f *freshConns) close() {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.closing = true
	for c := range f.conns {
		c.Close()
	}
	clear(f.conns)
}
