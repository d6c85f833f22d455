package witness

import (
	"bytes"
	"context"
	"crypto/sha256"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"testing"

	"golang.org/x/mod/sumdb/tlog"
)

// fakeWitness answers every add-checkpoint with status, contentType and
// body, after checking that the client sent what it was asked to send.
func fakeWitness(t *testing.T, want AddRequest, status int, contentType string, body []byte) *httptest.Server {
	srv := httptest.NewServer(http.HandlerFunc(func(rw http.ResponseWriter, r *http.Request) {
		if r.Method != http.MethodPost || r.URL.Path != AddCheckpointPath {
			t.Errorf("%s %s", r.Method, r.URL.Path)
		}
		if ct := r.Header.Get("Content-Type"); ct != TextContentType {
			t.Errorf("request Content-Type %q", ct)
		}
		b, _ := io.ReadAll(r.Body)
		if !bytes.Equal(b, FormatAddRequest(want)) {
			t.Errorf("request body %q, want %q", b, FormatAddRequest(want))
		}
		rw.Header().Set("Content-Type", contentType)
		rw.WriteHeader(status)
		rw.Write(body)
	}))
	t.Cleanup(srv.Close)
	return srv
}

// The client keeps only a verifying cosignature by its witness's key, and
// names every refusal.
func TestClientAnswers(t *testing.T) {
	lg := newLog(t, testOrigin)
	cp := lg.checkpoint(t, "honest", 5)
	ours, theirs := newCosigner(t, "witness.example.org/w1"), newCosigner(t, "witness.example.org/w2")
	good := cosign(t, ours, cp)
	forged := cosign(t, ours, lg.checkpoint(t, "other", 5))
	proof := tlog.TreeProof{sha256.Sum256([]byte("a")), sha256.Sum256([]byte("b"))}

	for _, tc := range []struct {
		name        string
		status      int
		contentType string
		body        []byte
		want        error
		wantLine    []byte
	}{
		{"ours after another witness's", 200, "text/plain", append(cosign(t, theirs, cp), good...), nil, good},
		{"only another witness's", 200, "text/plain", cosign(t, theirs, cp), ErrBadCosignature, nil},
		{"ours over another checkpoint", 200, "text/plain", forged, ErrBadCosignature, nil},
		{"not signature lines", 200, "text/plain", []byte("ok\n"), ErrMalformedCosignature, nil},
		{"409 without its type", 409, "text/plain", []byte("8\n"), errors.New("any"), nil},
		{"409 that is no size", 409, SizeContentType, []byte("eight\n"), errors.New("any"), nil},
		{"409 at the old size sent", 409, SizeContentType, []byte("3\n"), ErrInconsistent, nil},
		{"422", 422, "text/plain", []byte("bad proof"), ErrInconsistent, nil},
		{"404", 404, "text/plain", nil, ErrUnknownLog, nil},
		{"403", 403, "text/plain", nil, ErrLogSignature, nil},
		{"400", 400, "text/plain", nil, ErrRefused, nil},
		{"500", 500, "text/plain", nil, ErrRefused, nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			srv := fakeWitness(t, AddRequest{OldSize: 3, Proof: proof, Checkpoint: cp}, tc.status, tc.contentType, tc.body)
			c := &Client{URL: srv.URL + "/", Verifier: ours.Verifier(), HTTPClient: srv.Client()}
			line, err := c.AddCheckpoint(context.Background(), 3, proof, cp)
			switch {
			case tc.want == nil && (err != nil || !bytes.Equal(line, tc.wantLine)):
				t.Fatalf("= %q, %v; want %q", line, err, tc.wantLine)
			case tc.want != nil && (err == nil || line != nil):
				t.Fatalf("= %q, %v; want an error", line, err)
			case tc.want != nil && tc.want.Error() != "any" && !errors.Is(err, tc.want):
				t.Fatalf("err = %v, want %v", err, tc.want)
			}
			if _, ok := errors.AsType[*ConflictError](err); ok {
				t.Fatalf("err = %v: not a size conflict", err)
			}
		})
	}
}

// A 409 with another size than the one sent says what the witness last
// cosigned, for the client to send a proof from there.
func TestClientConflict(t *testing.T) {
	cp := newLog(t, testOrigin).checkpoint(t, "honest", 12)
	w := newCosigner(t, "witness.example.org/w1")
	srv := fakeWitness(t, AddRequest{OldSize: 0, Checkpoint: cp}, http.StatusConflict, SizeContentType+"; charset=utf-8", []byte("8\n"))
	c := &Client{URL: srv.URL, Verifier: w.Verifier(), HTTPClient: srv.Client()}
	_, err := c.AddCheckpoint(context.Background(), 0, nil, cp)
	ce, ok := errors.AsType[*ConflictError](err)
	if !ok || ce.Size != 8 || ce.Witness != "witness.example.org/w1" {
		t.Fatalf("err = %v, want a conflict at size 8 naming the witness", err)
	}
}
