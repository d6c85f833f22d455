// Package recordings is the connector for the demo webinar-recordings system:
// video files on disk (DataDir/files) and a SQLite table of their metadata and
// chat replay (DataDir/recordings.db).
//
// Data categories in receipts: "recordings" (a recording's metadata row and
// its video file, counted once), "chat_messages" (messages the subject
// wrote, in anyone's recording) and "chat_messages_in_recordings" (messages
// others wrote in the subject's recordings, erased with them).
//
// Failures of the database or the file system are [connector.Retryable], as
// in the dataset engine: a lock, a busy file or a lost connection may pass.
// A subject with no identifier and a cancelled context are not.
package recordings

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"mime"
	"os"
	"path/filepath"
	"strings"

	"github.com/lethe-dev/lethe/pkg/connector"
	"github.com/lethe-dev/lethe/pkg/datadir"
	"github.com/lethe-dev/lethe/pkg/pseudonym"
	"github.com/lethe-dev/lethe/pkg/sqlitedb"
)

// Name is the system name the orchestrator knows this connector by.
const Name = "recordings"

// Data categories of receipts.
const (
	CategoryRecordings   = "recordings"
	CategoryChatMessages = "chat_messages"
	// CategoryChatInRecordings counts the messages other people wrote in the
	// subject's recordings. A recording with its chat replay is the
	// speaker's, and is erased as a whole: its replay is part of it, and
	// keeping the messages would keep the context they answer (the
	// speaker's talk). Erasing them affects other people's data, so the
	// receipt says how many went, apart from the subject's own messages.
	CategoryChatInRecordings = "chat_messages_in_recordings"
)

// ErrNoIdentifier is returned for a task whose subject has neither an email
// nor a user id: there is nothing to match on, and no retry will change that.
var ErrNoIdentifier = errors.New("recordings: subject has no email and no user id")

// Emails are matched through lower(trim(...)), the SQL twin of
// pseudonym.Normalize, so that the system's own spelling of an address does
// not matter; the expression indexes make that lookup an index search.
const schema = `
CREATE TABLE IF NOT EXISTS recordings (
	id              TEXT PRIMARY KEY,
	tenant          TEXT NOT NULL,
	webinar_id      TEXT NOT NULL,
	speaker_user_id TEXT NOT NULL,
	speaker_email   TEXT NOT NULL,
	title           TEXT NOT NULL,
	file_name       TEXT NOT NULL, -- relative to DataDir/files, so the data directory can move
	created_at      TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS recordings_speaker_email ON recordings (tenant, lower(trim(speaker_email)));
CREATE INDEX IF NOT EXISTS recordings_speaker_user ON recordings (tenant, speaker_user_id);
-- A chat message is part of its recording's replay: when the recording goes,
-- so does its chat, whoever wrote it.
CREATE TABLE IF NOT EXISTS chat_messages (
	id             TEXT PRIMARY KEY,
	tenant         TEXT NOT NULL,
	recording_id   TEXT NOT NULL REFERENCES recordings (id) ON DELETE CASCADE,
	author_email   TEXT NOT NULL,
	author_user_id TEXT NOT NULL,
	body           TEXT NOT NULL,
	at             TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS chat_messages_recording ON chat_messages (recording_id);
CREATE INDEX IF NOT EXISTS chat_messages_author_email ON chat_messages (tenant, lower(trim(author_email)));
CREATE INDEX IF NOT EXISTS chat_messages_author_user ON chat_messages (tenant, author_user_id);
-- How many demo people Seed has created so far (see Seed).
CREATE TABLE IF NOT EXISTS seed_state (
	id     INTEGER PRIMARY KEY CHECK (id = 1),
	people INTEGER NOT NULL
);
`

// System is the recordings system. It implements connector.System and
// connector.Seeder.
type System struct {
	db    *sql.DB
	files string
	log   *slog.Logger
	// scrub empties the WAL after an erasure, one checkpoint for the
	// erasures committed meanwhile.
	scrub *sqlitedb.Scrubber
}

