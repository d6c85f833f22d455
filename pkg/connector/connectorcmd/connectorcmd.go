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
	"bytes"
	"cmp"
	"context"
	"errors"
	"flag"
	"fmt"
	"log/slog"
	"net/http"
	"os"
	"os/signal"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/lethe-dev/lethe/pkg/blob"
	"github.com/lethe-dev/lethe/pkg/bus"
	"github.com/lethe-dev/lethe/pkg/bus/busurl"
	"github.com/lethe-dev/lethe/pkg/bus/natsauth"
	"github.com/lethe-dev/lethe/pkg/connector"
	"github.com/lethe-dev/lethe/pkg/durability"
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
	busURL := fs.String("bus", envflag.Or("LETHE_BUS", envflag.Or("LETHE_NATS", DefaultNATS)),
		"nats://host:4222[?nkey_seed=FILE] or kafka://host1:9092,host2:9092 (env LETHE_BUS); on NATS the user's seed defaults to LETHE_NATS_NKEY_SEED, else <data>/nats.seed")
	fs.StringVar(busURL, "nats", *busURL, "the same as --bus (older name)")
	var tlsFiles busurl.Options
	fs.StringVar(&tlsFiles.TLSCA, "bus-tls-ca", envflag.Or("LETHE_BUS_TLS_CA", ""), "CA certificates (PEM) that the broker's certificate must chain to; implies TLS (env LETHE_BUS_TLS_CA)")
	fs.StringVar(&tlsFiles.TLSCert, "bus-tls-cert", envflag.Or("LETHE_BUS_TLS_CERT", ""), "client certificate (PEM) shown to the broker, with --bus-tls-key (env LETHE_BUS_TLS_CERT)")
	fs.StringVar(&tlsFiles.TLSKey, "bus-tls-key", envflag.Or("LETHE_BUS_TLS_KEY", ""), "the client certificate's key (PEM) (env LETHE_BUS_TLS_KEY)")
	dataDir := fs.String("data", filepath.Join("data", system), "directory for the system's files and receipts")
	orchestratorKey := fs.String("orchestrator-key", envflag.Or("LETHE_ORCHESTRATOR_KEY", filepath.Join("data", "orchestrator", "signing.key.pub")),
		"the orchestrator's public key entry (its signing.key.pub): a task it did not sign is refused (env LETHE_ORCHESTRATOR_KEY)")
	blobsURL := fs.String("blobs", envflag.Or("LETHE_BLOBS", ""),
		"where exports are written, encrypted, for the orchestrator to read: a folder, or s3://bucket/prefix?endpoint=host:port (credentials from AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY) (env LETHE_BLOBS; default: blobs in the folder that holds --data)")
	subjectKey := fs.String("subject-key", envflag.Or("LETHE_SUBJECT_KEY_FILE", filepath.Join("data", "orchestrator", "hash.key")),
		"the orchestrator's subject hash key (its hash.key), which a re-application after a restore names people by; without it such tasks fail (env LETHE_SUBJECT_KEY_FILE)")
	seed := fs.Int("seed", 0, "fill the demo system with this many sample people first (person-0001@example.com, ...)")
	metricsAddr := fs.String("metrics-listen", "", "serve /metrics and /healthz on this address (empty: off)")
	durable := fs.String("durability", envflag.Or(durability.EnvVar, durability.Strict.String()),
		"strict (an fsync per commit of the receipt store and the system's SQLite files: nothing acknowledged is lost on a power cut) "+
			"or fast (synchronous=NORMAL: a power cut may lose the last seconds of acknowledged work, a crash does not) (env "+durability.EnvVar+")")
	level := fs.String("log-level", "info", "debug, info, warn or error")
	if err := fs.Parse(os.Args[1:]); err != nil {
		return 2
	}
	mode, err := durability.Parse(*durable)
	if err != nil {
		fmt.Fprintf(fs.Output(), "%s: bad --durability (or %s): %v\n", system, durability.EnvVar, err)
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
	blobs, err := blob.OpenURL(ctx, cmp.Or(*blobsURL, filepath.Join(filepath.Dir(*dataDir), "blobs")))
	if err != nil {
		fmt.Fprintf(os.Stderr, "%s: bad --blobs (or LETHE_BLOBS): %v\n", system, err)
		return 2
	}
	var key []byte
	if b, err := os.ReadFile(*subjectKey); err == nil {
		key = bytes.TrimSpace(b)
	}
	if err := serve(ctx, system, *busURL, tlsFiles, *dataDir, mode, blobs, key, *seed, *metricsAddr, *orchestratorKey, logger, open); err != nil {
		logger.Error("connector failed", "err", err)
		return 1
	}
	return 0
}

