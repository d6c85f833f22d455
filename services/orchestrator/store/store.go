// Package store keeps the orchestrator's state: requests, their tasks, the
// transactional outbox, the transparency log and the certificates. The state machine lives in the
// orchestrator and changes state only inside [Store.Tx], so a request, its
// tasks and the messages that announce them are written together or not at
// all (no dual write).
//
// Two engines implement [Store] with one SQL layer: [SQLite], embedded, for
// one orchestrator, and [Postgres], which several orchestrator replicas
// share. Both pass the conformance suite in store/storetest.
package store

import (
	"context"
	"errors"
	"time"

	"golang.org/x/mod/sumdb/tlog"

	"github.com/lethe-dev/lethe/pkg/lifecycle"
)

// Errors.
var (
	ErrNotFound  = errors.New("not found")
	ErrDuplicate = errors.New("already exists")
	// ErrBadCursor is returned for a list cursor this store did not make.
	ErrBadCursor = errors.New("bad cursor")
)

// Request is one data-subject request.
type Request struct {
	ID     string
	Tenant string
	Type   lifecycle.Type
	State  lifecycle.State
	// SealedSubject is the person's identifiers (a lethev1.Subject) sealed
	// to the orchestrator's own sealing key, so that the database, its WAL
	// and its backups name no one; nil once they are dropped, when the
	// request ends. SubjectHash (a keyed hash) stays for proof.
	SealedSubject []byte
	SubjectHash   string
	Source        string // api | account_deleted
	SourceRef     string // the event id of an account deletion, unique
	ReceivedAt    time.Time
	Deadline      time.Time
	CreatedAt     time.Time
	UpdatedAt     time.Time
	CompletedAt   time.Time // zero while open; the last end
	// AnsweredAt is when the request was first answered in full:
	// fulfilled, or partially retained until deferred erasures finish it.
	AnsweredAt time.Time
	// DeadlinePolicy is the JSON of the deadline.Spec the deadline was
	// counted by; "" for the default (UTC, no roll).
	DeadlinePolicy string
	// OriginalDeadline, ExtendedAt and ExtensionReason are set when the
	// deadline was extended (Art. 12(3)).
	OriginalDeadline time.Time
	ExtendedAt       time.Time
	ExtensionReason  string
	// SubmittedBy is the token id or OIDC subject that submitted the
	// request through the API ("" otherwise).
	SubmittedBy string
	// VerificationNote and DenialNote are the notes of the identity check
	// and of a refusal (no personal data; the log keeps their hashes).
	VerificationNote string
	DenialNote       string
	// Scope is the JSON of what the request covers beyond a person: for
	// a retention run (type sweep) its policy, clock, cut-off, dry run,
	// systems and categories; for a consent withdrawal or an objection
	// its purposes, systems and categories; for a re-application its
	// system and hashes; for a lift the restriction it lifts; for a
	// restriction, once a lift is opened, the lift (UpdateRequest writes
	// a Scope that is not empty). "" for others.
	Scope string
	// ClearEmail and ClearUserID are identifiers an older version stored in
	// clear: read only, UpdateRequest clears them (the engine seals them
	// first).
	ClearEmail, ClearUserID string
}

// Token is an API token. Only the SHA-256 of the token is kept.
type Token struct {
	ID   string
	Hash []byte
	Name string
	// Tenant is the tenant the token acts for; "*" for every tenant.
	Tenant     string
	Role       string
	CreatedAt  time.Time
	LastUsedAt time.Time // zero: never used
	ExpiresAt  time.Time // zero: never expires
	RevokedAt  time.Time // zero: not revoked
}

