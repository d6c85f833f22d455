package main

import (
	"context"
	"fmt"
	"strings"
	"time"

	"github.com/lethe-dev/lethe/services/lethectl/internal/api"
)

var reapplyCommand = command{
	name: "reapply",
	args: "--system S --since RFC3339 [--tenant demo] [--timeout 2m]",
	summary: "after restoring a system from a backup taken at --since, erase there again everyone erased since then; " +
		"the system is told keyed hashes only, and prints system=<s> request=<id> erased=<n>",
	run: runReapply,
}

func runReapply(ctx context.Context, a *app, c command, args []string) int {
	fs := a.newFlags(c)
	system := fs.String("system", "", "the restored system (required)")
	since := fs.String("since", "", "when the restored backup was taken, RFC 3339 (required)")
	tenant := fs.String("tenant", "demo", "the tenant whose erasures are re-applied")
	timeout := fs.Duration("timeout", 2*time.Minute, "give up waiting after this long (exit 3); the re-application goes on")
	if _, code, ok := a.parse(c, fs, args, 0, 0); !ok {
		return code
	}
	if *system == "" || *since == "" {
		return a.usageError(c, fs, "--system and --since are required")
	}
	if _, err := time.Parse(time.RFC3339, *since); err != nil {
		return a.usageError(c, fs, "--since must be an RFC 3339 time, such as 2026-11-30T00:00:00Z")
	}
	client := a.client()
	ids, err := client.Reapply(ctx, *tenant, *system, *since)
	if err != nil {
		return a.fail(c, err)
	}
	fmt.Fprintf(a.stderr, "re-application %s started (%d part(s)), waiting for %s\n", strings.Join(ids, ", "), len(ids), *system)
	waitCtx, cancel := context.WithTimeout(ctx, *timeout)
	defer cancel()
	exit := exitOK
	for _, id := range ids {
		code := a.awaitTasks(waitCtx, c, client, id, func(t api.Task) string {
			return fmt.Sprintf("system=%s request=%s erased=%d", t.System, id, records(t))
		})
		if code == exitTimeout {
			return code
		}
		exit = max(exit, code)
	}
	return exit
}
