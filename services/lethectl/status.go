package main

import (
	"context"
	"fmt"
	"io"
	"strconv"
	"text/tabwriter"
	"time"

	"github.com/lethe-dev/lethe/pkg/lifecycle"
	"github.com/lethe-dev/lethe/services/lethectl/internal/api"
)

var statusCommand = command{
	name:    "status",
	args:    "ID [--json]",
	summary: "show a request and where each system stands",
	run:     runStatus,
}

func runStatus(ctx context.Context, a *app, c command, args []string) int {
	fs := a.newFlags(c)
	asJSON := fs.Bool("json", false, "print the server's reply as JSON")
	pos, code, ok := a.parse(c, fs, args, 1, 1)
	if !ok {
		return code
	}
	req, raw, err := a.client().Get(ctx, pos[0])
	if err != nil {
		return a.fail(c, err)
	}
	if *asJSON {
		err = writeJSON(a.stdout, raw)
	} else {
		err = writeStatus(a.stdout, req, a.now())
	}
	if err != nil {
		return a.fail(c, err)
	}
	return exitOK
}

// writeStatus prints a request header and one row per system.
func writeStatus(w io.Writer, r api.Request, now time.Time) error {
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintf(tw, "request\t%s\n", r.ID)
	fmt.Fprintf(tw, "type\t%s\n", r.Type)
	fmt.Fprintf(tw, "tenant\t%s\n", r.Tenant)
	fmt.Fprintf(tw, "state\t%s\n", r.State)
	if r.Source != "" {
		fmt.Fprintf(tw, "source\t%s\n", r.Source)
	}
	fmt.Fprintf(tw, "received\t%s\n", when(r.ReceivedAt))
	fmt.Fprintf(tw, "deadline\t%s\n", deadlineCell(r.Deadline, r.State, r.CompletedAt, now))
	if r.TimeZone != "" {
		policy := "days of " + r.TimeZone
		if r.RollToWorkingDay {
			policy += ", rolled past weekends and public holidays"
		}
		fmt.Fprintf(tw, "counted in\t%s\n", policy)
	}
	if !r.ExtendedAt.IsZero() {
		fmt.Fprintf(tw, "extended\t%s from %s, because: %s\n", when(r.ExtendedAt), when(r.OriginalDeadline), r.ExtensionReason)
	}
	if !r.AnsweredAt.IsZero() && !r.AnsweredAt.Equal(r.CompletedAt.Time) {
		fmt.Fprintf(tw, "answered\t%s\n", when(r.AnsweredAt))
	}
	if !r.CompletedAt.IsZero() {
		fmt.Fprintf(tw, "completed\t%s\n", when(r.CompletedAt))
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	// A refused or expired request never sent its tasks out: whatever the
	// server lists of them never ran.
	if note := refusedNote(r.State); note != "" {
		_, err := fmt.Fprintf(w, "\n%s\n%s: lethectl certificate %s -o cert.json, then lethectl verify cert.json --keys keys.json\n",
			note, certificateSays(r.State), r.ID)
		return err
	}
	// Its tasks wait for the identity check: none has gone out.
	if r.State == lifecycle.PendingVerification {
		_, err := fmt.Fprintf(w, "\nno tasks yet: confirm the subject's identity with: lethectl confirm %s --method METHOD\n"+
			"or refuse the request with: lethectl deny %s --reason REASON\n", r.ID, r.ID)
		return err
	}
	if len(r.Tasks) == 0 {
		_, err := fmt.Fprintln(w, "\nno tasks")
		return err
	}
	fmt.Fprintln(w)
	tw = tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "SYSTEM\tSTATE\tOUTCOME\tATTEMPTS\tANSWERED\tRECORDS\tNOTE")
	for _, t := range r.Tasks {
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\t%s\n",
			t.System, t.State, dash(t.Outcome), strconv.Itoa(t.Attempts), when(t.AnsweredAt), dash(counts(t.Counts)), dash(taskNote(t)))
	}
	return tw.Flush()
}

// refusedNote says why no system took part in a request that ended
// before its identity was checked (denied, expired); "" for any other
// state.
func refusedNote(s lifecycle.State) string {
	switch s {
	case lifecycle.Denied:
		return "no system was asked: the request was refused before its identity was checked"
	case lifecycle.Expired:
		return "no system was asked: the subject's identity was never checked, and the request expired"
	}
	return ""
}

// certificateSays is what the certificate of a request that ended in
// state s tells beyond the status.
func certificateSays(s lifecycle.State) string {
	if s == lifecycle.Denied {
		return "its certificate says who refused it, when and why"
	}
	return "its certificate"
}