// Notice is a notice to a data subject in the notification outbox: it is
// delivered on the bus and, where a webhook is configured, to the webhook.
type Notice struct {
	ID        string
	RequestID string
	Kind      string // "extension"
	// Payload is the notice; nil once delivered everywhere (it names the
	// person).
	Payload   []byte
	CreatedAt time.Time
	// BusAt is when a mailer acknowledged it: delivered on the bus.
	BusAt time.Time
	// BusPublishedAt is when it was last handed to the bus, where it waits
	// for that acknowledgement.
	BusPublishedAt time.Time
	// WebhookAt is when the webhook answered 2xx: delivered there.
	WebhookAt time.Time
	Attempts  int // failed deliveries so far
	// NextAttemptAt is when delivery is tried next; zero when there is
	// nothing left to deliver.
	NextAttemptAt time.Time
	LastError     string
}

// Task is one system's part of a request.
type Task struct {
	ID        string
	RequestID string
	System    string
	State     lifecycle.TaskState
	Attempts  int
	// RoundStart is Attempts when the current round began: a deferred
	// erasure's follow-up gets attempts of its own, while the count goes
	// on (each attempt's message id stays new).
	RoundStart int
	// NextAttemptAt is when the orchestrator acts again if no receipt came:
	// the end of the wait for an answer (published; zero until the relay
	// has really published the attempt, so a broker outage does not use up
	// attempts) or the time of the next attempt (retrying).
	NextAttemptAt time.Time
	// PublishedAt is when the relay published the current attempt, and
	// PublishedSeq the outbox seq of its message (zero until it has): the
	// task's place in its system's queue, which the relay fills in order.
	PublishedAt  time.Time
	PublishedSeq int64
	Outcome      lifecycle.Outcome
	AnsweredAt   time.Time
	Detail       string
	LegalBasis   string
	RetainUntil  time.Time
	Counts       map[string]int64
	Remaining    int64
	ExportSHA256 []byte
	// ExportKey is the key of the export's blobs, sealed to the
	// orchestrator, until the export is collected or expires.
	ExportKey []byte
	Receipt   []byte // the receipt as received, protobuf
	// DeadAt is when the task ran out of attempts (dead_letter); zero
	// otherwise.
	DeadAt time.Time
}

// DeadLetterQuery selects dead-lettered tasks: of one system and one
// tenant ("": any), dead since a time (zero: any), oldest first.
type DeadLetterQuery struct {
	System, Tenant string
	Since          time.Time
	Limit          int
}

// DeadLetter is a task that ran out of attempts.
type DeadLetter struct {
	RequestID, Tenant, System string
	Attempts                  int
	Detail                    string
	DeadAt                    time.Time
}

// OutboxMessage is a bus message waiting to be published by the relay.
type OutboxMessage struct {
	Seq     int64
	Topic   string
	ID      string
	Type    string
	Key     string
	Payload []byte
	Created time.Time
	// TaskID and Wait, for a task message: once it is published, the task
	// waits Wait for its answer.
	TaskID string
	Wait   time.Duration
}

// ListQuery selects requests; results are ordered by deadline, then id.
type ListQuery struct {
	State lifecycle.State
	// States, if set, selects requests in any of them (with State, in
	// both).
	States      []lifecycle.State
	Type        lifecycle.Type
	Tenant      string
	SourceRef   string
	SubmittedBy string
	// SubjectHash selects a person's requests by the keyed hash of their
	// identifier (engine: pseudonym.Hash of "email:..."): no index of
	// identifiers in clear is ever kept.
	SubjectHash string
	// DeadlineFrom and DeadlineBefore select deadlines in [from, before)
	// (zero: unbounded).
	DeadlineFrom, DeadlineBefore time.Time
	Limit                        int
	// After is the cursor returned with the previous page.
	After string
}

// Kind is a request state and type, under which Stats counts requests.
type Kind struct {
	State lifecycle.State
	Type  lifecycle.Type
}

// Stats is what the metrics read from the store.
type Stats struct {
	Requests          map[Kind]int // requests of each state and type
	OutboxDepth       int
	OldestUnpublished time.Time // zero when the outbox is empty
	// CertificatesWaiting counts the certificates that wait to be issued
	// (HoldCertificate).
	CertificatesWaiting int
}

