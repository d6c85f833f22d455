// Command orchestrator runs Lethe's orchestrator: the HTTP API, the outbox
// relay, the receipt consumer and the retry schedule.
package main

import (
	"context"
	"flag"
	"os"
	"os/signal"
	"syscall"

	"github.com/lethe-dev/lethe/services/orchestrator/app"
)

func main() { os.Exit(run()) }

// run returns the exit code, so that its deferred calls run before main exits.
func run() int {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	return app.Main(ctx, flag.NewFlagSet("orchestrator", flag.ContinueOnError), os.Args[1:])
}
