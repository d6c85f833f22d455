package witness

import (
	"bytes"
	"context"
	"flag"
	"io"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	tlogwitness "github.com/lethe-dev/lethe/pkg/witness"
)

// syncBuffer is a bytes.Buffer the command writes while the test reads.
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

// The command as an operator runs it: logs from a file, the address and
// the verifier key printed, a checkpoint cosigned, a clean stop.
func TestMainServesAndStops(t *testing.T) {
	dir := t.TempDir()
	lg := newLog(t, testOrigin)
	logFile := filepath.Join(dir, "logs.txt")
	if err := os.WriteFile(logFile, []byte("# the demo log\n\n"+testOrigin+"="+lg.vkey+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	var out, errOut syncBuffer
	code := make(chan int, 1)
	state := filepath.Join(dir, "state")
	go func() {
		code <- Main(ctx, flag.NewFlagSet("lethe-witness", flag.ContinueOnError),
			[]string{"--state", state, "--listen", "127.0.0.1:0", "--name", "witness.example.org/w1", "--log-file", logFile},
			&out, &errOut)
	}()

	listening := regexp.MustCompile(`listening on (http://[0-9.:]+)/add-checkpoint\n`)
	var m []string
	for deadline := time.Now().Add(10 * time.Second); m == nil; time.Sleep(10 * time.Millisecond) {
		if m = listening.FindStringSubmatch(out.String()); m == nil && time.Now().After(deadline) {
			t.Fatalf("no address printed; out %q, err %q", out.String(), errOut.String())
		}
	}
	vkey, err := os.ReadFile(filepath.Join(state, VKeyFile))
	if err != nil || !strings.Contains(out.String(), string(vkey)) {
		t.Fatalf("printed %q, want the verifier key %q (%v)", out.String(), vkey, err)
	}
	v, err := tlogwitness.NewVerifier(string(vkey))
	if err != nil {
		t.Fatal(err)
	}
	tree := newTree(t, "honest", 3)
	c := &tlogwitness.Client{URL: m[1], Verifier: v}
	if _, err := c.AddCheckpoint(ctx, 0, nil, lg.checkpoint(t, tree, 3)); err != nil {
		t.Fatal(err)
	}
	cancel()
	select {
	case got := <-code:
		if got != 0 {
			t.Fatalf("exit code %d; stderr %s", got, errOut.String())
		}
	case <-time.After(10 * time.Second):
		t.Fatal("did not stop")
	}
	if strings.Contains(errOut.String(), "entry") {
		t.Errorf("log lines hold request content: %s", errOut.String())
	}
}

func TestMainRefusesBadFlags(t *testing.T) {
	vkey := newLog(t, testOrigin).vkey
	for _, tc := range []struct {
		name string
		args []string
	}{
		{"no name", []string{"--log", testOrigin + "=" + vkey}},
		{"no log", []string{"--name", "w.example/w"}},
		{"log without key", []string{"--name", "w.example/w", "--log", testOrigin}},
		{"missing log file", []string{"--name", "w.example/w", "--log-file", filepath.Join(t.TempDir(), "none")}},
		{"bad log level", []string{"--name", "w.example/w", "--log", testOrigin + "=" + vkey, "--log-level", "loud"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			args := append([]string{"--state", t.TempDir()}, tc.args...)
			if code := Main(context.Background(), flag.NewFlagSet("lethe-witness", flag.ContinueOnError), args, io.Discard, io.Discard); code != 2 {
				t.Fatalf("exit code %d, want 2", code)
			}
		})
	}
	// A key that is no log key is refused when the witness opens.
	args := []string{"--state", t.TempDir(), "--listen", "127.0.0.1:0", "--name", "w.example/w", "--log", testOrigin + "=not-a-key"}
	if code := Main(context.Background(), flag.NewFlagSet("lethe-witness", flag.ContinueOnError), args, io.Discard, io.Discard); code != 1 {
		t.Fatalf("exit code %d for a bad log key, want 1", code)
	}
}