var (
	_ connector.System = (*System)(nil)
	_ connector.Seeder = (*System)(nil)
)

// Open opens (creating it if needed) the recordings system kept in
// env.DataDir.
func Open(ctx context.Context, env connector.Env) (*System, error) {
	files := filepath.Join(env.DataDir, "files")
	// The recordings are personal data: their folder is its owner's only
	// (0700), tightened if an older version made it 0755.
	if err := datadir.Ensure(files); err != nil {
		return nil, fmt.Errorf("recordings: %w", err)
	}
	db, err := sqlitedb.Open(filepath.Join(env.DataDir, "recordings.db"), sqlitedb.WithDurability(env.Durability))
	if err != nil {
		return nil, fmt.Errorf("recordings: %w", err)
	}
	if _, err := db.ExecContext(ctx, schema); err != nil {
		db.Close()
		return nil, fmt.Errorf("recordings: schema: %w", err)
	}
	log := env.Logger
	if log == nil {
		log = slog.Default()
	}
	return &System{db: db, files: files, log: log, scrub: sqlitedb.NewScrubber(db)}, nil
}

// Close closes the database.
func (s *System) Close() error { return s.db.Close() }

// retryable marks a failure of the database or the file system as one that
// another attempt may pass. A cancelled or expired context is the caller
// giving up, not the system failing: it stays unmarked.
func retryable(err error) error {
	if err == nil || errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded) {
		return err
	}
	return connector.Retryable(err)
}

// path is where a recording's file lives; Base keeps a stored name from
// pointing outside the files directory.
func (s *System) path(fileName string) string {
	return filepath.Join(s.files, filepath.Base(fileName))
}

// match is the SQL condition (and its arguments) selecting rows of subj by
// the given email and user id columns. The column names are constants of
// this package, never input.
func match(emailCol, userCol string, subj connector.Subject) (string, []any, error) {
	var conds []string
	var args []any
	if e := pseudonym.Normalize(subj.Email); e != "" {
		conds = append(conds, "lower(trim("+emailCol+")) = ?")
		args = append(args, e)
	}
	if u := strings.TrimSpace(subj.UserID); u != "" {
		conds = append(conds, userCol+" = ?")
		args = append(args, u)
	}
	if len(conds) == 0 {
		return "", nil, ErrNoIdentifier
	}
	return "(" + strings.Join(conds, " OR ") + ")", args, nil
}

type recording struct {
	ID            string
	WebinarID     string
	SpeakerUserID string
	SpeakerEmail  string
	Title         string
	FileName      string
	CreatedAt     string
}

type chatMessage struct {
	ID           string `json:"id"`
	RecordingID  string `json:"recording_id"`
	AuthorEmail  string `json:"author_email"`
	AuthorUserID string `json:"author_user_id"`
	Body         string `json:"body"`
	At           string `json:"at"`
}

// q is what both *sql.DB and *sql.Tx offer.
type q interface {
	QueryContext(ctx context.Context, query string, args ...any) (*sql.Rows, error)
}

func subjectRecordings(ctx context.Context, db q, tenant string, subj connector.Subject) ([]recording, error) {
	cond, args, err := match("speaker_email", "speaker_user_id", subj)
	if err != nil {
		return nil, err
	}
	rows, err := db.QueryContext(ctx, `SELECT id, webinar_id, speaker_user_id, speaker_email, title, file_name, created_at
		FROM recordings WHERE tenant = ? AND `+cond+` ORDER BY id`, append([]any{tenant}, args...)...)
	if err != nil {
		return nil, retryable(fmt.Errorf("recordings: query recordings: %w", err))
	}
	defer rows.Close()
	var out []recording
	for rows.Next() {
		var r recording
		if err := rows.Scan(&r.ID, &r.WebinarID, &r.SpeakerUserID, &r.SpeakerEmail, &r.Title, &r.FileName, &r.CreatedAt); err != nil {
			return nil, retryable(fmt.Errorf("recordings: scan recording: %w", err))
		}
		out = append(out, r)
	}
	if err := rows.Err(); err != nil {
		return nil, retryable(fmt.Errorf("recordings: query recordings: %w", err))
	}
	return out, nil
}

