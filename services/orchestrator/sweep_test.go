package orchestrator

import (
	"bytes"
	"context"
	"encoding/json"
	"net/http"
	"sync"
	"testing"
	"time"

	"github.com/lethe-dev/lethe/pkg/connector"
	"github.com/lethe-dev/lethe/pkg/proof"
	"github.com/lethe-dev/lethe/services/orchestrator/retention"
)

// sweepingSystem holds records of a category, each with a time, and
// deletes those before a sweep's cut-off.
type sweepingSystem struct {
	toySystem
	mu      sync.Mutex
	records []time.Time
}

func (s *sweepingSystem) Sweep(_ context.Context, t connector.SweepTask) (connector.Result, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	var kept []time.Time
	n := int64(0)
	for _, at := range s.records {
		if at.Before(t.Cutoff) {
			n++
			if t.DryRun {
				kept = append(kept, at)
			}
			continue
		}
		kept = append(kept, at)
	}
	s.records = kept
	if n == 0 {
		return connector.Result{Outcome: connector.NotFound}, nil
	}
	return connector.Result{Outcome: connector.Erased, Counts: map[string]int64{"logins": n}}, nil
}

func (s *sweepingSystem) left() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.records)
}

const testPolicies = `tenants:
  demo:
    - name: audience
      purpose: Measuring the audience
      legal_basis: Legitimate interest
      period: 13m
      clock: record
      systems:
        alpha: [connection]
        beta: [connection]
`

// A retention run on demand: a dry run counts and changes nothing, the
// real run deletes what is past the period and nothing else; each has a
// certificate that verifies and names the policy, the cut-off and the
// categories, and the metrics follow.
func TestSweepOnDemand(t *testing.T) {
	policies, err := retention.Parse("policies.yaml", []byte(testPolicies))
	if err != nil {
		t.Fatal(err)
	}
	e := newEnv(t, func(c *Config) { c.Policies, c.SweepInterval = policies, -1 })
	now := time.Now()
	alpha := &sweepingSystem{records: []time.Time{now.AddDate(-2, 0, 0), now.AddDate(0, -14, 0), now.AddDate(0, -12, 0), now}}
	beta := &sweepingSystem{records: []time.Time{now.AddDate(0, -1, 0)}}
	e.connect("alpha", alpha)
	e.connect("beta", beta)

	code, out := e.do("GET", "/v1/policies", "")
	if code != http.StatusOK || len(out["policies"].([]any)) != 1 {
		t.Fatalf("policies = %d %v", code, out)
	}
	for _, tt := range []struct {
		body      string
		want      string // the run's alpha count
		left      int    // alpha's records after it
		pastGauge float64
	}{
		{`{"tenant":"demo","policy":"audience","dry_run":true}`, "2", 4, 2},
		{`{"tenant":"demo","all":true}`, "2", 2, 0},
		{`{"tenant":"demo","all":true}`, "0", 2, 0}, // nothing left past the period
	} {
		code, out := e.do("POST", "/v1/sweeps", tt.body)
		if code != http.StatusAccepted {
			t.Fatalf("sweep %s = %d %v", tt.body, code, out)
		}
		id := out["runs"].([]any)[0].(map[string]any)["id"].(string)
		view := e.waitState(id, "fulfilled")
		counts := tasksBySystem(view)["alpha"]["counts"].(map[string]any)
		if got, _ := json.Marshal(counts["logins"]); string(got) != tt.want && !(tt.want == "0" && counts["logins"] == nil) {
			t.Errorf("%s: alpha counted %v, want %s", tt.body, counts, tt.want)
		}
		if alpha.left() != tt.left || beta.left() != 1 {
			t.Errorf("%s: alpha holds %d records (want %d), beta %d (want 1)", tt.body, alpha.left(), tt.left, beta.left())
		}
		c, err := e.certificate(id)
		if err != nil {
			t.Fatalf("%s: the run's certificate does not verify: %v", tt.body, err)
		}
		if c.Sweep == nil || c.Sweep.Policy != "audience" || len(c.Sweep.Systems["alpha"]) != 1 || !c.Sweep.Cutoff.Before(now.AddDate(0, -12, -20)) {
			t.Errorf("%s: the certificate's sweep: %+v", tt.body, c.Sweep)
		}
		// The series follow the commit that ended the run: wait for them.
		g := counter(t, e.reg, "lethe_orchestrator_sweep_records_past_period", map[string]string{"policy": "audience"})
		for end := time.Now().Add(10 * time.Second); g != tt.pastGauge && time.Now().Before(end); time.Sleep(10 * time.Millisecond) {
			g = counter(t, e.reg, "lethe_orchestrator_sweep_records_past_period", map[string]string{"policy": "audience"})
		}
		if g != tt.pastGauge {
			t.Errorf("%s: records past period gauge %v, want %v", tt.body, g, tt.pastGauge)
		}
	}
	if waitCounter(t, e.reg, "lethe_orchestrator_sweep_last_success_timestamp_seconds", map[string]string{"policy": "audience"}, 1) == 0 {
		t.Error("no last successful sweep recorded")
	}
	for _, bad := range []struct{ body, want string }{
		{`{"tenant":"demo","policy":"nope"}`, "no such retention policy"},
		{`{"tenant":"demo"}`, "name one policy"},
		{`{"tenant":"demo","policy":"audience","all":true}`, "name one policy"},
		{`{"tenant":"demo","policy":"audience","when":"now"}`, "not allowed"},
	} {
		code, _, b := e.send(e.token, "POST", "/v1/sweeps", bad.body)
		if code < 400 || code >= 500 || !bytes.Contains(b, []byte(bad.want)) {
			t.Errorf("%s = %d %s, want an error saying %q", bad.body, code, b, bad.want)
		}
	}
}

