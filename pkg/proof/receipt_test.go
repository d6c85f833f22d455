package proof_test

import (
	"crypto/sha256"
	"errors"
	"testing"
	"time"

	"google.golang.org/protobuf/encoding/protowire"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/timestamppb"

	lethev1 "github.com/lethe-dev/lethe/pkg/gen/lethe/v1"
	"github.com/lethe-dev/lethe/pkg/proof"
	"github.com/lethe-dev/lethe/pkg/proof/prooftest"
)

var receiptTime = time.Date(2026, 2, 10, 9, 40, 0, 0, time.UTC)

// fullReceipt has every field set, so that a change to any of them is seen.
func fullReceipt(t *testing.T, s *proof.Signer) *lethev1.Receipt {
	t.Helper()
	data := []byte(`{"profile":[{"plan":"basic"}]}`)
	sum := sha256.Sum256(data)
	r := &lethev1.Receipt{
		RequestId:    "req-1",
		TaskId:       "req-1.accounts",
		System:       "accounts",
		Action:       lethev1.Action_ACTION_ERASE,
		Outcome:      lethev1.Outcome_OUTCOME_RETAINED,
		Counts:       []*lethev1.CategoryCount{{Category: "invoices", Count: 3}, {Category: "profile", Count: 1}},
		LegalBasis:   "Art. 17(3)(b) GDPR",
		RetainUntil:  timestamppb.New(time.Date(2036, 12, 31, 0, 0, 0, 0, time.UTC)),
		ExportRef:    "req-1/accounts/records.json",
		ExportSha256: sum[:],
		ExportSize:   int64(len(data)),
		ExportFiles: []*lethev1.ExportFile{{Ref: "req-1/accounts/files/0", Name: "talk.mp4", Category: "recordings",
			ContentType: "video/mp4", Size: 1 << 30, Sha256: sum[:]}},
		ExportKey:     make([]byte, 32),
		Remaining:     3,
		Detail:        "kept for tax law",
		Retryable:     true,
		ConnectorTime: timestamppb.New(receiptTime),
		Attempt:       2,
	}
	if err := proof.SignReceipt(s, r); err != nil {
		t.Fatal(err)
	}
	return r
}

func TestReceiptSignVerify(t *testing.T) {
	w := prooftest.NewWorld(t)
	r := fullReceipt(t, w.Connectors["accounts"])
	if r.GetKeyId() != w.Connectors["accounts"].Key.ID || len(r.GetSignature()) == 0 {
		t.Fatalf("SignReceipt set key id %q and %d signature bytes", r.GetKeyId(), len(r.GetSignature()))
	}
	if err := proof.VerifyReceipt(w.Keys, r, r.GetConnectorTime().AsTime()); err != nil {
		t.Fatalf("a freshly signed receipt does not verify: %v", err)
	}
	// Over the wire, and without its export key (as a certificate holds
	// it), the receipt still verifies and keeps its hash.
	raw, err := proto.Marshal(r)
	if err != nil {
		t.Fatal(err)
	}
	got := &lethev1.Receipt{}
	if err := proto.Unmarshal(raw, got); err != nil {
		t.Fatal(err)
	}
	if err := proof.VerifyReceipt(w.Keys, got, got.GetConnectorTime().AsTime()); err != nil {
		t.Errorf("the receipt read back from the wire does not verify: %v", err)
	}
	got.ExportKey = nil
	if err := proof.VerifyReceipt(w.Keys, got, got.GetConnectorTime().AsTime()); err != nil {
		t.Errorf("the receipt without its export key does not verify: %v", err)
	}
	h1, err1 := proof.ReceiptHash(r)
	h2, err2 := proof.ReceiptHash(got)
	if err1 != nil || err2 != nil || h1 != h2 {
		t.Errorf("receipt hash changed without export key: %x, %x (%v, %v)", h1, h2, err1, err2)
	}
	got.Signature[0] ^= 1
	if h3, _ := proof.ReceiptHash(got); h3 == h1 {
		t.Error("the receipt hash does not cover the signature")
	}
}

