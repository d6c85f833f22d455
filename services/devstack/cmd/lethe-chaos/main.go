// Command lethe-chaos runs the production shape of Lethe on loopback as
// separate processes (a real nats-server with Lethe's NATS users and
// JetStream, the orchestrator, the five connectors and the vendors'
// stand-in), sends requests while it kills processes with SIGKILL, pauses
// connectors past their ack wait (SIGSTOP, SIGCONT) and restarts the broker
// gracefully, then checks that nothing was lost or done twice:
//
//   - every accepted request reached a final state, and an account deletion
//     announced twice opened one request;
//   - every request has a certificate that `lethectl verify` verifies
//     offline;
//   - no task's effect was applied twice (the connectors' receipt stores
//     count applied effects: connector.SQLiteReceipts.Applied);
//   - no erased person's email is left in any file under the data
//     directories, billing's aside (it keeps invoices by law).
//
// Its last line is
//
//	chaos: requests=N kills=K pauses=P final=N certificates_verified=N doubled=0 lost=0
//
// and it exits 1 on any violation, after printing the request or task ids
// involved. scripts/chaos builds and runs it (make chaos).
//
// Settings come from the environment (flags override): CHAOS_N requests
// (2000), CHAOS_PEOPLE seeded people (300), CHAOS_RATE requests a second
// (10), CHAOS_INTERVAL between faults (3s), CHAOS_PAUSE a pause's length
// (35s: past the 30 s ack wait), CHAOS_MIN least time under faults (60s),
// CHAOS_WAIT bound of the wait for final states (6m), CHAOS_KEEP=1 keeps the
// work directory, CHAOS_SEED the random seed; LETHE_TEST_POSTGRES_DSN adds
// a second pass with the orchestrator on PostgreSQL.
package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"io/fs"
	"math/rand/v2"
	"net"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/lethe-dev/lethe/pkg/connector"
	demoaccounts "github.com/lethe-dev/lethe/services/accounts"
)

var systems = []string{"accounts", "billing", "emailanalytics", "recordings", "subprocessors"}

var finalStates = map[string]bool{"fulfilled": true, "partially_retained": true, "failed": true, "denied": true, "expired": true}

type settings struct {
	n, people       int
	rate            float64
	interval, pause time.Duration
	minChaos, wait  time.Duration
	keep            bool
	seed            uint64
	bin             string
	store           string // "" SQLite, else a PostgreSQL URL
	retryInitial    time.Duration
	retryMax        time.Duration
	maxAttempts     int
	concurrency     int
}

func envInt(k string, d int) int {
	if v, err := strconv.Atoi(os.Getenv(k)); err == nil {
		return v
	}
	return d
}

func envDur(k string, d time.Duration) time.Duration {
	if v, err := time.ParseDuration(os.Getenv(k)); err == nil {
		return v
	}
	return d
}

func main() {
	var s settings
	flag.IntVar(&s.n, "n", envInt("CHAOS_N", 2000), "requests to send (env CHAOS_N)")
	flag.IntVar(&s.people, "people", envInt("CHAOS_PEOPLE", 300), "people seeded in each system (env CHAOS_PEOPLE)")
	rate, _ := strconv.ParseFloat(os.Getenv("CHAOS_RATE"), 64)
	if rate <= 0 {
		rate = 10
	}
	flag.Float64Var(&s.rate, "rate", rate, "requests sent per second (env CHAOS_RATE)")
	flag.DurationVar(&s.interval, "interval", envDur("CHAOS_INTERVAL", 3*time.Second), "time between faults (env CHAOS_INTERVAL)")
	flag.DurationVar(&s.pause, "pause", envDur("CHAOS_PAUSE", 35*time.Second), "how long a paused connector stays stopped: past its 30 s ack wait (env CHAOS_PAUSE)")
	flag.DurationVar(&s.minChaos, "min-chaos", envDur("CHAOS_MIN", 60*time.Second), "least time under faults (env CHAOS_MIN)")
	flag.DurationVar(&s.wait, "wait", envDur("CHAOS_WAIT", 6*time.Minute), "bound of the wait for every request to end, once the faults stop (env CHAOS_WAIT)")
	flag.BoolVar(&s.keep, "keep", os.Getenv("CHAOS_KEEP") != "", "keep the work directory (env CHAOS_KEEP)")
	seed, err := strconv.ParseUint(os.Getenv("CHAOS_SEED"), 10, 64)
	if err != nil {
		seed = uint64(time.Now().UnixNano())
	}
	flag.Uint64Var(&s.seed, "seed", seed, "random seed (env CHAOS_SEED)")
	flag.StringVar(&s.bin, "bin", "bin", "folder of the binaries (make build) and nats-server")
	flag.DurationVar(&s.retryInitial, "retry-initial", 5*time.Second, "the orchestrator's --retry-initial")
	flag.DurationVar(&s.retryMax, "retry-max", 20*time.Second, "the orchestrator's --retry-max")
	flag.IntVar(&s.maxAttempts, "max-attempts", 30, "the orchestrator's --max-attempts")
	flag.IntVar(&s.concurrency, "concurrency", 4, "requests in flight at once")
	pg := flag.String("postgres", os.Getenv("LETHE_TEST_POSTGRES_DSN"), "also run a pass with the orchestrator on this PostgreSQL (env LETHE_TEST_POSTGRES_DSN)")
	flag.Parse()
	if abs, err := filepath.Abs(s.bin); err == nil {
		s.bin = abs
	}

	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	passes := []string{""}
	if *pg != "" {
		passes = append(passes, *pg)
	}
	var total result
	for i, store := range passes {
		s.store = store
		name := "sqlite"
		if store != "" {
			name = "postgres"
		}
		fmt.Printf("chaos: pass %d/%d, orchestrator on %s, %d requests, seed %d\n", i+1, len(passes), name, s.n, s.seed)
		r, err := run(ctx, s)
		if err != nil {
			fmt.Printf("chaos: %s pass could not run: %v\n", name, err)
			r.violations++
		}
		total.add(r)
	}
	fmt.Printf("chaos: requests=%d kills=%d pauses=%d final=%d certificates_verified=%d doubled=%d lost=%d\n",
		total.requests, total.kills, total.pauses, total.final, total.verified, total.doubled, total.lost)
	if total.violations > 0 || total.doubled > 0 || total.lost > 0 {
		os.Exit(1)
	}
}

