package connector_test

import (
	"bytes"
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"io"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/lethe-dev/lethe/pkg/blob"
	"github.com/lethe-dev/lethe/pkg/bus"
	"github.com/lethe-dev/lethe/pkg/bus/natsbus"
	"github.com/lethe-dev/lethe/pkg/connector"
	"github.com/lethe-dev/lethe/pkg/events"
	lethev1 "github.com/lethe-dev/lethe/pkg/gen/lethe/v1"
	"github.com/lethe-dev/lethe/pkg/lifecycle"
	"github.com/lethe-dev/lethe/pkg/piitest"
	"github.com/lethe-dev/lethe/pkg/proof"
)

// scripted is a system whose calls return what the test says, in order.
type scripted struct {
	mu      sync.Mutex
	calls   int
	subject string // the email of the last task
	results []func() (connector.Result, error)
}

func (s *scripted) next(t connector.Task) (connector.Result, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	i := min(s.calls, len(s.results)-1)
	s.calls++
	s.subject = t.Subject.Email
	return s.results[i]()
}

func (s *scripted) Erase(_ context.Context, t connector.Task) (connector.Result, error) {
	return s.next(t)
}
func (s *scripted) Export(_ context.Context, t connector.Task) (connector.Result, error) {
	return s.next(t)
}

func (s *scripted) lastSubject() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.subject
}

func (s *scripted) count() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.calls
}

func erased() (connector.Result, error) {
	return connector.Result{Outcome: connector.Erased, Counts: map[string]int64{"b": 2, "a": 1}}, nil
}

// rig is the SDK running over a system: its bus, the receipts it
// publishes, its logs and its metrics.
type rig struct {
	bus      *natsbus.Bus
	receipts <-chan *lethev1.Receipt
	logs     *piitest.Capture
	reg      *prometheus.Registry
	signer   *proof.Signer
	blobs    blob.Store
	dir      string
}

// run starts the SDK over sys for system "sys".
func run(t *testing.T, sys connector.System) rig { return runIn(t, t.TempDir(), sys, nil) }

// runWith is run with the receipt store wrapped by wrap.
func runWith(t *testing.T, sys connector.System, wrap func(connector.ReceiptStore) connector.ReceiptStore) rig {
	return runIn(t, t.TempDir(), sys, wrap)
}

// runIn is runWith keeping the receipt store in dir.
func runIn(t *testing.T, dir string, sys connector.System, wrap func(connector.ReceiptStore) connector.ReceiptStore) rig {
	t.Helper()
	return runAt(t, dir, sys, wrap, nil)
}

// runAt is runIn with the connector's clock (nil: time.Now).
func runAt(t *testing.T, dir string, sys connector.System, wrap func(connector.ReceiptStore) connector.ReceiptStore, now func() time.Time,
	tune ...func(*connector.Config)) rig {
	t.Helper()
	srv, err := natsbus.StartEmbedded(t.TempDir(), "127.0.0.1", -1, nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(srv.Shutdown)
	// Several handlers, as a service has (busurl.ServiceHandlers): the
	// deliveries of a task may be taken together.
	b, err := natsbus.Connect(context.Background(), srv.URL(), natsbus.Config{RetryDelay: 20 * time.Millisecond, Handlers: 4})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { b.Close() })
	receipts, err := connector.OpenReceipts(filepath.Join(dir, "receipts.db"))
	if err != nil {
		t.Fatal(err)
	}
	var store connector.ReceiptStore = receipts
	if wrap != nil {
		store = wrap(receipts)
	}
	logs := &piitest.Capture{}
	reg := prometheus.NewRegistry()
	signer, err := connector.SigningKey(dir, "sys")
	if err != nil {
		t.Fatal(err)
	}
	seal, err := connector.SealingKey(dir)
	if err != nil {
		t.Fatal(err)
	}
	blobs, err := blob.NewFS(filepath.Join(dir, "blobs"))
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	cfg := connector.Config{System: "sys", Bus: b, Receipts: store, Signer: signer, SealKey: seal, TaskKeys: orchestratorKeys, Logger: logs.Logger(), Blobs: blobs,
		RetryInitial: 5 * time.Millisecond, RetryMaxElapsed: 100 * time.Millisecond, Registerer: reg, Now: now}
	for _, f := range tune {
		f(&cfg)
	}
	go func() {
		defer close(done)
		connector.Run(ctx, cfg, sys)
	}()
	out := make(chan *lethev1.Receipt, 16)
	go b.Consume(ctx, events.TopicReceipts, "test", func(_ context.Context, m *bus.Message) error {
		r := &lethev1.Receipt{}
		if err := events.Decode(m, r, events.TypeReceipt); err != nil {
			return err
		}
		out <- r
		return nil
	})
	t.Cleanup(func() { cancel(); <-done; receipts.Close() })
	return rig{bus: b, receipts: out, logs: logs, reg: reg, signer: signer, blobs: blobs, dir: dir}
}

