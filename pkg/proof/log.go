package proof

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"time"

	"golang.org/x/mod/sumdb/tlog"

	"github.com/lethe-dev/lethe/pkg/deadline"
	lethev1 "github.com/lethe-dev/lethe/pkg/gen/lethe/v1"
	"github.com/lethe-dev/lethe/pkg/lifecycle"
)

// Events in the transparency log.
const (
	EventCreated         = "created"
	EventVerified        = "verified"
	EventTaskPublished   = "task_published"
	EventTaskFailed      = "task_failed"
	EventReceiptAccepted = "receipt_accepted"
	EventDeadLetter      = "dead_letter"
	EventExtended        = "extended"
	// EventNoticeDelivered: a notice to the data subject (see Notice) was
	// delivered on one channel; one entry per delivery.
	EventNoticeDelivered = "notice_delivered"
	// EventErasureDeferred: a system kept data by law until a date; a
	// follow-up erasure runs then.
	EventErasureDeferred = "erasure_deferred"
	EventFulfilled       = "fulfilled"
	EventFailed          = "failed"
	// EventPartiallyRetained ends a request whose systems all answered,
	// some keeping data by law until a date: a complete, lawful answer,
	// which a later fulfilled (or failed) entry may follow once the
	// deferred erasure has run.
	EventPartiallyRetained = "partially_retained"
	// EventDenied ends a request refused under Art. 12(5) (manifestly
	// unfounded or excessive) or because the identity was not
	// established; EventExpired one whose identity was never checked
	// within the tenant's time.
	EventDenied  = "denied"
	EventExpired = "expired"
	// EventTaskRetried opens a new round of attempts for a task that
	// failed or ran out of them, at an operator's word (Actor).
	EventTaskRetried = "task_retried"
	// EventTaskResolved records that an operator (Actor) fixed a failed
	// task by hand, with a note (NoteSHA256): the system's outcome is
	// then "resolved", with no receipt.
	EventTaskResolved = "task_resolved"
	// EventExportAssembled records the digest of an export request's
	// bundle manifest (ManifestSHA256) when its systems have answered;
	// EventExportDeleted that the export's key was destroyed and its
	// blobs deleted (Detail: "collected" or "expired").
	EventExportAssembled = "export_assembled"
	EventExportDeleted   = "export_deleted"
	// EventLifted records, in a restriction's log, that every system has
	// lifted it (Lift names the lift request and its reason).
	EventLifted = "lifted"
)

// Actor is who made a decision the log records: an API token or an OIDC
// subject, with its role. It is an operator of the controller, never a
// data subject.
type Actor struct {
	Kind string `json:"kind"` // "token" or "oidc"
	ID   string `json:"id"`
	Name string `json:"name,omitempty"`
	Role string `json:"role,omitempty"`
}

// NoticeExtension is the notice telling the data subject that the
// deadline was extended (Art. 12(3)), in notice_delivered entries.
const NoticeExtension = "extension"

// ReasonHash is what the log records of an extension's reason: the hex
// SHA-256 of its text. The reason itself stays out of the log, which is
// kept forever and may not be changed; the certificate carries the text,
// and a verifier checks it against this hash.
func ReasonHash(reason string) string {
	sum := sha256.Sum256([]byte(reason))
	return hex.EncodeToString(sum[:])
}

