package connector

import (
	"bytes"
	"context"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/lethe-dev/lethe/pkg/bus"
	"github.com/lethe-dev/lethe/pkg/events"
	lethev1 "github.com/lethe-dev/lethe/pkg/gen/lethe/v1"
	"github.com/lethe-dev/lethe/pkg/proof"
)

// FuzzHandleTask feeds the connector's handler (what Run calls for each
// message of its task topic) any message: ce-type and payload. The
// properties are those that keep bus credentials alone from erasing
// anyone:
//   - it never panics, and a message it refuses is refused for good
//     (bus.Permanent), never redelivered for ever;
//   - the system is called only for a task the orchestrator signed, for
//     this system, with the subject the orchestrator sealed to this
//     connector: the signed content (ids, tenant, action, deadline,
//     attempt, key) is that of a task the test signed, and the subject is
//     the one sealed in it;
//   - what it publishes is a receipt of this connector's key for that task;
//   - no log line, and no error, repeats a subject's email.
func FuzzHandleTask(f *testing.F) {
	fx := newTaskFixture(f)
	for _, s := range fx.seeds {
		f.Add(s.kind, s.data)
	}
	f.Add(uint8(0), []byte{})
	f.Add(uint8(0), []byte("not protobuf"))
	f.Add(uint8(2), fx.seeds[0].data) // a good task under the receipt type
	f.Add(uint8(0), []byte{0x32, 0x19, 0x0a, 0x17, 'p', 'e', 'r', 's', 'o', 'n', '-', '0', '0', '0', '9', '@', 'e', 'x', 'a', 'm', 'p', 'l', 'e', '.', 'c', 'o', 'm'})

	// The fixture is right: the tasks signed for this connector run, the
	// others are refused.
	for i, sd := range fx.seeds {
		sys, _, _, err := fx.handle(sd.kind, sd.data)
		if ran := len(sys.calls) == 1; ran != (i < 3) || (err != nil) == ran {
			f.Fatalf("seed %d: ran %v, err %v", i, ran, err)
		}
	}

	f.Fuzz(func(t *testing.T, kind uint8, data []byte) {
		sys, out, logs, err := fx.handle(kind, data)
		msg := &bus.Message{ID: "fuzz-1", Type: fx.typ(kind)}

		if err != nil && !bus.IsPermanent(err) {
			t.Fatalf("an error that is not permanent, with fakes that never fail (redelivered for ever): %v", err)
		}
		task := &lethev1.Task{}
		decodes := proto.Unmarshal(data, task) == nil

		// The system is called only for a task the orchestrator signed.
		for _, got := range sys.calls {
			if !decodes {
				t.Fatal("the system was called for a payload that does not decode")
			}
			want, ok := fx.signed[signedKey(task)]
			if !ok {
				t.Fatalf("the system was called for a task the orchestrator did not sign: %v", task)
			}
			if got.Subject.Email != want.email || got.Subject.UserID != want.userID {
				t.Fatalf("the system got a subject that is not the one the orchestrator sent")
			}
			if got.TaskID != task.GetTaskId() || got.Tenant != task.GetTenant() || got.RequestID != task.GetRequestId() {
				t.Fatalf("the system got task %+v for %v", got, task)
			}
		}
		if len(sys.calls) > 1 {
			t.Fatalf("one delivery ran the system %d times", len(sys.calls))
		}
		if len(sys.calls) > 0 && err != nil {
			t.Fatalf("the task ran, but the handler failed: %v", err)
		}

		// What it publishes is its own signed receipt of that task.
		for _, m := range out.msgs {
			if m.topic != events.TopicReceipts {
				t.Fatalf("published on %s", m.topic)
			}
			r := &lethev1.Receipt{}
			if err := events.Decode(m.msg, r, events.TypeReceipt); err != nil {
				t.Fatalf("published something that is not a receipt: %v", err)
			}
			if len(sys.calls) == 0 {
				t.Fatalf("published a receipt without running the task: %v", r)
			}
			if r.GetTaskId() != task.GetTaskId() || r.GetSystem() != "sys" || r.GetAction() != task.GetAction() {
				t.Fatalf("the receipt %v does not answer the task %v", r, task)
			}
			if err := proof.VerifyReceipt(fx.keys, r, fuzzNow); err != nil {
				t.Fatalf("the published receipt does not verify: %v", err)
			}
		}

		// Nothing repeats an email: neither the subjects the test sealed,
		// nor one a forged task carries in the clear (unless it is also
		// one of the task's fields that may be logged, such as its id).
		said := strings.ToLower(logs)
		if err != nil {
			said += "\n" + strings.ToLower(err.Error())
		}
		emails := []string{fx.email, fx.otherEmail}
		if e := task.GetSubject().GetEmail(); decodes && strings.Contains(e, "@") && len(e) >= 5 && !loggable(task, msg, e) {
			emails = append(emails, e)
		}
		for _, e := range emails {
			if strings.Contains(said, strings.ToLower(e)) {
				t.Fatalf("the email %q was logged or returned:\n%s", e, said)
			}
		}
	})
}