func serve(ctx context.Context, system, busURL string, busOpts busurl.Options, dataDir string, mode durability.Mode, blobs blob.Store, subjectKey []byte, seed int, metricsAddr, orchestratorKey string, logger *slog.Logger, open connector.Opener) error {
	reg := prometheus.NewRegistry()
	reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	// The connector's NATS user: the seed the orchestrator's embedded
	// server (or orchestrator nats-config) made in its data folder.
	seedPath := filepath.Join(dataDir, natsauth.SeedFile)
	dial := func() (bus.Bus, string, error) {
		seedFile := seedPath
		if _, err := os.Stat(seedFile); err != nil {
			seedFile = ""
		}
		busOpts.Name, busOpts.Logger, busOpts.NKeySeedFile = "lethe-"+system, logger, seedFile
		b, err := busurl.Dial(ctx, busURL, busOpts)
		return b, seedFile, err
	}
	b, seedFile, err := dial()
	if err != nil && seedFile == "" && strings.Contains(strings.ToLower(err.Error()), "authorization violation") {
		// An orchestrator started a moment before (the README's commands,
		// run at once) makes the seed of its embedded server's users in a
		// moment: wait for it a while, as for the broker.
		if waitForFile(ctx, seedPath, fileWait, logger, "waiting for this connector's NATS user seed (start the orchestrator first: its embedded server makes it)") {
			b, seedFile, err = dial()
		}
	}
	if err != nil {
		if seedFile == "" && strings.Contains(strings.ToLower(err.Error()), "authorization violation") {
			return fmt.Errorf("%w (no NATS user seed in %s: start the orchestrator first, whose embedded server makes it, "+
				"or give one with %s or ?nkey_seed= in the bus URL)", err, seedPath, busurl.EnvNKeySeed)
		}
		return err
	}
	defer b.Close()
	waitForFile(ctx, orchestratorKey, fileWait, logger, "waiting for the orchestrator's public key (start the orchestrator first)")
	taskKeys, err := connector.OrchestratorKey(orchestratorKey)
	if err != nil {
		return fmt.Errorf("%w (start the orchestrator first, or pass --orchestrator-key)", err)
	}
	env := connector.Env{DataDir: dataDir, Bus: b, Logger: logger, Registerer: reg, TaskKeys: taskKeys, Durability: mode, Blobs: blobs, SubjectKey: subjectKey}
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

// fileWait bounds the wait for a file the orchestrator makes at its first
// start (its public key, a NATS user's seed).
var fileWait = 30 * time.Second

// waitForFile waits until path exists, for at most d or until ctx ends;
// it reports whether it does.
func waitForFile(ctx context.Context, path string, d time.Duration, logger *slog.Logger, msg string) bool {
	if _, err := os.Stat(path); err == nil {
		return true
	}
	logger.Info(msg, "path", path, "for", d)
	tick := time.NewTicker(100 * time.Millisecond)
	defer tick.Stop()
	end := time.After(d)
	for {
		select {
		case <-ctx.Done():
			return false
		case <-end:
			return false
		case <-tick.C:
			if _, err := os.Stat(path); err == nil {
				return true
			}
		}
	}
}

func metricsMux(reg *prometheus.Registry) *http.ServeMux {
	mux := http.NewServeMux()
	mux.Handle("GET /metrics", promhttp.HandlerFor(reg, promhttp.HandlerOpts{}))
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, _ *http.Request) { fmt.Fprintln(w, "ok") })
	return mux
}