// Entry is one event of one request in the transparency log. It holds no
// personal data: the subject appears only as a keyed hash.
type Entry struct {
	RequestID   string            `json:"request_id"`
	Event       string            `json:"event"`
	At          time.Time         `json:"at"`
	Tenant      string            `json:"tenant,omitempty"`
	Type        lifecycle.Type    `json:"type,omitempty"`
	SubjectHash string            `json:"subject_hash,omitempty"`
	ReceivedAt  *time.Time        `json:"received_at,omitempty"`
	Deadline    *time.Time        `json:"deadline,omitempty"`
	System      string            `json:"system,omitempty"`
	Attempt     int               `json:"attempt,omitempty"`
	Outcome     lifecycle.Outcome `json:"outcome,omitempty"`
	// ReceiptHash is the SHA-256 of the accepted signed receipt (hex).
	ReceiptHash string `json:"receipt_hash,omitempty"`
	Detail      string `json:"detail,omitempty"`

	// The fields below came later: they are after the others, and left
	// out when empty, so that older entries keep their one encoding.

	// OriginalDeadline is the deadline before an extension (extended).
	OriginalDeadline *time.Time `json:"original_deadline,omitempty"`
	// ReasonSHA256 is [ReasonHash] of an extension's reason (extended).
	ReasonSHA256 string `json:"reason_sha256,omitempty"`
	// RetainUntil is when a deferred erasure runs (erasure_deferred).
	RetainUntil *time.Time `json:"retain_until,omitempty"`
	// Notice is which notice was delivered (notice_delivered), such as
	// [NoticeExtension].
	Notice string `json:"notice,omitempty"`
	// Channel is how it was delivered (notice_delivered): "bus" or
	// "webhook".
	Channel string `json:"channel,omitempty"`
	// DeadlinePolicy is the tenant's deadline policy the request's
	// deadlines are counted with (created); nil for the default policy.
	DeadlinePolicy *deadline.Spec `json:"deadline_policy,omitempty"`
	// Actor is who made the change an entry records, when a person did
	// through the API (created, verified, extended, denied, task_retried,
	// task_resolved).
	Actor *Actor `json:"actor,omitempty"`
	// Method is how the identity was checked (verified).
	Method string `json:"method,omitempty"`
	// Ground is why a request was refused (denied).
	Ground string `json:"ground,omitempty"`
	// NoteSHA256 is [ReasonHash] of a decision's note (verified, denied,
	// task_resolved):
	// the note is in the certificate, the log keeps its hash.
	NoteSHA256 string `json:"note_sha256,omitempty"`
	// ManifestSHA256 is the SHA-256 (hex) of an export bundle's
	// manifest.json (export_assembled).
	ManifestSHA256 string `json:"manifest_sha256,omitempty"`
	// Sweep is what a retention run sweeps (created, of type sweep).
	Sweep *SweepRun `json:"sweep,omitempty"`
	// Purposes is what a consent withdrawal or an objection covers
	// (created).
	Purposes *PurposeScope `json:"purposes,omitempty"`
	// Reapply is what a re-application after a restore covers (created).
	Reapply *ReapplyScope `json:"reapply,omitempty"`
	// Lift is what a lift of a restriction lifts (created, of type lift),
	// and, in the restriction's log, the lift done (lifted).
	Lift *LiftScope `json:"lift,omitempty"`
}

// LiftScope is the lift of a restriction of processing (Art. 18): the
// restriction's request id, why it ends (lifecycle.LiftReasons), and, once
// done, the lift request that ended it (By).
type LiftScope struct {
	Restriction string `json:"restriction"`
	Reason      string `json:"reason"`
	By          string `json:"by,omitempty"`
}

// ReapplyScope is what a re-application of erasures after a restore
// covers: the restored system, the erasures since when, and how many
// people, by the count and SHA-256 of their keyed hashes (sorted, one per
// line): the hashes themselves travel only in the task.
type ReapplyScope struct {
	System       string    `json:"system"`
	Since        time.Time `json:"since"`
	People       int       `json:"people"`
	HashesSHA256 string    `json:"hashes_sha256"`
	// Part and Parts number a re-application split into several requests
	// (more people than one task carries); absent for one in one part.
	Part  int `json:"part,omitempty"`
	Parts int `json:"parts,omitempty"`
}

// PurposeScope is what a consent withdrawal (Art. 7(3)) or an objection
// (Art. 21) covers: the purposes the person withdrew from or objected to,
// and the data categories of those purposes in each system, the only
// data erased.
type PurposeScope struct {
	Purposes []string            `json:"purposes"`
	Systems  map[string][]string `json:"systems"`
}

// Matches reports whether a receipt's echoed categories are the scope's
// for the system that signed it.
func (s *PurposeScope) Matches(system string, categories []string) bool {
	return slices.Equal(categories, s.Systems[system])
}

// SweepRun is what a retention run (a request of type sweep) sweeps: the
// policy, what starts its clock, the cut-off before which its data goes,
// whether it only counts (a dry run), and each system's data categories.
type SweepRun struct {
	Policy  string              `json:"policy"`
	Clock   string              `json:"clock"`
	Cutoff  time.Time           `json:"cutoff"`
	DryRun  bool                `json:"dry_run,omitempty"`
	Systems map[string][]string `json:"systems"`
}

// Matches reports whether a receipt's echoed sweep is this run's, for
// the system that signed it.
func (s *SweepRun) Matches(system string, r *lethev1.Sweep) bool {
	return r != nil && r.GetPolicy() == s.Policy && r.GetClock() == s.Clock && r.GetCutoff().AsTime().Equal(s.Cutoff) &&
		r.GetDryRun() == s.DryRun && slices.Equal(r.GetCategories(), s.Systems[system])
}

