package proof

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"slices"
	"strings"
	"time"

	"golang.org/x/mod/sumdb/tlog"
	"google.golang.org/protobuf/proto"

	"github.com/lethe-dev/lethe/pkg/deadline"
	lethev1 "github.com/lethe-dev/lethe/pkg/gen/lethe/v1"
)

// CertificateVersion is the version of the format documented in
// docs/certificates.md.
const CertificateVersion = 1

// Certificate is a certificate of fulfilment: what every system did for one
// request, each system's signed receipt, the request's entries in the
// transparency log with their inclusion proofs, the signed tree head they
// are proved against, and the orchestrator's signature over all of it.
//
// Its one encoding is [Certificate.Encode]: compact JSON, fields in this
// order. A verifier re-encodes what it read and requires the same bytes, so
// any change to a certificate, even one byte of layout, fails verification.
type Certificate struct {
	Version     int       `json:"version"`
	RequestID   string    `json:"request_id"`
	Tenant      string    `json:"tenant"`
	Type        string    `json:"type"`
	SubjectHash string    `json:"subject_hash"`
	ReceivedAt  time.Time `json:"received_at"`
	Deadline    time.Time `json:"deadline"`
	// OriginalDeadline is set when the deadline was extended (Art. 12(3)).
	OriginalDeadline *time.Time     `json:"original_deadline,omitempty"`
	CompletedAt      time.Time      `json:"completed_at"`
	State            string         `json:"state"`
	DeadlineMet      bool           `json:"deadline_met"`
	Systems          []SystemResult `json:"systems"`
	Log              LogProof       `json:"log"`
	KeyID            string         `json:"key_id"`
	Signature        []byte         `json:"signature"`
}

// SystemResult is one system's answer. Everything but System and Receipt is
// read from the signed receipt, for people; a verifier checks they agree.
type SystemResult struct {
	System        string           `json:"system"`
	Outcome       string           `json:"outcome"`
	Counts        map[string]int64 `json:"counts,omitempty"`
	Remaining     int64            `json:"remaining"`
	LegalBasis    string           `json:"legal_basis,omitempty"`
	RetainUntil   *time.Time       `json:"retain_until,omitempty"`
	ExportSHA256  []byte           `json:"export_sha256,omitempty"`
	ConnectorTime *time.Time       `json:"connector_time,omitempty"`
	KeyID         string           `json:"key_id,omitempty"`
	// Receipt is the signed receipt (protobuf, without export data, which
	// its digest stands for). Empty for a system that never answered.
	Receipt []byte `json:"receipt,omitempty"`
	// Detail says why a system without a receipt failed.
	Detail string `json:"detail,omitempty"`
}

// OutcomeDeadLetter is the outcome of a system that ran out of attempts.
const OutcomeDeadLetter = "dead_letter"

// LogProof places the request's events in the transparency log.
type LogProof struct {
	Entries  []LoggedEntry `json:"entries"`
	TreeHead TreeHead      `json:"tree_head"`
}

// LoggedEntry is one entry, its index in the log, and the proof that the
// tree head's tree holds it.
type LoggedEntry struct {
	Index int64            `json:"index"`
	Entry json.RawMessage  `json:"entry"`
	Proof tlog.RecordProof `json:"proof"`
}

