package pseudonym

import (
	"errors"
	"os"
	"path/filepath"
	"testing"
)

func TestLoadKey(t *testing.T) {
	t.Run("generated once into the data dir", func(t *testing.T) {
		t.Setenv(KeyEnv, "")
		dir := filepath.Join(t.TempDir(), "sys")
		k1, err := LoadKey(dir)
		if err != nil {
			t.Fatal(err)
		}
		k2, err := LoadKey(dir)
		if err != nil || string(k1) != string(k2) || len(k1) != 64 {
			t.Fatalf("second LoadKey = %q, %v; want the same 64-character key %q", k2, err, k1)
		}
		fi, err := os.Stat(filepath.Join(dir, "hash.key"))
		if err != nil || fi.Mode().Perm() != 0o600 {
			t.Fatalf("hash.key: %v, %v; want mode 0600", fi.Mode(), err)
		}
		if fi, err := os.Stat(dir); err != nil {
			t.Fatal(err)
		} else if fi.Mode().Perm() != 0o700 {
			t.Fatalf("data dir: %v; want mode 0700", fi.Mode())
		}
		// An older version's folder, or a key file copied in readable by
		// all, is tightened on the next start.
		if err := errors.Join(os.Chmod(dir, 0o755), os.Chmod(filepath.Join(dir, "hash.key"), 0o644)); err != nil {
			t.Fatal(err)
		}
		if _, err := LoadKey(dir); err != nil {
			t.Fatal(err)
		}
		for path, want := range map[string]os.FileMode{dir: 0o700, filepath.Join(dir, "hash.key"): 0o600} {
			if fi, err := os.Stat(path); err != nil {
				t.Fatal(err)
			} else if fi.Mode().Perm() != want {
				t.Fatalf("%s after a restart: %v; want %04o", path, fi.Mode(), want)
			}
		}
		k3, _ := LoadKey(t.TempDir())
		if string(k3) == string(k1) {
			t.Fatal("two data dirs got the same random key")
		}
	})
	t.Run("from the environment", func(t *testing.T) {
		t.Setenv(KeyEnv, "a-key-from-the-environment")
		dir := t.TempDir()
		k, err := LoadKey(dir)
		if err != nil || string(k) != "a-key-from-the-environment" {
			t.Fatalf("LoadKey = %q, %v", k, err)
		}
		if _, err := os.Stat(filepath.Join(dir, "hash.key")); !errors.Is(err, os.ErrNotExist) {
			t.Fatalf("a key file was written although the environment holds the key: %v", err)
		}
	})
	t.Run("too short", func(t *testing.T) {
		t.Setenv(KeyEnv, "short")
		if _, err := LoadKey(t.TempDir()); err == nil {
			t.Fatal("a 5-character key was accepted")
		}
	})
}
