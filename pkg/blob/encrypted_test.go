package blob_test

import (
	"bytes"
	"context"
	"crypto/aes"
	"crypto/cipher"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"testing"

	"github.com/lethe-dev/lethe/pkg/blob"
	"github.com/lethe-dev/lethe/pkg/blob/blobtest"
)

// The format's sizes, as the package documentation gives them.
const (
	headerSize = 14
	chunkSize  = 64 << 10
	sealedSize = chunkSize + 16
)

func newKey(t testing.TB) []byte {
	t.Helper()
	k, err := blob.NewKey()
	if err != nil {
		t.Fatal(err)
	}
	return k
}

func encrypted(t testing.TB, s blob.Store, key []byte) blob.Store {
	t.Helper()
	e, err := blob.Encrypted(s, key)
	if err != nil {
		t.Fatal(err)
	}
	return e
}

func TestEncryptedFSConformance(t *testing.T) {
	blobtest.Run(t, func(t *testing.T) blob.Store { return encrypted(t, newFS(t), newKey(t)) })
}

func TestEncryptedS3Conformance(t *testing.T) {
	f := newFakeS3(t)
	blobtest.Run(t, func(t *testing.T) blob.Store { return encrypted(t, f.store(t, "enc"), newKey(t)) })
}

func TestNewKeyAndBadKeys(t *testing.T) {
	a, b := newKey(t), newKey(t)
	if len(a) != 32 || bytes.Equal(a, b) {
		t.Errorf("NewKey gave %d bytes, twice the same: %v", len(a), bytes.Equal(a, b))
	}
	for _, n := range []int{0, 16, 24, 31, 33} {
		if _, err := blob.Encrypted(newFS(t), make([]byte, n)); err == nil {
			t.Errorf("Encrypted took a key of %d bytes", n)
		}
	}
	if _, err := blob.Encrypted(nil, a); err == nil {
		t.Error("Encrypted took no store")
	}
}

// The key given is copied: changing the caller's slice afterwards does not
// change the store's key.
func TestEncryptedCopiesKey(t *testing.T) {
	fs := newFS(t)
	key := newKey(t)
	e := encrypted(t, fs, key)
	blobtest.Put(t, e, "k", []byte("data"))
	clear(key)
	blobtest.Want(t, e, "k", []byte("data"))
}

func TestEncryptedHidesPlaintext(t *testing.T) {
	fs := newFS(t)
	e := encrypted(t, fs, newKey(t))
	marker := []byte("PLAINTEXT-MARKER-jane.doe@example.com")
	data := bytes.Repeat(marker, 10_000)
	blobtest.Put(t, e, "req-1/records.json", data)
	raw, err := blobtest.Read(fs, "req-1/records.json")
	if err != nil {
		t.Fatal(err)
	}
	if bytes.Contains(raw, marker[:16]) {
		t.Error("the stored blob holds the plaintext")
	}
	if want := headerSize + len(data) + 16*((len(data)+chunkSize-1)/chunkSize); len(raw) != want {
		t.Errorf("stored %d bytes, want %d", len(raw), want)
	}
	// The same plaintext twice is stored twice differently (a new nonce
	// prefix for every Put).
	blobtest.Put(t, e, "req-1/records.json", data)
	raw2, _ := blobtest.Read(fs, "req-1/records.json")
	if bytes.Equal(raw[:64], raw2[:64]) {
		t.Error("two Puts of the same plaintext stored the same bytes")
	}
}

func TestEncryptedEmpty(t *testing.T) {
	fs := newFS(t)
	e := encrypted(t, fs, newKey(t))
	blobtest.Put(t, e, "empty", nil)
	blobtest.Want(t, e, "empty", nil)
	raw, _ := blobtest.Read(fs, "empty")
	if len(raw) != headerSize+16 {
		t.Errorf("an empty blob is stored in %d bytes, want header and one empty chunk (30)", len(raw))
	}
	// Without its final chunk it does not read as empty.
	blobtest.Put(t, fs, "empty", raw[:headerSize])
	if _, err := blobtest.Read(e, "empty"); !errors.Is(err, blob.ErrCorrupt) {
		t.Errorf("header alone: %v, want ErrCorrupt", err)
	}
}

