package orchestrator

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	_ "github.com/jackc/pgx/v5/stdlib" // the "pgx" database/sql driver, to look at the shared store

	"github.com/prometheus/client_golang/prometheus"

	"github.com/lethe-dev/lethe/pkg/events"
	"github.com/lethe-dev/lethe/services/orchestrator/auth"
	"github.com/lethe-dev/lethe/services/orchestrator/retention"
	"github.com/lethe-dev/lethe/services/orchestrator/store"
	"github.com/lethe-dev/lethe/services/orchestrator/store/storetest"
)

// replica is one more orchestrator on the env's shared store.
type replica struct {
	api   string
	token string // an admin token of the shared store
	reg   *prometheus.Registry
	stop  func()
}

func (e *env) replica(dsn string) *replica {
	e.t.Helper()
	st, err := store.Open(context.Background(), dsn)
	if err != nil {
		e.t.Fatal(err)
	}
	r := &replica{reg: prometheus.NewRegistry()}
	o := e.orchestrator(st, r.reg)
	r.token = e.newToken(st, "replica-admin", auth.AnyTenant, auth.Admin)
	r.api = "http://" + o.Addr()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- o.Run(ctx) }()
	var once sync.Once
	r.stop = func() {
		once.Do(func() {
			cancel()
			if err := <-done; err != nil {
				e.t.Errorf("replica: %v", err)
			}
			st.Close()
		})
	}
	e.t.Cleanup(r.stop)
	return r
}

// Three orchestrators share one PostgreSQL: every request is fulfilled
// once, with one effect per task and one certificate, although one replica
// is stopped in the middle of the work.
func TestReplicasShareOnePostgres(t *testing.T) {
	dsn := storetest.PostgresDSN(t)
	// Waits long enough for a loaded machine: this test is about nothing
	// lost and nothing done twice, not about dead letters.
	e := newEnv(t, func(c *Config) { c.MaxAttempts, c.RetryInitial, c.RetryMax = 8, time.Second, 4*time.Second })
	e.shutdown() // the env's own SQLite orchestrator is not part of this
	replicas := []*replica{e.replica(dsn), e.replica(dsn), e.replica(dsn)}
	alpha, beta := &toySystem{}, &toySystem{}
	e.connect("alpha", alpha)
	e.connect("beta", beta)

	const n = 60
	ids := make([]string, n)
	for i := range ids {
		r := replicas[i%len(replicas)]
		if i > n/2 {
			r = replicas[1+i%2] // the first one has stopped
		}
		req, _ := http.NewRequest("POST", r.api+"/v1/requests", strings.NewReader(erasure(true)))
		req.Header.Set("Content-Type", "application/json")
		req.Header.Set("Authorization", "Bearer "+r.token)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		var out struct{ ID string }
		decode(t, resp, &out)
		ids[i] = out.ID
		if i == n/2 {
			replicas[0].stop() // mid-work: its relay, scanner and consumers stop
		}
	}
	e.api, e.token = replicas[1].api, replicas[1].token
	for _, id := range ids {
		e.waitState(id, "fulfilled")
		for _, sys := range []*toySystem{alpha, beta} {
			if got := sys.effectCount(events.TaskID(id, "alpha")) + sys.effectCount(events.TaskID(id, "beta")); got != 1 {
				t.Fatalf("request %s: %d effects in one system", id, got)
			}
		}
		if _, err := e.certificate(id); err != nil {
			t.Fatalf("request %s: %v", id, err)
		}
	}

	db, err := sql.Open("pgx", dsn)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	var certs, ended, entries, maxIndex int
	if err := db.QueryRow(`SELECT count(*) FROM certificates`).Scan(&certs); err != nil {
		t.Fatal(err)
	}
	if err := db.QueryRow(`SELECT count(*) FROM log_entries WHERE convert_from(data, 'UTF8') LIKE '%"event":"fulfilled"%'`).Scan(&ended); err != nil {
		t.Fatal(err)
	}
	if err := db.QueryRow(`SELECT count(*), max(idx) FROM log_entries`).Scan(&entries, &maxIndex); err != nil {
		t.Fatal(err)
	}
	if certs != n || ended != n {
		t.Fatalf("%d certificates and %d fulfilments logged for %d requests", certs, ended, n)
	}
	if maxIndex != entries-1 {
		t.Fatalf("the log's indexes are not dense: %d entries, highest index %d", entries, maxIndex)
	}
	// Each receipt recorded once: the log holds one acceptance per task.
	// (The replicas' counters may miss one whose transaction committed just
	// as its replica stopped; the store is what counts.)
	var accepted int
	if err := db.QueryRow(`SELECT count(*) FROM log_entries WHERE convert_from(data, 'UTF8') LIKE '%"event":"receipt_accepted"%'`).Scan(&accepted); err != nil {
		t.Fatal(err)
	}
	if accepted != 2*n {
		t.Fatalf("%d receipts recorded for %d tasks", accepted, 2*n)
	}
	t.Logf("%d requests over %d replicas (one stopped mid-work): %d certificates, %d log entries", n, len(replicas), certs, entries)
}

func decode(t *testing.T, resp *http.Response, v any) {
	t.Helper()
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusAccepted {
		t.Fatalf("status %d", resp.StatusCode)
	}
	if err := json.NewDecoder(resp.Body).Decode(v); err != nil {
		t.Fatal(err)
	}
}

// Three orchestrators share one PostgreSQL and one retention schedule,
// and find the same run due at the same moment: one run is opened, the
// others are told it is a duplicate; the next run, after that one, is
// again opened once.
func TestReplicasScheduleEachSweepOnce(t *testing.T) {
	dsn := storetest.PostgresDSN(t)
	policies, err := retention.Parse("policies.yaml", []byte(testPolicies))
	if err != nil {
		t.Fatal(err)
	}
	e := newEnv(t, func(c *Config) { c.Policies, c.SweepInterval = policies, -1 })
	e.shutdown()
	var replicas []*Orchestrator
	for range 3 {
		st, err := store.Open(context.Background(), dsn)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { st.Close() })
		replicas = append(replicas, e.orchestrator(st, prometheus.NewRegistry()))
	}
	p := policies.List[0]
	var last time.Time // never run
	for round := range 2 {
		var wg sync.WaitGroup
		runs := make([]string, len(replicas))
		errs := make([]error, len(replicas))
		for i, o := range replicas {
			wg.Add(1)
			go func() {
				defer wg.Done()
				r, err := o.engine.ScheduleSweep(context.Background(), p, last)
				if err == nil {
					runs[i] = r.ID
				}
				errs[i] = err
			}()
		}
		wg.Wait()
		opened := 0
		for i := range replicas {
			switch {
			case errs[i] == nil:
				opened++
			case !errors.Is(errs[i], store.ErrDuplicate):
				t.Fatalf("round %d, replica %d: %v", round, i, errs[i])
			}
		}
		if opened != 1 {
			t.Fatalf("round %d: %d runs opened by three replicas at once, want 1 (%v)", round, opened, errs)
		}
		st := replicas[0].cfg.Store
		got, err := st.LastSweeps(context.Background())
		if err != nil {
			t.Fatal(err)
		}
		if got[p.Tenant+"/"+p.Name].Equal(last) {
			t.Fatalf("round %d: the store shows no new run", round)
		}
		last = got[p.Tenant+"/"+p.Name]
	}
}
