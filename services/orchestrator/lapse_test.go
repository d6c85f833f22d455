package orchestrator

import (
	"context"
	"errors"
	"strings"
	"testing"

	"github.com/lethe-dev/lethe/pkg/piitest"
)

// A loop's failure is said once when it begins and once each time it
// changes, its end once; a failure while the loop stops says nothing.
func TestLapse(t *testing.T) {
	down, full := errors.New("store down"), errors.New("disk full")
	stopped, stop := context.WithCancel(t.Context())
	stop()
	for _, tc := range []struct {
		name   string
		rounds []error
		ctx    context.Context
		want   []string // the lines said, in order
	}{
		{"never fails", []error{nil, nil}, t.Context(), nil},
		{"fails, recovers", []error{down, down, down, nil, nil}, t.Context(), []string{"failed store down", "recovered"}},
		{"failure changes", []error{down, full, full, nil}, t.Context(), []string{"failed store down", "failed disk full", "recovered"}},
		{"fails again", []error{down, nil, down}, t.Context(), []string{"failed store down", "recovered", "failed store down"}},
		{"stopping", []error{down}, stopped, nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var logs piitest.Capture
			l := lapse{log: logs.Logger(), failed: "failed", recovered: "recovered"}
			for _, err := range tc.rounds {
				l.round(tc.ctx, err)
			}
			var got []string
			for _, line := range strings.Split(strings.TrimSpace(logs.String()), "\n") {
				if line == "" {
					continue
				}
				msg := between(line, `msg=`, ` `)
				if e := between(line, `err="`, `"`); e != "" {
					msg += " " + e
				}
				got = append(got, msg)
			}
			if strings.Join(got, "|") != strings.Join(tc.want, "|") {
				t.Errorf("said %q, want %q", got, tc.want)
			}
		})
	}
}

// between is what follows start in s up to end (or the line's end).
func between(s, start, end string) string {
	_, rest, ok := strings.Cut(s, start)
	if !ok {
		return ""
	}
	v, _, _ := strings.Cut(rest, end)
	return v
}