type result struct {
	requests, kills, pauses, final, verified, doubled, lost, violations int
}

func (r *result) add(o result) {
	r.requests += o.requests
	r.kills += o.kills
	r.pauses += o.pauses
	r.final += o.final
	r.verified += o.verified
	r.doubled += o.doubled
	r.lost += o.lost
	r.violations += o.violations
}

// violation prints one broken promise, with the ids involved.
func violation(r *result, format string, args ...any) {
	r.violations++
	fmt.Printf("chaos: VIOLATION "+format+"\n", args...)
}

// ---- processes ----

// proc is one supervised OS process: restarted whenever it exits until
// the run stops it.
type proc struct {
	name    string
	bin     string
	args    func(first bool) []string
	env     []string
	logPath string

	mu       sync.Mutex
	cmd      *exec.Cmd
	started  int
	stopping bool
	paused   bool
	expected bool // the last exit was caused by the run
	crashes  int  // exits nobody asked for
	exited   chan struct{}
	stopped  chan struct{}
}

func (p *proc) startOnce() error {
	p.mu.Lock()
	defer p.mu.Unlock()
	logf, err := os.OpenFile(p.logPath, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o600)
	if err != nil {
		return err
	}
	fmt.Fprintf(logf, "\n==== chaos: start #%d at %s ====\n", p.started+1, time.Now().Format(time.RFC3339Nano))
	cmd := exec.Command(p.bin, p.args(p.started == 0)...)
	cmd.Env = append(os.Environ(), p.env...)
	cmd.Stdout, cmd.Stderr = logf, logf
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true} // Ctrl-C reaches the run, which stops them in order
	if err := cmd.Start(); err != nil {
		logf.Close()
		return err
	}
	p.started++
	p.cmd, p.expected = cmd, false
	p.exited = make(chan struct{})
	exited := p.exited
	go func() {
		cmd.Wait()
		logf.Close()
		close(exited)
	}()
	return nil
}

// supervise keeps p running until stop is called.
func (p *proc) supervise() error {
	if err := p.startOnce(); err != nil {
		return err
	}
	p.stopped = make(chan struct{})
	go func() {
		defer close(p.stopped)
		for {
			p.mu.Lock()
			exited := p.exited
			p.mu.Unlock()
			<-exited
			p.mu.Lock()
			if p.stopping {
				p.mu.Unlock()
				return
			}
			if !p.expected {
				p.crashes++
				fmt.Printf("chaos: %s exited by itself (%v); restarting it (log %s)\n", p.name, p.cmd.ProcessState, p.logPath)
			}
			p.mu.Unlock()
			time.Sleep(time.Duration(200+rand.IntN(1300)) * time.Millisecond)
			p.mu.Lock()
			if p.stopping {
				p.mu.Unlock()
				return
			}
			p.mu.Unlock()
			for p.startOnce() != nil {
				time.Sleep(time.Second)
			}
		}
	}()
	return nil
}

// signal sends sig to the running process, marking the exit it causes as
// expected; it waits for that exit when wait is set.
func (p *proc) signal(sig syscall.Signal, wait time.Duration) bool {
	p.mu.Lock()
	cmd, exited := p.cmd, p.exited
	select {
	case <-exited:
		p.mu.Unlock()
		return false
	default:
	}
	p.expected = true
	p.mu.Unlock()
	if err := cmd.Process.Signal(sig); err != nil {
		return false
	}
	if wait > 0 {
		select {
		case <-exited:
		case <-time.After(wait):
			cmd.Process.Signal(syscall.SIGKILL)
			<-exited
		}
	}
	return true
}

// stop ends p for good: SIGCONT (if paused), SIGTERM, SIGKILL after 20 s.
func (p *proc) stop() {
	p.mu.Lock()
	p.stopping = true
	cmd := p.cmd
	p.mu.Unlock()
	if cmd != nil && cmd.Process != nil {
		cmd.Process.Signal(syscall.SIGCONT)
	}
	p.signal(syscall.SIGTERM, 20*time.Second)
	if p.stopped != nil {
		<-p.stopped
	}
}

