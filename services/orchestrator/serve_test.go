package orchestrator

import (
	"context"
	"net"
	"net/http"
	"testing"
	"time"

	"golang.org/x/sync/errgroup"
)

// A connection that was opened and never sent a request (an HTTP client
// dials one ahead, then uses another) holds no work: stopping the server
// neither waits for it nor fails. A request under way is still finished.
func TestServeStopsBesideAnIdleNewConnection(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	release := make(chan struct{})
	srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		<-release
		w.Write([]byte("done"))
	})}
	ctx, cancel := context.WithCancel(t.Context())
	g, gctx := errgroup.WithContext(ctx)
	serve(gctx, g, srv, ln, "", "")
	silent, err := net.Dial("tcp", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer silent.Close()
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
	close(release)
	if got := <-answered; got != "200 OK" {
		t.Errorf("the request under way at the stop: %s, want 200 OK", got)
	}
	if err := g.Wait(); err != nil {
		t.Errorf("stop: %v", err)
	}
	if took := time.Since(start); took > 2*time.Second {
		t.Errorf("stopping took %v: it waited for the connection that sent nothing", took)
	}
}
