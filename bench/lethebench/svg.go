package lethebench

import (
	"fmt"
	"html"
	"io"
	"math"
	"slices"
	"strings"
)

// palette colours the runs, in order.
var palette = []string{"#1f77b4", "#d62728", "#2ca02c", "#9467bd", "#ff7f0e", "#8c564b", "#e377c2", "#17becf"}

// SVG draws two charts: each run's throughput over time (requests ended
// per second, in windows of a second), where a collapse as the store grows
// would show as a falling line, under the contract floor's bound when the
// run measured one (how far the pipeline's own machinery keeps it below
// what its guarantees allow); and the distribution of the time from
// accepted to certificate (the share of requests done within t).
func (r *Report) SVG(w io.Writer) error {
	runs := append(slices.Clone(r.Runs), r.Growth...)
	// Each chart's legend sits at its right, outside the plot.
	const W, H, pad, legendW = 1200, 300, 60, 360
	const plotW = W - 2*pad - legendW
	var b strings.Builder
	fmt.Fprintf(&b, `<svg xmlns="http://www.w3.org/2000/svg" width="%d" height="%d" font-family="sans-serif" font-size="12">`+"\n", W, 2*H+80)
	fmt.Fprintf(&b, `<rect width="100%%" height="100%%" fill="white"/>`+"\n")
	fmt.Fprintf(&b, `<text x="%d" y="20" font-size="15">Lethe bench %s: %s</text>`+"\n", pad, r.Started.Format("2006-01-02 15:04"), html.EscapeString(r.Line()))

	// Throughput over time.
	type series struct {
		name   string
		points [][2]float64
	}
	var tput []series
	maxT, maxY := 1.0, 1.0
	for _, run := range runs {
		var pts [][2]float64
		prev := Sample{}
		for _, s := range run.Timeline {
			if s.T-prev.T < 1 && s.Ended < run.Requests {
				continue
			}
			rate := float64(s.Ended-prev.Ended) / (s.T - prev.T)
			pts = append(pts, [2]float64{s.T, rate})
			maxT, maxY = math.Max(maxT, s.T), math.Max(maxY, rate)
			prev = s
		}
		tput = append(tput, series{run.Name, pts})
	}
	bound := 0.0
	if r.Floor != nil {
		bound = r.Floor.BoundRPS
		maxY = math.Max(maxY, bound*1.1)
	}
	top := 40
	axes(&b, pad, top, plotW, H-60, maxT, maxY, "seconds since the first request", "requests ended per second")
	if bound > 0 {
		y := float64(top+H-60) - bound/maxY*float64(H-60)
		fmt.Fprintf(&b, `<line x1="%d" y1="%.1f" x2="%d" y2="%.1f" stroke="#555" stroke-dasharray="6 4"/>`+"\n", pad, y, pad+plotW, y)
		fmt.Fprintf(&b, `<text x="%d" y="%.1f" fill="#555">the contract floor's bound: %.0f req/s (%.3f of the raw ceiling)</text>`+"\n", pad+6, y-5, bound, r.Floor.Bound)
	}
	for i, s := range tput {
		polyline(&b, pad, top, plotW, H-60, maxT, maxY, s.points, palette[i%len(palette)])
	}
	legend(&b, pad+plotW+20, top+10, runs, func(run *Run) string { return fmt.Sprintf("%s: %.0f req/s", run.Name, run.RPS) })

	// Latency distribution.
	top = H + 60
	maxMS := 1.0
	for _, run := range runs {
		if len(run.latencies) > 0 {
			maxMS = math.Max(maxMS, percentiles(run.latencies).P99*1.5)
		}
	}
	axes(&b, pad, top, plotW, H-60, maxMS, 1, "milliseconds from accepted to certificate", "share of requests done")
	for i, run := range runs {
		s := slices.Clone(run.latencies)
		slices.Sort(s)
		var pts [][2]float64
		step := max(1, len(s)/400)
		for j := 0; j < len(s); j += step {
			pts = append(pts, [2]float64{math.Min(s[j], maxMS), float64(j+1) / float64(len(s))})
		}
		if len(s) > 0 {
			pts = append(pts, [2]float64{math.Min(s[len(s)-1], maxMS), 1})
		}
		polyline(&b, pad, top, plotW, H-60, maxMS, 1, pts, palette[i%len(palette)])
	}
	legend(&b, pad+plotW+20, top+10, runs, func(run *Run) string {
		return fmt.Sprintf("%s: p50 %.0f, p99 %.0f ms", run.Name, run.Latency.P50, run.Latency.P99)
	})
	b.WriteString("</svg>\n")
	_, err := io.WriteString(w, b.String())
	return err
}

func axes(b *strings.Builder, x, y, w, h int, maxX, maxY float64, xLabel, yLabel string) {
	fmt.Fprintf(b, `<g stroke="#999"><line x1="%d" y1="%d" x2="%d" y2="%d"/><line x1="%d" y1="%d" x2="%d" y2="%d"/></g>`+"\n",
		x, y+h, x+w, y+h, x, y, x, y+h)
	for i := 0; i <= 4; i++ {
		fy := y + h - h*i/4
		fmt.Fprintf(b, `<text x="%d" y="%d" text-anchor="end" fill="#555">%s</text>`, x-4, fy+4, tick(maxY*float64(i)/4))
		fx := x + w*i/4
		fmt.Fprintf(b, `<text x="%d" y="%d" text-anchor="middle" fill="#555">%s</text>`+"\n", fx, y+h+16, tick(maxX*float64(i)/4))
	}
	fmt.Fprintf(b, `<text x="%d" y="%d" text-anchor="middle">%s</text>`, x+w/2, y+h+34, xLabel)
	fmt.Fprintf(b, `<text x="%d" y="%d" text-anchor="middle" transform="rotate(-90 %d %d)">%s</text>`+"\n", x-44, y+h/2, x-44, y+h/2, yLabel)
}

func tick(v float64) string {
	if v != 0 && math.Abs(v) < 10 {
		return fmt.Sprintf("%.2g", v)
	}
	return fmt.Sprintf("%.0f", v)
}

func polyline(b *strings.Builder, x, y, w, h int, maxX, maxY float64, pts [][2]float64, colour string) {
	if len(pts) == 0 {
		return
	}
	var coords []string
	for _, p := range pts {
		coords = append(coords, fmt.Sprintf("%.1f,%.1f", float64(x)+p[0]/maxX*float64(w), float64(y+h)-p[1]/maxY*float64(h)))
	}
	fmt.Fprintf(b, `<polyline fill="none" stroke="%s" stroke-width="1.5" points="%s"/>`+"\n", colour, strings.Join(coords, " "))
}

func legend(b *strings.Builder, x, y int, runs []*Run, label func(*Run) string) {
	for i, run := range runs {
		fmt.Fprintf(b, `<rect x="%d" y="%d" width="10" height="10" fill="%s"/><text x="%d" y="%d">%s</text>`+"\n",
			x, y+i*16, palette[i%len(palette)], x+14, y+i*16+9, html.EscapeString(label(run)))
	}
}
