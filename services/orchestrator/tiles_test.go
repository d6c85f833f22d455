package orchestrator

import (
	"fmt"
	"io"
	"net/http"
	"strings"
	"testing"

	"golang.org/x/mod/sumdb/note"
	"golang.org/x/mod/sumdb/tlog"

	"github.com/lethe-dev/lethe/pkg/proof"
)

// tileReader reads the log's tiles over HTTP, as a mirror would.
type tileReader struct {
	t    *testing.T
	base string
}

func (r tileReader) Height() int { return 8 }

func (r tileReader) ReadTiles(tiles []tlog.Tile) ([][]byte, error) {
	out := make([][]byte, len(tiles))
	for i, t := range tiles {
		b, code := r.get(strings.TrimPrefix(proof.TilePath(t), "tile/"))
		if code != http.StatusOK {
			return nil, fmt.Errorf("tile %s: %d", t.Path(), code)
		}
		out[i] = b
	}
	return out, nil
}

func (r tileReader) SaveTiles([]tlog.Tile, [][]byte) {}

func (r tileReader) get(path string) ([]byte, int) {
	resp, err := http.Get(r.base + "/log/tile/" + path)
	if err != nil {
		r.t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return b, resp.StatusCode
}

// The log, served without a token in the tlog-tiles layout, is what a
// mirror needs: the checkpoint opens with the orchestrator's note key,
// the hash tiles rebuild its root, and every entry of the entry bundles
// is proved in the checkpoint's tree. Past the log's end there is no tile.
func TestLogServedAsTiles(t *testing.T) {
	e := newEnv(t, nil)
	e.connect("alpha", &toySystem{})
	e.connect("beta", &toySystem{})
	for range 3 {
		e.waitState(e.submit(erasure(true)), "fulfilled")
	}
	resp, err := http.Get(e.api + "/log/checkpoint")
	if err != nil {
		t.Fatal(err)
	}
	msg, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("GET /log/checkpoint = %d %s", resp.StatusCode, msg)
	}
	vkey, err := proof.NoteVerifierKey("lethe.localhost/log", e.orchestratorSigner().Key.Public)
	if err != nil {
		t.Fatal(err)
	}
	v, _ := note.NewVerifier(vkey)
	if _, err := note.Open(msg, note.VerifierList(v)); err != nil {
		t.Fatalf("the checkpoint does not open with the orchestrator's note key: %v\n%s", err, msg)
	}
	th, err := proof.OpenCheckpoint(e.taskKeys(), msg)
	if err != nil {
		t.Fatal(err)
	}
	if th.Size < 3*4 {
		t.Fatalf("a log of %d entries after three requests", th.Size)
	}
	r := tileReader{t: t, base: e.api}
	hashes := tlog.TileHashReader(tlog.Tree{N: th.Size, Hash: th.Root}, r)
	if root, err := tlog.TreeHash(th.Size, hashes); err != nil || root != th.Root {
		t.Fatalf("the tiles rebuild root %v (%v), want the checkpoint's %v", root, err, th.Root)
	}
	bundle, code := r.get(fmt.Sprintf("entries/000.p/%d", th.Size))
	if code != http.StatusOK {
		t.Fatalf("entries tile = %d", code)
	}
	entries, err := proof.ReadEntryBundle(bundle, int(th.Size))
	if err != nil {
		t.Fatal(err)
	}
	for j, entry := range entries {
		i := int64(j)
		p, err := tlog.ProveRecord(th.Size, i, hashes)
		if err != nil {
			t.Fatal(err)
		}
		if err := proof.CheckInclusion(th, i, entry, p); err != nil {
			t.Fatalf("entry %d: %v", i, err)
		}
		if _, err := proof.DecodeEntry(entry); err != nil {
			t.Fatalf("entry %d is no log entry: %v", i, err)
		}
	}
	for _, path := range []string{
		fmt.Sprintf("0/000.p/%d", th.Size+1), "0/001", "entries/001", "1/000", "0/abc", fmt.Sprintf("entries/000.p/%d", th.Size+1),
	} {
		if _, code := r.get(path); code != http.StatusNotFound {
			t.Errorf("GET /log/tile/%s = %d, want 404", path, code)
		}
	}
}