func duplicates(t *testing.T, reg *prometheus.Registry) float64 {
	t.Helper()
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	n := 0.0
	for _, mf := range mfs {
		for _, m := range mf.GetMetric() {
			for _, l := range m.GetLabel() {
				if mf.GetName() == "lethe_connector_tasks_total" && l.GetName() == "outcome" && l.GetValue() == "duplicate" {
					n += m.GetCounter().GetValue()
				}
			}
		}
	}
	return n
}

// The outcome labels are a contract with dashboards and alerts: every one
// exists, at zero, from the start, for both actions.
func TestMetricsOutcomeLabels(t *testing.T) {
	rg := run(t, &scripted{results: []func() (connector.Result, error){erased}})
	send(t, rg.bus, "sys", 1)
	receive(t, rg.receipts)
	mfs, err := rg.reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	got := map[string]bool{}
	for _, mf := range mfs {
		if mf.GetName() != "lethe_connector_tasks_total" {
			continue
		}
		for _, m := range mf.GetMetric() {
			var action, outcome string
			for _, l := range m.GetLabel() {
				switch l.GetName() {
				case "action":
					action = l.GetValue()
				case "outcome":
					outcome = l.GetValue()
				}
			}
			got[action+"/"+outcome] = true
		}
	}
	var want []string
	for _, a := range []string{"erase", "export", "sweep", "reapply"} {
		for _, o := range []string{"erased", "exported", "not_found", "retained", "failed", "duplicate"} {
			want = append(want, a+"/"+o)
		}
	}
	want = append(want, "restrict/restricted", "restrict/not_found", "restrict/failed", "restrict/duplicate",
		"lift/lifted", "lift/not_found", "lift/failed", "lift/duplicate")
	for _, w := range want {
		if !got[w] {
			t.Errorf("no series for %s", w)
		}
	}
	if len(got) != len(want) {
		t.Errorf("%d series, want %d: %v", len(got), len(want), got)
	}
}

func send(t *testing.T, b bus.Publisher, system string, attempt uint32) {
	t.Helper()
	task := &lethev1.Task{RequestId: "req_1", TaskId: "req_1." + system, System: system, Action: lethev1.Action_ACTION_ERASE,
		Tenant: "demo", Subject: &lethev1.Subject{Email: "person-0001@example.com"}, Deadline: timestamppb.Now(), Attempt: attempt}
	signTask(t, task)
	msg, err := events.TaskMessage(task, "test", time.Now())
	if err != nil {
		t.Fatal(err)
	}
	if err := b.Publish(context.Background(), events.TaskTopic(system), msg); err != nil {
		t.Fatal(err)
	}
}

func receive(t *testing.T, ch <-chan *lethev1.Receipt) *lethev1.Receipt {
	t.Helper()
	select {
	case r := <-ch:
		return r
	case <-time.After(10 * time.Second):
		t.Fatal("no receipt")
		return nil
	}
}

