package blob_test

import (
	"context"
	"crypto/sha256"
	"io"
	"math/rand/v2"
	"runtime"
	"sync"
	"testing"
	"time"
)

// generator gives n pseudo-random bytes without holding them.
type generator struct {
	rng *rand.ChaCha8
	n   int64
}

func newGenerator(n int64) *generator {
	return &generator{rng: rand.NewChaCha8([32]byte{1, 2, 3}), n: n}
}

func (g *generator) Read(p []byte) (int, error) {
	if g.n == 0 {
		return 0, io.EOF
	}
	if int64(len(p)) > g.n {
		p = p[:g.n]
	}
	_, _ = g.rng.Read(p)
	g.n -= int64(len(p))
	return len(p), nil
}

// heapPeak samples the heap in use until stopped, and returns the most it
// saw above what was in use when it started.
func heapPeak() (stop func() uint64) {
	var ms runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&ms)
	base := ms.HeapInuse
	var peak uint64
	done := make(chan struct{})
	var wg sync.WaitGroup
	wg.Go(func() {
		tick := time.NewTicker(2 * time.Millisecond)
		defer tick.Stop()
		var ms runtime.MemStats
		for {
			runtime.ReadMemStats(&ms)
			peak = max(peak, ms.HeapInuse)
			select {
			case <-done:
				return
			case <-tick.C:
			}
		}
	})
	return func() uint64 {
		close(done)
		wg.Wait()
		if peak < base {
			return 0
		}
		return peak - base
	}
}

// TestEncryptedFSMemoryIsBounded moves a 256 MiB blob through
// Encrypted(FS), from a reader that generates it, and checks that neither
// the Put nor the read ever holds more than a few MiB.
func TestEncryptedFSMemoryIsBounded(t *testing.T) {
	if testing.Short() {
		t.Skip("moves 256 MiB")
	}
	const size = 256 << 20
	const limit = 32 << 20
	s := encrypted(t, newFS(t), newKey(t))
	ctx := context.Background()

	want := sha256.New()
	var before, after runtime.MemStats
	runtime.ReadMemStats(&before)
	stop := heapPeak()
	n, err := s.Put(ctx, "req-1/recording.mp4", io.TeeReader(newGenerator(size), want))
	if err != nil || n != size {
		t.Fatalf("Put = %d, %v", n, err)
	}
	rc, err := s.Open(ctx, "req-1/recording.mp4")
	if err != nil {
		t.Fatal(err)
	}
	got := sha256.New()
	m, err := io.Copy(got, rc)
	if err != nil || m != size {
		t.Fatalf("read %d, %v", m, err)
	}
	if err := rc.Close(); err != nil {
		t.Fatal(err)
	}
	peak := stop()
	runtime.ReadMemStats(&after)
	if string(got.Sum(nil)) != string(want.Sum(nil)) {
		t.Fatal("read back other bytes")
	}
	allocated := after.TotalAlloc - before.TotalAlloc
	t.Logf("moved 2×%d MiB: heap peak +%.1f MiB, allocated %.1f MiB", size>>20, float64(peak)/(1<<20), float64(allocated)/(1<<20))
	if peak > limit {
		t.Errorf("heap in use rose by %d MiB, want under %d", peak>>20, limit>>20)
	}
	if allocated > limit {
		t.Errorf("allocated %d MiB moving the blob, want under %d: something allocates per chunk", allocated>>20, limit>>20)
	}
}
