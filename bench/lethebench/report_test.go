package lethebench

import (
	"encoding/xml"
	"errors"
	"io"
	"path/filepath"
	"strings"
	"testing"
)

func TestCompare(t *testing.T) {
	base := &Report{Ratio: 0.40, RPS: 1000, P99: 100}
	for _, tc := range []struct {
		ratio float64
		warn  bool
	}{
		{0.40, false},
		{0.50, false},
		{0.33, false}, // -17.5%
		{0.31, true},  // -22.5%
		{0.01, true},
	} {
		got := Compare(base, &Report{Ratio: tc.ratio, RPS: 900, P99: 120})
		if strings.HasPrefix(got, "WARNING") != tc.warn {
			t.Errorf("ratio %.2f against 0.40: %q, want a warning: %v", tc.ratio, got, tc.warn)
		}
	}
}

// A short raw run is taken three times: the ceiling is the median run,
// whatever the order, and the table shows every run.
func TestMedianRaw(t *testing.T) {
	run := func(eps float64) Raw { return Raw{Messages: 100, Seconds: 100 / eps, EventsPerSec: eps} }
	for _, tc := range []struct {
		runs []float64
		want float64
	}{
		{[]float64{60000, 84000, 52000}, 60000},
		{[]float64{84000, 52000, 60000}, 60000},
		{[]float64{52000, 60000, 84000}, 60000},
		{[]float64{70000, 70000, 10000}, 70000},
	} {
		var runs []Raw
		for _, e := range tc.runs {
			runs = append(runs, run(e))
		}
		if got := medianRaw(runs); got.EventsPerSec != tc.want || got.Seconds != 100/tc.want {
			t.Errorf("median of %v = %+v, want the run of %.0f", tc.runs, got, tc.want)
		}
	}
	med := run(60000)
	med.Runs = []float64{52000, 60000, 84000}
	var b strings.Builder
	(&Report{Raw: map[string]Raw{"nats fast": med}}).Table(&b)
	if !strings.Contains(b.String(), "60000 events/s (100 messages in 0.00s), the median of 3 runs: 52000 60000 84000") {
		t.Errorf("the table does not show the runs:\n%s", b.String())
	}
}

func TestPercentiles(t *testing.T) {
	ms := make([]float64, 100)
	for i := range ms {
		ms[len(ms)-1-i] = float64(i + 1) // 100 .. 1, unsorted
	}
	got := percentiles(ms)
	if got != (Latency{P50: 51, P90: 91, P99: 100, Max: 100}) {
		t.Errorf("percentiles of 1..100 = %+v", got)
	}
	if percentiles(nil) != (Latency{}) {
		t.Error("percentiles of nothing are not zero")
	}
}

// The last line is what scripts read; the JSON reads back; the plot is
// well-formed SVG with a line per run in each chart.
func TestReportOutputs(t *testing.T) {
	runs := []*Run{
		{Name: "a", Requests: 3, RPS: 10, Timeline: []Sample{{T: 1, Ended: 1}, {T: 2.5, Ended: 3}}, latencies: []float64{5, 7, 9}},
		{Name: "b <&>", Requests: 2, RPS: 4, Timeline: []Sample{{T: 1.2, Ended: 2}}, latencies: []float64{30, 40}},
	}
	r := &Report{Ratio: 0.3125, RPS: 2100.4, P99: 180.6, TemporalRatio: 21.04, Runs: runs}
	if got, want := r.Line(), "ratio=0.312 rps=2100 p99_ms=181 temporal_ratio=21.0"; got != want {
		t.Errorf("Line() = %q, want %q", got, want)
	}
	path := filepath.Join(t.TempDir(), "r.json")
	if err := r.WriteJSON(path); err != nil {
		t.Fatal(err)
	}
	back, err := ReadReport(path)
	if err != nil || back.Ratio != r.Ratio || len(back.Runs) != 2 || back.Runs[0].Timeline[1].Ended != 3 {
		t.Fatalf("read back %+v, %v", back, err)
	}
	var svg strings.Builder
	if err := r.SVG(&svg); err != nil {
		t.Fatal(err)
	}
	lines := 0
	d := xml.NewDecoder(strings.NewReader(svg.String()))
	for {
		tok, err := d.Token()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			t.Fatalf("the plot is not well-formed XML: %v", err)
		}
		if se, ok := tok.(xml.StartElement); ok && se.Name.Local == "polyline" {
			lines++
		}
	}
	if lines != 2*len(runs) {
		t.Errorf("%d lines in the plot, want %d (throughput and latency per run)", lines, 2*len(runs))
	}
}
