package proof

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"slices"
	"strconv"
	"strings"
	"time"

	"golang.org/x/mod/sumdb/tlog"
	"google.golang.org/protobuf/proto"

	"github.com/lethe-dev/lethe/pkg/deadline"
	lethev1 "github.com/lethe-dev/lethe/pkg/gen/lethe/v1"
	"github.com/lethe-dev/lethe/pkg/lifecycle"
)

// CertificateVersion is the version of the format documented in
// docs/spec: version 2 proves the log entries against a checkpoint (a
// C2SP tlog-checkpoint signed note, see SignCheckpoint), version 1
// against Lethe's own signed tree head. Both verify.
const CertificateVersion = 2

// Certificate is a certificate of fulfilment: what every system did for one
// request, each system's signed receipt, the request's entries in the
// transparency log with their inclusion proofs, the signed tree head they
// are proved against, and the orchestrator's signature over all of it.
//
// Its one encoding is [Certificate.Encode]: compact JSON, fields in this
// order. A verifier re-encodes what it read and requires the same bytes, so
// any change to a certificate, even one byte of layout, fails verification.
type Certificate struct {
	Version     int            `json:"version"`
	RequestID   string         `json:"request_id"`
	Tenant      string         `json:"tenant"`
	Type        lifecycle.Type `json:"type"`
	SubjectHash string         `json:"subject_hash"`
	ReceivedAt  time.Time      `json:"received_at"`
	// Deadline is the legal deadline: one month after receipt under the
	// deadline policy, or the extended deadline (see Extension).
	Deadline time.Time `json:"deadline"`
	// DeadlinePolicy is the tenant's way of counting deadlines, as the
	// request kept it; nil: UTC, no roll to working days.
	DeadlinePolicy *deadline.Spec `json:"deadline_policy,omitempty"`
	// Extension is set when the deadline was extended (Art. 12(3)).
	Extension *Extension `json:"extension,omitempty"`
	// Verification is who checked the data subject's identity, and how;
	// Denial who refused the request, and why. Each is set when a person
	// decided it through the API.
	Verification *Decision `json:"verification,omitempty"`
	Denial       *Decision `json:"denial,omitempty"`
	// AnsweredAt is set when the request was answered (partially_retained)
	// before it ended: the data subject had a complete answer then, and
	// the deadline is judged by it. CompletedAt is the final end, after a
	// deferred erasure ran.
	AnsweredAt  *time.Time      `json:"answered_at,omitempty"`
	CompletedAt time.Time       `json:"completed_at"`
	State       lifecycle.State `json:"state"`
	DeadlineMet bool            `json:"deadline_met"`
	Systems     []SystemResult  `json:"systems"`
	// ExportManifestSHA256 is, for an export request, the SHA-256 (hex)
	// of its bundle's manifest.json: the bundle a person downloads is the
	// one the log's last export_assembled entry recorded.
	ExportManifestSHA256 string `json:"export_manifest_sha256,omitempty"`
	// Sweep is, for a retention run (type sweep), what it swept: the
	// policy, its clock and cut-off, whether it was a dry run, and each
	// system's data categories, as the log's created entry recorded them.
	Sweep *SweepRun `json:"sweep,omitempty"`
	// Purposes is, for a consent withdrawal or an objection, the
	// purposes it covers and each system's data categories, as the log's
	// created entry recorded them: the only data erased.
	Purposes *PurposeScope `json:"purposes,omitempty"`
	// Reapply is, for a re-application after a restore, its system, since
	// when, and the people by count and digest of their keyed hashes.
	Reapply *ReapplyScope `json:"reapply,omitempty"`
	// Lift is, for a lift, the restriction it lifts and why, as the log's
	// created entry recorded them; for a restriction, the lift that ended
	// it, as the log's lifted entry recorded it (nil while in place).
	Lift      *LiftScope `json:"lift,omitempty"`
	Log       LogProof   `json:"log"`
	KeyID     string     `json:"key_id"`
	Signature []byte     `json:"signature"`
}

// Decision is a person's decision on a request: the identity check
// (Method) or the refusal (Ground), when and by whom, with a note that
// holds no personal data (the log keeps its hash).
type Decision struct {
	At     time.Time `json:"at"`
	Actor  Actor     `json:"actor"`
	Method string    `json:"method,omitempty"`
	Ground string    `json:"ground,omitempty"`
	Note   string    `json:"note,omitempty"`
}

