package httpapi

import (
	"context"
	"errors"
	"io"
	"net/http"
	"strings"
	"time"

	"golang.org/x/time/rate"

	"github.com/lethe-dev/lethe/pkg/blob"
	"github.com/lethe-dev/lethe/pkg/exportbundle"
	"github.com/lethe-dev/lethe/pkg/lifecycle"
	"github.com/lethe-dev/lethe/services/orchestrator/engine"
	"github.com/lethe-dev/lethe/services/orchestrator/store"
)

// LinkTries is how often an address may try a download link: a few a
// minute lets a person retry, and makes guessing a 256-bit secret hopeless
// twice over.
var LinkTries = rate.Every(6 * time.Second)

// badLink is the one answer to a link that is wrong, spent or expired,
// or for another request: it tells a guesser nothing.
const badLink = "this download link is not valid: it may be mistyped, already used or expired; ask for a new one"

// handleExport streams an export request's bundle (Art. 15 and 20: a
// copy, structured and machine-readable, and readable by the person) to
// a dpo of its tenant, or to the holder of a download link made for the
// person. A complete download is the collection: the export's key is
// then destroyed and its blobs deleted.
func (a *API) handleExport(w http.ResponseWriter, r *http.Request) {
	req, tasks, ok := a.exportRequest(w, r)
	if !ok {
		return
	}
	m, err := engine.Manifest(req, tasks)
	if err != nil {
		a.internal(w, err, "could not assemble the export", "export manifest", "request_id", req.ID)
		return
	}
	stores := map[string]blob.Store{}
	for _, k := range tasks {
		if k.Outcome != lifecycle.Exported {
			continue
		}
		bs, err := a.life.ExportBlobs(k)
		if errors.Is(err, engine.ErrExportGone) {
			writeError(w, http.StatusGone, "the export was collected or has expired, and is deleted: file a new request for a new copy")
			return
		}
		if err != nil {
			a.internal(w, err, "could not open the export", "export", "request_id", req.ID)
			return
		}
		stores[req.ID+"/"+k.System+"/"] = bs
	}
	open := func(ctx context.Context, ref string) (io.ReadCloser, error) {
		for folder, bs := range stores {
			if strings.HasPrefix(ref, folder) {
				return bs.Open(ctx, ref)
			}
		}
		return nil, errors.New("a blob of no exporting system")
	}
	h := w.Header()
	h.Set("Content-Type", "application/zip")
	h.Set("Content-Disposition", `attachment; filename="lethe-export-`+req.ID+`.zip"`)
	h.Set("Cache-Control", "no-store")
	if r.Method == http.MethodHead {
		w.WriteHeader(http.StatusOK)
		return // nothing is collected
	}
	if err := exportbundle.Write(r.Context(), w, m, open); err != nil {
		// Half a ZIP is on the wire: cut the connection so the client
		// sees a failed download, not a short bundle. The export stays
		// for another try.
		a.log.Warn("export download cut short; kept for another", "request_id", req.ID, "err", err)
		panic(http.ErrAbortHandler)
	}
	if err := a.life.Collected(context.WithoutCancel(r.Context()), req.ID); err != nil {
		a.log.Error("destroy the collected export", "request_id", req.ID, "err", err)
	}
}

// exportRequest reads the export request a download is for, through the
// caller's token or a download link.
func (a *API) exportRequest(w http.ResponseWriter, r *http.Request) (*store.Request, []*store.Task, bool) {
	if secret := r.URL.Query().Get("link"); secret != "" && who(r).ID == "" {
		id, err := a.life.UseExportLink(r.Context(), secret)
		if errors.Is(err, store.ErrNotFound) || err == nil && id != r.PathValue("id") {
			writeError(w, http.StatusNotFound, badLink)
			return nil, nil, false
		}
		if err != nil {
			a.internal(w, err, "could not check the link", "export link")
			return nil, nil, false
		}
		req, tasks, err := a.store.Get(r.Context(), id)
		if err != nil {
			a.internal(w, err, "could not read the request", "read request")
			return nil, nil, false
		}
		return req, tasks, a.exportReady(w, req)
	}
	req, tasks, ok := a.request(w, r)
	return req, tasks, ok && a.exportReady(w, req)
}

func (a *API) exportReady(w http.ResponseWriter, req *store.Request) bool {
	switch {
	case req.Type != lifecycle.Export:
		writeError(w, http.StatusConflict, "not an export request")
	case req.CompletedAt.IsZero():
		writeError(w, http.StatusConflict, "the export is not complete yet")
	default:
		return true
	}
	return false
}

// handleExportLink makes a single-use, expiring download link for the
// person whose export it is; the privacy team sends it to them.
func (a *API) handleExportLink(w http.ResponseWriter, r *http.Request) {
	req, tasks, ok := a.request(w, r)
	if !ok || !a.exportReady(w, req) {
		return
	}
	held := false
	for _, k := range tasks {
		held = held || len(k.ExportKey) > 0
	}
	if !held {
		writeError(w, http.StatusGone, "the export was collected or has expired, and is deleted: file a new request for a new copy")
		return
	}
	secret, expires, err := a.life.ExportLink(r.Context(), req.ID)
	if err != nil {
		a.internal(w, err, "could not make the link", "export link", "request_id", req.ID)
		return
	}
	path := "/v1/requests/" + req.ID + "/export?link=" + secret
	scheme := "http"
	if r.TLS != nil {
		scheme = "https"
	}
	writeJSON(w, http.StatusCreated, map[string]any{"url": scheme + "://" + r.Host + path, "path": path,
		"expires_at": expires.UTC(), "single_use": true})
}
