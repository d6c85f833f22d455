package witness

import (
	"bytes"
	"crypto/sha256"
	"errors"
	"strings"
	"testing"

	"golang.org/x/mod/sumdb/tlog"
)

func TestAddRequestRoundTrip(t *testing.T) {
	cp := newLog(t, testOrigin).checkpoint(t, "honest", 12)
	var proof tlog.TreeProof
	for i := range 4 {
		proof = append(proof, tlog.Hash(sha256.Sum256([]byte{byte(i)})))
	}
	for _, r := range []AddRequest{
		{OldSize: 0, Proof: nil, Checkpoint: cp},
		{OldSize: 8, Proof: proof, Checkpoint: cp},
		{OldSize: 12, Proof: tlog.TreeProof{}, Checkpoint: cp},
	} {
		body := FormatAddRequest(r)
		got, err := ParseAddRequest(body)
		if err != nil {
			t.Fatalf("ParseAddRequest(%q): %v", body, err)
		}
		if got.OldSize != r.OldSize || len(got.Proof) != len(r.Proof) || !bytes.Equal(got.Checkpoint, r.Checkpoint) {
			t.Fatalf("ParseAddRequest(%q) = %+v, want %+v", body, got, r)
		}
		for i := range r.Proof {
			if got.Proof[i] != r.Proof[i] {
				t.Fatalf("proof line %d: %v, want %v", i, got.Proof[i], r.Proof[i])
			}
		}
	}
	if got := string(FormatAddRequest(AddRequest{OldSize: 8, Proof: proof[:1], Checkpoint: cp})); got != "old 8\n"+proof[0].String()+"\n\n"+string(cp) {
		t.Fatalf("FormatAddRequest = %q", got)
	}
}

// ParseAddRequest is strict about the format; what the request says is
// the witness's to check.
func TestParseAddRequestRefuses(t *testing.T) {
	cp := string(newLog(t, testOrigin).checkpoint(t, "honest", 12))
	hash := tlog.Hash(sha256.Sum256(nil)).String()
	for _, tc := range []struct{ name, body string }{
		{"empty body", ""},
		{"no empty line", "old 8\n" + cp},
		{"no checkpoint", "old 8\n\n"},
		{"no old line", "\n" + cp},
		{"old size with a leading zero", "old 08\n" + hash + "\n\n" + cp},
		{"old size with a plus", "old +8\n\n" + cp},
		{"negative old size", "old -1\n\n" + cp},
		{"another keyword", "new 8\n\n" + cp},
		{"two spaces", "old  8\n\n" + cp},
		{"proof line not base64", "old 8\nnot base64!\n\n" + cp},
		{"proof line of 31 bytes", "old 8\nAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA==\n\n" + cp},
		{"proof line in non-canonical base64", "old 8\n" + hash[:len(hash)-2] + "B=\n\n" + cp},
		{"64 proof lines", "old 8\n" + strings.Repeat(hash+"\n", 64) + "\n" + cp},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if r, err := ParseAddRequest([]byte(tc.body)); !errors.Is(err, ErrMalformedRequest) {
				t.Fatalf("= %+v, %v; want ErrMalformedRequest", r, err)
			}
		})
	}
	if _, err := ParseAddRequest([]byte("old 8\n" + strings.Repeat(hash+"\n", 63) + "\n" + cp)); err != nil {
		t.Fatalf("63 proof lines: %v", err)
	}
}
