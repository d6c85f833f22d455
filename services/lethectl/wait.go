package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"slices"
	"strings"
	"time"

	"github.com/lethe-dev/lethe/pkg/lifecycle"
	"github.com/lethe-dev/lethe/services/lethectl/internal/api"
)

var waitCommand = command{
	name:    "wait",
	args:    "ID [--timeout 2m] [--interval 500ms]",
	summary: "follow a request until it has ended: " + oneOf(answeredStates) + " (exit 0), " + oneOf(notCarriedOut) + " (exit 1); exit 3 on timeout",
	run:     runWait,
}

// answeredStates are the states of a request that was carried out (wait
// exits 0); notCarriedOut the other states a request ends in, in lifecycle
// order: failed, denied, expired (wait exits 1).
var (
	answeredStates = []lifecycle.State{lifecycle.Fulfilled, lifecycle.PartiallyRetained}
	notCarriedOut  = slices.DeleteFunc(lifecycle.States(), func(s lifecycle.State) bool {
		return !s.Ended() || slices.Contains(answeredStates, s)
	})
)

func runWait(ctx context.Context, a *app, c command, args []string) int {
	fs := a.newFlags(c)
	timeout := fs.Duration("timeout", 2*time.Minute, "give up after this long (exit 3)")
	interval := fs.Duration("interval", 500*time.Millisecond, "time between polls")
	pos, code, ok := a.parse(c, fs, args, 1, 1)
	if !ok {
		return code
	}
	if *timeout <= 0 || *interval <= 0 {
		return a.usageError(c, fs, "--timeout and --interval must be positive")
	}
	id := pos[0]

	var p progress = &lineProgress{w: a.stdout}
	if a.tty {
		p = &liveProgress{w: a.stdout}
	}
	start := a.now()
	waitCtx, cancel := context.WithTimeout(ctx, *timeout)
	defer cancel()
	client := a.client()
	ticker := time.NewTicker(*interval)
	defer ticker.Stop()

	var (
		last        api.Request
		polled      bool
		lastWarning string
		hinted      bool
	)
	for {
		r, _, err := client.Get(waitCtx, id)
		var apiErr *api.Error
		switch {
		case err == nil:
			lastWarning = ""
			last, polled = r, true
			p.update(r, a.now().Sub(start))
			// An ended request is done with even while tasks of it are
			// deferred: their follow-up erasures run at the end of a
			// retention, possibly years away.
			if r.State.Ended() {
				return finishWait(a, r, a.now().Sub(start))
			}
			if r.State == lifecycle.PendingVerification && !hinted {
				p.detach()
				fmt.Fprintf(a.stderr, "request is pending verification: nothing happens until lethectl confirm %s (or lethectl deny %s refuses it)\n", id, id)
				hinted = true
			}
		case waitCtx.Err() != nil:
			// Timed out or interrupted mid-poll: the select below says which.
		case errors.As(err, &apiErr) && apiErr.StatusCode == http.StatusTooManyRequests:
			// Over the rate limit: wait as long as asked, then poll on.
			if msg := err.Error(); msg != lastWarning {
				p.detach()
				fmt.Fprintf(a.stderr, "lethectl wait: %v (slowing down)\n", err)
				lastWarning = msg
			}
			pause(waitCtx, apiErr.RetryAfter) // the select below sees a timeout
		case errors.As(err, &apiErr) && apiErr.StatusCode < 500:
			// 404, 401 and friends will not get better by polling.
			return a.fail(c, err)
		default:
			// The orchestrator may be restarting: keep polling, say so once.
			if msg := err.Error(); msg != lastWarning {
				p.detach()
				fmt.Fprintf(a.stderr, "lethectl wait: %v (retrying)\n", err)
				lastWarning = msg
			}
		}
		select {
		case <-waitCtx.Done():
			if ctx.Err() != nil {
				fmt.Fprintln(a.stderr, "lethectl wait: interrupted")
				return exitInterrupted
			}
			msg := fmt.Sprintf("lethectl wait: timed out after %s", *timeout)
			if polled {
				msg += fmt.Sprintf(": request still %s, %s", last.State, answeredOf(last.Tasks))
			}
			fmt.Fprintln(a.stderr, msg)
			return exitTimeout
		case <-ticker.C:
		}
	}
}