func TestReceiptChangedAfterSigning(t *testing.T) {
	w := prooftest.NewWorld(t)
	tests := []struct {
		name   string
		change func(*lethev1.Receipt)
		want   error
	}{
		{"request id", func(r *lethev1.Receipt) { r.RequestId = "req-2" }, proof.ErrBadSignature},
		{"task id", func(r *lethev1.Receipt) { r.TaskId = "req-2.accounts" }, proof.ErrBadSignature},
		{"system registered to another key", func(r *lethev1.Receipt) { r.System = "billing" }, proof.ErrWrongSystem},
		{"system with no key", func(r *lethev1.Receipt) { r.System = "warehouse" }, proof.ErrWrongSystem},
		{"action", func(r *lethev1.Receipt) { r.Action = lethev1.Action_ACTION_EXPORT }, proof.ErrBadSignature},
		{"outcome", func(r *lethev1.Receipt) { r.Outcome = lethev1.Outcome_OUTCOME_ERASED }, proof.ErrBadSignature},
		{"a count", func(r *lethev1.Receipt) { r.Counts[0].Count = 0 }, proof.ErrBadSignature},
		{"a category", func(r *lethev1.Receipt) { r.Counts[1].Category = "profiles" }, proof.ErrBadSignature},
		{"a category added", func(r *lethev1.Receipt) {
			r.Counts = append(r.Counts, &lethev1.CategoryCount{Category: "sessions", Count: 1})
		}, proof.ErrBadSignature},
		{"a category dropped", func(r *lethev1.Receipt) { r.Counts = r.Counts[:1] }, proof.ErrBadSignature},
		{"counts reordered", func(r *lethev1.Receipt) { r.Counts[0], r.Counts[1] = r.Counts[1], r.Counts[0] }, proof.ErrBadSignature},
		{"legal basis", func(r *lethev1.Receipt) { r.LegalBasis = "Art. 17(3)(e) GDPR" }, proof.ErrBadSignature},
		{"retain until", func(r *lethev1.Receipt) { r.RetainUntil = timestamppb.New(r.RetainUntil.AsTime().Add(time.Second)) }, proof.ErrBadSignature},
		{"retain until dropped", func(r *lethev1.Receipt) { r.RetainUntil = nil }, proof.ErrBadSignature},
		{"export ref", func(r *lethev1.Receipt) { r.ExportRef = "exports/other.json" }, proof.ErrBadSignature},
		{"export sha256", func(r *lethev1.Receipt) { r.ExportSha256[0] ^= 0x80 }, proof.ErrBadSignature},
		{"export sha256 dropped", func(r *lethev1.Receipt) { r.ExportSha256 = nil }, proof.ErrBadSignature},
		{"export size", func(r *lethev1.Receipt) { r.ExportSize++ }, proof.ErrBadSignature},
		{"export file ref", func(r *lethev1.Receipt) { r.ExportFiles[0].Ref = "req-2/accounts/files/0" }, proof.ErrBadSignature},
		{"export file size", func(r *lethev1.Receipt) { r.ExportFiles[0].Size-- }, proof.ErrBadSignature},
		{"export file sha256", func(r *lethev1.Receipt) { r.ExportFiles[0].Sha256 = make([]byte, 32) }, proof.ErrBadSignature},
		{"export file dropped", func(r *lethev1.Receipt) { r.ExportFiles = nil }, proof.ErrBadSignature},
		{"remaining", func(r *lethev1.Receipt) { r.Remaining = 0 }, proof.ErrBadSignature},
		{"detail", func(r *lethev1.Receipt) { r.Detail = "" }, proof.ErrBadSignature},
		{"retryable", func(r *lethev1.Receipt) { r.Retryable = false }, proof.ErrBadSignature},
		{"connector time", func(r *lethev1.Receipt) { r.ConnectorTime = timestamppb.New(receiptTime.Add(time.Second)) }, proof.ErrBadSignature},
		{"connector time a nanosecond", func(r *lethev1.Receipt) { r.ConnectorTime.Nanos++ }, proof.ErrBadSignature},
		{"connector time before the key", func(r *lethev1.Receipt) { r.ConnectorTime = timestamppb.New(prooftest.KeysFrom.Add(-time.Hour)) }, proof.ErrKeyNotValid},
		{"connector time dropped", func(r *lethev1.Receipt) { r.ConnectorTime = nil }, proof.ErrBadTime},
		{"connector time past year 9999", func(r *lethev1.Receipt) { r.ConnectorTime = &timestamppb.Timestamp{Seconds: 253402300800} }, proof.ErrBadTime},
		{"retain until past year 9999", func(r *lethev1.Receipt) { r.RetainUntil = &timestamppb.Timestamp{Seconds: 253402300800 * 2} }, proof.ErrBadTime},
		{"retain until with bad nanos", func(r *lethev1.Receipt) { r.RetainUntil = &timestamppb.Timestamp{Nanos: -1} }, proof.ErrBadTime},
		{"attempt", func(r *lethev1.Receipt) { r.Attempt = 1 }, proof.ErrBadSignature},
		{"key id unknown", func(r *lethev1.Receipt) { r.KeyId = "accounts-0000000000000000" }, proof.ErrUnknownKey},
		{"key id dropped", func(r *lethev1.Receipt) { r.KeyId = "" }, proof.ErrUnknownKey},
		{"key id of another system", func(r *lethev1.Receipt) { r.KeyId = w.Connectors["billing"].Key.ID }, proof.ErrWrongSystem},
		{"key id of the orchestrator", func(r *lethev1.Receipt) { r.KeyId = w.Orchestrator.Key.ID }, proof.ErrWrongSystem},
		{"signature byte", func(r *lethev1.Receipt) { r.Signature[10] ^= 1 }, proof.ErrBadSignature},
		{"signature truncated", func(r *lethev1.Receipt) { r.Signature = r.Signature[:63] }, proof.ErrBadSignature},
		{"signature dropped", func(r *lethev1.Receipt) { r.Signature = nil }, proof.ErrBadSignature},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := fullReceipt(t, w.Connectors["accounts"])
			if err := proof.VerifyReceipt(w.Keys, r, r.GetConnectorTime().AsTime()); err != nil {
				t.Fatalf("before the change: %v", err)
			}
			tt.change(r)
			err := proof.VerifyReceipt(w.Keys, r, r.GetConnectorTime().AsTime())
			if !errors.Is(err, tt.want) {
				t.Errorf("VerifyReceipt = %v, want %v", err, tt.want)
			}
		})
	}
}

