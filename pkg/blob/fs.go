package blob

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"syscall"

	"github.com/lethe-dev/lethe/pkg/datadir"
)

// FS is a [Store] in a folder of the filesystem: the blob under key
// "a/b/c" is the file dir/a/b/c (0600, its folders 0700).
//
// A Put writes a temporary file beside the blob's, syncs it, renames it
// over the blob's and syncs the folder, so a crash leaves under the key
// either the old blob or the new one, whole. Temporary files have a "~" in
// their name, which no key has, so they are never mistaken for blobs; one
// that a crash left behind is removed by the DeletePrefix of its folder.
//
// A key cannot be both a blob and a folder of other blobs ("a" and
// "a/b"): the second Put of such a pair fails. A segment longer than the
// filesystem allows in a name (255 bytes on most) fails the Put too. A
// cancelled context stops a Put at its next read of the source, and an
// Open's reader at its next read.
type FS struct {
	dir string
}

// tmpPattern names temporary files: "~" is outside the key alphabet.
const tmpPattern = ".put~*"

// copyBufSize is the buffer a Put copies through.
const copyBufSize = 128 << 10

// NewFS opens the filesystem store rooted at dir, creating it (0700) if it
// is missing.
func NewFS(dir string) (*FS, error) {
	if dir == "" {
		return nil, errors.New("blob: fs: empty folder name")
	}
	abs, err := filepath.Abs(dir)
	if err != nil {
		return nil, fmt.Errorf("blob: fs: %w", err)
	}
	if err := datadir.Ensure(abs); err != nil {
		return nil, fmt.Errorf("blob: fs: %w", err)
	}
	return &FS{dir: abs}, nil
}

// Dir is the folder the store is rooted at.
func (s *FS) Dir() string { return s.dir }

func (s *FS) path(key string) string {
	return filepath.Join(s.dir, filepath.FromSlash(key))
}

// Put implements [Store].
func (s *FS) Put(ctx context.Context, key string, r io.Reader) (int64, error) {
	if err := CheckKey(key); err != nil {
		return 0, err
	}
	if err := ctx.Err(); err != nil {
		return 0, fmt.Errorf("blob: fs: put: %w", err)
	}
	path := s.path(key)
	dir := filepath.Dir(path)
	if err := s.mkdirs(dir); err != nil {
		return 0, fsErr("put", err)
	}
	f, err := os.CreateTemp(dir, tmpPattern)
	if err != nil {
		return 0, fsErr("put", err)
	}
	tmp := f.Name()
	done := false
	defer func() {
		if !done {
			_ = f.Close()
			_ = os.Remove(tmp)
		}
	}()
	n, err := copyTo(f, ctxReader{ctx, r})
	if err != nil {
		return 0, fsErr("put", err)
	}
	if err := f.Sync(); err != nil {
		return 0, fsErr("put", err)
	}
	if err := f.Close(); err != nil {
		return 0, fsErr("put", err)
	}
	// A Put cancelled before this point leaves nothing; after it, the blob
	// is stored and the Put reports so.
	if err := ctx.Err(); err != nil {
		return 0, fmt.Errorf("blob: fs: put: %w", err)
	}
	if err := os.Rename(tmp, path); err != nil {
		return 0, fsErr("put", err)
	}
	done = true
	if err := syncDir(dir); err != nil {
		return 0, fsErr("put", err)
	}
	return n, nil
}

// copyTo copies r to w through a buffer of its own (not through
// ReaderFrom, so the buffer size is ours).
func copyTo(w io.Writer, r io.Reader) (int64, error) {
	buf := make([]byte, copyBufSize)
	var n int64
	for {
		m, rerr := r.Read(buf)
		if m > 0 {
			if _, err := w.Write(buf[:m]); err != nil {
				return n, err
			}
			n += int64(m)
		}
		if rerr == io.EOF {
			return n, nil
		}
		if rerr != nil {
			return n, rerr
		}
	}
}

// mkdirs creates dir and the folders it lacks below the root, 0700, and
// syncs the parent of each folder it creates so that the new entry is on
// disk before a blob in it is said to be.
func (s *FS) mkdirs(dir string) error {
	rel, err := filepath.Rel(s.dir, dir)
	if err != nil {
		return err
	}
	if rel == "." {
		return nil
	}
	cur := s.dir
	for seg := range strings.SplitSeq(rel, string(filepath.Separator)) {
		parent := cur
		cur = filepath.Join(cur, seg)
		err := os.Mkdir(cur, datadir.DirMode)
		if errors.Is(err, fs.ErrExist) {
			continue
		}
		if err != nil {
			return err
		}
		if err := syncDir(parent); err != nil {
			return err
		}
	}
	return nil
}

