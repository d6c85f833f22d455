// Command accounts runs the accounts connector, and the accounts system's
// admin API (account deletion) on --listen.
package main

import (
	"context"
	"flag"
	"os"

	"github.com/lethe-dev/lethe/pkg/connector"
	"github.com/lethe-dev/lethe/pkg/connector/connectorcmd"
	"github.com/lethe-dev/lethe/services/accounts"
)

func main() {
	fs := flag.NewFlagSet(accounts.Name, flag.ContinueOnError)
	listen := fs.String("listen", "127.0.0.1:8081", "serve the admin API (POST /v1/accounts/delete) on this address")
	os.Exit(connectorcmd.Main(accounts.Name, fs, func(ctx context.Context, env connector.Env) (connector.System, error) {
		sys, err := accounts.Open(ctx, env)
		if err != nil {
			return nil, err
		}
		if _, err := sys.ServeAdmin(ctx, *listen); err != nil {
			sys.Close()
			return nil, err
		}
		return sys, nil
	}))
}
