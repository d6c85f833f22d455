package engine

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"strings"
	"time"

	"google.golang.org/protobuf/proto"

	"github.com/lethe-dev/lethe/pkg/blob"
	"github.com/lethe-dev/lethe/pkg/exportbundle"
	lethev1 "github.com/lethe-dev/lethe/pkg/gen/lethe/v1"
	"github.com/lethe-dev/lethe/pkg/lifecycle"
	"github.com/lethe-dev/lethe/pkg/proof"
	"github.com/lethe-dev/lethe/services/orchestrator/store"
)

// ErrExportGone is an export whose key was destroyed: collected, or
// expired.
var ErrExportGone = errors.New("the export was collected or has expired, and is deleted")

// exportFolder is where a request's exports live in the blob store; the
// whole folder goes once they are collected or expire.
func exportFolder(requestID string) string { return requestID + "/" }

// keepExport checks an export receipt's blobs and returns their key
// sealed to the orchestrator, as the store keeps it: once, until the
// export is collected or expires. Every blob must be in the folder of
// the receipt's own request and system (a connector points at no one
// else's), and a key the connector sealed must open; one that came in
// the clear is sealed here. A receipt that fails is refused, and the task
// tried again.
func (e *Engine) keepExport(rc *lethev1.Receipt) ([]byte, error) {
	if rc.GetOutcome() != lethev1.Outcome_OUTCOME_EXPORTED {
		return nil, nil
	}
	folder := exportFolder(rc.GetRequestId()) + rc.GetSystem() + "/"
	refs := []string{rc.GetExportRef()}
	for _, f := range rc.GetExportFiles() {
		refs = append(refs, f.GetRef())
	}
	for _, ref := range refs {
		if !strings.HasPrefix(ref, folder) || blob.CheckKey(ref) != nil {
			return nil, errors.New("an export blob outside the task's folder")
		}
	}
	if sealed := rc.GetSealedExportKey(); len(sealed) > 0 {
		key, err := e.cfg.SealKey.Open(sealed)
		if err != nil {
			return nil, err
		}
		if len(key) != blob.KeySize {
			return nil, errors.New("the export key is not a key")
		}
		return sealed, nil
	}
	if key := rc.GetExportKey(); len(key) == blob.KeySize {
		return proof.Seal(e.cfg.SealKey.Public, key)
	}
	return nil, errors.New("an export without its key")
}

// ExportBlobs is the blob store that reads a task's export, decrypted.
func (e *Engine) ExportBlobs(k *store.Task) (blob.Store, error) {
	if len(k.ExportKey) == 0 {
		return nil, ErrExportGone
	}
	if e.cfg.Blobs == nil {
		return nil, errors.New("no blob store configured")
	}
	key, err := e.cfg.SealKey.Open(k.ExportKey)
	if err != nil {
		return nil, fmt.Errorf("export key of %s: %w", k.System, err)
	}
	return blob.Encrypted(e.cfg.Blobs, key)
}

// Manifest describes the bundle of an ended export request, from its
// signed receipts alone, so that the same manifest comes out at the
// request's end (its digest goes into the log and the certificate) and
// at every download.
func Manifest(r *store.Request, tasks []*store.Task) (*exportbundle.Manifest, error) {
	m := &exportbundle.Manifest{Format: exportbundle.Format, RequestID: r.ID, Tenant: r.Tenant, GeneratedAt: r.CompletedAt.UTC()}
	for _, k := range tasks {
		sys := exportbundle.System{Name: k.System, Outcome: string(k.Outcome)}
		switch {
		case k.State == lifecycle.TaskDeadLetter:
			sys.Outcome, sys.Note = string(lifecycle.DeadLetter), "This service could not answer in time; your request's record says why."
		case k.Outcome == lifecycle.NotFound:
			sys.Note = "This service holds no data about you."
		case k.Outcome == lifecycle.Resolved:
			sys.Note = "This service's part was settled by hand by the privacy team."
		}
		if len(k.Counts) > 0 {
			sys.Counts = k.Counts
		}
		if k.Outcome == lifecycle.Exported && len(k.Receipt) > 0 {
			rc := &lethev1.Receipt{}
			if err := proto.Unmarshal(k.Receipt, rc); err != nil {
				return nil, fmt.Errorf("receipt of %s: %w", k.System, err)
			}
			sys.Categories = rc.GetExportCategories()
			sys.Records = &exportbundle.File{Path: exportbundle.RecordsPath(k.System), ContentType: "application/json",
				Size: rc.GetExportSize(), SHA256: hex.EncodeToString(rc.GetExportSha256()), Ref: rc.GetExportRef()}
			names := make([]string, len(rc.GetExportFiles()))
			for i, f := range rc.GetExportFiles() {
				names[i] = f.GetName()
			}
			paths := exportbundle.FilePaths(k.System, names) // two files named alike stay apart
			for i, f := range rc.GetExportFiles() {
				sys.Files = append(sys.Files, exportbundle.File{Path: paths[i],
					Category: f.GetCategory(), ContentType: f.GetContentType(), Size: f.GetSize(),
					SHA256: hex.EncodeToString(f.GetSha256()), Ref: f.GetRef()})
			}
		}
		m.Systems = append(m.Systems, sys)
	}
	return m, nil
}

