package main

import (
	"context"
	"fmt"
	"text/tabwriter"
	"time"

	"github.com/lethe-dev/lethe/services/lethectl/internal/api"
)

var deadlineCommand = command{
	name:    "deadline",
	args:    "[--tenant demo] [--received-at RFC3339] [--json]",
	summary: "show when a request received then would be due, and extended, under a tenant's policy; files nothing",
	run:     runDeadline,
}

func runDeadline(ctx context.Context, a *app, c command, args []string) int {
	fs := a.newFlags(c)
	tenant := fs.String("tenant", "demo", "tenant (controller) whose deadline policy counts")
	recvAt := fs.String("received-at", "", "when the request is (or was) received, RFC 3339, future dates too (default: now)")
	asJSON := fs.Bool("json", false, "print the server's reply as JSON")
	if _, code, ok := a.parse(c, fs, args, 0, 0); !ok {
		return code
	}
	if err := checkReceivedAt(*recvAt); err != nil {
		return a.usageError(c, fs, err.Error())
	}
	d, raw, err := a.client().Deadline(ctx, *tenant, *recvAt)
	if err != nil {
		return a.fail(c, err)
	}
	if *asJSON {
		if err := writeJSON(a.stdout, raw); err != nil {
			return a.fail(c, err)
		}
		return exitOK
	}
	tw := tabwriter.NewWriter(a.stdout, 0, 0, 2, ' ', 0)
	fmt.Fprintf(tw, "received\t%s\n", when(d.ReceivedAt))
	loc := tenantZone(d.TimeZone)
	fmt.Fprintf(tw, "deadline\t%s\tone month (GDPR Art. 12(3))%s\n", when(d.Deadline), localDay(d.Deadline, loc))
	fmt.Fprintf(tw, "if extended\t%s\ttwo further months, once, with notice%s\n", when(d.ExtendedDeadline), localDay(d.ExtendedDeadline, loc))
	counted := "days of " + d.TimeZone
	if d.RollToWorkingDay {
		counted += "; a deadline on a weekend or public holiday moves to the next working day"
	}
	fmt.Fprintf(tw, "counted in\t%s\n", counted)
	if err := tw.Flush(); err != nil {
		return a.fail(c, err)
	}
	return exitOK
}

// tenantZone is the tenant's time zone, or nil when it is UTC (or unknown
// here): times are shown in UTC already.
func tenantZone(name string) *time.Location {
	if name == "" || name == "UTC" {
		return nil
	}
	loc, err := time.LoadLocation(name)
	if err != nil {
		return nil
	}
	return loc
}

// localDay names the day a deadline ends in the tenant's zone, when that is
// not UTC: 21:59 UTC means little to a DPO in Paris.
func localDay(t api.Time, loc *time.Location) string {
	if loc == nil {
		return ""
	}
	return fmt.Sprintf(", end of %s in %s", t.In(loc).Format("Mon 2 Jan 2006"), loc)
}