// readUntilCorrupt reads the blob and checks that it fails with ErrCorrupt
// after returning at most good bytes, all of them right.
func wantCorrupt(t *testing.T, e blob.Store, key string, plain []byte, good int) {
	t.Helper()
	got, err := blobtest.Read(e, key)
	if !errors.Is(err, blob.ErrCorrupt) {
		t.Fatalf("read = %d bytes, %v; want ErrCorrupt", len(got), err)
	}
	if len(got) > good {
		t.Errorf("read %d bytes before ErrCorrupt, want at most %d: the bad chunk's plaintext came out", len(got), good)
	}
	if !bytes.Equal(got, plain[:len(got)]) {
		t.Errorf("the %d bytes read before ErrCorrupt are not the plaintext", len(got))
	}
}

func TestEncryptedTampering(t *testing.T) {
	fs := newFS(t)
	key := newKey(t)
	e := encrypted(t, fs, key)
	const name = "req-1/files/a.bin"
	plain := blobtest.Random(11, 3*chunkSize+1000) // 4 chunks, the last short
	blobtest.Put(t, e, name, plain)
	raw, err := blobtest.Read(fs, name)
	if err != nil {
		t.Fatal(err)
	}
	chunkAt := func(i int) int { return headerSize + i*sealedSize }
	other := blobtest.Random(12, 3*chunkSize+1000)
	blobtest.Put(t, e, "req-2/other.bin", other)
	rawOther, _ := blobtest.Read(fs, "req-2/other.bin")

	type tampering struct {
		name   string
		stored []byte
		good   int // plaintext bytes that may come out before the error
	}
	var cases []tampering
	for _, pos := range []int{0, 6, 7, 13, chunkAt(0), chunkAt(0) + 100, chunkAt(1) - 1, chunkAt(1), chunkAt(2) + 5000, chunkAt(3), len(raw) - 17, len(raw) - 1} {
		b := bytes.Clone(raw)
		b[pos] ^= 0x01
		good := 0
		if pos >= headerSize {
			good = (pos - headerSize) / sealedSize * chunkSize
		}
		cases = append(cases, tampering{fmt.Sprintf("flip byte %d", pos), b, good})
	}
	for i := 1; i <= 3; i++ {
		cases = append(cases,
			tampering{fmt.Sprintf("truncated after chunk %d", i-1), raw[:chunkAt(i)], (i - 1) * chunkSize},
			tampering{fmt.Sprintf("truncated inside chunk %d", i), raw[:chunkAt(i)+777], i * chunkSize})
	}
	cases = append(cases,
		tampering{"nothing stored", []byte{}, 0},
		tampering{"truncated header", raw[:9], 0},
		tampering{"header only", raw[:headerSize], 0},
		tampering{"truncated by one byte", raw[:len(raw)-1], 3 * chunkSize},
		tampering{"extended by a byte", append(bytes.Clone(raw), 0), 3 * chunkSize},
		tampering{"extended by a copy of the last chunk", append(bytes.Clone(raw), raw[chunkAt(3):]...), 3 * chunkSize},
		tampering{"last chunk dropped", append(bytes.Clone(raw[:chunkAt(2)]), raw[chunkAt(3):]...), 2 * chunkSize},
	)
	swapped := bytes.Clone(raw)
	copy(swapped[chunkAt(1):chunkAt(2)], raw[chunkAt(2):chunkAt(3)])
	copy(swapped[chunkAt(2):chunkAt(3)], raw[chunkAt(1):chunkAt(2)])
	cases = append(cases, tampering{"chunks 1 and 2 swapped", swapped, chunkSize})
	mixed := bytes.Clone(raw)
	copy(mixed[chunkAt(2):chunkAt(3)], rawOther[chunkAt(2):chunkAt(3)])
	cases = append(cases, tampering{"chunk 2 from another blob", mixed, 2 * chunkSize})
	otherHeader := bytes.Clone(raw)
	copy(otherHeader[:headerSize], rawOther[:headerSize])
	cases = append(cases, tampering{"header from another blob", otherHeader, 0})

	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			blobtest.Put(t, fs, name, tc.stored)
			wantCorrupt(t, e, name, plain, tc.good)
		})
	}

	t.Run("intact", func(t *testing.T) {
		blobtest.Put(t, fs, name, raw)
		blobtest.Want(t, e, name, plain)
	})
	t.Run("copied to another key", func(t *testing.T) {
		blobtest.Put(t, fs, "req-1/files/b.bin", raw)
		wantCorrupt(t, e, "req-1/files/b.bin", plain, 0)
	})
	t.Run("swapped with another blob", func(t *testing.T) {
		blobtest.Put(t, fs, "req-1/files/b.bin", rawOther)
		wantCorrupt(t, e, "req-1/files/b.bin", other, 0)
	})
	t.Run("another key", func(t *testing.T) {
		blobtest.Put(t, fs, name, raw)
		wantCorrupt(t, encrypted(t, fs, newKey(t)), name, plain, 0)
	})
	t.Run("not encrypted", func(t *testing.T) {
		blobtest.Put(t, fs, name, plain)
		wantCorrupt(t, e, name, plain, 0)
	})
	t.Run("missing", func(t *testing.T) {
		blobtest.WantNotFound(t, e, "req-1/files/missing")
	})
}

