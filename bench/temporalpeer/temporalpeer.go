// Package temporalpeer is the durable-workflow peer of Lethe's benchmark: it
// runs the same five-system erasure as a Temporal workflow on Temporal's
// in-process test server (go.temporal.io/server/temporaltest), so that a
// benchmark can set Lethe's throughput beside Temporal's in the same process
// and on the same connector work.
//
// One erasure request is one workflow execution. The workflow fans out one
// activity per system, all started at once and then awaited (Lethe's fan-out),
// and each activity does cfg.Work for its system and the request's subject.
//
// The server is temporaltest's: SQLite in memory, one history shard, all four
// services (frontend, history, matching, worker) in this process, talking gRPC
// over loopback. Its start-up is not counted in Result.Elapsed.
package temporalpeer

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"go.temporal.io/sdk/activity"
	"go.temporal.io/sdk/client"
	sdklog "go.temporal.io/sdk/log"
	"go.temporal.io/sdk/temporal"
	"go.temporal.io/sdk/worker"
	"go.temporal.io/sdk/workflow"
	"go.temporal.io/server/common/dynamicconfig"
	serverlog "go.temporal.io/server/common/log"
	servertemporal "go.temporal.io/server/temporal"
	"go.temporal.io/server/temporaltest"
)

// Names under which the workflow and the activity are registered.
const (
	WorkflowName = "LetheErasure"
	ActivityName = "EraseSystem"
	taskQueue    = "lethe-erasure"
)

// DefaultConcurrency is Config.Concurrency when it is not set.
const DefaultConcurrency = 64

// Activity options of the workflow's fan-out.
//
// StartToCloseTimeout: an in-memory system erase takes microseconds; 30 s only
// catches a lost activity (a worker that died) without ever firing on a slow
// but healthy one on a loaded 2-core machine.
//
// Retry: the first retry after 100 ms (Temporal's default is 1 s, which
// would make a single transient failure dominate a run's latency figures),
// doubling up to 5 s, at most 8 attempts (Config.MaxAttempts): a Work that
// keeps failing fails its workflow, and so Run, within about 12 s instead of
// retrying for ever.
var activityOptions = workflow.ActivityOptions{
	StartToCloseTimeout: 30 * time.Second,
	RetryPolicy: &temporal.RetryPolicy{
		InitialInterval:    100 * time.Millisecond,
		BackoffCoefficient: 2,
		MaximumInterval:    5 * time.Second,
		MaximumAttempts:    8,
	},
}

// Config of a peer run.
type Config struct {
	N           int      // workflows (erasure requests) to run
	Concurrency int      // workflows in flight at once (default 64)
	Systems     []string // one activity per system, run in parallel inside the workflow (like Lethe's fan-out)
	// Work is the connector work one activity does for one system and one subject
	// (the benchmark passes the same in-memory system erase Lethe's connectors do).
	Work func(ctx context.Context, system, subject string) error
	// Subject names the subject of request i (0..N-1); nil: [Subject].
	Subject  func(i int) string
	Progress func(done int) // called as workflows finish (may be nil); must be cheap
	// (Progress calls are serialized, with done counting up by one.)

	// StartupTime, if not nil, receives how long the server, client and
	// worker took to come up (not part of Result.Elapsed).
	StartupTime *time.Duration
	// MaxAttempts bounds an activity's attempts (default 8).
	MaxAttempts int
	// ServerDynamicConfig sets server dynamic config values (by key, e.g.
	// "history.transferProcessorMaxPollRPS") on top of temporaltest's.
	// Nil runs the server as temporaltest configures it.
	ServerDynamicConfig map[string]any
}

// Result of a peer run.
type Result struct {
	Elapsed   time.Duration   // from the first start to the last completion (server start-up excluded)
	Done      int             // workflows that completed successfully
	Latencies []time.Duration // per workflow: start to completion, as seen by the client (in subject order)
}

// Subject is the data subject of erasure request i, unless Config.Subject
// names them.
func Subject(i int) string { return fmt.Sprintf("person-%06d@example.com", i) }

// Input is the workflow's argument.
type Input struct {
	Subject     string
	Systems     []string
	MaxAttempts int // 0: activityOptions' own
}

// Workflow is the erasure workflow: one activity per system, all started
// before any is awaited, so the systems are erased in parallel.
func Workflow(ctx workflow.Context, in Input) error {
	ao := activityOptions
	if in.MaxAttempts > 0 {
		rp := *ao.RetryPolicy
		rp.MaximumAttempts = int32(in.MaxAttempts)
		ao.RetryPolicy = &rp
	}
	ctx = workflow.WithActivityOptions(ctx, ao)
	futures := make([]workflow.Future, len(in.Systems))
	for i, system := range in.Systems {
		futures[i] = workflow.ExecuteActivity(ctx, ActivityName, system, in.Subject)
	}
	var errs []error
	for i, f := range futures {
		if err := f.Get(ctx, nil); err != nil {
			errs = append(errs, fmt.Errorf("%s: %w", in.Systems[i], err))
		}
	}
	return errors.Join(errs...)
}

