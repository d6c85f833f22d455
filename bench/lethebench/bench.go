// Package lethebench is Lethe's benchmark: in one process and one run it
// measures the bus's own ceiling for the pipeline's traffic, the pipeline
// itself on each pair of engines asked for, and a durable-workflow peer
// (Temporal) doing the same erasures, and reports each against the others.
package lethebench

import (
	"cmp"
	"context"
	"fmt"
	"io"
	"os"
	"runtime"
	"slices"
	"time"

	"github.com/lethe-dev/lethe/bench/temporalpeer"
	"github.com/lethe-dev/lethe/pkg/connector"
	"github.com/lethe-dev/lethe/pkg/connector/memsystem"
	"github.com/lethe-dev/lethe/pkg/durability"
	"github.com/lethe-dev/lethe/services/devstack"
)

// Options say what to run.
type Options struct {
	N       int // requests per pipeline run
	Clients int // concurrent senders (closed loop)
	// Backlog bounds the requests in flight (accepted, not ended) of the
	// closed-loop runs; 0: no bound.
	Backlog int
	Buses   []string
	Stores  []string
	Modes   []durability.Mode
	// DemoN requests also run over the SQLite demo systems (0: none).
	DemoN int
	// OpenRate and OpenSeconds: an open-loop run at that rate (0: none).
	OpenRate    float64
	OpenSeconds float64
	// PeerN workflows on the Temporal peer (0: none).
	PeerN int
	// Growth sizes, each a run of its own (nats+sqlite fast, memory).
	Growth []int
	// Work is the folder the runs keep their stores in.
	Work string
	// CPUProfile, when set, receives a CPU profile of the first pipeline
	// run's timed window only: what the pipeline costs, not the raw run,
	// the seeding or the certificates' verification.
	CPUProfile io.Writer
	// MemProfile, when set, receives a heap profile of the first pipeline
	// run, taken as its last request ends: what the process holds then.
	MemProfile io.Writer
	// Trace, when set, receives a runtime trace of a few seconds of the
	// first pipeline run's steady state: where each goroutine waits (the
	// store's writer for a CPU, a lock, the disk), which a CPU profile
	// does not show.
	Trace io.Writer
}

// Report is everything a run measured; it is what results/*.json hold.
type Report struct {
	Started   time.Time `json:"started"`
	GoVersion string    `json:"go_version"`
	CPUs      int       `json:"cpus"`
	N         int       `json:"n"`
	// Raw is the bus's ceiling, by "bus durability".
	Raw map[string]Raw `json:"raw"`
	// Floor is the security contract's own cost per request, and the
	// ratio it leaves room for.
	Floor  *Floor `json:"floor,omitempty"`
	Runs   []*Run `json:"runs"`
	Peer   *Peer  `json:"peer,omitempty"`
	Growth []*Run `json:"growth,omitempty"`
	// The headline, of the embedded default (nats+sqlite, fast, in-memory
	// systems): pipeline events/s over raw events/s, requests/s, the p99
	// (of the open-loop run when there is one), and requests/s over the
	// peer's workflows/s.
	Ratio         float64 `json:"ratio"`
	RPS           float64 `json:"rps"`
	P99           float64 `json:"p99_ms"`
	TemporalRatio float64 `json:"temporal_ratio"`
}

// Peer is the Temporal peer's run.
type Peer struct {
	Workflows int     `json:"workflows"`
	Seconds   float64 `json:"seconds"`
	RPS       float64 `json:"workflows_per_sec"`
	Latency   Latency `json:"latency_ms"`
}

