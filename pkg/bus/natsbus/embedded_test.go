package natsbus

import (
	"context"
	"io/fs"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/lethe-dev/lethe/pkg/bus"
	"github.com/lethe-dev/lethe/pkg/durability"
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

// The embedded server syncs each write before acknowledging it unless told
// fast, as its own JetStream configuration and its /varz report.
func TestEmbeddedDurability(t *testing.T) {
	for _, tc := range []struct {
		name       string
		opts       []EmbeddedOption
		wantAlways bool
		wantSync   string
	}{
		{"default", nil, true, "always"},
		{"strict", []EmbeddedOption{WithDurability(durability.Strict)}, true, "always"},
		{"fast", []EmbeddedOption{WithDurability(durability.Fast)}, false, "every 2m0s"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			srv, err := StartEmbedded(t.TempDir(), "127.0.0.1", -1, nil, tc.opts...)
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(srv.Shutdown)
			if got := srv.Sync(); got != tc.wantSync {
				t.Errorf("Sync() = %q, want %q", got, tc.wantSync)
			}
			v, err := srv.srv.Varz(nil)
			if err != nil {
				t.Fatal(err)
			}
			if c := v.JetStream.Config; c == nil || c.SyncAlways != tc.wantAlways || c.SyncInterval != 2*time.Minute {
				t.Errorf("varz jetstream config = %+v, want sync_always %v, sync_interval 2m0s", c, tc.wantAlways)
			}
			// It works as a bus either way.
			b := connect(t, srv.URL(), testConfig(prefix()))
			if err := b.Publish(context.Background(), "task.modes", &bus.Message{ID: "1", Type: "x", Data: []byte("x")}); err != nil {
				t.Fatal(err)
			}
		})
	}
}
