// Command recordings is the connector of the demo webinar-recordings system.
package main

import (
	"context"
	"flag"
	"os"

	"github.com/lethe-dev/lethe/pkg/connector"
	"github.com/lethe-dev/lethe/pkg/connector/connectorcmd"
	"github.com/lethe-dev/lethe/services/recordings"
)

func main() {
	fs := flag.NewFlagSet(recordings.Name, flag.ExitOnError)
	os.Exit(connectorcmd.Main(recordings.Name, fs, func(ctx context.Context, env connector.Env) (connector.System, error) {
		s, err := recordings.Open(ctx, env)
		if err != nil {
			return nil, err // not a typed nil in the interface
		}
		return s, nil
	}))
}
