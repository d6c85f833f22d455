package period_test

import (
	"testing"
	"time"

	"github.com/lethe-dev/lethe/pkg/period"
)

func day(y int, m time.Month, d int) time.Time { return time.Date(y, m, d, 10, 30, 0, 0, time.UTC) }

func TestShift(t *testing.T) {
	tests := []struct {
		period        string
		at            time.Time
		after, before time.Time
	}{
		{"13m", day(2026, 12, 1), day(2028, 1, 1), day(2025, 11, 1)},
		{"1y", day(2024, 2, 29), day(2025, 2, 28), day(2023, 2, 28)},
		{"6mo", day(2026, 8, 31), day(2027, 2, 28), day(2026, 2, 28)},
		{"3y", day(2026, 1, 15), day(2029, 1, 15), day(2023, 1, 15)},
		{"50m", day(2026, 12, 1), day(2031, 2, 1), day(2022, 10, 1)},
		{"2w", day(2026, 3, 1), day(2026, 3, 15), day(2026, 2, 15)},
		{"30d", day(2026, 3, 1), day(2026, 3, 31), day(2026, 1, 30)},
		{"1m", day(2026, 1, 5), day(2026, 2, 5), day(2025, 12, 5)},
		{"13mo", day(2025, 1, 31), day(2026, 2, 28), day(2023, 12, 31)},
		{"10y", day(2024, 3, 15), day(2034, 3, 15), day(2014, 3, 15)},
	}
	for _, tt := range tests {
		t.Run(tt.period, func(t *testing.T) {
			p, err := period.Parse(tt.period)
			if err != nil {
				t.Fatal(err)
			}
			if got := p.After(tt.at); !got.Equal(tt.after) {
				t.Errorf("%s after %s = %s, want %s", tt.period, tt.at, got, tt.after)
			}
			if got := p.Before(tt.at); !got.Equal(tt.before) {
				t.Errorf("%s before %s = %s, want %s", tt.period, tt.at, got, tt.before)
			}
		})
	}
}

func TestParseRefuses(t *testing.T) {
	for _, s := range []string{"", "13", "m", "0y", "1001d", "-1y", "1 year", "1h", "1.5y", "10 years"} {
		if _, err := period.Parse(s); err == nil {
			t.Errorf("Parse(%q) took it", s)
		}
	}
	for _, s := range []string{"13m", "6mo", "2w", "1y", "30d"} {
		p, err := period.Parse(s)
		if err != nil {
			t.Fatal(err)
		}
		if q, err := period.Parse(p.String()); err != nil || q != p {
			t.Errorf("%q reads back as %q", s, p.String())
		}
	}
}

// An instant in another zone is shifted in UTC.
func TestShiftInUTC(t *testing.T) {
	p, err := period.Parse(" 1y ")
	if err != nil {
		t.Fatal(err)
	}
	at := time.Date(2024, 6, 1, 12, 30, 0, 0, time.FixedZone("CEST", 7200))
	if got, want := p.After(at), time.Date(2025, 6, 1, 10, 30, 0, 0, time.UTC); !got.Equal(want) || got.Location() != time.UTC {
		t.Errorf("1y after %v = %v, want %v", at, got, want)
	}
}
