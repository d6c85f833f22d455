package main

import (
	"context"
	"fmt"
	"net/http"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/lethe-dev/lethe/services/lethectl/internal/api"
)

// Re-driving what failed: a task that ran out of attempts is retried once
// its system is fixed, one or all of a system's, or resolved by hand.

var retryCommand = command{
	name:    "retry",
	args:    "ID --system S",
	summary: "open a new round of attempts for a request's task that failed or ran out of attempts, once its system is fixed",
	run:     runRetry,
}

var resolveCommand = command{
	name:    "resolve",
	args:    "ID --system S --note TEXT",
	summary: "record a failed task fixed by hand in its system, with what was done (kept in the certificate, with who did it)",
	run:     runResolve,
}

var deadLettersCommand = command{
	name:    "deadletters",
	args:    "list | replay",
	summary: "the tasks that ran out of attempts: list them, or re-drive a system's once it is fixed",
	run:     group(deadLettersListCommand, deadLettersReplayCommand),
}

var deadLettersListCommand = command{
	name:    "deadletters list",
	args:    "[--system S] [--since TIME] [--json]",
	summary: "list the dead letters: request, system, attempts, when, the last error",
	run:     runDeadLettersList,
}

var deadLettersReplayCommand = command{
	name:    "deadletters replay",
	args:    "--system S [--since TIME]",
	summary: "open a new round of attempts for every dead letter of a system (since a time)",
	run:     runDeadLettersReplay,
}

func runRetry(ctx context.Context, a *app, c command, args []string) int {
	fs := a.newFlags(c)
	system := fs.String("system", "", "the system whose task to retry (required)")
	pos, code, ok := a.parse(c, fs, args, 1, 1)
	if !ok {
		return code
	}
	if *system == "" {
		return a.usageError(c, fs, "--system is required")
	}
	acc, err := a.client().Retry(ctx, pos[0], *system)
	if err != nil {
		code := a.fail(c, err)
		if api.IsStatus(err, http.StatusConflict) {
			fmt.Fprintf(a.stderr, "see the request's tasks with: lethectl status %s\n", pos[0])
		}
		return code
	}
	fmt.Fprintf(a.stdout, "%s: %s's task retried (a new round of attempts); follow it with: lethectl wait %s\n", acc.ID, *system, acc.ID)
	return exitOK
}

func runResolve(ctx context.Context, a *app, c command, args []string) int {
	fs := a.newFlags(c)
	system := fs.String("system", "", "the system whose failed task was fixed by hand (required)")
	note := fs.String("note", "", "what was done, for the record (required; no personal data: the certificate keeps it)")
	pos, code, ok := a.parse(c, fs, args, 1, 1)
	if !ok {
		return code
	}
	switch {
	case *system == "":
		return a.usageError(c, fs, "--system is required")
	case strings.TrimSpace(*note) == "":
		return a.usageError(c, fs, "--note is required: say what was done by hand")
	}
	if msg := checkNote(*note); msg != "" {
		return a.usageError(c, fs, msg)
	}
	acc, err := a.client().Resolve(ctx, pos[0], *system, strings.TrimSpace(*note))
	if err != nil {
		return a.fail(c, err)
	}
	fmt.Fprintf(a.stdout, "%s: %s's task resolved by hand; the request is %s\n", acc.ID, *system, acc.State)
	return exitOK
}

// sinceFlag checks --since: an RFC 3339 time, or "".
func sinceFlag(s string) (string, string) {
	if s == "" {
		return "", ""
	}
	if _, err := time.Parse(time.RFC3339, s); err != nil {
		return "", "--since must be an RFC 3339 time, such as 2026-11-30T00:00:00Z"
	}
	return s, ""
}

func runDeadLettersList(ctx context.Context, a *app, c command, args []string) int {
	fs := a.newFlags(c)
	system := fs.String("system", "", "only this system's")
	since := fs.String("since", "", "only those dead-lettered since this RFC 3339 time")
	asJSON := fs.Bool("json", false, "print the orchestrator's JSON reply")
	if _, code, ok := a.parse(c, fs, args, 0, 0); !ok {
		return code
	}
	s, msg := sinceFlag(*since)
	if msg != "" {
		return a.usageError(c, fs, msg)
	}
	dead, raw, err := a.client().DeadLetters(ctx, *system, s)
	if err != nil {
		return a.fail(c, err)
	}
	if *asJSON {
		a.stdout.Write(raw)
		fmt.Fprintln(a.stdout)
		return exitOK
	}
	if len(dead) == 0 {
		fmt.Fprintln(a.stdout, "no dead letters")
		return exitOK
	}
	tw := tabwriter.NewWriter(a.stdout, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "REQUEST\tTENANT\tSYSTEM\tATTEMPTS\tDEAD SINCE\tLAST ERROR")
	for _, d := range dead {
		fmt.Fprintf(tw, "%s\t%s\t%s\t%d\t%s\t%s\n", d.RequestID, d.Tenant, d.System, d.Attempts, when(d.DeadAt), d.Detail)
	}
	tw.Flush()
	fmt.Fprintf(a.stderr, "%d dead letter(s): once the system is fixed, lethectl deadletters replay --system S; or lethectl resolve ID --system S --note TEXT for one fixed by hand\n", len(dead))
	return exitOK
}

func runDeadLettersReplay(ctx context.Context, a *app, c command, args []string) int {
	fs := a.newFlags(c)
	system := fs.String("system", "", "the system whose dead letters to re-drive, once it is fixed (required)")
	since := fs.String("since", "", "only those dead-lettered since this RFC 3339 time")
	if _, code, ok := a.parse(c, fs, args, 0, 0); !ok {
		return code
	}
	if *system == "" {
		return a.usageError(c, fs, "--system is required: replay one system's dead letters once it is fixed")
	}
	s, msg := sinceFlag(*since)
	if msg != "" {
		return a.usageError(c, fs, msg)
	}
	done, err := a.client().Replay(ctx, *system, s)
	if err != nil {
		return a.fail(c, err)
	}
	fmt.Fprintf(a.stdout, "%d task(s) of %s retried\n", done.Retried, *system)
	if len(done.Skipped) > 0 {
		fmt.Fprintf(a.stderr, "skipped (their identifiers were dropped by an older version: resolve them by hand): %s\n", strings.Join(done.Skipped, " "))
	}
	return exitOK
}
