package lethebench

import (
	"bufio"
	"context"
	"os"
	"runtime"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// cpuTime is the CPU (user and system) this process has used.
func cpuTime() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// resetPeakRSS starts the kernel's count of peak resident memory
// (VmHWM) afresh, so each run reports its own peak (Linux; elsewhere it
// does nothing and the peak is the process's).
func resetPeakRSS() {
	runtime.GC()
	_ = os.WriteFile("/proc/self/clear_refs", []byte("5"), 0)
}

// peakRSS is VmHWM from /proc/self/status, in bytes (0 where there is none).
func peakRSS() int64 { return procStatus("VmHWM:") }

// rss is the resident set now (VmRSS), in bytes.
func rss() int64 { return procStatus("VmRSS:") }

func procStatus(field string) int64 {
	f, err := os.Open("/proc/self/status")
	if err != nil {
		return 0
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if rest, ok := strings.CutPrefix(sc.Text(), field); ok {
			kb, _ := strconv.ParseInt(strings.TrimSuffix(strings.TrimSpace(rest), " kB"), 10, 64)
			return kb << 10
		}
	}
	return 0
}

func heapInUse() int64 {
	var m runtime.MemStats
	runtime.ReadMemStats(&m)
	return int64(m.HeapInuse)
}

// What settle waits for: the disks writing less than settleQuiet bytes
// in a settleWindow, for at most settleMax.
const (
	settleWindow = 500 * time.Millisecond
	settleQuiet  = 2 << 20
	settleMax    = 30 * time.Second
)

// settle waits, before a timed run, until the disks have taken what the
// runs before it left them (their folders' removal, the kernel's
// write-back of their files): a run started while the disk still writes
// the last one's hundreds of megabytes measures that too. The open-loop
// run after a 3,000-request strict run had a p99 of 652 ms; 30 s later,
// 106 ms. It syncs, then waits for a quiet window (Linux; elsewhere it
// only syncs), and returns how long it took.
func settle(ctx context.Context) time.Duration {
	start := time.Now()
	syscall.Sync()
	last, ok := bytesWritten()
	for ok && time.Since(start) < settleMax && ctx.Err() == nil {
		time.Sleep(settleWindow)
		now, _ := bytesWritten()
		if now-last < settleQuiet {
			break
		}
		last = now
	}
	return time.Since(start)
}

// bytesWritten is what the machine's disks have written since boot, from
// /proc/diskstats (whole disks and partitions alike: settle compares two
// readings); false where there is none.
func bytesWritten() (int64, bool) {
	b, err := os.ReadFile("/proc/diskstats")
	if err != nil {
		return 0, false
	}
	var sectors int64
	for _, line := range strings.Split(string(b), "\n") {
		f := strings.Fields(line)
		if len(f) < 10 || strings.HasPrefix(f[2], "loop") || strings.HasPrefix(f[2], "ram") {
			continue
		}
		n, _ := strconv.ParseInt(f[9], 10, 64)
		sectors += n
	}
	return sectors * 512, true
}