// A certificate of a run whose sweep was changed does not verify.
func TestSweepCertificateTampered(t *testing.T) {
	policies, err := retention.Parse("policies.yaml", []byte(testPolicies))
	if err != nil {
		t.Fatal(err)
	}
	e := newEnv(t, func(c *Config) { c.Policies, c.SweepInterval = policies, -1 })
	e.connect("alpha", &sweepingSystem{records: []time.Time{time.Now().AddDate(-3, 0, 0)}})
	e.connect("beta", &sweepingSystem{})
	_, out := e.do("POST", "/v1/sweeps", `{"tenant":"demo","policy":"audience"}`)
	id := out["runs"].([]any)[0].(map[string]any)["id"].(string)
	e.waitState(id, "fulfilled")
	b := e.raw("GET", "/v1/requests/"+id+"/certificate")
	var keys proof.KeySet
	if err := json.Unmarshal(e.raw("GET", "/v1/keys"), &keys); err != nil {
		t.Fatal(err)
	}
	for _, tamper := range []struct{ from, to string }{
		{`"policy":"audience"`, `"policy":"audienc3"`},
		{`"alpha":["connection"]`, `"alpha":["navigation"]`},
	} {
		forged := bytes.Replace(b, []byte(tamper.from), []byte(tamper.to), 1)
		if bytes.Equal(forged, b) {
			t.Fatalf("%s is not in the certificate", tamper.from)
		}
		if _, err := proof.Verify(forged, keys); err == nil {
			t.Errorf("a certificate with %s instead of %s verifies", tamper.to, tamper.from)
		}
	}
}

// Each policy runs on its schedule: not at once after a start, then once
// an interval has passed.
func TestSweepScheduled(t *testing.T) {
	policies, err := retention.Parse("policies.yaml", []byte(testPolicies))
	if err != nil {
		t.Fatal(err)
	}
	e := newEnv(t, func(c *Config) { c.Policies, c.SweepInterval = policies, 400*time.Millisecond })
	alpha := &sweepingSystem{records: []time.Time{time.Now().AddDate(-3, 0, 0)}}
	e.connect("alpha", alpha)
	e.connect("beta", &sweepingSystem{})
	for end := time.Now().Add(15 * time.Second); alpha.left() != 0; time.Sleep(50 * time.Millisecond) {
		if time.Now().After(end) {
			t.Fatal("the scheduled run never swept")
		}
	}
	_, out := e.do("GET", "/v1/requests?limit=50", "")
	scheduled := 0
	for _, r := range out["requests"].([]any) {
		if r.(map[string]any)["type"] == "sweep" {
			scheduled++
		}
	}
	if scheduled == 0 {
		t.Error("no run listed")
	}
}