// Extension is the extension of a request's deadline by two further months
// (GDPR Art. 12(3)): once, before the original deadline, with a reason,
// which the data subject must be told of within the first month.
type Extension struct {
	At time.Time `json:"at"`
	// Reason is the reason given to the data subject. The log holds only
	// its hash ([ReasonHash]).
	Reason           string    `json:"reason"`
	OriginalDeadline time.Time `json:"original_deadline"`
	// NoticeDeliveredAt is when the notice of the extension was first
	// delivered; nil if it never was.
	NoticeDeliveredAt *time.Time `json:"notice_delivered_at,omitempty"`
	// NoticeChannels are the channels it was delivered on, sorted, once
	// each.
	NoticeChannels []string `json:"notice_channels,omitempty"`
}

// NoticeDeliveries reads the deliveries of one notice (such as
// [NoticeExtension]) from a request's log entries: the first delivery's
// time (nil if none) and the channels it was delivered on, sorted, once
// each. The issuer fills in a certificate's Extension with it, and the
// verifier checks the Extension against it.
func NoticeDeliveries(entries []Entry, notice string) (first *time.Time, channels []string) {
	for _, e := range entries {
		if e.Event != EventNoticeDelivered || e.Notice != notice {
			continue
		}
		if first == nil || e.At.Before(*first) {
			at := e.At
			first = &at
		}
		if e.Channel != "" {
			channels = append(channels, e.Channel)
		}
	}
	slices.Sort(channels)
	return first, slices.Compact(channels)
}

// RespondedAt is when the data subject had a complete answer: AnsweredAt
// if the request was answered before it ended, else CompletedAt.
func (c *Certificate) RespondedAt() time.Time {
	if c.AnsweredAt != nil {
		return *c.AnsweredAt
	}
	return c.CompletedAt
}

// EffectiveDeadline is the deadline the answer is judged by: Deadline,
// except that an extension whose notice was not delivered by the original
// deadline has no effect (the person must be told within the first month),
// and then it is the original deadline.
func (c *Certificate) EffectiveDeadline() time.Time {
	if x := c.Extension; x != nil && (x.NoticeDeliveredAt == nil || x.NoticeDeliveredAt.After(x.OriginalDeadline)) {
		return x.OriginalDeadline
	}
	return c.Deadline
}

// SystemResult is one system's answer. Everything but System and Receipt is
// read from the signed receipt, for people; a verifier checks they agree.
type SystemResult struct {
	System        string            `json:"system"`
	Outcome       lifecycle.Outcome `json:"outcome"`
	Counts        map[string]int64  `json:"counts,omitempty"`
	Remaining     int64             `json:"remaining"`
	LegalBasis    string            `json:"legal_basis,omitempty"`
	RetainUntil   *time.Time        `json:"retain_until,omitempty"`
	ExportSHA256  []byte            `json:"export_sha256,omitempty"`
	ConnectorTime *time.Time        `json:"connector_time,omitempty"`
	KeyID         string            `json:"key_id,omitempty"`
	// Receipt is the signed receipt (protobuf, without export data, which
	// its digest stands for). Empty for a system that never answered.
	Receipt []byte `json:"receipt,omitempty"`
	// Detail says why a system without a receipt failed.
	Detail string `json:"detail,omitempty"`
}

// LogProof places the request's events in the transparency log.
type LogProof struct {
	Entries []LoggedEntry `json:"entries"`
	// TreeHead is the signed tree head of a version 1 certificate; nil in
	// version 2.
	TreeHead *TreeHead `json:"tree_head,omitempty"`
	// Checkpoint is the signed note of a version 2 certificate: the
	// orchestrator's checkpoint of the log, with the cosignatures of the
	// witnesses that had cosigned it when the certificate was issued.
	Checkpoint string `json:"checkpoint,omitempty"`
}

// LoggedEntry is one entry, its index in the log, and the proof that the
// tree head's tree holds it.
type LoggedEntry struct {
	Index int64            `json:"index"`
	Entry json.RawMessage  `json:"entry"`
	Proof tlog.RecordProof `json:"proof"`
}

// MarshalJSON encodes e as encoding/json does by reflection, byte for
// byte, without a call and an allocation per hash: a certificate holds an
// inclusion proof per entry, and an orchestrator encodes one per request
// in its store's one writer, where reflection over the proofs was most of
// the certificate's encoding.
func (e LoggedEntry) MarshalJSON() ([]byte, error) {
	b := make([]byte, 0, 48+len(e.Entry)+len(e.Proof)*(base64.StdEncoding.EncodedLen(len(tlog.Hash{}))+3))
	b = append(b, `{"index":`...)
	b = strconv.AppendInt(b, e.Index, 10)
	b = append(b, `,"entry":`...)
	if e.Entry == nil {
		b = append(b, "null"...)
	} else {
		b = append(b, e.Entry...) // checked and escaped by the encoder, as a RawMessage is
	}
	b = append(b, `,"proof":`...)
	if e.Proof == nil {
		b = append(b, "null"...)
	} else {
		b = append(b, '[')
		for i, h := range e.Proof {
			if i > 0 {
				b = append(b, ',')
			}
			b = append(b, '"')
			b = base64.StdEncoding.AppendEncode(b, h[:])
			b = append(b, '"')
		}
		b = append(b, ']')
	}
	return append(b, '}'), nil
}

