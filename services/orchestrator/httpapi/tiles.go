package httpapi

import (
	"errors"
	"net/http"
	"strings"

	"github.com/lethe-dev/lethe/pkg/proof"
)

// The log, read-only, in the C2SP tlog-tiles layout: anyone may mirror it
// and check every entry, without a token. Its entries hold keyed hashes
// only (no identifier), which is why they can be published (README).

// handleCheckpoint serves the log's latest checkpoint, a signed note (with
// the witnesses' cosignatures, when they are configured).
func (a *API) handleCheckpoint(w http.ResponseWriter, r *http.Request) {
	c, err := a.life.PublicCheckpoint(r.Context())
	if err != nil {
		a.internal(w, err, "could not read the log", "checkpoint")
		return
	}
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	w.Header().Set("Cache-Control", "no-store")
	w.Write(c)
}

// handleTile serves /log/tile/<L>/<N>[.p/<W>] (hashes) and
// /log/tile/entries/<N>[.p/<W>] (entry bundles). A full tile never
// changes: it may be cached for good.
func (a *API) handleTile(w http.ResponseWriter, r *http.Request) {
	t, err := proof.ParseTilePath(strings.TrimPrefix(r.URL.Path, "/log/"))
	if err != nil {
		writeError(w, http.StatusNotFound, "no such tile: the layout is C2SP tlog-tiles")
		return
	}
	data, err := a.life.LogTile(r.Context(), t)
	switch {
	case errors.Is(err, proof.ErrNoTile):
		writeError(w, http.StatusNotFound, "no such tile (yet)")
		return
	case err != nil:
		a.internal(w, err, "could not read the log", "tile")
		return
	}
	w.Header().Set("Content-Type", "application/octet-stream")
	if t.W == 1<<proof.TileHeight {
		w.Header().Set("Cache-Control", "public, max-age=31536000, immutable")
	} else {
		w.Header().Set("Cache-Control", "no-store")
	}
	w.Write(data)
}
