// Package connectorcmd is the main of a connector binary: flags, bus from a
// URL, signals, metrics endpoint. It links the bus adapters (and so the
// broker clients); package connector, which a connector author builds the
// system on, links none.
//
//	func main() {
//		fs := flag.NewFlagSet(mysystem.Name, flag.ContinueOnError)
//		os.Exit(connectorcmd.Main(mysystem.Name, fs, mysystem.Open))
//	}
package connectorcmd

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"log/slog"
	"net/http"
	"os"
	"os/signal"
	"path/filepath"
	"syscall"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/lethe-dev/lethe/pkg/bus/busurl"
	"github.com/lethe-dev/lethe/pkg/connector"
	"github.com/lethe-dev/lethe/pkg/envflag"
)

// DefaultNATS is where connectors look for the bus by default: the server
// the orchestrator embeds in `make run` (not 4222, which a machine's own
// NATS server may hold).
const DefaultNATS = "nats://127.0.0.1:4223"

// Main is the whole main of a connector binary. It adds the common flags to
// fs (which may hold the connector's own), parses os.Args, connects to the
// bus, opens the system, seeds it if asked, and serves it with
// [connector.Start] until SIGINT or SIGTERM. It returns the process exit
// code.
func Main(system string, fs *flag.FlagSet, open connector.Opener) int {
	busURL := fs.String("bus", envflag.Or("LETHE_BUS", envflag.Or("LETHE_NATS", DefaultNATS)), "nats://host:4222 or kafka://host1:9092,host2:9092 (env LETHE_BUS)")
	fs.StringVar(busURL, "nats", *busURL, "the same as --bus (older name)")
	dataDir := fs.String("data", filepath.Join("data", system), "directory for the system's files and receipts")
	orchestratorKey := fs.String("orchestrator-key", envflag.Or("LETHE_ORCHESTRATOR_KEY", filepath.Join("data", "orchestrator", "signing.key.pub")),
		"the orchestrator's public key entry (its signing.key.pub): a task it did not sign is refused (env LETHE_ORCHESTRATOR_KEY)")
	seed := fs.Int("seed", 0, "fill the demo system with this many sample people first (person-0001@example.com, ...)")
	metricsAddr := fs.String("metrics-listen", "", "serve /metrics and /healthz on this address (empty: off)")
	level := fs.String("log-level", "info", "debug, info, warn or error")
	if err := fs.Parse(os.Args[1:]); err != nil {
		return 2
	}
	var lvl slog.Level
	if err := lvl.UnmarshalText([]byte(*level)); err != nil {
		fmt.Fprintf(os.Stderr, "%s: bad --log-level: %v\n", system, err)
		return 2
	}
	logger := slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: lvl})).With("service", system)
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := serve(ctx, system, *busURL, *dataDir, *seed, *metricsAddr, *orchestratorKey, logger, open); err != nil {
		logger.Error("connector failed", "err", err)
		return 1
	}
	return 0
}

func serve(ctx context.Context, system, busURL, dataDir string, seed int, metricsAddr, orchestratorKey string, logger *slog.Logger, open connector.Opener) error {
	reg := prometheus.NewRegistry()
	reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	b, err := busurl.Dial(ctx, busURL, busurl.Options{Name: "lethe-" + system, Logger: logger})
	if err != nil {
		return err
	}
	defer b.Close()
	taskKeys, err := connector.OrchestratorKey(orchestratorKey)
	if err != nil {
		return fmt.Errorf("%w (start the orchestrator first, or pass --orchestrator-key)", err)
	}
	env := connector.Env{DataDir: dataDir, Bus: b, Logger: logger, Registerer: reg, TaskKeys: taskKeys}
	sys, err := open(ctx, env)
	if err != nil {
		return fmt.Errorf("open %s: %w", system, err)
	}
	if c, ok := sys.(interface{ Close() error }); ok {
		defer c.Close()
	}
	if seed > 0 {
		s, ok := sys.(connector.Seeder)
		if !ok {
			return fmt.Errorf("%s cannot be seeded", system)
		}
		if err := s.Seed(ctx, seed); err != nil {
			return fmt.Errorf("seed %s: %w", system, err)
		}
		logger.Info("seeded demo system", "people", seed)
	}
	if metricsAddr != "" {
		srv := &http.Server{Addr: metricsAddr, Handler: metricsMux(reg), ReadHeaderTimeout: 5 * time.Second}
		go func() {
			if err := srv.ListenAndServe(); err != nil && !errors.Is(err, http.ErrServerClosed) {
				logger.Error("metrics server", "err", err)
			}
		}()
		defer srv.Close()
	}
	return connector.Start(ctx, system, env, sys)
}

func metricsMux(reg *prometheus.Registry) *http.ServeMux {
	mux := http.NewServeMux()
	mux.Handle("GET /metrics", promhttp.HandlerFor(reg, promhttp.HandlerOpts{}))
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, _ *http.Request) { fmt.Fprintln(w, "ok") })
	return mux
}
