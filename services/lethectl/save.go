package main

import (
	"fmt"
	"io"
	"os"
	"path/filepath"
)

// toStdout says whether an -o value means standard output.
func toStdout(path string) bool { return path == "" || path == "-" }

// saveFile writes what fill writes to path with the given mode, through a
// temporary file renamed into place, so a failed download leaves neither a
// partial file nor a clobbered earlier one.
func saveFile(path string, mode os.FileMode, fill func(io.Writer) (int64, error)) (int64, error) {
	tmp, err := os.CreateTemp(filepath.Dir(path), "."+filepath.Base(path)+".*")
	if err != nil {
		return 0, fmt.Errorf("create file: %w", err)
	}
	defer os.Remove(tmp.Name()) // a no-op once renamed
	n, err := fill(tmp)
	if err == nil {
		err = tmp.Chmod(mode)
	}
	if cerr := tmp.Close(); err == nil && cerr != nil {
		err = fmt.Errorf("write %s: %w", path, cerr)
	}
	if err != nil {
		return n, err
	}
	if err := os.Rename(tmp.Name(), path); err != nil {
		return n, fmt.Errorf("write %s: %w", path, err)
	}
	return n, nil
}

// saveBytes writes b to path as saveFile does, or to w when path means
// standard output.
func saveBytes(w io.Writer, path string, mode os.FileMode, b []byte) error {
	write := func(w io.Writer) (int64, error) {
		n, err := w.Write(b)
		return int64(n), err
	}
	if toStdout(path) {
		_, err := write(w)
		return err
	}
	_, err := saveFile(path, mode, write)
	return err
}
