// Command lethe-dev runs the whole pipeline in one process on the embedded
// default: what `make run` starts.
package main

import (
	"context"
	"flag"
	"fmt"
	"log/slog"
	"os"
	"os/signal"
	"strings"
	"syscall"

	"github.com/lethe-dev/lethe/services/devstack"
)

func main() {
	cfg := devstack.Config{}
	flag.StringVar(&cfg.DataDir, "data", "data", "directory for every store")
	flag.StringVar(&cfg.Listen, "listen", "127.0.0.1:8080", "orchestrator HTTP API")
	flag.IntVar(&cfg.NATSPort, "nats-port", 4223, "port of the embedded NATS server, for connectors run as separate binaries")
	flag.StringVar(&cfg.AccountsListen, "accounts-listen", "127.0.0.1:8081", "admin API of the demo accounts app")
	flag.IntVar(&cfg.People, "people", 300, "demo people to seed")
	without := flag.String("without", "", "comma-separated connectors not to start (a system that is down, for demos of retries and alerts)")
	flag.Parse()
	if *without != "" {
		cfg.Without = strings.Split(*without, ",")
	}
	cfg.Logger = slog.New(slog.NewTextHandler(os.Stderr, nil))

	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	s, err := devstack.Start(ctx, cfg)
	if err != nil {
		cfg.Logger.Error("lethe-dev could not start", "err", err)
		os.Exit(1)
	}
	devstack.Banner(os.Stdout, s)
	if err := s.Wait(); err != nil {
		cfg.Logger.Error("lethe-dev stopped with errors", "err", err)
		os.Exit(1)
	}
	fmt.Println("lethe-dev stopped")
}
