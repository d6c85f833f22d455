package lethebench

import (
	"bytes"
	"context"
	"database/sql"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"os"
	"path/filepath"
	"runtime/pprof"
	"runtime/trace"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/jackc/pgx/v5/stdlib"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/twmb/franz-go/pkg/kfake"

	"github.com/lethe-dev/lethe/pkg/connector/memsystem"
	"github.com/lethe-dev/lethe/pkg/durability"
	"github.com/lethe-dev/lethe/pkg/lifecycle"
	"github.com/lethe-dev/lethe/pkg/proof"
	"github.com/lethe-dev/lethe/services/devstack"
	"github.com/lethe-dev/lethe/services/orchestrator/store/storetest"
)

// Engines is one configuration of the pipeline.
type Engines struct {
	Bus        string          `json:"bus"`   // nats (embedded) or kafka (kfake)
	Store      string          `json:"store"` // sqlite or postgres
	Durability durability.Mode `json:"-"`
	// Systems are the connectors' systems: memory (Lethe's machinery
	// alone) or sqlite (the seeded demo systems).
	Systems string `json:"systems"`
}

func (e Engines) String() string {
	return fmt.Sprintf("%s+%s %s systems=%s", e.Bus, e.Store, e.Durability, e.Systems)
}

// Load is how requests are sent: Clients concurrent senders each waiting
// for the answer to the last (closed loop), or, with Rate > 0, one request
// every 1/Rate seconds whatever happens (open loop).
//
// The API answers once a request is accepted, long before it ends, so a
// closed loop alone sends every request at once: the pipeline's queues
// then hold all N (a bulk clean-up arriving at once), and memory measures
// the backlog, not the pipeline. Backlog > 0 holds the senders while that
// many requests are in flight (accepted, not ended): the pipeline runs at
// its own pace with queues of a bounded length, as at a steady load.
type Load struct {
	N       int
	Clients int
	Backlog int
	Rate    float64
	// Profile receives a CPU profile of the timed window, if set.
	Profile io.Writer
	// HeapProfile receives a heap profile taken as the last request ends.
	HeapProfile io.Writer
	// Trace receives a runtime trace of traceSpan of the steady state,
	// from when a quarter of the requests ended.
	Trace io.Writer
}

// traceSpan is how long a run's trace lasts: a few seconds of the steady
// state show every goroutine's waits, and a longer trace is hundreds of
// megabytes.
const traceSpan = 3 * time.Second

// Run is one pipeline run's figures.
type Run struct {
	Name       string  `json:"name"`
	Engines    Engines `json:"engines"`
	Durability string  `json:"durability"`
	Rate       float64 `json:"open_loop_rate,omitempty"`
	Requests   int     `json:"requests"`
	Ended      int     `json:"ended"`
	Verified   int     `json:"certificates_verified"`
	Seconds    float64 `json:"seconds"`
	// RPS is requests to a certificate per second, EventsPerSec the bus
	// messages they took (a task and a receipt per system) per second.
	RPS          float64 `json:"requests_per_sec"`
	EventsPerSec float64 `json:"events_per_sec"`
	Latency      Latency `json:"latency_ms"`
	// PeakRSS is the process's peak resident set during the run (the
	// whole pipeline runs in this process).
	PeakRSS         int64   `json:"peak_rss_bytes"`
	HeapInUse       int64   `json:"heap_in_use_bytes"`
	StoreBytes      int64   `json:"store_bytes"`
	StorePerRequest float64 `json:"store_bytes_per_request"`
	CPUPerRequest   float64 `json:"cpu_seconds_per_request"`
	// StoreBusy is the share of the run's time the SQLite store's one
	// writer spent running transactions: near 1, it bounds the run (0 for
	// a PostgreSQL store, which has no one writer).
	StoreBusy float64 `json:"store_writer_busy"`
	// Timeline samples the requests ended since the start.
	Timeline []Sample `json:"timeline"`
	// latencies (ms), kept for the plot.
	latencies []float64
}

// Latency holds percentiles, in milliseconds, from accepted to certificate.
type Latency struct {
	P50 float64 `json:"p50"`
	P90 float64 `json:"p90"`
	P99 float64 `json:"p99"`
	Max float64 `json:"max"`
}

// Sample is the count of ended requests at a time since the run started.
type Sample struct {
	T     float64 `json:"t"`
	Ended int     `json:"ended"`
	RSS   int64   `json:"rss_bytes"`
}

// pipeline is the systems the benchmark's requests go to, in order.
var systems = []string{"accounts", "billing", "emailanalytics", "recordings", "subprocessors"}