// The documentation's description of the format is enough to read a blob
// and to write one: an independent reader and writer, made from it alone.
func TestEncryptedFormatAsDocumented(t *testing.T) {
	fs := newFS(t)
	key := newKey(t)
	e := encrypted(t, fs, key)
	block, _ := aes.NewCipher(key)
	aead, _ := cipher.NewGCM(block)
	nonce := func(prefix []byte, i uint32, last bool) []byte {
		n := append(bytes.Clone(prefix), 0, 0, 0, 0, 0)
		binary.BigEndian.PutUint32(n[7:], i)
		if last {
			n[11] = 1
		}
		return n
	}
	for _, size := range []int{0, 1, chunkSize, chunkSize + 1, 2 * chunkSize, 2*chunkSize + 3} {
		plain := blobtest.Random(uint64(size), size)
		const name = "req-7/doc.bin"

		// Read what Encrypted wrote.
		blobtest.Put(t, e, name, plain)
		raw, _ := blobtest.Read(fs, name)
		if string(raw[:7]) != "LETHEB1" {
			t.Fatalf("magic %q", raw[:7])
		}
		prefix, rest := raw[7:14], raw[14:]
		var got []byte
		for i := uint32(0); ; i++ {
			n := min(len(rest), sealedSize)
			last := n == len(rest)
			p, err := aead.Open(nil, nonce(prefix, i, last), rest[:n], []byte(name))
			if err != nil {
				t.Fatalf("size %d: chunk %d: %v", size, i, err)
			}
			got = append(got, p...)
			rest = rest[n:]
			if last {
				break
			}
		}
		if !bytes.Equal(got, plain) {
			t.Fatalf("size %d: independent reader got other bytes", size)
		}

		// Write for Encrypted to read.
		prefix = []byte("7prefix")
		out := []byte("LETHEB1" + string(prefix))
		for i := uint32(0); ; i++ {
			n := min(len(plain)-int(i)*chunkSize, chunkSize)
			last := int(i)*chunkSize+n == len(plain)
			out = aead.Seal(out, nonce(prefix, i, last), plain[int(i)*chunkSize:int(i)*chunkSize+n], []byte(name))
			if last {
				break
			}
		}
		blobtest.Put(t, fs, name, out)
		blobtest.Want(t, e, name, plain)
	}
}

// A source that fails in the middle of a chunk or at a chunk boundary
// never yields a blob: the sealer does not turn its error into an end.
func TestEncryptedSourceErrorAtBoundary(t *testing.T) {
	fs := newFS(t)
	e := encrypted(t, fs, newKey(t))
	for _, size := range []int{0, chunkSize, chunkSize + 1, 2 * chunkSize} {
		boom := errors.New("boom")
		r := io.MultiReader(bytes.NewReader(make([]byte, size)), errReader{boom})
		if _, err := e.Put(context.Background(), "k", r); !errors.Is(err, boom) {
			t.Errorf("size %d: %v", size, err)
		}
		blobtest.WantNotFound(t, e, "k")
	}
}

type errReader struct{ err error }

func (r errReader) Read([]byte) (int, error) { return 0, r.err }