// Tx is one transaction.
//
// Transactions of several replicas may run at once (PostgreSQL): a request
// or task read in a Tx is locked until the Tx ends, so what the Tx decides
// from it still holds when it commits (a receipt is recorded once, a
// certificate issued once). Locks are taken request first, then its tasks,
// then the log (at the end, see AppendLog), so transactions queue rather
// than deadlock.
type Tx interface {
	// InsertRequest returns ErrDuplicate for a known ID or SourceRef; the
	// Tx can go on.
	InsertRequest(ctx context.Context, r *Request) error
	// Request, RequestBySourceRef: ErrNotFound for none; the request is
	// locked.
	Request(ctx context.Context, id string) (*Request, error)
	RequestBySourceRef(ctx context.Context, ref string) (*Request, error)
	UpdateRequest(ctx context.Context, r *Request) error
	// UnverifiedBefore returns requests pending verification received,
	// and filed, before before, of the tenants in only (all when nil) but those in
	// except, oldest first, locked; requests another Tx holds are skipped.
	UnverifiedBefore(ctx context.Context, before time.Time, only, except []string, limit int) ([]*Request, error)
	InsertTask(ctx context.Context, t *Task) error // ErrDuplicate for a known ID
	// Task returns the task or ErrNotFound; it and its request are locked.
	Task(ctx context.Context, id string) (*Task, error)
	// Tasks returns a request's tasks, by system, locked.
	Tasks(ctx context.Context, requestID string) ([]*Task, error)
	// OpenTasks counts a request's tasks not yet ended (answered, deferred
	// or dead-lettered): a cheap look before reading them all.
	OpenTasks(ctx context.Context, requestID string) (int, error)
	UpdateTask(ctx context.Context, t *Task) error
	// DueTasks returns tasks waiting for an answer or a retry whose
	// NextAttemptAt is not after now, soonest first. They and their
	// requests are locked; tasks another Tx holds are skipped, so
	// concurrent transactions never get the same task.
	DueTasks(ctx context.Context, now time.Time, limit int) ([]*Task, error)
	Enqueue(ctx context.Context, m OutboxMessage) error
	// ForgetTasks drops the task messages of a request from the outbox,
	// published or not: their payloads hold the subject, which must not
	// outlive the request.
	ForgetTasks(ctx context.Context, requestID string) error
	// AppendLog appends an entry (canonical bytes, see proof.Entry) to the
	// transparency log. Appends are serialised across transactions:
	// indexes are dense, 0..n-1. The entry's index is given at the end of
	// the transaction, or as it first reads the log (LogSize, LogRange,
	// RequestLog), so that the serialising lock is held only from then.
	AppendLog(ctx context.Context, requestID string, entry []byte) error
	// LogSize is the number of entries in the log.
	LogSize(ctx context.Context) (int64, error)
	// ReadHashes reads stored hashes of the log's Merkle tree (see
	// [HashReader]).
	ReadHashes(ctx context.Context, indexes []int64) ([]tlog.Hash, error)
	// LogRange returns the log's entries start..end-1, in order.
	LogRange(ctx context.Context, start, end int64) ([]LogRecord, error)
	// RequestLog returns the log entries of a request in order.
	RequestLog(ctx context.Context, requestID string) ([]LogRecord, error)
	// InsertNotice adds a notice to the notification outbox; ErrDuplicate
	// for a known ID.
	InsertNotice(ctx context.Context, n *Notice) error
	// Notice reads a notice, locked; ErrNotFound for none.
	Notice(ctx context.Context, id string) (*Notice, error)
	UpdateNotice(ctx context.Context, n *Notice) error
	// DropExports destroys the keys of a request's exports (collected or
	// expired: whoever holds a copy of the blobs can read none of it) and
	// returns how many tasks held one. Their digests stay.
	DropExports(ctx context.Context, requestID string) (int, error)
	// PutCertificate stores the certificate of an ended request, replacing
	// an earlier one (a late answer can change how a request ended). It is
	// packed first (PackCertificate), outside the transaction.
	PutCertificate(ctx context.Context, requestID string, cert PackedCertificate, at time.Time) error
	// HoldCertificate records that a request's certificate waits to be
	// issued on a checkpoint of a log of at least logSize entries (the log
	// as it stood after the request's last change); HeldCertificates lists,
	// locked, up to limit of those a checkpoint of size covers, and
	// HeldCertificate the log size one request's waits for (ErrNotFound:
	// none waits). ReleaseCertificate drops the wait if a checkpoint of size
	// covers it, and reports whether it did: a request changed again since
	// waits on for a larger log.
	HoldCertificate(ctx context.Context, requestID string, logSize int64) error
	HeldCertificates(ctx context.Context, size int64, limit int) ([]string, error)
	HeldCertificate(ctx context.Context, requestID string) (int64, error)
	ReleaseCertificate(ctx context.Context, requestID string, size int64) (bool, error)
	// PutWitnessedCheckpoint keeps a checkpoint with the witnesses'
	// cosignatures (the signed note as served).
	PutWitnessedCheckpoint(ctx context.Context, size int64, note []byte, at time.Time) error
}

