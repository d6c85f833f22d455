package datadir_test

import (
	"os"
	"path/filepath"
	"testing"

	"github.com/lethe-dev/lethe/pkg/datadir"
)

func perm(t *testing.T, path string) os.FileMode {
	t.Helper()
	fi, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	return fi.Mode().Perm()
}

func TestEnsureMakesAndTightensFolders(t *testing.T) {
	root := t.TempDir()
	dir := filepath.Join(root, "data", "accounts")
	if err := datadir.Ensure(dir); err != nil {
		t.Fatal(err)
	}
	for _, d := range []string{dir, filepath.Dir(dir)} {
		if got := perm(t, d); got != 0o700 {
			t.Errorf("%s is %04o, want 0700", d, got)
		}
	}
	// An older version's folder is tightened; its parent, which need not
	// be Lethe's, is not touched.
	if err := os.Chmod(filepath.Dir(dir), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := datadir.Ensure(dir); err != nil {
		t.Fatal(err)
	}
	if got := perm(t, dir); got != 0o700 {
		t.Errorf("tightened folder is %04o, want 0700", got)
	}
	if got := perm(t, filepath.Dir(dir)); got != 0o755 {
		t.Errorf("existing parent is %04o, want it left 0755", got)
	}
	// Tighter than 0700 stays as it is.
	if err := os.Chmod(dir, 0o500); err != nil {
		t.Fatal(err)
	}
	if err := datadir.Ensure(dir); err != nil {
		t.Fatal(err)
	}
	if got := perm(t, dir); got != 0o500 {
		t.Errorf("0500 folder became %04o", got)
	}
}

func TestFiles(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "f")
	if err := datadir.Tighten(path); err != nil {
		t.Errorf("Tighten of a missing file: %v", err)
	}
	if err := os.WriteFile(path, []byte("old"), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(path, 0o644); err != nil {
		t.Fatal(err)
	}
	if err := datadir.Create(path); err != nil {
		t.Fatal(err)
	}
	if b, _ := os.ReadFile(path); string(b) != "old" {
		t.Errorf("Create changed the content to %q", b)
	}
	if got := perm(t, path); got != 0o600 {
		t.Errorf("Create left an existing file %04o, want 0600", got)
	}
	fresh := filepath.Join(dir, "g")
	if err := datadir.WriteFile(fresh, []byte("new")); err != nil {
		t.Fatal(err)
	}
	if got := perm(t, fresh); got != 0o600 {
		t.Errorf("WriteFile made %04o, want 0600", got)
	}
	if err := os.Chmod(fresh, 0o666); err != nil {
		t.Fatal(err)
	}
	if err := datadir.WriteFile(fresh, []byte("again")); err != nil {
		t.Fatal(err)
	}
	if got := perm(t, fresh); got != 0o600 {
		t.Errorf("WriteFile over a 0666 file left %04o, want 0600", got)
	}
}
