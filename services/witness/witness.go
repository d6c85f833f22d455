// Package witness is a transparency-log witness (C2SP tlog-witness v1):
// what a customer or a supervisory authority runs, apart from Lethe, to
// make Lethe's transparency log answerable to them. Its wire format, its
// client and the checks of its cosignatures are pkg/witness (imported as
// tlogwitness), which the orchestrator and lethectl import too.
//
// The orchestrator sends each new checkpoint of its log (C2SP
// tlog-checkpoint) with a consistency proof from the last one the witness
// cosigned. The witness cosigns (C2SP tlog-cosignature, ed25519
// cosignature/v1) only if the checkpoint is signed by the log's key and
// extends, append-only, what it cosigned before; it keeps that state on
// disk before it answers. So it never cosigns two checkpoints of one log
// that disagree about the past, across restarts too, and an operator who
// rewrites the log's history, or shows auditors a view of it that others
// do not see, cannot get the witness's cosignature on both.
package witness

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"time"
	"unicode"

	"filippo.io/torchwood"
	"golang.org/x/mod/sumdb/note"
	"golang.org/x/mod/sumdb/tlog"

	"github.com/lethe-dev/lethe/pkg/datadir"
	tlogwitness "github.com/lethe-dev/lethe/pkg/witness"
)

// LogKey is a log the witness witnesses: its origin (the first line of its
// checkpoints) and a verifier key of the log's checkpoints, a C2SP
// signed-note ed25519 vkey ("<name>+<hash>+<base64 key>", as
// golang.org/x/mod/sumdb/note makes them). A log may have several keys
// (a rotation): a checkpoint signed by any one is the log's.
type LogKey struct {
	Origin string
	VKey   string
}

// ParseLogKey reads "ORIGIN=VKEY", as the --log flag takes it.
func ParseLogKey(s string) (LogKey, error) {
	origin, vkey, ok := strings.Cut(strings.TrimSpace(s), "=")
	if !ok || origin == "" || vkey == "" {
		return LogKey{}, fmt.Errorf("log %q: want ORIGIN=VKEY", s)
	}
	return LogKey{Origin: origin, VKey: vkey}, nil
}

// Config is what a witness is made of.
type Config struct {
	// Dir is the state directory: the witness's key, and per log the
	// latest checkpoint it cosigned. Losing it means retiring the
	// witness's key, not starting afresh: a fresh state would cosign a
	// rewritten history.
	Dir string
	// Name is the witness's key name, a schema-less URL such as
	// "witness.example.org/lethe" (no spaces, no '+').
	Name string
	// Logs are the logs it witnesses; requests for others get 404.
	Logs []LogKey
	// Logger gets a line per refused checkpoint and per failure; never a
	// request body. Default: slog.Default().
	Logger *slog.Logger
}

// Witness serves add-checkpoint. Make it with [New]; Close it to free its
// state directory.
type Witness struct {
	dir    string
	signer *torchwood.CosignatureSigner
	logs   map[string]*witnessedLog
	lock   *os.File
	log    *slog.Logger
	mux    *http.ServeMux
}

// witnessedLog is one log's keys and state. Its mutex makes checking a
// request against the state and recording the new state one step, so two
// requests at once cannot both pass against the same old state.
type witnessedLog struct {
	origin    string
	verifiers note.Verifiers

	mu    sync.Mutex
	state *logState // nil until its first checkpoint is cosigned
	tree  tlog.Tree // state's tree head
	// broken is set when a state could not be saved: what is on disk is
	// then unknown, so the log is refused until a restart reads it.
	broken error
}

var errClosed = errors.New("witness closed")

// New opens the witness over its state directory, making the directory
// and the witness's key at the first start.
func New(cfg Config) (*Witness, error) {
	if cfg.Dir == "" {
		return nil, errors.New("witness: no state directory")
	}
	if len(cfg.Logs) == 0 {
		return nil, errors.New("witness: no log to witness")
	}
	logger := cfg.Logger
	if logger == nil {
		logger = slog.Default()
	}
	for _, d := range []string{cfg.Dir, filepath.Join(cfg.Dir, logsDir), filepath.Join(cfg.Dir, evidenceDir)} {
		if err := datadir.Ensure(d); err != nil {
			return nil, fmt.Errorf("witness: %w", err)
		}
	}
	lock, err := lockDir(cfg.Dir)
	if err != nil {
		return nil, fmt.Errorf("witness: %w", err)
	}
	w, err := open(cfg, lock, logger)
	if err != nil {
		lock.Close()
		return nil, err
	}
	return w, nil
}