// A field the signer never knew (added on the wire) is part of the signed
// bytes too: the receipt no longer verifies.
func TestReceiptUnknownFieldAdded(t *testing.T) {
	w := prooftest.NewWorld(t)
	raw, err := proto.Marshal(fullReceipt(t, w.Connectors["accounts"]))
	if err != nil {
		t.Fatal(err)
	}
	raw = protowire.AppendTag(raw, 99, protowire.BytesType)
	raw = protowire.AppendBytes(raw, []byte("smuggled"))
	r := &lethev1.Receipt{}
	if err := proto.Unmarshal(raw, r); err != nil {
		t.Fatal(err)
	}
	if err := proof.VerifyReceipt(w.Keys, r, r.GetConnectorTime().AsTime()); !errors.Is(err, proof.ErrBadSignature) {
		t.Errorf("VerifyReceipt = %v, want %v", err, proof.ErrBadSignature)
	}
}

func TestReceiptSignedByWrongKey(t *testing.T) {
	w := prooftest.NewWorld(t)
	stranger, _ := prooftest.NewSigner(t, "accounts", prooftest.KeysFrom) // never registered
	tests := []struct {
		name   string
		signer *proof.Signer
		want   error
	}{
		{"registered key", w.Connectors["accounts"], nil},
		{"unknown key", stranger, proof.ErrUnknownKey},
		{"key registered for another system", w.Connectors["billing"], proof.ErrWrongSystem},
		{"orchestrator key", w.Orchestrator, proof.ErrWrongSystem},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := fullReceipt(t, tt.signer)
			err := proof.VerifyReceipt(w.Keys, r, r.GetConnectorTime().AsTime())
			if tt.want == nil && err != nil || !errors.Is(err, tt.want) {
				t.Errorf("VerifyReceipt = %v, want %v", err, tt.want)
			}
		})
	}
}