// Worker options, tuned for throughput without giving Temporal anything
// Lethe does not get:
//
//   - pollers: 8 workflow-task and 16 activity-task long polls instead of the
//     SDK's 2 and 2. With 64 workflows in flight, each fanning out to 5
//     activities, 2 polls per task type leave tasks waiting in matching for a
//     poll to come back: measured on the 2-core machine (N=600, 64 in flight),
//     2/2 gave 17-19 workflows/s, 4/8, 8/16 and 16/32 all 21-25; past that
//     the server's CPU (SQLite persistence on one history shard) is the
//     limit and more polls are only idle connections.
//   - execution slots: Concurrency × systems activities (and Concurrency
//     workflow tasks) can be ready at once; the slots hold all of them (at
//     least the SDK's default of 1000), so none waits for a slot.
//   - the sticky workflow cache and eager activity dispatch stay at the SDK's
//     defaults (on).
//
// The server is left as temporaltest configures it unless
// Config.ServerDynamicConfig says otherwise. Of note: its history queue
// processors poll at most 20 times a second ("history.transfer/timer/
// visibilityProcessorMaxPollRPS"), which adds ~50 ms per hop when few
// workflows are in flight (1 at a time: ~150 ms a workflow, ~40 ms with the
// limit at 1000); at 64 in flight each poll takes a batch and the limit does
// not bind: raising it made no difference beyond run-to-run noise there.
func workerOptions(concurrency, systems int) worker.Options {
	slots := max(1000, 2*concurrency*systems)
	return worker.Options{
		MaxConcurrentWorkflowTaskPollers:       8,
		MaxConcurrentActivityTaskPollers:       16,
		MaxConcurrentActivityExecutionSize:     slots,
		MaxConcurrentWorkflowTaskExecutionSize: max(1000, 2*concurrency),
		// The worker is stopped only after every workflow has completed.
		WorkerStopTimeout: 5 * time.Second,
	}
}

// Run starts an in-process Temporal server (temporaltest), a worker with the workflow and the
// activity registered, runs cfg.N workflows (subject i is e.g. "person-%06d@example.com"),
// waits for all, stops everything, and returns the result.
//
// A workflow that fails (after its activities' retries) cancels the rest of the
// run: Run returns the result so far and the first failure.
func Run(ctx context.Context, cfg Config) (res Result, err error) {
	if cfg.N < 0 {
		return Result{}, fmt.Errorf("temporalpeer: N = %d", cfg.N)
	}
	if cfg.Work == nil {
		return Result{}, errors.New("temporalpeer: no Work")
	}
	if len(cfg.Systems) == 0 {
		return Result{}, errors.New("temporalpeer: no Systems")
	}
	conc := cfg.Concurrency
	if conc <= 0 {
		conc = DefaultConcurrency
	}
	conc = min(conc, max(cfg.N, 1))

	began := time.Now()
	ts, err := newServer(cfg.ServerDynamicConfig)
	if err != nil {
		return Result{}, err
	}
	defer func() {
		if serr := stopServer(ts); serr != nil && err == nil {
			err = serr
		}
	}()

	c, err := newClient(ts)
	if err != nil {
		return Result{}, err
	}
	// c is closed by stopServer: ts.Stop closes the clients it made.

	w := worker.New(c, taskQueue, workerOptions(conc, len(cfg.Systems)))
	w.RegisterWorkflowWithOptions(Workflow, workflow.RegisterOptions{Name: WorkflowName})
	work := cfg.Work
	w.RegisterActivityWithOptions(func(ctx context.Context, system, subject string) error {
		return work(ctx, system, subject)
	}, activity.RegisterOptions{Name: ActivityName})
	if err := w.Start(); err != nil {
		return Result{}, fmt.Errorf("temporalpeer: start worker: %w", err)
	}
	defer w.Stop()
	if cfg.StartupTime != nil {
		*cfg.StartupTime = time.Since(began)
	}

	return runWorkflows(ctx, c, cfg, conc)
}

