package numa

import (
	"os"
	"os/exec"
	"runtime"
	"slices"
	"strconv"
	"testing"

	"golang.org/x/sys/unix"
)

func TestParseList(t *testing.T) {
	got, err := ParseList("0-3,8,10-11")
	if err != nil || !slices.Equal(got, []int{0, 1, 2, 3, 8, 10, 11}) {
		t.Fatalf("%v %v", got, err)
	}
	for _, bad := range []string{"3-1", "x", "-1", "1-"} {
		if _, err := ParseList(bad); err == nil {
			t.Errorf("%q parsed", bad)
		}
	}
}

func TestNodes(t *testing.T) {
	ns, err := Nodes()
	if err != nil || len(ns) == 0 {
		t.Fatalf("%v %v", ns, err)
	}
	if _, err := CPUs(1 << 12); err == nil {
		t.Error("a node that does not exist has CPUs")
	}
}

// TestBindSelf re-runs this test binary bound to node 0 and checks, in
// the child, that every thread has node 0's CPUs and an MPOL_BIND policy.
func TestBindSelf(t *testing.T) {
	if os.Getenv("IX_NUMA_CHILD") == "" {
		cmd := exec.Command(os.Args[0], "-test.run=^TestBindSelf$", "-test.count=1")
		cmd.Env = append(os.Environ(), "IX_NUMA_CHILD=1")
		out, err := cmd.CombinedOutput()
		if err != nil {
			t.Fatalf("child: %v\n%s", err, out)
		}
		return
	}
	if err := BindSelf(0); err != nil {
		if _, statErr := os.Stat(sysfs + "/node0"); statErr != nil {
			t.Skipf("no NUMA topology in sysfs: %v", err)
		}
		t.Fatal(err)
	}
	if os.Getenv(BoundEnv) != "0" {
		t.Fatal("BindSelf returned without re-executing")
	}
	cpus, err := CPUs(0)
	if err != nil {
		t.Fatal(err)
	}
	// Check a fresh thread: it inherits the binding.
	done := make(chan error)
	go func() {
		runtime.LockOSThread()
		var set unix.CPUSet
		if err := unix.SchedGetaffinity(0, &set); err != nil {
			done <- err
			return
		}
		for c := range 1024 {
			if set.IsSet(c) != slices.Contains(cpus, c) {
				t.Errorf("cpu %d: in mask %v, on node 0 %v", c, set.IsSet(c), slices.Contains(cpus, c))
			}
		}
		mode, nodes, err := Policy()
		if err == nil && (mode != mpolBind || nodes != 1) {
			t.Errorf("memory policy mode %d nodes %b, want MPOL_BIND node 0", mode, nodes)
		}
		done <- err
	}()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	b, err := unix.Mmap(-1, 0, 1<<20, unix.PROT_READ|unix.PROT_WRITE, unix.MAP_ANON|unix.MAP_PRIVATE)
	if err != nil {
		t.Fatal(err)
	}
	defer unix.Munmap(b)
	if err := BindMemory(b[100:], 0); err != nil {
		t.Fatal(err)
	}
	if err := BindThread(1 << 12); err == nil {
		t.Error("bound to node " + strconv.Itoa(1<<12))
	}
}
