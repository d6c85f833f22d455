package emailanalytics

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/lethe-dev/lethe/pkg/bus"
	"github.com/lethe-dev/lethe/pkg/bus/natsbus"
	"github.com/lethe-dev/lethe/pkg/connector"
	"github.com/lethe-dev/lethe/pkg/dataset"
	"github.com/lethe-dev/lethe/pkg/events"
	lethev1 "github.com/lethe-dev/lethe/pkg/gen/lethe/v1"
	"github.com/lethe-dev/lethe/pkg/piitest"
	"github.com/lethe-dev/lethe/pkg/proof"
	"github.com/lethe-dev/lethe/pkg/pseudonym"
)

// subjectKey stands for the orchestrator's subject hash key, which the
// suppression list hashes identifiers with.
var subjectKey = []byte(strings.Repeat("5e", 32))

// orchestrator signs the tests' tasks; orchestratorKeys is its public key,
// which the connector checks them with.
var orchestrator, orchestratorKeys = func() (*proof.Signer, proof.KeySet) {
	s, err := proof.SignerFromSeed(strings.Repeat("07", 32), proof.RoleOrchestrator, time.Date(2000, 1, 1, 0, 0, 0, 0, time.UTC))
	if err != nil {
		panic(err)
	}
	var ks proof.KeySet
	ks.Add(s.Key)
	return s, ks
}()

// rig is the system with the connector SDK running over it as the devstack
// and the connector binary run it: Open and connector.Start on one env, so
// that both keep their files in one data directory and the SDK writes the
// suppression list the system reads (two handles on one file).
type rig struct {
	*System
	dir      string
	bus      *natsbus.Bus
	receipts chan *lethev1.Receipt
	logs     *piitest.Capture
	sent     int
}

// openWithSDK opens the system seeded with 20 people and starts the SDK
// over it on an embedded NATS server.
func openWithSDK(t *testing.T) *rig {
	t.Helper()
	t.Setenv(pseudonym.KeyEnv, "")
	ctx := context.Background()
	srv, err := natsbus.StartEmbedded(t.TempDir(), "127.0.0.1", -1, nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(srv.Shutdown)
	b, err := natsbus.Connect(ctx, srv.URL(), natsbus.Config{RetryDelay: 20 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { b.Close() })
	r := &rig{dir: t.TempDir(), bus: b, receipts: make(chan *lethev1.Receipt, 16), logs: &piitest.Capture{}}
	env := connector.Env{DataDir: r.dir, Bus: b, Logger: r.logs.Logger(), TaskKeys: orchestratorKeys, SubjectKey: subjectKey}
	if r.System, err = Open(ctx, env); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { r.System.Close() })
	if r.sup == nil {
		t.Fatal("a subject key was given, and the system opened no suppression list")
	}
	if err := r.Seed(ctx, 20); err != nil {
		t.Fatal(err)
	}
	run, stop := context.WithCancel(ctx)
	done := make(chan error, 2)
	go func() { done <- connector.Start(run, Name, env, r.System) }()
	go func() {
		done <- b.Consume(run, events.TopicReceipts, "test", func(_ context.Context, m *bus.Message) error {
			rc := &lethev1.Receipt{}
			if err := events.Decode(m, rc, events.TypeReceipt); err != nil {
				return err
			}
			r.receipts <- rc
			return nil
		})
	}()
	t.Cleanup(func() {
		stop()
		for range 2 {
			if err := <-done; err != nil && !errors.Is(err, context.Canceled) {
				t.Error(err)
			}
		}
	})
	// One task answered, so that Start has made its files (keys, receipts)
	// before the test looks at the folder: the lift of a restriction that
	// never was, which changes nothing.
	if rc := r.do(t, &lethev1.Task{RequestId: "req_ready", Action: lethev1.Action_ACTION_LIFT, RestrictionId: "req_none",
		Subject: &lethev1.Subject{Email: dataset.DemoEmail(15)}}); rc.GetOutcome() != lethev1.Outcome_OUTCOME_NOT_FOUND {
		t.Fatalf("the first task's receipt: %v", rc)
	}
	return r
}

// do sends task to the connector, signed by the orchestrator, and returns
// its receipt.
func (r *rig) do(t *testing.T, task *lethev1.Task) *lethev1.Receipt {
	t.Helper()
	r.sent++
	if task.RequestId == "" {
		task.RequestId = fmt.Sprintf("req_%d", r.sent)
	}
	if task.Tenant == "" {
		task.Tenant = "demo"
	}
	task.TaskId, task.System, task.Attempt = events.TaskID(task.RequestId, Name), Name, 1
	task.Deadline = timestamppb.New(time.Now().Add(720 * time.Hour))
	if err := proof.SignTask(orchestrator, task); err != nil {
		t.Fatal(err)
	}
	msg, err := events.TaskMessage(task, "test", time.Now())
	if err != nil {
		t.Fatal(err)
	}
	if err := r.bus.Publish(context.Background(), events.TaskTopic(Name), msg); err != nil {
		t.Fatal(err)
	}
	timeout := time.After(10 * time.Second)
	for {
		select {
		case rc := <-r.receipts:
			if rc.GetTaskId() == task.TaskId {
				return rc
			}
		case <-timeout:
			t.Fatalf("no receipt for %s", task.TaskId)
			return nil
		}
	}
}

// erase erases email through the SDK (of categories only, if any: a
// consent withdrawal or an objection) and returns the receipt.
func (r *rig) erase(t *testing.T, email string, categories ...string) *lethev1.Receipt {
	t.Helper()
	rc := r.do(t, &lethev1.Task{Action: lethev1.Action_ACTION_ERASE, Subject: &lethev1.Subject{Email: email}, Categories: categories})
	if o := rc.GetOutcome(); o != lethev1.Outcome_OUTCOME_ERASED && o != lethev1.Outcome_OUTCOME_NOT_FOUND {
		t.Fatalf("erasure receipt: %v", rc)
	}
	return rc
}

// listed asks the connector's suppression list about email in tenant
// "demo", through a handle of its own on the file: what the SDK wrote
// there, whatever the system holds in memory.
func (r *rig) listed(t *testing.T, email, category string) connector.Verdict {
	t.Helper()
	sup, err := connector.OpenSuppressions(r.dir, subjectKey)
	if err != nil {
		t.Fatal(err)
	}
	defer sup.Close()
	v, err := sup.Check(context.Background(), "demo", connector.Email(email), category)
	if err != nil {
		t.Fatal(err)
	}
	return v
}
