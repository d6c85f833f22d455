package vectors_test

import (
	"encoding/json"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/lethe-dev/lethe/pkg/lifecycle"
	"github.com/lethe-dev/lethe/pkg/proof"
	"github.com/lethe-dev/lethe/pkg/proof/vectors"
)

// folder is docs/spec/vectors in the repository: its root is the first
// folder above this package's that holds pkg/go.mod.
func folder(t *testing.T) string {
	t.Helper()
	dir, err := os.Getwd()
	if err != nil {
		t.Fatal(err)
	}
	for d := dir; ; d = filepath.Dir(d) {
		if _, err := os.Stat(filepath.Join(d, "pkg", "go.mod")); err == nil {
			return filepath.Join(d, "docs", "spec", "vectors")
		}
		if filepath.Dir(d) == d {
			t.Fatalf("no repository root (a folder with pkg/go.mod) above %s", dir)
		}
	}
}

// readDir reads every file under dir, by its slash-separated path in it.
func readDir(t *testing.T, dir string) map[string][]byte {
	t.Helper()
	files := map[string][]byte{}
	err := filepath.WalkDir(dir, func(path string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		rel, err := filepath.Rel(dir, path)
		if err != nil {
			return err
		}
		files[filepath.ToSlash(rel)], err = os.ReadFile(path)
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	return files
}

// The checked-in vectors are what the code makes, byte for byte: CI's
// check that they never drift from it.
func TestVectorsUpToDate(t *testing.T) {
	tmp := t.TempDir()
	if _, _, err := vectors.Write(tmp); err != nil {
		t.Fatalf("making the vectors: %v", err)
	}
	diffs, err := vectors.Compare(folder(t), readDir(t, tmp))
	if err != nil {
		t.Fatal(err)
	}
	if len(diffs) > 0 {
		t.Errorf("vectors drifted from the code: run make vectors\n  %s", strings.Join(diffs, "\n  "))
	}
}

// Two runs make the same bytes: no key, time or order is left to chance.
func TestVectorsDeterministic(t *testing.T) {
	a, err := vectors.Files()
	if err != nil {
		t.Fatal(err)
	}
	b, err := vectors.Files()
	if err != nil {
		t.Fatal(err)
	}
	if len(a) != len(b) {
		t.Fatalf("%d files, then %d", len(a), len(b))
	}
	for name, data := range a {
		if string(b[name]) != string(data) {
			t.Errorf("%s differs from one run to the next", name)
		}
	}
}

// Every checked-in vector verifies, or fails saying what index.json says,
// with the Go verifier; and together they cover every kind of request
// and every way one ends.
func TestVectorsVerify(t *testing.T) {
	dir := folder(t)
	b, err := os.ReadFile(filepath.Join(dir, vectors.IndexFile))
	if err != nil {
		t.Fatalf("vectors drifted from the code: run make vectors (%v)", err)
	}
	var index []vectors.Vector
	if err := json.Unmarshal(b, &index); err != nil {
		t.Fatalf("%s: %v", vectors.IndexFile, err)
	}
	keys := map[string]proof.KeySet{}
	types, states, versions := map[lifecycle.Type]bool{}, map[lifecycle.State]bool{}, map[int]bool{}
	invalid := 0
	for _, v := range index {
		t.Run(strings.TrimSuffix(v.File, ".json"), func(t *testing.T) {
			ks, ok := keys[v.Keys]
			if !ok {
				if ks, err = proof.ReadKeySet(filepath.Join(dir, v.Keys)); err != nil || len(ks.Keys) == 0 {
					t.Fatalf("keys file %s: %d keys, %v", v.Keys, len(ks.Keys), err)
				}
				keys[v.Keys] = ks
			}
			data, err := os.ReadFile(filepath.Join(dir, filepath.FromSlash(v.File)))
			if err != nil {
				t.Fatal(err)
			}
			if err := vectors.Check(v, data, ks); err != nil {
				t.Error(err)
			}
			if v.Valid != (v.Error == "") || v.Description == "" {
				t.Errorf("index entry %+v: a valid vector has no error, an invalid one has one, each a description", v)
			}
			if !v.Valid {
				invalid++
				return
			}
			c, _ := proof.Verify(data, ks)
			if c != nil {
				types[c.Type], states[c.State], versions[c.Version] = true, true, true
			}
		})
	}
	for _, typ := range append(lifecycle.Types(), lifecycle.Sweep, lifecycle.Reapply, lifecycle.Lift) {
		if !types[typ] {
			t.Errorf("no valid vector of a request of type %s", typ)
		}
	}
	for _, s := range lifecycle.States() {
		if s.Ended() && !states[s] {
			t.Errorf("no valid vector of a request that ended %s", s)
		}
	}
	if !versions[1] || !versions[proof.CertificateVersion] {
		t.Errorf("versions %v: want a valid vector of version 1 and of %d", versions, proof.CertificateVersion)
	}
	if invalid < 20 {
		t.Errorf("%d invalid vectors", invalid)
	}
}
