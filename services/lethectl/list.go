package main

import (
	"context"
	"errors"
	"fmt"
	"text/tabwriter"

	"github.com/lethe-dev/lethe/pkg/lifecycle"
	"github.com/lethe-dev/lethe/services/lethectl/internal/api"
)

var listCommand = command{
	name:    "list",
	args:    "[--state " + string(lifecycle.Open) + "] [--tenant demo] [--limit N] [--cursor C] [--all]",
	summary: "list requests, one page or --all",
	run:     runList,
}

// maxPages stops --all against a server that never ends its listing.
const maxPages = 10000

func runList(ctx context.Context, a *app, c command, args []string) int {
	fs := a.newFlags(c)
	var o api.ListOptions
	state := fs.String("state", "", "only requests in this state ("+joined(lifecycle.States(), ", ")+")")
	fs.StringVar(&o.Tenant, "tenant", "", "only requests of this tenant")
	fs.IntVar(&o.Limit, "limit", 50, "requests per page")
	fs.StringVar(&o.Cursor, "cursor", "", "start at this page (the next_cursor of an earlier listing)")
	all := fs.Bool("all", false, "follow next_cursor to the last page")
	if _, code, ok := a.parse(c, fs, args, 0, 0); !ok {
		return code
	}
	if o.Limit < 0 {
		return a.usageError(c, fs, "--limit must not be negative")
	}
	o.State = lifecycle.State(*state)
	if o.State != "" && !o.State.Known() {
		return a.usageError(c, fs, fmt.Sprintf("--state must be %s, not %q", oneOf(lifecycle.States()), o.State))
	}

	client := a.client()
	var rows []api.Summary
	next := ""
	for pages := 0; ; pages++ {
		if pages == maxPages {
			return a.fail(c, errors.New("listing did not end after many pages"))
		}
		page, err := client.List(ctx, o)
		if err != nil {
			return a.fail(c, err)
		}
		rows = append(rows, page.Requests...)
		next = page.NextCursor
		if !*all || next == "" {
			break
		}
		if next == o.Cursor {
			return a.fail(c, errors.New("server returned the same cursor twice"))
		}
		o.Cursor = next
	}

	if len(rows) == 0 {
		fmt.Fprintln(a.stdout, "no requests")
	} else {
		now := a.now()
		tw := tabwriter.NewWriter(a.stdout, 0, 0, 2, ' ', 0)
		fmt.Fprintln(tw, "ID\tTYPE\tTENANT\tSTATE\tRECEIVED\tDEADLINE")
		for _, r := range rows {
			// A listing row has no completion time, so a finished
			// request's deadline is shown without a note.
			note := deadlineCell(r.Deadline, r.State, api.Time{}, now)
			fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\n", r.ID, r.Type, r.Tenant, r.State, when(r.ReceivedAt), note)
		}
		if err := tw.Flush(); err != nil {
			return a.fail(c, err)
		}
	}
	if next != "" {
		fmt.Fprintf(a.stderr, "more requests: lethectl list --all, or --cursor %s\n", next)
	}
	return exitOK
}
