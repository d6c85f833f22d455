package temporalpeer

import (
	"context"
	"errors"
	"runtime"
	"slices"
	"sync"
	"testing"
	"time"
)

var systems = []string{"accounts", "billing", "emailanalytics", "mailer", "recordings"}

// counter is a Work that counts its calls per (system, subject) and can fail
// the first call for one system.
type counter struct {
	failFirst string // system whose first call per subject fails; "" for none

	mu    sync.Mutex
	calls map[[2]string]int
}

func (c *counter) work(_ context.Context, system, subject string) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.calls == nil {
		c.calls = map[[2]string]int{}
	}
	k := [2]string{system, subject}
	c.calls[k]++
	if system == c.failFirst && c.calls[k] == 1 {
		return errors.New("transient: system unavailable")
	}
	return nil
}

func TestRun(t *testing.T) {
	const n = 20
	goroutines := runtime.NumGoroutine()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()

	t.Run("every system once per subject", func(t *testing.T) {
		c := &counter{}
		var (
			mu       sync.Mutex
			progress []int
			startup  time.Duration
		)
		res, err := Run(ctx, Config{
			N:       n, // Concurrency: the default, so all 20 at once
			Systems: systems,
			Work:    c.work,
			Progress: func(done int) {
				mu.Lock()
				progress = append(progress, done)
				mu.Unlock()
			},
			StartupTime: &startup,
		})
		if err != nil {
			t.Fatalf("Run: %v", err)
		}
		t.Logf("start-up %v, %d workflows in %v", startup, res.Done, res.Elapsed)
		if res.Done != n {
			t.Errorf("Done = %d, want %d", res.Done, n)
		}
		if res.Elapsed <= 0 {
			t.Errorf("Elapsed = %v", res.Elapsed)
		}
		if len(res.Latencies) != n {
			t.Errorf("%d latencies, want %d", len(res.Latencies), n)
		}
		for i, l := range res.Latencies {
			if l <= 0 {
				t.Errorf("latency %d = %v", i, l)
			}
		}
		if len(c.calls) != n*len(systems) {
			t.Errorf("%d (system, subject) pairs worked, want %d", len(c.calls), n*len(systems))
		}
		for i := range n {
			for _, s := range systems {
				if got := c.calls[[2]string{s, Subject(i)}]; got != 1 {
					t.Errorf("%s / %s worked %d times, want 1", s, Subject(i), got)
				}
			}
		}
		if len(progress) != n {
			t.Errorf("Progress called %d times, want %d", len(progress), n)
		}
		for i, d := range progress {
			if d != i+1 {
				t.Errorf("Progress call %d got %d, want %d", i, d, i+1)
				break
			}
		}
	})

	t.Run("a failed activity is retried", func(t *testing.T) {
		const n = 5
		c := &counter{failFirst: "mailer"}
		res, err := Run(ctx, Config{N: n, Systems: systems, Work: c.work})
		if err != nil {
			t.Fatalf("Run: %v", err)
		}
		if res.Done != n || len(res.Latencies) != n {
			t.Errorf("Done = %d, %d latencies, want %d", res.Done, len(res.Latencies), n)
		}
		for i := range n {
			for _, s := range systems {
				want := 1
				if s == c.failFirst {
					want = 2
				}
				if got := c.calls[[2]string{s, Subject(i)}]; got != want {
					t.Errorf("%s / %s worked %d times, want %d", s, Subject(i), got, want)
				}
			}
		}
	})

	t.Run("a system that keeps failing fails the run", func(t *testing.T) {
		work := func(_ context.Context, system, _ string) error {
			if system == "billing" {
				return errors.New("billing is down")
			}
			return nil
		}
		res, err := Run(ctx, Config{N: 3, Systems: systems, Work: work, MaxAttempts: 2})
		if err == nil {
			t.Fatalf("Run succeeded (Done = %d), want an error", res.Done)
		}
		t.Logf("Run: %v", err)
	})

	// Temporal's server leaves a few goroutines behind for a moment after
	// Stop; report, don't fail.
	time.Sleep(500 * time.Millisecond)
	t.Logf("goroutines: %d before, %d after", goroutines, runtime.NumGoroutine())
}

// BenchmarkRun reports the peer's throughput on a trivial Work:
//
//	GOWORK=off go test -run '^$' -bench Run -benchtime 1x ./temporalpeer/
func BenchmarkRun(b *testing.B) {
	const n = 2000
	work := func(context.Context, string, string) error { return nil }
	for b.Loop() {
		var startup time.Duration
		res, err := Run(context.Background(), Config{N: n, Systems: systems, Work: work, StartupTime: &startup})
		if err != nil {
			b.Fatal(err)
		}
		b.ReportMetric(float64(res.Done)/res.Elapsed.Seconds(), "workflows/s")
		b.ReportMetric(float64(startup.Milliseconds()), "startup-ms")
		b.ReportMetric(float64(percentile(res.Latencies, 0.5).Microseconds())/1000, "p50-ms")
		b.ReportMetric(float64(percentile(res.Latencies, 0.99).Microseconds())/1000, "p99-ms")
	}
}

func percentile(ls []time.Duration, p float64) time.Duration {
	if len(ls) == 0 {
		return 0
	}
	s := slices.Clone(ls)
	slices.Sort(s)
	return s[int(p*float64(len(s)-1))]
}
