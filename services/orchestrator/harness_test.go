package orchestrator

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/url"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/lethe-dev/lethe/pkg/blob"
	"github.com/lethe-dev/lethe/pkg/bus/natsbus"
	"github.com/lethe-dev/lethe/pkg/connector"
	"github.com/lethe-dev/lethe/pkg/piitest"
	"github.com/lethe-dev/lethe/pkg/proof"
	"github.com/lethe-dev/lethe/services/orchestrator/auth"
	"github.com/lethe-dev/lethe/services/orchestrator/keyring"
	"github.com/lethe-dev/lethe/services/orchestrator/store"
)

// env is an embedded NATS server, an orchestrator over SQLite in a temp dir,
// and connectors started on demand, all in this process.
type env struct {
	t       *testing.T
	dir     string
	dataDir string     // the orchestrator's
	blobs   blob.Store // shared by the orchestrator and the connectors
	natsURL string
	nats    *natsbus.Embedded
	logs    *piitest.Capture
	cfg     Config
	api     string
	stop    context.CancelFunc
	// token is an admin token of the orchestrator start started; do and
	// raw call with it.
	token string
	// store is the store of the orchestrator start started.
	store store.Store
	// closeStore closes the store of the orchestrator start started.
	closeStore func() error
	done       chan error
	reg        *prometheus.Registry
	connReg    *prometheus.Registry // the connectors' metrics
	stops      map[string]func()    // stop each connector
	orch       *Orchestrator        // the orchestrator start started
	clock      *fakeClock           // the connectors' clock, if set
}

// fakeClock is a clock a test moves.
type fakeClock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *fakeClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *fakeClock) Set(t time.Time) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.t = t
}

var testSystems = []string{"alpha", "beta"}

func newEnv(t *testing.T, tweak func(*Config)) *env {
	t.Helper()
	dir := t.TempDir()
	e := &env{t: t, dir: dir, dataDir: filepath.Join(dir, "orchestrator"), logs: &piitest.Capture{}, connReg: prometheus.NewRegistry(), stops: map[string]func(){}}
	e.natsUp(-1)
	t.Cleanup(func() { e.nats.Shutdown() })
	var err error
	if e.blobs, err = blob.NewFS(filepath.Join(dir, "blobs")); err != nil {
		t.Fatal(err)
	}
	e.cfg = Config{
		Systems:     testSystems,
		MaxAttempts: 4, RetryInitial: 300 * time.Millisecond, RetryMax: time.Second, ScanInterval: 50 * time.Millisecond,
		RateLimit: -1, MetricsCache: -1, // tests poll fast and read fresh gauges
		HashKey: []byte("0123456789abcdef0123456789abcdef"),
	}
	if tweak != nil {
		tweak(&e.cfg)
	}
	// The connectors' keys, and the mailer's, are registered before the
	// orchestrator starts.
	var keys proof.KeySet
	for _, sys := range append(slices.Clone(testSystems), proof.Mailer) {
		signer, err := connector.SigningKey(filepath.Join(dir, sys), sys)
		if err != nil {
			t.Fatal(err)
		}
		keys.Add(signer.Key)
	}
	if err := proof.WriteKeySet(filepath.Join(e.dataDir, "keys.json"), keys); err != nil {
		t.Fatal(err)
	}
	e.start()
	return e
}

// natsUp starts the embedded NATS server on port (-1: any) over the env's
// store; natsDown stops it, as a broker outage would.
func (e *env) natsUp(port int) {
	e.t.Helper()
	srv, err := natsbus.StartEmbedded(filepath.Join(e.dir, "nats"), "127.0.0.1", port, nil)
	if err != nil {
		e.t.Fatal(err)
	}
	e.nats, e.natsURL = srv, srv.URL()
}

func (e *env) natsDown() int {
	u, _ := url.Parse(e.natsURL)
	port, _ := strconv.Atoi(u.Port())
	e.nats.Shutdown()
	return port
}

func (e *env) logger() *slog.Logger { return e.logs.Logger() }