func TestSecondDeliveryAnswersTheSameReceipt(t *testing.T) {
	sys := &scripted{results: []func() (connector.Result, error){erased}}
	r := run(t, sys)
	b, receipts, logs, reg := r.bus, r.receipts, r.logs, r.reg
	send(t, b, "sys", 1)
	first := receive(t, receipts)
	if err := proof.VerifyReceipt(proof.KeySet{Keys: []proof.Key{r.signer.Key}}, first, time.Now()); err != nil {
		t.Fatalf("the receipt does not verify: %v", err)
	}
	if first.GetOutcome() != lethev1.Outcome_OUTCOME_ERASED || first.GetSystem() != "sys" || first.GetTaskId() != "req_1.sys" {
		t.Fatalf("receipt: %v", first)
	}
	if c := first.GetCounts(); len(c) != 2 || c[0].GetCategory() != "a" || c[1].GetCategory() != "b" {
		t.Fatalf("counts not sorted by category: %v", c)
	}
	send(t, b, "sys", 2) // a redelivery, as after a lost ack
	// The same receipt goes out again under the same message id, which the
	// broker drops as a duplicate: watch the connector's count instead.
	for end := time.Now().Add(10 * time.Second); duplicates(t, reg) < 1; time.Sleep(10 * time.Millisecond) {
		if time.Now().After(end) {
			t.Fatal("the second delivery was not answered from the stored receipt")
		}
	}
	if n := sys.count(); n != 1 {
		t.Fatalf("%d effects for one task", n)
	}
	logs.NoneOf(t, "person-0001@example.com")
}

// Two deliveries of one task taken at once (its attempts queued while the
// connector was down) run one effect: the second waits for the first and
// answers its receipt, not "not found" for what the first erased.
func TestDeliveriesOfOneTaskTakenTogether(t *testing.T) {
	slowErase := func() (connector.Result, error) {
		time.Sleep(300 * time.Millisecond) // long enough for both to be taken
		return erased()
	}
	notFound := func() (connector.Result, error) { return connector.Result{Outcome: connector.NotFound}, nil }
	sys := &scripted{results: []func() (connector.Result, error){slowErase, notFound}}
	r := run(t, sys)
	send(t, r.bus, "sys", 1)
	send(t, r.bus, "sys", 2)
	if got := receive(t, r.receipts); got.GetOutcome() != lethev1.Outcome_OUTCOME_ERASED {
		t.Fatalf("first answer %v", got.GetOutcome())
	}
	for end := time.Now().Add(10 * time.Second); duplicates(t, r.reg) < 1; time.Sleep(10 * time.Millisecond) {
		if time.Now().After(end) {
			t.Fatal("the second delivery was not answered from the stored receipt")
		}
	}
	if n := sys.count(); n != 1 {
		t.Fatalf("%d effects for one task", n)
	}
}

// failingPut is a receipt store that fails to store the first receipt, as
// a crash right after the effect would.
type failingPut struct {
	connector.ReceiptStore
	mu     sync.Mutex
	failed bool
}

func (f *failingPut) Put(ctx context.Context, r *lethev1.Receipt) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	if !f.failed {
		f.failed = true
		return errors.New("disk full")
	}
	return f.ReceiptStore.Put(ctx, r)
}

// An erasure interrupted after its effect answers "erased" when resumed,
// although the system now finds nothing.
func TestResumedErasureIsNotNotFound(t *testing.T) {
	notFound := func() (connector.Result, error) { return connector.Result{Outcome: connector.NotFound}, nil }
	sys := &scripted{results: []func() (connector.Result, error){erased, notFound}}
	rg := runWith(t, sys, func(s connector.ReceiptStore) connector.ReceiptStore { return &failingPut{ReceiptStore: s} })
	send(t, rg.bus, "sys", 1)
	r := receive(t, rg.receipts)
	if r.GetOutcome() != lethev1.Outcome_OUTCOME_ERASED || r.GetRemaining() != 0 {
		t.Fatalf("receipt after the resumed erasure: %v", r)
	}
	if n := sys.count(); n != 2 {
		t.Fatalf("%d calls, want the interrupted one and the resumed one", n)
	}
}

func TestRetryableFailureIsRetriedInProcess(t *testing.T) {
	flaky := func() (connector.Result, error) {
		return connector.Result{}, connector.Retryable(errors.New("database is locked"))
	}
	sys := &scripted{results: []func() (connector.Result, error){flaky, flaky, erased}}
	rg := run(t, sys)
	b, receipts := rg.bus, rg.receipts
	send(t, b, "sys", 1)
	if r := receive(t, receipts); r.GetOutcome() != lethev1.Outcome_OUTCOME_ERASED {
		t.Fatalf("receipt: %v", r)
	}
	if n := sys.count(); n != 3 {
		t.Fatalf("%d calls, want 3", n)
	}
}

