// Command lethe-bench is what `make bench` runs: the bus's ceiling, the
// pipeline on the engines asked for, and the Temporal peer, in one process
// and one run (see package lethebench). `lethe-bench compare BASELINE
// RESULT` warns when a result's ratio fell more than 20% below the
// baseline's.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/lethe-dev/lethe/bench/lethebench"
	"github.com/lethe-dev/lethe/pkg/durability"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if len(os.Args) > 1 && os.Args[1] == "compare" {
		os.Exit(compare(os.Args[2:], os.Stdout, os.Stderr))
	}
	os.Exit(run(ctx, os.Args[1:], os.Stdout, os.Stderr))
}

func envInt(name string, def int) int {
	if v, err := strconv.Atoi(os.Getenv(name)); err == nil {
		return v
	}
	return def
}

func run(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("lethe-bench", flag.ContinueOnError)
	fs.SetOutput(stderr)
	n := fs.Int("n", envInt("BENCH_N", 20000), "erasure requests per pipeline run (env BENCH_N)")
	clients := fs.Int("clients", 64, "concurrent senders of the closed-loop runs")
	backlog := fs.Int("backlog", envInt("BENCH_BACKLOG", 2000), "requests in flight (accepted, not ended) at most in the closed-loop runs; 0: no bound, all sent at once (env BENCH_BACKLOG)")
	buses := fs.String("bus", "nats", "buses, comma-separated: nats (embedded), kafka (kfake in process)")
	stores := fs.String("store", "sqlite", "orchestrator stores, comma-separated: sqlite, postgres (needs LETHE_TEST_POSTGRES_DSN)")
	modes := fs.String("durability", "fast,strict", "durability modes, comma-separated: fast, strict")
	demoN := fs.Int("demo-n", -1, "requests of the run over the SQLite demo systems (-1: as -n, at most 5000; 0: none)")
	openRate := fs.Float64("open-rate", 200, "requests/s of the open-loop latency run (0: none)")
	openSeconds := fs.Float64("open-seconds", 20, "length of the open-loop run")
	peerN := fs.Int("peer-n", -1, "workflows of the Temporal peer (-1: as -n, at most 2000; 0: none)")
	growth := fs.String("growth", os.Getenv("BENCH_GROWTH"), "cost growth: comma-separated sizes, a run each (e.g. 1000,10000,100000; env BENCH_GROWTH)")
	out := fs.String("out", "bench/results", "folder of the JSON result and the SVG plot")
	work := fs.String("work", "", "folder of the runs' stores, each removed after its run (default: a new temporary folder)")
	cpuProfile := fs.String("cpuprofile", "", "write a CPU profile of the first pipeline run's timed window to this file")
	memProfile := fs.String("memprofile", "", "write a heap profile of the first pipeline run, as its last request ends, to this file")
	traceFile := fs.String("trace", "", "write a runtime trace of 3 s of the first pipeline run's steady state to this file (go tool trace)")
	baseline := fs.String("baseline", "", "a committed result to compare with (warns when the ratio fell by more than 20%)")
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return 0
		}
		return 2
	}
	if *work == "" {
		dir, err := os.MkdirTemp("", "lethe-bench-")
		if err != nil {
			fmt.Fprintf(stderr, "lethe-bench: %v\n", err)
			return 1
		}
		defer os.RemoveAll(dir)
		*work = dir
	}
	opts := lethebench.Options{N: *n, Clients: *clients, Backlog: *backlog, Buses: split(*buses), Stores: split(*stores), OpenRate: *openRate,
		OpenSeconds: *openSeconds, Work: *work, DemoN: *demoN, PeerN: *peerN}
	if opts.DemoN < 0 {
		opts.DemoN = min(*n, 5000)
	}
	if opts.PeerN < 0 {
		opts.PeerN = min(*n, 2000)
	}
	for _, m := range split(*modes) {
		mode, err := durability.Parse(m)
		if err != nil {
			fmt.Fprintf(stderr, "lethe-bench: -durability: %v\n", err)
			return 2
		}
		opts.Modes = append(opts.Modes, mode)
	}
	for _, g := range split(*growth) {
		size, err := strconv.Atoi(g)
		if err != nil || size <= 0 {
			fmt.Fprintf(stderr, "lethe-bench: -growth: %q is not a number of requests\n", g)
			return 2
		}
		opts.Growth = append(opts.Growth, size)
	}
	if *n <= 0 || *clients <= 0 || *backlog < 0 || len(opts.Buses) == 0 || len(opts.Stores) == 0 || len(opts.Modes) == 0 {
		fmt.Fprintln(stderr, "lethe-bench: -n and -clients must be positive, -backlog not negative; -bus, -store and -durability name at least one")
		return 2
	}
	for _, p := range []struct {
		path string
		to   *io.Writer
	}{{*cpuProfile, &opts.CPUProfile}, {*memProfile, &opts.MemProfile}, {*traceFile, &opts.Trace}} {
		if p.path == "" {
			continue
		}
		f, err := os.Create(p.path)
		if err != nil {
			fmt.Fprintf(stderr, "lethe-bench: %v\n", err)
			return 2
		}
		defer f.Close()
		*p.to = f
	}

	rep, err := lethebench.Bench(ctx, opts, lethebench.NewBar(stderr))
	if err != nil {
		fmt.Fprintf(stderr, "lethe-bench: %v\n", err)
		return 1
	}
	rep.Table(stdout)
	if err := os.MkdirAll(*out, 0o755); err != nil {
		fmt.Fprintf(stderr, "lethe-bench: %v\n", err)
		return 1
	}
	stamp := rep.Started.Format("20060102-150405")
	jsonPath, svgPath := filepath.Join(*out, stamp+".json"), filepath.Join(*out, stamp+".svg")
	if err := writeResults(rep, jsonPath, svgPath, filepath.Join(*out, "latest.json"), filepath.Join(*out, "latest.svg")); err != nil {
		fmt.Fprintf(stderr, "lethe-bench: %v\n", err)
		return 1
	}
	fmt.Fprintf(stdout, "results: %s, plot: %s (took %s)\n", jsonPath, svgPath, time.Since(rep.Started).Round(time.Second))
	if *baseline != "" {
		if base, err := lethebench.ReadReport(*baseline); err != nil {
			fmt.Fprintf(stdout, "no comparison: %v\n", err)
		} else {
			fmt.Fprintln(stdout, lethebench.Compare(base, rep))
		}
	}
	fmt.Fprintln(stdout, rep.Line())
	return 0
}