// ---- HTTP ----

type api struct {
	base, token string
	hc          *http.Client
}

func (a *api) do(ctx context.Context, method, path string, body any, out any) (int, error) {
	var rd io.Reader
	if body != nil {
		b, _ := json.Marshal(body)
		rd = bytes.NewReader(b)
	}
	req, err := http.NewRequestWithContext(ctx, method, a.base+path, rd)
	if err != nil {
		return 0, err
	}
	if body != nil {
		req.Header.Set("content-type", "application/json")
	}
	if a.token != "" {
		req.Header.Set("authorization", "Bearer "+a.token)
	}
	resp, err := a.hc.Do(req)
	if err != nil {
		return 0, err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		return resp.StatusCode, err
	}
	if out != nil && resp.StatusCode < 300 {
		if w, ok := out.(*[]byte); ok {
			*w = b
		} else if err := json.Unmarshal(b, out); err != nil {
			return resp.StatusCode, err
		}
	}
	return resp.StatusCode, nil
}

type listed struct {
	ID        string    `json:"id"`
	Type      string    `json:"type"`
	State     string    `json:"state"`
	Source    string    `json:"source"`
	EventID   string    `json:"event_id"`
	CreatedAt time.Time `json:"created_at"`
}

// list returns every request created since since.
func (a *api) list(ctx context.Context, q url.Values, since time.Time) ([]listed, error) {
	var all []listed
	cursor := ""
	for {
		v := url.Values{"limit": {"500"}}
		for k, vs := range q {
			v[k] = vs
		}
		if cursor != "" {
			v.Set("cursor", cursor)
		}
		var page struct {
			Requests []listed `json:"requests"`
			Next     string   `json:"next_cursor"`
		}
		code, err := a.do(ctx, http.MethodGet, "/v1/requests?"+v.Encode(), nil, &page)
		if err != nil {
			return nil, err
		}
		if code != http.StatusOK {
			return nil, fmt.Errorf("list: HTTP %d", code)
		}
		for _, r := range page.Requests {
			if !r.CreatedAt.Before(since) {
				all = append(all, r)
			}
		}
		if page.Next == "" {
			return all, nil
		}
		cursor = page.Next
	}
}

func freePort() (int, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr).Port, nil
}

func waitFor(ctx context.Context, d time.Duration, what string, ok func() bool) error {
	end := time.Now().Add(d)
	for !ok() {
		if time.Now().After(end) {
			return fmt.Errorf("timed out waiting for %s", what)
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(200 * time.Millisecond):
		}
	}
	return nil
}

func exists(path string) bool { _, err := os.Stat(path); return err == nil }

// ---- one pass ----

// sent is one request the run made, and what became of it.
type sent struct {
	n        int
	kind     string // erasure, export, account-deletion
	email    string
	id       string // the orchestrator's request id, once accepted
	eventID  string // of an account deletion
	accepted bool
	// ambiguous: an account deletion whose answer was lost (a pause or a
	// kill cut it) and which the next attempt found done: the request it
	// opened is the one of its kind the run cannot name by event id.
	ambiguous bool
	note      string
}

func (q *sent) label() string {
	if q.id != "" {
		return q.id
	}
	if q.eventID != "" {
		return "event " + q.eventID
	}
	return fmt.Sprintf("#%d (%s %s)", q.n, q.kind, q.email)
}