func TestFailures(t *testing.T) {
	tests := []struct {
		name          string
		result        func() (connector.Result, error)
		wantRetryable bool
		wantDetail    string
	}{
		{"permanent", func() (connector.Result, error) { return connector.Result{}, errors.New("vendor said 401") }, false, "vendor said 401"},
		{"retryable, out of retries", func() (connector.Result, error) {
			return connector.Result{}, connector.Retryable(errors.New("vendor said 503"))
		}, true, "vendor said 503"},
		{"export records not grouped", func() (connector.Result, error) {
			return connector.Result{Outcome: connector.Exported, Export: []byte(`[{"plan":"basic"}]`)}, nil
		}, false, "not grouped by data category"},
		{"export file without a name", func() (connector.Result, error) {
			return connector.Result{Outcome: connector.Exported, Export: []byte(`{}`), Files: []connector.File{{Category: "recordings",
				Open: func(context.Context) (io.ReadCloser, error) { return io.NopCloser(strings.NewReader("x")), nil }}}}, nil
		}, false, "needs a name"},
		{"unknown outcome", func() (connector.Result, error) { return connector.Result{Outcome: "shredded"}, nil }, false, "unknown outcome"},
		{"outcome in capitals", func() (connector.Result, error) { return connector.Result{Outcome: "ERASED"}, nil }, false, "unknown outcome"},
		// A system fails with an error; a dead letter is the orchestrator's.
		{"failed is no answer", func() (connector.Result, error) { return connector.Result{Outcome: lifecycle.OutcomeFailed}, nil }, false, "unknown outcome"},
		{"dead letter is no answer", func() (connector.Result, error) { return connector.Result{Outcome: lifecycle.DeadLetter}, nil }, false, "unknown outcome"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			sys := &scripted{results: []func() (connector.Result, error){tt.result, erased}}
			if tt.name == "retryable, out of retries" {
				sys.results = sys.results[:1]
			}
			rg := run(t, sys)
			b, receipts := rg.bus, rg.receipts
			send(t, b, "sys", 1)
			r := receive(t, receipts)
			if r.GetOutcome() != lethev1.Outcome_OUTCOME_FAILED || r.GetRetryable() != tt.wantRetryable || !strings.Contains(r.GetDetail(), tt.wantDetail) {
				t.Fatalf("receipt: outcome %v retryable %v detail %q", r.GetOutcome(), r.GetRetryable(), r.GetDetail())
			}
			// A failure is not stored: the next attempt does the work.
			send(t, b, "sys", 2)
			if tt.name != "retryable, out of retries" {
				if r := receive(t, receipts); r.GetOutcome() != lethev1.Outcome_OUTCOME_ERASED {
					t.Fatalf("second attempt: %v", r)
				}
			}
		})
	}
}

