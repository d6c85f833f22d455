package main

import (
	"bytes"
	"context"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"
)

// Flags that cannot work are usage errors (exit 2) with a message that
// says which flag, before anything starts.
func TestBadFlags(t *testing.T) {
	dir := t.TempDir()
	badZone := filepath.Join(dir, "bad-zone.yaml")
	if err := os.WriteFile(badZone, []byte("tenants:\n  acme-fr: {time_zone: Europe/Nowhere}\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	badYAML := filepath.Join(dir, "bad-yaml.yaml")
	if err := os.WriteFile(badYAML, []byte("tenants: [unclosed\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name string
		args []string
		want []string
	}{
		{"missing tenants file", []string{"--tenants", filepath.Join(dir, "none.yaml")}, []string{"--tenants", "none.yaml", "no such file"}},
		{"unknown time zone", []string{"--tenants", badZone}, []string{"--tenants", "acme-fr", `unknown time zone "Europe/Nowhere"`}},
		{"malformed YAML", []string{"--tenants", badYAML}, []string{"--tenants", "tenants file"}},
		{"webhook not http", []string{"--notice-webhook", "ftp://example.com/hook"}, []string{"--notice-webhook must be an http:// or https:// URL"}},
		{"webhook without host", []string{"--notice-webhook", "https://"}, []string{"--notice-webhook"}},
		{"unknown flag", []string{"--tenant", "x"}, []string{"flag provided but not defined"}},
		{"stray argument", []string{"serve"}, []string{"unexpected arguments: serve"}},
		{"bad durability", []string{"--durability", "sometimes"}, []string{"--durability", `"sometimes"`, "want strict or fast"}},
		{"negative attempts", []string{"--max-attempts", "-1"}, []string{"cannot be negative"}},
		{"bad retry wait", []string{"--retry-initial", "soon"}, []string{`invalid value "soon" for flag -retry-initial`}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var stdout, stderr bytes.Buffer
			args := append([]string{"--data", t.TempDir()}, tc.args...)
			if code := run(context.Background(), args, &stdout, &stderr); code != 2 {
				t.Fatalf("exit %d, want 2; stderr: %s", code, stderr.String())
			}
			for _, w := range tc.want {
				if !strings.Contains(stderr.String(), w) {
					t.Errorf("stderr does not say %q: %s", w, stderr.String())
				}
			}
			if stdout.Len() > 0 {
				t.Errorf("something started: %s", stdout.String())
			}
		})
	}
}

// With a good tenants file, a webhook and fast durability the stack starts,
// shows its banner, takes a burst of calls from the operator's token (a
// deployed orchestrator's rate limit would turn most away), says how its
// embedded NATS server and stores sync, and stops cleanly when told to.
func TestRunsWithTenantsAndWebhook(t *testing.T) {
	dir := t.TempDir()
	tenants := filepath.Join(dir, "tenants.yaml")
	if err := os.WriteFile(tenants, []byte("tenants:\n  acme-fr: {time_zone: Europe/Paris, roll_to_working_day: true, holidays: [2026-12-25]}\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	stdout := &bannerWriter{started: make(chan struct{})}
	var stderr bytes.Buffer
	done := make(chan int, 1)
	go func() {
		done <- run(ctx, []string{"--data", filepath.Join(dir, "data"), "--listen", "127.0.0.1:0", "--nats-port", "-1",
			"--accounts-listen", "127.0.0.1:0", "--people", "3", "--tenants", tenants, "--notice-webhook", "http://127.0.0.1:9/hook",
			"--durability", "fast"}, stdout, &syncWriter{w: &stderr})
	}()
	select {
	case <-stdout.started:
	case code := <-done:
		t.Fatalf("exit %d before the banner", code)
	case <-time.After(60 * time.Second):
		t.Fatal("no banner after 60s")
	}
	operatorBurst(t, stdout.String(), filepath.Join(dir, "data", "admin.token"))
	cancel()
	select {
	case code := <-done:
		if code != 0 {
			t.Fatalf("exit %d after stop", code)
		}
	case <-time.After(60 * time.Second):
		t.Fatal("did not stop within 60s of being told to")
	}
	if !strings.Contains(stdout.String(), "Lethe is running") || !strings.Contains(stdout.String(), "lethe-dev stopped") {
		t.Errorf("stdout: %s", stdout.String())
	}
	for _, w := range []string{`sync="every 2m0s"`, "durability=fast"} {
		if !strings.Contains(stderr.String(), w) {
			t.Errorf("the log does not say %s: %s", w, stderr.String())
		}
	}
}

// A durability from the environment that is neither strict nor fast is a
// usage error too; the flag wins over the environment.
func TestDurabilityFromTheEnvironment(t *testing.T) {
	t.Setenv("LETHE_DURABILITY", "always")
	var stdout, stderr bytes.Buffer
	if code := run(context.Background(), []string{"--data", t.TempDir()}, &stdout, &stderr); code != 2 {
		t.Fatalf("exit %d, want 2; stderr: %s", code, stderr.String())
	}
	if !strings.Contains(stderr.String(), "LETHE_DURABILITY") || !strings.Contains(stderr.String(), "want strict or fast") {
		t.Errorf("stderr does not name the variable and the values: %s", stderr.String())
	}
	// --tenants of a missing file fails after the durability is read: exit
	// 2 naming --tenants shows a good --durability overrode the variable.
	stderr.Reset()
	args := []string{"--data", t.TempDir(), "--durability", "strict", "--tenants", filepath.Join(t.TempDir(), "none.yaml")}
	if code := run(context.Background(), args, &stdout, &stderr); code != 2 || !strings.Contains(stderr.String(), "--tenants") {
		t.Errorf("exit %d; stderr: %s", code, stderr.String())
	}
}

// bannerWriter closes started on the first write.
type bannerWriter struct {
	mu      sync.Mutex
	buf     bytes.Buffer
	started chan struct{}
	once    sync.Once
}

func (w *bannerWriter) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	defer w.once.Do(func() { close(w.started) })
	return w.buf.Write(p)
}

func (w *bannerWriter) String() string {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.buf.String()
}

type syncWriter struct {
	mu sync.Mutex
	w  *bytes.Buffer
}

func (w *syncWriter) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.w.Write(p)
}

// operatorBurst makes 200 calls at once with the operator's token to the
// API the banner names: none is turned away.
func operatorBurst(t *testing.T, banner, tokenFile string) {
	t.Helper()
	m := regexp.MustCompile(`API +(http://\S+)`).FindStringSubmatch(banner)
	if m == nil {
		t.Fatalf("no API address in the banner: %s", banner)
	}
	token, err := os.ReadFile(tokenFile)
	if err != nil {
		t.Fatal(err)
	}
	const calls = 200
	codes := make(chan int, calls)
	for range calls {
		go func() {
			req, _ := http.NewRequest(http.MethodGet, m[1]+"/v1/requests", nil)
			req.Header.Set("Authorization", "Bearer "+strings.TrimSpace(string(token)))
			res, err := http.DefaultClient.Do(req)
			if err != nil {
				codes <- 0
				return
			}
			res.Body.Close()
			codes <- res.StatusCode
		}()
	}
	for range calls {
		if code := <-codes; code != http.StatusOK {
			t.Fatalf("a call of the operator's burst answered %d", code)
		}
	}
}