func run(ctx context.Context, s settings) (res result, err error) {
	rng := rand.New(rand.NewPCG(s.seed, s.seed^0x9e3779b97f4a7c15))
	work, err := os.MkdirTemp("", "lethe-chaos.")
	if err != nil {
		return res, err
	}
	defer func() {
		if s.keep || res.violations > 0 || res.lost > 0 || res.doubled > 0 || err != nil {
			fmt.Printf("chaos: work directory kept: %s (logs in %s/logs)\n", work, work)
		} else {
			os.RemoveAll(work)
		}
	}()
	data := filepath.Join(work, "data")
	logs := filepath.Join(work, "logs")
	for _, d := range []string{data, logs, filepath.Join(work, "certs")} {
		if err := os.MkdirAll(d, 0o700); err != nil {
			return res, err
		}
	}
	bin := func(n string) string { return filepath.Join(s.bin, n) }
	for _, b := range append([]string{"nats-server", "orchestrator", "lethectl", "vendor-standin"}, systems...) {
		if !exists(bin(b)) {
			return res, fmt.Errorf("%s is missing: run make build (and scripts/chaos, which builds nats-server)", bin(b))
		}
	}
	var ports [4]int
	for i := range ports {
		if ports[i], err = freePort(); err != nil {
			return res, err
		}
	}
	natsPort, apiPort, accountsPort, vendorPort := ports[0], ports[1], ports[2], ports[3]
	natsURL := fmt.Sprintf("nats://127.0.0.1:%d", natsPort)

	// The broker's users, as for any NATS server of one's own.
	out, err := exec.CommandContext(ctx, bin("orchestrator"), "nats-config", "--out", data).CombinedOutput()
	if err != nil {
		return res, fmt.Errorf("orchestrator nats-config: %v: %s", err, out)
	}
	conf := filepath.Join(work, "nats.conf")
	if err := os.WriteFile(conf, fmt.Appendf(nil, "listen: 127.0.0.1:%d\nserver_name: lethe-chaos\njetstream {\n  store_dir: %q\n}\ninclude %q\n", // include: relative to this file
		natsPort, filepath.Join(data, "nats"), "data/nats-users.conf"), 0o600); err != nil {
		return res, err
	}

	orchData := filepath.Join(data, "orchestrator")
	orchKey := filepath.Join(orchData, "signing.key.pub")
	procs := map[string]*proc{}
	var order []string // start order; stopped in reverse
	add := func(p *proc) {
		p.logPath = filepath.Join(logs, p.name+".log")
		procs[p.name] = p
		order = append(order, p.name)
	}
	add(&proc{name: "nats", bin: bin("nats-server"), args: func(bool) []string { return []string{"-c", conf} }})
	add(&proc{name: "orchestrator", bin: bin("orchestrator"), args: func(bool) []string {
		a := []string{"--bus", natsURL, "--data", orchData, "--listen", fmt.Sprintf("127.0.0.1:%d", apiPort), "--rate-limit", "-1",
			"--retry-initial", s.retryInitial.String(), "--retry-max", s.retryMax.String(), "--max-attempts", strconv.Itoa(s.maxAttempts)}
		if s.store != "" {
			a = append(a, "--store", s.store)
		}
		return a
	}})
	add(&proc{name: "vendor-standin", bin: bin("vendor-standin"), args: func(bool) []string {
		return []string{"--listen", fmt.Sprintf("127.0.0.1:%d", vendorPort), "--people", strconv.Itoa(s.people)}
	}})
	for _, sys := range systems {
		sys := sys
		add(&proc{name: sys, bin: bin(sys), args: func(first bool) []string {
			a := []string{"--bus", natsURL, "--data", filepath.Join(data, sys), "--orchestrator-key", orchKey}
			if first && sys != "subprocessors" {
				a = append(a, "--seed", strconv.Itoa(s.people)) // once: a restart must not bring the erased back
			}
			switch sys {
			case "accounts":
				a = append(a, "--listen", fmt.Sprintf("127.0.0.1:%d", accountsPort))
			case "subprocessors":
				a = append(a, "--vendor-base", fmt.Sprintf("http://127.0.0.1:%d", vendorPort))
			}
			return a
		}})
	}
	stopAll := func() {
		for i := len(order) - 1; i >= 0; i-- {
			if p := procs[order[i]]; p.stopped != nil {
				p.stop()
			}
		}
	}
	defer stopAll()

	start := time.Now()
	since := start.Add(-time.Second)
	fmt.Printf("chaos: starting nats-server, orchestrator, vendor stand-in and %d connectors (work directory %s)\n", len(systems), work)
	if err := procs["nats"].supervise(); err != nil {
		return res, err
	}
	if err := waitFor(ctx, 20*time.Second, "nats-server", func() bool {
		c, err := net.Dial("tcp", fmt.Sprintf("127.0.0.1:%d", natsPort))
		if err == nil {
			c.Close()
		}
		return err == nil
	}); err != nil {
		return res, err
	}
	if err := procs["orchestrator"].supervise(); err != nil {
		return res, err
	}
	hc := &http.Client{Timeout: 15 * time.Second}
	orch := &api{base: fmt.Sprintf("http://127.0.0.1:%d", apiPort), hc: hc}
	if err := waitFor(ctx, 60*time.Second, "the orchestrator's API", func() bool {
		code, _ := orch.do(ctx, http.MethodGet, "/healthz", nil, nil)
		return code == http.StatusOK && exists(orchKey) && exists(filepath.Join(orchData, "admin.token"))
	}); err != nil {
		return res, err
	}
	tok, err := os.ReadFile(filepath.Join(orchData, "admin.token"))
	if err != nil {
		return res, err
	}
	orch.token = strings.TrimSpace(string(tok))
	if err := procs["vendor-standin"].supervise(); err != nil {
		return res, err
	}
	for _, sys := range systems {
		if err := procs[sys].supervise(); err != nil {
			return res, err
		}
	}
	var pubs []string
	for _, sys := range systems {
		pub := filepath.Join(data, sys, "signing.key.pub")
		pubs = append(pubs, pub)
		// The key is made after the seeding: its file says the system is ready.
		if err := waitFor(ctx, 120*time.Second, sys+"'s signing key (after seeding)", func() bool { return exists(pub) }); err != nil {
			return res, err
		}
	}
	keysFile := filepath.Join(orchData, "keys.json")
	if out, err := exec.CommandContext(ctx, bin("lethectl"), append([]string{"keys", "add", keysFile}, pubs...)...).CombinedOutput(); err != nil {
		return res, fmt.Errorf("lethectl keys add: %v: %s", err, out)
	}
	time.Sleep(2 * time.Second) // the orchestrator re-reads the keys file when it changes
	accounts := &api{base: fmt.Sprintf("http://127.0.0.1:%d", accountsPort), hc: hc}
	fmt.Printf("chaos: up in %s; sending %d requests at %.0f/s, a fault every %s\n", time.Since(start).Round(100*time.Millisecond), s.n, s.rate, s.interval)

	// The requests: a tenth are account deletions, each announced twice,
	// of people nobody else erases (the rest are erased through the API or
	// exported).
	deletable := min(s.n/10, s.people/3)
	reqs := make([]*sent, s.n)
	nextDel := 0
	for i := range reqs {
		q := &sent{n: i + 1}
		switch x := rng.IntN(100); {
		case x < 10 && nextDel < deletable:
			// Someone with an account: a deletion of none, whose first
			// answer a kill cut, would look like a deletion with no event.
			for !demoaccounts.HasDemoAccount(s.people - nextDel) {
				nextDel++
			}
			q.kind = "account-deletion"
			q.email = email(s.people - nextDel)
			nextDel++
		case x < 40:
			q.kind = "export"
			q.email = email(1 + rng.IntN(s.people))
		default:
			q.kind = "erasure"
			q.email = email(1 + rng.IntN(s.people-deletable))
		}
		reqs[i] = q
	}

	// Counters and the faults.
	var kills, pauses, restarts, sentN, acceptedN atomic.Int64
	var finalN atomic.Int64
	chaosCtx, stopChaos := context.WithCancel(ctx)
	var chaosWG sync.WaitGroup
	chaosWG.Add(1)
	go func() {
		defer chaosWG.Done()
		victims := append([]string{"nats", "orchestrator"}, systems...)
		forced := rng.Perm(3) // the first three faults: one of each kind
		var pauseWG sync.WaitGroup
		defer pauseWG.Wait()
		for i := 0; ; i++ {
			jitter := time.Duration(rng.Int64N(int64(s.interval))) - s.interval/2
			select {
			case <-chaosCtx.Done():
				return
			case <-time.After(s.interval + jitter):
			}
			kind := 0
			if i < len(forced) {
				kind = forced[i]
			} else if x := rng.IntN(100); x < 20 {
				kind = 1
			} else if x < 35 {
				kind = 2
			}
			switch kind {
			case 1: // pause a connector past its ack wait
				candidates := []*proc{}
				for _, sys := range systems {
					p := procs[sys]
					p.mu.Lock()
					if !p.paused {
						candidates = append(candidates, p)
					}
					p.mu.Unlock()
				}
				if len(candidates) < len(systems) || len(candidates) == 0 {
					kind = 0 // one pause at a time
					break
				}
				p := candidates[rng.IntN(len(candidates))]
				p.mu.Lock()
				cmd := p.cmd
				p.paused = true
				p.mu.Unlock()
				if cmd.Process.Signal(syscall.SIGSTOP) != nil {
					p.mu.Lock()
					p.paused = false
					p.mu.Unlock()
					kind = 0
					break
				}
				pauses.Add(1)
				fmt.Printf("chaos: paused %s for %s\n", p.name, s.pause)
				pauseWG.Add(1)
				go func() {
					defer pauseWG.Done()
					select {
					case <-time.After(s.pause):
					case <-chaosCtx.Done():
					}
					cmd.Process.Signal(syscall.SIGCONT)
					p.mu.Lock()
					p.paused = false
					p.mu.Unlock()
				}()
			case 2: // restart the broker gracefully
				if procs["nats"].signal(syscall.SIGTERM, 20*time.Second) {
					restarts.Add(1)
					fmt.Println("chaos: restarting nats-server gracefully (SIGTERM)")
				}
			}
			if kind == 0 {
				p := procs[victims[rng.IntN(len(victims))]]
				p.mu.Lock()
				paused := p.paused
				p.mu.Unlock()
				if paused {
					continue
				}
				if p.signal(syscall.SIGKILL, 10*time.Second) {
					kills.Add(1)
					fmt.Printf("chaos: kill -9 %s\n", p.name)
				}
			}
		}
	}()

	// Progress.
	progressCtx, stopProgress := context.WithCancel(ctx)
	defer stopProgress()
	go func() {
		for {
			select {
			case <-progressCtx.Done():
				return
			case <-time.After(5 * time.Second):
			}
			if all, err := orch.list(progressCtx, nil, since); err == nil {
				n := 0
				for _, r := range all {
					if finalStates[r.State] {
						n++
					}
				}
				finalN.Store(int64(n))
			}
			fmt.Printf("chaos: %4ds sent=%d/%d accepted=%d final=%d kills=%d pauses=%d broker_restarts=%d\n",
				int(time.Since(start).Seconds()), sentN.Load(), s.n, acceptedN.Load(), finalN.Load(), kills.Load(), pauses.Load(), restarts.Load())
		}
	}()

	// Send, at the rate asked, retrying what the faults refuse.
	jobs := make(chan *sent)
	var sendWG sync.WaitGroup
	for range s.concurrency {
		sendWG.Add(1)
		go func() {
			defer sendWG.Done()
			for q := range jobs {
				submit(ctx, orch, accounts, q)
				sentN.Add(1)
				if q.accepted {
					acceptedN.Add(1)
				}
			}
		}()
	}
	tick := time.NewTicker(time.Duration(float64(time.Second) / s.rate))
	for _, q := range reqs {
		select {
		case <-ctx.Done():
		case <-tick.C:
		}
		if ctx.Err() != nil {
			break
		}
		jobs <- q
	}
	tick.Stop()
	close(jobs)
	sendWG.Wait()
	if rest := s.minChaos - time.Since(start); rest > 0 && ctx.Err() == nil {
		select {
		case <-ctx.Done():
		case <-time.After(rest):
		}
	}
	stopChaos()
	chaosWG.Wait()
	res.requests, res.kills, res.pauses = len(reqs), int(kills.Load()), int(pauses.Load())
	fmt.Printf("chaos: faults stopped after %s: %d kills, %d pauses, %d graceful broker restarts; waiting (at most %s) for every request to end\n",
		time.Since(start).Round(time.Second), kills.Load(), pauses.Load(), restarts.Load(), s.wait)
	if ctx.Err() != nil {
		return res, ctx.Err()
	}

	// Wait for final states: every accepted request, account deletions'
	// found by their event id, and any request the run made without
	// hearing so (an answer lost to a kill).
	byEvent := map[string][]listed{}
	var all []listed
	waitEnd := time.Now().Add(s.wait)
	for {
		all, err = orch.list(ctx, nil, since)
		if err == nil {
			byID := map[string]listed{}
			for _, r := range all {
				byID[r.ID] = r
			}
			pending := 0
			for _, q := range reqs {
				if q.kind == "account-deletion" && q.eventID != "" && q.id == "" {
					if rs, err := orch.list(ctx, url.Values{"event_id": {q.eventID}}, time.Time{}); err == nil && len(rs) > 0 {
						q.id = rs[0].ID
						byEvent[q.eventID] = rs
					}
				}
				if q.accepted && (q.id == "" || !finalStates[byID[q.id].State]) {
					pending++
				}
			}
			pending += adopt(reqs, all)
			for _, r := range all {
				if !finalStates[r.State] {
					pending++
				}
			}
			finalN.Store(int64(len(all) - countOpen(all)))
			if pending == 0 {
				break
			}
		}
		if time.Now().After(waitEnd) || ctx.Err() != nil {
			break
		}
		time.Sleep(2 * time.Second)
	}
	stopProgress()
	fmt.Printf("chaos: %s after the start, %d requests in the store, %d of them ended\n", time.Since(start).Round(time.Second), len(all), len(all)-countOpen(all))

	// Account deletions: one request per event, however often announced.
	for ev := range collectEvents(reqs) {
		rs, err := orch.list(ctx, url.Values{"event_id": {ev}}, time.Time{})
		if err != nil {
			violation(&res, "cannot list the requests of event %s: %v", ev, err)
			continue
		}
		byEvent[ev] = rs
		if len(rs) > 1 {
			ids := []string{}
			for _, r := range rs {
				ids = append(ids, r.ID)
			}
			violation(&res, "account deletion event %s opened %d requests: %s", ev, len(rs), strings.Join(ids, " "))
		}
	}

	// Keys, then every certificate checked offline by lethectl verify.
	keys := filepath.Join(work, "keys.json")
	cmd := exec.CommandContext(ctx, bin("lethectl"), "keys", "export", "--api", orch.base, "-o", keys)
	cmd.Env = append(os.Environ(), "LETHE_TOKEN="+orch.token)
	if out, err := cmd.CombinedOutput(); err != nil {
		return res, fmt.Errorf("lethectl keys export: %v: %s", err, out)
	}
	state := map[string]listed{}
	for _, r := range all {
		state[r.ID] = r
	}
	tracked := map[string]bool{}
	var toVerify []string
	for _, q := range reqs {
		if q.id != "" {
			tracked[q.id] = true
			toVerify = append(toVerify, q.id)
		}
	}
	var orphans []string
	for _, r := range all {
		if !tracked[r.ID] {
			orphans = append(orphans, r.ID)
			toVerify = append(toVerify, r.ID)
		}
	}
	verified := verifyAll(ctx, orch, bin("lethectl"), keys, filepath.Join(work, "certs"), toVerify, state)

	// Lost: accepted and not final, or final without a verified certificate.
	var lostIDs, notAccepted []string
	for _, q := range reqs {
		switch {
		case q.ambiguous && !q.accepted:
			lostIDs = append(lostIDs, fmt.Sprintf("%s: the account is gone but no request was opened for it "+
				"(its account.deleted event never reached the orchestrator)", q.label()))
		case !q.accepted:
			notAccepted = append(notAccepted, q.label()+": "+q.note)
		case q.id == "":
			lostIDs = append(lostIDs, q.label()+" (no request found for it)")
		case !finalStates[state[q.id].State]:
			lostIDs = append(lostIDs, fmt.Sprintf("%s (%s, state %q)", q.id, q.kind, state[q.id].State))
		case verified[q.id] != "":
			lostIDs = append(lostIDs, fmt.Sprintf("%s (%s, %s: certificate %s)", q.id, q.kind, state[q.id].State, verified[q.id]))
		default:
			res.final++
			res.verified++
		}
	}
	for _, q := range reqs {
		if q.id != "" && finalStates[state[q.id].State] && verified[q.id] != "" {
			res.final++ // final, though its certificate failed
		}
	}
	res.lost = len(lostIDs)
	if len(lostIDs) > 0 {
		fmt.Printf("chaos: VIOLATION %d requests lost:\n  %s\n", len(lostIDs), strings.Join(lostIDs, "\n  "))
	}
	if len(notAccepted) > 0 {
		violation(&res, "%d requests were never accepted:\n  %s", len(notAccepted), strings.Join(notAccepted, "\n  "))
	}
	for _, id := range orphans {
		if !finalStates[state[id].State] || verified[id] != "" {
			violation(&res, "request %s (made by a submission whose answer was lost) is %q, certificate: %s", id, state[id].State, orDefault(verified[id], "verified"))
		}
	}
	byState := map[string]int{}
	for _, r := range all {
		byState[r.State]++
	}
	fmt.Printf("chaos: states %v; %d requests made without their answer reaching the sender\n", byState, len(orphans))

	// Stop everything gracefully, then read what only the files tell.
	stopAll()
	for _, name := range order {
		if c := procs[name].crashes; c > 0 {
			fmt.Printf("chaos: %s exited %d times by itself (restarted each time)\n", name, c)
		}
	}
	var doubled []string
	tasks := 0
	for _, sys := range systems {
		store, err := connector.OpenReceipts(filepath.Join(data, sys, "receipts.db"))
		if err != nil {
			violation(&res, "%s's receipt store: %v", sys, err)
			continue
		}
		counts, err := store.Applied(context.Background())
		store.Close()
		if err != nil {
			violation(&res, "%s's receipt store: %v", sys, err)
			continue
		}
		tasks += len(counts)
		for id, n := range counts {
			if n > 1 {
				doubled = append(doubled, fmt.Sprintf("%s (applied %d times)", id, n))
			}
		}
	}
	sort.Strings(doubled)
	res.doubled = len(doubled)
	fmt.Printf("chaos: %d erasure tasks with a stored receipt, %d applied more than once\n", tasks, len(doubled))
	if len(doubled) > 0 {
		fmt.Printf("chaos: VIOLATION effects applied twice:\n  %s\n", strings.Join(doubled, "\n  "))
	}

	// No erased person's email left anywhere but in billing's store.
	erased := map[string][]string{}
	for _, q := range reqs {
		if q.id != "" && q.kind != "export" {
			if st := state[q.id].State; st == "fulfilled" || st == "partially_retained" {
				erased[q.email] = append(erased[q.email], q.id)
			}
		}
	}
	found, files, others, err := scan(data, filepath.Join(data, "billing"), erased)
	if err != nil {
		violation(&res, "scanning the data directories: %v", err)
	}
	fmt.Printf("chaos: %d erased people's emails looked for in %d files under %s (billing aside); %d people not erased are found there\n",
		len(erased), files, data, others)
	if others == 0 && len(erased) < s.people {
		// The control: the people nobody erased must be found, or the scan proves nothing.
		violation(&res, "the scan found no email at all, not even of the people nobody erased: it proves nothing")
	}
	for _, f := range found {
		violation(&res, "%s", f)
	}
	return res, nil
}

