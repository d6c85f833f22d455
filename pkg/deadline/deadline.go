// Package deadline computes the legal deadlines of data-subject requests, in
// one documented place.
//
// GDPR Art. 12(3): the controller answers "without undue delay and in any
// event within one month of receipt of the request", and may extend that
// "by two further months where necessary", telling the person within the
// first month.
//
// Periods are counted as Regulation (EEC, Euratom) No 1182/71 counts them:
//
//   - Art. 3(1): the day of receipt is not counted.
//   - Art. 3(2)(c): a period in months ends with the expiry of the last hour
//     of the day in the last month that has the same date as the day of
//     receipt; where that date does not exist in the last month, with the
//     expiry of the last hour of that month's last day (31 January + 1 month
//     = 28 or 29 February, 31 March = 30 April, 15 June = 15 July).
//   - Art. 3(4): where the last day is a public holiday, a Saturday or a
//     Sunday, the period ends with the expiry of the last hour of the
//     following working day. Lethe applies this only when a tenant's
//     [Policy] asks for it: by default a deadline does not roll, which is
//     the earlier, safer date.
//
// Days are the days of the tenant's time zone ([Policy.Location], UTC by
// default): a request received at 23:30 in Paris on 31 January is received
// on 31 January there, whatever the UTC date, and its deadline is the end of
// 28 February in Paris.
package deadline

import (
	"slices"
	"time"
)

// Policy is a tenant's way of counting deadlines. The zero value counts in
// UTC and does not roll to working days.
type Policy struct {
	// Location is the tenant's time zone; nil means UTC.
	Location *time.Location
	// RollToWorkingDay moves a deadline that falls on a Saturday, a Sunday
	// or one of Holidays to the end of the next working day (Art. 3(4)).
	RollToWorkingDay bool
	// Holidays are public holidays, as dates (their time of day and zone
	// are ignored).
	Holidays []time.Time
}

func (p Policy) loc() *time.Location {
	if p.Location == nil {
		return time.UTC
	}
	return p.Location
}

// Deadline is the one-month deadline of a request received at t: the last
// second of its last day, in the policy's zone.
func (p Policy) Deadline(received time.Time) time.Time {
	return p.endOf(AddMonths(received.In(p.loc()), 1))
}

// Extended is the deadline after the Art. 12(3) extension "by two further
// months": the earlier of two readings of the law, so that no reading finds
// it late. Read as a period of three months from receipt, and as two months
// added to the original deadline's date, they differ at month ends (31
// January: 30 April against 28 April), and Lethe takes the earlier.
func (p Policy) Extended(received time.Time) time.Time {
	local := received.In(p.loc())
	fromReceipt := p.endOf(AddMonths(local, 3))
	fromDeadline := p.endOf(AddMonths(AddMonths(local, 1), 2))
	if fromDeadline.Before(fromReceipt) {
		return fromDeadline
	}
	return fromReceipt
}

// endOf is the last second (23:59:59) of day's date in the policy's zone,
// after rolling past non-working days if the policy says so. Deadlines are
// kept to the second: that is how they are shown, stored and signed.
func (p Policy) endOf(day time.Time) time.Time {
	y, m, d := day.Date()
	date := time.Date(y, m, d, 0, 0, 0, 0, p.loc())
	for p.RollToWorkingDay && !p.working(date) {
		date = date.AddDate(0, 0, 1)
	}
	return date.AddDate(0, 0, 1).Add(-time.Second)
}

func (p Policy) working(date time.Time) bool {
	if wd := date.Weekday(); wd == time.Saturday || wd == time.Sunday {
		return false
	}
	y, m, d := date.Date()
	return !slices.ContainsFunc(p.Holidays, func(h time.Time) bool {
		hy, hm, hd := h.Date()
		return hy == y && hm == m && hd == d
	})
}

// AddMonths returns the date n calendar months after t's date, clamped to
// the last day of the target month when that month is shorter (31 Jan + 1
// month = 28 Feb, or 29 Feb in a leap year), at t's time of day and in t's
// location.
func AddMonths(t time.Time, n int) time.Time {
	y, m, d := t.Date()
	first := time.Date(y, m+time.Month(n), 1, 0, 0, 0, 0, t.Location())
	if last := first.AddDate(0, 1, -1).Day(); d > last {
		d = last
	}
	h, min, s := t.Clock()
	return time.Date(first.Year(), first.Month(), d, h, min, s, t.Nanosecond(), t.Location())
}

// OneMonth is the deadline of a request received at t under the default
// policy: the end of the day one calendar month after the day of receipt,
// in UTC.
func OneMonth(received time.Time) time.Time { return Policy{}.Deadline(received) }
