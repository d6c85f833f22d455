package events_test

import (
	"bytes"
	"crypto/sha256"
	"strings"
	"testing"
	"time"

	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/lethe-dev/lethe/pkg/bus"
	"github.com/lethe-dev/lethe/pkg/events"
	lethev1 "github.com/lethe-dev/lethe/pkg/gen/lethe/v1"
	"github.com/lethe-dev/lethe/pkg/proof"
)

// Fuzz targets of what comes off the bus: every message a service decodes
// (events.Decode), and the orchestrator's check of a receipt
// (proof.VerifyReceipt), which is what stands between bus credentials and
// an answer recorded as evidence.

var fuzzNow = time.Date(2026, 2, 13, 10, 0, 0, 0, time.UTC)

// kinds are the messages carried on the bus, with their CloudEvents type
// and the constructor the publisher uses.
var kinds = []struct {
	typ  string
	zero func() proto.Message
	wrap func(m proto.Message) (*bus.Message, error)
}{
	{events.TypeTaskErase, func() proto.Message { return &lethev1.Task{} },
		func(m proto.Message) (*bus.Message, error) {
			return events.TaskMessage(m.(*lethev1.Task), "fuzz", fuzzNow)
		}},
	{events.TypeReceipt, func() proto.Message { return &lethev1.Receipt{} },
		func(m proto.Message) (*bus.Message, error) {
			return events.ReceiptMessage(m.(*lethev1.Receipt), "fuzz", fuzzNow)
		}},
	{events.TypeAccountDeleted, func() proto.Message { return &lethev1.AccountDeleted{} },
		func(m proto.Message) (*bus.Message, error) {
			return events.AccountDeletedMessage(m.(*lethev1.AccountDeleted), "fuzz", fuzzNow)
		}},
	{events.TypeNoticeExtension, func() proto.Message { return &lethev1.ExtensionNotice{} },
		func(m proto.Message) (*bus.Message, error) {
			return events.ExtensionNoticeMessage(m.(*lethev1.ExtensionNotice), "fuzz", fuzzNow)
		}},
	{events.TypeNoticeDelivered, func() proto.Message { return &lethev1.NoticeDelivered{} },
		func(m proto.Message) (*bus.Message, error) {
			return events.NoticeDeliveredMessage(m.(*lethev1.NoticeDelivered), "fuzz", fuzzNow)
		}},
}

func marshal(tb testing.TB, m proto.Message) []byte {
	tb.Helper()
	b, err := proto.MarshalOptions{Deterministic: true}.Marshal(m)
	if err != nil {
		tb.Fatal(err)
	}
	return b
}

func ts(t time.Time) *timestamppb.Timestamp { return timestamppb.New(t) }

