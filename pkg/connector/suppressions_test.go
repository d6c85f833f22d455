package connector_test

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/lethe-dev/lethe/pkg/connector"
	"github.com/lethe-dev/lethe/pkg/events"
	lethev1 "github.com/lethe-dev/lethe/pkg/gen/lethe/v1"
	"github.com/lethe-dev/lethe/pkg/lifecycle"
)

var subjectKey = []byte("0123456789abcdef0123456789abcdef")

// restricter is a scripted system that also counts what a restriction
// covers.
type restricter struct{ scripted }

func (r *restricter) Restrict(_ context.Context, t connector.Task) (connector.Result, error) {
	return r.next(t)
}

// byCategory is a scripted system that erases by data category.
type byCategory struct{ scripted }

func (*byCategory) ErasesByCategory() {}

// runListed runs the SDK over sys with a suppression list in dir.
func runListed(t *testing.T, sys connector.System) (rig, *connector.Suppressions) {
	t.Helper()
	dir := t.TempDir()
	list, err := connector.OpenSuppressions(dir, subjectKey)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { list.Close() })
	rg := runAt(t, dir, sys, nil, nil, func(c *connector.Config) { c.SubjectKey, c.Suppressions = subjectKey, list })
	return rg, list
}

func sendTask(t *testing.T, rg rig, task *lethev1.Task) *lethev1.Receipt {
	t.Helper()
	task.System, task.Tenant, task.Deadline = "sys", "demo", timestamppb.Now()
	if task.Attempt == 0 {
		task.Attempt = 1
	}
	signTask(t, task)
	msg, err := events.TaskMessage(task, "test", time.Now())
	if err != nil {
		t.Fatal(err)
	}
	if err := rg.bus.Publish(context.Background(), events.TaskTopic("sys"), msg); err != nil {
		t.Fatal(err)
	}
	return receive(t, rg.receipts)
}

func check(t *testing.T, list *connector.Suppressions, id connector.Identifier, category string) connector.Verdict {
	t.Helper()
	v, err := list.Check(context.Background(), "demo", id, category)
	if err != nil {
		t.Fatal(err)
	}
	return v
}

// What a host application's import and enrichment paths ask: after an
// erasure the person is refused everything, under either identifier;
// after a consent withdrawal, only the purposes' categories; nobody
// else is touched; the list names no one.
func TestSuppressionListFollowsErasures(t *testing.T) {
	sys := &byCategory{scripted{results: []func() (connector.Result, error){erased}}}
	rg, list := runListed(t, sys)
	const who, other = "Person-0001@Example.com", "person-0002@example.com"
	r := sendTask(t, rg, &lethev1.Task{RequestId: "req_1", TaskId: "req_1.sys", Action: lethev1.Action_ACTION_ERASE,
		Subject: &lethev1.Subject{Email: who, UserId: "u-1"}})
	if lifecycle.OutcomeOf(r.GetOutcome()) != lifecycle.Erased {
		t.Fatalf("erasure answered %v: %s", r.GetOutcome(), r.GetDetail())
	}
	r = sendTask(t, rg, &lethev1.Task{RequestId: "req_2", TaskId: "req_2.sys", Action: lethev1.Action_ACTION_ERASE,
		Subject: &lethev1.Subject{Email: other}, Categories: []string{"prospecting"}})
	if lifecycle.OutcomeOf(r.GetOutcome()) != lifecycle.Erased {
		t.Fatalf("withdrawal answered %v: %s", r.GetOutcome(), r.GetDetail())
	}
	for _, c := range []struct {
		name     string
		id       connector.Identifier
		category string
		want     bool
		reason   string
	}{
		{"erased, by email in another case", connector.Email(" person-0001@example.COM "), "", true, connector.SuppressedErased},
		{"erased, by user id", connector.UserID("u-1"), "engagement", true, connector.SuppressedErased},
		{"withdrawn purpose", connector.Email(other), "prospecting", true, connector.SuppressedPurpose},
		{"another purpose of the same person", connector.Email(other), "engagement", false, ""},
		{"the same person, any processing", connector.Email(other), "", false, ""},
		{"someone else", connector.Email("person-0003@example.com"), "prospecting", false, ""},
	} {
		t.Run(c.name, func(t *testing.T) {
			v := check(t, list, c.id, c.category)
			if v.Suppressed != c.want || (c.want && v.Reasons[0] != c.reason) {
				t.Errorf("verdict %+v, want suppressed=%v (%s)", v, c.want, c.reason)
			}
		})
	}
	if _, err := list.Check(context.Background(), "demo", connector.Email(" "), ""); err == nil {
		t.Error("an empty identifier was answered")
	}
	raw, err := os.ReadFile(filepath.Join(rg.dir, connector.SuppressionsFile))
	if err != nil {
		t.Fatal(err)
	}
	for _, pii := range []string{"person-0001", "person-0002", "u-1"} {
		if strings.Contains(strings.ToLower(string(raw)), pii) {
			t.Errorf("the suppression list holds %q in clear", pii)
		}
	}
}

