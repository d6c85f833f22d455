package lethebench

import (
	"cmp"
	"context"
	"encoding/xml"
	"errors"
	"io"
	"math"
	"path/filepath"
	"slices"
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
	if strings.Contains(svg.String(), "bound") {
		t.Error("the plot draws a bound the run did not measure")
	}
	svg.Reset()
	r.Floor = &Floor{Bound: 0.205, BoundRPS: 1182}
	if err := r.SVG(&svg); err != nil {
		t.Fatal(err)
	}
	if want := "the contract floor's bound: 1182 req/s (0.205 of the raw ceiling)"; !strings.Contains(svg.String(), want) {
		t.Errorf("the plot does not draw the bound (%q)", want)
	}
	// The chart's scale takes the bound in: the runs' lines sit below it.
	if !strings.Contains(svg.String(), ">1300</text>") {
		t.Errorf("the throughput axis does not reach above the bound:\n%s", svg.String())
	}
}

func TestRatioBound(t *testing.T) {
	for _, tc := range []struct {
		name                   string
		cores                  int
		floor, bus, raw, bound float64
	}{
		// Two cores, 1 ms of cryptography and 0.25 ms of bus per request,
		// a ceiling of 7,000 requests/s: 1,600 requests/s at most.
		{"two cores", 2, 0.001, 0.00025, 7000, 1600.0 / 7000},
		{"twice the cores", 4, 0.001, 0.00025, 7000, 3200.0 / 7000},
		{"no cost measured", 2, 0, 0, 7000, 0},
		{"no ceiling", 2, 0.001, 0.00025, 0, 0},
	} {
		if got := ratioBound(tc.cores, tc.floor, tc.bus, tc.raw); math.Abs(got-tc.bound) > 1e-9 {
			t.Errorf("%s: ratioBound = %.4f, want %.4f", tc.name, got, tc.bound)
		}
	}
}

// The floor does each request's cryptography for real: its checks pass
// with the keys it registered, and fail without them.
func TestFloor(t *testing.T) {
	f, err := runFloor(context.Background(), t.TempDir(), 20, NewBar(io.Discard))
	if err != nil {
		t.Fatal(err)
	}
	if f.Requests != 20 || f.RPS <= 0 || f.CPUPerRequest <= 0 || f.Cores < 1 {
		t.Errorf("floor = %+v, want 20 requests measured", f)
	}
	// Five systems: five tasks and five receipts signed and checked, and
	// the certificate signed; the subject sealed to the orchestrator (a
	// key made, a multiplication), to each system under one key made, and
	// opened by each.
	if f.Signatures != 11 || f.Checks != 10 || f.ScalarMults != 13 {
		t.Errorf("per request %d signatures, %d checks, %d multiplications; want 11, 10, 13", f.Signatures, f.Checks, f.ScalarMults)
	}
	keys, err := newFloorKeys(t.TempDir(), systems)
	if err != nil {
		t.Fatal(err)
	}
	if err := keys.request("r1"); err != nil {
		t.Fatalf("with every key registered: %v", err)
	}
	all := keys.keys.Keys
	for i, k := range all {
		keys.keys.Keys = slices.Delete(slices.Clone(all), i, i+1)
		if err := keys.request("r1"); err == nil {
			t.Errorf("the key of %q unregistered, and every check passed", cmp.Or(k.System, k.Role))
		}
	}

	var b strings.Builder
	f.Bound = 0.188
	(&Report{Floor: &f}).Table(&b)
	if want := "no pipeline here passes 0.188 of the raw ceiling"; !strings.Contains(b.String(), want) {
		t.Errorf("the table does not give the bound (%q):\n%s", want, b.String())
	}
}
