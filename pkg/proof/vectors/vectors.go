// Package vectors makes the test vectors of certificates of fulfilment
// (docs/spec/vectors): a certificate of every kind the orchestrator
// issues, each with its keys file, and invalid variants, each with the
// error a verifier must report, for verifiers written in other languages
// to be checked against the Go one.
//
// They are made as the orchestrator makes them (with prooftest's World,
// which logs the same events, in the same order, with the same fields),
// from keys made from a seed phrase and from fixed times: [Files] returns
// the same bytes on every run. `make vectors` writes them
// (cmd/vectors); this package's test regenerates them and fails when the
// folder differs, so that they never drift from the code.
package vectors

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/lethe-dev/lethe/pkg/proof"
)

// The folder's files besides the certificates.
const (
	// KeysFile is the keys file of every vector but the key rotation's.
	KeysFile = "keys.json"
	// RotationKeysFile is the keys file of the key rotation's vectors: a
	// key of the orchestrator and one of accounts, each retired, and
	// their successors.
	RotationKeysFile = "keys-rotation.json"
	// IndexFile lists every vector ([Vector]), as JSON.
	IndexFile = "index.json"
	// ReadmeFile says what the folder is.
	ReadmeFile = "README.md"
)

// Seed is the phrase every key of the vectors is made from
// (prooftest.SeededSigner): their private halves are public.
const Seed = "lethe test vectors"

// Origin is the name of the vectors' logs, in their checkpoints.
const Origin = "vectors.lethe.example/log"

// Vector is one certificate of the folder and what a verifier must say of
// it: that it verifies (Valid), or that it does not, with an error that
// contains Error (the Go verifier's words).
type Vector struct {
	// File is the certificate's path in the folder ("valid/x.json").
	File string `json:"file"`
	// Keys is the keys file (proof.KeySet) to verify it with.
	Keys  string `json:"keys"`
	Valid bool   `json:"valid"`
	// Error is, for an invalid vector, a part of the error the verifier
	// must report; "" for a valid one.
	Error       string `json:"error"`
	Description string `json:"description"`
	// From is, for an invalid variant of a valid vector, that vector's
	// file.
	From string `json:"from,omitempty"`
}

// Files makes the folder: every file by its path in it, slash-separated
// (the certificates, the keys files, the export's manifest, index.json
// and README.md). It checks each vector with proof.Verify first, and
// fails if one does not verify, or fail, as its index entry says.
func Files() (files map[string][]byte, err error) {
	defer func() {
		if p := recover(); p != nil {
			f, ok := p.(failure)
			if !ok {
				panic(p)
			}
			files, err = nil, f.err
		}
	}()
	g := &gen{tb: fatalTB{}, files: map[string][]byte{}, keys: map[string]proof.KeySet{}}
	g.build()
	for _, v := range g.index {
		if err := Check(v, g.files[v.File], g.keys[v.Keys]); err != nil {
			return nil, err
		}
	}
	// Indented for people, with & and < as they are (the index is not
	// canonical JSON, and its descriptions quote some).
	var idx bytes.Buffer
	enc := json.NewEncoder(&idx)
	enc.SetEscapeHTML(false)
	enc.SetIndent("", "  ")
	if err := enc.Encode(g.index); err != nil {
		return nil, err
	}
	g.files[IndexFile] = idx.Bytes()
	g.files[ReadmeFile] = readme(g.index)
	return g.files, nil
}

// Check verifies one vector's certificate with its keys and reports
// whether the Go verifier says of it what the vector says: no error for
// a valid one; for an invalid one an error containing v.Error, and, unless
// the vector is about the certificate's signature, not one about the
// signature (a variant signed again must be caught by the check it
// targets).
func Check(v Vector, data []byte, keys proof.KeySet) error {
	_, err := proof.Verify(data, keys)
	switch {
	case v.Valid && err != nil:
		return fmt.Errorf("%s: a valid vector does not verify: %w", v.File, err)
	case v.Valid:
		return nil
	case err == nil:
		return fmt.Errorf("%s: an invalid vector verifies; want an error saying %q", v.File, v.Error)
	case !strings.Contains(err.Error(), v.Error):
		return fmt.Errorf("%s: the error does not say %q:\n%w", v.File, v.Error, err)
	case !strings.Contains(v.Error, "certificate signature") && strings.Contains(err.Error(), "certificate signature"):
		return fmt.Errorf("%s: caught by the certificate's signature, not by the check it targets (%q):\n%w", v.File, v.Error, err)
	}
	return nil
}