// Bench runs what opts say, drawing progress on bar.
func Bench(ctx context.Context, opts Options, bar *Bar) (*Report, error) {
	rep := &Report{Started: time.Now().UTC(), GoVersion: runtime.Version(), CPUs: runtime.NumCPU(), N: opts.N, Raw: map[string]Raw{}}
	for _, b := range opts.Buses {
		for _, mode := range opts.Modes {
			key := rawKey(b, mode)
			if _, ok := rep.Raw[key]; ok {
				continue
			}
			raw, err := runRaw(ctx, opts.Work, b, mode, opts.N, bar)
			if err != nil {
				return nil, fmt.Errorf("raw %s: %w", key, err)
			}
			rep.Raw[key] = raw
		}
	}
	dir, err := tempDir(opts.Work, "floor")
	if err != nil {
		return nil, err
	}
	floor, err := runFloor(ctx, dir, min(opts.N, floorMax), bar)
	os.RemoveAll(dir)
	if err != nil {
		return nil, err
	}
	rep.Floor = &floor
	add := func(name string, e Engines, load Load) (*Run, error) {
		load.Profile, opts.CPUProfile = opts.CPUProfile, nil
		load.HeapProfile, opts.MemProfile = opts.MemProfile, nil
		load.Trace, opts.Trace = opts.Trace, nil
		run, err := runPipeline(ctx, opts.Work, e, load, bar)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", name, err)
		}
		run.Name = name
		return run, nil
	}
	var headline *Run
	for _, b := range opts.Buses {
		for _, st := range opts.Stores {
			for _, mode := range opts.Modes {
				e := Engines{Bus: b, Store: st, Durability: mode, Systems: "memory"}
				run, err := add(fmt.Sprintf("%s+%s %s", b, st, mode), e, Load{N: opts.N, Clients: opts.Clients, Backlog: opts.Backlog})
				if err != nil {
					return nil, err
				}
				rep.Runs = append(rep.Runs, run)
				if b == "nats" && st == "sqlite" && (headline == nil || mode.IsFast()) {
					headline = run
				}
			}
		}
	}
	if opts.DemoN > 0 {
		e := Engines{Bus: "nats", Store: "sqlite", Durability: durability.Fast, Systems: "sqlite"}
		run, err := add("nats+sqlite fast, demo systems", e, Load{N: opts.DemoN, Clients: opts.Clients, Backlog: opts.Backlog})
		if err != nil {
			return nil, err
		}
		rep.Runs = append(rep.Runs, run)
	}
	var open *Run
	if opts.OpenRate > 0 {
		e := Engines{Bus: "nats", Store: "sqlite", Durability: durability.Fast, Systems: "memory"}
		n := max(1, int(opts.OpenRate*opts.OpenSeconds))
		run, err := add(fmt.Sprintf("nats+sqlite fast, open loop %.0f/s", opts.OpenRate), e, Load{N: n, Rate: opts.OpenRate})
		if err != nil {
			return nil, err
		}
		rep.Runs = append(rep.Runs, run)
		open = run
	}
	for _, n := range opts.Growth {
		e := Engines{Bus: "nats", Store: "sqlite", Durability: durability.Fast, Systems: "memory"}
		run, err := add(fmt.Sprintf("growth %d", n), e, Load{N: n, Clients: opts.Clients, Backlog: opts.Backlog})
		if err != nil {
			return nil, err
		}
		rep.Growth = append(rep.Growth, run)
	}
	if opts.PeerN > 0 {
		peer, err := runPeer(ctx, opts.PeerN, bar)
		if err != nil {
			return nil, fmt.Errorf("temporal peer: %w", err)
		}
		rep.Peer = peer
	}
	if headline != nil {
		if raw, ok := rep.Raw[rawKey("nats", headline.Engines.Durability)]; ok {
			rep.Ratio = headline.EventsPerSec / raw.EventsPerSec
			perRequest := float64(2 * len(systems)) // messages
			rawRPS := raw.EventsPerSec / perRequest
			rep.Floor.Bound = ratioBound(floor.Cores, floor.CPUPerRequest, raw.CPUSeconds/(float64(raw.Messages)/perRequest), rawRPS)
			rep.Floor.BoundRPS = rep.Floor.Bound * rawRPS
		}
		rep.RPS, rep.P99 = headline.RPS, headline.Latency.P99
		if open != nil {
			rep.P99 = open.Latency.P99
		}
		if rep.Peer != nil && rep.Peer.RPS > 0 {
			rep.TemporalRatio = headline.RPS / rep.Peer.RPS
		}
	}
	return rep, nil
}