// adopt gives each ambiguous account deletion one of the requests opened
// by an account deletion that no tracked deletion names; it returns how
// many are still without one.
func adopt(reqs []*sent, all []listed) int {
	known := map[string]bool{}
	for _, q := range reqs {
		if q.eventID != "" {
			known[q.eventID] = true
		}
	}
	var free []listed
	for _, r := range all {
		if r.Source == "account_deleted" && r.EventID != "" && !known[r.EventID] {
			free = append(free, r)
		}
	}
	left := 0
	for _, q := range reqs {
		if !q.ambiguous || q.eventID != "" {
			continue
		}
		if len(free) == 0 {
			left++
			continue
		}
		q.id, q.eventID, q.accepted, q.note = free[0].ID, free[0].EventID, true, ""
		free = free[1:]
		fmt.Printf("chaos: account deletion #%d, whose answer was lost, opened %s (event %s)\n", q.n, q.id, q.eventID)
	}
	return left
}

func orDefault(s, d string) string {
	if s == "" {
		return d
	}
	return s
}

func email(i int) string { return fmt.Sprintf("person-%04d@example.com", i) }

func countOpen(all []listed) int {
	n := 0
	for _, r := range all {
		if !finalStates[r.State] {
			n++
		}
	}
	return n
}

func collectEvents(reqs []*sent) map[string]bool {
	evs := map[string]bool{}
	for _, q := range reqs {
		if q.eventID != "" {
			evs[q.eventID] = true
		}
	}
	return evs
}

