package experts

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"strconv"
	"strings"

	"github.com/inference-x/inference-x/gguf"
)

// Memory is what the machine and the process's memory cgroup leave for
// the model.
type Memory struct {
	// Available is the smaller of MemAvailable (/proc/meminfo) and the
	// tightest cgroup limit on the path to the root minus its usage,
	// page cache counted as free (it is reclaimable).
	Available int64
	// Limit is that cgroup limit (0: none), CgroupPath the cgroup (the
	// controller's folder).
	Limit      int64
	CgroupPath string
}

// AvailableMemory reads /proc/meminfo and the memory cgroup (v2
// memory.max / memory.current, or v1 memory.limit_in_bytes /
// memory.usage_in_bytes) of this process and its ancestors.
func AvailableMemory() (Memory, error) {
	var m Memory
	avail, err := memAvailable()
	if err != nil {
		return m, err
	}
	m.Available = avail
	for _, cg := range cgroupDirs() {
		limit, free, ok := cgroupFree(cg.dir, cg.v2)
		if !ok {
			continue
		}
		if m.Limit == 0 || limit < m.Limit {
			m.Limit, m.CgroupPath = limit, cg.dir
		}
		m.Available = min(m.Available, free)
	}
	m.Available = max(m.Available, 0)
	return m, nil
}

func memAvailable() (int64, error) {
	f, err := os.Open("/proc/meminfo")
	if err != nil {
		return 0, err
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		fs := strings.Fields(sc.Text())
		if len(fs) >= 2 && fs[0] == "MemAvailable:" {
			kb, err := strconv.ParseInt(fs[1], 10, 64)
			return kb << 10, err
		}
	}
	return 0, errors.New("experts: no MemAvailable in /proc/meminfo")
}

type cgroupDir struct {
	dir string
	v2  bool
}

// cgroupDirs lists this process's memory cgroup folder and its ancestors.
func cgroupDirs() []cgroupDir {
	b, err := os.ReadFile("/proc/self/cgroup")
	if err != nil {
		return nil
	}
	var out []cgroupDir
	for _, line := range strings.Split(string(b), "\n") {
		parts := strings.SplitN(line, ":", 3)
		if len(parts) != 3 {
			continue
		}
		var root string
		v2 := false
		switch {
		case parts[0] == "0" && parts[1] == "":
			root, v2 = "/sys/fs/cgroup", true
			if _, err := os.Stat(filepath.Join(root, "cgroup.controllers")); err != nil {
				continue // v1 machine; the unified line carries no memory controller
			}
		case hasController(parts[1], "memory"):
			root = "/sys/fs/cgroup/memory"
		default:
			continue
		}
		for p := filepath.Clean(parts[2]); ; p = filepath.Dir(p) {
			out = append(out, cgroupDir{dir: filepath.Join(root, p), v2: v2})
			if p == "/" || p == "." {
				break
			}
		}
	}
	return out
}

func hasController(list, name string) bool {
	for _, c := range strings.Split(list, ",") {
		if c == name {
			return true
		}
	}
	return false
}

// cgroupFree returns a cgroup's memory limit and limit - (usage - page
// cache); ok is false without a limit.
func cgroupFree(dir string, v2 bool) (limit, free int64, ok bool) {
	limitFile, usageFile, cacheKey := "memory.limit_in_bytes", "memory.usage_in_bytes", "total_cache"
	if v2 {
		limitFile, usageFile, cacheKey = "memory.max", "memory.current", "file"
	}
	limit, err := readInt(filepath.Join(dir, limitFile))
	if err != nil || limit <= 0 || limit >= math.MaxInt64/2 {
		return 0, 0, false
	}
	usage, err := readInt(filepath.Join(dir, usageFile))
	if err != nil {
		return 0, 0, false
	}
	cache := statValue(filepath.Join(dir, "memory.stat"), cacheKey)
	return limit, limit - max(usage-cache, 0), true
}

func readInt(path string) (int64, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return 0, err
	}
	s := strings.TrimSpace(string(b))
	if s == "max" {
		return math.MaxInt64, nil
	}
	return strconv.ParseInt(s, 10, 64)
}

func statValue(path, key string) int64 {
	b, err := os.ReadFile(path)
	if err != nil {
		return 0
	}
	for _, line := range bytes.Split(b, []byte("\n")) {
		if v, ok := bytes.CutPrefix(line, []byte(key+" ")); ok {
			n, _ := strconv.ParseInt(string(bytes.TrimSpace(v)), 10, 64)
			return n
		}
	}
	return 0
}

// IsExpertTensor reports whether name is a routed-expert tensor
// (blk.N.ffn_{gate,up,down}_exps.weight), the data the pager manages.
func IsExpertTensor(name string) bool {
	return strings.HasPrefix(name, "blk.") &&
		(strings.HasSuffix(name, ".ffn_gate_exps.weight") || strings.HasSuffix(name, ".ffn_up_exps.weight") ||
			strings.HasSuffix(name, ".ffn_down_exps.weight"))
}

// SplitBytes returns the bytes of f's routed-expert tensors and of the
// rest (the dense weights, resident all the time).
func SplitBytes(f *gguf.File) (expertBytes, denseBytes int64) {
	for i := range f.Tensors {
		t := &f.Tensors[i]
		if IsExpertTensor(t.Name) {
			expertBytes += t.Size
		} else {
			denseBytes += t.Size
		}
	}
	return expertBytes, denseBytes
}

// BaseReserve is what DefaultBudget always leaves aside beyond the dense
// weights and the caller's reserve: the Go heap, scratch buffers, the
// tokenizer.
const BaseReserve = 128 << 20

// InFlightBytes is the room a running batch may take beyond the budget:
// the experts of one layer's top-k that are being read and as many
// predicted for the next layer, 2 x K x the largest expert (K from the
// file's expert_used_count, else 8).
func InFlightBytes(f *gguf.File) int64 {
	k := int64(8)
	if arch, err := f.Architecture(); err == nil {
		if n, err := f.Int(arch + ".expert_used_count"); err == nil && n > 0 {
			k = n
		}
	}
	var largest int64
	for i := range f.Tensors {
		t := &f.Tensors[i]
		if !strings.HasSuffix(t.Name, ".ffn_gate_exps.weight") || len(t.Dims) != 3 || t.Dims[2] == 0 {
			continue
		}
		layer := strings.TrimSuffix(t.Name, ".ffn_gate_exps.weight")
		var size int64
		for _, s := range []string{".ffn_gate_exps.weight", ".ffn_up_exps.weight", ".ffn_down_exps.weight"} {
			if u, ok := f.Tensor(layer + s); ok {
				size += u.Size
			}
		}
		largest = max(largest, size/t.Dims[2])
	}
	return 2 * k * largest
}

// DefaultBudget returns the expert budget when none is given: available
// memory minus f's dense weights, reserve (the KV cache and other
// allocations the caller knows of), BaseReserve and InFlightBytes. It
// fails when nothing is left.
func DefaultBudget(f *gguf.File, reserve int64) (int64, Memory, error) {
	m, err := AvailableMemory()
	if err != nil {
		return 0, m, err
	}
	_, dense := SplitBytes(f)
	fixed := dense + reserve + BaseReserve + InFlightBytes(f)
	b := m.Available - fixed
	if b <= 0 {
		return 0, m, fmt.Errorf("experts: no memory left for experts: %d MiB available, %d MiB needed for dense weights (%d MiB), KV cache and reserves",
			m.Available>>20, fixed>>20, dense>>20)
	}
	return b, m, nil
}