func open(cfg Config, lock *os.File, logger *slog.Logger) (*Witness, error) {
	key, err := loadOrCreateKey(cfg.Dir)
	if err != nil {
		return nil, fmt.Errorf("witness: %w", err)
	}
	signer, err := torchwood.NewCosignatureSigner(cfg.Name, key)
	if err != nil {
		return nil, fmt.Errorf("witness: name %q: %w", cfg.Name, err)
	}
	// The vkey file follows the name, which the operator may change.
	if err := writeAtomic(filepath.Join(cfg.Dir, VKeyFile), []byte(signer.Verifier().String()+"\n")); err != nil {
		return nil, fmt.Errorf("witness: %w", err)
	}
	keys := map[string][]note.Verifier{}
	for _, lk := range cfg.Logs {
		if lk.Origin == "" || strings.ContainsFunc(lk.Origin, unicode.IsSpace) {
			return nil, fmt.Errorf("witness: log origin %q: empty or with spaces", lk.Origin)
		}
		v, err := note.NewVerifier(lk.VKey)
		if err != nil {
			return nil, fmt.Errorf("witness: key of log %s: %w", lk.Origin, err)
		}
		keys[lk.Origin] = append(keys[lk.Origin], v)
	}
	w := &Witness{dir: cfg.Dir, signer: signer, logs: map[string]*witnessedLog{}, lock: lock, log: logger, mux: http.NewServeMux()}
	for origin, vs := range keys {
		l := &witnessedLog{origin: origin, verifiers: note.VerifierList(vs...)}
		if l.state, err = readLogState(cfg.Dir, origin); err != nil {
			return nil, fmt.Errorf("witness: %w", err)
		}
		if l.state != nil {
			l.tree, _ = l.state.tree() // readLogState checked it
		}
		w.logs[origin] = l
	}
	w.mux.HandleFunc("POST "+tlogwitness.AddCheckpointPath, w.serveAddCheckpoint)
	return w, nil
}

// Close frees the state directory. A request still running is refused.
func (w *Witness) Close() error {
	for _, l := range w.logs {
		l.mu.Lock()
		l.broken = errClosed
		l.mu.Unlock()
	}
	return w.lock.Close()
}

// VerifierKey is the witness's verifier key, the vkey its cosignatures
// are checked with (see [tlogwitness.NewVerifier]).
func (w *Witness) VerifierKey() string { return w.signer.Verifier().String() }

// Verifier checks the witness's cosignatures.
func (w *Witness) Verifier() *torchwood.CosignatureVerifier { return w.signer.Verifier() }

