package blob_test

import (
	"context"
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/lethe-dev/lethe/pkg/blob"
	"github.com/lethe-dev/lethe/pkg/blob/blobtest"
)

func newFS(t *testing.T) *blob.FS {
	t.Helper()
	s, err := blob.NewFS(filepath.Join(t.TempDir(), "blobs"))
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func TestFSConformance(t *testing.T) {
	blobtest.Run(t, func(t *testing.T) blob.Store { return newFS(t) })
}

func TestFSLayoutAndModes(t *testing.T) {
	s := newFS(t)
	blobtest.Put(t, s, "req-1/files/a.bin", []byte("hello"))
	path := filepath.Join(s.Dir(), "req-1", "files", "a.bin")
	got, err := os.ReadFile(path)
	if err != nil || string(got) != "hello" {
		t.Fatalf("dir/req-1/files/a.bin = %q, %v", got, err)
	}
	for _, p := range []string{s.Dir(), filepath.Dir(path), filepath.Dir(filepath.Dir(path))} {
		if fi, err := os.Stat(p); err != nil || fi.Mode().Perm() != 0o700 {
			t.Errorf("folder %s: %v, %v; want 0700", p, fi.Mode().Perm(), err)
		}
	}
	if fi, err := os.Stat(path); err != nil || fi.Mode().Perm() != 0o600 {
		t.Errorf("file: %v, %v; want 0600", fi.Mode().Perm(), err)
	}
	// No temporary file is left beside the blob.
	entries, err := os.ReadDir(filepath.Dir(path))
	if err != nil || len(entries) != 1 {
		t.Errorf("folder holds %d entries, want the blob only (%v)", len(entries), err)
	}
}

func TestFSFailedPutLeavesNoTemporaryFile(t *testing.T) {
	s := newFS(t)
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	blobtest.Put(t, s, "req-1/a", []byte("a"))
	_, err := s.Put(ctx, "req-1/b", strings.NewReader("b"))
	if !errors.Is(err, context.Canceled) {
		t.Fatal(err)
	}
	_, err = s.Put(context.Background(), "req-1/c", iotestErrReader{})
	if err == nil {
		t.Fatal("Put from a failing reader succeeded")
	}
	var names []string
	err = filepath.WalkDir(s.Dir(), func(p string, d fs.DirEntry, err error) error {
		if err == nil && !d.IsDir() {
			names = append(names, d.Name())
		}
		return err
	})
	if err != nil || len(names) != 1 || names[0] != "a" {
		t.Errorf("store holds %v (%v), want only a", names, err)
	}
}

type iotestErrReader struct{}

func (iotestErrReader) Read([]byte) (int, error) { return 0, errors.New("boom") }

func TestFSDeletePrefixRemovesLeftoverTemporaryFiles(t *testing.T) {
	s := newFS(t)
	blobtest.Put(t, s, "req-1/a", []byte("a"))
	// What a crash in the middle of a Put leaves.
	if err := os.WriteFile(filepath.Join(s.Dir(), "req-1", ".put~123"), []byte("partial"), 0o600); err != nil {
		t.Fatal(err)
	}
	n, err := s.DeletePrefix(context.Background(), "req-1/")
	if err != nil || n != 1 {
		t.Errorf("DeletePrefix = %d, %v; want 1 blob, nil", n, err)
	}
	if _, err := os.Stat(filepath.Join(s.Dir(), "req-1")); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("folder still there: %v", err)
	}
}

func TestFSErrorsDoNotNameThePath(t *testing.T) {
	s := newFS(t)
	blobtest.Put(t, s, "SECRETxNAME", []byte("a blob, not a folder"))
	// A blob cannot also be a folder: the Put fails, and says so without
	// the path.
	_, err := s.Put(context.Background(), "SECRETxNAME/b", strings.NewReader("b"))
	if err == nil {
		t.Fatal("Put under a blob succeeded")
	}
	if strings.Contains(err.Error(), "SECRETxNAME") || strings.Contains(err.Error(), s.Dir()) {
		t.Errorf("error names the path: %v", err)
	}
}

func TestNewFSTightensAndKeeps(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "blobs")
	if err := os.Mkdir(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	s, err := blob.NewFS(dir)
	if err != nil {
		t.Fatal(err)
	}
	if fi, _ := os.Stat(dir); fi.Mode().Perm() != 0o700 {
		t.Errorf("root is %v, want 0700", fi.Mode().Perm())
	}
	blobtest.Put(t, s, "k", []byte("v"))
	s2, err := blob.NewFS(dir)
	if err != nil {
		t.Fatal(err)
	}
	blobtest.Want(t, s2, "k", []byte("v"))
	if _, err := blob.NewFS(""); err == nil {
		t.Error("NewFS(\"\") succeeded")
	}
}
