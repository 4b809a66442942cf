// Package numa binds a process to one NUMA node of a multi-socket machine:
// its threads run on that node's CPUs (sched_setaffinity) and its memory,
// including the page cache pages of the model file it faults in, comes
// from that node's RAM (set_mempolicy MPOL_BIND, mbind for ranges already
// mapped). An expert node started with --numa-node N calls BindSelf early;
// two expert nodes on a two-socket box then never read weights across the
// socket interconnect.
//
// Both the CPU mask and the memory policy are per thread in Linux and
// inherited by threads a thread creates, and both survive execve. A Go
// program already runs several threads when main starts, so BindSelf sets
// them on the current thread and re-executes the program: every thread of
// the new image inherits them, as numactl --cpunodebind --membind does.
package numa

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"syscall"
	"unsafe"

	"golang.org/x/sys/unix"
)

// ErrNoNode is wrapped when the machine has no such NUMA node.
var ErrNoNode = errors.New("numa: no such node")

// BoundEnv marks a process image that BindSelf already bound (its value
// is the node), so the re-executed program does not bind again.
const BoundEnv = "IX_NUMA_BOUND"

// Linux memory policy modes and flags (linux/mempolicy.h).
const (
	mpolBind    = 2
	mpolMFMove  = 1 << 1
	mpolMFStrct = 1 << 0
)

// sysfs is where node topology is read (a variable for tests).
var sysfs = "/sys/devices/system/node"

// Nodes returns the NUMA node ids of the machine, ascending.
func Nodes() ([]int, error) {
	dirs, err := filepath.Glob(filepath.Join(sysfs, "node[0-9]*"))
	if err != nil {
		return nil, err
	}
	var out []int
	for _, d := range dirs {
		if n, err := strconv.Atoi(strings.TrimPrefix(filepath.Base(d), "node")); err == nil {
			out = append(out, n)
		}
	}
	if len(out) == 0 {
		return []int{0}, nil // no NUMA support in the kernel: one node
	}
	return out, nil
}

// CPUs returns the CPUs of node n.
func CPUs(n int) ([]int, error) {
	b, err := os.ReadFile(filepath.Join(sysfs, "node"+strconv.Itoa(n), "cpulist"))
	if err != nil {
		if os.IsNotExist(err) {
			return nil, fmt.Errorf("%w: %d", ErrNoNode, n)
		}
		return nil, err
	}
	return ParseList(strings.TrimSpace(string(b)))
}

// ParseList parses a kernel CPU or node list such as "0-3,8-11,16".
func ParseList(s string) ([]int, error) {
	var out []int
	if s == "" {
		return out, nil
	}
	for _, part := range strings.Split(s, ",") {
		lo, hi, isRange := strings.Cut(part, "-")
		a, err := strconv.Atoi(lo)
		b := a
		if err == nil && isRange {
			b, err = strconv.Atoi(hi)
		}
		if err != nil || a < 0 || b < a || b > 1<<16 {
			return nil, fmt.Errorf("numa: bad list %q", s)
		}
		for i := a; i <= b; i++ {
			out = append(out, i)
		}
	}
	return out, nil
}

// BindThread binds the calling OS thread to node n: its CPU mask and its
// memory policy. Threads it creates later inherit both. The caller should
// hold runtime.LockOSThread.
func BindThread(n int) error {
	cpus, err := CPUs(n)
	if err != nil {
		return err
	}
	if len(cpus) == 0 {
		return fmt.Errorf("%w: node %d has no CPUs", ErrNoNode, n)
	}
	var set unix.CPUSet
	for _, c := range cpus {
		set.Set(c)
	}
	if err := unix.SchedSetaffinity(0, &set); err != nil {
		return fmt.Errorf("numa: sched_setaffinity to node %d: %w", n, err)
	}
	mask, maxNode := nodeMask(n)
	if _, _, e := unix.Syscall(unix.SYS_SET_MEMPOLICY, mpolBind, uintptr(unsafe.Pointer(&mask[0])), maxNode); e != 0 {
		return fmt.Errorf("numa: set_mempolicy(MPOL_BIND, node %d): %w", n, e)
	}
	return nil
}

// nodeMask returns a node mask with bit n set and its size in bits.
func nodeMask(n int) ([]uint64, uintptr) {
	mask := make([]uint64, n/64+1)
	mask[n/64] |= 1 << (n % 64)
	return mask, uintptr(len(mask)*64 + 1)
}

// BindSelf binds the whole process to node n: it binds the current thread
// and re-executes the program (same arguments and environment, plus
// BoundEnv), so it returns only on failure, or at once with nil in the
// re-executed image.
func BindSelf(n int) error {
	if os.Getenv(BoundEnv) == strconv.Itoa(n) {
		return nil
	}
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	if err := BindThread(n); err != nil {
		return err
	}
	exe, err := os.Executable()
	if err != nil {
		return fmt.Errorf("numa: re-executing: %w", err)
	}
	env := append(os.Environ(), BoundEnv+"="+strconv.Itoa(n))
	return fmt.Errorf("numa: re-executing %s: %w", exe, syscall.Exec(exe, os.Args, env))
}

// BindMemory binds the pages of b (a mapped range, widened to whole pages)
// to node n and moves those already resident elsewhere.
func BindMemory(b []byte, n int) error {
	if len(b) == 0 {
		return nil
	}
	page := uintptr(os.Getpagesize())
	start := uintptr(unsafe.Pointer(unsafe.SliceData(b)))
	end := start + uintptr(len(b))
	start &^= page - 1
	mask, maxNode := nodeMask(n)
	_, _, e := unix.Syscall6(unix.SYS_MBIND, start, end-start, mpolBind, uintptr(unsafe.Pointer(&mask[0])), maxNode, mpolMFMove)
	if e != 0 {
		return fmt.Errorf("numa: mbind to node %d: %w", n, e)
	}
	return nil
}

// Policy returns the calling thread's memory policy mode and node mask
// (bit i: node i), for checks.
func Policy() (mode int, nodes uint64, err error) {
	var m int32
	mask := make([]uint64, 16)
	if _, _, e := unix.Syscall6(unix.SYS_GET_MEMPOLICY, uintptr(unsafe.Pointer(&m)), uintptr(unsafe.Pointer(&mask[0])), uintptr(len(mask)*64), 0, 0, 0); e != 0 {
		return 0, 0, fmt.Errorf("numa: get_mempolicy: %w", e)
	}
	return int(m), mask[0], nil
}