// finishWait prints the summary line of an ended request and returns the
// exit code for its state.
func finishWait(a *app, r api.Request, took time.Duration) int {
	if note := refusedNote(r.State); note != "" {
		fmt.Fprintf(a.stdout, "%s in %s: %s\n", r.State, elapsed(took), strings.TrimPrefix(note, "no system was asked: ")+"; no system was asked")
		fmt.Fprintf(a.stderr, "%s: lethectl certificate %s\n", certificateSays(r.State), r.ID)
		return exitError
	}
	summary := outcomeSummary(r.Tasks)
	if d := deferredSummary(r.Tasks); d != "" {
		summary += "; " + d
	}
	fmt.Fprintf(a.stdout, "%s in %s: %s\n", r.State, elapsed(took), summary)
	carriedOut := slices.Contains(answeredStates, r.State)
	if r.Type == lifecycle.Export && carriedOut {
		fmt.Fprintf(a.stderr, "download the bundle with: lethectl export download %s -o export.zip (or make a link for the person: lethectl export link %s)\n", r.ID, r.ID)
	}
	if !carriedOut {
		return exitError
	}
	return exitOK
}

// pause waits d, or until ctx is done.
func pause(ctx context.Context, d time.Duration) {
	if d <= 0 {
		return
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
	case <-t.C:
	}
}

// outcomeOrder is the order outcomes are summed up in.
var outcomeOrder = append(lifecycle.Outcomes(), "")

// outcomeSummary counts tasks by outcome: "5 systems: 3 erased, 1 not_found,
// 1 retained".
func outcomeSummary(tasks []api.Task) string {
	n := map[lifecycle.Outcome]int{}
	for _, t := range tasks {
		n[t.Outcome]++
	}
	var parts []string
	for _, o := range outcomeOrder {
		if n[o] == 0 {
			continue
		}
		name := string(o)
		if name == "" {
			name = "unanswered"
		}
		parts = append(parts, fmt.Sprintf("%d %s", n[o], name))
	}
	// Outcomes this CLI does not know yet still count.
	known := map[lifecycle.Outcome]bool{}
	for _, o := range outcomeOrder {
		known[o] = true
	}
	for _, t := range tasks {
		if !known[t.Outcome] {
			known[t.Outcome] = true
			parts = append(parts, fmt.Sprintf("%d %s", n[t.Outcome], t.Outcome))
		}
	}
	s := fmt.Sprintf("%d systems", len(tasks))
	if len(tasks) == 1 {
		s = "1 system"
	}
	if len(parts) > 0 {
		s += ": " + strings.Join(parts, ", ")
	}
	return s
}

// deferredSummary names the deferred erasures: "follow-up erasure of
// billing on 2031-12-31"; empty when no task is deferred.
func deferredSummary(tasks []api.Task) string {
	var parts []string
	for _, t := range tasks {
		if t.State == lifecycle.TaskDeferred {
			parts = append(parts, "follow-up erasure of "+t.System+" "+followUpDate(t))
		}
	}
	return strings.Join(parts, ", ")
}

// answeredOf says how many tasks have an answer: "2 of 5 systems answered".
// A deferred task has one: its system kept data until a date.
func answeredOf(tasks []api.Task) string {
	done := 0
	for _, t := range tasks {
		if t.Outcome != "" || t.State == lifecycle.TaskAnswered || t.State == lifecycle.TaskDeferred {
			done++
		}
	}
	return fmt.Sprintf("%d of %d systems answered", done, len(tasks))
}

// progress shows a request as it changes across polls.
type progress interface {
	update(r api.Request, elapsed time.Duration)
	// detach is called before something else is written to the terminal,
	// so the next update starts below it instead of drawing over it.
	detach()
}

