package main

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"sort"
	"strings"
	"time"

	"github.com/lethe-dev/lethe/pkg/lifecycle"
	"github.com/lethe-dev/lethe/services/lethectl/internal/api"
)

// Times are shown in UTC: deadlines are computed in UTC, and a DPO comparing
// two requests should not have to think about time zones.
const (
	timeLayout = "2006-01-02 15:04 UTC"
	dateLayout = "2006-01-02"
	// stampLayout is for proofs, where a second can matter.
	stampLayout = "2006-01-02 15:04:05 UTC"
)

// stamp formats a time of a proof (a signature, a key's validity) to the
// second.
func stamp(t time.Time) string { return t.UTC().Format(stampLayout) }

// checkReceivedAt is the check submit and deadline make of --received-at:
// empty (now) or RFC 3339. The value is not echoed: a mistyped flag may hold
// anything.
func checkReceivedAt(s string) error {
	if s == "" {
		return nil
	}
	if _, err := time.Parse(time.RFC3339, s); err != nil {
		return errors.New("--received-at must be RFC 3339, e.g. 2025-01-31T09:00:00Z")
	}
	return nil
}

// when formats a time, or "-" when it is not set.
func when(t api.Time) string {
	if t.IsZero() {
		return "-"
	}
	return t.UTC().Format(timeLayout)
}

// date formats a time as a day, or "-" when it is not set.
func date(t api.Time) string {
	if t.IsZero() {
		return "-"
	}
	return t.UTC().Format(dateLayout)
}

// deadlineNote says how a deadline stands: time left or overdue while the
// request is open, met or missed once it has ended.
func deadlineNote(deadline api.Time, state lifecycle.State, completed api.Time, now time.Time) string {
	if deadline.IsZero() {
		return ""
	}
	if state.Ended() {
		if completed.IsZero() {
			return ""
		}
		if !completed.After(deadline.Time) {
			return "met"
		}
		return "missed by " + humanDuration(completed.Sub(deadline.Time))
	}
	left := deadline.Sub(now)
	if left < 0 {
		return "overdue by " + humanDuration(-left)
	}
	return humanDuration(left) + " left"
}

// deadlineCell is a deadline with its note, as shown in tables.
func deadlineCell(deadline api.Time, state lifecycle.State, completed api.Time, now time.Time) string {
	s := when(deadline)
	if note := deadlineNote(deadline, state, completed, now); note != "" {
		s += " (" + note + ")"
	}
	return s
}

// humanDuration is a coarse duration: the two largest units, truncated
// ("12d 4h", "5h 3m", "42m", "30s").
func humanDuration(d time.Duration) string {
	if d < 0 {
		d = -d
	}
	day := 24 * time.Hour
	switch {
	case d >= day:
		return fmt.Sprintf("%dd %dh", d/day, (d%day)/time.Hour)
	case d >= time.Hour:
		return fmt.Sprintf("%dh %dm", d/time.Hour, (d%time.Hour)/time.Minute)
	case d >= time.Minute:
		return fmt.Sprintf("%dm", d/time.Minute)
	default:
		return fmt.Sprintf("%ds", d/time.Second)
	}
}

// elapsed is a wait's running time, to a tenth of a second.
func elapsed(d time.Duration) string {
	return d.Round(100 * time.Millisecond).String()
}

// counts formats per-category counts sorted by category: "invoice=3 profile=1".
func counts[N int | int64](m map[string]N) string {
	if len(m) == 0 {
		return ""
	}
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	parts := make([]string, len(keys))
	for i, k := range keys {
		parts[i] = fmt.Sprintf("%s=%d", k, m[k])
	}
	return strings.Join(parts, " ")
}

// taskNote is what a status row says beyond state and outcome: the legal
// basis and end date of what was retained, when a deferred erasure runs,
// the reason for a failure.
func taskNote(t api.Task) string {
	var notes []string
	if n := retainedNote(t); n != "" {
		notes = append(notes, n)
	}
	if n := deferredNote(t); n != "" {
		notes = append(notes, n)
	}
	if d := failureDetail(t); d != "" {
		notes = append(notes, d)
	}
	return strings.Join(notes, "; ")
}

// retainedNote says what was kept and why: "retained under <legal basis>
// until <date>, N records remain"; empty unless the task retained data.
func retainedNote(t api.Task) string {
	if t.Outcome != lifecycle.Retained && t.LegalBasis == "" {
		return ""
	}
	n := string(lifecycle.Retained)
	if t.LegalBasis != "" {
		n += " under " + t.LegalBasis
	}
	if !t.RetainUntil.IsZero() {
		n += " until " + date(t.RetainUntil)
	}
	if t.Remaining > 0 {
		n += fmt.Sprintf(", %d records remain", t.Remaining)
	}
	return n
}

// deferredNote says when the follow-up erasure of a deferred task runs:
// "follow-up erasure on 2035-12-31"; empty unless the task is deferred.
// Its system kept data by law until a date, and the orchestrator erases it
// then. The task is answered, not awaited: its request has ended,
// partially retained, and becomes fulfilled once the follow-up erasures
// are done.
func deferredNote(t api.Task) string {
	if t.State != lifecycle.TaskDeferred {
		return ""
	}
	return "follow-up erasure " + followUpDate(t)
}

// followUpDate is when a deferred task's follow-up erasure runs: "on
// 2035-12-31".
func followUpDate(t api.Task) string {
	due := t.NextAttemptAt
	if due.IsZero() {
		due = t.RetainUntil
	}
	if due.IsZero() {
		return "when the retention ends"
	}
	return "on " + date(due)
}

// failureDetail is the server's reason for a failed, retrying or
// dead-lettered task.
func failureDetail(t api.Task) string {
	if t.Outcome == lifecycle.OutcomeFailed || t.State == lifecycle.TaskDeadLetter || t.State == lifecycle.TaskRetrying {
		return t.Detail
	}
	return ""
}

// oneOf lists names for a help text or an error: "a, b or c".
func oneOf[S ~string](names []S) string {
	if len(names) < 2 {
		return joined(names, "")
	}
	last := len(names) - 1
	return joined(names[:last], ", ") + " or " + string(names[last])
}

// joined joins names with sep: "erasure|export".
func joined[S ~string](names []S, sep string) string {
	s := make([]string, len(names))
	for i, n := range names {
		s[i] = string(n)
	}
	return strings.Join(s, sep)
}

// dash stands in for an empty cell so columns stay readable.
func dash[S ~string](s S) string {
	if s == "" {
		return "-"
	}
	return string(s)
}

// writeJSON prints a raw JSON reply indented, as the server sent it (fields
// the CLI does not know about included).
func writeJSON(w io.Writer, raw []byte) error {
	var buf bytes.Buffer
	if err := json.Indent(&buf, raw, "", "  "); err != nil {
		// Not JSON after all: print it as it came.
		buf.Reset()
		buf.Write(raw)
	}
	buf.WriteByte('\n')
	_, err := w.Write(buf.Bytes())
	return err
}
