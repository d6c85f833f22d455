package natsbus

import (
	"context"
	"io/fs"
	"os"
	"path/filepath"
	"testing"

	"github.com/lethe-dev/lethe/pkg/bus"
)

// The embedded server's store holds erasure requests: nothing in it may be
// readable by other users, even when an older version left its folder 0755.
func TestEmbeddedStoreIsPrivate(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "nats")
	if err := os.Mkdir(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	srv, err := StartEmbedded(dir, "127.0.0.1", -1, nil)
	if err != nil {
		t.Fatal(err)
	}
	b := connect(t, srv.URL(), testConfig(prefix()))
	if err := b.Publish(context.Background(), "task.modes", &bus.Message{ID: "1", Type: "x", Data: []byte("ada@example.com")}); err != nil {
		t.Fatal(err)
	}
	b.Close()
	srv.Shutdown() // flushes the stream's files

	files := 0
	err = filepath.WalkDir(dir, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		fi, err := d.Info()
		if err != nil {
			return err
		}
		if !d.IsDir() {
			files++
		}
		if fi.Mode().Perm()&0o077 != 0 {
			t.Errorf("%s is %v: readable by others", path, fi.Mode())
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if files == 0 {
		t.Fatal("the store holds no file: the test looked at nothing")
	}
}
