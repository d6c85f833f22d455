package witness

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"mime"
	"net/http"
	"strconv"
	"strings"

	"filippo.io/torchwood"
	"golang.org/x/mod/sumdb/tlog"
)

// Client asks one witness to cosign checkpoints: the orchestrator keeps
// one per witness it is configured with. It is safe for concurrent use,
// as its HTTPClient is.
type Client struct {
	// URL is the witness's submission prefix: AddCheckpointPath is
	// appended to it ("http://127.0.0.1:8095").
	URL string
	// Verifier is the witness's key, from its vkey by [NewVerifier]
	// (required): a cosignature it does not verify is an error, never
	// returned.
	Verifier *torchwood.CosignatureVerifier
	// HTTPClient defaults to http.DefaultClient. Give it a timeout: a
	// witness that does not answer must not hold up the log.
	HTTPClient *http.Client
}

// Errors of [Client.AddCheckpoint]; errors.Is works through the wrapping
// that names the witness.
var (
	// ErrInconsistent: the witness refused the checkpoint as inconsistent
	// with the one it cosigned (422: the consistency proof does not
	// verify; or 409 with a different root at the size it cosigned). If
	// the proof was right, the log forked: the witness keeps the request.
	ErrInconsistent = errors.New("witness refused: checkpoint inconsistent with the one it cosigned")
	// ErrUnknownLog: the witness does not witness this origin (404).
	ErrUnknownLog = errors.New("witness refused: unknown log")
	// ErrLogSignature: the witness does not accept the log's signature on
	// the checkpoint (403): it has another key for the log.
	ErrLogSignature = errors.New("witness refused: checkpoint not signed by a log key it knows")
	// ErrRefused is any other refusal (400 and other statuses).
	ErrRefused = errors.New("witness refused the checkpoint")
)

// ConflictError is a 409 Conflict: the witness last cosigned a checkpoint
// of Size, not of the old size sent. Send again with a consistency proof
// from Size (a witness seen for the first time answers this way to a
// request with old size 0, if it knew the log already).
type ConflictError struct {
	Witness string
	Size    int64
}

func (e *ConflictError) Error() string {
	return fmt.Sprintf("witness %s: it last cosigned size %d", e.Witness, e.Size)
}

// AddCheckpoint asks the witness to cosign checkpoint (the signed note)
// given the consistency proof from oldSize, the size of the checkpoint it
// last cosigned (0 if none, with an empty proof). It returns the witness's
// cosignature, verified: one note signature line, "— <name> <base64>\n",
// to append to the checkpoint's signatures.
//
// A *[ConflictError] says the witness's size when oldSize is not it;
// otherwise refusals are [ErrInconsistent], [ErrUnknownLog],
// [ErrLogSignature] or [ErrRefused].
func (c *Client) AddCheckpoint(ctx context.Context, oldSize int64, proof tlog.TreeProof, checkpoint []byte) ([]byte, error) {
	name := c.Verifier.Name()
	body := FormatAddRequest(AddRequest{OldSize: oldSize, Proof: proof, Checkpoint: checkpoint})
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, strings.TrimSuffix(c.URL, "/")+AddCheckpointPath, bytes.NewReader(body))
	if err != nil {
		return nil, fmt.Errorf("witness %s: %w", name, err)
	}
	req.Header.Set("Content-Type", TextContentType)
	hc := c.HTTPClient
	if hc == nil {
		hc = http.DefaultClient
	}
	resp, err := hc.Do(req)
	if err != nil {
		return nil, fmt.Errorf("witness %s: %w", name, err)
	}
	defer resp.Body.Close()
	answer, err := io.ReadAll(io.LimitReader(resp.Body, MaxRequestBytes))
	if err != nil {
		return nil, fmt.Errorf("witness %s: read answer: %w", name, err)
	}
	switch resp.StatusCode {
	case http.StatusOK:
		return c.pickCosignature(checkpoint, answer)
	case http.StatusConflict:
		size, err := parseSize(resp.Header.Get("Content-Type"), answer)
		if err != nil {
			return nil, fmt.Errorf("witness %s: 409 Conflict: %w", name, err)
		}
		if size == oldSize {
			// Our old size was right, so the conflict is the root hash
			// at that size.
			return nil, fmt.Errorf("witness %s: %w (another root hash at size %d)", name, ErrInconsistent, size)
		}
		return nil, &ConflictError{Witness: name, Size: size}
	case http.StatusUnprocessableEntity:
		return nil, fmt.Errorf("witness %s: %w: %s", name, ErrInconsistent, reason(answer))
	case http.StatusNotFound:
		return nil, fmt.Errorf("witness %s: %w", name, ErrUnknownLog)
	case http.StatusForbidden:
		return nil, fmt.Errorf("witness %s: %w", name, ErrLogSignature)
	default:
		return nil, fmt.Errorf("witness %s: %w: %s: %s", name, ErrRefused, resp.Status, reason(answer))
	}
}

// pickCosignature returns the line of answer that is the witness's
// cosignature. Lines by other keys are ignored, as the protocol says: a
// witness may sign with several.
func (c *Client) pickCosignature(checkpoint, answer []byte) ([]byte, error) {
	var lastErr error = ErrBadCosignature
	for line := range bytes.Lines(answer) {
		sig, err := parseSignatureLine(line)
		if err != nil {
			return nil, fmt.Errorf("witness %s: %w", c.Verifier.Name(), err)
		}
		if sig.Name != c.Verifier.Name() || sig.Hash != c.Verifier.KeyHash() {
			continue
		}
		if _, err := VerifyCosignature(c.Verifier, checkpoint, line); err != nil {
			lastErr = err
			continue
		}
		return bytes.Clone(line), nil
	}
	return nil, fmt.Errorf("witness %s: no cosignature by its key: %w", c.Verifier.Name(), lastErr)
}

// parseSize reads a text/x.tlog.size body: a decimal size and a newline.
func parseSize(contentType string, body []byte) (int64, error) {
	if mt, _, err := mime.ParseMediaType(contentType); err != nil || mt != SizeContentType {
		return 0, fmt.Errorf("answer of type %q, not %s", contentType, SizeContentType)
	}
	s, ok := strings.CutSuffix(string(body), "\n")
	n, err := strconv.ParseInt(s, 10, 64)
	if !ok || err != nil || n < 0 {
		return 0, fmt.Errorf("answer %q is not a size", body)
	}
	return n, nil
}

// reason is the start of an error answer's text, for an error message.
func reason(b []byte) string {
	s := strings.TrimSpace(string(b))
	if len(s) > 200 {
		s = s[:200]
	}
	return s
}
