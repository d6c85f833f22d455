package store

import (
	"bytes"
	"os"
	"strings"
	"testing"
)

// A certificate is stored compressed when that makes it smaller, and is
// read back byte for byte; one stored before (plain JSON) is read as it
// is; a damaged one is an error, never a wrong certificate.
func TestPackedCertificates(t *testing.T) {
	real, err := os.ReadFile("../../../docs/spec/examples/certificates/erasure-resolved.json")
	if err != nil {
		t.Fatal(err)
	}
	damaged := PackCertificate(real)
	damaged = append(bytes.Clone(damaged[:len(damaged)/2]), strings.Repeat("x", 20)...)
	for _, tc := range []struct {
		name       string
		stored     []byte // what the store holds
		want       []byte // what is read back; nil: an error
		compressed bool
	}{
		{name: "a real certificate", stored: PackCertificate(real), want: real, compressed: true},
		{name: "too short to shrink", stored: PackCertificate([]byte(`{"a":1}`)), want: []byte(`{"a":1}`)},
		{name: "stored before compression", stored: real, want: real},
		{name: "damaged", stored: damaged},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := bytes.HasPrefix(tc.stored, zstdMagic); got != tc.compressed && tc.want != nil {
				t.Errorf("stored compressed = %v, want %v", got, tc.compressed)
			}
			got, err := unpackCertificate(tc.stored)
			switch {
			case tc.want == nil && err == nil:
				t.Errorf("a damaged certificate read as %d bytes, want an error", len(got))
			case tc.want != nil && (err != nil || !bytes.Equal(got, tc.want)):
				t.Errorf("read back %d bytes, %v; want the %d stored", len(got), err, len(tc.want))
			}
		})
	}
	if packed := PackCertificate(real); len(packed)*2 > len(real) {
		t.Errorf("a real certificate of %d bytes is stored in %d: less than half saved", len(real), len(packed))
	}
}