// runPipeline starts the whole pipeline in this process on e, sends
// load.N verified erasure requests, waits for every one to end, then
// verifies every certificate offline and measures.
func runPipeline(ctx context.Context, work string, e Engines, load Load, bar *Bar) (*Run, error) {
	quiet(ctx, bar)
	dir, err := tempDir(work, "pipeline")
	if err != nil {
		return nil, err
	}
	defer os.RemoveAll(dir)
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()

	cfg := devstack.Config{DataDir: dir, Listen: "127.0.0.1:0", NATSPort: -1, AccountsListen: "127.0.0.1:0", People: load.N,
		InMemory: e.Systems == "memory", Durability: e.Durability, Registry: prometheus.NewRegistry(),
		Logger: slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelError}))}
	cfg.Orchestrator.RateLimit = -1 // one caller sends everything
	storeSize := func() int64 { return dirSize(filepath.Join(dir, "orchestrator"), ".db") }
	switch e.Bus {
	case "nats":
	case "kafka":
		c, err := startKfake()
		if err != nil {
			return nil, err
		}
		defer c.Close()
		cfg.BusURL = "kafka://" + strings.Join(c.ListenAddrs(), ",")
	default:
		return nil, fmt.Errorf("unknown bus %q (nats or kafka)", e.Bus)
	}
	switch e.Store {
	case "sqlite":
	case "postgres":
		dsn := os.Getenv(storetest.EnvPostgres)
		if dsn == "" {
			return nil, fmt.Errorf("the postgres store needs %s", storetest.EnvPostgres)
		}
		schemaDSN, drop, err := storetest.NewSchema(ctx, dsn)
		if err != nil {
			return nil, err
		}
		defer drop(context.WithoutCancel(ctx))
		cfg.StoreURL = schemaDSN
		storeSize = func() int64 { return postgresSize(schemaDSN) }
	default:
		return nil, fmt.Errorf("unknown store %q (sqlite or postgres)", e.Store)
	}
	if e.Systems != "memory" && e.Systems != "sqlite" {
		return nil, fmt.Errorf("unknown systems %q (memory or sqlite)", e.Systems)
	}
	bar.Say("starting %s (seeding %d people)", e, load.N)
	s, err := devstack.Start(ctx, cfg)
	if err != nil {
		return nil, err
	}
	defer func() { cancel(); _ = s.Wait() }()
	token, err := os.ReadFile(s.AdminTokenFile)
	if err != nil {
		return nil, err
	}
	c := &client{base: s.API, token: strings.TrimSpace(string(token)),
		http: &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 256}, Timeout: time.Minute}}
	// A request is done once its certificate is issued, which follows its
	// end in a batch of its own (engine.IssueHeld).
	ended := func() int { return int(counterSum(cfg.Registry, "lethe_orchestrator_certificates_issued_total")) }
	writerBusy := func() float64 { return counterSum(cfg.Registry, "lethe_orchestrator_store_writer_busy_seconds_total") }

	run := &Run{Engines: e, Durability: e.Durability.String(), Requests: load.N, Rate: load.Rate}
	resetPeakRSS()
	cpu0, busy0 := cpuTime(), writerBusy()
	before := ended()
	ids := make([]string, load.N)
	var sent, ending atomic.Int64 // ending: requests ended, as last read
	var sendErr error
	var sendErrOnce sync.Once
	send := func(i int) {
		for load.Backlog > 0 && int(sent.Load()-ending.Load()) >= load.Backlog && ctx.Err() == nil {
			time.Sleep(5 * time.Millisecond)
		}
		id, err := c.submit(ctx, memsystem.Person(i+1))
		if err != nil {
			sendErrOnce.Do(func() { sendErr = err; cancel() })
			return
		}
		ids[i] = id
		sent.Add(1)
	}
	if load.Profile != nil {
		if err := pprof.StartCPUProfile(load.Profile); err != nil {
			return nil, err
		}
	}
	start := time.Now()
	go sendAll(ctx, load, send)

	bar.Start(run.nameOr(e.String()), load.N)
	last, lastChange, looked := 0, time.Now(), time.Time{}
	var traceEnd time.Time // zero: no trace begun
	tracing := false
	defer func() {
		if tracing {
			trace.Stop()
		}
	}()
	tick := time.NewTicker(100 * time.Millisecond)
	defer tick.Stop()
	for {
		select {
		case <-ctx.Done():
			if sendErr != nil {
				return nil, fmt.Errorf("submit: %w", sendErr)
			}
			return nil, ctx.Err()
		case <-tick.C:
		}
		if load.Trace != nil && traceEnd.IsZero() && last >= load.N/4 {
			if err := trace.Start(load.Trace); err != nil {
				return nil, err
			}
			traceEnd, tracing = time.Now().Add(traceSpan), true
		}
		if tracing && time.Now().After(traceEnd) {
			trace.Stop()
			tracing = false
		}
		// Reading the counter gathers every metric, and the store's gauges
		// query the store (a Prometheus scrape does so every 15 s or so;
		// the orchestrator keeps their reading 5 s): once a second, or the
		// bench would weigh on what it measures; every tick near the end,
		// which it times, or while the senders wait for requests to end.
		// The timeline keeps a sample a second, and the end.
		near := last >= load.N*9/10
		if time.Since(looked) < time.Second && !near && load.Backlog == 0 {
			continue
		}
		n := ended() - before
		ending.Store(int64(n))
		t := time.Since(start)
		if time.Since(looked) >= time.Second || near {
			looked = time.Now()
			run.Timeline = append(run.Timeline, Sample{T: t.Seconds(), Ended: n, RSS: rss()})
		}
		bar.Set(n)
		if n != last {
			last, lastChange = n, time.Now()
		}
		if n >= load.N {
			run.Seconds = t.Seconds()
			break
		}
		if time.Since(lastChange) > 2*time.Minute {
			return nil, fmt.Errorf("stalled: %d of %d requests ended, none for 2 minutes (%d sent)", n, load.N, sent.Load())
		}
	}
	bar.Done()
	if load.Profile != nil {
		pprof.StopCPUProfile()
	}
	if load.HeapProfile != nil {
		if err := pprof.Lookup("heap").WriteTo(load.HeapProfile, 0); err != nil {
			return nil, err
		}
	}
	run.Ended = load.N
	run.CPUPerRequest = (cpuTime() - cpu0).Seconds() / float64(load.N)
	run.StoreBusy = (writerBusy() - busy0) / run.Seconds
	run.PeakRSS = peakRSS()
	run.HeapInUse = heapInUse()
	run.RPS = float64(load.N) / run.Seconds
	run.EventsPerSec = float64(2*len(systems)*load.N) / run.Seconds
	run.StoreBytes = storeSize()
	run.StorePerRequest = float64(run.StoreBytes) / float64(load.N)

	// Every request: its times, and its certificate verified offline as a
	// third party would (outside the timing).
	keys, err := c.keys(ctx)
	if err != nil {
		return nil, err
	}
	bar.Start("verifying certificates", load.N)
	lat := make([]float64, load.N)
	var verified atomic.Int64
	var checkErr error
	var checkOnce sync.Once
	parallel(ctx, load.N, 4, func(i int) {
		ms, err := c.check(ctx, ids[i], keys)
		if err != nil {
			checkOnce.Do(func() { checkErr = err })
			return
		}
		lat[i] = ms
		bar.Set(int(verified.Add(1)))
	})
	bar.Done()
	if checkErr != nil {
		return nil, checkErr
	}
	run.Verified = int(verified.Load())
	run.latencies = lat
	run.Latency = percentiles(lat)
	return run, nil
}