// SystemResultOf reads a system's result from its signed receipt, dropping
// the receipt's export key (what the key opens stays out of the
// certificate; the signed digests name it).
func SystemResultOf(receipt []byte) (SystemResult, error) {
	r := &lethev1.Receipt{}
	if err := proto.Unmarshal(receipt, r); err != nil {
		return SystemResult{}, fmt.Errorf("receipt: %w", err)
	}
	r.SealedExportKey, r.ExportKey = nil, nil
	b, err := proto.MarshalOptions{Deterministic: true}.Marshal(r)
	if err != nil {
		return SystemResult{}, fmt.Errorf("receipt: %w", err)
	}
	res := SystemResult{
		System:       r.GetSystem(),
		Outcome:      lifecycle.OutcomeOf(r.GetOutcome()),
		Remaining:    r.GetRemaining(),
		LegalBasis:   r.GetLegalBasis(),
		ExportSHA256: r.GetExportSha256(),
		KeyID:        r.GetKeyId(),
		Receipt:      b,
	}
	if len(r.GetCounts()) > 0 {
		res.Counts = map[string]int64{}
		for _, c := range r.GetCounts() {
			res.Counts[c.GetCategory()] = c.GetCount()
		}
	}
	if r.GetRetainUntil() != nil {
		t := r.GetRetainUntil().AsTime().UTC()
		res.RetainUntil = &t
	}
	if r.GetConnectorTime() != nil {
		t := r.GetConnectorTime().AsTime().UTC()
		res.ConnectorTime = &t
	}
	return res, nil
}

// Encode returns the certificate's one encoding.
func (c *Certificate) Encode() []byte {
	b, err := json.Marshal(c)
	if err != nil {
		panic(err) // a Certificate always encodes
	}
	return b
}

const certificateDomain = "certificate"

func (c *Certificate) signed() []byte {
	u := *c
	u.Signature = nil
	return u.Encode()
}

// Sign sets the certificate's key id and signature, and returns the
// certificate's encoding, as Encode would.
func (c *Certificate) Sign(s *Signer) []byte {
	if c.Version == 0 {
		c.Version = CertificateVersion
	}
	c.KeyID = s.Key.ID
	unsigned := c.signed()
	c.Signature = s.Sign(certificateDomain, unsigned)
	// The signature is the last field, so the signed certificate is the
	// unsigned one with it in the place of null: a certificate is
	// encoded once, not twice (an orchestrator issues one per request).
	const null = `"signature":null}`
	if !bytes.HasSuffix(unsigned, []byte(null)) {
		return c.Encode()
	}
	b := make([]byte, 0, len(unsigned)+base64.StdEncoding.EncodedLen(len(c.Signature))+2)
	b = append(b, unsigned[:len(unsigned)-len(null)]...)
	b = append(b, `"signature":"`...)
	b = base64.StdEncoding.AppendEncode(b, c.Signature)
	return append(b, `"}`...)
}

// Verify checks a certificate with the public keys alone: its form, the
// orchestrator's signature, the signed tree head, every entry's inclusion
// proof, every receipt's signature and key, that receipts, log and summary
// tell the same story, and the deadline arithmetic: the tenant's deadline
// policy, the extension with its reason and its notice to the data
// subject, and an answer given before a deferred erasure ended the
// request. It returns the certificate it read and every problem found (nil
// when it verifies).
func Verify(data []byte, ks KeySet) (*Certificate, error) {
	c, err := decodeCertificate(data)
	if err != nil {
		return c, err
	}
	var errs []error
	th, thErr := checkTreeHead(ks, c)
	errs = append(errs, checkSignature(ks, c, th, thErr == nil))
	errs = append(errs, thErr)
	l, logErrs := checkLog(c, th, thErr == nil)
	errs = append(errs, logErrs...)
	errs = append(errs, checkRequest(c, l.created, l.lifted))
	errs = append(errs, checkEnd(c, l.ends)...)
	if c.ExportManifestSHA256 != l.manifest {
		errs = append(errs, fmt.Errorf("the certificate's export manifest digest %q is not the one the log recorded last (%q)", c.ExportManifestSHA256, l.manifest))
	}
	errs = append(errs, checkSystems(ks, c, l)...)
	errs = append(errs, checkState(c))
	errs = append(errs, checkDecisions(c, l.entries)...)
	errs = append(errs, checkDeadlines(c, l.created, l.extensions, l.entries)...)
	return c, errors.Join(errs...)
}