func rawKey(bus string, mode durability.Mode) string {
	if bus == "kafka" {
		return "kafka" // kfake keeps its log in memory: one mode
	}
	return bus + " " + mode.String()
}

// rawShort is how long a raw run must last to be taken alone. A shorter
// one (the fast modes at a few thousand requests: a second or so) swung
// from ~52,000 to ~84,000 events/s between runs a minute apart on two
// cores, and the ratio with it, so its ceiling is the median of rawRepeats
// runs.
const (
	rawShort   = 5 * time.Second
	rawRepeats = 3
)

// runRaw measures the bus's ceiling: one run, or the median of
// rawRepeats when a run is short (rawShort).
func runRaw(ctx context.Context, work, bus string, mode durability.Mode, n int, bar *Bar) (Raw, error) {
	var runs []Raw
	for len(runs) < rawRepeats {
		name := "raw " + rawKey(bus, mode)
		if len(runs) > 0 {
			name += fmt.Sprintf(" (%d/%d)", len(runs)+1, rawRepeats)
		}
		r, err := runRawOnce(ctx, work, bus, mode, n, name, bar)
		if err != nil {
			return Raw{}, err
		}
		if len(runs) == 0 && r.Seconds >= rawShort.Seconds() {
			return r, nil
		}
		runs = append(runs, r)
	}
	med := medianRaw(runs)
	for _, r := range runs {
		med.Runs = append(med.Runs, r.EventsPerSec)
	}
	return med, nil
}

// medianRaw is the run of the median events/s.
func medianRaw(runs []Raw) Raw {
	sorted := slices.Clone(runs)
	slices.SortFunc(sorted, func(a, b Raw) int { return cmp.Compare(a.EventsPerSec, b.EventsPerSec) })
	return sorted[len(sorted)/2]
}

func runRawOnce(ctx context.Context, work, bus string, mode durability.Mode, n int, name string, bar *Bar) (Raw, error) {
	quiet(ctx, bar)
	dir, err := tempDir(work, "raw")
	if err != nil {
		return Raw{}, err
	}
	defer os.RemoveAll(dir)
	bar.Start(name, n)
	defer bar.Done()
	switch bus {
	case "nats":
		return rawNATS(ctx, dir, mode, n, systems, bar.Set)
	case "kafka":
		c, err := startKfake()
		if err != nil {
			return Raw{}, err
		}
		defer c.Close()
		return rawKafka(ctx, c.ListenAddrs(), n, systems, bar.Set)
	}
	return Raw{}, fmt.Errorf("unknown bus %q", bus)
}

// runPeer runs the same erasures as Temporal workflows, each activity
// erasing from the same in-memory system a connector would.
func runPeer(ctx context.Context, n int, bar *Bar) (*Peer, error) {
	quiet(ctx, bar)
	mem := devstack.MemorySystems(n)
	bar.Start("temporal peer", n)
	res, err := temporalpeer.Run(ctx, temporalpeer.Config{N: n, Systems: systems, Progress: bar.Set,
		Subject: func(i int) string { return memsystem.Person(i + 1) }, // the people MemorySystems seeded
		Work: func(ctx context.Context, system, subject string) error {
			_, err := mem[system].Erase(ctx, connector.Task{Subject: connector.Subject{Email: subject}})
			return err
		}})
	bar.Done()
	if err != nil {
		return nil, err
	}
	ms := make([]float64, len(res.Latencies))
	for i, d := range res.Latencies {
		ms[i] = float64(d.Microseconds()) / 1000
	}
	return &Peer{Workflows: res.Done, Seconds: res.Elapsed.Seconds(), RPS: float64(res.Done) / res.Elapsed.Seconds(), Latency: percentiles(ms)}, nil
}

// Line is the last line of the output, for scripts.
func (r *Report) Line() string {
	return fmt.Sprintf("ratio=%.3f rps=%.0f p99_ms=%.0f temporal_ratio=%.1f", r.Ratio, r.RPS, r.P99, r.TemporalRatio)
}

