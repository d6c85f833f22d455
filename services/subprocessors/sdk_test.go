package subprocessors

import (
	"context"
	"path/filepath"
	"testing"
	"time"

	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/lethe-dev/lethe/pkg/bus"
	"github.com/lethe-dev/lethe/pkg/bus/natsbus"
	"github.com/lethe-dev/lethe/pkg/connector"
	"github.com/lethe-dev/lethe/pkg/events"
	lethev1 "github.com/lethe-dev/lethe/pkg/gen/lethe/v1"
	"github.com/lethe-dev/lethe/pkg/proof"
	"github.com/lethe-dev/lethe/services/subprocessors/standin"
)

// Through the SDK and a real bus: a vendor's two 503s are retried with
// backoff inside one delivery, and the task ends in one "erased" receipt.
func TestSDKRetriesVendorFailure(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	srv, err := natsbus.StartEmbedded(t.TempDir(), "127.0.0.1", -1, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer srv.Shutdown()
	b, err := natsbus.Connect(ctx, srv.URL(), natsbus.Config{})
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	receipts, err := connector.OpenReceipts(filepath.Join(t.TempDir(), "receipts.db"))
	if err != nil {
		t.Fatal(err)
	}
	defer receipts.Close()
	signer, err := connector.SigningKey(t.TempDir(), Name)
	if err != nil {
		t.Fatal(err)
	}

	sys, vendors := demo(t, 20)
	vendors.FailNext(standin.SupportDesk, 2)
	// The orchestrator whose signed tasks the connector takes.
	orchestrator, err := proof.LoadOrCreateSigner(filepath.Join(t.TempDir(), "signing.key"), proof.RoleOrchestrator, time.Now().Add(-time.Hour))
	if err != nil {
		t.Fatal(err)
	}
	var taskKeys proof.KeySet
	taskKeys.Add(orchestrator.Key)
	run, stop := context.WithCancel(ctx)
	done := make(chan error, 2)
	go func() {
		done <- connector.Run(run, connector.Config{System: Name, Bus: b, Receipts: receipts, Signer: signer, TaskKeys: taskKeys, RetryInitial: 10 * time.Millisecond}, sys)
	}()
	got := make(chan *lethev1.Receipt, 4)
	go func() {
		done <- b.Consume(run, events.TopicReceipts, "test", func(_ context.Context, msg *bus.Message) error {
			r := &lethev1.Receipt{}
			if err := events.Decode(msg, r, events.TypeReceipt); err != nil {
				return err
			}
			got <- r
			return nil
		})
	}()
	task := &lethev1.Task{
		RequestId: "req-sdk", TaskId: events.TaskID("req-sdk", Name), System: Name, Action: lethev1.Action_ACTION_ERASE,
		Tenant: "demo", Subject: &lethev1.Subject{Email: person(4).Email}, Deadline: timestamppb.New(time.Now().Add(720 * time.Hour)), Attempt: 1,
	}
	if err := proof.SignTask(orchestrator, task); err != nil {
		t.Fatal(err)
	}
	msg, err := events.TaskMessage(task, "test", time.Now())
	if err != nil {
		t.Fatal(err)
	}
	if err := b.Publish(ctx, events.TaskTopic(Name), msg); err != nil {
		t.Fatal(err)
	}
	select {
	case r := <-got:
		if r.GetOutcome() != lethev1.Outcome_OUTCOME_ERASED || len(r.GetCounts()) != 4 || r.GetRemaining() != 0 {
			t.Fatalf("receipt: %v", r)
		}
	case <-ctx.Done():
		t.Fatal("no receipt")
	}
	if n := vendors.Deletions(standin.SupportDesk); n != 3 {
		t.Errorf("support_desk got %d deletion calls, want 3", n)
	}
	if n := vendors.Deletions(standin.Enrichment); n != 1 {
		t.Errorf("enrichment got %d deletion calls, want 1 (confirmed vendors are not called again)", n)
	}
	stop()
	for range 2 {
		if err := <-done; err != nil {
			t.Error(err)
		}
	}
}