// decodeCertificate reads a certificate in its one encoding, of the
// version this verifier reads. It protects against any change to the
// bytes, even of layout, that the signature check would not see as one
// (such as a field added or reordered), and against reading a format it
// does not know. Its errors end the verification: the certificate is nil
// when it does not decode.
func decodeCertificate(data []byte) (*Certificate, error) {
	data = bytes.TrimSuffix(data, []byte("\n"))
	c := &Certificate{}
	if err := strictUnmarshal(data, c); err != nil {
		return nil, fmt.Errorf("not a certificate: %w", err)
	}
	if !bytes.Equal(c.Encode(), data) {
		return c, errors.New("not in canonical form: the certificate was changed after it was issued")
	}
	switch {
	case c.Version < 1 || c.Version > CertificateVersion:
		return c, fmt.Errorf("version %d: this verifier reads versions 1 to %d", c.Version, CertificateVersion)
	case c.Version == 1 && (c.Log.TreeHead == nil || c.Log.Checkpoint != ""):
		return c, errors.New("version 1: the log is proved against a tree_head, and only that")
	case c.Version >= 2 && (c.Log.TreeHead != nil || c.Log.Checkpoint == ""):
		return c, fmt.Errorf("version %d: the log is proved against a checkpoint, and only that", c.Version)
	}
	return c, nil
}

// checkSignature checks the orchestrator's signature over the certificate,
// by an orchestrator key valid when the certificate was issued: when its
// tree head or checkpoint, made with it, was signed (or, if that does not
// verify, when the request ended). A certificate issued again later (a
// lift, a deferred erasure done, a notice delivered) is signed by the key
// of that day, which may have been rotated since the request ended. It
// protects against a certificate changed, or made up, by anyone but the
// orchestrator.
func checkSignature(ks KeySet, c *Certificate, th TreeHead, thValid bool) error {
	at := c.CompletedAt
	if thValid {
		at = th.Time
	}
	k, err := ks.For(c.KeyID, RoleOrchestrator, "", at)
	if err != nil {
		return fmt.Errorf("certificate signature: %w", err)
	}
	if err := verify(k, certificateDomain, c.signed(), c.Signature); err != nil {
		return fmt.Errorf("certificate signature: %w", err)
	}
	return nil
}

// checkTreeHead checks the signature of the tree head the log entries are
// proved against. It protects against a made-up log: without it, any
// tree would hold the entries.
func checkTreeHead(ks KeySet, c *Certificate) (TreeHead, error) {
	if c.Log.TreeHead != nil {
		return *c.Log.TreeHead, VerifyTreeHead(ks, *c.Log.TreeHead)
	}
	return OpenCheckpoint(ks, []byte(c.Log.Checkpoint))
}

// SignedTreeHead is the tree head a certificate's log entries are proved
// against: its tree_head (version 1) or its checkpoint's (version 2), not
// checked.
func (c *Certificate) SignedTreeHead() TreeHead {
	if c.Log.TreeHead != nil {
		return *c.Log.TreeHead
	}
	text, _, _ := SplitNote([]byte(c.Log.Checkpoint))
	th, _ := parseCheckpoint(string(text))
	return th
}

// requestLog is what the log's entries tell the later checks, in the
// log's order (the last of a kind is the latest).
type requestLog struct {
	created    *Entry           // the request's created entry; nil if none
	entries    []Entry          // every entry that decodes
	ends       []Entry          // the entries ending the request
	extensions []Entry          // the extended entries
	accepted   map[string]Entry // the last receipt_accepted entry per system
	logged     map[string]bool  // the systems the log names
	resolved   map[string]bool  // the systems an operator resolved by hand
	manifest   string           // the last export_assembled entry's digest
	lifted     *LiftScope       // the lift of a restriction (lifted); nil if none
}

