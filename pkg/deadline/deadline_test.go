package deadline

import (
	"testing"
	"time"
)

func mustLoc(t *testing.T, name string) *time.Location {
	t.Helper()
	loc, err := time.LoadLocation(name)
	if err != nil {
		t.Fatal(err)
	}
	return loc
}

func TestDeadline(t *testing.T) {
	paris := mustLoc(t, "Europe/Paris")
	tokyo := mustLoc(t, "Asia/Tokyo")
	ny := mustLoc(t, "America/New_York")
	day := func(s string) time.Time { d, _ := time.Parse(time.DateOnly, s); return d }
	french := Policy{Location: paris, RollToWorkingDay: true, Holidays: []time.Time{
		day("2026-05-01"), day("2026-05-08"), day("2026-05-14"), day("2026-05-25"), day("2026-07-14"),
		day("2026-08-15"), day("2026-11-01"), day("2026-11-11"), day("2026-12-25"), day("2027-01-01"),
	}}
	tests := []struct {
		name     string
		policy   Policy
		received string
		want     string
	}{
		// Same date one month on.
		{"mid month", Policy{}, "2026-06-15T08:30:00Z", "2026-07-15T23:59:59Z"},
		{"first of month", Policy{}, "2026-03-01T00:00:00Z", "2026-04-01T23:59:59Z"},
		{"day 28", Policy{}, "2026-02-28T12:00:00Z", "2026-03-28T23:59:59Z"},
		{"day 30 to a 31-day month", Policy{}, "2026-04-30T12:00:00Z", "2026-05-30T23:59:59Z"},
		{"day 30 of a 31-day month", Policy{}, "2026-05-30T12:00:00Z", "2026-06-30T23:59:59Z"},
		{"last second of the day", Policy{}, "2026-06-15T23:59:59Z", "2026-07-15T23:59:59Z"},
		{"first second of the day", Policy{}, "2026-06-15T00:00:00Z", "2026-07-15T23:59:59Z"},
		// Month ends clamp.
		{"31 Jan to Feb", Policy{}, "2026-01-31T10:00:00Z", "2026-02-28T23:59:59Z"},
		{"30 Jan to Feb", Policy{}, "2026-01-30T10:00:00Z", "2026-02-28T23:59:59Z"},
		{"29 Jan to Feb", Policy{}, "2026-01-29T10:00:00Z", "2026-02-28T23:59:59Z"},
		{"31 Mar to Apr", Policy{}, "2026-03-31T12:00:00Z", "2026-04-30T23:59:59Z"},
		{"31 May to Jun", Policy{}, "2026-05-31T12:00:00Z", "2026-06-30T23:59:59Z"},
		{"31 Aug to Sep", Policy{}, "2026-08-31T12:00:00Z", "2026-09-30T23:59:59Z"},
		{"31 Oct to Nov", Policy{}, "2026-10-31T12:00:00Z", "2026-11-30T23:59:59Z"},
		{"31 Jul to Aug (no clamp)", Policy{}, "2026-07-31T12:00:00Z", "2026-08-31T23:59:59Z"},
		// Leap years.
		{"leap 2024: 31 Jan", Policy{}, "2024-01-31T10:00:00Z", "2024-02-29T23:59:59Z"},
		{"leap 2024: 29 Jan", Policy{}, "2024-01-29T10:00:00Z", "2024-02-29T23:59:59Z"},
		{"leap 2024: 29 Feb", Policy{}, "2024-02-29T10:00:00Z", "2024-03-29T23:59:59Z"},
		{"leap 2028: 30 Jan", Policy{}, "2028-01-30T00:00:00Z", "2028-02-29T23:59:59Z"},
		{"leap 2028: 28 Feb", Policy{}, "2028-02-28T00:00:00Z", "2028-03-28T23:59:59Z"},
		{"2100 is not leap", Policy{}, "2100-01-31T00:00:00Z", "2100-02-28T23:59:59Z"},
		{"2100: 29 Jan", Policy{}, "2100-01-29T00:00:00Z", "2100-02-28T23:59:59Z"},
		{"2000 is leap", Policy{}, "2000-01-31T00:00:00Z", "2000-02-29T23:59:59Z"},
		// December to January.
		{"31 Dec", Policy{}, "2026-12-31T23:00:00Z", "2027-01-31T23:59:59Z"},
		{"1 Dec", Policy{}, "2026-12-01T00:00:00Z", "2027-01-01T23:59:59Z"},
		{"15 Dec", Policy{}, "2026-12-15T09:00:00Z", "2027-01-15T23:59:59Z"},
		// Time zones around midnight.
		{"UTC day from an offset", Policy{}, "2026-01-31T23:30:00-02:00", "2026-03-01T23:59:59Z"},
		{"Paris: 23:30 on 31 Jan local", Policy{Location: paris}, "2026-01-31T22:30:00Z", "2026-02-28T23:59:59+01:00"},
		{"Paris: 00:30 on 1 Feb local is still 31 Jan in UTC", Policy{Location: paris}, "2026-01-31T23:30:00Z", "2026-03-01T23:59:59+01:00"},
		{"Paris summer time", Policy{Location: paris}, "2026-06-15T12:00:00Z", "2026-07-15T23:59:59+02:00"},
		{"Paris: deadline after the DST change", Policy{Location: paris}, "2026-03-15T12:00:00Z", "2026-04-15T23:59:59+02:00"},
		{"Tokyo: next local day", Policy{Location: tokyo}, "2026-03-31T16:00:00Z", "2026-05-01T23:59:59+09:00"},
		{"New York: previous local day", Policy{Location: ny}, "2026-04-01T02:00:00Z", "2026-04-30T23:59:59-04:00"},
		// Rolling to the next working day (Art. 3(4)), only when asked.
		{"Saturday, no roll", Policy{}, "2026-06-13T10:00:00Z", "2026-07-13T23:59:59Z"},
		{"falls on Saturday, no roll by default", Policy{}, "2026-09-05T10:00:00Z", "2026-10-05T23:59:59Z"},
		{"falls on Sunday 4 Oct 2026, no roll", Policy{}, "2026-09-04T10:00:00Z", "2026-10-04T23:59:59Z"},
		{"falls on Sunday 4 Oct 2026, rolled to Monday", Policy{RollToWorkingDay: true}, "2026-09-04T10:00:00Z", "2026-10-05T23:59:59Z"},
		{"falls on Saturday 3 Oct 2026, rolled to Monday", Policy{RollToWorkingDay: true}, "2026-09-03T10:00:00Z", "2026-10-05T23:59:59Z"},
		{"falls on a weekday, no roll needed", Policy{RollToWorkingDay: true}, "2026-09-07T10:00:00Z", "2026-10-07T23:59:59Z"},
		{"falls on Bastille Day (Tuesday), rolled", french, "2026-06-14T10:00:00Z", "2026-07-15T23:59:59+02:00"},
		{"falls on Christmas (Friday), rolled over the weekend", french, "2026-11-25T10:00:00Z", "2026-12-28T23:59:59+01:00"},
		{"1 May 2026 is a Friday holiday: roll to Monday 4", french, "2026-04-01T10:00:00Z", "2026-05-04T23:59:59+02:00"},
		{"Ascension Thursday 14 May: roll to Friday", french, "2026-04-14T10:00:00Z", "2026-05-15T23:59:59+02:00"},
		{"holidays without roll are ignored", Policy{Location: paris, Holidays: french.Holidays}, "2026-06-14T10:00:00Z", "2026-07-14T23:59:59+02:00"},
		{"New Year (Friday) rolled to Monday 4 Jan", french, "2026-12-01T10:00:00Z", "2027-01-04T23:59:59+01:00"},
	}
	if len(tests) < 40 {
		t.Fatalf("only %d cases", len(tests))
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r, err := time.Parse(time.RFC3339, tt.received)
			if err != nil {
				t.Fatal(err)
			}
			want, err := time.Parse(time.RFC3339, tt.want)
			if err != nil {
				t.Fatal(err)
			}
			got := tt.policy.Deadline(r)
			if !got.Equal(want) {
				t.Fatalf("Deadline(%s) = %s, want %s", tt.received, got.Format(time.RFC3339), tt.want)
			}
		})
	}
}