// Write writes the folder into dir, creating it, and removes the files
// of an earlier run that are no longer made. It returns how many files it
// wrote and those it removed. It removes nothing from a folder that holds
// files but no index.json: that is not a folder of vectors.
func Write(dir string) (written int, removed []string, err error) {
	files, err := Files()
	if err != nil {
		return 0, nil, err
	}
	names := slices.Sorted(func(yield func(string) bool) {
		for name := range files {
			if !yield(name) {
				return
			}
		}
	})
	_, statErr := os.Stat(filepath.Join(dir, IndexFile))
	ours := statErr == nil
	for _, name := range names {
		path := filepath.Join(dir, filepath.FromSlash(name))
		if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
			return written, removed, err
		}
		if err := os.WriteFile(path, files[name], 0o644); err != nil {
			return written, removed, err
		}
		written++
	}
	if !ours {
		return written, nil, nil
	}
	err = filepath.WalkDir(dir, func(path string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		rel, err := filepath.Rel(dir, path)
		if err != nil {
			return err
		}
		if _, ok := files[filepath.ToSlash(rel)]; !ok {
			removed = append(removed, filepath.ToSlash(rel))
			return os.Remove(path)
		}
		return nil
	})
	return written, removed, err
}

// Compare reports how the folder dir differs from files: a file missing,
// different or extra. Nil when they are the same, byte for byte.
func Compare(dir string, files map[string][]byte) ([]string, error) {
	var diffs []string
	for _, name := range slices.Sorted(func(yield func(string) bool) {
		for name := range files {
			if !yield(name) {
				return
			}
		}
	}) {
		got, err := os.ReadFile(filepath.Join(dir, filepath.FromSlash(name)))
		switch {
		case errors.Is(err, fs.ErrNotExist):
			diffs = append(diffs, name+": missing")
		case err != nil:
			return nil, err
		case !bytes.Equal(got, files[name]):
			diffs = append(diffs, name+": differs")
		}
	}
	err := filepath.WalkDir(dir, func(path string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		rel, err := filepath.Rel(dir, path)
		if err != nil {
			return err
		}
		if _, ok := files[filepath.ToSlash(rel)]; !ok {
			diffs = append(diffs, filepath.ToSlash(rel)+": not made by the generator")
		}
		return nil
	})
	if errors.Is(err, fs.ErrNotExist) {
		return []string{dir + ": missing"}, nil
	}
	return diffs, err
}

// failure is a generation that failed, carried by a panic out of the
// World's helpers to Files.
type failure struct{ err error }

// fatalTB is the testing.TB that prooftest's World is given outside a
// test: a fatal error ends the generation (see Files). The World of the
// vectors is seeded, and asks for no temporary directory.
type fatalTB struct{ testing.TB }

func (fatalTB) Helper() {}

func (fatalTB) Fatalf(format string, args ...any) { panic(failure{fmt.Errorf(format, args...)}) }

func (fatalTB) Fatal(args ...any) { panic(failure{errors.New(fmt.Sprint(args...))}) }

func (fatalTB) Errorf(format string, args ...any) { panic(failure{fmt.Errorf(format, args...)}) }

func (fatalTB) Error(args ...any) { panic(failure{errors.New(fmt.Sprint(args...))}) }

func (fatalTB) TempDir() string {
	panic(failure{errors.New("vectors: a World that writes keys to a temporary directory is not deterministic; use prooftest.NewSeededWorld")})
}