func subjectChat(ctx context.Context, db q, tenant string, subj connector.Subject) ([]chatMessage, error) {
	cond, args, err := match("author_email", "author_user_id", subj)
	if err != nil {
		return nil, err
	}
	rows, err := db.QueryContext(ctx, `SELECT id, recording_id, author_email, author_user_id, body, at
		FROM chat_messages WHERE tenant = ? AND `+cond+` ORDER BY id`, append([]any{tenant}, args...)...)
	if err != nil {
		return nil, retryable(fmt.Errorf("recordings: query chat messages: %w", err))
	}
	defer rows.Close()
	var out []chatMessage
	for rows.Next() {
		var m chatMessage
		if err := rows.Scan(&m.ID, &m.RecordingID, &m.AuthorEmail, &m.AuthorUserID, &m.Body, &m.At); err != nil {
			return nil, retryable(fmt.Errorf("recordings: scan chat message: %w", err))
		}
		out = append(out, m)
	}
	if err := rows.Err(); err != nil {
		return nil, retryable(fmt.Errorf("recordings: query chat messages: %w", err))
	}
	return out, nil
}

// Erase removes the subject's recordings (rows and video files) and every
// chat message the subject wrote, in the task's tenant.
//
// Order, for crash safety: the video files are deleted first, then the rows
// in one transaction. The rows are how the files are found, so they must
// outlive the files: a crash after some files are gone leaves rows that the
// next attempt finds again, and it deletes the rest (a file already missing is
// no error). Deleting rows first could orphan a file no later attempt can
// find. In between, the system may show a recording whose file is missing,
// which is the lesser harm for data that is being erased.
func (s *System) Erase(ctx context.Context, t connector.Task) (connector.Result, error) {
	if err := ctx.Err(); err != nil {
		return connector.Result{}, err
	}
	recs, err := subjectRecordings(ctx, s.db, t.Tenant, t.Subject)
	if err != nil {
		return connector.Result{}, err
	}
	for _, r := range recs {
		if err := ctx.Err(); err != nil {
			return connector.Result{}, err
		}
		if err := os.Remove(s.path(r.FileName)); err != nil && !errors.Is(err, fs.ErrNotExist) {
			return connector.Result{}, retryable(fmt.Errorf("recordings: remove file of %s: %w", r.ID, err))
		}
	}

	cond, args, err := match("author_email", "author_user_id", t.Subject)
	if err != nil {
		return connector.Result{}, err
	}
	var nRec, nChat, nOthers int64
	tx, err := s.db.BeginTx(ctx, nil)
	if err != nil {
		return connector.Result{}, retryable(fmt.Errorf("recordings: begin: %w", err))
	}
	defer tx.Rollback()
	res, err := tx.ExecContext(ctx, `DELETE FROM chat_messages WHERE tenant = ? AND `+cond, append([]any{t.Tenant}, args...)...)
	if err != nil {
		return connector.Result{}, retryable(fmt.Errorf("recordings: delete chat messages: %w", err))
	}
	nChat, _ = res.RowsAffected()
	// Only the recordings whose files were removed above: one that appeared
	// since keeps its row (and file) and shows up in Remaining.
	for _, r := range recs {
		// Others' messages in the recording's chat replay go with it (see
		// CategoryChatInRecordings). ON DELETE CASCADE would delete them
		// too, silently: deleting them here first counts them.
		res, err := tx.ExecContext(ctx, `DELETE FROM chat_messages WHERE recording_id = ?`, r.ID)
		if err != nil {
			return connector.Result{}, retryable(fmt.Errorf("recordings: delete chat of recording %s: %w", r.ID, err))
		}
		n, _ := res.RowsAffected()
		nOthers += n
		res, err = tx.ExecContext(ctx, `DELETE FROM recordings WHERE id = ? AND tenant = ?`, r.ID, t.Tenant)
		if err != nil {
			return connector.Result{}, retryable(fmt.Errorf("recordings: delete recording %s: %w", r.ID, err))
		}
		n, _ = res.RowsAffected()
		nRec += n
	}
	if err := tx.Commit(); err != nil {
		return connector.Result{}, retryable(fmt.Errorf("recordings: commit erasure: %w", err))
	}
	// The committed erasure is in the WAL, and so are the old page images
	// holding the erased rows, until a checkpoint: move the pages into the
	// database file (whose freed space secure_delete zeroes) and empty the
	// WAL. The erasure is done either way: a failure only leaves the copies
	// to the next checkpoint.
	if err := s.scrub.Checkpoint(ctx); err != nil {
		s.log.WarnContext(ctx, "recordings: WAL checkpoint after erasure failed", "err", err)
	}

	remaining, err := s.remaining(ctx, t.Tenant, t.Subject)
	if err != nil {
		return connector.Result{}, err
	}
	if nRec+nChat == 0 {
		return connector.Result{Outcome: connector.NotFound, Remaining: remaining}, nil
	}
	counts := map[string]int64{CategoryRecordings: nRec, CategoryChatMessages: nChat}
	if nOthers > 0 {
		counts[CategoryChatInRecordings] = nOthers
	}
	return connector.Result{Outcome: connector.Erased, Counts: counts, Remaining: remaining}, nil
}