// checkLog checks the log entries: in the log's order, canonical, the
// request's, and in the signed tree. It protects against entries left
// out of order, changed, taken from another request or never logged. It
// reads what the later checks need from the entries that decode.
// Against a tree head that does not verify, inclusion proves nothing: the
// entries are then read, not proved (the tree head's error says why).
func checkLog(c *Certificate, th TreeHead, thValid bool) (*requestLog, []error) {
	var errs []error
	fail := func(format string, a ...any) { errs = append(errs, fmt.Errorf(format, a...)) }
	l := &requestLog{accepted: map[string]Entry{}, logged: map[string]bool{}, resolved: map[string]bool{}}
	for i, le := range c.Log.Entries {
		if i > 0 && le.Index <= c.Log.Entries[i-1].Index {
			fail("log entry %d: the entries are not in the log's order", le.Index)
		}
		e, err := DecodeEntry(le.Entry)
		if err != nil {
			fail("log entry %d: %w", le.Index, err)
			continue
		}
		if e.RequestID != c.RequestID {
			fail("log entry %d belongs to request %s", le.Index, e.RequestID)
		}
		if thValid {
			if err := CheckInclusion(th, le.Index, le.Entry, le.Proof); err != nil {
				errs = append(errs, err)
			}
		}
		l.entries = append(l.entries, e)
		if e.System != "" {
			l.logged[e.System] = true
		}
		switch e.Event {
		case EventCreated:
			l.created = &e
		case EventReceiptAccepted:
			l.accepted[e.System] = e
		case EventTaskResolved:
			l.resolved[e.System] = true
		case EventExportAssembled:
			l.manifest = e.ManifestSHA256
		case EventExtended:
			l.extensions = append(l.extensions, e)
		case EventLifted:
			l.lifted = e.Lift
		case EventFulfilled, EventFailed, EventPartiallyRetained, EventDenied, EventExpired:
			l.ends = append(l.ends, e)
		}
	}
	return l, errs
}

// checkRequest checks that the certificate's request (tenant, type,
// subject, receipt) is the one the log recorded when it was created. It
// protects against a certificate of one request passed off as another's.
func checkRequest(c *Certificate, created *Entry, lifted *LiftScope) error {
	if created == nil {
		return fmt.Errorf("the log has no %q entry for the request", EventCreated)
	}
	if created.SubjectHash != c.SubjectHash || created.Tenant != c.Tenant || created.Type != c.Type ||
		created.ReceivedAt == nil || !created.ReceivedAt.Equal(c.ReceivedAt) {
		return errors.New("the certificate's request does not match the request the log recorded")
	}
	// What a request covers beyond a person is the log's, and only
	// requests of its type have it. A lift's is in its created entry; a
	// restriction's lift, once done, in its lifted entry.
	liftLogged, liftWanted := created.Lift, c.Type == lifecycle.Lift
	if c.Type == lifecycle.Restriction {
		liftLogged, liftWanted = lifted, lifted != nil
	}
	for _, scope := range []struct {
		what              string
		logged, certified any
		has, wanted       bool
	}{
		{"sweep (policy, cut-off, categories)", created.Sweep, c.Sweep, c.Sweep != nil, c.Type == lifecycle.Sweep},
		{"purposes", created.Purposes, c.Purposes, c.Purposes != nil, c.Type.ByPurpose()},
		{"re-application (system, since, people)", created.Reapply, c.Reapply, c.Reapply != nil, c.Type == lifecycle.Reapply},
		{"lift (restriction, reason)", liftLogged, c.Lift, c.Lift != nil, liftWanted},
	} {
		a, _ := json.Marshal(scope.logged)
		b, _ := json.Marshal(scope.certified)
		if !bytes.Equal(a, b) || scope.has != scope.wanted {
			return fmt.Errorf("the certificate's %s is not what the log recorded", scope.what)
		}
	}
	return nil
}

// checkEnd checks how and when the request ended against the log: the
// log's last end is the certificate's state and completed_at, and
// answered_at is the log's first answer, before the end. It protects
// against a request shown ended otherwise, or answered earlier, than it
// was.
func checkEnd(c *Certificate, ends []Entry) []error {
	if len(ends) == 0 {
		return []error{errors.New("the log has no entry ending the request")}
	}
	var errs []error
	fail := func(format string, a ...any) { errs = append(errs, fmt.Errorf(format, a...)) }
	final := ends[len(ends)-1]
	if !final.At.Equal(c.CompletedAt) || final.Event != finalEvent(c.State) {
		fail("the log ended the request %s at %s, the certificate says %s at %s",
			final.Event, final.At.Format(time.RFC3339Nano), c.State, c.CompletedAt.Format(time.RFC3339Nano))
	}
	// The first complete answer: the request's first fulfilled or
	// partially_retained end.
	var answered *time.Time
	for _, e := range ends {
		if e.Event == EventFulfilled || e.Event == EventPartiallyRetained {
			answered = &e.At
			break
		}
	}
	switch a := c.AnsweredAt; {
	case a == nil: // no earlier answer claimed: CompletedAt is the answer
	case answered == nil:
		fail("answered_at is %s, but the log records no answer (%s or %s)", a.Format(time.RFC3339Nano), EventFulfilled, EventPartiallyRetained)
	case !a.Equal(*answered):
		fail("answered_at is %s, but the log first answered the request at %s", a.Format(time.RFC3339Nano), answered.Format(time.RFC3339Nano))
	case !a.Before(c.CompletedAt):
		fail("answered_at %s is not before completed_at %s: the request was not answered before it ended",
			a.Format(time.RFC3339Nano), c.CompletedAt.Format(time.RFC3339Nano))
	}
	return errs
}