// HashReader reads the log's hashes within tx, as tlog's proofs need.
func HashReader(ctx context.Context, tx Tx) tlog.HashReader {
	return tlog.HashReaderFunc(func(indexes []int64) ([]tlog.Hash, error) { return tx.ReadHashes(ctx, indexes) })
}

// LogRecord is one entry of the transparency log.
type LogRecord struct {
	Index int64
	Data  []byte
}

// ExportLink is a single-use, expiring link made for a data subject to
// download their export without an account. Only its secret's hash is
// kept.
type ExportLink struct {
	Hash      []byte
	RequestID string
	CreatedAt time.Time
	ExpiresAt time.Time
	UsedAt    time.Time
}

// Store is the orchestrator's state.
type Store interface {
	// Tx runs fn in one transaction, committed if fn returns nil.
	Tx(ctx context.Context, fn func(Tx) error) error
	// View runs fn on one snapshot of the store, as the transactions
	// committed before it left it, unchanged by any committed while fn
	// runs; fn only reads (it must not write). On SQLite it runs beside
	// the store's one writer, not on it: work that reads much and writes
	// little (issuing certificates) reads there, and writes after.
	View(ctx context.Context, fn func(Tx) error) error
	// Get reads a request and its tasks.
	Get(ctx context.Context, id string) (*Request, []*Task, error)
	// List returns a page of requests and the cursor of the next page
	// ("" for the last); ErrBadCursor for a cursor it did not make.
	List(ctx context.Context, q ListQuery) ([]*Request, string, error)
	// Pressure reads what the deadline metrics show: the requests not yet
	// ended counted against deadline bounds, the earliest of their
	// deadlines, per system the tasks waiting for an answer, the deferred
	// erasures counted against dueBounds, and the undelivered notices.
	Pressure(ctx context.Context, bounds, dueBounds []time.Time) (Pressure, error)
	// CountOverdue counts the requests not yet ended (pending
	// verification or open) whose deadline is before now.
	CountOverdue(ctx context.Context, now time.Time) (int, error)
	// ClaimOutbox leases up to limit unpublished outbox messages, oldest
	// first, to the relay named owner until until: relays of several
	// orchestrator replicas skip each other's leased messages, and a
	// lease that ran out (its relay died) is claimed again. Messages come
	// back in order.
	ClaimOutbox(ctx context.Context, owner string, limit int, now, until time.Time) ([]OutboxMessage, error)
	// ReleaseOutbox gives up owner's leases on messages it did not
	// publish, so that a relay stopping hands them on at once.
	ReleaseOutbox(ctx context.Context, owner string) error
	// MarkPublished records that messages were published at at, and starts
	// the wait for an answer of the tasks they carried.
	MarkPublished(ctx context.Context, seqs []int64, at time.Time) error
	Stats(ctx context.Context) (Stats, error)
	// ClaimNotices leases up to limit notices due for delivery at now to
	// owner until until, as ClaimOutbox does for messages.
	ClaimNotices(ctx context.Context, owner string, limit int, now, until time.Time) ([]*Notice, error)
	// ReleaseNotices gives up owner's leases on notices, so that a
	// notifier stopping hands them on at once.
	ReleaseNotices(ctx context.Context, owner string) error
	// DeadLetters lists the tasks that ran out of attempts.
	DeadLetters(ctx context.Context, q DeadLetterQuery) ([]DeadLetter, error)
	// Certificate returns the certificate of an ended request, or ErrNotFound.
	Certificate(ctx context.Context, requestID string) ([]byte, error)
	// WitnessedCheckpoint is the latest checkpoint that gathered the
	// witnesses' cosignatures; ErrNotFound for none.
	WitnessedCheckpoint(ctx context.Context) (size int64, note []byte, err error)
	// ExportsEndedBefore lists the export requests ended before before
	// whose export key is still held: not collected in time.
	ExportsEndedBefore(ctx context.Context, before time.Time) ([]string, error)
	// LastSweeps returns when each retention policy last ran (not a dry
	// run), by "tenant/policy".
	LastSweeps(ctx context.Context) (map[string]time.Time, error)
	// InsertExportLink stores a download link (by the SHA-256 of its
	// secret); ErrDuplicate for a known hash.
	InsertExportLink(ctx context.Context, l *ExportLink) error
	// UseExportLink spends the link of hash at now and returns it: it
	// must be unused and unexpired, else ErrNotFound, the same for a link
	// never made. Of two concurrent uses one wins.
	UseExportLink(ctx context.Context, hash []byte, now time.Time) (*ExportLink, error)
	// InsertToken stores a token; ErrDuplicate for a known id or hash.
	InsertToken(ctx context.Context, t *Token) error
	// TokenByHash finds a token by the SHA-256 of its secret, revoked or
	// expired ones too; ErrNotFound for none.
	TokenByHash(ctx context.Context, hash []byte) (*Token, error)
	// Tokens lists every token, oldest first.
	Tokens(ctx context.Context) ([]*Token, error)
	// RevokeToken revokes a token at at (a second revocation keeps the
	// first time); ErrNotFound for an unknown id.
	RevokeToken(ctx context.Context, id string, at time.Time) error
	// TouchToken records that a token was used at at.
	TouchToken(ctx context.Context, id string, at time.Time) error
	Ping(ctx context.Context) error
	Close() error
}

