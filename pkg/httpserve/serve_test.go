package httpserve

import (
	"bufio"
	"context"
	"errors"
	"io"
	"net"
	"net/http"
	"strings"
	"sync/atomic"
	"testing"
	"time"
)

// A connection that was opened and has not sent a whole request (an HTTP
// client dials one ahead, then uses another) holds no work: stopping the
// server neither waits for it nor fails, and a request it finishes once
// the stop has begun is never taken. A request under way is answered in
// full.
func TestStopBesideQuietConnections(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	release := make(chan struct{})
	var taken atomic.Int32
	srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		taken.Add(1)
		<-release
		w.Write([]byte("done"))
	})}
	ctx, cancel := context.WithCancel(t.Context())
	stopped := make(chan error, 1)
	go func() { stopped <- Serve(ctx, srv, ln, "", "", 5*time.Second) }()
	const head, end = "GET / HTTP/1.1\r\nHost: lethe\r\n", "\r\n"
	quiet := map[string]net.Conn{}
	for _, name := range []string{"silent", "begun", "late"} {
		c, err := net.Dial("tcp", ln.Addr().String())
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		quiet[name] = c
	}
	if _, err := io.WriteString(quiet["begun"], head); err != nil {
		t.Fatal(err)
	}
	answered := make(chan string, 1)
	go func() {
		resp, err := http.Get("http://" + ln.Addr().String())
		if err != nil {
			answered <- err.Error()
			return
		}
		defer resp.Body.Close()
		answered <- resp.Status
	}()
	time.Sleep(100 * time.Millisecond) // the request is in its handler
	start := time.Now()
	cancel()
	time.Sleep(100 * time.Millisecond)
	io.WriteString(quiet["begun"], end) // a request finished once the stop has begun
	io.WriteString(quiet["late"], head+end)
	close(release)
	if got := <-answered; got != "200 OK" {
		t.Errorf("the request under way at the stop: %s, want 200 OK", got)
	}
	for name, c := range quiet {
		c.SetReadDeadline(time.Now().Add(5 * time.Second))
		if resp, err := http.ReadResponse(bufio.NewReader(c), nil); !errors.Is(err, io.EOF) && !errors.Is(err, io.ErrUnexpectedEOF) {
			t.Errorf("the %s connection: %v %v, want it closed unanswered", name, resp, err)
		}
	}
	if err := <-stopped; err != nil {
		t.Errorf("stop: %v", err)
	}
	if took := time.Since(start); took > 2*time.Second {
		t.Errorf("stopping took %v: it waited for a connection that sent no whole request", took)
	}
	if n := taken.Load(); n != 1 {
		t.Errorf("%d requests taken, want only the one under way", n)
	}
}

// Serve says when it could not serve, or a request outlasted the grace.
func TestServeFailures(t *testing.T) {
	hold := make(chan struct{})
	defer close(hold)
	for _, tc := range []struct {
		name    string
		closed  bool // the listener is closed before Serve
		request bool // a request is under way at the stop
		want    string
	}{
		{name: "listener closed", closed: true, want: "http: "},
		{name: "request outlasts the grace", request: true, want: "http: stop: context deadline exceeded"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ln, err := net.Listen("tcp", "127.0.0.1:0")
			if err != nil {
				t.Fatal(err)
			}
			if tc.closed {
				ln.Close()
			}
			slow := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { <-hold })}
			ctx, cancel := context.WithCancel(t.Context())
			stopped := make(chan error, 1)
			go func() { stopped <- Serve(ctx, slow, ln, "", "", 200*time.Millisecond) }()
			if tc.request {
				go http.Get("http://" + ln.Addr().String())
				time.Sleep(100 * time.Millisecond)
				cancel()
			}
			defer cancel()
			select {
			case err := <-stopped:
				if err == nil || !strings.HasPrefix(err.Error(), tc.want) {
					t.Errorf("Serve = %v, want an error starting %q", err, tc.want)
				}
			case <-time.After(5 * time.Second):
				t.Fatal("Serve did not return")
			}
		})
	}
}