func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	err = d.Sync()
	if cerr := d.Close(); err == nil {
		err = cerr
	}
	return err
}

// Open implements [Store].
func (s *FS) Open(ctx context.Context, key string) (io.ReadCloser, error) {
	if err := CheckKey(key); err != nil {
		return nil, err
	}
	if err := ctx.Err(); err != nil {
		return nil, fmt.Errorf("blob: fs: open: %w", err)
	}
	f, err := os.Open(s.path(key))
	if errors.Is(err, fs.ErrNotExist) || errors.Is(err, syscall.ENOTDIR) {
		return nil, fmt.Errorf("%w (fs)", ErrNotFound)
	}
	if err != nil {
		return nil, fsErr("open", err)
	}
	fi, err := f.Stat()
	if err != nil {
		_ = f.Close()
		return nil, fsErr("open", err)
	}
	if !fi.Mode().IsRegular() {
		// A folder of other blobs ("a" when "a/b" is stored).
		_ = f.Close()
		return nil, fmt.Errorf("%w (fs)", ErrNotFound)
	}
	return &fsReader{ctx: ctx, f: f}, nil
}

// fsReader reads a blob's file, stopping once its context is done and
// keeping the file's path out of its errors.
type fsReader struct {
	ctx context.Context
	f   *os.File
}

func (r *fsReader) Read(p []byte) (int, error) {
	if err := r.ctx.Err(); err != nil {
		return 0, fmt.Errorf("blob: fs: read: %w", err)
	}
	n, err := r.f.Read(p)
	if err != nil && err != io.EOF {
		err = fsErr("read", err)
	}
	return n, err
}

func (r *fsReader) Close() error {
	if err := r.f.Close(); err != nil {
		return fsErr("close", err)
	}
	return nil
}

// DeletePrefix implements [Store]: it removes the folder dir/prefix and
// everything in it, and counts the blobs it removed.
func (s *FS) DeletePrefix(ctx context.Context, prefix string) (int, error) {
	if err := checkPrefix(prefix); err != nil {
		return 0, err
	}
	if err := ctx.Err(); err != nil {
		return 0, fmt.Errorf("blob: fs: delete: %w", err)
	}
	dir := s.path(strings.TrimSuffix(prefix, "/"))
	fi, err := os.Lstat(dir)
	if errors.Is(err, fs.ErrNotExist) || errors.Is(err, syscall.ENOTDIR) {
		return 0, nil
	}
	if err != nil {
		return 0, fsErr("delete", err)
	}
	if !fi.IsDir() {
		// A blob named like the folder ("req-1" for "req-1/") is not in it.
		return 0, nil
	}
	n := 0
	// Files go one by one, so that the count is of blobs this call
	// removed; the folders go after.
	err = filepath.WalkDir(dir, func(path string, d fs.DirEntry, err error) error {
		if errors.Is(err, fs.ErrNotExist) {
			return nil
		}
		if err != nil {
			return err
		}
		if d.IsDir() {
			return nil
		}
		if err := ctx.Err(); err != nil {
			return err
		}
		err = os.Remove(path)
		if errors.Is(err, fs.ErrNotExist) {
			return nil
		}
		if err != nil {
			return err
		}
		if d.Type().IsRegular() && CheckKey(d.Name()) == nil {
			n++
		}
		return nil
	})
	if err != nil {
		return n, fsErr("delete", err)
	}
	if err := os.RemoveAll(dir); err != nil {
		return n, fsErr("delete", err)
	}
	if err := syncDir(filepath.Dir(dir)); err != nil {
		return n, fsErr("delete", err)
	}
	return n, nil
}

// fsErr wraps an error of the os package without the path it names.
func fsErr(op string, err error) error {
	var pe *fs.PathError
	var le *os.LinkError
	switch {
	case errors.As(err, &pe):
		err = fmt.Errorf("%s: %w", pe.Op, pe.Err)
	case errors.As(err, &le):
		err = fmt.Errorf("%s: %w", le.Op, le.Err)
	}
	return fmt.Errorf("blob: fs: %s: %w", op, err)
}
