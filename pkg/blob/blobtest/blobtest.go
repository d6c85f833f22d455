// Package blobtest is a conformance suite for implementations of
// [blob.Store]: any store, or wrapper of a store, that passes [Run]
// behaves as the orchestrator and the connectors expect.
package blobtest

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"strings"
	"sync"
	"testing"

	"github.com/lethe-dev/lethe/pkg/blob"
)

// Run runs the suite against stores made by newStore, which gives a new,
// empty store each time it is called (once per subtest).
func Run(t *testing.T, newStore func(t *testing.T) blob.Store) {
	t.Run("RoundTrip", func(t *testing.T) { testRoundTrip(t, newStore(t)) })
	t.Run("Replace", func(t *testing.T) { testReplace(t, newStore(t)) })
	t.Run("NotFound", func(t *testing.T) { testNotFound(t, newStore(t)) })
	t.Run("BadKeys", func(t *testing.T) { testBadKeys(t, newStore(t)) })
	t.Run("GoodKeys", func(t *testing.T) { testGoodKeys(t, newStore(t)) })
	t.Run("DeletePrefix", func(t *testing.T) { testDeletePrefix(t, newStore(t)) })
	t.Run("FailedPut", func(t *testing.T) { testFailedPut(t, newStore(t)) })
	t.Run("CancelledPut", func(t *testing.T) { testCancelledPut(t, newStore(t)) })
	t.Run("Concurrent", func(t *testing.T) { testConcurrent(t, newStore(t)) })
}

// Random returns n pseudo-random bytes drawn from seed.
func Random(seed uint64, n int) []byte {
	b := make([]byte, n)
	var s [32]byte
	for i := range 8 {
		s[i] = byte(seed >> (8 * i))
	}
	_, _ = rand.NewChaCha8(s).Read(b)
	return b
}

// Put stores data under key, failing the test if it cannot.
func Put(t testing.TB, s blob.Store, key string, data []byte) {
	t.Helper()
	n, err := s.Put(context.Background(), key, bytes.NewReader(data))
	if err != nil {
		t.Fatalf("Put(%s): %v", key, err)
	}
	if n != int64(len(data)) {
		t.Fatalf("Put(%s) = %d bytes, want %d", key, n, len(data))
	}
}

// Read returns the blob under key, or the error that opening or reading
// it gave.
func Read(s blob.Store, key string) ([]byte, error) {
	rc, err := s.Open(context.Background(), key)
	if err != nil {
		return nil, err
	}
	data, err := io.ReadAll(rc)
	if cerr := rc.Close(); err == nil && cerr != nil {
		err = cerr
	}
	return data, err
}

// Want fails the test unless the blob under key is want.
func Want(t testing.TB, s blob.Store, key string, want []byte) {
	t.Helper()
	got, err := Read(s, key)
	if err != nil {
		t.Fatalf("read %s: %v", key, err)
	}
	if !bytes.Equal(got, want) {
		t.Fatalf("read %s: %d bytes that differ from the %d put", key, len(got), len(want))
	}
}

// WantNotFound fails the test unless Open of key is ErrNotFound.
func WantNotFound(t testing.TB, s blob.Store, key string) {
	t.Helper()
	rc, err := s.Open(context.Background(), key)
	if err == nil {
		_ = rc.Close()
		t.Fatalf("Open(%s) found a blob, want ErrNotFound", key)
	}
	if !errors.Is(err, blob.ErrNotFound) {
		t.Fatalf("Open(%s) = %v, want ErrNotFound", key, err)
	}
}

func testRoundTrip(t *testing.T, s blob.Store) {
	for i, tc := range []struct {
		name string
		size int
	}{
		{"empty", 0},
		{"1 byte", 1},
		{"64 KiB", 64 << 10},
		{"64 KiB+1", 64<<10 + 1},
		{"128 KiB", 128 << 10},
		{"5 MiB", 5<<20 + 12345},
	} {
		t.Run(tc.name, func(t *testing.T) {
			key := fmt.Sprintf("req-1/files/blob-%d.bin", i)
			data := Random(uint64(i), tc.size)
			Put(t, s, key, data)
			Want(t, s, key, data)
		})
	}
}

func testReplace(t *testing.T, s blob.Store) {
	key := "req-1/records.json"
	Put(t, s, key, Random(1, 100_000))
	want := []byte(`{"replaced":true}`)
	Put(t, s, key, want)
	Want(t, s, key, want)
	Put(t, s, key, nil)
	Want(t, s, key, nil)
}