// Pressure is the state of the deadlines, for the metrics.
type Pressure struct {
	// OpenBefore[i] counts the requests not yet ended whose deadline is
	// before the i-th bound.
	OpenBefore []int
	Open       int
	// EarliestOpen is the nearest deadline of a request not yet ended
	// (zero when there is none); EarliestByTenant is the same per tenant
	// that has one.
	EarliestOpen     time.Time
	EarliestByTenant map[string]time.Time
	// Pending is, per system, the tasks sent and not yet answered.
	Pending map[string]PendingTasks
	// DeferredBefore[i] counts the erasures deferred by a retention (tasks
	// deferred, or in their follow-up round, not yet answered) whose
	// retain-until date is before the i-th due bound; Deferred counts
	// them all.
	DeferredBefore []int
	Deferred       int
	// UndeliveredBus and UndeliveredWebhook count the notices not yet
	// delivered on each channel (webhook: of those with deliveries left).
	UndeliveredBus, UndeliveredWebhook int
	// UntoldDeadline is the nearest original deadline of a request not yet
	// ended whose extension notice has reached no channel yet: until it
	// does, that deadline still stands (zero when there is none).
	UntoldDeadline time.Time
}

// PendingTasks are one system's tasks waiting for an answer.
type PendingTasks struct {
	Count int
	// EarliestDeadline is the nearest deadline of the requests not yet
	// ended among them (zero when all are follow-ups of deferred erasures).
	EarliestDeadline time.Time
}
