package lethebench

import (
	"fmt"
	"io"
	"strings"
	"sync"
	"time"
)

// Bar draws a progress bar on one line of w (a terminal's stderr): the
// phase, done of total, the rate, the time gone.
type Bar struct {
	w     io.Writer
	mu    sync.Mutex
	name  string
	total int
	done  int
	start time.Time
	drawn time.Time
}

// NewBar draws on w; a nil w draws nothing.
func NewBar(w io.Writer) *Bar { return &Bar{w: w} }

// Say prints a line of its own.
func (b *Bar) Say(format string, args ...any) {
	if b == nil || b.w == nil {
		return
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	fmt.Fprintf(b.w, "\r\033[K"+format+"\n", args...)
}

// Start begins a phase of total steps.
func (b *Bar) Start(name string, total int) {
	if b == nil {
		return
	}
	b.mu.Lock()
	b.name, b.total, b.done, b.start = name, total, 0, time.Now()
	b.mu.Unlock()
	b.Set(0)
}

// Set says done steps are done (redrawn at most 10 times a second).
func (b *Bar) Set(done int) {
	if b == nil || b.w == nil {
		return
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	b.done = max(b.done, done)
	if time.Since(b.drawn) < 100*time.Millisecond && b.done < b.total {
		return
	}
	b.drawn = time.Now()
	b.draw()
}

func (b *Bar) draw() {
	const width = 30
	frac := 0.0
	if b.total > 0 {
		frac = min(1, float64(b.done)/float64(b.total))
	}
	full := int(frac * width)
	gone := time.Since(b.start)
	rate := float64(b.done) / max(gone.Seconds(), 1e-9)
	fmt.Fprintf(b.w, "\r\033[K%-34s [%s%s] %6d/%d %7.0f/s %6.1fs", b.name, strings.Repeat("#", full), strings.Repeat(".", width-full),
		b.done, b.total, rate, gone.Seconds())
}

// Done ends the phase's line.
func (b *Bar) Done() {
	if b == nil || b.w == nil {
		return
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	b.draw()
	fmt.Fprintln(b.w)
}
