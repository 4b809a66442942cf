package grammar

import (
	"runtime"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// threadCPU returns the CPU time of the calling OS thread.
func threadCPU() time.Duration {
	var ru unix.Rusage
	if err := unix.Getrusage(unix.RUSAGE_THREAD, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// cpuTimer reports the CPU time the benchmark's thread spent per op
// ("cpu-ns/op"): on a shared machine wall time per op also counts the
// time other processes held the core.
func cpuTimer(b *testing.B) func(ops int) {
	runtime.LockOSThread()
	start := threadCPU()
	return func(ops int) {
		d := threadCPU() - start
		runtime.UnlockOSThread()
		if ops > 0 {
			b.ReportMetric(float64(d.Nanoseconds())/float64(ops), "cpu-ns/op")
		}
	}
}
