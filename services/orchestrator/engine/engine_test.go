package engine_test

import (
	"context"
	"errors"
	"maps"
	"path/filepath"
	"slices"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/timestamppb"

	lethev1 "github.com/lethe-dev/lethe/pkg/gen/lethe/v1"
	"github.com/lethe-dev/lethe/pkg/lifecycle"
	"github.com/lethe-dev/lethe/pkg/piitest"
	"github.com/lethe-dev/lethe/pkg/proof"
	"github.com/lethe-dev/lethe/services/orchestrator/engine"
	"github.com/lethe-dev/lethe/services/orchestrator/metrics"
	"github.com/lethe-dev/lethe/services/orchestrator/outbox"
	"github.com/lethe-dev/lethe/services/orchestrator/store"
)

var errCommit = errors.New("commit failed (injected)")

// failingCommits is the real SQLite store whose transactions, while fail
// is set, run to their end and are then rolled back as a failed commit
// would leave them.
type failingCommits struct {
	store.Store
	fail   atomic.Bool
	during func()
}

func (f *failingCommits) Tx(ctx context.Context, fn func(store.Tx) error) error {
	return f.Store.Tx(ctx, func(tx store.Tx) error {
		if err := fn(tx); err != nil {
			return err
		}
		if f.fail.Load() {
			return errCommit
		}
		return nil
	})
}

// View runs during, when set, once inside the next view after its reads:
// a change committed while the view runs.
func (f *failingCommits) View(ctx context.Context, fn func(store.Tx) error) error {
	return f.Store.View(ctx, func(tx store.Tx) error {
		if err := fn(tx); err != nil {
			return err
		}
		if d := f.during; d != nil {
			f.during = nil
			d()
		}
		return nil
	})
}

type keys proof.KeySet

func (k keys) KeySet() proof.KeySet { return proof.KeySet(k) }

type fixture struct {
	eng     *engine.Engine
	st      *failingCommits
	m       *metrics.Metrics
	logs    *piitest.Capture
	alpha   *proof.Signer
	relay   outbox.Signal
	certify outbox.Signal
	now     time.Time
	system  string
}