var fuzzNow = time.Date(2026, 2, 13, 10, 0, 0, 0, time.UTC)

func (fx *taskFixture) typ(kind uint8) string {
	return []string{events.TypeTaskErase, events.TypeTaskExport, events.TypeReceipt}[int(kind)%3]
}

// handle runs a fresh connector's handler over one message of type
// fx.typ(kind), and returns the system it ran, what it published, what it
// logged and its answer.
func (fx *taskFixture) handle(kind uint8, data []byte) (*recordingSystem, *recordingBus, string, error) {
	sys := &recordingSystem{}
	out := &recordingBus{}
	var logs bytes.Buffer
	cfg := Config{System: "sys", Bus: out, Receipts: newMemReceipts(), Signer: fx.connector, TaskKeys: fx.keys,
		SealKey: fx.seal, Logger: slog.New(slog.NewTextHandler(&logs, &slog.HandlerOptions{Level: slog.LevelDebug})),
		RetryInitial: time.Millisecond, RetryMaxElapsed: 5 * time.Millisecond, Now: func() time.Time { return fuzzNow }}
	cfg.setDefaults()
	w := &worker{cfg: cfg, sys: sys, log: cfg.Logger.With("system", cfg.System)}
	msg := &bus.Message{ID: "fuzz-1", Type: fx.typ(kind), Source: "lethe/orchestrator", Time: fuzzNow, Key: "req", Data: data}
	err := w.handle(context.Background(), msg)
	return sys, out, logs.String(), err
}

// taskFixture is an orchestrator that signs tasks for system "sys", whose
// connector's sealing key the subjects are sealed to.
type taskFixture struct {
	keys      proof.KeySet
	connector *proof.Signer
	seal      *proof.SealKey
	// signed maps the signed content of every task the orchestrator
	// signed, subject aside (see signedKey), to the subject it sent.
	signed            map[string]sentSubject
	seeds             []taskSeed
	email, otherEmail string
}

type sentSubject struct{ email, userID string }

type taskSeed struct {
	kind uint8
	data []byte
}

// signedKey is the content the orchestrator signs, without the subject
// (sealed anew, at random, in every fuzzing process) and the signature.
func signedKey(t *lethev1.Task) string {
	c := proto.Clone(t).(*lethev1.Task)
	c.Signature, c.SealedSubject, c.Subject = nil, nil, nil
	b, err := proto.MarshalOptions{Deterministic: true}.Marshal(c)
	if err != nil {
		return "unmarshalable"
	}
	return string(b)
}

// loggable reports whether s is one of the task's or message's fields the
// connector may log (ids, system, key id, type).
func loggable(t *lethev1.Task, m *bus.Message, s string) bool {
	s = strings.ToLower(s)
	for _, f := range []string{t.GetTaskId(), t.GetRequestId(), t.GetSystem(), t.GetKeyId(), t.GetTenant(), m.ID, m.Type} {
		if strings.Contains(strings.ToLower(f), s) {
			return true
		}
	}
	return false
}

// sealKeyAt is a sealing key with a fixed private key (hex), so that an
// input saved by one fuzzing process opens in another.
func sealKeyAt(tb testing.TB, hexKey string) *proof.SealKey {
	tb.Helper()
	path := filepath.Join(tb.TempDir(), "seal.key")
	if err := os.WriteFile(path, []byte(hexKey+"\n"), 0o600); err != nil {
		tb.Fatal(err)
	}
	k, err := proof.LoadOrCreateSealKey(path)
	if err != nil {
		tb.Fatal(err)
	}
	return k
}