// FuzzDecode: any payload of any type decodes or is a permanent error
// (never a panic, never a redelivery); a payload of another type is refused
// whatever it holds; and what decodes survives the publisher's encoding:
// decode -> encode -> decode gives the same message, and the encoding is
// canonical (encoding it again gives the same bytes).
func FuzzDecode(f *testing.F) {
	subject := &lethev1.Subject{Email: "person-0007@example.com", UserId: "user-0007"}
	seeds := []proto.Message{
		&lethev1.Task{RequestId: "req_01", TaskId: "req_01.accounts", System: "accounts", Action: lethev1.Action_ACTION_ERASE,
			Tenant: "demo", Deadline: ts(fuzzNow.AddDate(0, 1, 0)), Attempt: 2, KeyId: "orchestrator-0011223344556677",
			Signature: bytes.Repeat([]byte{7}, 64), SealedSubject: bytes.Repeat([]byte{9}, 80)},
		&lethev1.Receipt{RequestId: "req_01", TaskId: "req_01.billing", System: "billing", Action: lethev1.Action_ACTION_ERASE,
			Outcome: lethev1.Outcome_OUTCOME_RETAINED, Counts: []*lethev1.CategoryCount{{Category: "invoices", Count: 3}},
			LegalBasis: "Accounting law", RetainUntil: ts(time.Date(2036, 12, 31, 0, 0, 0, 0, time.UTC)), Remaining: 3,
			ConnectorTime: ts(fuzzNow), Attempt: 1, KeyId: "billing-aabbccddeeff0011", Signature: bytes.Repeat([]byte{1}, 64)},
		&lethev1.AccountDeleted{EventId: "evt-1", Tenant: "demo", Subject: subject, DeletedAt: ts(fuzzNow), Source: "accounts",
			KeyId: "accounts-aabbccddeeff0011", Signature: bytes.Repeat([]byte{2}, 64)},
		&lethev1.ExtensionNotice{RequestId: "req_01", Tenant: "demo", Subject: subject, ReceivedAt: ts(fuzzNow),
			OriginalDeadline: ts(fuzzNow.AddDate(0, 1, 0)), Deadline: ts(fuzzNow.AddDate(0, 3, 0)), Reason: "many systems",
			ExtendedAt: ts(fuzzNow.Add(time.Hour))},
		&lethev1.NoticeDelivered{NoticeId: "notice:extension:req_01", RequestId: "req_01", DeliveredAt: ts(fuzzNow),
			KeyId: "mailer-aabbccddeeff0011", Signature: bytes.Repeat([]byte{3}, 64)},
	}
	for i, m := range seeds {
		f.Add(uint8(i), marshal(f, m))
		f.Add(uint8(i)|0x80, marshal(f, m)) // the same payload under another type
	}
	// Malformed: an empty receipt (every field at its zero value), a
	// truncated string, invalid UTF-8 in a string, an unknown field, a
	// nested subject, a timestamp with a truncated varint, an overlong varint.
	f.Add(uint8(1), []byte{})
	f.Add(uint8(1), []byte{0x0a, 0x05, 'r', 'e', 'q'})
	f.Add(uint8(1), []byte{0x0a, 0x02, 0xff, 0xfe})
	f.Add(uint8(0), []byte{0xf8, 0xff, 0xff, 0xff, 0x0f, 1})
	f.Add(uint8(2), []byte{0x1a, 0x03, 0x0a, 0x01, '@'})
	f.Add(uint8(1), []byte{0x7a, 0x02, 0x08, 0x80})
	f.Add(uint8(1), []byte{0x30, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x01})

	f.Fuzz(func(t *testing.T, kind uint8, data []byte) {
		k := kinds[int(kind&0x7f)%len(kinds)]
		typ := k.typ
		if kind&0x80 != 0 {
			typ = kinds[(int(kind&0x7f)+1)%len(kinds)].typ // the wrong type for k
		}
		msg := &bus.Message{ID: "fuzz", Type: typ, Source: "fuzz", Time: fuzzNow, Data: data}
		m := k.zero()
		err := events.Decode(msg, m, k.typ)
		if typ != k.typ {
			if err == nil {
				t.Fatalf("a %s message was decoded as a %s", typ, k.typ)
			}
		}
		if err != nil {
			if !bus.IsPermanent(err) {
				t.Fatalf("decode error is not permanent (it would be redelivered for ever): %v", err)
			}
			return
		}
		// The publisher's encoding of what was decoded.
		out, err := k.wrap(m)
		if err != nil {
			t.Fatalf("a decoded %s does not encode: %v", k.typ, err)
		}
		if out.Type != k.typ && !(k.typ == events.TypeTaskErase && out.Type == events.TypeTaskExport) {
			t.Fatalf("encoded as %s, decoded as %s", out.Type, k.typ)
		}
		again := k.zero()
		if err := events.Decode(out, again, out.Type); err != nil {
			t.Fatalf("the encoding of a decoded %s does not decode: %v", k.typ, err)
		}
		if !proto.Equal(m, again) {
			t.Fatalf("decode -> encode -> decode changed the message:\n first %v\nsecond %v", m, again)
		}
		out2, err := k.wrap(again)
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(out.Data, out2.Data) || out.ID != out2.ID || out.Key != out2.Key {
			t.Fatalf("the encoding is not canonical: %x then %x", out.Data, out2.Data)
		}
	})
}

// receiptWorld is a connector key registered for "accounts" and the
// receipts it signed: the only ones a verifier may accept.
type receiptWorld struct {
	keys     proof.KeySet
	received time.Time
	// signed maps the signed bytes (proof.ReceiptBytes) of each original
	// receipt to its signature.
	signed map[string][]byte
	// seeds are the originals as they travel (protobuf).
	seeds [][]byte
}

