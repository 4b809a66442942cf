//go:build linux

package main

import "syscall"

// openFileLimit returns the soft RLIMIT_NOFILE (Go raises it to the hard
// limit at start), and false when it is unknown or unlimited.
func openFileLimit() (uint64, bool) {
	var r syscall.Rlimit
	if err := syscall.Getrlimit(syscall.RLIMIT_NOFILE, &r); err != nil || r.Cur == ^uint64(0) {
		return 0, false
	}
	return uint64(r.Cur), true
}