// submit sends one request, retrying through the faults for up to two
// minutes; an account deletion is announced twice.
func submit(ctx context.Context, orch, accounts *api, q *sent) {
	end := time.Now().Add(2 * time.Minute)
	wait := func() bool {
		if time.Now().After(end) || ctx.Err() != nil {
			return false
		}
		time.Sleep(time.Duration(300+rand.IntN(700)) * time.Millisecond)
		return true
	}
	if q.kind == "account-deletion" && !deleteAccount(ctx, accounts, q, wait) {
		// The person has no account in the demo system (the seed leaves
		// some without one): erase them through the API instead.
		q.kind, q.note = "erasure", "no account to delete: erased through the API"
	}
	if q.kind != "account-deletion" {
		body := map[string]any{"type": q.kind, "tenant": "demo", "subject": map[string]string{"email": q.email}, "verified": true}
		for {
			var out struct {
				ID string `json:"id"`
			}
			code, err := orch.do(ctx, http.MethodPost, "/v1/requests", body, &out)
			if err == nil && code == http.StatusAccepted && out.ID != "" {
				q.id, q.accepted = out.ID, true
				return
			}
			q.note = fmt.Sprintf("last answer: HTTP %d %v", code, err)
			if code >= 400 && code < 500 {
				return
			}
			if !wait() {
				return
			}
		}
	}
}