// Restrict counts what a restriction of processing (Art. 18) covers: the
// subject's recordings and chat messages, which stay as they are (the SDK
// marks the person on the connector's suppression list). It makes the
// system a connector.Restricter.
func (s *System) Restrict(ctx context.Context, t connector.Task) (connector.Result, error) {
	recs, err := subjectRecordings(ctx, s.db, t.Tenant, t.Subject)
	if err != nil {
		return connector.Result{}, err
	}
	cond, args, err := match("author_email", "author_user_id", t.Subject)
	if err != nil {
		return connector.Result{}, err
	}
	var nChat int64
	if err := s.db.QueryRowContext(ctx, `SELECT count(*) FROM chat_messages WHERE tenant = ? AND `+cond, append([]any{t.Tenant}, args...)...).Scan(&nChat); err != nil {
		return connector.Result{}, retryable(fmt.Errorf("recordings: count chat messages: %w", err))
	}
	if len(recs) == 0 && nChat == 0 {
		return connector.Result{Outcome: connector.NotFound}, nil
	}
	counts := map[string]int64{}
	if len(recs) > 0 {
		counts[CategoryRecordings] = int64(len(recs))
	}
	if nChat > 0 {
		counts[CategoryChatMessages] = nChat
	}
	return connector.Result{Outcome: connector.Restricted, Counts: counts, Remaining: int64(len(recs)) + nChat}, nil
}

// remaining counts the subject's records by a fresh look: recording rows,
// their files still on disk, and chat messages.
func (s *System) remaining(ctx context.Context, tenant string, subj connector.Subject) (int64, error) {
	recs, err := subjectRecordings(ctx, s.db, tenant, subj)
	if err != nil {
		return 0, err
	}
	n := int64(len(recs))
	for _, r := range recs {
		_, err := os.Stat(s.path(r.FileName))
		switch {
		case err == nil:
			n++
		case !errors.Is(err, fs.ErrNotExist):
			return 0, retryable(fmt.Errorf("recordings: stat file of %s: %w", r.ID, err))
		}
	}
	chat, err := subjectChat(ctx, s.db, tenant, subj)
	if err != nil {
		return 0, err
	}
	return n + int64(len(chat)), nil
}