// An export goes to the blob store, encrypted: the receipt carries each
// blob's reference, size and digest and the key, never the data; it is
// made again on a second delivery, in a folder of its own, and the
// connector keeps no copy.
func TestExportGoesToTheBlobStore(t *testing.T) {
	records := []byte(`{"account":{"profile":[{"email":"person-0001@example.com"}]}}`)
	video := bytes.Repeat([]byte("frame of person-0001@example.com "), 1<<15) // about 1 MiB
	exported := func() (connector.Result, error) {
		return connector.Result{Outcome: connector.Exported, Counts: map[string]int64{"profile": 1}, Export: records,
			Files: []connector.File{{Category: "recordings", Name: "talk.mp4", ContentType: "video/mp4",
				Open: func(context.Context) (io.ReadCloser, error) { return io.NopCloser(bytes.NewReader(video)), nil }}}}, nil
	}
	sys := &scripted{results: []func() (connector.Result, error){exported}}
	dir := t.TempDir()
	rg := runIn(t, dir, sys, nil)
	task := &lethev1.Task{RequestId: "req_3", TaskId: "req_3.sys", System: "sys", Action: lethev1.Action_ACTION_EXPORT, Attempt: 1,
		Subject: &lethev1.Subject{Email: "person-0001@example.com"}}
	var refs []string
	for attempt := uint32(1); attempt <= 2; attempt++ {
		task.Attempt = attempt
		signTask(t, task)
		msg, _ := events.TaskMessage(task, "test", time.Now())
		if err := rg.bus.Publish(context.Background(), events.TaskTopic("sys"), msg); err != nil {
			t.Fatal(err)
		}
		r := receive(t, rg.receipts)
		if r.GetOutcome() != lethev1.Outcome_OUTCOME_EXPORTED || len(r.GetExportFiles()) != 1 || len(r.GetExportKey()) != blob.KeySize {
			t.Fatalf("attempt %d: %v", attempt, r)
		}
		raw, _ := proto.Marshal(r)
		if bytes.Contains(raw, []byte("person-0001")) {
			t.Fatalf("attempt %d: the receipt carries the person's data", attempt)
		}
		if got := r.GetExportCategories(); !slices.Equal(got, []string{"account", "recordings"}) {
			t.Errorf("export categories %v", got)
		}
		keyed, err := blob.Encrypted(rg.blobs, r.GetExportKey())
		if err != nil {
			t.Fatal(err)
		}
		f := r.GetExportFiles()[0]
		for _, b := range []struct {
			ref  string
			size int64
			sum  []byte
			want []byte
		}{{r.GetExportRef(), r.GetExportSize(), r.GetExportSha256(), records}, {f.GetRef(), f.GetSize(), f.GetSha256(), video}} {
			if !strings.HasPrefix(b.ref, "req_3/sys/") {
				t.Errorf("blob %q is outside the request's folder", b.ref)
			}
			rc, err := keyed.Open(context.Background(), b.ref)
			if err != nil {
				t.Fatal(err)
			}
			got, err := io.ReadAll(rc)
			rc.Close()
			sum := sha256.Sum256(b.want)
			if err != nil || !bytes.Equal(got, b.want) || b.size != int64(len(b.want)) || !bytes.Equal(b.sum, sum[:]) {
				t.Errorf("blob %q: %d bytes (%v), size %d, digest %x", b.ref, len(got), err, b.size, b.sum)
			}
		}
		refs = append(refs, r.GetExportRef())
	}
	if refs[0] == refs[1] {
		t.Errorf("both attempts wrote %q: a second delivery overwrote the blobs of the first", refs[0])
	}
	if n := sys.count(); n != 2 {
		t.Fatalf("%d exports, want one per delivery", n)
	}
	if found := piitest.FilesHolding(t, dir, "person-0001@example.com"); len(found) > 0 {
		t.Fatalf("files hold the exported data in the clear: %v", found)
	}
}

func TestTaskForAnotherSystemIsDropped(t *testing.T) {
	sys := &scripted{results: []func() (connector.Result, error){erased}}
	rg := run(t, sys)
	b, receipts := rg.bus, rg.receipts
	// Same topic, wrong system inside: published by a misconfigured producer.
	task := &lethev1.Task{RequestId: "req_2", TaskId: "req_2.other", System: "other", Action: lethev1.Action_ACTION_ERASE, Attempt: 1}
	signTask(t, task)
	msg, _ := events.TaskMessage(task, "test", time.Now())
	if err := b.Publish(context.Background(), events.TaskTopic("sys"), msg); err != nil {
		t.Fatal(err)
	}
	send(t, b, "sys", 1)
	if r := receive(t, receipts); r.GetTaskId() != "req_1.sys" {
		t.Fatalf("answered %v", r)
	}
	if n := sys.count(); n != 1 {
		t.Fatalf("%d effects", n)
	}
}

