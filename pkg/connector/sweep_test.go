package connector_test

import (
	"context"
	"sync"
	"testing"
	"time"

	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/lethe-dev/lethe/pkg/connector"
	"github.com/lethe-dev/lethe/pkg/events"
	lethev1 "github.com/lethe-dev/lethe/pkg/gen/lethe/v1"
)

// sweeper is a scripted system that also applies sweeps, deleting one
// record per category per real sweep.
type sweeper struct {
	scripted
	mu     sync.Mutex
	sweeps []connector.SweepTask
}

func (s *sweeper) Sweep(_ context.Context, t connector.SweepTask) (connector.Result, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.sweeps = append(s.sweeps, t)
	counts := map[string]int64{}
	for _, c := range t.Categories {
		counts[c] = 1
	}
	return connector.Result{Outcome: connector.Erased, Counts: counts}, nil
}

func (s *sweeper) seen() []connector.SweepTask {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]connector.SweepTask(nil), s.sweeps...)
}

func sendSweep(t *testing.T, rg rig, run string, attempt uint32, dry bool) {
	t.Helper()
	task := &lethev1.Task{RequestId: run, TaskId: run + ".sys", System: "sys", Action: lethev1.Action_ACTION_SWEEP,
		Tenant: "demo", Deadline: timestamppb.Now(), Attempt: attempt,
		Sweep: &lethev1.Sweep{Policy: "audience_measurement", Categories: []string{"connection", "navigation"}, Clock: connector.ClockRecord,
			Cutoff: timestamppb.New(time.Date(2025, 10, 1, 0, 0, 0, 0, time.UTC)), DryRun: dry}}
	signTask(t, task)
	msg, err := events.TaskMessage(task, "test", time.Now())
	if err != nil {
		t.Fatal(err)
	}
	if msg.Type != events.TypeTaskSweep {
		t.Fatalf("a sweep task travels as %q", msg.Type)
	}
	if err := rg.bus.Publish(context.Background(), events.TaskTopic("sys"), msg); err != nil {
		t.Fatal(err)
	}
}

// A sweep reaches the system as the task said, and its receipt echoes
// the sweep with the counts; a second delivery of a real sweep answers
// the stored receipt, while a dry run, which changed nothing, runs again.
func TestSweep(t *testing.T) {
	for _, tt := range []struct {
		name   string
		dry    bool
		sweeps int // the system's sweeps after two deliveries
	}{{"real", false, 1}, {"dry run", true, 2}} {
		t.Run(tt.name, func(t *testing.T) {
			sys := &sweeper{}
			rg := run(t, sys)
			for attempt := uint32(1); attempt <= 2; attempt++ {
				sendSweep(t, rg, "run_1", attempt, tt.dry)
				if attempt == 2 && !tt.dry {
					// The stored receipt again, under its first id: the
					// broker drops it as a duplicate; the counter shows it.
					for end := time.Now().Add(10 * time.Second); duplicates(t, rg.reg) < 1; time.Sleep(10 * time.Millisecond) {
						if time.Now().After(end) {
							t.Fatal("the second delivery was not answered from the stored receipt")
						}
					}
					continue
				}
				r := receive(t, rg.receipts)
				if r.GetOutcome() != lethev1.Outcome_OUTCOME_ERASED || r.GetAction() != lethev1.Action_ACTION_SWEEP ||
					r.GetSweep().GetPolicy() != "audience_measurement" || r.GetSweep().GetDryRun() != tt.dry || len(r.GetCounts()) != 2 {
					t.Fatalf("delivery %d: receipt %v", attempt, r)
				}
			}
			got := sys.seen()
			if len(got) != tt.sweeps {
				t.Fatalf("%d sweeps after two deliveries, want %d", len(got), tt.sweeps)
			}
			want := connector.SweepTask{RunID: "run_1", TaskID: "run_1.sys", Tenant: "demo", Policy: "audience_measurement",
				Categories: []string{"connection", "navigation"}, Clock: connector.ClockRecord,
				Cutoff: time.Date(2025, 10, 1, 0, 0, 0, 0, time.UTC), DryRun: tt.dry}
			if g := got[0]; g.RunID != want.RunID || g.TaskID != want.TaskID || g.Tenant != want.Tenant || g.Policy != want.Policy ||
				len(g.Categories) != 2 || g.Clock != want.Clock || !g.Cutoff.Equal(want.Cutoff) || g.DryRun != want.DryRun {
				t.Errorf("the system got %+v, want %+v", g, want)
			}
		})
	}
}

// A system that does not sweep answers "failed", for good: its policy is
// wrong, and no retry will change that.
func TestSweepUnsupported(t *testing.T) {
	rg := run(t, &scripted{results: []func() (connector.Result, error){erased}})
	sendSweep(t, rg, "run_2", 1, false)
	r := receive(t, rg.receipts)
	if r.GetOutcome() != lethev1.Outcome_OUTCOME_FAILED || r.GetRetryable() {
		t.Fatalf("receipt: %v", r)
	}
}

// An erasure limited to categories reaches only a system that can erase
// by category; any other answers "failed", for good, having erased nothing.
func TestLimitedErasureNeedsACategoryEraser(t *testing.T) {
	sys := &scripted{results: []func() (connector.Result, error){erased}}
	rg := run(t, sys)
	task := &lethev1.Task{RequestId: "req_9", TaskId: "req_9.sys", System: "sys", Action: lethev1.Action_ACTION_ERASE,
		Tenant: "demo", Subject: &lethev1.Subject{Email: "person-0001@example.com"}, Deadline: timestamppb.Now(), Attempt: 1,
		Categories: []string{"prospecting"}}
	signTask(t, task)
	msg, _ := events.TaskMessage(task, "test", time.Now())
	if err := rg.bus.Publish(context.Background(), events.TaskTopic("sys"), msg); err != nil {
		t.Fatal(err)
	}
	r := receive(t, rg.receipts)
	if r.GetOutcome() != lethev1.Outcome_OUTCOME_FAILED || r.GetRetryable() || sys.count() != 0 {
		t.Fatalf("receipt %v after %d erasures, want failed for good and none", r, sys.count())
	}
}
