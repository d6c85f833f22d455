package app

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"path/filepath"
	"strings"

	"github.com/lethe-dev/lethe/pkg/bus/natsauth"
	"github.com/lethe-dev/lethe/pkg/datadir"
	"github.com/lethe-dev/lethe/services/orchestrator"
)

// NATSConfig is "orchestrator nats-config": it makes the NATS users of an
// external server, as the embedded one makes its own: an NKey seed per
// service in <out>/<service>/nats.seed (kept if it exists: running it again
// changes no key), and the server's authorization block, public keys only,
// in <out>/nats-users.conf (or --conf), for the server's configuration to
// include. It returns the exit code.
func NATSConfig(args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("orchestrator nats-config", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Usage = func() {
		fmt.Fprint(stderr, `Usage: orchestrator nats-config --out DIR [flags]

Makes a NATS user per Lethe service for an external nats-server: each
service's NKey seed in DIR/<service>/nats.seed (0600; an existing one is
kept), and the server's authorization block in DIR/nats-users.conf.

Flags:
`)
		fs.PrintDefaults()
	}
	out := fs.String("out", "", "folder of the seeds, DIR/<service>/nats.seed (required)")
	conf := fs.String("conf", "", "file of the server's authorization block (default DIR/nats-users.conf)")
	systems := fs.String("systems", strings.Join(orchestrator.DefaultSystems, ","), "comma-separated connectors' systems, as the orchestrator's --systems")
	accountEvents := fs.String("account-events", strings.Join(natsauth.DefaultAccountEvents, ","),
		"comma-separated systems that publish account.deleted events (empty: none; by default those of these that are among --systems)")
	prefix := fs.String("prefix", "lethe", "the subjects' prefix")
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return 0
		}
		return 2
	}
	if *out == "" || fs.NArg() > 0 {
		fmt.Fprintln(stderr, "orchestrator nats-config: --out DIR is required, and nothing else")
		fs.Usage()
		return 2
	}
	if *conf == "" {
		*conf = filepath.Join(*out, "nats-users.conf")
	}
	cfg := natsauth.Config{Prefix: *prefix, Systems: split(*systems)}
	fs.Visit(func(f *flag.Flag) {
		if f.Name == "account-events" {
			cfg.AccountEvents = append([]string{}, split(*accountEvents)...) // given: not nil, so no default
		}
	})
	set, err := natsauth.Ensure(*out, cfg)
	if err != nil {
		fmt.Fprintf(stderr, "orchestrator nats-config: %v\n", err)
		return 2
	}
	// Public keys only, but who may do what on the bus: private like the rest.
	if err := datadir.Ensure(filepath.Dir(*conf)); err != nil {
		fmt.Fprintf(stderr, "orchestrator nats-config: %v\n", err)
		return 1
	}
	if err := datadir.WriteFile(*conf, set.ServerConfig()); err != nil {
		fmt.Fprintf(stderr, "orchestrator nats-config: %v\n", err)
		return 1
	}
	fmt.Fprintf(stdout, "NATS users of prefix %q: %s\n", set.Config.Prefix, strings.Join(set.Names(), ", "))
	fmt.Fprintf(stdout, "  %-40s the server's authorization block: include it in its configuration file\n", *conf)
	for _, u := range set.Users {
		state := "kept"
		for _, c := range set.Created {
			if c == u.Name {
				state = "made"
			}
		}
		fmt.Fprintf(stdout, "  %-40s %s, user %s\n", u.SeedPath, state, u.Public)
	}
	fmt.Fprintln(stdout, `Give each service its seed, a secret: a service run with --data <folder holding nats.seed> finds it,
or LETHE_NATS_NKEY_SEED (the seed or its file), or ?nkey_seed=FILE in the bus URL.`)
	return 0
}

// split is a comma-separated list without empty elements; nil if none.
func split(s string) []string {
	var out []string
	for _, e := range strings.Split(s, ",") {
		if e = strings.TrimSpace(e); e != "" {
			out = append(out, e)
		}
	}
	return out
}
