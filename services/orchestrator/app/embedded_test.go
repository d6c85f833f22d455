package app

import (
	"bytes"
	"context"
	"errors"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/lethe-dev/lethe/pkg/bus"
	"github.com/lethe-dev/lethe/pkg/bus/natsauth"
	"github.com/lethe-dev/lethe/pkg/bus/natsbus"
	"github.com/lethe-dev/lethe/services/orchestrator"
)

type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// The orchestrator's embedded NATS server makes a user per service at its
// first start, beside its data folder, lets in no one else, says so in its
// log (never a seed), and made the streams a connector needs.
func TestEmbeddedNATSUsers(t *testing.T) {
	root := t.TempDir()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	logs := &syncBuffer{}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() {
		done <- Run(ctx, Options{Listener: ln, DataDir: filepath.Join(root, "orchestrator"), BusURL: "embedded", NATSListen: "127.0.0.1:-1",
			Orchestrator: orchestrator.Config{Systems: []string{"accounts", "billing"}},
			Logger:       slog.New(slog.NewTextHandler(logs, nil))})
	}()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("Run: %v", err)
		}
	})
	waitHealthy(t, "http://"+ln.Addr().String(), logs)
	m := regexp.MustCompile(`msg="embedded NATS JetStream running: users loaded[^"]*" url=(\S+) users=(\S+)`).FindStringSubmatch(logs.String())
	if m == nil {
		t.Fatalf("the log does not say the users were loaded:\n%s", logs)
	}
	url := m[1]
	if m[2] != "orchestrator,accounts,billing,mailer" {
		t.Errorf("users %s", m[2])
	}
	for _, name := range []string{"orchestrator", "accounts", "billing", "mailer"} {
		seed, err := natsauth.ReadSeed(filepath.Join(root, name, "nats.seed"))
		if err != nil {
			t.Fatal(err)
		}
		if strings.Contains(logs.String(), string(seed)) {
			t.Fatalf("the log shows %s's seed", name)
		}
	}
	if _, err := nats.Connect(url, nats.MaxReconnects(0)); !errors.Is(err, nats.ErrAuthorization) {
		t.Errorf("anonymous client: %v, want refused", err)
	}
	// A connector with its seed finds its stream made: it consumes at once
	// and never asks to make one.
	seed, err := natsauth.ReadSeed(filepath.Join(root, "billing", "nats.seed"))
	if err != nil {
		t.Fatal(err)
	}
	clog := &syncBuffer{}
	b, err := natsbus.Connect(ctx, url, natsbus.Config{NKeySeed: seed, Logger: slog.New(slog.NewTextHandler(clog, nil))})
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	cctx, ccancel := context.WithCancel(ctx)
	defer ccancel()
	time.AfterFunc(2*time.Second, ccancel)
	if err := b.Consume(cctx, "task.billing", natsauth.ConnectorGroup("billing"), func(context.Context, *bus.Message) error { return nil }); err != nil {
		t.Fatal(err)
	}
	if s := clog.String(); strings.Contains(s, "may not create") || strings.Contains(s, "WARN") || strings.Contains(s, "ERROR") {
		t.Errorf("connector log:\n%s", s)
	}
	if fi, err := os.Stat(filepath.Join(root, "accounts", "nats.seed")); err != nil || fi.Mode().Perm() != 0o600 {
		t.Errorf("seed file: %v %v", fi, err)
	}
}

// waitHealthy waits, 30 s at most, for the API at base to answer /healthz.
func waitHealthy(t *testing.T, base string, logs *syncBuffer) {
	t.Helper()
	for end := time.Now().Add(30 * time.Second); ; time.Sleep(50 * time.Millisecond) {
		resp, err := http.Get(base + "/healthz")
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == 200 {
				return
			}
		}
		if time.Now().After(end) {
			t.Fatalf("not healthy: %s", logs)
		}
	}
}