// checkSystems checks the systems: in order, each once, each named by
// the log, each signed receipt verifying, this request's and the one the
// log accepted (see checkSystem), a system without one out of attempts,
// and every system the log names in the certificate. It protects against
// answers made up, changed, swapped or taken from another request, and
// against a system left out.
func checkSystems(ks KeySet, c *Certificate, l *requestLog) []error {
	var errs []error
	fail := func(format string, a ...any) { errs = append(errs, fmt.Errorf(format, a...)) }
	if !slices.IsSortedFunc(c.Systems, func(a, b SystemResult) int { return strings.Compare(a.System, b.System) }) {
		fail("systems are not in order")
	}
	if len(c.Systems) == 0 && !refused(c.State) {
		fail("the certificate names no system")
	}
	if len(c.Systems) > 0 && refused(c.State) {
		fail("a request %s sent no task, yet the certificate names systems", c.State)
	}
	seen := map[string]bool{}
	for _, s := range c.Systems {
		if seen[s.System] {
			fail("%s: listed twice", s.System)
		}
		seen[s.System] = true
		if !l.logged[s.System] {
			fail("%s: the log does not name this system", s.System)
		}
		if len(s.Receipt) == 0 {
			switch {
			case s.Outcome == lifecycle.Resolved && !l.resolved[s.System]:
				fail("%s: resolved, but the log records no one resolving it (%s)", s.System, EventTaskResolved)
			case s.Outcome != lifecycle.DeadLetter && s.Outcome != lifecycle.Resolved:
				fail("%s: no receipt for outcome %q", s.System, s.Outcome)
			}
			continue
		}
		if err := checkSystem(ks, c, s, l.accepted[s.System]); err != nil {
			errs = append(errs, err)
		}
	}
	// A system the log sent a task to is in the certificate: none can be
	// left out of it.
	for _, name := range slices.Sorted(maps.Keys(l.logged)) {
		if !seen[name] {
			fail("the log names %s, the certificate does not", name)
		}
	}
	return errs
}

// checkState checks that the state is the one the systems' answers give
// (lifecycle.FinalState; a system without a receipt never answered). It
// protects against a request shown fulfilled while a system failed or
// keeps data, or shown failed or retained when it was not.
func checkState(c *Certificate) error {
	if refused(c.State) {
		return nil // no system took part: the log's end (checkEnd) says it all
	}
	parts := make([]lifecycle.Part, 0, len(c.Systems))
	for _, s := range c.Systems {
		p := lifecycle.Part{Outcome: s.Outcome}
		if len(s.Receipt) == 0 && s.Outcome != lifecycle.Resolved {
			p.Outcome = lifecycle.DeadLetter // checkSystems checks a resolution against the log
		}
		if s.RetainUntil != nil {
			p.RetainUntil = *s.RetainUntil
		}
		parts = append(parts, p)
	}
	if want := lifecycle.FinalState(c.Type, parts); c.State != want {
		return fmt.Errorf("state %q does not follow from the systems' answers (%q)", c.State, want)
	}
	return nil
}

