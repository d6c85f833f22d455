// Command lethe-witness is a transparency-log witness (C2SP tlog-witness):
// it cosigns a log's checkpoints only while they extend, append-only, what
// it cosigned before. Run by a customer or an authority, apart from Lethe.
//
//	lethe-witness --name witness.example.org/lethe \
//	    --log 'lethe.example/demo=lethe.example/demo+1234abcd+AW...'
package main

import (
	"context"
	"flag"
	"os"
	"os/signal"
	"syscall"

	"github.com/lethe-dev/lethe/services/witness"
)

func main() { os.Exit(run()) }

// run returns the exit code, so that its deferred calls run before main exits.
func run() int {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	return witness.Main(ctx, flag.NewFlagSet("lethe-witness", flag.ContinueOnError), os.Args[1:], os.Stdout, os.Stderr)
}
