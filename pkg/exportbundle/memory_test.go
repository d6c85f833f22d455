package exportbundle_test

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"io"
	"runtime"
	"testing"

	"github.com/lethe-dev/lethe/pkg/exportbundle"
)

// generator reads n bytes made from a fixed random block, calling sample
// every 8 MiB.
type generator struct {
	block  []byte
	off, n int64
	sample func()
}

func newGenerator(n int64, sample func()) *generator {
	return &generator{block: randomBytes(3, 1<<20+7), n: n, sample: sample}
}

func (g *generator) Read(p []byte) (int, error) {
	if g.off >= g.n {
		return 0, io.EOF
	}
	p = p[:min(int64(len(p)), g.n-g.off)]
	k := 0
	for k < len(p) {
		k += copy(p[k:], g.block[(g.off+int64(k))%int64(len(g.block)):])
	}
	before := g.off
	g.off += int64(k)
	if g.sample != nil && before/(8<<20) != g.off/(8<<20) {
		g.sample()
	}
	return k, nil
}

func (g *generator) Close() error { return nil }

type countingWriter struct{ n int64 }

func (w *countingWriter) Write(p []byte) (int, error) { w.n += int64(len(p)); return len(p), nil }

func TestWriteStreamsLargeFile(t *testing.T) {
	if testing.Short() {
		t.Skip("writes a 200 MiB bundle: not with -short")
	}
	const size = 200 << 20
	h := sha256.New()
	if _, err := io.Copy(h, newGenerator(size, nil)); err != nil {
		t.Fatal(err)
	}
	s := store{}
	sys := exportbundle.System{Name: "recordings", Outcome: "exported"}
	s.records(t, &sys, map[string]tables{"recordings": {"recordings": {{"title": "All-hands", "duration": "3 h"}}}})
	sys.Files = []exportbundle.File{{
		Path: exportbundle.FilePath("recordings", "All-hands.mp4"), Category: "recordings", ContentType: "video/mp4",
		Size: size, SHA256: hex.EncodeToString(h.Sum(nil)), Ref: "big",
	}}
	m := &exportbundle.Manifest{Format: exportbundle.Format, RequestID: "req-big", Tenant: "Acme", GeneratedAt: generatedAt, Systems: []exportbundle.System{sys}}

	var before, after, now runtime.MemStats
	var peak uint64
	sample := func() {
		runtime.ReadMemStats(&now)
		peak = max(peak, now.HeapAlloc)
	}
	open := func(ctx context.Context, ref string) (io.ReadCloser, error) {
		if ref == "big" {
			return newGenerator(size, sample), nil
		}
		return s.open(ctx, ref)
	}
	runtime.GC()
	runtime.ReadMemStats(&before)
	var w countingWriter
	if err := exportbundle.Write(context.Background(), &w, m, open); err != nil {
		t.Fatal(err)
	}
	runtime.ReadMemStats(&after)

	if w.n < size {
		t.Fatalf("wrote %d bytes, less than the file's %d", w.n, size)
	}
	const limit = 16 << 20
	if peak > before.HeapAlloc+limit {
		t.Errorf("heap went from %d to %d MiB while writing a 200 MiB file", before.HeapAlloc>>20, peak>>20)
	}
	if alloc := after.TotalAlloc - before.TotalAlloc; alloc > limit {
		t.Errorf("Write allocated %d MiB for a 200 MiB file", alloc>>20)
	}
	t.Logf("heap %d KiB before, %d KiB at most; %d KiB allocated in all", before.HeapAlloc>>10, peak>>10, (after.TotalAlloc-before.TotalAlloc)>>10)
}