func (e *env) bus(name string) *natsbus.Bus {
	b, err := natsbus.Connect(context.Background(), e.natsURL, natsbus.Config{Name: name, RetryDelay: 50 * time.Millisecond, AckWait: 2 * time.Second, Logger: e.logger()})
	if err != nil {
		e.t.Fatal(err)
	}
	e.t.Cleanup(func() { b.Close() })
	return b
}

// start runs an orchestrator over SQLite in the env's data dir.
func (e *env) start() {
	e.t.Helper()
	st, err := store.OpenSQLite(filepath.Join(e.dataDir, "lethe.db"))
	if err != nil {
		e.t.Fatal(err)
	}
	e.reg = prometheus.NewRegistry()
	o := e.orchestrator(st, e.reg)
	e.orch = o
	e.token = e.newToken(st, "test-admin", auth.AnyTenant, auth.Admin)
	e.api = "http://" + o.Addr()
	ctx, cancel := context.WithCancel(context.Background())
	e.stop, e.done = cancel, make(chan error, 1)
	go func() { e.done <- o.Run(ctx) }()
	e.closeStore, e.store = st.Close, st
	e.t.Cleanup(e.shutdown)
}

// orchestrator assembles an orchestrator of the env's configuration over
// st, with the env's signing key and keys file, on a port of its own.
func (e *env) orchestrator(st store.Store, reg *prometheus.Registry) *Orchestrator {
	e.t.Helper()
	signer, err := proof.LoadSigner(filepath.Join(e.dataDir, "signing.key"), proof.RoleOrchestrator, time.Now())
	if err != nil {
		e.t.Fatal(err)
	}
	seal, err := proof.SealingKeyIn(e.dataDir, signer)
	if err != nil {
		e.t.Fatal(err)
	}
	keys, err := keyring.Open(filepath.Join(e.dataDir, "keys.json"), signer.Key, e.logger())
	if err != nil {
		e.t.Fatal(err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		e.t.Fatal(err)
	}
	cfg := e.cfg
	cfg.Listener, cfg.Store, cfg.Bus, cfg.Signer, cfg.SealKey, cfg.Keys = ln, st, e.bus("orchestrator"), signer, seal, keys
	if cfg.Blobs == nil {
		cfg.Blobs = e.blobs
	}
	cfg.Logger, cfg.Registerer = e.logger(), reg
	o, err := New(cfg)
	if err != nil {
		e.t.Fatal(err)
	}
	return o
}

// newToken issues a token in st.
func (e *env) newToken(st store.Store, name, tenant string, role auth.Role) string {
	e.t.Helper()
	_, secret, err := (&auth.Tokens{Store: st, Now: time.Now}).Create(context.Background(), name, tenant, role, time.Time{})
	if err != nil {
		e.t.Fatal(err)
	}
	return secret
}

func (e *env) shutdown() {
	if e.stop == nil {
		return
	}
	e.stop()
	if err := <-e.done; err != nil {
		e.t.Errorf("orchestrator: %v", err)
	}
	e.stop = nil
	if err := e.closeStore(); err != nil {
		e.t.Errorf("store: %v", err)
	}
}

// toySystem is a system that holds one record per subject and counts the
// effects it made per task.
type toySystem struct {
	mu      sync.Mutex
	effects map[string]int
	emails  []string // the subjects' emails it acted on
	failN   int      // fail (retryable) this many calls first
	delay   time.Duration
}

func (s *toySystem) do(ctx context.Context, t connector.Task, o connector.Outcome) (connector.Result, error) {
	time.Sleep(s.delay) // a slow system's work
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.failN > 0 {
		s.failN--
		return connector.Result{}, connector.Retryable(fmt.Errorf("system unavailable"))
	}
	if s.effects == nil {
		s.effects = map[string]int{}
	}
	s.effects[t.TaskID]++
	s.emails = append(s.emails, t.Subject.Email)
	res := connector.Result{Outcome: o, Counts: map[string]int64{"profile": 1}}
	if o == connector.Exported {
		res.Export = []byte(`{"account":{"profile":[{"plan":"pro"}]}}`)
	}
	return res, nil
}

func (s *toySystem) subjects() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return slices.Clone(s.emails)
}

