// Package connectortest is the conformance suite every connector's System
// passes, called from the connector's own tests:
//
//	func TestConformance(t *testing.T) {
//		connectortest.Run(t, func(t *testing.T) connectortest.Fixture { ... })
//	}
package connectortest

import (
	"context"
	"encoding/json"
	"errors"
	"testing"
	"time"

	"github.com/lethe-dev/lethe/pkg/connector"
)

// Fixture is a fresh system holding data of Present and none of Absent.
type Fixture struct {
	System  connector.System
	Present connector.Subject
	Absent  connector.Subject
	// Remaining counts the records of s still in the system, looking at the
	// system directly rather than through the connector.
	Remaining func(ctx context.Context, s connector.Subject) (int64, error)
	// Retains is true for a system that keeps some records by law and so
	// answers Retained to an erasure.
	Retains bool
}

// Run runs the suite; newFixture is called once per subtest.
func Run(t *testing.T, newFixture func(t *testing.T) Fixture) {
	t.Helper()
	task := func(s connector.Subject, n string) connector.Task {
		return connector.Task{RequestID: "req-" + n, TaskID: "req-" + n + ".sys", Tenant: "demo", Subject: s, Attempt: 1, Deadline: time.Now().Add(720 * time.Hour)}
	}
	tests := []struct {
		name string
		run  func(t *testing.T, f Fixture)
	}{
		{"export present subject", func(t *testing.T, f Fixture) {
			res, err := f.System.Export(context.Background(), task(f.Present, "1"))
			if err != nil {
				t.Fatalf("export: %v", err)
			}
			if res.Outcome != connector.Exported {
				t.Fatalf("outcome = %q, want exported", res.Outcome)
			}
			var records connector.Records
			if err := json.Unmarshal(res.Export, &records); err != nil || len(records) == 0 {
				t.Fatalf("export is not a JSON document of records grouped by data category, then table (%v)", err)
			}
			if total(res.Counts) == 0 {
				t.Fatalf("export counts no records: %v", res.Counts)
			}
			if n, err := f.Remaining(context.Background(), f.Present); err != nil || n == 0 {
				t.Fatalf("export changed the system: remaining %d, %v", n, err)
			}
		}},
		{"export absent subject is not found", func(t *testing.T, f Fixture) {
			res, err := f.System.Export(context.Background(), task(f.Absent, "2"))
			if err != nil || res.Outcome != connector.NotFound {
				t.Fatalf("export absent = %q, %v; want not_found", res.Outcome, err)
			}
		}},
		{"erase absent subject is not found", func(t *testing.T, f Fixture) {
			res, err := f.System.Erase(context.Background(), task(f.Absent, "3"))
			if err != nil || res.Outcome != connector.NotFound {
				t.Fatalf("erase absent = %q, %v; want not_found", res.Outcome, err)
			}
		}},
		{"erase removes the subject and says what remains", func(t *testing.T, f Fixture) {
			ctx := context.Background()
			before, err := f.Remaining(ctx, f.Present)
			if err != nil || before == 0 {
				t.Fatalf("fixture subject has no records (%d, %v)", before, err)
			}
			res, err := f.System.Erase(ctx, task(f.Present, "4"))
			if err != nil {
				t.Fatalf("erase: %v", err)
			}
			want := connector.Erased
			if f.Retains {
				want = connector.Retained
			}
			if res.Outcome != want {
				t.Fatalf("outcome = %q, want %q", res.Outcome, want)
			}
			if total(res.Counts) == 0 {
				t.Fatalf("erase counts no records: %v", res.Counts)
			}
			after, err := f.Remaining(ctx, f.Present)
			if err != nil {
				t.Fatal(err)
			}
			if after != res.Remaining {
				t.Fatalf("receipt says %d remain, the system holds %d", res.Remaining, after)
			}
			if !f.Retains && after != 0 {
				t.Fatalf("%d records remain after erasure", after)
			}
			if f.Retains && (res.LegalBasis == "" || res.RetainUntil.IsZero()) {
				t.Fatalf("retained without legal basis or retain-until: %+v", res)
			}
			// Erasing again is no new effect and no error.
			again, err := f.System.Erase(ctx, task(f.Present, "4"))
			if err != nil {
				t.Fatalf("second erase: %v", err)
			}
			if again.Outcome != connector.NotFound && again.Outcome != res.Outcome {
				t.Fatalf("second erase = %q, want not_found or %q", again.Outcome, res.Outcome)
			}
			if n, _ := f.Remaining(ctx, f.Present); n != after {
				t.Fatalf("second erase changed the remaining records: %d -> %d", after, n)
			}
		}},
		{"other subjects are untouched", func(t *testing.T, f Fixture) {
			ctx := context.Background()
			if _, err := f.System.Erase(ctx, task(f.Absent, "5")); err != nil {
				t.Fatal(err)
			}
			if n, err := f.Remaining(ctx, f.Present); err != nil || n == 0 {
				t.Fatalf("erasing another subject touched the fixture subject: %d, %v", n, err)
			}
		}},
		{"cancelled context returns promptly", func(t *testing.T, f Fixture) {
			ctx, cancel := context.WithCancel(context.Background())
			cancel()
			done := make(chan error, 1)
			go func() { _, err := f.System.Erase(ctx, task(f.Present, "6")); done <- err }()
			select {
			case err := <-done:
				if err != nil && !errors.Is(err, context.Canceled) {
					t.Logf("erase with cancelled context: %v", err)
				}
			case <-time.After(5 * time.Second):
				t.Fatal("erase ignored a cancelled context")
			}
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) { tt.run(t, newFixture(t)) })
	}
}

func total(m map[string]int64) int64 {
	var n int64
	for _, v := range m {
		n += v
	}
	return n
}