// checkDeadlines checks the deadline arithmetic: the policy, the
// deadline it gives, the extension against the log, and deadline_met.
func checkDeadlines(c *Certificate, created *Entry, extensions, entries []Entry) []error {
	var errs []error
	fail := func(format string, a ...any) { errs = append(errs, fmt.Errorf(format, a...)) }
	stamp := func(t time.Time) string { return t.Format(time.RFC3339) }

	var policy deadline.Policy
	if spec := c.DeadlinePolicy; spec != nil {
		if spec.IsDefault() {
			fail("deadline policy: not canonical: a policy that counts as the default one (UTC, no roll) must be left out")
		}
		p, err := spec.Policy()
		if err != nil {
			// Without the policy there is no deadline to recompute.
			fail("%w", err)
			return errs
		}
		policy = p
	}
	if created != nil && !specEqual(created.DeadlinePolicy, c.DeadlinePolicy) {
		fail("the certificate's deadline policy is not the one the log recorded for the request")
	}

	original := policy.Deadline(c.ReceivedAt)
	if created != nil && (created.Deadline == nil || !created.Deadline.Equal(original)) {
		fail("the log recorded a deadline that is not one month after receipt (%s) under the request's deadline policy", stamp(original))
	}
	x := c.Extension
	if x == nil {
		if !c.Deadline.Equal(original) {
			fail("deadline %s is not one month after receipt (%s) under the request's deadline policy", stamp(c.Deadline), stamp(original))
		}
		if len(extensions) > 0 {
			fail("the log records an extension of the deadline, the certificate shows none")
		}
	} else {
		if !x.OriginalDeadline.Equal(original) {
			fail("extension: original deadline %s is not one month after receipt (%s) under the request's deadline policy",
				stamp(x.OriginalDeadline), stamp(original))
		}
		if extended := policy.Extended(c.ReceivedAt); !c.Deadline.Equal(extended) {
			fail("extended deadline %s is not the two further months the law allows (%s) under the request's deadline policy",
				stamp(c.Deadline), stamp(extended))
		}
		if x.Reason == "" {
			fail("extension: no reason given")
		}
		switch len(extensions) {
		case 0:
			fail("extension: the log records no extension of the deadline")
		case 1:
			e := extensions[0]
			if !e.At.Equal(x.At) {
				fail("extension: made at %s, the log says at %s", x.At.Format(time.RFC3339Nano), e.At.Format(time.RFC3339Nano))
			}
			if e.At.After(original) {
				fail("extension: made at %s, after the original deadline %s: too late to extend", e.At.Format(time.RFC3339Nano), stamp(original))
			}
			if e.Deadline == nil || !e.Deadline.Equal(c.Deadline) || e.OriginalDeadline == nil || !e.OriginalDeadline.Equal(original) {
				fail("extension: the deadlines the log recorded are not the certificate's")
			}
			if e.ReasonSHA256 != ReasonHash(x.Reason) {
				fail("extension: the reason is not the one the log recorded (its hash differs)")
			}
		default:
			fail("extension: the log records %d extensions of the deadline; the law allows one", len(extensions))
		}
		first, channels := NoticeDeliveries(entries, NoticeExtension)
		if !timeEqual(first, x.NoticeDeliveredAt) || !slices.Equal(channels, x.NoticeChannels) {
			fail("extension: the notice's delivery (%s on %v) is not what the log's %s entries say (%s on %v)",
				timeString(x.NoticeDeliveredAt), x.NoticeChannels, EventNoticeDelivered, timeString(first), channels)
		}
	}

	if met := !c.RespondedAt().After(c.EffectiveDeadline()); met != c.DeadlineMet {
		what := "completion"
		if c.AnsweredAt != nil {
			what = "the answer"
		}
		fail("deadline_met is %v, but %s %s against deadline %s says %v",
			c.DeadlineMet, what, stamp(c.RespondedAt()), stamp(c.EffectiveDeadline()), met)
	}
	return errs
}

func specEqual(a, b *deadline.Spec) bool {
	if a == nil || b == nil {
		return a == b
	}
	return a.TimeZone == b.TimeZone && a.RollToWorkingDay == b.RollToWorkingDay && slices.Equal(a.Holidays, b.Holidays)
}

func timeEqual(a, b *time.Time) bool {
	if a == nil || b == nil {
		return a == b
	}
	return a.Equal(*b)
}

func timeString(t *time.Time) string {
	if t == nil {
		return "never"
	}
	return t.Format(time.RFC3339Nano)
}

// refused reports whether a request in state ended before any system was
// asked: denied, or expired unverified.
func refused(state lifecycle.State) bool {
	return state == lifecycle.Denied || state == lifecycle.Expired
}

// checkDecisions checks the certificate's verification and denial against
// the log's verified and denied entries made by a person: the same actor,
// time, method or ground, and note. It protects against a decision
// credited to someone else, or hidden from the certificate.
func checkDecisions(c *Certificate, entries []Entry) []error {
	var errs []error
	for _, d := range []struct {
		name  string
		event string
		got   *Decision
	}{{"verification", EventVerified, c.Verification}, {"denial", EventDenied, c.Denial}} {
		var logged *Entry
		for i := range entries {
			if entries[i].Event == d.event && entries[i].Actor != nil {
				logged = &entries[i]
			}
		}
		switch {
		case logged == nil && d.got == nil:
		case logged == nil:
			errs = append(errs, fmt.Errorf("the certificate shows a %s the log does not record", d.name))
		case d.got == nil:
			errs = append(errs, fmt.Errorf("the log records a %s by %s %s that the certificate leaves out", d.name, logged.Actor.Kind, logged.Actor.ID))
		case !decisionMatches(*d.got, *logged):
			errs = append(errs, fmt.Errorf("the certificate's %s (by %s %s at %s) is not the one the log records", d.name,
				d.got.Actor.Kind, d.got.Actor.ID, d.got.At.Format(time.RFC3339Nano)))
		}
	}
	return errs
}

