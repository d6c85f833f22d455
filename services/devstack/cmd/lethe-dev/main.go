// Command lethe-dev runs the whole pipeline in one process on the embedded
// default: what `make run` starts.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net/url"
	"os"
	"os/signal"
	"path/filepath"
	"strings"
	"syscall"

	"github.com/lethe-dev/lethe/pkg/deadline"
	"github.com/lethe-dev/lethe/pkg/durability"
	"github.com/lethe-dev/lethe/pkg/envflag"
	"github.com/lethe-dev/lethe/services/devstack"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	os.Exit(run(ctx, os.Args[1:], os.Stdout, os.Stderr))
}

// devRateLimit is the local API's calls per second per token: above what
// the pipeline finishes (a few hundred requests a second), so a client that
// submits and polls is never turned away.
const devRateLimit = 1000

// run is the whole command; it returns the exit code: 2 for bad flags or
// files named by them, 1 for a stack that failed to start or stopped with
// errors.
func run(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	cfg := devstack.Config{}
	fs := flag.NewFlagSet("lethe-dev", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.StringVar(&cfg.DataDir, "data", "data", "directory for every store")
	fs.StringVar(&cfg.Listen, "listen", "127.0.0.1:8080", "orchestrator HTTP API")
	fs.IntVar(&cfg.NATSPort, "nats-port", 4223, "port of the embedded NATS server, for connectors run as separate binaries")
	fs.StringVar(&cfg.AccountsListen, "accounts-listen", "127.0.0.1:8081", "admin API of the demo accounts app")
	fs.IntVar(&cfg.People, "people", 300, "demo people to seed")
	without := fs.String("without", "", "comma-separated connectors not to start (a system that is down, for demos of retries and alerts)")
	tenants := fs.String("tenants", "", "YAML file of the tenants' deadline policies (time zone, roll to working days, holidays); empty: every deadline in UTC")
	durable := fs.String("durability", envflag.Or(durability.EnvVar, durability.Strict.String()),
		"strict: an fsync per commit and publish, so nothing acknowledged is lost on a power cut (the embedded NATS server's JetStream syncs always, SQLite synchronous=FULL); "+
			"fast: the engines sync later (JetStream every 2 minutes, synchronous=NORMAL), so a power cut may lose the last seconds of acknowledged work, a crash does not (env "+durability.EnvVar+")")
	fs.IntVar(&cfg.Orchestrator.MaxAttempts, "max-attempts", 0, "attempts per task before it is dead-lettered and its request fails (0: the orchestrator's default)")
	fs.DurationVar(&cfg.Orchestrator.RetryInitial, "retry-initial", 0, "first wait for a task's answer, doubled per attempt (0: the orchestrator's default)")
	// One operator on loopback: the limit that shields a shared API from a
	// runaway client would make the operator's own bulk load (a list of
	// erasures, a load test) the slow part of the pipeline.
	fs.Float64Var(&cfg.Orchestrator.RateLimit, "rate-limit", devRateLimit, "calls per second per token (bursts of twice that; negative: no limit); a deployed orchestrator's default is 20")
	witnessBin := fs.String("witness", "", "lethe-witness binary to run as the log's witness, a process of its own (default: the one beside this binary, if any; \"none\": no witness)")
	fs.StringVar(&cfg.WitnessListen, "witness-listen", "127.0.0.1:8095", "where the witness listens")
	fs.StringVar(&cfg.Orchestrator.NoticeWebhook, "notice-webhook", "", "http(s) URL that receives each notice to a data subject (a deadline extension) as a signed JSON POST, besides the bus topic notice.v1")
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return 0
		}
		return 2
	}
	if cfg.Orchestrator.MaxAttempts < 0 || cfg.Orchestrator.RetryInitial < 0 {
		fmt.Fprintln(stderr, "lethe-dev: --max-attempts and --retry-initial cannot be negative")
		return 2
	}
	if fs.NArg() > 0 {
		fmt.Fprintf(stderr, "lethe-dev: unexpected arguments: %s\n", strings.Join(fs.Args(), " "))
		return 2
	}
	mode, err := durability.Parse(*durable)
	if err != nil {
		fmt.Fprintf(stderr, "lethe-dev: bad --durability (or %s): %v\n", durability.EnvVar, err)
		return 2
	}
	cfg.Durability = mode
	if *without != "" {
		cfg.Without = strings.Split(*without, ",")
	}
	if *tenants != "" {
		t, err := deadline.LoadTenants(*tenants)
		if err != nil {
			fmt.Fprintf(stderr, "lethe-dev: --tenants %s: %v\n", *tenants, err)
			return 2
		}
		cfg.Orchestrator.Deadlines = t
	}
	if w := cfg.Orchestrator.NoticeWebhook; w != "" {
		// The orchestrator checks it too; here a typo is a usage error,
		// reported before anything starts. The URL is not repeated: it may
		// hold a token.
		if u, err := url.Parse(w); err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
			fmt.Fprintln(stderr, "lethe-dev: --notice-webhook must be an http:// or https:// URL")
			return 2
		}
	}
	switch *witnessBin {
	case "none":
	case "":
		// make run builds lethe-witness beside lethe-dev: the log is then
		// witnessed by a process of its own, as a customer's witness would.
		if exe, err := os.Executable(); err == nil {
			if bin := filepath.Join(filepath.Dir(exe), "lethe-witness"); fileExists(bin) {
				cfg.Witness = bin
			}
		}
	default:
		cfg.Witness = *witnessBin
	}
	cfg.Logger = slog.New(slog.NewTextHandler(stderr, nil))

	s, err := devstack.Start(ctx, cfg)
	if err != nil {
		cfg.Logger.Error("lethe-dev could not start", "err", err)
		return 1
	}
	devstack.Banner(stdout, s)
	if err := s.Wait(); err != nil {
		cfg.Logger.Error("lethe-dev stopped with errors", "err", err)
		return 1
	}
	fmt.Fprintln(stdout, "lethe-dev stopped")
	return 0
}

func fileExists(path string) bool {
	st, err := os.Stat(path)
	return err == nil && !st.IsDir()
}