func testNotFound(t *testing.T, s blob.Store) {
	WantNotFound(t, s, "req-1/missing")
	Put(t, s, "req-1/here/a", []byte("a"))
	WantNotFound(t, s, "req-1/missing")
	WantNotFound(t, s, "req-1/her")
	// A folder of blobs is not a blob; nor is what would lie under a blob.
	WantNotFound(t, s, "req-1/here")
	WantNotFound(t, s, "req-1/here/a/b")
}

// marker is in every bad key: no error may quote it.
const marker = "SECRETxNAME"

func testBadKeys(t *testing.T, s blob.Store) {
	ctx := context.Background()
	for _, tc := range []struct{ name, key string }{
		{"empty", ""},
		{"dotdot", "../" + marker},
		{"dotdot inside", marker + "/../x"},
		{"dot", "./" + marker},
		{"dot last", marker + "/."},
		{"empty segment", marker + "//x"},
		{"trailing slash", marker + "/"},
		{"absolute", "/" + marker},
		{"too long", marker + "/" + strings.Repeat("a", blob.MaxKeyLen)},
		{"space", marker + " x"},
		{"backslash", marker + `\x`},
		{"colon", marker + ":x"},
		{"tilde", marker + "~x"},
		{"NUL", marker + "\x00"},
		{"newline", marker + "\n"},
		{"non-ASCII", marker + "é"},
		{"percent", marker + "%2F"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			check := func(op string, err error) {
				t.Helper()
				if err == nil {
					t.Fatalf("%s took a bad key", op)
				}
				if !errors.Is(err, blob.ErrInvalidKey) {
					t.Errorf("%s: %v, want ErrInvalidKey", op, err)
				}
				if strings.Contains(err.Error(), marker) {
					t.Errorf("%s: error quotes the key: %v", op, err)
				}
			}
			_, err := s.Put(ctx, tc.key, strings.NewReader("x"))
			check("Put", err)
			_, err = s.Open(ctx, tc.key)
			check("Open", err)
			_, err = s.DeletePrefix(ctx, tc.key+"/")
			check("DeletePrefix", err)
		})
	}
	for _, prefix := range []string{"", "/", marker, "//", marker + "//", "../", marker + "/../x/", "/" + marker + "/"} {
		_, err := s.DeletePrefix(ctx, prefix)
		if err == nil {
			t.Errorf("DeletePrefix took a bad prefix (%d bytes)", len(prefix))
			continue
		}
		if !errors.Is(err, blob.ErrInvalidKey) || strings.Contains(err.Error(), marker) {
			t.Errorf("DeletePrefix(bad prefix of %d bytes) = %v, want ErrInvalidKey not quoting it", len(prefix), err)
		}
	}
}

func testGoodKeys(t *testing.T, s blob.Store) {
	// A key of exactly MaxKeyLen bytes, in segments a filesystem takes.
	long := strings.Repeat("a", 200) + "/" + strings.Repeat("b", 200) + "/"
	long += strings.Repeat("c", blob.MaxKeyLen-len(long))
	for _, key := range []string{"a", ".hidden", "a..b", "-_.", "A-Z_0-9.txt", "x/y/z/w/v", long} {
		data := []byte("blob " + key)
		Put(t, s, key, data)
		Want(t, s, key, data)
	}
}

func testDeletePrefix(t *testing.T, s blob.Store) {
	ctx := context.Background()
	for _, key := range []string{"req-1/records.json", "req-1/files/a.bin", "req-1/files/deep/b.bin", "req-12/records.json", "req-1x", "other/req-1/c"} {
		Put(t, s, key, []byte(key))
	}
	n, err := s.DeletePrefix(ctx, "req-1/")
	if err != nil {
		t.Fatal(err)
	}
	if n != 3 {
		t.Errorf("DeletePrefix(req-1/) = %d, want 3", n)
	}
	for _, key := range []string{"req-1/records.json", "req-1/files/a.bin", "req-1/files/deep/b.bin"} {
		WantNotFound(t, s, key)
	}
	for _, key := range []string{"req-12/records.json", "req-1x", "other/req-1/c"} {
		Want(t, s, key, []byte(key))
	}
	// Again, and a folder never used: nothing to delete is no error.
	for _, prefix := range []string{"req-1/", "never/", "req-1x/"} {
		n, err := s.DeletePrefix(ctx, prefix)
		if err != nil || n != 0 {
			t.Errorf("DeletePrefix(%s) = %d, %v; want 0, nil", prefix, n, err)
		}
	}
	Want(t, s, "req-1x", []byte("req-1x"))
	// The folder can be used again.
	Put(t, s, "req-1/records.json", []byte("again"))
	Want(t, s, "req-1/records.json", []byte("again"))
	// A nested folder only.
	n, err = s.DeletePrefix(ctx, "other/req-1/")
	if err != nil || n != 1 {
		t.Errorf("DeletePrefix(other/req-1/) = %d, %v; want 1, nil", n, err)
	}
	WantNotFound(t, s, "other/req-1/c")
	Want(t, s, "req-12/records.json", []byte("req-12/records.json"))
}