func (s *toySystem) Erase(ctx context.Context, t connector.Task) (connector.Result, error) {
	return s.do(ctx, t, connector.Erased)
}

func (s *toySystem) Export(ctx context.Context, t connector.Task) (connector.Result, error) {
	return s.do(ctx, t, connector.Exported)
}

func (s *toySystem) effectCount(taskID string) int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.effects[taskID]
}

// orchestratorSigner is the orchestrator's signing key.
func (e *env) orchestratorSigner() *proof.Signer {
	e.t.Helper()
	s, err := proof.LoadSigner(filepath.Join(e.dataDir, "signing.key"), proof.RoleOrchestrator, time.Now())
	if err != nil {
		e.t.Fatal(err)
	}
	if _, err := proof.SealingKeyIn(e.dataDir, s); err != nil {
		e.t.Fatal(err)
	}
	return s
}

// taskKeys is the orchestrator's public key, which connectors check tasks with.
func (e *env) taskKeys() proof.KeySet {
	var ks proof.KeySet
	ks.Add(e.orchestratorSigner().Key)
	return ks
}

// signer is the signing key of system's connector.
func (e *env) signer(system string) *proof.Signer {
	e.t.Helper()
	s, err := connector.SigningKey(filepath.Join(e.dir, system), system)
	if err != nil {
		e.t.Fatal(err)
	}
	return s
}

// stopConnector stops the connector of system started with connect.
func (e *env) stopConnector(system string) { e.stops[system]() }

// certificate fetches and verifies a request's certificate with the keys
// the orchestrator serves.
func (e *env) certificate(id string) (*proof.Certificate, error) {
	e.t.Helper()
	b := e.raw("GET", "/v1/requests/"+id+"/certificate")
	var keys proof.KeySet
	if err := json.Unmarshal(e.raw("GET", "/v1/keys"), &keys); err != nil {
		e.t.Fatal(err)
	}
	return proof.Verify(b, keys)
}

func (e *env) raw(method, path string) []byte {
	e.t.Helper()
	req, _ := http.NewRequest(method, e.api+path, nil)
	req.Header.Set("Authorization", "Bearer "+e.token)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		e.t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != http.StatusOK {
		e.t.Fatalf("%s %s = %d %s", method, path, resp.StatusCode, b)
	}
	return b
}

// waitTask polls until system's task of request id is in state.
func (e *env) waitTask(id, system, state string) {
	e.t.Helper()
	for end := time.Now().Add(20 * time.Second); time.Now().Before(end); time.Sleep(20 * time.Millisecond) {
		_, out := e.do("GET", "/v1/requests/"+id, "")
		if tasksBySystem(out)[system]["state"] == state {
			return
		}
	}
	e.t.Fatalf("%s's task of %s never became %s", system, id, state)
}

// connect starts the SDK over sys for system; the returned func stops it.
func (e *env) connect(system string, sys connector.System) func() {
	e.t.Helper()
	receipts, err := connector.OpenReceipts(filepath.Join(e.dir, system, "receipts.db"))
	if err != nil {
		e.t.Fatal(err)
	}
	signer := e.signer(system)
	seal, err := connector.SealingKey(filepath.Join(e.dir, system))
	if err != nil {
		e.t.Fatal(err)
	}
	list, err := connector.OpenSuppressions(filepath.Join(e.dir, system), e.cfg.HashKey)
	if err != nil {
		e.t.Fatal(err)
	}
	// The bus is made here, not in the goroutine: its Close is then a
	// cleanup registered before the connector's stop, so it runs after it
	// (cleanups run last first), and the connector is not told its bus
	// closed under it.
	b := e.bus(system)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	var now func() time.Time
	if e.clock != nil {
		now = e.clock.Now
	}
	go func() {
		defer close(done)
		err := connector.Run(ctx, connector.Config{System: system, Bus: b, Receipts: receipts, Signer: signer, SealKey: seal, TaskKeys: e.taskKeys(), Blobs: e.blobs,
			Logger: e.logger().With("system", system), Registerer: e.connReg, SubjectKey: e.cfg.HashKey, Suppressions: list,
			RetryInitial: 10 * time.Millisecond, RetryMaxElapsed: 50 * time.Millisecond, Now: now}, sys)
		if err != nil {
			e.t.Errorf("connector %s: %v", system, err)
		}
	}()
	stop := func() {
		cancel()
		<-done
		receipts.Close()
		list.Close()
	}
	var once sync.Once
	e.t.Cleanup(func() { once.Do(stop) })
	e.stops[system] = func() { once.Do(stop) }
	return e.stops[system]
}

