package proof

import (
	"crypto/sha256"
	"fmt"

	"google.golang.org/protobuf/proto"

	lethev1 "github.com/lethe-dev/lethe/pkg/gen/lethe/v1"
)

const receiptDomain = "receipt"

// ReceiptBytes are the canonical bytes a receipt's signature covers: the
// deterministic protobuf encoding of the receipt with its signature left
// empty. It covers every other field: request and task id, system, action,
// outcome, counts, legal basis and retain-until, export digest (the export
// data itself is covered through its digest, see [SignReceipt]), remaining
// records, connector time, attempt and key id.
func ReceiptBytes(r *lethev1.Receipt) ([]byte, error) {
	c := proto.Clone(r).(*lethev1.Receipt)
	c.Signature = nil
	c.ExportData = nil // covered by export_sha256, checked against the data
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

// VerifyReceipt checks that r is signed by a key registered for r's system
// and valid at the receipt's connector time, and that its export data, if
// any, matches the signed digest.
func VerifyReceipt(ks KeySet, r *lethev1.Receipt) error {
	k, err := ks.For(r.GetKeyId(), RoleConnector, r.GetSystem(), r.GetConnectorTime().AsTime())
	if err != nil {
		return err
	}
	b, err := ReceiptBytes(r)
	if err != nil {
		return err
	}
	if err := verify(k, receiptDomain, b, r.GetSignature()); err != nil {
		return err
	}
	if len(r.GetExportData()) > 0 {
		if sum := sha256.Sum256(r.GetExportData()); string(sum[:]) != string(r.GetExportSha256()) {
			return fmt.Errorf("%w: export data does not match its signed digest", ErrBadSignature)
		}
	}
	return nil
}

// ReceiptHash names a signed receipt in the transparency log.
func ReceiptHash(r *lethev1.Receipt) ([32]byte, error) {
	b, err := ReceiptBytes(r)
	if err != nil {
		return [32]byte{}, err
	}
	return sha256.Sum256(append(b, r.GetSignature()...)), nil
}
