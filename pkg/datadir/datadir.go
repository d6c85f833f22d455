// Package datadir keeps what Lethe writes under a data directory private to
// the user it runs as: the stores hold personal data (GDPR data at rest), so
// every folder is 0700 and every file 0600, and a folder or file an older
// version left readable by others is tightened when it is opened again.
//
// The modes are given explicitly rather than through the process umask: a
// library must not change a process-wide setting its caller relies on.
package datadir

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"syscall"
)

// The modes of what Lethe keeps under a data directory.
const (
	DirMode  fs.FileMode = 0o700
	FileMode fs.FileMode = 0o600
)

// Ensure creates dir, and the parents it lacks, with DirMode, and tightens
// dir itself to DirMode if it was there already (a 0755 folder becomes
// 0700). Parents that already exist are left alone: they need not be
// Lethe's (a home directory, /var/lib).
func Ensure(dir string) error {
	if err := os.MkdirAll(dir, DirMode); err != nil {
		return fmt.Errorf("data directory: %w", err)
	}
	if err := tighten(dir, DirMode); err != nil {
		return fmt.Errorf("data directory: %w", err)
	}
	return nil
}

// Tighten takes from the file at path, if it exists, the permissions
// FileMode does not grant (a 0644 file becomes 0600); it is not an error
// that it does not exist.
func Tighten(path string) error {
	err := tighten(path, FileMode)
	if errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	return err
}

// tighten takes from path the permissions mode does not grant. It changes
// nothing that is tight enough already, and leaves alone, as its owner
// made it, what this user may not change: a folder it may write but does
// not own (a Kubernetes volume's root, group-writable for the pod's
// fsGroup) or a read-only mount.
func tighten(path string, mode fs.FileMode) error {
	fi, err := os.Stat(path)
	if err != nil {
		return err
	}
	perm := fi.Mode().Perm()
	if perm&^mode == 0 {
		return nil
	}
	err = os.Chmod(path, perm&mode)
	if errors.Is(err, fs.ErrPermission) || errors.Is(err, syscall.EROFS) {
		return nil
	}
	return err
}

// Create creates the file at path with FileMode if it does not exist, and
// tightens it to FileMode if it does; it leaves its content alone.
func Create(path string) error {
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE, FileMode)
	if err != nil {
		return err
	}
	if err := f.Close(); err != nil {
		return err
	}
	return Tighten(path)
}

// WriteFile writes b to the file at path, created with FileMode or
// tightened to it.
func WriteFile(path string, b []byte) error {
	if err := os.WriteFile(path, b, FileMode); err != nil {
		return err
	}
	return Tighten(path)
}
