package connectorcmd

import (
	"context"
	"errors"
	"flag"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/lethe-dev/lethe/pkg/blob"
	"github.com/lethe-dev/lethe/pkg/bus/busurl"
	"github.com/lethe-dev/lethe/pkg/bus/natsauth"
	"github.com/lethe-dev/lethe/pkg/bus/natsbus"
	"github.com/lethe-dev/lethe/pkg/connector"
	"github.com/lethe-dev/lethe/pkg/durability"
	"github.com/lethe-dev/lethe/pkg/proof"
)

type nothing struct{}

func (nothing) Erase(context.Context, connector.Task) (connector.Result, error) {
	return connector.Result{Outcome: connector.NotFound}, nil
}

func (nothing) Export(context.Context, connector.Task) (connector.Result, error) {
	return connector.Result{Outcome: connector.NotFound}, nil
}

func opener(sys connector.System) connector.Opener {
	return func(context.Context, connector.Env) (connector.System, error) { return sys, nil }
}

// mainWith runs Main as a binary started with args would.
func mainWith(t *testing.T, args ...string) int {
	t.Helper()
	saved := os.Args
	t.Cleanup(func() { os.Args = saved })
	os.Args = append([]string{"sys"}, args...)
	fs := flag.NewFlagSet("sys", flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	return Main("sys", fs, opener(nothing{}))
}

func TestMainExitCodes(t *testing.T) {
	t.Setenv("LETHE_BUS", "")
	t.Setenv("LETHE_NATS", "")
	t.Setenv(durability.EnvVar, "")
	data := t.TempDir()
	for _, tc := range []struct {
		name string
		env  map[string]string
		args []string
		want int
	}{
		{"unknown flag", nil, []string{"--no-such-flag"}, 2},
		{"bad log level", nil, []string{"--log-level=loud"}, 2},
		{"bad durability", nil, []string{"--durability=sometimes", "--data", data}, 2},
		{"bad durability from the environment", map[string]string{durability.EnvVar: "always"}, []string{"--data", data}, 2},
		{"fast durability, bad bus URL", nil, []string{"--durability=fast", "--bus=bogus://x", "--data", data}, 1},
		{"bad bus URL", nil, []string{"--bus=bogus://x", "--data", data}, 1},
		{"bad bus URL, older flag", nil, []string{"--nats=bogus://x", "--data", data}, 1},
		{"bad bus URL from the environment", map[string]string{"LETHE_BUS": "bogus://x"}, []string{"--data", data}, 1},
		{"bad bus URL from the older variable", map[string]string{"LETHE_NATS": "bogus://x"}, []string{"--data", data}, 1},
	} {
		t.Run(tc.name, func(t *testing.T) {
			for k, v := range tc.env {
				t.Setenv(k, v)
			}
			if got := mainWith(t, tc.args...); got != tc.want {
				t.Errorf("Main(%q) = %d, want %d", tc.args, got, tc.want)
			}
		})
	}
}

// A durability that is neither strict nor fast stops the connector before
// it starts, saying which values it takes, whether it came from the flag or
// the environment.
func TestBadDurability(t *testing.T) {
	for _, tc := range []struct{ env, flag string }{{"", "--durability=sometimes"}, {"always", ""}} {
		t.Setenv(durability.EnvVar, tc.env)
		saved := os.Args
		t.Cleanup(func() { os.Args = saved })
		os.Args = []string{"sys", "--data", t.TempDir()}
		if tc.flag != "" {
			os.Args = append(os.Args, tc.flag)
		}
		var out strings.Builder
		fs := flag.NewFlagSet("sys", flag.ContinueOnError)
		fs.SetOutput(&out)
		if code := Main("sys", fs, opener(nothing{})); code != 2 {
			t.Errorf("%q: exit %d, want 2", os.Args, code)
		}
		if !strings.Contains(out.String(), "--durability") || !strings.Contains(out.String(), "want strict or fast") {
			t.Errorf("%q: the message does not name the flag and its values: %q", os.Args, out.String())
		}
	}
}

func TestServe(t *testing.T) {
	srv, err := natsbus.StartEmbedded(t.TempDir(), "127.0.0.1", -1, nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(srv.Shutdown)
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	orchestratorKey := func(t *testing.T) string {
		path := filepath.Join(t.TempDir(), "signing.key")
		if _, err := proof.LoadOrCreateSigner(path, proof.RoleOrchestrator, time.Now()); err != nil {
			t.Fatal(err)
		}
		return path + ".pub"
	}

	t.Run("serves until cancelled", func(t *testing.T) {
		data := t.TempDir()
		ctx, cancel := context.WithCancel(context.Background())
		var env connector.Env
		blobs, err := blob.NewFS(t.TempDir())
		if err != nil {
			t.Fatal(err)
		}
		open := func(_ context.Context, e connector.Env) (connector.System, error) {
			env = e
			cancel() // Start then serves until it sees ctx is done
			return nothing{}, nil
		}
		if err := serve(ctx, "sys", srv.URL(), busurl.Options{}, data, durability.Fast, blobs, nil, 0, "", orchestratorKey(t), log, open); err != nil {
			t.Fatal(err)
		}
		if env.DataDir != data || env.Bus == nil || env.Registerer == nil || env.Logger == nil || env.Durability != durability.Fast || env.Blobs != blobs {
			t.Errorf("env = %+v", env)
		}
		if _, err := os.Stat(filepath.Join(data, "signing.key.pub")); err != nil {
			t.Errorf("no signing key written: %v", err)
		}
	})
	t.Run("a system that cannot be seeded", func(t *testing.T) {
		err := serve(context.Background(), "sys", srv.URL(), busurl.Options{}, t.TempDir(), durability.Strict, nil, nil, 3, "", orchestratorKey(t), log, opener(nothing{}))
		if err == nil || !strings.Contains(err.Error(), "cannot be seeded") {
			t.Fatalf("err = %v", err)
		}
	})
	t.Run("a system that does not open", func(t *testing.T) {
		boom := errors.New("boom")
		open := func(context.Context, connector.Env) (connector.System, error) { return nil, boom }
		if err := serve(context.Background(), "sys", srv.URL(), busurl.Options{}, t.TempDir(), durability.Strict, nil, nil, 0, "", orchestratorKey(t), log, open); !errors.Is(err, boom) {
			t.Fatalf("err = %v", err)
		}
	})
}

// On a server that lets in its users only, a connector connects as the
// user whose seed is in its data folder, and says where it looked when
// there is none.
func TestServeAsItsUser(t *testing.T) {
	t.Setenv(busurl.EnvNKeySeed, "")
	saved := fileWait
	fileWait = 300 * time.Millisecond
	t.Cleanup(func() { fileWait = saved })
	root := t.TempDir()
	users, err := natsauth.Ensure(root, natsauth.Config{Systems: []string{"sys"}})
	if err != nil {
		t.Fatal(err)
	}
	srv, err := natsbus.StartEmbedded(t.TempDir(), "127.0.0.1", -1, users.ServerUsers())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(srv.Shutdown)
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	key := filepath.Join(t.TempDir(), "signing.key")
	if _, err := proof.LoadOrCreateSigner(key, proof.RoleOrchestrator, time.Now()); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	open := func(context.Context, connector.Env) (connector.System, error) { cancel(); return nothing{}, nil }
	if err := serve(ctx, "sys", srv.URL(), busurl.Options{}, filepath.Join(root, "sys"), durability.Strict, nil, nil, 0, "", key+".pub", log, open); err != nil {
		t.Fatal(err)
	}
	empty := t.TempDir()
	err = serve(context.Background(), "sys", srv.URL(), busurl.Options{}, empty, durability.Strict, nil, nil, 0, "", key+".pub", log, opener(nothing{}))
	if err == nil || !strings.Contains(err.Error(), "no NATS user seed in "+filepath.Join(empty, "nats.seed")) {
		t.Fatalf("err = %v", err)
	}
	// A seed that appears a moment later (the orchestrator started with
	// it) is waited for.
	fileWait = 10 * time.Second
	later := t.TempDir()
	go func() {
		time.Sleep(500 * time.Millisecond)
		seed, err := os.ReadFile(filepath.Join(root, "sys", "nats.seed"))
		if err == nil {
			err = os.WriteFile(filepath.Join(later, "nats.seed"), seed, 0o600)
		}
		if err != nil {
			t.Error(err)
		}
	}()
	ctx, cancel = context.WithCancel(context.Background())
	defer cancel()
	if err := serve(ctx, "sys", srv.URL(), busurl.Options{}, later, durability.Strict, nil, nil, 0, "", key+".pub", log, open); err != nil {
		t.Fatal(err)
	}
}

func TestMetricsMux(t *testing.T) {
	reg := prometheus.NewRegistry()
	reg.MustRegister(prometheus.NewCounter(prometheus.CounterOpts{Name: "lethe_test_total", Help: "A test counter."}))
	srv := httptest.NewServer(metricsMux(reg))
	defer srv.Close()
	for _, tc := range []struct {
		method, path string
		code         int
		body         string
	}{
		{"GET", "/healthz", 200, "ok\n"},
		{"GET", "/metrics", 200, "lethe_test_total 0"},
		{"POST", "/metrics", 405, ""},
		{"GET", "/", 404, ""},
	} {
		req, _ := http.NewRequest(tc.method, srv.URL+tc.path, nil)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != tc.code || !strings.Contains(string(b), tc.body) {
			t.Errorf("%s %s = %d %q, want %d with %q", tc.method, tc.path, resp.StatusCode, b, tc.code, tc.body)
		}
	}
}