// DecisionOf is the decision a verified or denied entry records, with
// its note (whose hash the entry holds).
func DecisionOf(e Entry, note string) *Decision {
	if e.Actor == nil {
		return nil
	}
	return &Decision{At: e.At, Actor: *e.Actor, Method: e.Method, Ground: e.Ground, Note: note}
}

func decisionMatches(d Decision, e Entry) bool {
	noteHash := ""
	if d.Note != "" {
		noteHash = ReasonHash(d.Note)
	}
	return d.At.Equal(e.At) && d.Actor == *e.Actor && d.Method == e.Method && d.Ground == e.Ground && noteHash == e.NoteSHA256
}

// finalEvent is the log event that ends a request in state.
func finalEvent(state lifecycle.State) string {
	switch state {
	case lifecycle.Denied:
		return EventDenied
	case lifecycle.Expired:
		return EventExpired
	case lifecycle.Failed:
		return EventFailed
	case lifecycle.PartiallyRetained:
		return EventPartiallyRetained
	}
	return EventFulfilled
}

// checkSystem checks one system's signed receipt: it verifies with a key
// of the system's, answers this request's task with the action its type
// asks, is what the summary says, and is the receipt the log accepted
// (logged). It protects against a forged, changed, misrouted or replaced
// answer.
func checkSystem(ks KeySet, c *Certificate, s SystemResult, logged Entry) error {
	r := &lethev1.Receipt{}
	if err := proto.Unmarshal(s.Receipt, r); err != nil {
		return fmt.Errorf("%s: receipt does not decode: %w", s.System, err)
	}
	// The key is judged at the time the log accepted the receipt. (A
	// receipt the log did not accept fails below anyway; its own time
	// stands in, so that its signature is still checked first.)
	received := r.GetConnectorTime().AsTime()
	if h, err := ReceiptHash(r); err == nil && logged.ReceiptHash == fmt.Sprintf("%x", h) {
		received = logged.At
	}
	if err := VerifyReceipt(ks, r, received); err != nil {
		return fmt.Errorf("%s: receipt: %w", s.System, err)
	}
	if r.GetRequestId() != c.RequestID || r.GetSystem() != s.System || r.GetTaskId() != c.RequestID+"."+s.System {
		return fmt.Errorf("%s: the receipt answers task %s, not this request's", s.System, r.GetTaskId())
	}
	if r.GetAction() != c.Type.Action() {
		return fmt.Errorf("%s: the receipt answers a %v, not a %s", s.System, r.GetAction(), c.Type)
	}
	if o := lifecycle.OutcomeOf(r.GetOutcome()); !c.Type.Answers(o) {
		return fmt.Errorf("%s: the receipt's outcome %q does not answer a %s", s.System, o, c.Type)
	}
	if c.Sweep != nil && !c.Sweep.Matches(s.System, r.GetSweep()) {
		return fmt.Errorf("%s: the receipt answers another sweep than the run's", s.System)
	}
	if c.Purposes != nil && !c.Purposes.Matches(s.System, r.GetCategories()) {
		return fmt.Errorf("%s: the receipt erased other data categories than the purposes'", s.System)
	}
	if c.Purposes == nil && len(r.GetCategories()) > 0 {
		return fmt.Errorf("%s: the receipt answers an erasure limited to categories, not this request", s.System)
	}
	switch {
	case c.Type == lifecycle.Lift && c.Lift != nil && r.GetRestrictionId() != c.Lift.Restriction:
		return fmt.Errorf("%s: the receipt lifts restriction %q, not %q", s.System, r.GetRestrictionId(), c.Lift.Restriction)
	case c.Type != lifecycle.Lift && r.GetRestrictionId() != "":
		return fmt.Errorf("%s: the receipt lifts a restriction, not this request", s.System)
	}
	summary, err := SystemResultOf(s.Receipt)
	if err != nil {
		return fmt.Errorf("%s: %w", s.System, err)
	}
	a, _ := json.Marshal(summary)
	b, _ := json.Marshal(s)
	if !bytes.Equal(a, b) {
		return fmt.Errorf("%s: the summary does not match the signed receipt", s.System)
	}
	h, err := ReceiptHash(r)
	if err != nil {
		return err
	}
	if logged.ReceiptHash != fmt.Sprintf("%x", h) {
		return fmt.Errorf("%s: the log did not accept this receipt", s.System)
	}
	return nil
}