// A restriction marks the person (kept, not processed) in a system that
// counts what it covers and in one that does not; its lift clears the
// marks of that restriction only, once: a second lift finds nothing.
func TestRestrictionThenLift(t *testing.T) {
	counted := func() (connector.Result, error) {
		return connector.Result{Outcome: connector.Restricted, Counts: map[string]int64{"profile": 1}, Remaining: 1}, nil
	}
	for name, sys := range map[string]connector.System{
		"counts":        &restricter{scripted{results: []func() (connector.Result, error){counted}}},
		"does not know": &scripted{results: []func() (connector.Result, error){erased}},
	} {
		t.Run(name, func(t *testing.T) {
			rg, list := runListed(t, sys)
			who := connector.Email("person-0001@example.com")
			for _, id := range []string{"req_r1", "req_r2"} { // two restrictions of the same person
				r := sendTask(t, rg, &lethev1.Task{RequestId: id, TaskId: id + ".sys", Action: lethev1.Action_ACTION_RESTRICT,
					Subject: &lethev1.Subject{Email: "person-0001@example.com"}})
				if lifecycle.OutcomeOf(r.GetOutcome()) != lifecycle.Restricted {
					t.Fatalf("restriction answered %v: %s", r.GetOutcome(), r.GetDetail())
				}
			}
			if v := check(t, list, who, "engagement"); !v.Suppressed || v.Reasons[0] != connector.SuppressedRestricted {
				t.Fatalf("a restricted person is not refused: %+v", v)
			}
			lift := func(id string) *lethev1.Receipt {
				return sendTask(t, rg, &lethev1.Task{RequestId: id, TaskId: id + ".sys", Action: lethev1.Action_ACTION_LIFT, RestrictionId: "req_r1"})
			}
			r := lift("req_l1")
			if lifecycle.OutcomeOf(r.GetOutcome()) != lifecycle.Lifted || r.GetRestrictionId() != "req_r1" {
				t.Fatalf("lift answered %v for %q: %s", r.GetOutcome(), r.GetRestrictionId(), r.GetDetail())
			}
			if v := check(t, list, who, ""); !v.Suppressed {
				t.Fatal("the lift of one restriction lifted the other too")
			}
			if r := lift("req_l2"); lifecycle.OutcomeOf(r.GetOutcome()) != lifecycle.NotFound {
				t.Fatalf("a second lift of the same restriction answered %v", r.GetOutcome())
			}
		})
	}
}

// A system that answers a restriction "erased" has not restricted: the
// SDK answers failed rather than sign it.
func TestRestrictionAnsweredErasedFails(t *testing.T) {
	rg, _ := runListed(t, &restricter{scripted{results: []func() (connector.Result, error){erased}}})
	r := sendTask(t, rg, &lethev1.Task{RequestId: "req_r", TaskId: "req_r.sys", Action: lethev1.Action_ACTION_RESTRICT,
		Subject: &lethev1.Subject{Email: "person-0001@example.com"}})
	if lifecycle.OutcomeOf(r.GetOutcome()) != lifecycle.OutcomeFailed {
		t.Fatalf("answered %v", r.GetOutcome())
	}
}

// Without a suppression list there is nowhere to mark a restriction: it
// fails, and says why.
func TestRestrictionWithoutList(t *testing.T) {
	rg := run(t, &scripted{results: []func() (connector.Result, error){erased}})
	r := sendTask(t, rg, &lethev1.Task{RequestId: "req_r", TaskId: "req_r.sys", Action: lethev1.Action_ACTION_RESTRICT,
		Subject: &lethev1.Subject{Email: "person-0001@example.com"}})
	if lifecycle.OutcomeOf(r.GetOutcome()) != lifecycle.OutcomeFailed || !strings.Contains(r.GetDetail(), "suppression list") {
		t.Fatalf("answered %v: %s", r.GetOutcome(), r.GetDetail())
	}
}