// A stored "retained until" answer stands until its date; a delivery after
// it is the deferred erasure, which runs and replaces the stored answer.
func TestRetainedAnswerStandsUntilItsDate(t *testing.T) {
	until := time.Date(2036, 3, 1, 0, 0, 0, 0, time.UTC)
	var mu sync.Mutex
	clock := until.AddDate(-10, 0, 0)
	now := func() time.Time { mu.Lock(); defer mu.Unlock(); return clock }
	retained := func() (connector.Result, error) {
		return connector.Result{Outcome: connector.Retained, LegalBasis: "Accounting law", RetainUntil: until, Counts: map[string]int64{"invoices": 2}, Remaining: 2}, nil
	}
	sys := &scripted{results: []func() (connector.Result, error){retained, erased}}
	r := runAt(t, t.TempDir(), sys, nil, now)
	send(t, r.bus, "sys", 1)
	if got := receive(t, r.receipts); got.GetOutcome() != lethev1.Outcome_OUTCOME_RETAINED || !got.GetRetainUntil().AsTime().Equal(until) {
		t.Fatalf("first answer %v, want retained until %v", got.GetOutcome(), until)
	}
	send(t, r.bus, "sys", 2) // before the date: the same answer, no effect
	for end := time.Now().Add(10 * time.Second); duplicates(t, r.reg) < 1; time.Sleep(10 * time.Millisecond) {
		if time.Now().After(end) {
			t.Fatal("a delivery before the retain-until date was not answered from the stored receipt")
		}
	}
	if n := sys.count(); n != 1 {
		t.Fatalf("%d effects before the retain-until date, want 1", n)
	}
	mu.Lock()
	clock = until.Add(time.Minute)
	mu.Unlock()
	send(t, r.bus, "sys", 3) // the deferred erasure
	if got := receive(t, r.receipts); got.GetOutcome() != lethev1.Outcome_OUTCOME_ERASED {
		t.Fatalf("answer after the retain-until date: %v, want erased", got.GetOutcome())
	}
	if n := sys.count(); n != 2 {
		t.Fatalf("%d effects, want 2 (the erasure and the deferred erasure)", n)
	}
	send(t, r.bus, "sys", 4) // and that answer is the one stored now
	for end := time.Now().Add(10 * time.Second); duplicates(t, r.reg) < 2; time.Sleep(10 * time.Millisecond) {
		if time.Now().After(end) {
			t.Fatal("the deferred erasure's answer was not stored")
		}
	}
	if n := sys.count(); n != 2 {
		t.Fatalf("%d effects after a redelivery, want 2", n)
	}
}

// orchestrator signs the tests' tasks; orchestratorKeys is its public key,
// which a connector checks tasks with.
var orchestrator, orchestratorKeys = func() (*proof.Signer, proof.KeySet) {
	s, err := proof.SignerFromSeed(strings.Repeat("07", 32), proof.RoleOrchestrator, time.Date(2000, 1, 1, 0, 0, 0, 0, time.UTC))
	if err != nil {
		panic(err)
	}
	var ks proof.KeySet
	ks.Add(s.Key)
	return s, ks
}()

func signTask(t *testing.T, task *lethev1.Task) {
	t.Helper()
	if err := proof.SignTask(orchestrator, task); err != nil {
		t.Fatal(err)
	}
}

