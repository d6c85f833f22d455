package exportbundle

import (
	"archive/zip"
	"bytes"
	"crypto/sha256"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"strings"
)

// maxManifestSize is the largest manifest.json Check reads.
const maxManifestSize = 16 << 20

// Check checks a bundle, of size bytes, read from r: that manifest.json is
// a valid manifest in its canonical form (exactly what [Manifest.Encode]
// writes), that every records document and file the manifest lists is there
// with its size and SHA-256, that index.html is there, and that nothing else
// is but the CSV files. It does not check what index.html and the CSV files
// say: they are derived from the records documents. It returns the manifest
// and the SHA-256 of manifest.json, which is what the certificate of
// fulfilment records.
//
// Its error lists every problem it found, each naming the path (paths are
// not personal data); a mismatched size or content wraps [ErrMismatch]. When
// manifest.json could be read, Check returns the manifest and its SHA-256
// along with an error about the rest of the bundle.
func Check(r io.ReaderAt, size int64) (*Manifest, [32]byte, error) {
	return CheckProgress(r, size, nil)
}

// CheckProgress is [Check], calling progress (if not nil) with the number of
// bytes hashed so far and the number to hash in all, from (0, total) to
// (total, total), at least once a mebibyte.
func CheckProgress(r io.ReaderAt, size int64, progress func(done, total int64)) (*Manifest, [32]byte, error) {
	var digest [32]byte
	var problems []error
	problem := func(format string, args ...any) { problems = append(problems, fmt.Errorf(format, args...)) }
	failed := func() error {
		if len(problems) == 0 {
			return nil
		}
		s := "s"
		if len(problems) == 1 {
			s = ""
		}
		return fmt.Errorf("exportbundle: the bundle does not match its manifest, %d problem%s:\n%w", len(problems), s, errors.Join(problems...))
	}

	zr, err := zip.NewReader(r, size)
	if errors.Is(err, zip.ErrInsecurePath) {
		problem("the ZIP has an entry whose name is not a safe relative path")
	} else if err != nil {
		return nil, digest, fmt.Errorf("exportbundle: not a ZIP file: %w", err)
	}
	entries := map[string]*zip.File{}
	for _, f := range zr.File {
		if entries[f.Name] != nil {
			problem("%q: in the ZIP more than once", f.Name)
			continue
		}
		entries[f.Name] = f
	}

	mf := entries[ManifestPath]
	if mf == nil {
		problem("%s: missing", ManifestPath)
		return nil, digest, failed()
	}
	data, err := readEntry(mf, maxManifestSize)
	if err != nil {
		problem("%s: %v", ManifestPath, err)
		return nil, digest, failed()
	}
	digest = sha256.Sum256(data)
	m := new(Manifest)
	d := json.NewDecoder(bytes.NewReader(data))
	if err := d.Decode(m); err != nil {
		problem("%s: not a manifest: %v", ManifestPath, err)
		return nil, digest, failed()
	}
	if err := m.canonical().validate(); err != nil {
		problem("%s: %v", ManifestPath, err)
	} else if canon, err := m.canonical().encode(); err != nil || !bytes.Equal(canon, data) {
		problem("%s: not in its canonical form: it was edited, or written by something else", ManifestPath)
	}

	var listed []File
	known := map[string]bool{ManifestPath: true, IndexPath: true}
	csvDirs := map[string]bool{}
	for _, s := range m.Systems {
		if s.Records != nil {
			listed = append(listed, *s.Records)
			csvDirs["csv/"+s.Name+"/"] = true
		}
		listed = append(listed, s.Files...)
	}
	var total, done int64
	for _, f := range listed {
		known[f.Path] = true
		total += max(f.Size, 0)
	}
	report := func() {
		if progress != nil {
			progress(done, total)
		}
	}
	report()
	buf := make([]byte, 256<<10)
	for _, f := range listed {
		end := done + max(f.Size, 0)
		if err := checkEntry(entries[f.Path], f, buf, &done, report); err != nil {
			problems = append(problems, err)
		}
		done = end
		report()
	}

	if entries[IndexPath] == nil {
		problem("%s: missing", IndexPath)
	}
	for _, f := range zr.File {
		if known[f.Name] {
			continue
		}
		dir, name, ok := cutLast(f.Name, "/")
		if ok && csvDirs[dir+"/"] && strings.HasSuffix(name, ".csv") && SafeName(name) == name {
			continue
		}
		problem("%q: not in the manifest", f.Name)
	}
	return m, digest, failed()
}

// checkEntry checks that e is f, adding the bytes it hashes to done and
// calling report as it goes.
func checkEntry(e *zip.File, f File, buf []byte, done *int64, report func()) error {
	if e == nil {
		return fmt.Errorf("%s: missing", f.Path)
	}
	if e.UncompressedSize64 != uint64(f.Size) {
		return fmt.Errorf("%s: %w: %d bytes, not %d", f.Path, ErrMismatch, e.UncompressedSize64, f.Size)
	}
	rc, err := e.Open()
	if err != nil {
		return fmt.Errorf("%s: %v", f.Path, err)
	}
	defer rc.Close()
	h := sha256.New()
	var n int64
	next := *done + 1<<20
	for {
		k, err := rc.Read(buf)
		h.Write(buf[:k])
		n += int64(k)
		*done += int64(k)
		if *done >= next {
			report()
			next = *done + 1<<20
		}
		if n > f.Size {
			break
		}
		if err == io.EOF {
			break
		}
		if err != nil {
			return fmt.Errorf("%s: %v", f.Path, err)
		}
	}
	return match(f, n, h)
}

// readEntry reads e, of at most limit bytes.
func readEntry(e *zip.File, limit int64) ([]byte, error) {
	if e.UncompressedSize64 > uint64(limit) {
		return nil, fmt.Errorf("%d bytes, more than %d", e.UncompressedSize64, limit)
	}
	rc, err := e.Open()
	if err != nil {
		return nil, err
	}
	defer rc.Close()
	b, err := io.ReadAll(io.LimitReader(rc, limit+1))
	if err != nil {
		return nil, err
	}
	if int64(len(b)) > limit {
		return nil, fmt.Errorf("more than %d bytes", limit)
	}
	return b, nil
}

// cutLast cuts s around the last sep.
func cutLast(s, sep string) (before, after string, found bool) {
	if i := strings.LastIndex(s, sep); i >= 0 {
		return s[:i], s[i+len(sep):], true
	}
	return s, "", false
}
