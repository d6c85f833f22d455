// Package period is a calendar period ("13m", "3y", "6mo", "2w", "30d"),
// as retention rules state them: a number of years, months, weeks or days,
// added to or taken from an instant in UTC, clamping to a month's end (29
// February 2024 + 1y is 28 February 2025, where time.AddDate says 1 March).
package period

import (
	"fmt"
	"regexp"
	"strconv"
	"strings"
	"time"
)

// Period is a calendar period; build it with [Parse].
type Period struct{ years, months, days int }

var re = regexp.MustCompile(`^([0-9]+)\s*(y|mo|m|w|d)$`)

// Parse reads a number and a unit: y (years), m or mo (months), w
// (weeks), d (days).
func Parse(s string) (Period, error) {
	g := re.FindStringSubmatch(strings.TrimSpace(s))
	if g == nil {
		return Period{}, fmt.Errorf("bad period %q: want a number and y, m, w or d (\"10y\")", s)
	}
	n, err := strconv.Atoi(g[1])
	if err != nil || n <= 0 || n > 1000 {
		return Period{}, fmt.Errorf("bad period %q: the number must be between 1 and 1000", s)
	}
	switch g[2] {
	case "y":
		return Period{years: n}, nil
	case "m", "mo":
		return Period{months: n}, nil
	case "w":
		return Period{days: 7 * n}, nil
	}
	return Period{days: n}, nil
}

// After returns t plus the period, in UTC.
func (p Period) After(t time.Time) time.Time { return p.shift(t, 1) }

// Before returns t minus the period, in UTC: the cut-off of a retention
// run at t (what started before it is past the period).
func (p Period) Before(t time.Time) time.Time { return p.shift(t, -1) }

func (p Period) shift(t time.Time, sign int) time.Time {
	t = t.UTC()
	y, mo, d := t.Date()
	total := int(mo) - 1 + sign*(p.months+12*p.years) + 12*y
	y, mo = floorDiv(total, 12), time.Month(total-12*floorDiv(total, 12)+1)
	if last := time.Date(y, mo+1, 0, 0, 0, 0, 0, time.UTC).Day(); d > last {
		d = last
	}
	h, mi, s := t.Clock()
	return time.Date(y, mo, d+sign*p.days, h, mi, s, t.Nanosecond(), time.UTC)
}

func floorDiv(a, b int) int {
	q := a / b
	if a%b != 0 && a < 0 {
		q--
	}
	return q
}

// String is the period as Parse reads it.
func (p Period) String() string {
	switch {
	case p.years > 0:
		return fmt.Sprintf("%dy", p.years)
	case p.months > 0:
		return fmt.Sprintf("%dm", p.months)
	case p.days%7 == 0:
		return fmt.Sprintf("%dw", p.days/7)
	}
	return fmt.Sprintf("%dd", p.days)
}