// Latest is the tree head the witness last cosigned for origin and that
// checkpoint, as the log sent it; ok is false if it never cosigned one.
func (w *Witness) Latest(origin string) (tree tlog.Tree, checkpoint []byte, ok bool) {
	l := w.logs[origin]
	if l == nil {
		return tlog.Tree{}, nil, false
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.state == nil {
		return tlog.Tree{}, nil, false
	}
	return l.tree, []byte(l.state.Checkpoint), true
}

// ServeHTTP serves POST /add-checkpoint.
func (w *Witness) ServeHTTP(rw http.ResponseWriter, r *http.Request) { w.mux.ServeHTTP(rw, r) }

// refusal is an add-checkpoint the witness does not cosign, and the HTTP
// status that says why (C2SP tlog-witness).
type refusal struct {
	status int
	reason string
	// size is the size of the latest checkpoint cosigned (409 only).
	size int64
}

func (r *refusal) Error() string { return r.reason }

func refuse(status int, format string, args ...any) *refusal {
	return &refusal{status: status, reason: fmt.Sprintf(format, args...)}
}

func (w *Witness) serveAddCheckpoint(rw http.ResponseWriter, r *http.Request) {
	body, err := io.ReadAll(http.MaxBytesReader(rw, r.Body, tlogwitness.MaxRequestBytes))
	if err != nil {
		status := http.StatusBadRequest
		if _, ok := errors.AsType[*http.MaxBytesError](err); ok {
			status = http.StatusRequestEntityTooLarge
		}
		http.Error(rw, "cannot read the request", status)
		return
	}
	sigs, err := w.addCheckpoint(r.Context(), body)
	if err == nil {
		rw.Header().Set("Content-Type", tlogwitness.TextContentType)
		rw.Write(sigs)
		return
	}
	ref, ok := errors.AsType[*refusal](err)
	if !ok {
		w.log.ErrorContext(r.Context(), "add-checkpoint failed", "error", err)
		http.Error(rw, "internal error", http.StatusInternalServerError)
		return
	}
	if ref.status == http.StatusConflict {
		rw.Header().Set("Content-Type", tlogwitness.SizeContentType)
		rw.WriteHeader(http.StatusConflict)
		fmt.Fprintf(rw, "%d\n", ref.size)
		return
	}
	http.Error(rw, ref.reason, ref.status)
}

// addCheckpoint checks an add-checkpoint request, in the order C2SP
// tlog-witness gives, records the new state and returns the cosignature
// lines.
func (w *Witness) addCheckpoint(ctx context.Context, body []byte) ([]byte, error) {
	req, err := tlogwitness.ParseAddRequest(body)
	if err != nil {
		return nil, refuse(http.StatusBadRequest, "%v", err)
	}
	origin, _, _ := bytes.Cut(req.Checkpoint, []byte("\n"))
	l := w.logs[string(origin)]
	if l == nil {
		return nil, refuse(http.StatusNotFound, "unknown log")
	}
	n, err := note.Open(req.Checkpoint, l.verifiers)
	if _, ok := errors.AsType[*note.UnverifiedNoteError](err); ok {
		return nil, refuse(http.StatusForbidden, "checkpoint not signed by a key of the log")
	}
	if _, ok := errors.AsType[*note.InvalidSignatureError](err); ok {
		return nil, refuse(http.StatusForbidden, "invalid signature by a key of the log")
	}
	if err != nil {
		return nil, refuse(http.StatusBadRequest, "malformed checkpoint note: %v", err)
	}
	c, err := torchwood.ParseCheckpoint(n.Text)
	if err != nil || c.String() != n.Text {
		return nil, refuse(http.StatusBadRequest, "malformed checkpoint")
	}
	if req.OldSize > c.N {
		return nil, refuse(http.StatusBadRequest, "old size %d is larger than the checkpoint's %d", req.OldSize, c.N)
	}
	if req.OldSize == 0 && len(req.Proof) > 0 {
		return nil, refuse(http.StatusBadRequest, "a consistency proof from size 0 must be empty")
	}

	l.mu.Lock()
	defer l.mu.Unlock()
	if l.broken != nil {
		return nil, fmt.Errorf("log %s: refused: %w", l.origin, l.broken)
	}
	logger := w.log.With("origin", l.origin, "old_size", req.OldSize, "size", c.N)
	if req.OldSize != l.tree.N {
		// The client's old size is not ours: it resends with a proof
		// from our size.
		return nil, &refusal{status: http.StatusConflict, reason: "old size is not the size cosigned", size: l.tree.N}
	}
	if l.state != nil {
		var inconsistent *refusal
		switch {
		case c.N == l.tree.N && c.Hash != l.tree.Hash:
			inconsistent = &refusal{status: http.StatusConflict, reason: "a different root hash at the size cosigned", size: l.tree.N}
		case c.N == l.tree.N && len(req.Proof) > 0:
			inconsistent = refuse(http.StatusUnprocessableEntity, "a consistency proof between equal sizes must be empty")
		case c.N > l.tree.N && l.tree.N > 0:
			if err := tlog.CheckTree(req.Proof, c.N, c.Hash, l.tree.N, l.tree.Hash); err != nil {
				inconsistent = refuse(http.StatusUnprocessableEntity, "consistency proof does not verify")
			}
		}
		if inconsistent != nil {
			// The log signed a checkpoint that does not extend the one
			// cosigned: keep it, it may be proof of a rewritten history.
			path, err := writeEvidence(w.dir, l.origin, body)
			if err != nil {
				logger.WarnContext(ctx, "could not keep a refused checkpoint", "error", err)
			}
			logger.WarnContext(ctx, "refused a checkpoint inconsistent with the one cosigned",
				"cosigned_size", l.tree.N, "reason", inconsistent.reason, "evidence", path)
			return nil, inconsistent
		}
	}

	signed, err := note.Sign(&note.Note{Text: n.Text}, w.signer)
	if err != nil {
		return nil, fmt.Errorf("cosign: %w", err)
	}
	// note.Sign writes the text, a blank line, the signature lines.
	sigs := signed[len(n.Text)+1:]

	st := &logState{Origin: l.origin, Size: c.N, RootHash: encodeHash(c.Hash), Checkpoint: string(req.Checkpoint),
		CosignedAt: time.Now().UTC().Truncate(time.Second)}
	if err := writeLogState(w.dir, st); err != nil {
		l.broken = fmt.Errorf("its state could not be saved, restart the witness: %w", err)
		return nil, fmt.Errorf("save state of log %s: %w", l.origin, err)
	}
	l.state, l.tree = st, c.Tree
	logger.DebugContext(ctx, "cosigned checkpoint")
	return sigs, nil
}