// A task not signed by the orchestrator (bus credentials alone, a forged
// or changed task) is refused: nothing erased, no receipt, counted.
func TestForgedTaskRefused(t *testing.T) {
	sys := &scripted{results: []func() (connector.Result, error){erased, erased, erased}}
	rg := run(t, sys)
	forger, err := proof.SignerFromSeed(strings.Repeat("09", 32), proof.RoleOrchestrator, time.Now().Add(-time.Hour))
	if err != nil {
		t.Fatal(err)
	}
	tasks := map[string]func(*lethev1.Task){
		"unsigned":              func(*lethev1.Task) {},
		"another key":           func(x *lethev1.Task) { proof.SignTask(forger, x) },
		"changed after signing": func(x *lethev1.Task) { signTask(t, x); x.Subject.Email = "person-0009@example.com" },
	}
	i := 0
	for name, sign := range tasks {
		i++
		task := &lethev1.Task{RequestId: fmt.Sprintf("req_f%d", i), TaskId: fmt.Sprintf("req_f%d.sys", i), System: "sys", Action: lethev1.Action_ACTION_ERASE,
			Tenant: "demo", Subject: &lethev1.Subject{Email: "person-0001@example.com"}, Deadline: timestamppb.Now(), Attempt: 1}
		sign(task)
		msg, err := events.TaskMessage(task, "test", time.Now())
		if err != nil {
			t.Fatal(err)
		}
		if err := rg.bus.Publish(context.Background(), events.TaskTopic("sys"), msg); err != nil {
			t.Fatalf("%s: %v", name, err)
		}
	}
	deadline := time.Now().Add(10 * time.Second)
	for refused(t, rg) < 3 && time.Now().Before(deadline) {
		time.Sleep(20 * time.Millisecond)
	}
	if n := refused(t, rg); n != 3 {
		t.Fatalf("%v tasks refused, want 3", n)
	}
	if n := sys.count(); n != 0 {
		t.Fatalf("%d effects of forged tasks", n)
	}
	select {
	case r := <-rg.receipts:
		t.Fatalf("a forged task was answered: %v", r)
	case <-time.After(200 * time.Millisecond):
	}
	rg.logs.NoneOf(t, "person-0001@example.com", "person-0009@example.com")
}

// refused is the count of lethe_connector_tasks_refused_total.
func refused(t *testing.T, rg rig) float64 {
	t.Helper()
	mfs, err := rg.reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	n := 0.0
	for _, mf := range mfs {
		if mf.GetName() == "lethe_connector_tasks_refused_total" {
			for _, m := range mf.GetMetric() {
				n += m.GetCounter().GetValue()
			}
		}
	}
	return n
}

// The subject sealed to this connector's key is opened and acted on; one
// sealed to another connector's key is refused, nothing done.
func TestSealedSubjects(t *testing.T) {
	sys := &scripted{results: []func() (connector.Result, error){erased, erased}}
	dir := t.TempDir()
	rg := runIn(t, dir, sys, nil)
	ours, err := connector.SealingKey(dir)
	if err != nil {
		t.Fatal(err)
	}
	pub, err := proof.ReadPublicKey(filepath.Join(dir, "signing.key.pub"))
	if err != nil || len(pub.Seal) != 32 || [32]byte(pub.Seal) != *ours.Public {
		t.Fatalf("the public entry does not carry the sealing key: %v", err)
	}
	other, err := proof.LoadOrCreateSealKey(filepath.Join(t.TempDir(), "seal.key"))
	if err != nil {
		t.Fatal(err)
	}
	publish := func(id string, to *[32]byte) {
		sealed, err := proof.SealSubject(to, &lethev1.Subject{Email: "person-0001@example.com"})
		if err != nil {
			t.Fatal(err)
		}
		task := &lethev1.Task{RequestId: id, TaskId: id + ".sys", System: "sys", Action: lethev1.Action_ACTION_ERASE,
			Tenant: "demo", SealedSubject: sealed, Deadline: timestamppb.Now(), Attempt: 1}
		signTask(t, task)
		msg, err := events.TaskMessage(task, "test", time.Now())
		if err != nil {
			t.Fatal(err)
		}
		if strings.Contains(string(msg.Data), "person-0001") {
			t.Fatal("the task message carries the email in the clear")
		}
		if err := rg.bus.Publish(context.Background(), events.TaskTopic("sys"), msg); err != nil {
			t.Fatal(err)
		}
	}
	publish("req_s1", ours.Public)
	if r := receive(t, rg.receipts); r.GetTaskId() != "req_s1.sys" || r.GetOutcome() != lethev1.Outcome_OUTCOME_ERASED {
		t.Fatalf("sealed to us: %v", r)
	}
	if got := sys.lastSubject(); got != "person-0001@example.com" {
		t.Fatalf("the system was asked about %q", got)
	}
	publish("req_s2", other.Public)
	for end := time.Now().Add(10 * time.Second); refused(t, rg) < 1; time.Sleep(20 * time.Millisecond) {
		if time.Now().After(end) {
			t.Fatal("a subject sealed to another key was not refused")
		}
	}
	if n := sys.count(); n != 1 {
		t.Fatalf("%d effects, want only the one sealed to us", n)
	}
}
