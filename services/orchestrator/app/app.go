// Package app wires the orchestrator binary: flags, logging, bus, hash key.
package app

import (
	"context"
	"flag"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"time"
	_ "time/tzdata" // tenants' time zones, also where the system has no zoneinfo

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"

	"github.com/lethe-dev/lethe/pkg/bus/busurl"
	"github.com/lethe-dev/lethe/pkg/bus/natsbus"
	"github.com/lethe-dev/lethe/pkg/deadline"
	"github.com/lethe-dev/lethe/pkg/pseudonym"
	"github.com/lethe-dev/lethe/services/orchestrator"
	"github.com/lethe-dev/lethe/services/orchestrator/store"
)

// Main parses args and runs the orchestrator until ctx is cancelled. It
// returns the process exit code.
func Main(ctx context.Context, fs *flag.FlagSet, args []string) int {
	listen := fs.String("listen", "127.0.0.1:8080", "HTTP API address")
	dataDir := fs.String("data", "data/orchestrator", "directory of the SQLite store and the hash key")
	busURL := fs.String("bus", envOr("LETHE_BUS", envOr("LETHE_NATS", "embedded")),
		`"embedded" (an in-process NATS server with JetStream under <data>/nats), nats://host:4222 or kafka://host1:9092,host2:9092 (env LETHE_BUS)`)
	fs.StringVar(busURL, "nats", *busURL, "the same as --bus (older name)")
	storeURL := fs.String("store", envOr("LETHE_STORE", ""), "sqlite:PATH or postgres://user:pass@host:5432/db (env LETHE_STORE; default sqlite:<data>/lethe.db)")
	natsListen := fs.String("nats-listen", "127.0.0.1:4223", "where the embedded NATS server listens, for connectors in other processes")
	keysFile := fs.String("keys", "", "keys file listing the connectors' public keys (default <data>/keys.json; re-read when it changes)")
	systems := fs.String("systems", strings.Join(orchestrator.DefaultSystems, ","), "comma-separated registered systems")
	maxAttempts := fs.Int("max-attempts", 6, "attempts per task before it is dead-lettered")
	retryInitial := fs.Duration("retry-initial", 30*time.Second, "first wait for a system's answer; doubles per attempt")
	retryMax := fs.Duration("retry-max", 30*time.Minute, "longest wait for an answer")
	tenantsFile := fs.String("tenants", envOr("LETHE_TENANTS", ""), "tenants file of deadline policies (time zone, roll to working days, holidays); default: every tenant in UTC, no roll (env LETHE_TENANTS)")
	webhook := fs.String("notice-webhook", envOr("LETHE_NOTICE_WEBHOOK", ""), "URL that also receives notices to data subjects (extensions) as signed JSON POSTs (env LETHE_NOTICE_WEBHOOK)")
	objective := fs.Duration("objective", 7*24*time.Hour, "how soon a request should be fulfilled, for the SLO metric")
	level := fs.String("log-level", "info", "debug, info, warn or error")
	if err := fs.Parse(args); err != nil {
		return 2
	}
	var tenants *deadline.Tenants
	if *tenantsFile != "" {
		t, err := deadline.LoadTenants(*tenantsFile)
		if err != nil {
			fmt.Fprintf(os.Stderr, "orchestrator: --tenants: %v\n", err)
			return 2
		}
		tenants = t
	}
	var lvl slog.Level
	if err := lvl.UnmarshalText([]byte(*level)); err != nil {
		fmt.Fprintf(os.Stderr, "orchestrator: bad --log-level: %v\n", err)
		return 2
	}
	logger := slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: lvl})).With("service", "orchestrator")

	url := *busURL
	if url == "embedded" {
		host, port, err := splitHostPort(*natsListen)
		if err != nil {
			logger.Error("bad --nats-listen", "err", err)
			return 2
		}
		srv, err := natsbus.StartEmbedded(filepath.Join(*dataDir, "nats"), host, port)
		if err != nil {
			logger.Error("embedded NATS", "err", err)
			return 1
		}
		defer srv.Shutdown()
		url = srv.URL()
		logger.Info("embedded NATS JetStream running", "url", url)
	}
	b, err := busurl.Dial(ctx, url, busurl.Options{Name: "lethe-orchestrator", Logger: logger})
	if err != nil {
		logger.Error("bus", "err", err)
		return 2
	}
	defer b.Close()
	if *storeURL == "" {
		*storeURL = "sqlite:" + filepath.Join(*dataDir, "lethe.db")
	}
	st, err := store.Open(ctx, *storeURL)
	if err != nil {
		logger.Error("store", "err", err)
		return 2
	}
	defer st.Close()
	key, err := pseudonym.LoadKey(*dataDir)
	if err != nil {
		logger.Error("hash key", "err", err)
		return 1
	}
	reg := prometheus.NewRegistry()
	reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	o, err := orchestrator.New(orchestrator.Config{
		Listen: *listen, DataDir: *dataDir, Bus: b, Store: st, Systems: strings.Split(*systems, ","),
		MaxAttempts: *maxAttempts, RetryInitial: *retryInitial, RetryMax: *retryMax, Objective: *objective,
		Deadlines: tenants, NoticeWebhook: *webhook,
		HashKey: key, KeysFile: *keysFile, Logger: logger, Registerer: reg,
	})
	if err != nil {
		logger.Error("start", "err", err)
		return 1
	}
	if err := o.Run(ctx); err != nil {
		logger.Error("run", "err", err)
		return 1
	}
	return 0
}

func splitHostPort(addr string) (string, int, error) {
	host, port, ok := strings.Cut(addr, ":")
	var n int
	if _, err := fmt.Sscanf(port, "%d", &n); !ok || err != nil {
		return "", 0, fmt.Errorf("%q is not host:port", addr)
	}
	return host, n, nil
}

func envOr(name, def string) string {
	if v := os.Getenv(name); v != "" {
		return v
	}
	return def
}