func newTaskFixture(tb testing.TB) *taskFixture {
	tb.Helper()
	if os.Getenv(proof.SealKeyEnv) != "" {
		tb.Skipf("%s is set: the fixture's sealing keys would be replaced", proof.SealKeyEnv)
	}
	from := time.Date(2000, 1, 1, 0, 0, 0, 0, time.UTC)
	orch, err := proof.SignerFromSeed(strings.Repeat("07", 32), proof.RoleOrchestrator, from)
	if err != nil {
		tb.Fatal(err)
	}
	forger, err := proof.SignerFromSeed(strings.Repeat("09", 32), proof.RoleOrchestrator, from)
	if err != nil {
		tb.Fatal(err)
	}
	conn, err := proof.SignerFromSeed(strings.Repeat("5a", 32), "sys", from)
	if err != nil {
		tb.Fatal(err)
	}
	fx := &taskFixture{connector: conn, signed: map[string]sentSubject{},
		seal: sealKeyAt(tb, strings.Repeat("3c", 32)), email: "person-0001@example.com", otherEmail: "person-0002@example.com"}
	fx.keys.Add(orch.Key, conn.Key)
	other := sealKeyAt(tb, strings.Repeat("4d", 32))

	task := func(n int, system string, action lethev1.Action) *lethev1.Task {
		id := "req_0" + string(rune('0'+n))
		return &lethev1.Task{RequestId: id, TaskId: events.TaskID(id, system), System: system, Action: action, Tenant: "demo",
			Deadline: timestamppb.New(fuzzNow.AddDate(0, 1, 0)), Attempt: 1}
	}
	sealTo := func(t *lethev1.Task, to *[32]byte, email, userID string) {
		b, err := proof.SealSubject(to, &lethev1.Subject{Email: email, UserId: userID})
		if err != nil {
			tb.Fatal(err)
		}
		t.SealedSubject = b
	}
	add := func(kind uint8, t *lethev1.Task, s *proof.Signer, sent *sentSubject) {
		if err := proof.SignTask(s, t); err != nil {
			tb.Fatal(err)
		}
		if sent != nil {
			fx.signed[signedKey(t)] = *sent
		}
		b, err := proto.MarshalOptions{Deterministic: true}.Marshal(t)
		if err != nil {
			tb.Fatal(err)
		}
		fx.seeds = append(fx.seeds, taskSeed{kind, b})
	}

	// An erasure and an export, their subjects sealed to the connector.
	erase := task(1, "sys", lethev1.Action_ACTION_ERASE)
	sealTo(erase, fx.seal.Public, fx.email, "user-0001")
	add(0, erase, orch, &sentSubject{fx.email, "user-0001"})
	export := task(2, "sys", lethev1.Action_ACTION_EXPORT)
	sealTo(export, fx.seal.Public, fx.email, "")
	add(1, export, orch, &sentSubject{fx.email, ""})
	// A task with its subject in the clear (an orchestrator that knows no
	// sealing key for the system).
	clear := task(3, "sys", lethev1.Action_ACTION_ERASE)
	clear.Subject = &lethev1.Subject{Email: fx.otherEmail, UserId: "user-0002"}
	add(0, clear, orch, &sentSubject{fx.otherEmail, "user-0002"})
	// Refused: for another system, sealed to another connector, signed by
	// a key the connector does not know, not signed.
	elsewhere := task(4, "other", lethev1.Action_ACTION_ERASE)
	sealTo(elsewhere, other.Public, fx.email, "")
	add(0, elsewhere, orch, nil)
	misSealed := task(5, "sys", lethev1.Action_ACTION_ERASE)
	sealTo(misSealed, other.Public, fx.email, "")
	add(0, misSealed, orch, nil)
	forged := task(6, "sys", lethev1.Action_ACTION_ERASE)
	sealTo(forged, fx.seal.Public, fx.otherEmail, "")
	add(0, forged, forger, nil)
	unsigned := task(7, "sys", lethev1.Action_ACTION_ERASE)
	unsigned.Subject = &lethev1.Subject{Email: fx.otherEmail}
	b, err := proto.Marshal(unsigned)
	if err != nil {
		tb.Fatal(err)
	}
	fx.seeds = append(fx.seeds, taskSeed{0, b})
	return fx
}

// recordingSystem records the tasks it is given and erases at once.
type recordingSystem struct{ calls []Task }

func (s *recordingSystem) Erase(_ context.Context, t Task) (Result, error) {
	s.calls = append(s.calls, t)
	return Result{Outcome: Erased, Counts: map[string]int64{"profile": 1}}, nil
}

func (s *recordingSystem) Export(_ context.Context, t Task) (Result, error) {
	s.calls = append(s.calls, t)
	return Result{Outcome: Exported, Counts: map[string]int64{"profile": 1}, Export: []byte(`{"profile":[]}`)}, nil
}

type published struct {
	topic string
	msg   *bus.Message
}

// recordingBus records what is published; nothing is consumed from it.
type recordingBus struct {
	bus.Bus
	msgs []published
}

func (b *recordingBus) Publish(_ context.Context, topic string, m *bus.Message) error {
	b.msgs = append(b.msgs, published{topic, m})
	return nil
}

// memReceipts is a ReceiptStore in memory.
type memReceipts struct {
	mu       sync.Mutex
	started  map[string]bool
	receipts map[string]*lethev1.Receipt
}

func newMemReceipts() *memReceipts {
	return &memReceipts{started: map[string]bool{}, receipts: map[string]*lethev1.Receipt{}}
}

func (m *memReceipts) Start(_ context.Context, taskID string) (*lethev1.Receipt, bool, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	resumed := m.started[taskID]
	m.started[taskID] = true
	if r, ok := m.receipts[taskID]; ok {
		return proto.Clone(r).(*lethev1.Receipt), resumed, nil
	}
	return nil, resumed, nil
}

func (m *memReceipts) Put(_ context.Context, r *lethev1.Receipt) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.receipts[r.GetTaskId()] = proto.Clone(r).(*lethev1.Receipt)
	return nil
}