// Rotation: a new key is added while the old one is still accepted, then the
// old one is retired.
func TestReceiptKeyRotation(t *testing.T) {
	w := prooftest.NewWorld(t)
	oldKey := w.Connectors["accounts"]
	newKey, _ := prooftest.NewSigner(t, "accounts", prooftest.KeysFrom.AddDate(0, 1, 0))
	if oldKey.Key.ID == newKey.Key.ID {
		t.Fatal("the new key has the old key's id")
	}
	signedAt := func(s *proof.Signer, at time.Time) *lethev1.Receipt {
		r := &lethev1.Receipt{RequestId: "req-1", TaskId: "req-1.accounts", System: "accounts",
			Action: lethev1.Action_ACTION_ERASE, Outcome: lethev1.Outcome_OUTCOME_ERASED, ConnectorTime: timestamppb.New(at), Attempt: 1}
		if err := proof.SignReceipt(s, r); err != nil {
			t.Fatal(err)
		}
		return r
	}
	overlap := prooftest.KeysFrom.AddDate(0, 1, 10)
	retiredAt := prooftest.KeysFrom.AddDate(0, 2, 0)

	// During the overlap both keys are in the keys file and both verify.
	ks := w.Keys
	ks.Add(newKey.Key)
	for name, s := range map[string]*proof.Signer{"old": oldKey, "new": newKey} {
		if err := proof.VerifyReceipt(ks, signedAt(s, overlap), overlap); err != nil {
			t.Errorf("during the overlap, a receipt of the %s key: %v", name, err)
		}
	}

	// The old key retired: what it signed before still verifies, what it
	// signs after does not; the new key goes on.
	retired := oldKey.Key
	retired.NotAfter = &retiredAt
	ks.Add(retired)
	if err := ks.Validate(); err != nil {
		t.Fatal(err)
	}
	// A key is judged at the time of receipt (received), not at the time
	// the receipt claims (at): a retired key's receipt dated before its
	// retirement but received after it is a replay, or a leaked key.
	tests := []struct {
		name         string
		signer       *proof.Signer
		at, received time.Time
		want         error
	}{
		{"old key before retirement", oldKey, retiredAt.Add(-time.Second), retiredAt.Add(-time.Second), nil},
		{"old key in the overlap", oldKey, overlap, overlap, nil},
		{"old key at retirement", oldKey, retiredAt, retiredAt, proof.ErrKeyNotValid},
		{"old key after retirement", oldKey, retiredAt.AddDate(0, 0, 1), retiredAt.AddDate(0, 0, 1), proof.ErrKeyNotValid},
		{"old key, dated before retirement, received after", oldKey, retiredAt.Add(-time.Minute), retiredAt.Add(time.Second), proof.ErrKeyNotValid},
		{"old key, dated long before, received after", oldKey, overlap, retiredAt.AddDate(0, 0, 1), proof.ErrKeyNotValid},
		{"new key, received an hour after it was dated (a backlog)", newKey, retiredAt, retiredAt.Add(time.Hour), nil},
		{"new key after retirement", newKey, retiredAt.AddDate(0, 0, 1), retiredAt.AddDate(0, 0, 1), nil},
		{"new key, within the skew", newKey, retiredAt.Add(4 * time.Minute), retiredAt, nil},
		{"new key, past the skew", newKey, retiredAt.Add(6 * time.Minute), retiredAt, proof.ErrClockSkew},
		{"new key before it was made", newKey, prooftest.KeysFrom.AddDate(0, 0, 10), prooftest.KeysFrom.AddDate(0, 0, 10), proof.ErrKeyNotValid},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := proof.VerifyReceipt(ks, signedAt(tt.signer, tt.at), tt.received)
			if tt.want == nil && err != nil || !errors.Is(err, tt.want) {
				t.Errorf("VerifyReceipt = %v, want %v", err, tt.want)
			}
		})
	}
}