// assembled records the digest of an export request's manifest in the
// log: the bundle a person downloads is then bound to the log, and to the
// certificate that quotes it.
func assembled(ctx context.Context, tx store.Tx, r *store.Request, tasks []*store.Task, now time.Time) error {
	digest, err := manifestDigest(r, tasks)
	if err != nil {
		return err
	}
	return record(ctx, tx, proof.Entry{RequestID: r.ID, Event: proof.EventExportAssembled, At: now, ManifestSHA256: digest})
}

// manifestDigest is the SHA-256 (hex) of an export request's manifest.
func manifestDigest(r *store.Request, tasks []*store.Task) (string, error) {
	m, err := Manifest(r, tasks)
	if err != nil {
		return "", err
	}
	d, err := m.Digest()
	if err != nil {
		return "", fmt.Errorf("export manifest: %w", err)
	}
	return hex.EncodeToString(d[:]), nil
}

// Collected destroys a request's export once the person downloaded it.
func (e *Engine) Collected(ctx context.Context, requestID string) error {
	return e.dropExport(ctx, requestID, "collected")
}

// ExpireExports destroys the exports not collected within ExportExpiry of
// their request's end, and returns how many requests lost theirs.
func (e *Engine) ExpireExports(ctx context.Context) (int, error) {
	ids, err := e.cfg.Store.ExportsEndedBefore(ctx, e.Now().Add(-e.cfg.ExportExpiry))
	if err != nil {
		return 0, err
	}
	n := 0
	for _, id := range ids {
		if err := e.dropExport(ctx, id, "expired"); err != nil {
			return n, err
		}
		n++
	}
	return n, nil
}

// dropExport destroys a request's export keys and logs it in one
// transaction, then deletes its blobs. The key going is what matters:
// without it the blobs, and any backup of them, are unreadable; a crash
// before the blobs are deleted leaves only ciphertext.
func (e *Engine) dropExport(ctx context.Context, requestID, why string) error {
	err := e.cfg.Store.Tx(ctx, func(tx store.Tx) error {
		n, err := tx.DropExports(ctx, requestID)
		if err != nil || n == 0 {
			return err
		}
		return record(ctx, tx, proof.Entry{RequestID: requestID, Event: proof.EventExportDeleted, At: e.Now(), Detail: why})
	})
	if err != nil {
		return fmt.Errorf("drop export: %w", err)
	}
	if e.cfg.Blobs != nil {
		n, err := e.cfg.Blobs.DeletePrefix(ctx, exportFolder(requestID))
		if err != nil {
			return fmt.Errorf("delete export blobs: %w", err)
		}
		e.log.Info("export deleted", "request_id", requestID, "why", why, "blobs", n)
	}
	if e.cfg.Forgot != nil {
		e.cfg.Forgot.Wake()
	}
	return nil
}

// LinkLifetime is how long a download link made for a person lasts, at
// most: never past the export's own expiry.
const LinkLifetime = 72 * time.Hour

// ExportLink makes a single-use download link for an ended export
// request: a 256-bit secret, of which the store keeps only the hash.
func (e *Engine) ExportLink(ctx context.Context, requestID string) (string, time.Time, error) {
	r, _, err := e.cfg.Store.Get(ctx, requestID)
	if err != nil {
		return "", time.Time{}, err
	}
	var b [32]byte
	if _, err := rand.Read(b[:]); err != nil {
		return "", time.Time{}, err
	}
	secret := base64.RawURLEncoding.EncodeToString(b[:])
	now := e.Now()
	expires := now.Add(LinkLifetime)
	if end := r.CompletedAt.Add(e.cfg.ExportExpiry); end.Before(expires) {
		expires = end
	}
	h := sha256.Sum256([]byte(secret))
	if err := e.cfg.Store.InsertExportLink(ctx, &store.ExportLink{Hash: h[:], RequestID: requestID, CreatedAt: now, ExpiresAt: expires}); err != nil {
		return "", time.Time{}, err
	}
	e.log.Info("export download link made", "request_id", requestID, "expires_at", expires)
	return secret, expires, nil
}

// UseExportLink spends a download link and returns its request;
// store.ErrNotFound for a link wrong, spent or expired alike.
func (e *Engine) UseExportLink(ctx context.Context, secret string) (string, error) {
	h := sha256.Sum256([]byte(secret))
	l, err := e.cfg.Store.UseExportLink(ctx, h[:], e.Now())
	if err != nil {
		return "", err
	}
	return l.RequestID, nil
}
