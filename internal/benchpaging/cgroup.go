package main

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"
	"unsafe"

	"golang.org/x/sys/unix"
)

// cgroup is a memory cgroup made for one run, a child of ours.
type cgroup struct {
	dir string
	v2  bool
}

// newCgroup creates a child of this process's memory cgroup limited to
// limit bytes (no swap).
func newCgroup(limit int64) (*cgroup, error) {
	if os.Geteuid() != 0 {
		return nil, errors.New("creating a memory cgroup needs root; run as root, or set the limit yourself " +
			"(e.g. systemd-run --scope -p MemoryMax=SIZE -p MemorySwapMax=0) and pass -no-cgroup")
	}
	b, err := os.ReadFile("/proc/self/cgroup")
	if err != nil {
		return nil, err
	}
	name := fmt.Sprintf("ix-bench-paging-%d-%d", os.Getpid(), time.Now().UnixNano()%1e6)
	var c *cgroup
	for _, line := range strings.Split(string(b), "\n") {
		parts := strings.SplitN(line, ":", 3)
		if len(parts) != 3 {
			continue
		}
		if parts[0] == "0" && parts[1] == "" {
			if _, err := os.Stat("/sys/fs/cgroup/cgroup.controllers"); err == nil {
				c = &cgroup{dir: filepath.Join("/sys/fs/cgroup", parts[2], name), v2: true}
				break
			}
		}
		if slicesContains(strings.Split(parts[1], ","), "memory") {
			c = &cgroup{dir: filepath.Join("/sys/fs/cgroup/memory", parts[2], name)}
			break
		}
	}
	if c == nil {
		return nil, errors.New("no memory cgroup controller (neither v2 nor v1 /sys/fs/cgroup/memory)")
	}
	if c.v2 {
		// The parent must delegate the memory controller to children.
		sub := filepath.Join(filepath.Dir(c.dir), "cgroup.subtree_control")
		if err := os.WriteFile(sub, []byte("+memory"), 0); err != nil {
			return nil, fmt.Errorf("enabling the memory controller in %s: %w (cgroup v2 forbids it in a cgroup that has processes; "+
				"run under systemd-run --scope -p MemoryMax=SIZE and pass -no-cgroup)", sub, err)
		}
	}
	if err := os.Mkdir(c.dir, 0o755); err != nil {
		return nil, err
	}
	v := strconv.FormatInt(limit, 10)
	var werr error
	if c.v2 {
		werr = c.write("memory.max", v)
		if _, err := os.Stat(filepath.Join(c.dir, "memory.swap.max")); err == nil {
			werr = errors.Join(werr, c.write("memory.swap.max", "0"))
		}
	} else {
		werr = c.write("memory.limit_in_bytes", v)
		if _, err := os.Stat(filepath.Join(c.dir, "memory.memsw.limit_in_bytes")); err == nil {
			werr = errors.Join(werr, c.write("memory.memsw.limit_in_bytes", v))
		}
	}
	if werr != nil {
		c.remove()
		return nil, werr
	}
	return c, nil
}

func slicesContains(s []string, v string) bool {
	for _, x := range s {
		if x == v {
			return true
		}
	}
	return false
}

func (c *cgroup) write(file, v string) error {
	return os.WriteFile(filepath.Join(c.dir, file), []byte(v), 0)
}

func (c *cgroup) read(file string) string {
	b, _ := os.ReadFile(filepath.Join(c.dir, file))
	return string(b)
}

// procs is the file a process writes its pid to, to join.
func (c *cgroup) procs() string { return filepath.Join(c.dir, "cgroup.procs") }

// peak is the cgroup's highest memory use (page cache included).
func (c *cgroup) peak() int64 {
	f := "memory.max_usage_in_bytes"
	if c.v2 {
		f = "memory.peak"
	}
	n, _ := strconv.ParseInt(strings.TrimSpace(c.read(f)), 10, 64)
	return n
}

// oomKills counts the processes the OOM killer killed in the cgroup.
func (c *cgroup) oomKills() int64 {
	f := "memory.oom_control"
	if c.v2 {
		f = "memory.events"
	}
	for _, line := range strings.Split(c.read(f), "\n") {
		if v, ok := strings.CutPrefix(line, "oom_kill "); ok {
			n, _ := strconv.ParseInt(strings.TrimSpace(v), 10, 64)
			return n
		}
	}
	return 0
}

// remove deletes the cgroup once its processes are gone.
func (c *cgroup) remove() {
	for i := 0; i < 50; i++ {
		if err := os.Remove(c.dir); err == nil || errors.Is(err, os.ErrNotExist) {
			return
		}
		time.Sleep(100 * time.Millisecond)
	}
	fmt.Fprintf(os.Stderr, "benchpaging: could not remove %s\n", c.dir)
}

func mincore(b, vec []byte) error {
	_, _, errno := unix.Syscall(unix.SYS_MINCORE, uintptr(unsafe.Pointer(&b[0])), uintptr(len(b)), uintptr(unsafe.Pointer(&vec[0])))
	if errno != 0 {
		return errno
	}
	return nil
}