// exportDoc is the subject's records, grouped by data category then by
// table (connector.Records).
type exportDoc struct {
	Recordings struct {
		Recordings []exportRecording `json:"recordings"`
	} `json:"recordings"`
	Contributions struct {
		ChatMessages []chatMessage `json:"chat_messages"`
	} `json:"contributions"`
}

type exportRecording struct {
	ID            string `json:"id"`
	WebinarID     string `json:"webinar_id"`
	SpeakerUserID string `json:"speaker_user_id"`
	SpeakerEmail  string `json:"speaker_email"`
	Title         string `json:"title"`
	CreatedAt     string `json:"created_at"`
	// File is the video's name among the export's files; FileMissing says
	// the recording's video is gone from the disk.
	File        string `json:"file"`
	FileMissing bool   `json:"file_missing,omitempty"`
}

// Export returns the subject's recordings (metadata, and each video as a
// file the SDK streams to the blob store) and the chat messages the
// subject wrote.
func (s *System) Export(ctx context.Context, t connector.Task) (connector.Result, error) {
	if err := ctx.Err(); err != nil {
		return connector.Result{}, err
	}
	recs, err := subjectRecordings(ctx, s.db, t.Tenant, t.Subject)
	if err != nil {
		return connector.Result{}, err
	}
	chat, err := subjectChat(ctx, s.db, t.Tenant, t.Subject)
	if err != nil {
		return connector.Result{}, err
	}
	if len(recs)+len(chat) == 0 {
		return connector.Result{Outcome: connector.NotFound}, nil
	}
	var doc exportDoc
	doc.Recordings.Recordings = []exportRecording{}
	doc.Contributions.ChatMessages = chat
	if chat == nil {
		doc.Contributions.ChatMessages = []chatMessage{}
	}
	var files []connector.File
	for _, r := range recs {
		rec := exportRecording{ID: r.ID, WebinarID: r.WebinarID, SpeakerUserID: r.SpeakerUserID,
			SpeakerEmail: r.SpeakerEmail, Title: r.Title, CreatedAt: r.CreatedAt}
		path := s.path(r.FileName)
		switch _, err := os.Stat(path); {
		case errors.Is(err, fs.ErrNotExist):
			rec.FileMissing = true
		case err != nil:
			return connector.Result{}, retryable(fmt.Errorf("recordings: file of %s: %w", r.ID, err))
		default:
			// The recording's id keeps two talks named alike apart.
			rec.File = r.ID + "-" + filepath.Base(r.FileName)
			files = append(files, connector.File{
				Category: CategoryRecordings, Name: rec.File, ContentType: contentType(path),
				Open: func(ctx context.Context) (io.ReadCloser, error) {
					f, err := os.Open(path)
					if err != nil {
						return nil, retryable(err)
					}
					return struct {
						io.Reader
						io.Closer
					}{ctxReader{ctx, f}, f}, nil
				},
			})
		}
		doc.Recordings.Recordings = append(doc.Recordings.Recordings, rec)
	}
	b, err := json.Marshal(doc)
	if err != nil {
		return connector.Result{}, fmt.Errorf("recordings: encode export: %w", err)
	}
	return connector.Result{
		Outcome: connector.Exported,
		Counts:  map[string]int64{CategoryRecordings: int64(len(recs)), CategoryChatMessages: int64(len(chat))},
		Export:  b,
		Files:   files,
	}, nil
}

// contentType is a video's media type by its name; video/mp4 when unknown.
func contentType(path string) string {
	if t := mime.TypeByExtension(filepath.Ext(path)); t != "" {
		return t
	}
	return "video/mp4"
}

// ctxReader stops a long read (a real video is gigabytes) once ctx is done.
type ctxReader struct {
	ctx context.Context
	r   io.Reader
}

func (c ctxReader) Read(p []byte) (int, error) {
	if err := c.ctx.Err(); err != nil {
		return 0, err
	}
	return c.r.Read(p)
}
