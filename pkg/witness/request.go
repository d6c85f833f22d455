package witness

import (
	"bytes"
	"encoding/base64"
	"errors"
	"fmt"
	"strconv"
	"strings"

	"golang.org/x/mod/sumdb/tlog"
)

// The add-checkpoint wire format (C2SP tlog-witness v1).
const (
	// AddCheckpointPath is the witness's one endpoint, under its URL.
	AddCheckpointPath = "/add-checkpoint"
	// TextContentType is the type of a request body and of the
	// cosignature lines a witness answers with.
	TextContentType = "text/plain; charset=utf-8"
	// SizeContentType is the type of a 409 Conflict answer, whose body
	// is the size of the latest checkpoint the witness cosigned.
	SizeContentType = "text/x.tlog.size"
	// MaxRequestBytes bounds a request body, which the server reads no
	// further than, and an answer, which the client reads no further
	// than: a checkpoint of a few lines, some signatures, at most 63
	// proof lines.
	MaxRequestBytes = 64 << 10
	// maxProofLines is the most consistency proof lines a request may
	// carry: a proof between trees of up to 2^63 leaves needs fewer.
	maxProofLines = 63
)

// AddRequest is an add-checkpoint request. Its body is
//
//	old <size>\n
//	<base64 proof hash>\n   (zero to 63 lines)
//	\n
//	<checkpoint note, with its signature lines>
type AddRequest struct {
	// OldSize is the size of the checkpoint the witness last cosigned,
	// as the client believes it (0 if none).
	OldSize int64
	// Proof is the RFC 6962 consistency proof from OldSize to the
	// checkpoint's size: empty from 0 and between equal sizes.
	Proof tlog.TreeProof
	// Checkpoint is the signed checkpoint note.
	Checkpoint []byte
}

// ErrMalformedRequest is an add-checkpoint request body that does not
// follow the format.
var ErrMalformedRequest = errors.New("malformed add-checkpoint request")

// ParseAddRequest reads an add-checkpoint request body strictly: decimal
// sizes without leading zeroes, canonical base64 hashes. It checks the
// format only, not the checkpoint nor whether the proof fits it: that is
// the witness's part. The body's length is the caller's to bound
// ([MaxRequestBytes]).
func ParseAddRequest(body []byte) (AddRequest, error) {
	head, checkpoint, ok := bytes.Cut(body, []byte("\n\n"))
	if !ok || len(checkpoint) == 0 {
		return AddRequest{}, fmt.Errorf("%w: no empty line before the checkpoint", ErrMalformedRequest)
	}
	lines := strings.Split(string(head), "\n")
	size, ok := strings.CutPrefix(lines[0], "old ")
	old, err := strconv.ParseInt(size, 10, 64)
	if !ok || err != nil || old < 0 || strconv.FormatInt(old, 10) != size {
		return AddRequest{}, fmt.Errorf("%w: first line is not \"old <size>\"", ErrMalformedRequest)
	}
	proof := lines[1:]
	if len(proof) > maxProofLines {
		return AddRequest{}, fmt.Errorf("%w: %d consistency proof lines, at most %d", ErrMalformedRequest, len(proof), maxProofLines)
	}
	req := AddRequest{OldSize: old, Proof: make(tlog.TreeProof, len(proof)), Checkpoint: checkpoint}
	for i, line := range proof {
		raw, err := base64.StdEncoding.Strict().DecodeString(line)
		if err != nil || len(raw) != tlog.HashSize {
			return AddRequest{}, fmt.Errorf("%w: proof line %d is not a base64 hash", ErrMalformedRequest, i+1)
		}
		copy(req.Proof[i][:], raw)
	}
	return req, nil
}

// FormatAddRequest writes an add-checkpoint request body.
func FormatAddRequest(r AddRequest) []byte {
	var b bytes.Buffer
	fmt.Fprintf(&b, "old %d\n", r.OldSize)
	for _, h := range r.Proof {
		b.WriteString(h.String()) // base64, as the checkpoint writes its root hash
		b.WriteByte('\n')
	}
	b.WriteByte('\n')
	b.Write(r.Checkpoint)
	return b.Bytes()
}
