package witness

import (
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"syscall"
	"time"

	"filippo.io/torchwood"
	"golang.org/x/mod/sumdb/tlog"

	"github.com/lethe-dev/lethe/pkg/datadir"
	"github.com/lethe-dev/lethe/pkg/proof"
)

// Folders and files of the state directory besides the key files.
const (
	// logsDir holds one file per log: the latest checkpoint cosigned.
	logsDir = "logs"
	// evidenceDir keeps refused checkpoints that the log did sign: proof
	// that it showed the witness two inconsistent views.
	evidenceDir = "evidence"
	// lockFile is held while a witness has the directory open, so that
	// two processes never cosign from one state, each unaware of what
	// the other cosigned.
	lockFile = "lock"
)

// logState is what a witness keeps per log: the latest checkpoint it
// cosigned. Its file is replaced whole, atomically, before the
// cosignature leaves the witness.
type logState struct {
	Origin string `json:"origin"`
	Size   int64  `json:"size"`
	// RootHash is the checkpoint's root hash in base64, as in the
	// checkpoint itself.
	RootHash string `json:"root_hash"`
	// Checkpoint is the signed note as the log sent it.
	Checkpoint string    `json:"checkpoint"`
	CosignedAt time.Time `json:"cosigned_at"`
}

// tree is the state's tree head.
func (s *logState) tree() (tlog.Tree, error) {
	h, err := tlog.ParseHash(s.RootHash)
	if err != nil {
		return tlog.Tree{}, err
	}
	return tlog.Tree{N: s.Size, Hash: h}, nil
}

// logFileName names origin's state file. The origin is any string a log
// chose: its hash makes a safe file name, the file names the origin.
func logFileName(origin string) string {
	sum := sha256.Sum256([]byte(origin))
	return hex.EncodeToString(sum[:]) + ".json"
}

// readLogState reads origin's state from dir, or nil if it never cosigned
// one of its checkpoints. A state that does not parse or does not match
// its own checkpoint is an error, never a fresh start: starting afresh
// would let the log rewrite its history.
func readLogState(dir, origin string) (*logState, error) {
	path := filepath.Join(dir, logsDir, logFileName(origin))
	b, err := os.ReadFile(path)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("state of log %s: %w", origin, err)
	}
	var s logState
	if err := json.Unmarshal(b, &s); err != nil {
		return nil, fmt.Errorf("state of log %s (%s): %w", origin, path, err)
	}
	t, err := s.tree()
	if err != nil || s.Origin != origin || s.Size < 0 {
		return nil, fmt.Errorf("state of log %s (%s): corrupt", origin, path)
	}
	text, _, ok := proof.SplitNote([]byte(s.Checkpoint))
	if !ok {
		text = []byte(s.Checkpoint)
	}
	c, err := torchwood.ParseCheckpoint(string(text))
	if err != nil || c.Origin != origin || c.Tree != t {
		return nil, fmt.Errorf("state of log %s (%s): its checkpoint does not match its size and root hash", origin, path)
	}
	return &s, nil
}

// writeLogState replaces origin's state file durably: when it returns
// nil, the new state survives a crash or a power cut.
func writeLogState(dir string, s *logState) error {
	b, err := json.MarshalIndent(s, "", "  ")
	if err != nil {
		return err
	}
	return writeAtomic(filepath.Join(dir, logsDir, logFileName(s.Origin)), append(b, '\n'))
}

// writeEvidence keeps a refused request whose checkpoint the log signed.
// Its name is the hash of its content, so a request sent again is kept
// once.
func writeEvidence(dir, origin string, body []byte) (string, error) {
	sum := sha256.Sum256(body)
	name := fmt.Sprintf("%s-%s.txt", logFileName(origin)[:16], hex.EncodeToString(sum[:8]))
	path := filepath.Join(dir, evidenceDir, name)
	if _, err := os.Stat(path); err == nil {
		return path, nil
	}
	return path, writeAtomic(path, body)
}

// writeAtomic replaces path with b: write a temporary file beside it,
// fsync it, rename it over path, fsync the folder so the rename itself
// is durable. A reader sees the old file or the new one, never a part.
func writeAtomic(path string, b []byte) error {
	tmp, err := writeTemp(path, b)
	if err != nil {
		return err
	}
	if err := os.Rename(tmp, path); err != nil {
		os.Remove(tmp)
		return err
	}
	return syncDir(filepath.Dir(path))
}

// writeTemp writes b, synced, to a new file beside path (mode 0600) and
// returns its name.
func writeTemp(path string, b []byte) (string, error) {
	f, err := os.CreateTemp(filepath.Dir(path), "."+filepath.Base(path)+"-*")
	if err != nil {
		return "", err
	}
	_, err = f.Write(b)
	if err = errors.Join(err, f.Chmod(datadir.FileMode), f.Sync(), f.Close()); err != nil {
		os.Remove(f.Name())
		return "", err
	}
	return f.Name(), nil
}

func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	return errors.Join(d.Sync(), d.Close())
}

// lockDir takes the state directory's lock, without waiting: a second
// witness on one state directory is refused at its start.
func lockDir(dir string) (*os.File, error) {
	f, err := os.OpenFile(filepath.Join(dir, lockFile), os.O_RDWR|os.O_CREATE, datadir.FileMode)
	if err != nil {
		return nil, err
	}
	if err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB); err != nil {
		f.Close()
		if errors.Is(err, syscall.EWOULDBLOCK) {
			return nil, fmt.Errorf("state directory %s is in use by another witness", dir)
		}
		return nil, err
	}
	return f, nil
}

// encodeHash is a root hash as checkpoints write it.
func encodeHash(h tlog.Hash) string { return base64.StdEncoding.EncodeToString(h[:]) }
