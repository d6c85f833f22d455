package connector

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"maps"
	"slices"

	"github.com/lethe-dev/lethe/pkg/blob"
	lethev1 "github.com/lethe-dev/lethe/pkg/gen/lethe/v1"
	"github.com/lethe-dev/lethe/pkg/proof"
)

// File is one file of an export, such as a webinar recording's video. The
// SDK streams it from Open to the blob store: a system never holds a
// whole file in memory, whatever its size.
type File struct {
	// Category is the data category the file belongs to ("recordings").
	Category string
	// Name is the file's name in the bundle the person receives; it is
	// not personal data the SDK logs.
	Name        string
	ContentType string
	Open        func(ctx context.Context) (io.ReadCloser, error)
}

// Records is the shape of [Result.Export]: the subject's rows grouped by
// data category, then by table: {"account": {"profile": [{...}]}}.
type Records = map[string]map[string][]map[string]any

// ErrNoBlobStore is a connector configured without a blob store asked
// for an export: no retry will change that.
var ErrNoBlobStore = errors.New("connector: exports need a blob store (LETHE_BLOBS)")

// storeExport writes an export's records and files to the blob store,
// encrypted with a key of their own, and fills in the receipt's export
// fields: each blob's reference, size and digest, and the key sealed to
// the orchestrator. The bus carries none of the person's data.
//
// Each attempt writes under a folder of its own
// (<request>/<system>/<random>/): a second delivery never overwrites the
// blobs whose key the orchestrator already holds, and the orchestrator
// deletes the whole <request>/ folder once the export is collected or
// expires.
func (w *worker) storeExport(ctx context.Context, t *lethev1.Task, res Result, r *lethev1.Receipt) error {
	if w.cfg.Blobs == nil {
		return ErrNoBlobStore
	}
	if len(res.Export) == 0 {
		res.Export = []byte("{}")
	}
	var shape Records
	if err := json.Unmarshal(res.Export, &shape); err != nil {
		return fmt.Errorf("connector: the export's records are not grouped by data category, then table: %w", err)
	}
	key, err := blob.NewKey()
	if err != nil {
		return Retryable(err)
	}
	blobs, err := blob.Encrypted(w.cfg.Blobs, key)
	if err != nil {
		return err
	}
	folder, err := exportFolder(t.GetRequestId(), w.cfg.System)
	if err != nil {
		return err
	}
	ref := folder + "records.json"
	sum := sha256.Sum256(res.Export)
	if _, err := blobs.Put(ctx, ref, bytes.NewReader(res.Export)); err != nil {
		return Retryable(fmt.Errorf("connector: store the export's records: %w", err))
	}
	r.ExportRef, r.ExportSha256, r.ExportSize = ref, sum[:], int64(len(res.Export))
	cats := map[string]bool{}
	for c := range shape {
		cats[c] = true
	}
	for i, f := range res.Files {
		ef, err := storeFile(ctx, blobs, fmt.Sprintf("%sfiles/%d", folder, i), f)
		if err != nil {
			return err
		}
		r.ExportFiles = append(r.ExportFiles, ef)
		cats[f.Category] = true
	}
	r.ExportCategories = slices.Sorted(maps.Keys(cats))
	// Sealed to the orchestrator: the bus carries no key that opens the
	// blobs. (An orchestrator that registered no sealing key gets it in
	// the clear.)
	to, err := w.cfg.TaskKeys.OrchestratorSealKey(w.cfg.Now())
	if err != nil {
		r.ExportKey = key
		return nil
	}
	if r.SealedExportKey, err = proof.Seal(to, key); err != nil {
		return Retryable(fmt.Errorf("connector: seal the export key: %w", err))
	}
	return nil
}

// storeFile streams one file to the blob store, measuring it on the way.
func storeFile(ctx context.Context, blobs blob.Store, ref string, f File) (*lethev1.ExportFile, error) {
	if f.Open == nil || f.Name == "" || f.Category == "" {
		return nil, errors.New("connector: an export file needs a name, a category and a way to open it")
	}
	rc, err := f.Open(ctx)
	if err != nil {
		return nil, fmt.Errorf("connector: open an export file: %w", err)
	}
	defer rc.Close()
	h := sha256.New()
	n, err := blobs.Put(ctx, ref, io.TeeReader(rc, h))
	if err != nil {
		// The file's own reader failing is the system's failure, and may
		// pass like any other.
		return nil, Retryable(fmt.Errorf("connector: store an export file: %w", err))
	}
	return &lethev1.ExportFile{Ref: ref, Name: f.Name, Category: f.Category, ContentType: f.ContentType,
		Size: n, Sha256: h.Sum(nil)}, nil
}

// exportFolder is a fresh folder of the blob store for one attempt of a
// system's export.
func exportFolder(requestID, system string) (string, error) {
	var b [8]byte
	if _, err := rand.Read(b[:]); err != nil {
		return "", Retryable(err)
	}
	return requestID + "/" + system + "/" + hex.EncodeToString(b[:]) + "/", nil
}