func (r *Run) nameOr(s string) string {
	if r.Name != "" {
		return r.Name
	}
	return s
}

// sendAll sends requests 0..N-1 as load says.
func sendAll(ctx context.Context, load Load, send func(int)) {
	if load.Rate > 0 {
		interval := time.Duration(float64(time.Second) / load.Rate)
		start := time.Now()
		var wg sync.WaitGroup
		for i := 0; i < load.N && ctx.Err() == nil; i++ {
			time.Sleep(time.Until(start.Add(time.Duration(i) * interval)))
			wg.Add(1)
			go func() { defer wg.Done(); send(i) }()
		}
		wg.Wait()
		return
	}
	parallel(ctx, load.N, load.Clients, send)
}

// parallel calls fn(0..n-1) from workers goroutines.
func parallel(ctx context.Context, n, workers int, fn func(int)) {
	var next atomic.Int64
	var wg sync.WaitGroup
	for w := 0; w < max(workers, 1); w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for ctx.Err() == nil {
				i := int(next.Add(1)) - 1
				if i >= n {
					return
				}
				fn(i)
			}
		}()
	}
	wg.Wait()
}

// client speaks to the orchestrator's API as the local operator.
type client struct {
	base, token string
	http        *http.Client
}

func (c *client) do(ctx context.Context, method, path string, body []byte, want int) ([]byte, error) {
	req, err := http.NewRequestWithContext(ctx, method, c.base+path, bytes.NewReader(body))
	if err != nil {
		return nil, err
	}
	req.Header.Set("Authorization", "Bearer "+c.token)
	req.Header.Set("Content-Type", "application/json")
	resp, err := c.http.Do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		return nil, err
	}
	if resp.StatusCode != want {
		return nil, fmt.Errorf("%s %s: %d %s", method, strings.SplitN(path, "?", 2)[0], resp.StatusCode, bytes.TrimSpace(b))
	}
	return b, nil
}

