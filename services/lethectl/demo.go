package main

import (
	"context"
	"fmt"
	"strings"
	"time"

	"github.com/lethe-dev/lethe/pkg/lifecycle"
	"github.com/lethe-dev/lethe/services/lethectl/internal/api"
)

var demoCommand = command{
	name:    "demo",
	args:    "delete-account EMAIL [--tenant demo]",
	summary: "demo helpers: delete-account deletes an account in the demo accounts system",
	run:     group(deleteAccountCommand),
}

var deleteAccountCommand = command{
	name:    "demo delete-account",
	args:    "EMAIL [--tenant demo] [--accounts URL] [--api URL] [--token TOKEN] [--find 10s]",
	summary: "delete an account in the demo accounts system, as its owner would; its account.deleted event makes the orchestrator open an erasure request",
	run:     runDeleteAccount,
}

func runDeleteAccount(ctx context.Context, a *app, c command, args []string) int {
	fs := bareFlags(c)
	a.accountsFlag(fs)
	a.apiFlag(fs)
	a.tokenFlag(fs)
	tenant := fs.String("tenant", "demo", "tenant the account belongs to")
	find := fs.Duration("find", 10*time.Second, "how long to look for the erasure request the deletion opens (0: don't look)")
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
	if id := a.findRequest(ctx, del.EventID, *find); id != "" {
		fmt.Fprintf(a.stdout, "erasure request %s opened from the account.deleted event\n", id)
		fmt.Fprintf(a.stdout, "follow it with: lethectl wait %s\n", id)
		return exitOK
	}
	fmt.Fprintf(a.stdout, "The orchestrator opens an erasure request when it receives the account.deleted event.\n")
	fmt.Fprintf(a.stdout, "Find it with: lethectl list --tenant %s --state %s\n", *tenant, lifecycle.Open)
	fmt.Fprintf(a.stdout, "then follow it with: lethectl wait ID\n")
	return exitOK
}

// findRequest polls the orchestrator for the request an account deletion
// event opened; it returns "" if none shows up within d.
func (a *app) findRequest(ctx context.Context, eventID string, d time.Duration) string {
	if eventID == "" || d <= 0 {
		return ""
	}
	ctx, cancel := context.WithTimeout(ctx, d)
	defer cancel()
	for {
		page, err := a.client().List(ctx, api.ListOptions{EventID: eventID, Limit: 1})
		if err == nil && len(page.Requests) > 0 {
			return page.Requests[0].ID
		}
		select {
		case <-ctx.Done():
			return ""
		case <-time.After(200 * time.Millisecond):
		}
	}
}
