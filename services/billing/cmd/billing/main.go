// Command billing runs the billing connector.
package main

import (
	"context"
	"flag"
	"os"

	"github.com/lethe-dev/lethe/pkg/connector"
	"github.com/lethe-dev/lethe/pkg/connector/connectorcmd"
	"github.com/lethe-dev/lethe/services/billing"
)

func main() {
	fs := flag.NewFlagSet(billing.Name, flag.ContinueOnError)
	os.Exit(connectorcmd.Main(billing.Name, fs, func(ctx context.Context, env connector.Env) (connector.System, error) {
		return billing.Open(ctx, env)
	}))
}
