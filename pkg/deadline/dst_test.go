package deadline

import (
	"testing"
	"time"
)

// In zones whose clocks change at midnight (a day that starts at 01:00,
// or repeats its last hour), every deadline is still the last second of
// the right day: for every day of receipt in 2017 to 2024, the deadline
// falls on the date one calendar month later, the next second on the day
// after, and it is after the receipt; the extension likewise.
func TestDeadlinesWhereClocksChangeAtMidnight(t *testing.T) {
	for _, zone := range []string{"America/Asuncion", "America/Santiago", "America/Havana", "Asia/Beirut", "Europe/Paris", "UTC"} {
		loc, err := time.LoadLocation(zone)
		if err != nil {
			t.Skipf("no time zone data for %s: %v", zone, err)
		}
		p := Policy{Location: loc}
		for day := time.Date(2017, 1, 1, 0, 0, 0, 0, time.UTC); day.Year() < 2025; day = day.AddDate(0, 0, 1) {
			received := time.Date(day.Year(), day.Month(), day.Day(), 12, 0, 0, 0, loc)
			for _, c := range []struct {
				what   string
				got    time.Time
				months int
			}{{"deadline", p.Deadline(received), 1}, {"extension, from receipt", p.Extended(received), 3}} {
				want := addMonths(civil(received), c.months)
				if c.months == 3 {
					if alt := addMonths(addMonths(civil(received), 1), 2); alt.Before(want) {
						want = alt
					}
				}
				if !civil(c.got.In(loc)).Equal(want) || !civil(c.got.Add(time.Second).In(loc)).Equal(want.AddDate(0, 0, 1)) || !c.got.After(received) {
					t.Fatalf("%s: received %s, %s %s (%s), want the last second of %s", zone, received, c.what, c.got.In(loc), c.got.UTC(), want.Format(time.DateOnly))
				}
			}
		}
	}
}