// Table writes the runs side by side.
func (r *Report) Table(w io.Writer) {
	fmt.Fprintf(w, "\nraw ceiling (a task and a receipt per system per request, async publish, explicit acks):\n")
	for k, raw := range r.Raw {
		fmt.Fprintf(w, "  %-14s %9.0f events/s (%d messages in %.2fs)", k, raw.EventsPerSec, raw.Messages, raw.Seconds)
		if len(raw.Runs) > 1 {
			fmt.Fprintf(w, ", the median of %d runs:", len(raw.Runs))
			for _, e := range raw.Runs {
				fmt.Fprintf(w, " %.0f", e)
			}
		}
		fmt.Fprintln(w)
	}
	if f := r.Floor; f != nil {
		fmt.Fprintf(w, "contract floor (per request %d signatures, %d signature checks, %d X25519 multiplications; no store, no bus):\n", f.Signatures, f.Checks, f.ScalarMults)
		fmt.Fprintf(w, "  %.0f requests/s on %d cores, %.2f ms CPU/request", f.RPS, f.Cores, 1000*f.CPUPerRequest)
		if f.Bound > 0 {
			fmt.Fprintf(w, "; with the bus's own work, no pipeline here passes %.3f of the raw ceiling", f.Bound)
		}
		fmt.Fprintln(w)
	}
	fmt.Fprintf(w, "\n%-44s %8s %9s %7s %8s %8s %8s %8s %9s %9s %7s\n", "pipeline run", "req/s", "events/s", ":raw", "p50 ms", "p90 ms", "p99 ms", "RSS MB", "store B/r", "CPU ms/r", "writer")
	row := func(run *Run) {
		ratio := "-"
		if raw, ok := r.Raw[rawKey(run.Engines.Bus, run.Engines.Durability)]; ok && run.Rate == 0 {
			ratio = fmt.Sprintf("%.3f", run.EventsPerSec/raw.EventsPerSec)
		}
		writer := "-"
		if run.StoreBusy > 0 {
			writer = fmt.Sprintf("%.0f%%", 100*run.StoreBusy)
		}
		fmt.Fprintf(w, "%-44s %8.0f %9.0f %7s %8.1f %8.1f %8.1f %8.0f %9.0f %9.2f %7s\n", run.Name, run.RPS, run.EventsPerSec, ratio,
			run.Latency.P50, run.Latency.P90, run.Latency.P99, float64(run.PeakRSS)/(1<<20), run.StorePerRequest, run.CPUPerRequest*1000, writer)
	}
	for _, run := range r.Runs {
		row(run)
	}
	if r.Peer != nil {
		fmt.Fprintf(w, "%-44s %8.0f %9s %7s %8.1f %8.1f %8.1f\n", fmt.Sprintf("temporal peer (%d workflows)", r.Peer.Workflows), r.Peer.RPS, "-", "-",
			r.Peer.Latency.P50, r.Peer.Latency.P90, r.Peer.Latency.P99)
	}
	if len(r.Growth) > 0 {
		fmt.Fprintf(w, "\ncost growth (nats+sqlite fast, in-memory systems):\n%10s %8s %8s %10s %10s %12s %10s %10s\n",
			"requests", "seconds", "req/s", "peak RSS", "end RSS", "store bytes", "B/request", "CPU ms/r")
		for _, g := range r.Growth {
			end := int64(0)
			if len(g.Timeline) > 0 {
				end = g.Timeline[len(g.Timeline)-1].RSS
			}
			fmt.Fprintf(w, "%10d %8.1f %8.0f %9.0fM %9.0fM %12d %10.0f %10.2f\n", g.Requests, g.Seconds, g.RPS,
				float64(g.PeakRSS)/(1<<20), float64(end)/(1<<20), g.StoreBytes, g.StorePerRequest, g.CPUPerRequest*1000)
		}
	}
	fmt.Fprintln(w)
}

// quiet lets the disk settle before a timed phase (see settle), and says
// so when that took a while.
func quiet(ctx context.Context, bar *Bar) {
	if d := settle(ctx); d >= time.Second {
		bar.Say("waited %.0f s for the disk to write what the last run left", d.Seconds())
	}
}
