package proof

import (
	"crypto/sha256"
	"errors"
	"fmt"
	"time"

	"google.golang.org/protobuf/types/known/timestamppb"

	"google.golang.org/protobuf/proto"

	lethev1 "github.com/lethe-dev/lethe/pkg/gen/lethe/v1"
)

const receiptDomain = "receipt"

// ReceiptBytes are the canonical bytes a receipt's signature covers: the
// deterministic protobuf encoding of the receipt with its signature left
// empty. It covers every other field: request and task id, system, action,
// outcome, counts, legal basis and retain-until, the export's references,
// sizes and digests (the blobs themselves are covered through their
// digests), remaining records, connector time, attempt and key id. The
// export's key is not covered: it is sealed with fresh randomness, and a
// changed key only fails to decrypt blobs checked against signed digests.
func ReceiptBytes(r *lethev1.Receipt) ([]byte, error) {
	c := proto.Clone(r).(*lethev1.Receipt)
	c.Signature = nil
	c.SealedExportKey = nil
	c.ExportKey = nil
	b, err := proto.MarshalOptions{Deterministic: true}.Marshal(c)
	if err != nil {
		return nil, fmt.Errorf("receipt bytes: %w", err)
	}
	return b, nil
}

// SignReceipt sets the receipt's key id and signature.
func SignReceipt(s *Signer, r *lethev1.Receipt) error {
	r.KeyId = s.Key.ID
	b, err := ReceiptBytes(r)
	if err != nil {
		return err
	}
	r.Signature = s.Sign(receiptDomain, b)
	return nil
}

// MaxClockSkew is how far after the time the orchestrator received it a
// receipt's connector time may be.
const MaxClockSkew = 5 * time.Minute

// ErrClockSkew is returned for a receipt dated after the time it was
// received, past MaxClockSkew.
var ErrClockSkew = errors.New("the receipt is dated after the time it was received")

// ErrBadTime is returned for a receipt with a time that is none, or one
// outside the years 1 to 9999 that RFC 3339, the log and certificates
// write.
var ErrBadTime = errors.New("the receipt has a time out of range")

// checkTimes refuses a receipt whose connector_time is missing or whose
// times are not years 1 to 9999: encoded into the log or a certificate
// they could not be written (a signed receipt must not be able to stop
// the orchestrator).
func checkTimes(r *lethev1.Receipt) error {
	for _, ts := range []struct {
		name     string
		t        *timestamppb.Timestamp
		required bool
	}{{"connector_time", r.GetConnectorTime(), true}, {"retain_until", r.GetRetainUntil(), false}} {
		switch {
		case ts.t == nil && !ts.required:
			continue
		case !ts.t.IsValid():
			return fmt.Errorf("%w: %s", ErrBadTime, ts.name)
		}
		if y := ts.t.AsTime().Year(); y < 1 || y > 9999 {
			return fmt.Errorf("%w: %s in the year %d", ErrBadTime, ts.name, y)
		}
	}
	return nil
}

// VerifyReceipt checks that r is signed by a key registered for r's system
// and valid at received, the time the orchestrator received it (as its log
// records it). The key is judged at the time of receipt, not at the time the
// receipt claims: a key retired (leaked, say) cannot sign answers dated
// before its retirement and be believed. A receipt may have waited on the
// bus (an orchestrator down for an hour reads an hour's backlog), but it
// cannot be dated after it arrived, beyond MaxClockSkew of the two clocks.
func VerifyReceipt(ks KeySet, r *lethev1.Receipt, received time.Time) error {
	if err := checkTimes(r); err != nil {
		return err
	}
	claimed := r.GetConnectorTime().AsTime()
	if claimed.Sub(received) > MaxClockSkew {
		return fmt.Errorf("%w: it says %s, it was received %s", ErrClockSkew,
			claimed.UTC().Format(time.RFC3339), received.UTC().Format(time.RFC3339))
	}
	k, err := ks.For(r.GetKeyId(), RoleConnector, r.GetSystem(), received)
	if err != nil {
		return err
	}
	b, err := ReceiptBytes(r)
	if err != nil {
		return err
	}
	return verify(k, receiptDomain, b, r.GetSignature())
}

// ReceiptHash names a signed receipt in the transparency log.
func ReceiptHash(r *lethev1.Receipt) ([32]byte, error) {
	b, err := ReceiptBytes(r)
	if err != nil {
		return [32]byte{}, err
	}
	return sha256.Sum256(append(b, r.GetSignature()...)), nil
}