// lineProgress prints a line per change, for logs and pipes:
// "accounts: published -> answered (erased)".
type lineProgress struct {
	w       io.Writer
	started bool
	state   lifecycle.State
	tasks   map[string]api.Task
}

func (p *lineProgress) update(r api.Request, _ time.Duration) {
	if !p.started {
		fmt.Fprintf(p.w, "request %s (%s, tenant %s): %s\n", r.ID, r.Type, r.Tenant, r.State)
		p.started, p.state, p.tasks = true, r.State, map[string]api.Task{}
	}
	for _, t := range r.Tasks {
		old, seen := p.tasks[t.System]
		p.tasks[t.System] = t
		switch {
		case !seen:
			fmt.Fprintf(p.w, "%s: %s%s\n", t.System, t.State, taskSuffix(t))
		case old.State != t.State:
			fmt.Fprintf(p.w, "%s: %s -> %s%s\n", t.System, old.State, t.State, taskSuffix(t))
		case old.Outcome != t.Outcome || old.Attempts != t.Attempts || old.Detail != t.Detail:
			fmt.Fprintf(p.w, "%s: %s%s\n", t.System, t.State, taskSuffix(t))
		}
	}
	// The request changes because its tasks did: say so after them.
	if r.State != p.state {
		fmt.Fprintf(p.w, "request: %s -> %s\n", p.state, r.State)
		p.state = r.State
	}
}

func (p *lineProgress) detach() {}

// taskSuffix is what follows a task's state in a progress line: its
// outcome, when a deferred erasure runs, its attempt while retrying, and
// the reason for a failure.
func taskSuffix(t api.Task) string {
	var in []string
	switch {
	case t.Outcome == lifecycle.Retained:
		in = append(in, retainedNote(t))
	case t.Outcome != "":
		in = append(in, string(t.Outcome))
	}
	if n := deferredNote(t); n != "" {
		in = append(in, n)
	}
	if t.State == lifecycle.TaskRetrying || (t.Outcome == "" && t.Attempts > 1) {
		in = append(in, fmt.Sprintf("attempt %d", t.Attempts))
	}
	s := ""
	if len(in) > 0 {
		s = " (" + strings.Join(in, ", ") + ")"
	}
	if d := failureDetail(t); d != "" {
		s += ": " + d
	}
	return s
}

// liveProgress redraws a block of lines in place on a terminal: a header
// with the request state and elapsed time, then a line per system.
type liveProgress struct {
	w     io.Writer
	lines int // lines drawn last time, to move the cursor back over
}

// maxLive keeps a line from wrapping, which would throw the cursor
// arithmetic off; a failure's full detail is in `lethectl status`.
const maxLive = 100

func (p *liveProgress) update(r api.Request, took time.Duration) {
	lines := []string{fmt.Sprintf("request %s (%s, tenant %s): %s  %s", r.ID, r.Type, r.Tenant, r.State, elapsed(took))}
	width := 0
	for _, t := range r.Tasks {
		width = max(width, len(t.System))
	}
	for _, t := range r.Tasks {
		// 11 is the longest state, dead_letter.
		l := fmt.Sprintf("  %-*s  %-11s %s", width, t.System, t.State, strings.TrimPrefix(taskSuffix(t), " "))
		lines = append(lines, strings.TrimRight(l, " "))
	}
	var b strings.Builder
	if p.lines > 0 {
		fmt.Fprintf(&b, "\x1b[%dA", p.lines) // cursor up
	}
	for _, l := range lines {
		if rs := []rune(l); len(rs) > maxLive {
			l = string(rs[:maxLive-3]) + "..."
		}
		b.WriteString("\r\x1b[2K") // column 0, clear line
		b.WriteString(l)
		b.WriteByte('\n')
	}
	for i := len(lines); i < p.lines; i++ {
		b.WriteString("\r\x1b[2K\n")
	}
	p.lines = max(p.lines, len(lines))
	io.WriteString(p.w, b.String())
}

func (p *liveProgress) detach() { p.lines = 0 }