var errSource = errors.New("blobtest: source failed")

// failingReader fails every read.
type failingReader struct{}

func (failingReader) Read([]byte) (int, error) { return 0, errSource }

// failAfter gives data, then fails.
func failAfter(data []byte) io.Reader {
	return io.MultiReader(bytes.NewReader(data), failingReader{})
}

func testFailedPut(t *testing.T, s blob.Store) {
	ctx := context.Background()
	for _, size := range []int{0, 1000, 200 << 10, 3 << 20} {
		t.Run(fmt.Sprint(size), func(t *testing.T) {
			key := fmt.Sprintf("req-1/failed-%d", size)
			_, err := s.Put(ctx, key, failAfter(Random(2, size)))
			if !errors.Is(err, errSource) {
				t.Fatalf("Put from a failing reader = %v, want its error", err)
			}
			WantNotFound(t, s, key)

			// A failed Put over a blob leaves the blob as it was.
			old := Random(3, 70_000)
			Put(t, s, key, old)
			if _, err := s.Put(ctx, key, failAfter(Random(4, size))); !errors.Is(err, errSource) {
				t.Fatalf("Put from a failing reader = %v, want its error", err)
			}
			Want(t, s, key, old)
		})
	}
}

// cancellingReader cancels its context once it has given n bytes, and
// goes on giving bytes as if nothing happened.
type cancellingReader struct {
	n      int
	cancel context.CancelFunc
}

func (c *cancellingReader) Read(p []byte) (int, error) {
	if c.n <= 0 {
		c.cancel()
	}
	p = p[:min(len(p), 4096)]
	for i := range p {
		p[i] = byte(i)
	}
	c.n -= len(p)
	return len(p), nil
}

func testCancelledPut(t *testing.T, s blob.Store) {
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if _, err := s.Put(ctx, "req-1/cancelled", strings.NewReader("data")); !errors.Is(err, context.Canceled) {
		t.Errorf("Put with a cancelled context = %v, want context.Canceled", err)
	}
	WantNotFound(t, s, "req-1/cancelled")

	// Cancelled halfway through a stream that would not end by itself.
	for _, after := range []int{100, 1 << 20, 20 << 20} {
		ctx, cancel := context.WithCancel(context.Background())
		_, err := s.Put(ctx, "req-1/cancelled", &cancellingReader{n: after, cancel: cancel})
		cancel()
		if !errors.Is(err, context.Canceled) {
			t.Errorf("Put cancelled after %d bytes = %v, want context.Canceled", after, err)
		}
		WantNotFound(t, s, "req-1/cancelled")
	}
}

func testConcurrent(t *testing.T, s blob.Store) {
	const workers = 8
	versions := make([][]byte, workers)
	for i := range versions {
		versions[i] = Random(uint64(100+i), 100_000+i)
	}
	var wg sync.WaitGroup
	errs := make(chan error, 3*workers)
	for i := range workers {
		wg.Go(func() {
			ctx := context.Background()
			own := fmt.Sprintf("req-%d/own", i)
			if _, err := s.Put(ctx, own, bytes.NewReader(versions[i])); err != nil {
				errs <- err
				return
			}
			// Everyone replaces the same blob at once.
			if _, err := s.Put(ctx, "shared/blob", bytes.NewReader(versions[i])); err != nil {
				errs <- err
				return
			}
			got, err := Read(s, own)
			if err != nil {
				errs <- err
				return
			}
			if !bytes.Equal(got, versions[i]) {
				errs <- fmt.Errorf("worker %d read back another blob", i)
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	got, err := Read(s, "shared/blob")
	if err != nil {
		t.Fatal(err)
	}
	for _, v := range versions {
		if bytes.Equal(got, v) {
			return
		}
	}
	t.Errorf("the blob every worker replaced is none of their blobs (%d bytes)", len(got))
}
