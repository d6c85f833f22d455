package proof

import (
	"bytes"
	"encoding/json"
	"testing"

	"golang.org/x/mod/sumdb/tlog"
)

// LoggedEntry's own encoding is encoding/json's, byte for byte: a
// certificate's one encoding is what its signature and Verify's
// re-encoding check.
func TestLoggedEntryEncodesAsReflection(t *testing.T) {
	type reflected LoggedEntry // the same fields, without the method
	var h1, h2 tlog.Hash
	for i := range h1 {
		h1[i], h2[i] = byte(i), byte(255-i)
	}
	for _, tc := range []struct {
		name string
		e    LoggedEntry
	}{
		{"entry and proof", LoggedEntry{Index: 41, Entry: json.RawMessage(`{"request_id":"r","event":"created"}`), Proof: tlog.RecordProof{h1, h2}}},
		{"html and spaces in the entry", LoggedEntry{Index: 0, Entry: json.RawMessage(`{ "detail" : "<a&b>" }`), Proof: tlog.RecordProof{h2}}},
		{"empty proof", LoggedEntry{Index: 7, Entry: json.RawMessage(`{}`), Proof: tlog.RecordProof{}}},
		{"no proof, no entry", LoggedEntry{Index: -1}},
		{"largest index", LoggedEntry{Index: 1<<63 - 1, Entry: json.RawMessage(`1`)}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := json.Marshal(tc.e)
			if err != nil {
				t.Fatal(err)
			}
			want, err := json.Marshal(reflected(tc.e))
			if err != nil {
				t.Fatal(err)
			}
			if !bytes.Equal(got, want) {
				t.Errorf("encoded\n%s\nencoding/json\n%s", got, want)
			}
			// Inside a certificate too, where entries sit in a slice.
			got, _ = json.Marshal([]LoggedEntry{tc.e, tc.e})
			want, _ = json.Marshal([]reflected{reflected(tc.e), reflected(tc.e)})
			if !bytes.Equal(got, want) {
				t.Errorf("in a slice: encoded\n%s\nencoding/json\n%s", got, want)
			}
		})
	}
}