func newReceiptWorld(tb testing.TB) *receiptWorld {
	tb.Helper()
	from := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	accounts, err := proof.SignerFromSeed(strings.Repeat("a1", 32), "accounts", from)
	if err != nil {
		tb.Fatal(err)
	}
	billing, err := proof.SignerFromSeed(strings.Repeat("b2", 32), "billing", from)
	if err != nil {
		tb.Fatal(err)
	}
	orch, err := proof.SignerFromSeed(strings.Repeat("0c", 32), proof.RoleOrchestrator, from)
	if err != nil {
		tb.Fatal(err)
	}
	w := &receiptWorld{received: fuzzNow.Add(time.Minute), signed: map[string][]byte{}}
	w.keys.Add(accounts.Key, billing.Key, orch.Key)
	export := []byte(`{"profile":[{"email":"person-0007@example.com","name":"Ann"}]}`)
	sum := sha256.Sum256(export)
	base := func(system string, action lethev1.Action, outcome lethev1.Outcome) *lethev1.Receipt {
		return &lethev1.Receipt{RequestId: "req_01", TaskId: "req_01." + system, System: system, Action: action, Outcome: outcome,
			ConnectorTime: ts(fuzzNow), Attempt: 1}
	}
	erased := base("accounts", lethev1.Action_ACTION_ERASE, lethev1.Outcome_OUTCOME_ERASED)
	erased.Counts = []*lethev1.CategoryCount{{Category: "login_history", Count: 12}, {Category: "profile", Count: 1}}
	retained := base("billing", lethev1.Action_ACTION_ERASE, lethev1.Outcome_OUTCOME_RETAINED)
	retained.Counts = []*lethev1.CategoryCount{{Category: "invoices", Count: 3}}
	retained.LegalBasis, retained.RetainUntil, retained.Remaining = "Accounting law", ts(time.Date(2036, 12, 31, 0, 0, 0, 0, time.UTC)), 3
	exported := base("accounts", lethev1.Action_ACTION_EXPORT, lethev1.Outcome_OUTCOME_EXPORTED)
	exported.ExportRef, exported.ExportSha256, exported.ExportSize = "req_01/accounts/0f/records.json", sum[:], int64(len(export))
	exported.ExportFiles = []*lethev1.ExportFile{{Ref: "req_01/accounts/0f/files/0", Name: "talk.mp4", Category: "recordings", ContentType: "video/mp4", Size: 1 << 20, Sha256: sum[:]}}
	exported.ExportCategories, exported.ExportKey = []string{"account", "recordings"}, bytes.Repeat([]byte{0x11}, 32)
	sealed := base("accounts", lethev1.Action_ACTION_EXPORT, lethev1.Outcome_OUTCOME_EXPORTED)
	sealed.ExportRef, sealed.ExportSha256, sealed.SealedExportKey = "req_01/accounts/1e/records.json", sum[:], bytes.Repeat([]byte{0x5e}, 80)
	failed := base("accounts", lethev1.Action_ACTION_ERASE, lethev1.Outcome_OUTCOME_FAILED)
	failed.Detail, failed.Retryable, failed.Attempt = "database unavailable", true, 3
	for _, r := range []*lethev1.Receipt{erased, retained, exported, sealed, failed} {
		s := accounts
		if r.System == "billing" {
			s = billing
		}
		if err := proof.SignReceipt(s, r); err != nil {
			tb.Fatal(err)
		}
		b, err := proof.ReceiptBytes(r)
		if err != nil {
			tb.Fatal(err)
		}
		w.signed[string(b)] = r.GetSignature()
		w.seeds = append(w.seeds, marshal(tb, r))
	}
	return w
}

// FuzzVerifyReceipt: a receipt as the orchestrator reads it off the bus
// (events.Decode, then proof.VerifyReceipt at the time of receipt) is
// accepted only with the signed content, and the signature, of a receipt
// its connector signed; export data it carries matches the signed digest.
// Nothing else (a changed count, outcome, task, key id, signature, an
// unknown field) gets through.
func FuzzVerifyReceipt(f *testing.F) {
	w := newReceiptWorld(f)
	for _, s := range w.seeds {
		f.Add(s)
		// Typical forgeries: a byte changed in the middle, the signature cut.
		b := bytes.Clone(s)
		b[len(b)/2] ^= 0x01
		f.Add(b)
		f.Add(s[:len(s)-10])
	}
	f.Add([]byte{})
	f.Add([]byte("not protobuf"))

	f.Fuzz(func(t *testing.T, data []byte) {
		r := &lethev1.Receipt{}
		if err := events.Decode(&bus.Message{ID: "fuzz", Type: events.TypeReceipt, Data: data}, r, events.TypeReceipt); err != nil {
			return
		}
		if err := proof.VerifyReceipt(w.keys, r, w.received); err != nil {
			return
		}
		b, err := proof.ReceiptBytes(r)
		if err != nil {
			t.Fatalf("a verified receipt has no signed bytes: %v", err)
		}
		sig, ok := w.signed[string(b)]
		if !ok {
			t.Fatalf("a receipt no connector signed verifies: %v", r)
		}
		if !bytes.Equal(sig, r.GetSignature()) {
			t.Fatalf("a receipt verifies with a signature its connector did not make: %x", r.GetSignature())
		}
	})
}
