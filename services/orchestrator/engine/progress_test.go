package engine

import (
	"testing"
	"time"
)

func TestProgressPostpone(t *testing.T) {
	t0 := time.Date(2026, 12, 1, 12, 0, 0, 0, time.UTC)
	at := func(s int) time.Time { return t0.Add(time.Duration(s) * time.Second) }
	wait := 30 * time.Second
	// The system answered the task published at 10 s (seq 100) at 70 s:
	// its queue's lag is a minute.
	var p progress
	p.answered("alpha", 100, at(10), at(70))
	p.answered("alpha", 90, at(5), at(65)) // an older one, later: no step back
	tests := []struct {
		name      string
		system    string
		seq       int64
		published time.Time
		now       time.Time
		want      time.Time // zero: due now
	}{
		{"behind the backlog: waits from when the system should reach it", "alpha", 150, at(20), at(50), at(20 + 60 + 30)},
		{"reach overdue: a whole wait from now", "alpha", 150, at(20), at(200), at(230)},
		{"passed without an answer: lost", "alpha", 99, at(9), at(50), time.Time{}},
		{"the newest answered itself", "alpha", 100, at(10), at(50), time.Time{}},
		{"published after the last answer: the system went quiet", "alpha", 200, at(80), at(110), time.Time{}},
		{"a system never heard from", "beta", 150, at(20), at(50), time.Time{}},
		{"not published (no seq)", "alpha", 0, time.Time{}, at(50), time.Time{}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, ok := p.postpone(tt.system, tt.seq, tt.published, tt.now, wait)
			if ok != !tt.want.IsZero() || !got.Equal(tt.want) {
				t.Errorf("postpone = %v, %v; want %v", got, ok, tt.want)
			}
		})
	}
}
