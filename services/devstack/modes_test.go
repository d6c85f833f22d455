//go:build unix

package devstack

import (
	"errors"
	"fmt"
	"io/fs"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
)

// TestDataDirIsPrivate runs an erasure through the whole stack on the
// embedded default (NATS JetStream, SQLite) and then looks at every folder
// and file under its data directory: they hold personal data, so none may
// grant anything to the group or to others (folders 0700, files 0600). The
// data directory and some of its folders are made 0755 first, as an older
// version left them: they must be tightened.
func TestDataDirIsPrivate(t *testing.T) {
	// With a umask of 077 every mode would come out private whatever the
	// code asked for: 022, the common default, shows a 0644 file for what
	// it is. Process-wide, but no test here runs in parallel.
	old := syscall.Umask(0o022)
	t.Cleanup(func() { syscall.Umask(old) })

	// A folder of this test's, so that it is removed only after the check
	// that runs once the stack has stopped.
	dataDir := filepath.Join(t.TempDir(), "lethe")
	older := func(c *Config) {
		for _, d := range []string{dataDir, filepath.Join(dataDir, "orchestrator"), filepath.Join(dataDir, "nats"), filepath.Join(dataDir, "recordings", "files")} {
			if err := os.MkdirAll(d, 0o755); err != nil {
				t.Fatal(err)
			}
			if err := os.Chmod(d, 0o755); err != nil {
				t.Fatal(err)
			}
		}
		c.DataDir = dataDir
	}
	// Cleanups run last in first out: this one runs once the stack (started
	// later) has stopped (SQLite has removed its -wal and -shm files by then, so the
	// look while it runs below is the one that sees them).
	started := false
	t.Cleanup(func() {
		if started {
			checkPrivate(t, "after the stack stopped", dataDir)
		}
	})
	h := start(t, older)
	started = true

	email := "person-0005@example.com"
	code, out := h.call("POST", h.s.API+"/v1/requests", `{"type":"erasure","tenant":"demo","subject":{"email":"`+email+`"},"verified":true}`)
	if code != http.StatusAccepted {
		t.Fatalf("submit = %d %v", code, out)
	}
	id := out["id"].(string)
	// Billing keeps the person's invoices by law: the request ends
	// partially retained, every system having answered and signed.
	h.waitState(id, "partially_retained")
	h.get(h.s.API + "/v1/requests/" + id + "/certificate")
	checkPrivate(t, "while the stack runs", dataDir)
}

// checkPrivate walks dir and fails with every folder or file in it that
// grants a permission to the group or to others.
func checkPrivate(t *testing.T, when, dir string) {
	t.Helper()
	var offenders []string
	files, kinds := 0, map[string]bool{}
	err := filepath.WalkDir(dir, func(path string, d fs.DirEntry, err error) error {
		if errors.Is(err, fs.ErrNotExist) {
			return nil // gone while the stack runs (a temporary file)
		}
		if err != nil {
			return err
		}
		fi, err := d.Info()
		if errors.Is(err, fs.ErrNotExist) {
			return nil
		}
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(dir, path)
		if fi.Mode().Perm()&0o077 != 0 {
			offenders = append(offenders, fmt.Sprintf("%s (%v)", rel, fi.Mode()))
		}
		if fi.Mode().IsRegular() {
			files++
			for _, k := range []string{".db", ".db-wal", ".db-shm", ".key", ".pub", ".json", ".token", ".mp4"} {
				if strings.HasSuffix(path, k) {
					kinds[k] = true
				}
			}
			if strings.Contains(rel, "nats"+string(filepath.Separator)) {
				kinds["nats"] = true
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if len(offenders) > 0 {
		t.Errorf("%s, %d of the files and folders under the data directory are not private to their owner:\n  %s",
			when, len(offenders), strings.Join(offenders, "\n  "))
	}
	// The walk must have seen what matters, or it proves nothing.
	want := []string{".db", ".key", ".pub", ".json", ".token", ".mp4", "nats"}
	if when == "while the stack runs" {
		want = append(want, ".db-wal", ".db-shm")
	}
	for _, k := range want {
		if !kinds[k] {
			t.Errorf("%s, no %s file under the data directory (%d files): the look missed part of the stack", when, k, files)
		}
	}
}