func (c *client) submit(ctx context.Context, email string) (string, error) {
	body, _ := json.Marshal(map[string]any{"type": "erasure", "tenant": "demo", "verified": true, "subject": map[string]string{"email": email}})
	b, err := c.do(ctx, http.MethodPost, "/v1/requests", body, http.StatusAccepted)
	if err != nil {
		return "", err
	}
	var out struct {
		ID string `json:"id"`
	}
	return out.ID, json.Unmarshal(b, &out)
}

func (c *client) keys(ctx context.Context) (proof.KeySet, error) {
	var ks proof.KeySet
	b, err := c.do(ctx, http.MethodGet, "/v1/keys", nil, http.StatusOK)
	if err != nil {
		return ks, err
	}
	return ks, json.Unmarshal(b, &ks)
}

// check verifies the request's certificate and returns its time from
// accepted to certificate, in milliseconds.
func (c *client) check(ctx context.Context, id string, keys proof.KeySet) (float64, error) {
	b, err := c.do(ctx, http.MethodGet, "/v1/requests/"+id, nil, http.StatusOK)
	if err != nil {
		return 0, err
	}
	var view struct {
		State       lifecycle.State `json:"state"`
		CreatedAt   time.Time       `json:"created_at"`
		CompletedAt *time.Time      `json:"completed_at"`
	}
	if err := json.Unmarshal(b, &view); err != nil {
		return 0, err
	}
	// The demo systems' billing keeps invoices by law: partially retained
	// is their erasure's end, with a deferred erasure to come.
	if (view.State != lifecycle.Fulfilled && view.State != lifecycle.PartiallyRetained) || view.CompletedAt == nil {
		return 0, fmt.Errorf("request %s ended %s, want fulfilled or partially_retained", id, view.State)
	}
	cert, err := c.do(ctx, http.MethodGet, "/v1/requests/"+id+"/certificate", nil, http.StatusOK)
	if err != nil {
		return 0, err
	}
	v, err := proof.Verify(cert, keys)
	if err != nil {
		return 0, fmt.Errorf("certificate of %s: %w", id, err)
	}
	// Issued when its checkpoint was signed, which the checkpoint says.
	th, err := proof.OpenCheckpoint(keys, []byte(v.Log.Checkpoint))
	if err != nil {
		return 0, fmt.Errorf("certificate of %s: %w", id, err)
	}
	return float64(th.Time.Sub(view.CreatedAt).Microseconds()) / 1000, nil
}

// counterSum reads the counter name from reg, summed over its labels.
func counterSum(reg *prometheus.Registry, name string) float64 {
	mfs, err := reg.Gather()
	if err != nil {
		return 0
	}
	n := 0.0
	for _, mf := range mfs {
		if mf.GetName() == name {
			for _, m := range mf.GetMetric() {
				n += m.GetCounter().GetValue()
			}
		}
	}
	return n
}

func percentiles(ms []float64) Latency {
	if len(ms) == 0 {
		return Latency{}
	}
	s := slices.Clone(ms)
	slices.Sort(s)
	at := func(p float64) float64 { return s[min(len(s)-1, int(p*float64(len(s))))] }
	return Latency{P50: at(0.50), P90: at(0.90), P99: at(0.99), Max: s[len(s)-1]}
}

// dirSize sums the files under dir whose names contain substr.
func dirSize(dir, substr string) int64 {
	var n int64
	_ = filepath.WalkDir(dir, func(path string, d os.DirEntry, err error) error {
		if err == nil && !d.IsDir() && strings.Contains(d.Name(), substr) {
			if info, err := d.Info(); err == nil {
				n += info.Size()
			}
		}
		return nil
	})
	return n
}

// postgresSize is the size of the tables (with their indexes and TOAST)
// of the schema the DSN selects.
func postgresSize(dsn string) int64 {
	db, err := sql.Open("pgx", dsn)
	if err != nil {
		return 0
	}
	defer db.Close()
	var n sql.NullInt64
	_ = db.QueryRow(`SELECT sum(pg_total_relation_size(c.oid)) FROM pg_class c
		WHERE c.relnamespace = current_schema()::regnamespace AND c.relkind = 'r'`).Scan(&n)
	return n.Int64
}

var _ = stdlib.GetDefaultDriver // registers "pgx"

// startKfake starts an in-process Kafka cluster (franz-go's kfake): no
// Kafka broker can be installed here, and kafka-go speaks its wire
// protocol as it would a broker's.
func startKfake() (*kfake.Cluster, error) { return kfake.NewCluster(kfake.NumBrokers(1)) }