// deleteAccount deletes q's account through the accounts app's admin API,
// twice (the second finds it gone, or announces the same event again); it
// reports false if the account never existed.
func deleteAccount(ctx context.Context, accounts *api, q *sent, wait func() bool) bool {
	body := map[string]string{"tenant": "demo", "email": q.email}
	failed := false // an attempt whose answer was lost may have deleted it
	for round := 0; round < 2; round++ {
		for {
			var out struct {
				EventID string `json:"event_id"`
			}
			code, err := accounts.do(ctx, http.MethodPost, "/v1/accounts/delete", body, &out)
			if err == nil && code == http.StatusAccepted && out.EventID != "" {
				if q.eventID != "" && q.eventID != out.EventID {
					fmt.Printf("chaos: VIOLATION account deletion of #%d announced under two event ids, %s and %s\n", q.n, q.eventID, out.EventID)
				}
				q.eventID, q.accepted = out.EventID, true
				break
			}
			if err == nil && code == http.StatusNotFound && round == 0 && !failed {
				return false
			}
			if err == nil && code == http.StatusNotFound {
				// Deleted already: by the first announcement (the second
				// finds no account), or by one whose answer a kill cut.
				if q.eventID == "" {
					q.ambiguous = true
					q.note = "the account was gone before an answer named its event"
				}
				break
			}
			failed = true
			q.note = fmt.Sprintf("last answer: HTTP %d %v", code, err)
			if !wait() {
				return true
			}
		}
	}
	return true
}

