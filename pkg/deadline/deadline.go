// Package deadline computes the legal deadlines of data-subject requests:
// GDPR Art. 12(3) asks for an answer "within one month of receipt".
package deadline

import "time"

// AddMonths returns the date n calendar months after t's date, clamped to
// the last day of the target month when that month is shorter (31 Jan + 1
// month = 28 Feb, or 29 Feb in a leap year), at t's time of day.
func AddMonths(t time.Time, n int) time.Time {
	y, m, d := t.Date()
	first := time.Date(y, m+time.Month(n), 1, 0, 0, 0, 0, t.Location())
	last := first.AddDate(0, 1, -1).Day()
	if d > last {
		d = last
	}
	h, min, s := t.Clock()
	return time.Date(first.Year(), first.Month(), d, h, min, s, t.Nanosecond(), t.Location())
}

// OneMonth is the deadline of a request received at t: the end (23:59:59)
// of the day one calendar month after the day of receipt, in UTC.
func OneMonth(received time.Time) time.Time {
	d := AddMonths(received.UTC(), 1)
	return time.Date(d.Year(), d.Month(), d.Day(), 23, 59, 59, 0, time.UTC)
}
