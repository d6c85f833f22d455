package app

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/lethe-dev/lethe/pkg/sqlitedb"
	"github.com/lethe-dev/lethe/services/orchestrator"
)

// A stop (SIGTERM: cmd/orchestrator cancels Run's context) drains the
// calls in flight, each answered in full or refused before it was taken,
// releases the outbox's leases, returns nil within a bound, and leaves no
// goroutine behind.
func TestGracefulStop(t *testing.T) {
	before := goleak.IgnoreCurrent()
	root := t.TempDir()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	logs := &syncBuffer{}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	tokenFile := filepath.Join(root, "admin.token")
	go func() {
		done <- Run(ctx, Options{Listener: ln, DataDir: filepath.Join(root, "orchestrator"), BusURL: "embedded", NATSListen: "127.0.0.1:-1",
			AdminTokenFile: tokenFile, Orchestrator: orchestrator.Config{Systems: []string{"accounts"}, RateLimit: -1}, // calls race, unthrottled
			Logger: slog.New(slog.NewTextHandler(logs, nil))})
	}()
	api := "http://" + ln.Addr().String()
	waitHealthy(t, api, logs)
	token, err := os.ReadFile(tokenFile)
	if err != nil {
		t.Fatal(err)
	}
	client := &http.Client{Transport: &http.Transport{DisableKeepAlives: true}}
	submit := func() (int, error) {
		req, _ := http.NewRequest("POST", api+"/v1/requests", strings.NewReader(`{"type":"erasure","tenant":"demo","subject":{"email":"person-0042@example.com"},"verified":true}`))
		req.Header.Set("Authorization", "Bearer "+strings.TrimSpace(string(token)))
		req.Header.Set("Content-Type", "application/json")
		resp, err := client.Do(req)
		if err != nil {
			return 0, err
		}
		defer resp.Body.Close()
		if _, err := io.ReadAll(resp.Body); err != nil {
			return 0, err
		}
		return resp.StatusCode, nil
	}
	if code, err := submit(); code != http.StatusAccepted {
		t.Fatalf("submit = %d %v", code, err)
	}

	// Calls racing the stop: each is answered in full (202), or refused
	// before it was taken: the dial fails, or the connection was still in
	// the kernel's accept queue when the listener closed, or had not sent
	// its whole request when the stop began, and is closed unanswered
	// ("reset": the store then shows it changed nothing). None is cut off
	// once taken, or a 5xx.
	var wg sync.WaitGroup
	var mu sync.Mutex
	codes := map[string]int{}
	for range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				code, err := submit()
				var op *net.OpError
				outcome := fmt.Sprint(code)
				switch {
				case errors.As(err, &op) && op.Op == "dial":
					outcome = "refused"
				case err != nil && (strings.Contains(err.Error(), "connection reset by peer") || strings.HasSuffix(err.Error(), ": EOF") ||
					strings.Contains(err.Error(), "server closed idle connection")):
					outcome = "reset"
				case err != nil:
					outcome = "cut off: " + err.Error()
				}
				mu.Lock()
				codes[outcome]++
				mu.Unlock()
				if code != http.StatusAccepted {
					return
				}
			}
		}()
	}
	time.Sleep(300 * time.Millisecond)
	start := time.Now()
	cancel()
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("Run after a stop: %v", err)
		}
	case <-time.After(20 * time.Second):
		t.Fatal("Run did not return within 20 s of the stop")
	}
	stopped := time.Since(start)
	wg.Wait()
	t.Logf("stopped in %s; calls racing it: %v", stopped.Round(time.Millisecond), codes)
	for outcome := range codes {
		if outcome != "202" && outcome != "refused" && outcome != "reset" {
			t.Errorf("a call racing the stop: %s", outcome)
		}
	}
	if codes["202"] == 0 {
		t.Error("no call was taken before the stop: the test proves nothing")
	}

	// No lease is left: another replica takes the outbox at once.
	db, err := sqlitedb.Open(filepath.Join(root, "orchestrator", "lethe.db"))
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	var leased, waiting int
	if err := db.QueryRow(`SELECT count(*) FROM outbox WHERE claimed_by IS NOT NULL`).Scan(&leased); err != nil {
		t.Fatal(err)
	}
	if err := db.QueryRow(`SELECT count(*) FROM requests`).Scan(&waiting); err != nil {
		t.Fatal(err)
	}
	if leased != 0 || waiting == 0 {
		t.Errorf("after the stop: %d outbox leases left, %d requests stored", leased, waiting)
	}
	// A reset call was never taken: every stored request is one answered
	// 202 (the first submit included).
	if waiting != codes["202"]+1 {
		t.Errorf("%d requests stored, %d answered 202 (and the first): a call cut off after it was taken changed the store", waiting, codes["202"])
	}
	db.Close()
	goleak.VerifyNone(t, before)
}
