package main

import (
	"context"
	"fmt"
	"strings"
)

var demoCommand = command{
	name:    "demo",
	args:    "delete-account EMAIL [--tenant demo]",
	summary: "demo helpers: delete-account deletes an account in the demo accounts system",
	run:     runDemo,
}

var deleteAccountCommand = command{
	name:    "demo delete-account",
	args:    "EMAIL [--tenant demo] [--accounts URL]",
	summary: "delete an account in the demo accounts system, as its owner would; its account.deleted event makes the orchestrator open an erasure request",
	run:     runDeleteAccount,
}

func runDemo(ctx context.Context, a *app, c command, args []string) int {
	if len(args) == 0 {
		return a.usageError(c, nil, "missing subcommand")
	}
	switch args[0] {
	case "delete-account":
		return runDeleteAccount(ctx, a, deleteAccountCommand, args[1:])
	case "-h", "-help", "--help", "help":
		commandUsage(a.stdout, c, nil)
		return exitOK
	default:
		return a.usageError(c, nil, fmt.Sprintf("unknown subcommand %q", args[0]))
	}
}

func runDeleteAccount(ctx context.Context, a *app, c command, args []string) int {
	fs := bareFlags(c)
	a.accountsFlag(fs)
	tenant := fs.String("tenant", "demo", "tenant the account belongs to")
	pos, code, ok := a.parse(c, fs, args, 1, 1)
	if !ok {
		return code
	}
	email := strings.TrimSpace(pos[0])
	if email == "" {
		return a.usageError(c, fs, "EMAIL must not be empty")
	}
	del, err := a.accounts().DeleteAccount(ctx, *tenant, email)
	if err != nil {
		return a.fail(c, err)
	}
	fmt.Fprintf(a.stdout, "account deleted: user id %s, event %s\n", del.UserID, del.EventID)
	fmt.Fprintf(a.stdout, "The orchestrator opens an erasure request when it receives the account.deleted event.\n")
	fmt.Fprintf(a.stdout, "Find it with: lethectl list --tenant %s --state open\n", *tenant)
	fmt.Fprintf(a.stdout, "then follow it with: lethectl wait ID\n")
	return exitOK
}
