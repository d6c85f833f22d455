// Command emailanalytics runs the email analytics connector.
package main

import (
	"context"
	"flag"
	"os"

	"github.com/lethe-dev/lethe/pkg/connector"
	"github.com/lethe-dev/lethe/pkg/connector/connectorcmd"
	"github.com/lethe-dev/lethe/services/emailanalytics"
)

func main() {
	fs := flag.NewFlagSet(emailanalytics.Name, flag.ContinueOnError)
	os.Exit(connectorcmd.Main(emailanalytics.Name, fs, func(ctx context.Context, env connector.Env) (connector.System, error) {
		return emailanalytics.Open(ctx, env)
	}))
}
