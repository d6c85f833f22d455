// Command subprocessors is the connector that calls the sub-processors'
// deletion and access APIs.
package main

import (
	"context"
	"flag"
	"os"

	"github.com/lethe-dev/lethe/pkg/connector"
	"github.com/lethe-dev/lethe/pkg/connector/connectorcmd"
	"github.com/lethe-dev/lethe/services/subprocessors"
)

func main() {
	fs := flag.NewFlagSet(subprocessors.Name, flag.ExitOnError)
	vendors := fs.String("vendors", "", "vendors YAML file (default: the demo vendors, built in)")
	base := fs.String("vendor-base", "http://127.0.0.1:8090", "value of {base} in the vendors' URL templates")
	os.Exit(connectorcmd.Main(subprocessors.Name, fs, func(ctx context.Context, env connector.Env) (connector.System, error) {
		cfg, err := subprocessors.LoadConfig(*vendors, map[string]string{"base": *base})
		if err != nil {
			return nil, err
		}
		s, err := subprocessors.Open(ctx, env, cfg)
		if err != nil {
			return nil, err // not a typed nil in the interface
		}
		return s, nil
	}))
}
