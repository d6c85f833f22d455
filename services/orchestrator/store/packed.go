package store

import (
	"bytes"
	"fmt"

	"github.com/klauspost/compress/zstd"
)

// Certificates are stored compressed. They were two thirds of the store
// (~15 KB a request): mostly base64 of hashes, yet a request's entries
// sit close together in the log, so their inclusion proofs share most of
// their upper hashes, and zstd keeps about a third. Fewer bytes also mean
// fewer pages for the one writer to write. A stored certificate that does
// not start with zstd's magic number (a JSON certificate starts with '{')
// is read as it is: those stored before, and any that would not shrink.
var (
	certEncoder = must(zstd.NewWriter(nil, zstd.WithEncoderLevel(zstd.SpeedFastest), zstd.WithWindowSize(1<<20)))
	certDecoder = must(zstd.NewReader(nil, zstd.WithDecoderConcurrency(2), zstd.WithDecoderMaxMemory(64<<20)))
	zstdMagic   = []byte{0x28, 0xb5, 0x2f, 0xfd}
)

func must[T any](v T, err error) T {
	if err != nil {
		panic(err) // options fixed above: only a programming error fails
	}
	return v
}

// PackedCertificate is a certificate as the store keeps it.
type PackedCertificate []byte

// PackCertificate is what is stored for cert. It is made by the caller of
// Tx.PutCertificate, not in the transaction: compressing takes about as
// long as a signature, and on SQLite every transaction queues for the
// store's one writer.
func PackCertificate(cert []byte) PackedCertificate {
	packed := certEncoder.EncodeAll(cert, make([]byte, 0, len(cert)/2))
	if len(packed) >= len(cert) {
		return cert
	}
	return packed
}

// unpackCertificate is the certificate stored as b.
func unpackCertificate(b []byte) ([]byte, error) {
	if !bytes.HasPrefix(b, zstdMagic) {
		return b, nil
	}
	cert, err := certDecoder.DecodeAll(b, nil)
	if err != nil {
		return nil, fmt.Errorf("stored certificate: %w", err)
	}
	return cert, nil
}