// verifyAll fetches each request's certificate and has lethectl verify it
// offline; it returns, per id, "" for verified or why not.
func verifyAll(ctx context.Context, orch *api, lethectl, keys, dir string, ids []string, state map[string]listed) map[string]string {
	out := map[string]string{}
	var mu sync.Mutex
	jobs := make(chan string)
	var wg sync.WaitGroup
	for range 2 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for id := range jobs {
				why := verifyOne(ctx, orch, lethectl, keys, dir, id, state[id])
				mu.Lock()
				out[id] = why
				mu.Unlock()
			}
		}()
	}
	for _, id := range ids {
		jobs <- id
	}
	close(jobs)
	wg.Wait()
	return out
}

func verifyOne(ctx context.Context, orch *api, lethectl, keys, dir, id string, r listed) string {
	if !finalStates[r.State] {
		return "none (the request has not ended)"
	}
	var cert []byte
	var code int
	var err error
	for try := 0; try < 5; try++ {
		if code, err = orch.do(ctx, http.MethodGet, "/v1/requests/"+url.PathEscape(id)+"/certificate", nil, &cert); err == nil && code == http.StatusOK {
			break
		}
		time.Sleep(time.Second)
	}
	if err != nil || code != http.StatusOK {
		return fmt.Sprintf("not served (HTTP %d %v)", code, err)
	}
	var c struct {
		RequestID string `json:"request_id"`
		State     string `json:"state"`
	}
	if err := json.Unmarshal(cert, &c); err != nil {
		return "not JSON"
	}
	if c.RequestID != id || c.State != r.State {
		return fmt.Sprintf("for request %s in state %s, not %s in %s", c.RequestID, c.State, id, r.State)
	}
	path := filepath.Join(dir, id+".json")
	if err := os.WriteFile(path, cert, 0o600); err != nil {
		return err.Error()
	}
	if out, err := exec.CommandContext(ctx, lethectl, "verify", path, "--keys", keys).CombinedOutput(); err != nil {
		lines := strings.Split(strings.TrimSpace(string(out)), "\n")
		return fmt.Sprintf("does not verify (%v): %s", err, lines[len(lines)-1])
	}
	return ""
}

var emailRE = regexp.MustCompile(`(?i)person-[0-9]{4}@example\.com`)

// scan looks for the erased emails in the bytes of every file under root
// but skip.
// others counts the distinct emails found that were not erased: the
// control that the scan sees what is there.
func scan(root, skip string, erased map[string][]string) (found []string, files, others int, err error) {
	other := map[string]bool{}
	err = filepath.WalkDir(root, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			if errors.Is(err, fs.ErrNotExist) {
				return nil
			}
			return err
		}
		if d.IsDir() {
			if path == skip {
				return filepath.SkipDir
			}
			return nil
		}
		if !d.Type().IsRegular() {
			return nil
		}
		b, err := os.ReadFile(path)
		if err != nil {
			return err
		}
		files++
		seen := map[string]bool{}
		for _, m := range emailRE.FindAll(b, -1) {
			e := strings.ToLower(string(m))
			if ids, ok := erased[e]; ok && !seen[e] {
				seen[e] = true
				found = append(found, fmt.Sprintf("%s, erased by %s, is still in %s", e, strings.Join(ids, " "), path))
			} else if !ok {
				other[e] = true
			}
		}
		return nil
	})
	return found, files, len(other), err
}