func TestExtended(t *testing.T) {
	tests := []struct{ received, want string }{
		{"2026-01-15T10:00:00Z", "2026-04-15T23:59:59Z"},
		{"2026-01-31T10:00:00Z", "2026-04-28T23:59:59Z"}, // 28 Feb + 2 months is earlier than 30 April
		{"2026-03-31T10:00:00Z", "2026-06-30T23:59:59Z"},
		{"2026-11-30T10:00:00Z", "2027-02-28T23:59:59Z"},
		{"2026-12-31T10:00:00Z", "2027-03-31T23:59:59Z"},
		{"2027-11-30T10:00:00Z", "2028-02-29T23:59:59Z"},
	}
	for _, tt := range tests {
		r, _ := time.Parse(time.RFC3339, tt.received)
		want, _ := time.Parse(time.RFC3339, tt.want)
		if got := (Policy{}).Extended(r); !got.Equal(want) {
			t.Errorf("Extended(%s) = %s, want %s", tt.received, got.Format(time.RFC3339), tt.want)
		}
	}
}

// Every day from 2000 to 2100, in UTC and in Paris: the deadline is after
// receipt, at most 31 days later (32 counting the day of receipt), ends a
// day, and falls on the same day of the month unless clamped to the
// month's end.
func TestDeadlineEveryDay(t *testing.T) {
	for _, p := range []Policy{{}, {Location: mustLoc(t, "Europe/Paris")}} {
		for d := time.Date(2000, 1, 1, 12, 0, 0, 0, p.loc()); d.Year() <= 2100; d = d.AddDate(0, 0, 1) {
			got := p.Deadline(d)
			if !got.After(d) || got.Sub(d) > 32*24*time.Hour {
				t.Fatalf("Deadline(%s) = %s", d.Format(time.DateOnly), got)
			}
			if h, m, s := got.Clock(); h != 23 || m != 59 || s != 59 {
				t.Fatalf("Deadline(%s) = %s: not the end of a day", d.Format(time.DateOnly), got)
			}
			if got.Day() != d.Day() {
				lastOfMonth := got.AddDate(0, 0, 1).Day() == 1
				if !lastOfMonth || got.Day() > d.Day() {
					t.Fatalf("Deadline(%s) = %s: day changed without clamping", d.Format(time.DateOnly), got.Format(time.DateOnly))
				}
			}
			if ext := p.Extended(d); ext.Before(got) || ext.Sub(got) > 62*24*time.Hour+time.Hour {
				t.Fatalf("Extended(%s) = %s, deadline %s", d.Format(time.DateOnly), ext, got)
			}
		}
	}
}