// Encode returns the entry's canonical bytes: compact JSON, times in UTC to
// the millisecond. The log hashes exactly these bytes.
func (e Entry) Encode() []byte {
	e.At = e.At.UTC().Truncate(time.Millisecond)
	// The other times in UTC too, or one instant would have an encoding
	// per time zone. (They keep their precision: a verifier compares them
	// with the certificate's.)
	e.ReceivedAt = inUTC(e.ReceivedAt)
	e.Deadline = inUTC(e.Deadline)
	e.OriginalDeadline = inUTC(e.OriginalDeadline)
	e.RetainUntil = inUTC(e.RetainUntil)
	if e.Sweep != nil {
		sw := *e.Sweep
		sw.Cutoff = sw.Cutoff.UTC()
		e.Sweep = &sw
	}
	if e.Reapply != nil {
		re := *e.Reapply
		re.Since = re.Since.UTC()
		e.Reapply = &re
	}
	b, err := json.Marshal(e)
	if err != nil {
		panic(err) // an Entry always encodes
	}
	return b
}

func inUTC(t *time.Time) *time.Time {
	if t == nil {
		return nil
	}
	u := t.UTC()
	return &u
}

// DecodeEntry parses canonical entry bytes; bytes that are not canonical are
// an error, so one entry has exactly one encoding.
func DecodeEntry(b []byte) (Entry, error) {
	var e Entry
	if err := strictUnmarshal(b, &e); err != nil {
		return e, fmt.Errorf("log entry: %w", err)
	}
	if !bytes.Equal(e.Encode(), b) {
		return e, errors.New("log entry: not in canonical form")
	}
	return e, nil
}

// EntryEvent reads an entry's event alone, for a reader that decodes
// (DecodeEntry) only the entries of the events it looks for.
func EntryEvent(b []byte) (string, error) {
	var e struct {
		Event string `json:"event"`
	}
	if err := json.Unmarshal(b, &e); err != nil {
		return "", fmt.Errorf("log entry: %w", err)
	}
	return e.Event, nil
}

// RecordHash is the leaf hash of entry bytes in the Merkle tree (RFC 6962).
func RecordHash(entry []byte) tlog.Hash { return tlog.RecordHash(entry) }

// TreeHead is a signed statement of the log's size and root hash at a time.
type TreeHead struct {
	Size      int64     `json:"size"`
	Root      tlog.Hash `json:"root_hash"`
	Time      time.Time `json:"time"`
	KeyID     string    `json:"key_id"`
	Signature []byte    `json:"signature"`
}

const treeHeadDomain = "tree-head"

func (th TreeHead) signed() []byte {
	return []byte(strconv.FormatInt(th.Size, 10) + "\n" + th.Root.String() + "\n" + th.Time.UTC().Format(time.RFC3339Nano) + "\n")
}

// SignTreeHead signs the log's size and root at t.
func SignTreeHead(s *Signer, size int64, root tlog.Hash, t time.Time) TreeHead {
	th := TreeHead{Size: size, Root: root, Time: t.UTC().Truncate(time.Millisecond), KeyID: s.Key.ID}
	th.Signature = s.Sign(treeHeadDomain, th.signed())
	return th
}

// VerifyTreeHead checks the tree head's signature by an orchestrator key
// valid at its time.
func VerifyTreeHead(ks KeySet, th TreeHead) error {
	k, err := ks.For(th.KeyID, RoleOrchestrator, "", th.Time)
	if err != nil {
		return fmt.Errorf("tree head: %w", err)
	}
	if err := verify(k, treeHeadDomain, th.signed(), th.Signature); err != nil {
		return fmt.Errorf("tree head: %w", err)
	}
	return nil
}

// CheckInclusion checks that entry is record index of the tree th signs.
func CheckInclusion(th TreeHead, index int64, entry []byte, p tlog.RecordProof) error {
	if err := tlog.CheckRecord(p, th.Size, th.Root, index, tlog.RecordHash(entry)); err != nil {
		return fmt.Errorf("entry %d is not in the log of size %d: %w", index, th.Size, err)
	}
	return nil
}

// CheckConsistency checks that newer's tree extends older's: the log only
// grew, nothing in it was rewritten.
func CheckConsistency(older, newer TreeHead, p tlog.TreeProof) error {
	if older.Size > newer.Size {
		return fmt.Errorf("the older tree head (size %d) is larger than the newer (size %d)", older.Size, newer.Size)
	}
	if err := tlog.CheckTree(p, newer.Size, newer.Root, older.Size, older.Root); err != nil {
		return fmt.Errorf("the log of size %d does not extend the log of size %d: %w", newer.Size, older.Size, err)
	}
	return nil
}

// strictUnmarshal decodes one JSON value with no unknown fields.
func strictUnmarshal(b []byte, v any) error {
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		return err
	}
	if dec.More() {
		return errors.New("trailing data")
	}
	return nil
}
