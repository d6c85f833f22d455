package blob

import (
	"context"
	"crypto/aes"
	"crypto/cipher"
	"crypto/rand"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
)

// ErrCorrupt is returned (wrapped) by a read of an [Encrypted] blob that
// does not authenticate: changed, truncated, reordered, moved to another
// key, or read with another key.
var ErrCorrupt = errors.New("blob: corrupt or wrong key")

// KeySize is the size of an encryption key, in bytes (AES-256).
const KeySize = 32

// The encrypted format; the package documentation describes it.
const (
	magic      = "LETHEB1"
	prefixSize = 7
	headerSize = len(magic) + prefixSize
	chunkSize  = 64 << 10
	tagSize    = 16
	sealedSize = chunkSize + tagSize
)

// NewKey returns a fresh random 32-byte key.
func NewKey() ([]byte, error) {
	key := make([]byte, KeySize)
	if _, err := rand.Read(key); err != nil {
		return nil, fmt.Errorf("blob: new key: %w", err)
	}
	return key, nil
}

// Encrypted wraps s: Put encrypts with key (32 bytes, AES-256-GCM in a
// chunked streaming construction, described in the package
// documentation), Open decrypts and authenticates. A blob any byte of
// which was changed, truncated, reordered, or moved to another key, or
// opened with another key, fails to read with ErrCorrupt (wrapped), at the
// latest at the chunk that shows it; no plaintext of a chunk that fails is
// returned. Put returns the number of plaintext bytes; DeletePrefix is s's.
// The key is copied.
func Encrypted(s Store, key []byte) (Store, error) {
	if s == nil {
		return nil, errors.New("blob: encrypted: no store")
	}
	if len(key) != KeySize {
		return nil, fmt.Errorf("blob: encrypted: key is %d bytes, want %d", len(key), KeySize)
	}
	e := &encrypted{s: s, key: append([]byte(nil), key...)}
	if _, err := e.aead(); err != nil {
		return nil, err
	}
	return e, nil
}

type encrypted struct {
	s   Store
	key []byte
}

// aead makes a cipher for one stream; making one is cheap, and no cipher
// is shared between goroutines.
func (e *encrypted) aead() (cipher.AEAD, error) {
	block, err := aes.NewCipher(e.key)
	if err != nil {
		return nil, fmt.Errorf("blob: encrypted: %w", err)
	}
	aead, err := cipher.NewGCM(block)
	if err != nil {
		return nil, fmt.Errorf("blob: encrypted: %w", err)
	}
	return aead, nil
}

// Put implements [Store].
func (e *encrypted) Put(ctx context.Context, key string, r io.Reader) (int64, error) {
	if err := CheckKey(key); err != nil {
		return 0, err
	}
	aead, err := e.aead()
	if err != nil {
		return 0, err
	}
	sr := &sealer{src: r, aead: aead, ad: []byte(key)}
	sr.out = make([]byte, headerSize, sealedSize)
	copy(sr.out, magic)
	if _, err := rand.Read(sr.out[len(magic):headerSize]); err != nil {
		return 0, fmt.Errorf("blob: encrypted: %w", err)
	}
	copy(sr.nonce[:prefixSize], sr.out[len(magic):headerSize])
	if _, err := e.s.Put(ctx, key, sr); err != nil {
		return 0, err
	}
	return sr.n, nil
}

// Open implements [Store]. The header is read at the first Read.
func (e *encrypted) Open(ctx context.Context, key string) (io.ReadCloser, error) {
	if err := CheckKey(key); err != nil {
		return nil, err
	}
	aead, err := e.aead()
	if err != nil {
		return nil, err
	}
	rc, err := e.s.Open(ctx, key)
	if err != nil {
		return nil, err
	}
	return &opener{src: rc, aead: aead, ad: []byte(key)}, nil
}

// DeletePrefix implements [Store].
func (e *encrypted) DeletePrefix(ctx context.Context, prefix string) (int, error) {
	return e.s.DeletePrefix(ctx, prefix)
}

// setChunk writes the counter and the last-chunk flag into a nonce whose
// first prefixSize bytes hold the blob's prefix.
func setChunk(nonce *[12]byte, counter uint32, last bool) {
	binary.BigEndian.PutUint32(nonce[prefixSize:prefixSize+4], counter)
	nonce[11] = 0
	if last {
		nonce[11] = 1
	}
}

