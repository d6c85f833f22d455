package app

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/lethe-dev/lethe/pkg/bus/natsauth"
)

// nats-config writes a seed per service and the server's authorization
// block; run again, it keeps every key.
func TestNATSConfig(t *testing.T) {
	out := filepath.Join(t.TempDir(), "nats")
	run := func(args ...string) (int, string, string) {
		var stdout, stderr bytes.Buffer
		code := NATSConfig(args, &stdout, &stderr)
		return code, stdout.String(), stderr.String()
	}
	code, stdout, stderr := run("--out", out, "--systems", "accounts,crm")
	if code != 0 {
		t.Fatalf("exit %d: %s", code, stderr)
	}
	conf, err := os.ReadFile(filepath.Join(out, "nats-users.conf"))
	if err != nil {
		t.Fatal(err)
	}
	for _, name := range []string{"orchestrator", "accounts", "crm", "mailer"} {
		seed, err := natsauth.ReadSeed(filepath.Join(out, name, "nats.seed"))
		if err != nil {
			t.Fatal(err)
		}
		if strings.Contains(string(conf), string(seed)) || strings.Contains(stdout, string(seed)) {
			t.Fatalf("%s's seed is shown", name)
		}
		if !strings.Contains(stdout, filepath.Join(out, name, "nats.seed")+" ") || !strings.Contains(string(conf), "# "+name+"\n") {
			t.Errorf("%s is not listed:\n%s", name, stdout)
		}
	}
	// accounts publishes account events by default, crm does not.
	if !strings.Contains(string(conf), `"lethe.event.account-deleted"`) || strings.Count(string(conf), `"lethe.event.account-deleted"`) != 1 {
		t.Errorf("account events:\n%s", conf)
	}
	if fi, _ := os.Stat(filepath.Join(out, "nats-users.conf")); fi.Mode().Perm() != 0o600 {
		t.Errorf("conf file %v", fi.Mode().Perm())
	}
	code, stdout, _ = run("--out", out, "--systems", "accounts,crm")
	if code != 0 || strings.Contains(stdout, "made") {
		t.Errorf("second run: exit %d\n%s", code, stdout)
	}
	again, err := os.ReadFile(filepath.Join(out, "nats-users.conf"))
	if err != nil || !bytes.Equal(again, conf) {
		t.Errorf("the second run changed the users: %v", err)
	}
	// No account events at all, another prefix, another conf file.
	confPath := filepath.Join(t.TempDir(), "users.conf")
	if code, _, stderr := run("--out", out, "--systems", "accounts", "--account-events", "", "--prefix", "acme", "--conf", confPath); code != 0 {
		t.Fatalf("exit %d: %s", code, stderr)
	}
	other, _ := os.ReadFile(confPath)
	if strings.Contains(string(other), `"acme.event.account-deleted"`) || !strings.Contains(string(other), `"acme.task.>"`) {
		t.Errorf("prefix acme, no events:\n%s", other)
	}

	for _, tc := range []struct {
		args []string
		says string
	}{
		{nil, "--out DIR is required"},
		{[]string{"--out", out, "extra"}, "--out DIR is required"},
		{[]string{"--out", out, "--systems", "a.b"}, `system "a.b"`},
		{[]string{"--out", out, "--systems", "billing", "--account-events", "accounts"}, "not among the systems"},
		{[]string{"--bogus"}, "flag provided but not defined"},
	} {
		if code, _, stderr := run(tc.args...); code != 2 || !strings.Contains(stderr, tc.says) {
			t.Errorf("%q: exit %d, %s; want 2 and %q", tc.args, code, stderr, tc.says)
		}
	}
}

func TestDefaultNATSUsers(t *testing.T) {
	for dataDir, want := range map[string]string{
		"data/orchestrator":           "data",
		"/var/lib/lethe/orchestrator": "/var/lib/lethe",
		"/data":                       "/data/nats-users",
		"/":                           "/nats-users",
	} {
		if got := defaultNATSUsers(dataDir); got != want {
			t.Errorf("defaultNATSUsers(%q) = %q, want %q", dataDir, got, want)
		}
	}
}
