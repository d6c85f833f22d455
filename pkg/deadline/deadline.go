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
	return p.endOf(addMonths(civil(received.In(p.loc())), 1))
}

// Extended is the deadline after the Art. 12(3) extension "by two further
// months": the earlier of two readings of the law, so that no reading finds
// it late. Read as a period of three months from receipt, and as two months
// added to the original (unrolled) deadline's date, they differ at month
// ends (31 January: 30 April against 28 April), and Lethe takes the
// earlier.
func (p Policy) Extended(received time.Time) time.Time {
	day := civil(received.In(p.loc()))
	fromReceipt := p.endOf(addMonths(day, 3))
	fromDeadline := p.endOf(addMonths(addMonths(day, 1), 2))
	if fromDeadline.Before(fromReceipt) {
		return fromDeadline
	}
	return fromReceipt
}

// A date is a calendar day, as midnight UTC: date arithmetic on it knows
// no zone's clock changes. (A zone whose clocks change at midnight has
// days with no 00:00; arithmetic on local midnights there lands on the
// wrong day.)
type date = time.Time

// civil is t's calendar date in t's location.
func civil(t time.Time) date {
	y, m, d := t.Date()
	return time.Date(y, m, d, 0, 0, 0, 0, time.UTC)
}

// addMonths is the date n calendar months after day, clamped to the last
// day of the target month when that month is shorter.
func addMonths(day date, n int) date {
	y, m, d := day.Date()
	first := time.Date(y, m+time.Month(n), 1, 0, 0, 0, 0, time.UTC)
	if last := first.AddDate(0, 1, -1).Day(); d > last {
		d = last
	}
	return time.Date(first.Year(), first.Month(), d, 0, 0, 0, 0, time.UTC)
}

// endOf is the last second of day in the policy's zone, after rolling
// past non-working days if the policy says so. Deadlines are kept to the
// second: that is how they are shown, stored and signed.
func (p Policy) endOf(day date) time.Time {
	for p.RollToWorkingDay && !p.working(day) {
		day = day.AddDate(0, 0, 1)
	}
	return lastSecond(day, p.loc())
}

// lastSecond is the last second of day in loc: the second before the
// first instant whose local date is the next day. It is found between
// the two days' noons, which every zone has, so that a day that starts
// at 01:00 or ends at 23:00 (a clock change at midnight) is right.
func lastSecond(day date, loc *time.Location) time.Time {
	y, m, d := day.Date()
	lo := time.Date(y, m, d, 12, 0, 0, 0, loc).Unix()   // in day
	hi := time.Date(y, m, d+1, 12, 0, 0, 0, loc).Unix() // in the next day
	next := civil(day.AddDate(0, 0, 1))
	for hi-lo > 1 {
		mid := lo + (hi-lo)/2
		if civil(time.Unix(mid, 0).In(loc)).Before(next) {
			lo = mid
		} else {
			hi = mid
		}
	}
	return time.Unix(lo, 0).In(loc)
}

func (p Policy) working(day date) bool {
	if wd := day.Weekday(); wd == time.Saturday || wd == time.Sunday {
		return false
	}
	y, m, d := day.Date()
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
	y, m, d := addMonths(civil(t), n).Date()
	h, min, s := t.Clock()
	return time.Date(y, m, d, h, min, s, t.Nanosecond(), t.Location())
}

// OneMonth is the deadline of a request received at t under the default
// policy: the end of the day one calendar month after the day of receipt,
// in UTC.
func OneMonth(received time.Time) time.Time { return Policy{}.Deadline(received) }
