//go:build unix

package scheduler

import (
	"time"

	"golang.org/x/sys/unix"
)

// processCPU returns the CPU time of the process (all threads): on a
// shared machine it counts this benchmark's work only, where wall time
// also counts the time other processes held the cores.
func processCPU() time.Duration {
	var ru unix.Rusage
	if err := unix.Getrusage(unix.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}
