package exportbundle

import (
	"archive/zip"
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"hash"
	"io"
)

// ErrMismatch is the error (wrapped) for a blob or an entry whose size or
// SHA-256 is not the manifest's.
var ErrMismatch = errors.New("exportbundle: content does not match the manifest")

// Opener streams a blob by its Ref.
type Opener func(ctx context.Context, ref string) (io.ReadCloser, error)

// Write streams the bundle that m describes to w, with the blobs that open
// opens: manifest.json (exactly Encode's bytes), then for each system its
// records document, a CSV file per table of it and its files, and last
// index.html. Entries are in the order of the manifest's canonical form
// (see [Manifest.Encode]); their modification time is GeneratedAt. Files are
// stored as they are (a video does not compress); JSON, CSV and HTML are
// deflated.
//
// Write first reads every records document (at most [MaxRecordsSize] bytes
// each), checks it against the manifest and parses it ([ParseRecords]); an
// error there comes before anything is written. Then it streams each file
// through a fixed buffer, checking its size and SHA-256 as it goes: a file
// that does not match the manifest fails Write with an error that wraps
// ErrMismatch and names its path, after the bytes before it were written.
// On any error the ZIP is left unfinished, without its central directory,
// so that no unzip tool takes it for a whole bundle: the caller aborts the
// response.
func Write(ctx context.Context, w io.Writer, m *Manifest, open Opener) error {
	c := m.canonical()
	if err := c.validate(); err != nil {
		return err
	}
	manifest, err := c.encode()
	if err != nil {
		return err
	}
	for _, s := range c.Systems {
		if s.Records != nil && s.Records.Ref == "" {
			return fmt.Errorf("exportbundle: %s: no ref to read it from", s.Records.Path)
		}
		if s.Records != nil && s.Records.Size > MaxRecordsSize {
			return fmt.Errorf("exportbundle: %s: %d bytes, more than the %d a records document may have", s.Records.Path, s.Records.Size, MaxRecordsSize)
		}
		for _, f := range s.Files {
			if f.Ref == "" {
				return fmt.Errorf("exportbundle: %s: no ref to read it from", f.Path)
			}
		}
	}

	raw := make([][]byte, len(c.Systems))
	docs := make([]Records, len(c.Systems))
	for i, s := range c.Systems {
		if s.Records == nil {
			continue
		}
		var b bytes.Buffer
		b.Grow(int(s.Records.Size))
		if err := copyBlob(ctx, &b, *s.Records, open, nil); err != nil {
			return err
		}
		if docs[i], err = ParseRecords(b.Bytes()); err != nil {
			return fmt.Errorf("%s: %w", s.Records.Path, err)
		}
		raw[i] = b.Bytes()
	}

	zw := zip.NewWriter(w)
	entry := func(name string, method uint16) (io.Writer, error) {
		if err := ctx.Err(); err != nil {
			return nil, err
		}
		return zw.CreateHeader(&zip.FileHeader{Name: name, Method: method, Modified: c.GeneratedAt})
	}
	put := func(name string, write func(io.Writer) error) error {
		e, err := entry(name, zip.Deflate)
		if err != nil {
			return fmt.Errorf("exportbundle: write %s: %w", name, err)
		}
		if err := write(e); err != nil {
			return fmt.Errorf("exportbundle: write %s: %w", name, err)
		}
		return nil
	}
	bytesOf := func(b []byte) func(io.Writer) error {
		return func(w io.Writer) error { _, err := w.Write(b); return err }
	}

	if err := put(ManifestPath, bytesOf(manifest)); err != nil {
		return err
	}
	buf := make([]byte, 256<<10)
	for i, s := range c.Systems {
		if s.Records != nil {
			if err := put(s.Records.Path, bytesOf(raw[i])); err != nil {
				return err
			}
			for _, t := range docs[i].tables(s.Name) {
				if err := put(t.CSVPath, func(w io.Writer) error { return writeCSV(w, t) }); err != nil {
					return err
				}
			}
		}
		for _, f := range s.Files {
			e, err := entry(f.Path, zip.Store)
			if err != nil {
				return fmt.Errorf("exportbundle: write %s: %w", f.Path, err)
			}
			if err := copyBlob(ctx, e, f, open, buf); err != nil {
				return err
			}
		}
	}
	digest := sha256.Sum256(manifest)
	if err := put(IndexPath, func(w io.Writer) error { return writeIndex(w, c, docs, digest) }); err != nil {
		return err
	}
	if err := zw.Close(); err != nil {
		return fmt.Errorf("exportbundle: finish the ZIP: %w", err)
	}
	return nil
}

// copyBlob copies f's blob to w, checking its size and SHA-256.
func copyBlob(ctx context.Context, w io.Writer, f File, open Opener, buf []byte) error {
	rc, err := open(ctx, f.Ref)
	if err != nil {
		return fmt.Errorf("exportbundle: open %s: %w", f.Path, err)
	}
	defer rc.Close()
	h := sha256.New()
	// One byte more than the manifest says, to tell a longer blob.
	n, err := io.CopyBuffer(io.MultiWriter(w, h), &ctxReader{ctx, io.LimitReader(rc, f.Size+1)}, buf)
	if err != nil {
		return fmt.Errorf("exportbundle: copy %s: %w", f.Path, err)
	}
	return match(f, n, h)
}

// match reports whether n bytes hashed to h are f's.
func match(f File, n int64, h hash.Hash) error {
	if n > f.Size {
		return fmt.Errorf("%s: %w: more than %d bytes", f.Path, ErrMismatch, f.Size)
	}
	if n < f.Size {
		return fmt.Errorf("%s: %w: %d bytes, not %d", f.Path, ErrMismatch, n, f.Size)
	}
	if got := hex.EncodeToString(h.Sum(nil)); got != f.SHA256 {
		return fmt.Errorf("%s: %w: sha256 %s, not %s", f.Path, ErrMismatch, got, f.SHA256)
	}
	return nil
}

// ctxReader stops reading when its context is done.
type ctxReader struct {
	ctx context.Context
	r   io.Reader
}

func (r *ctxReader) Read(p []byte) (int, error) {
	if err := r.ctx.Err(); err != nil {
		return 0, err
	}
	return r.r.Read(p)
}
