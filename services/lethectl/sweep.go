package main

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/lethe-dev/lethe/pkg/lifecycle"
	"github.com/lethe-dev/lethe/services/lethectl/internal/api"
)

var sweepCommand = command{
	name:    "sweep",
	args:    "list | run",
	summary: "retention policies: list them, or run one (or all) now, for real or as a dry run that only counts",
	run:     group(sweepListCommand, sweepRunCommand),
}

var sweepListCommand = command{
	name:    "sweep list",
	args:    "[--json]",
	summary: "list the retention policies: tenant, name, period, clock, legal basis, systems and data categories",
	run:     runSweepList,
}

var sweepRunCommand = command{
	name: "sweep run",
	args: "POLICY | --all [--tenant demo] [--dry-run] [--timeout 2m]",
	summary: "run a retention policy (or every policy of the tenant) now and wait for it: one line per policy and system, " +
		"policy=<name> system=<system> run=<id> deleted=<n> (would_delete=<n> in a dry run); lethectl certificate RUN_ID then proves it",
	run: runSweepRun,
}

func runSweepList(ctx context.Context, a *app, c command, args []string) int {
	fs := a.newFlags(c)
	asJSON := fs.Bool("json", false, "print the server's reply as JSON")
	if _, code, ok := a.parse(c, fs, args, 0, 0); !ok {
		return code
	}
	policies, raw, err := a.client().Policies(ctx)
	if err != nil {
		return a.fail(c, err)
	}
	if *asJSON {
		a.stdout.Write(raw)
		return exitOK
	}
	if len(policies) == 0 {
		fmt.Fprintln(a.stderr, "no retention policies (the orchestrator's --policies file names them)")
		return exitOK
	}
	tw := tabwriter.NewWriter(a.stdout, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "TENANT\tPOLICY\tPERIOD\tCLOCK\tCONSENT\tSYSTEMS\tPURPOSE")
	for _, p := range policies {
		var systems []string
		for sys, cats := range p.Systems {
			systems = append(systems, sys+":"+strings.Join(cats, "+"))
		}
		slices.Sort(systems)
		consent := "no"
		if p.Consent {
			consent = "yes"
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\t%s\n", p.Tenant, p.Name, p.Period, p.Clock, consent, strings.Join(systems, ","), p.Purpose)
	}
	tw.Flush()
	return exitOK
}

func runSweepRun(ctx context.Context, a *app, c command, args []string) int {
	fs := a.newFlags(c)
	all := fs.Bool("all", false, "run every policy of the tenant")
	tenant := fs.String("tenant", "demo", "the tenant whose policies run")
	dry := fs.Bool("dry-run", false, "only count what would be deleted; change nothing")
	timeout := fs.Duration("timeout", 2*time.Minute, "give up waiting after this long (exit 3); the runs go on")
	pos, code, ok := a.parse(c, fs, args, 0, 1)
	if !ok {
		return code
	}
	if *all == (len(pos) == 1) {
		return a.usageError(c, fs, "name one POLICY, or give --all")
	}
	ns := api.NewSweep{Tenant: *tenant, All: *all, DryRun: *dry}
	if len(pos) == 1 {
		ns.Policy = pos[0]
	}
	client := a.client()
	runs, err := client.Sweep(ctx, ns)
	if err != nil {
		return a.fail(c, err)
	}
	waitCtx, cancel := context.WithTimeout(ctx, *timeout)
	defer cancel()
	what, exit := "deleted", exitOK
	if *dry {
		what = "would_delete"
	}
	for i, run := range runs {
		fmt.Fprintf(a.stderr, "[%d/%d] %s: run %s started, waiting for its systems\n", i+1, len(runs), run.Policy, run.ID)
		code := a.awaitTasks(waitCtx, c, client, run.ID, func(t api.Task) string {
			return fmt.Sprintf("policy=%s system=%s run=%s %s=%d", run.Policy, t.System, run.ID, what, records(t))
		})
		if code == exitTimeout {
			return code
		}
		exit = max(exit, code)
	}
	return exit
}

// awaitTasks waits (until waitCtx is done) for request id, started by
// command c, to end, and prints line(t) for each of its tasks on stdout;
// a failed task is said on stderr. It returns exitOK, exitError when a
// task failed, exitTimeout when the wait ran out (the request goes on),
// or a.fail's code.
func (a *app) awaitTasks(waitCtx context.Context, c command, client *api.Client, id string, line func(t api.Task) string) int {
	r, err := waitEnded(waitCtx, client, id)
	if err != nil {
		if waitCtx.Err() != nil {
			fmt.Fprintf(a.stderr, "lethectl %s: timed out waiting for %s (it goes on: lethectl wait %s)\n", c.name, id, id)
			return exitTimeout
		}
		return a.fail(c, err)
	}
	exit := exitOK
	for _, t := range r.Tasks {
		fmt.Fprintln(a.stdout, line(t))
		if t.Outcome == lifecycle.OutcomeFailed || t.State == lifecycle.TaskDeadLetter {
			fmt.Fprintf(a.stderr, "lethectl %s: %s failed %s: %s\n", c.name, t.System, id, t.Detail)
			exit = exitError
		}
	}
	return exit
}

// records is how many records a task's answer counted.
func records(t api.Task) int {
	n := 0
	for _, k := range t.Counts {
		n += k
	}
	return n
}

// waitEnded polls a request until it has ended.
func waitEnded(ctx context.Context, client *api.Client, id string) (api.Request, error) {
	for {
		r, _, err := client.Get(ctx, id)
		if err == nil && r.State.Ended() {
			return r, nil
		}
		if err != nil && !api.IsStatus(err, 503) && !api.IsStatus(err, 429) {
			return r, err
		}
		select {
		case <-ctx.Done():
			return r, ctx.Err()
		case <-time.After(200 * time.Millisecond):
		}
	}
}