func writeResults(rep *lethebench.Report, paths ...string) error {
	for i := 0; i < len(paths); i += 2 {
		if err := rep.WriteJSON(paths[i]); err != nil {
			return err
		}
		f, err := os.Create(paths[i+1])
		if err != nil {
			return err
		}
		err = errors.Join(rep.SVG(f), f.Close())
		if err != nil {
			return err
		}
	}
	return nil
}

func split(s string) []string {
	var out []string
	for _, p := range strings.Split(s, ",") {
		if p = strings.TrimSpace(p); p != "" {
			out = append(out, p)
		}
	}
	return out
}

// compare exits 0 with a line when the result holds up against the
// baseline, and warns (exit 0 still: machines differ) when its ratio fell
// by more than 20%; 2 for files it cannot read.
func compare(args []string, stdout, stderr io.Writer) int {
	if len(args) != 2 {
		fmt.Fprintln(stderr, "usage: lethe-bench compare BASELINE.json RESULT.json")
		return 2
	}
	base, err := lethebench.ReadReport(args[0])
	if err != nil {
		fmt.Fprintf(stderr, "lethe-bench compare: %v\n", err)
		return 2
	}
	res, err := lethebench.ReadReport(args[1])
	if err != nil {
		fmt.Fprintf(stderr, "lethe-bench compare: %v\n", err)
		return 2
	}
	fmt.Fprintln(stdout, lethebench.Compare(base, res))
	return 0
}
