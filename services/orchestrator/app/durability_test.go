package app

import (
	"context"
	"flag"
	"log/slog"
	"net"
	"path/filepath"
	"strings"
	"testing"

	"github.com/lethe-dev/lethe/pkg/durability"
	"github.com/lethe-dev/lethe/services/orchestrator"
)

// A durability that is neither strict nor fast, from the flag or the
// environment, stops the orchestrator before it starts (exit 2), saying
// which values it takes.
func TestBadDurability(t *testing.T) {
	for _, tc := range []struct{ env, flag string }{{"", "--durability=sometimes"}, {"always", ""}, {"", "--durability="}} {
		t.Setenv(durability.EnvVar, tc.env)
		args := []string{"--data", t.TempDir()}
		if tc.flag != "" {
			args = append(args, tc.flag)
		}
		var out strings.Builder
		fs := flag.NewFlagSet("orchestrator", flag.ContinueOnError)
		fs.SetOutput(&out)
		if code := Main(context.Background(), fs, args); code != 2 {
			t.Errorf("env %q, args %q: exit %d, want 2", tc.env, args, code)
		}
		if msg := out.String(); !strings.Contains(msg, "--durability") || !strings.Contains(msg, "want strict or fast") {
			t.Errorf("env %q, args %q: the message does not name the flag and its values: %q", tc.env, args, msg)
		}
	}
}

// The embedded NATS server syncs each write unless the orchestrator runs
// fast, and the log says which.
func TestDurabilityOfEmbeddedNATS(t *testing.T) {
	for _, tc := range []struct {
		mode durability.Mode
		want []string
	}{
		{durability.Strict, []string{"sync=always", "durability=strict"}},
		{durability.Fast, []string{`sync="every 2m0s"`, "level=WARN msg=\"durability fast", "durability=fast"}},
	} {
		t.Run(tc.mode.String(), func(t *testing.T) {
			ln, err := net.Listen("tcp", "127.0.0.1:0")
			if err != nil {
				t.Fatal(err)
			}
			logs := &syncBuffer{}
			ctx, cancel := context.WithCancel(context.Background())
			done := make(chan error, 1)
			go func() {
				done <- Run(ctx, Options{Listener: ln, DataDir: filepath.Join(t.TempDir(), "orchestrator"), BusURL: "embedded", NATSListen: "127.0.0.1:-1",
					Durability: tc.mode, Orchestrator: orchestrator.Config{Systems: []string{"accounts"}},
					Logger: slog.New(slog.NewTextHandler(logs, nil))})
			}()
			defer func() {
				cancel()
				if err := <-done; err != nil {
					t.Errorf("Run: %v", err)
				}
			}()
			waitHealthy(t, "http://"+ln.Addr().String(), logs)
			for _, w := range tc.want {
				if !strings.Contains(logs.String(), w) {
					t.Errorf("the log does not say %s:\n%s", w, logs)
				}
			}
		})
	}
}