// send makes one API call as token (none when ""), a JSON body, with
// extra headers (name, value, ...), and returns the answer as it came.
func (e *env) send(token, method, path, body string, headers ...string) (int, http.Header, []byte) {
	e.t.Helper()
	req, _ := http.NewRequest(method, e.api+path, strings.NewReader(body))
	req.Header.Set("Content-Type", "application/json")
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	for i := 0; i+1 < len(headers); i += 2 {
		req.Header.Set(headers[i], headers[i+1])
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		e.t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, resp.Header, b
}

// do makes one API call as the env's admin; the answer must be JSON.
func (e *env) do(method, path, body string) (int, map[string]any) {
	e.t.Helper()
	code, _, b := e.send(e.token, method, path, body)
	var out map[string]any
	if err := json.Unmarshal(b, &out); err != nil {
		e.t.Fatalf("%s %s: not JSON: %q", method, path, b)
	}
	return code, out
}

func (e *env) submit(body string) string {
	e.t.Helper()
	code, out := e.do("POST", "/v1/requests", body)
	if code != http.StatusAccepted {
		e.t.Fatalf("submit = %d %v", code, out)
	}
	return out["id"].(string)
}

// waitState polls the request until it is in state; it fails the test
// after 20 s.
func (e *env) waitState(id, state string) map[string]any {
	e.t.Helper()
	var out map[string]any
	for end := time.Now().Add(20 * time.Second); time.Now().Before(end); time.Sleep(20 * time.Millisecond) {
		_, out = e.do("GET", "/v1/requests/"+id, "")
		if out["state"] == state {
			return out
		}
	}
	e.t.Fatalf("request %s is %v, want %s: %v", id, out["state"], state, out)
	return nil
}

func tasksBySystem(view map[string]any) map[string]map[string]any {
	out := map[string]map[string]any{}
	for _, t := range view["tasks"].([]any) {
		m := t.(map[string]any)
		out[m["system"].(string)] = m
	}
	return out
}

// waitCounter is counter once it reached want, or after 10 s: counters
// move just after the commit of what they count (effects follow the
// commit), so a state read through the API may come a moment before them.
func waitCounter(t *testing.T, reg *prometheus.Registry, name string, labels map[string]string, want float64) float64 {
	t.Helper()
	end := time.Now().Add(10 * time.Second)
	for {
		got := counter(t, reg, name, labels)
		if got >= want || time.Now().After(end) {
			return got
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func counter(t *testing.T, reg *prometheus.Registry, name string, labels map[string]string) float64 {
	t.Helper()
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	total := 0.0
	for _, mf := range mfs {
		if mf.GetName() != name {
			continue
		}
	next:
		for _, m := range mf.GetMetric() {
			for _, lp := range m.GetLabel() {
				if v, ok := labels[lp.GetName()]; ok && v != lp.GetValue() {
					continue next
				}
			}
			if m.GetCounter() != nil {
				total += m.GetCounter().GetValue()
			} else if m.GetGauge() != nil {
				total += m.GetGauge().GetValue()
			}
		}
	}
	return total
}