// runWorkflows runs cfg.N workflows, conc at a time, on c.
func runWorkflows(ctx context.Context, c client.Client, cfg Config, conc int) (Result, error) {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()

	// Workflow IDs are unique per run: a namespace is per server, and the
	// server per Run, but a run-specific prefix costs nothing.
	subject := cfg.Subject
	if subject == nil {
		subject = Subject
	}
	prefix := fmt.Sprintf("erase-%d-", time.Now().UnixNano())
	latencies := make([]time.Duration, cfg.N)
	ok := make([]bool, cfg.N)

	var (
		mu       sync.Mutex // guards done, last, firstErr and calls to cfg.Progress
		done     int
		last     time.Time
		firstErr error
	)
	finish := func(i int, lat time.Duration, end time.Time, err error) {
		mu.Lock()
		defer mu.Unlock()
		if err != nil {
			if firstErr == nil && ctx.Err() == nil {
				firstErr = fmt.Errorf("temporalpeer: workflow %d: %w", i, err)
			}
			cancel()
			return
		}
		latencies[i], ok[i] = lat, true
		done++
		if end.After(last) {
			last = end
		}
		if cfg.Progress != nil {
			cfg.Progress(done)
		}
	}

	next := make(chan int)
	var wg sync.WaitGroup
	for range conc {
		wg.Go(func() {
			for i := range next {
				start := time.Now()
				in := Input{Subject: subject(i), Systems: cfg.Systems, MaxAttempts: cfg.MaxAttempts}
				run, err := c.ExecuteWorkflow(ctx, client.StartWorkflowOptions{
					ID:        fmt.Sprintf("%s%06d", prefix, i),
					TaskQueue: taskQueue,
				}, WorkflowName, in)
				if err == nil {
					err = run.Get(ctx, nil)
				}
				end := time.Now()
				finish(i, end.Sub(start), end, err)
			}
		})
	}

	first := time.Now()
feed:
	for i := range cfg.N {
		select {
		case next <- i:
		case <-ctx.Done():
			break feed
		}
	}
	close(next)
	wg.Wait()

	res := Result{Done: done, Latencies: make([]time.Duration, 0, done)}
	for i, lat := range latencies {
		if ok[i] {
			res.Latencies = append(res.Latencies, lat)
		}
	}
	if done > 0 {
		res.Elapsed = last.Sub(first)
	}
	if firstErr != nil {
		return res, firstErr
	}
	if err := ctx.Err(); err != nil && done < cfg.N {
		return res, fmt.Errorf("temporalpeer: %d of %d workflows done: %w", done, cfg.N, err)
	}
	return res, nil
}

// newServer starts temporaltest's server with its logs silenced.
// temporaltest.NewServer panics on failure when it has no *testing.T; the
// panic is turned into an error.
func newServer(extra map[string]any) (ts *temporaltest.TestServer, err error) {
	defer func() {
		if r := recover(); r != nil {
			ts, err = nil, fmt.Errorf("temporalpeer: start server: %v", r)
		}
	}()
	opts := []servertemporal.ServerOption{
		// temporaltest already gives its server a no-op logger; this makes
		// it explicit (and survives a temporaltest that stops doing so).
		servertemporal.WithLogger(serverlog.NewNoopLogger()),
	}
	if len(extra) > 0 {
		// This client replaces temporaltest's, so it repeats its one value.
		dc := dynamicconfig.StaticClient{
			dynamicconfig.ForceSearchAttributesCacheRefreshOnRead.Key(): true,
		}
		for k, v := range extra {
			dc[dynamicconfig.Key(k)] = v
		}
		opts = append(opts, servertemporal.WithDynamicConfigClient(dc))
	}
	return temporaltest.NewServer(
		temporaltest.WithBaseServerOptions(opts...),
		temporaltest.WithBaseClientOptions(client.Options{Logger: nopLogger{}}),
	), nil
}

// stopServer stops ts (its clients and the server). temporaltest's Stop
// reports a server that fails to stop through its *testing.T, which a
// TestServer made without one does not have: that panic is an error here.
func stopServer(ts *temporaltest.TestServer) (err error) {
	defer func() {
		if r := recover(); r != nil {
			err = fmt.Errorf("temporalpeer: stop server: %v", r)
		}
	}()
	ts.Stop()
	return nil
}

// newClient dials ts with a silent logger. ts.NewClientWithOptions panics on
// failure when ts has no *testing.T.
func newClient(ts *temporaltest.TestServer) (c client.Client, err error) {
	defer func() {
		if r := recover(); r != nil {
			c, err = nil, fmt.Errorf("temporalpeer: dial server: %v", r)
		}
	}()
	return ts.NewClientWithOptions(client.Options{Logger: nopLogger{}}), nil
}

// nopLogger is the Temporal SDK's logger, silenced.
type nopLogger struct{}

func (nopLogger) Debug(string, ...any) {}
func (nopLogger) Info(string, ...any)  {}
func (nopLogger) Warn(string, ...any)  {}
func (nopLogger) Error(string, ...any) {}

var _ sdklog.Logger = nopLogger{}