// SystemResultOf reads a system's result from its signed receipt, dropping
// the receipt's export data (the person's records stay out of the
// certificate; the signed digest names them).
func SystemResultOf(receipt []byte) (SystemResult, error) {
	r := &lethev1.Receipt{}
	if err := proto.Unmarshal(receipt, r); err != nil {
		return SystemResult{}, fmt.Errorf("receipt: %w", err)
	}
	r.ExportData = nil
	b, err := proto.MarshalOptions{Deterministic: true}.Marshal(r)
	if err != nil {
		return SystemResult{}, fmt.Errorf("receipt: %w", err)
	}
	res := SystemResult{
		System:       r.GetSystem(),
		Outcome:      OutcomeName(r.GetOutcome()),
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

// OutcomeName is the lower-case name of an outcome ("erased").
func OutcomeName(o lethev1.Outcome) string {
	return strings.ToLower(strings.TrimPrefix(o.String(), "OUTCOME_"))
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

// Sign sets the certificate's key id and signature.
func (c *Certificate) Sign(s *Signer) {
	c.Version = CertificateVersion
	c.KeyID = s.Key.ID
	c.Signature = s.Sign(certificateDomain, c.signed())
}

// Verify checks a certificate with the public keys alone: its form, the
// orchestrator's signature, the signed tree head, every entry's inclusion
// proof, every receipt's signature and key, that receipts, log and summary
// tell the same story, and the deadline arithmetic. It returns the
// certificate it read and every problem found (nil when it verifies).
func Verify(data []byte, ks KeySet) (*Certificate, error) {
	data = bytes.TrimSuffix(data, []byte("\n"))
	c := &Certificate{}
	if err := strictUnmarshal(data, c); err != nil {
		return nil, fmt.Errorf("not a certificate: %w", err)
	}
	if !bytes.Equal(c.Encode(), data) {
		return c, errors.New("not in canonical form: the certificate was changed after it was issued")
	}
	if c.Version != CertificateVersion {
		return c, fmt.Errorf("version %d: this verifier reads version %d", c.Version, CertificateVersion)
	}
	var errs []error
	fail := func(format string, a ...any) { errs = append(errs, fmt.Errorf(format, a...)) }

	if k, err := ks.For(c.KeyID, RoleOrchestrator, "", c.CompletedAt); err != nil {
		fail("certificate signature: %w", err)
	} else if err := verify(k, certificateDomain, c.signed(), c.Signature); err != nil {
		fail("certificate signature: %w", err)
	}
	th := c.Log.TreeHead
	if err := VerifyTreeHead(ks, th); err != nil {
		errs = append(errs, err)
	}

	// The log: every entry is the request's, canonical, and in the tree.
	var created, final *Entry
	accepted := map[string]Entry{}
	logged := map[string]bool{} // the systems the log names

	for _, le := range c.Log.Entries {
		e, err := DecodeEntry(le.Entry)
		if err != nil {
			fail("log entry %d: %w", le.Index, err)
			continue
		}
		if e.RequestID != c.RequestID {
			fail("log entry %d belongs to request %s", le.Index, e.RequestID)
		}
		if err := CheckInclusion(th, le.Index, le.Entry, le.Proof); err != nil {
			errs = append(errs, err)
		}
		if e.System != "" {
			logged[e.System] = true
		}
		switch e.Event {
		case EventCreated:
			created = &e
		case EventReceiptAccepted:
			accepted[e.System] = e
		case EventFulfilled, EventFailed:
			final = &e
		}
	}
	if created == nil {
		fail("the log has no %q entry for the request", EventCreated)
	} else {
		if created.SubjectHash != c.SubjectHash || created.Tenant != c.Tenant || created.Type != c.Type ||
			created.ReceivedAt == nil || !created.ReceivedAt.Equal(c.ReceivedAt) {
			fail("the certificate's request does not match the request the log recorded")
		}
	}
	if final == nil {
		fail("the log has no entry ending the request")
	} else if !final.At.Equal(c.CompletedAt) || final.Event != finalEvent(c.State) {
		fail("the log ended the request %s at %s, the certificate says %s at %s",
			final.Event, final.At.Format(time.RFC3339Nano), c.State, c.CompletedAt.Format(time.RFC3339Nano))
	}

	// The systems: each signed receipt verifies, is this request's, and
	// is the one the log accepted.
	if !slices.IsSortedFunc(c.Systems, func(a, b SystemResult) int { return strings.Compare(a.System, b.System) }) {
		fail("systems are not in order")
	}
	if len(c.Systems) == 0 {
		fail("the certificate names no system")
	}
	failedSystems := 0
	seen := map[string]bool{}
	for _, s := range c.Systems {
		if seen[s.System] {
			fail("%s: listed twice", s.System)
		}
		seen[s.System] = true
		if !logged[s.System] {
			fail("%s: the log does not name this system", s.System)
		}
		if len(s.Receipt) == 0 {
			if s.Outcome != OutcomeDeadLetter {
				fail("%s: no receipt for outcome %q", s.System, s.Outcome)
			}
			failedSystems++
			continue
		}
		if err := checkSystem(ks, c, s, accepted[s.System]); err != nil {
			errs = append(errs, err)
		}
		if s.Outcome == "failed" {
			failedSystems++
		}
	}

	// A system the log sent a task to is in the certificate: none can be
	// left out of it.
	for _, name := range slices.Sorted(maps.Keys(logged)) {
		if !seen[name] {
			fail("the log names %s, the certificate does not", name)
		}
	}

	// The state and the deadline arithmetic.
	wantState := "fulfilled"
	if failedSystems > 0 {
		wantState = "failed"
	}
	if c.State != wantState && !(c.State == "partially_retained" && failedSystems == 0) {
		fail("state %q does not follow from the systems' answers", c.State)
	}
	original := deadline.OneMonth(c.ReceivedAt)
	switch {
	case c.OriginalDeadline == nil && !c.Deadline.Equal(original):
		fail("deadline %s is not one month after receipt (%s)", c.Deadline.Format(time.RFC3339), original.Format(time.RFC3339))
	case c.OriginalDeadline != nil && !c.OriginalDeadline.Equal(original):
		fail("original deadline %s is not one month after receipt (%s)", c.OriginalDeadline.Format(time.RFC3339), original.Format(time.RFC3339))
	case c.OriginalDeadline != nil && (c.Deadline.Before(original) || c.Deadline.After(deadline.OneMonth(deadline.AddMonths(c.ReceivedAt, 2)))):
		fail("extended deadline %s is outside the two further months the law allows", c.Deadline.Format(time.RFC3339))
	}
	if met := !c.CompletedAt.After(c.Deadline); met != c.DeadlineMet {
		fail("deadline_met is %v, but completion %s against deadline %s says %v",
			c.DeadlineMet, c.CompletedAt.Format(time.RFC3339), c.Deadline.Format(time.RFC3339), met)
	}
	return c, errors.Join(errs...)
}

func finalEvent(state string) string {
	if state == "failed" {
		return EventFailed
	}
	return EventFulfilled
}

func checkSystem(ks KeySet, c *Certificate, s SystemResult, logged Entry) error {
	r := &lethev1.Receipt{}
	if err := proto.Unmarshal(s.Receipt, r); err != nil {
		return fmt.Errorf("%s: receipt does not decode: %w", s.System, err)
	}
	if err := VerifyReceipt(ks, r); err != nil {
		return fmt.Errorf("%s: receipt: %w", s.System, err)
	}
	if r.GetRequestId() != c.RequestID || r.GetSystem() != s.System || r.GetTaskId() != c.RequestID+"."+s.System {
		return fmt.Errorf("%s: the receipt answers task %s, not this request's", s.System, r.GetTaskId())
	}
	wantAction := lethev1.Action_ACTION_ERASE
	if c.Type == "export" {
		wantAction = lethev1.Action_ACTION_EXPORT
	}
	if r.GetAction() != wantAction {
		return fmt.Errorf("%s: the receipt answers a %v, not a %s", s.System, r.GetAction(), c.Type)
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
