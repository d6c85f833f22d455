package deadline

import (
	"testing"
	"time"
)

func TestOneMonth(t *testing.T) {
	tests := []struct{ received, want string }{
		{"2026-01-15T10:00:00Z", "2026-02-15T23:59:59Z"},
		{"2026-01-31T10:00:00Z", "2026-02-28T23:59:59Z"},
		{"2024-01-31T10:00:00Z", "2024-02-29T23:59:59Z"}, // leap year
		{"2028-01-30T00:00:00Z", "2028-02-29T23:59:59Z"},
		{"2100-01-31T00:00:00Z", "2100-02-28T23:59:59Z"}, // not a leap year
		{"2026-03-31T12:00:00Z", "2026-04-30T23:59:59Z"},
		{"2026-06-15T08:30:00Z", "2026-07-15T23:59:59Z"},
		{"2026-12-31T23:00:00Z", "2027-01-31T23:59:59Z"}, // December to January
		{"2026-02-28T00:00:00Z", "2026-03-28T23:59:59Z"},
		{"2026-01-31T23:30:00-02:00", "2026-03-01T23:59:59Z"}, // 1 Feb 01:30 UTC -> 1 Mar
	}
	for _, tt := range tests {
		r, _ := time.Parse(time.RFC3339, tt.received)
		want, _ := time.Parse(time.RFC3339, tt.want)
		if got := OneMonth(r); !got.Equal(want) {
			t.Errorf("OneMonth(%s) = %s, want %s", tt.received, got.Format(time.RFC3339), want.Format(time.RFC3339))
		}
	}
}

// Every day from 2000 to 2100: the deadline is after receipt, at most 31
// days later, and on the same day of the month unless clamped to the month's end.
func TestOneMonthEveryDay(t *testing.T) {
	for d := time.Date(2000, 1, 1, 12, 0, 0, 0, time.UTC); d.Year() <= 2100; d = d.AddDate(0, 0, 1) {
		got := OneMonth(d)
		if !got.After(d) || got.Sub(d) > 32*24*time.Hour {
			t.Fatalf("OneMonth(%s) = %s", d.Format(time.DateOnly), got)
		}
		if got.Day() != d.Day() {
			lastOfMonth := got.AddDate(0, 0, 1).Day() == 1
			if !lastOfMonth || got.Day() > d.Day() {
				t.Fatalf("OneMonth(%s) = %s: day changed without clamping", d.Format(time.DateOnly), got.Format(time.DateOnly))
			}
		}
	}
}