// sealer reads plaintext from src and serves the encrypted blob: the
// header, then the sealed chunks. It holds one plaintext chunk (plus one
// byte read ahead, to know whether a chunk is the last) and one sealed
// chunk.
type sealer struct {
	src   io.Reader
	aead  cipher.AEAD
	ad    []byte
	nonce [12]byte

	counter uint32
	plain   []byte // chunkSize+1: a chunk and the byte read ahead
	ahead   bool   // plain[0] holds a byte read ahead of the last chunk
	out     []byte // bytes to serve: the header, then a sealed chunk
	off     int
	last    bool // the last chunk is in out
	n       int64
}

func (s *sealer) Read(p []byte) (int, error) {
	for s.off == len(s.out) {
		if s.last {
			return 0, io.EOF
		}
		if err := s.next(); err != nil {
			return 0, err
		}
	}
	n := copy(p, s.out[s.off:])
	s.off += n
	return n, nil
}

// next reads and seals the next chunk. An error of src is returned as it
// is, and no further chunk is ever sealed: a failed source never makes a
// blob that authenticates.
func (s *sealer) next() error {
	if s.plain == nil {
		s.plain = make([]byte, chunkSize+1)
	}
	have := 0
	if s.ahead {
		have = 1
	}
	n, eof, err := readFull(s.src, s.plain[have:])
	if err != nil {
		return err
	}
	n += have
	s.last = eof
	size := n
	if !eof {
		size = chunkSize // n == chunkSize+1: one byte belongs to the next chunk
	}
	if !s.last && s.counter == ^uint32(0) {
		return errors.New("blob: encrypted: blob too large")
	}
	setChunk(&s.nonce, s.counter, s.last)
	s.out = s.aead.Seal(s.out[:0], s.nonce[:], s.plain[:size], s.ad)
	s.off = 0
	s.n += int64(size)
	s.counter++
	if !s.last {
		s.plain[0] = s.plain[chunkSize]
		s.ahead = true
	}
	return nil
}

// opener reads an encrypted blob from src and serves its plaintext, one
// authenticated chunk at a time.
type opener struct {
	src   io.ReadCloser
	aead  cipher.AEAD
	ad    []byte
	nonce [12]byte

	started bool
	counter uint32
	buf     []byte // sealedSize+1: a sealed chunk and the byte read ahead
	ahead   bool
	plain   []byte
	off     int
	last    bool // the last chunk has been opened
	err     error
}

func (o *opener) Read(p []byte) (int, error) {
	for o.off == len(o.plain) {
		if o.err != nil {
			return 0, o.err
		}
		if o.last {
			return 0, io.EOF
		}
		if err := o.next(); err != nil {
			o.err = err
			return 0, err
		}
	}
	n := copy(p, o.plain[o.off:])
	o.off += n
	return n, nil
}

func corrupt(what string) error {
	return fmt.Errorf("%w: %s", ErrCorrupt, what)
}

func (o *opener) next() error {
	if !o.started {
		var hdr [headerSize]byte
		n, _, err := readFull(o.src, hdr[:])
		if err != nil {
			return err
		}
		if n < headerSize {
			return corrupt("truncated header")
		}
		if string(hdr[:len(magic)]) != magic {
			return corrupt("not an encrypted blob (bad magic)")
		}
		copy(o.nonce[:prefixSize], hdr[len(magic):])
		o.buf = make([]byte, sealedSize+1)
		o.plain = make([]byte, 0, chunkSize)
		o.started = true
	}
	have := 0
	if o.ahead {
		have = 1
	}
	n, eof, err := readFull(o.src, o.buf[have:])
	if err != nil {
		return err
	}
	n += have
	size := n
	if !eof {
		size = sealedSize
	}
	if size < tagSize {
		return corrupt(fmt.Sprintf("truncated at chunk %d", o.counter))
	}
	if !eof && o.counter == ^uint32(0) {
		return corrupt("too many chunks")
	}
	setChunk(&o.nonce, o.counter, eof)
	plain, err := o.aead.Open(o.plain[:0], o.nonce[:], o.buf[:size], o.ad)
	if err != nil {
		return corrupt(fmt.Sprintf("chunk %d does not authenticate", o.counter))
	}
	o.plain, o.off = plain, 0
	o.counter++
	o.last = eof
	if !eof {
		o.buf[0] = o.buf[sealedSize]
		o.ahead = true
	}
	return nil
}

func (o *opener) Close() error { return o.src.Close() }