func newFixture(t *testing.T) *fixture {
	t.Helper()
	dir := t.TempDir()
	sqlite, err := store.OpenSQLite(filepath.Join(dir, "lethe.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { sqlite.Close() })
	now := time.Date(2026, 3, 2, 9, 0, 0, 0, time.UTC)
	own, err := proof.LoadSigner(filepath.Join(dir, "orchestrator.key"), proof.RoleOrchestrator, now.Add(-time.Hour))
	if err != nil {
		t.Fatal(err)
	}
	alpha, err := proof.LoadSigner(filepath.Join(dir, "alpha.key"), "alpha", now.Add(-time.Hour))
	if err != nil {
		t.Fatal(err)
	}
	seal, err := proof.LoadOrCreateSealKey(filepath.Join(dir, "alpha.seal"))
	if err != nil {
		t.Fatal(err)
	}
	ownSeal, err := proof.LoadOrCreateSealKey(filepath.Join(dir, "orchestrator.seal"))
	if err != nil {
		t.Fatal(err)
	}
	alphaKey := alpha.Key
	alphaKey.Seal = seal.Public[:] // the tasks' subjects are sealed to it
	var ks proof.KeySet
	ks.Add(own.Key, alphaKey)
	f := &fixture{st: &failingCommits{Store: sqlite}, logs: &piitest.Capture{}, alpha: alpha, relay: outbox.NewSignal(), certify: outbox.NewSignal(), now: now, system: "alpha"}
	f.m = metrics.New(prometheus.NewRegistry(), sqlite, []string{"alpha"}, nil, []string{proof.ChannelBus}, func() time.Time { return now }, -1)
	f.eng = engine.New(engine.Config{
		Store: f.st, Systems: []string{"alpha"}, MaxAttempts: 1, RetryInitial: time.Minute, RetryMax: time.Hour, Objective: 7 * 24 * time.Hour,
		NoticeChannels: []string{proof.ChannelBus}, HashKey: []byte("0123456789abcdef0123456789abcdef"), Signer: own, SealKey: ownSeal, Keys: keys(ks),
		Relay: f.relay, Notifier: outbox.NewSignal(), Certifier: f.certify, Metrics: f.m, Logger: f.logs.Logger(), Now: func() time.Time { return now },
	})
	return f
}

// failure is alpha's signed, final failure of a request's first attempt.
func (f *fixture) failure(t *testing.T, requestID string) (*lethev1.Receipt, []byte) {
	t.Helper()
	rc := &lethev1.Receipt{RequestId: requestID, TaskId: requestID + ".alpha", System: "alpha", Action: lethev1.Action_ACTION_ERASE,
		Outcome: lifecycle.OutcomeFailed.Proto(), Detail: "disk full", Attempt: 1, ConnectorTime: timestamppb.New(f.now)}
	if err := proof.SignReceipt(f.alpha, rc); err != nil {
		t.Fatal(err)
	}
	raw, err := proto.Marshal(rc)
	if err != nil {
		t.Fatal(err)
	}
	return rc, raw
}

// A transaction that does not commit changes nothing the world can see:
// no metric counts it, no log line reports it, no loop is woken. Once it
// commits, everything follows.
func TestEffectsFollowTheCommit(t *testing.T) {
	f := newFixture(t)
	ctx := t.Context()
	r, _, err := f.eng.Submit(ctx, engine.NewRequest{Type: lifecycle.Erasure, Tenant: "demo", Email: "person-0042@example.com",
		Verified: true, Source: engine.SourceAPI})
	if err != nil {
		t.Fatal(err)
	}
	<-f.relay // the submission woke the relay
	rc, raw := f.failure(t, r.ID)
	counted := func() float64 {
		return testutil.ToFloat64(f.m.DeadLetters.WithLabelValues("alpha")) + testutil.ToFloat64(f.m.Failed.WithLabelValues("alpha")) +
			testutil.ToFloat64(f.m.Ended.WithLabelValues("erasure", "failed"))
	}

	f.st.fail.Store(true)
	if err := f.eng.RecordReceipt(ctx, rc, raw); !errors.Is(err, errCommit) {
		t.Fatalf("RecordReceipt = %v, want the commit's failure", err)
	}
	if n := counted(); n != 0 {
		t.Errorf("a rolled-back dead letter counted %v in the metrics", n)
	}
	for _, line := range []string{"task dead-lettered", "request completed"} {
		if strings.Contains(f.logs.String(), line) {
			t.Errorf("a rolled-back transaction logged %q", line)
		}
	}
	select {
	case <-f.relay:
		t.Error("a rolled-back transaction woke the relay")
	case <-f.certify:
		t.Error("a rolled-back transaction woke the certifier")
	default:
	}
	if got, _, err := f.st.Get(ctx, r.ID); err != nil || got.State != lifecycle.Open {
		t.Fatalf("after the failed commit the request is %v (%v), want open", got.State, err)
	}

	f.st.fail.Store(false)
	if err := f.eng.RecordReceipt(ctx, rc, raw); err != nil {
		t.Fatal(err)
	}
	if n := counted(); n != 3 {
		t.Errorf("the committed dead letter counted %v (failure, dead letter, end), want 3", n)
	}
	for _, line := range []string{"task dead-lettered", "request completed"} {
		if !strings.Contains(f.logs.String(), line) {
			t.Errorf("the committed transaction did not log %q", line)
		}
	}
	if got, _, _ := f.st.Get(ctx, r.ID); got.State != lifecycle.Failed {
		t.Errorf("request is %s, want failed", got.State)
	}
	f.logs.NoneOf(t, "person-0042@example.com")
}

// Validate refuses what no request can be, and never repeats the
// subject's identifiers in its message.
func TestValidate(t *testing.T) {
	good := engine.NewRequest{Type: lifecycle.Erasure, Tenant: "demo", Email: "person-0001@example.com"}
	tests := []struct {
		name   string
		change func(*engine.NewRequest)
		want   string
	}{
		{"good", func(*engine.NewRequest) {}, ""},
		{"unknown type", func(r *engine.NewRequest) { r.Type = "delete" }, "type must be"},
		{"no tenant", func(r *engine.NewRequest) { r.Tenant = "" }, "tenant is required"},
		{"bad tenant", func(r *engine.NewRequest) { r.Tenant = "Acme Corp" }, "tenant must be"},
		{"no email", func(r *engine.NewRequest) { r.Email = "" }, "subject.email is required"},
		{"bad email", func(r *engine.NewRequest) { r.Email = "person-0001@localhost" }, "not a valid email"},
		{"named email", func(r *engine.NewRequest) { r.Email = "Person <person-0001@example.com>" }, "not a valid email"},
		{"bad user id", func(r *engine.NewRequest) { r.UserID = "user 0001" }, "subject.user_id"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			nr := good
			tt.change(&nr)
			err := engine.Validate(nr)
			switch {
			case tt.want == "" && err != nil:
				t.Fatalf("refused: %v", err)
			case tt.want != "" && (err == nil || !strings.Contains(err.Error(), tt.want)):
				t.Fatalf("Validate = %v, want %q", err, tt.want)
			case err != nil && (strings.Contains(err.Error(), "person-0001") || strings.Contains(err.Error(), "user 0001")):
				t.Fatalf("the message repeats the subject: %v", err)
			}
		})
	}
}

// rowWrites counts the request and task rows a transaction writes, by
// statement, through the real store.
type rowWrites struct {
	store.Store
	counts map[string]int
}

func (w *rowWrites) Tx(ctx context.Context, fn func(store.Tx) error) error {
	return w.Store.Tx(ctx, func(tx store.Tx) error { return fn(countingTx{tx, w.counts}) })
}

type countingTx struct {
	store.Tx
	counts map[string]int
}

func (c countingTx) InsertRequest(ctx context.Context, r *store.Request) error {
	c.counts["insert request"]++
	return c.Tx.InsertRequest(ctx, r)
}

func (c countingTx) UpdateRequest(ctx context.Context, r *store.Request) error {
	c.counts["update request"]++
	return c.Tx.UpdateRequest(ctx, r)
}

func (c countingTx) InsertTask(ctx context.Context, k *store.Task) error {
	c.counts["insert task"]++
	return c.Tx.InsertTask(ctx, k)
}

func (c countingTx) UpdateTask(ctx context.Context, k *store.Task) error {
	c.counts["update task"]++
	return c.Tx.UpdateTask(ctx, k)
}

// A verified submission stores its request open and its task with the
// first attempt, each row written once (the store's one writer is the
// pipeline's bound); one verified later is updated, as it must be. Both
// end the same, and log the same story in the same order.
func TestSubmissionWritesEachRowOnce(t *testing.T) {
	for _, tc := range []struct {
		name     string
		verified bool
		want     map[string]int
	}{
		{"verified by the submitter", true, map[string]int{"insert request": 1, "insert task": 1}},
		{"verified afterwards", false, map[string]int{"insert request": 1, "insert task": 1, "update request": 1, "update task": 1}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f := newFixture(t)
			ctx := t.Context()
			w := &rowWrites{Store: f.st.Store, counts: map[string]int{}}
			f.st.Store = w
			r, _, err := f.eng.Submit(ctx, engine.NewRequest{Type: lifecycle.Erasure, Tenant: "demo", Email: "person-0042@example.com",
				Verified: tc.verified, Source: engine.SourceAPI})
			if err != nil {
				t.Fatal(err)
			}
			if !tc.verified {
				if _, err := f.eng.Verify(ctx, r.ID, engine.Decision{Method: "email_code", Actor: proof.Actor{ID: "dpo"}}); err != nil {
					t.Fatal(err)
				}
			}
			if !maps.Equal(w.counts, tc.want) {
				t.Errorf("rows written: %v, want %v", w.counts, tc.want)
			}
			got, tasks, err := f.st.Get(ctx, r.ID)
			if err != nil {
				t.Fatal(err)
			}
			if got.State != lifecycle.Open || len(tasks) != 1 || tasks[0].State != lifecycle.TaskPublished || tasks[0].Attempts != 1 {
				t.Fatalf("request %s, tasks %+v: want open, one task published at its first attempt", got.State, tasks)
			}
			var events []string
			if err := f.st.View(ctx, func(tx store.Tx) error {
				recs, err := tx.RequestLog(ctx, r.ID)
				for _, rec := range recs {
					ev, _ := proof.EntryEvent(rec.Data)
					events = append(events, ev)
				}
				return err
			}); err != nil {
				t.Fatal(err)
			}
			if want := []string{proof.EventCreated, proof.EventVerified, proof.EventTaskPublished}; !slices.Equal(events, want) {
				t.Errorf("logged %v, want %v", events, want)
			}
		})
	}
}
