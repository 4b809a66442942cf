package experts

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"strconv"
	"unsafe"

	"golang.org/x/sys/unix"

	"github.com/inference-x/inference-x/gguf"
)

var pageSize = os.Getpagesize()

// willNeedChunk bounds one MADV_WILLNEED call. Linux reads at most the
// device's read-ahead window (read_ahead_kb, often 128 KiB) per call and
// silently drops the rest, so a larger range is advised in pieces.
const willNeedChunk = 128 << 10

// fileAdvisor advises the kernel on a mapped GGUF file's expert ranges.
type fileAdvisor struct {
	f    *gguf.File
	fds  []*os.File // per split part, for fadvise; nil entries skip it
	mode Evict
}

// newFilePager builds the pager for a Store's layers over f: MADV_RANDOM
// on every expert tensor (unless cfg.NoRandom), then the pinned experts.
func newFilePager(f *gguf.File, layers []*localLayer, cfg PagerConfig) (*pager, error) {
	for _, path := range f.Paths() {
		if path == "" {
			return nil, errNoMapping
		}
	}
	adv := &fileAdvisor{f: f, mode: cfg.Evict}
	for _, path := range f.Paths() {
		var fd *os.File
		if cfg.Evict == EvictDrop {
			var err error
			if fd, err = os.Open(path); err != nil {
				adv.close()
				return nil, fmt.Errorf("experts: pager: %w", err)
			}
		}
		adv.fds = append(adv.fds, fd)
	}
	if !cfg.NoDensePrefetch {
		for i := range f.Tensors {
			if t := &f.Tensors[i]; !IsExpertTensor(t.Name) {
				for off := 0; off < len(t.Data); off += willNeedChunk {
					_ = f.Advise(t.Data[off:min(off+willNeedChunk, len(t.Data))], gguf.AdviseWillNeed)
				}
			}
		}
	}
	lays := make([]*layerLayout, len(layers))
	for l, ly := range layers {
		if ly == nil {
			continue
		}
		gn, un, dn := expertTensors(l)
		ts := [3]*gguf.Tensor{}
		for k, name := range []string{gn, un, dn} {
			t, _ := f.Tensor(name)
			ts[k] = t
			if !cfg.NoRandom {
				if err := f.Advise(t.Data, gguf.AdviseRandom); err != nil {
					adv.close()
					return nil, fmt.Errorf("experts: pager: %s: %w", name, err)
				}
			}
		}
		lays[l] = &layerLayout{base: ly.base, n: len(ly.held), spans: func(e int) ([3]span, int64) {
			var sp [3]span
			var n int64
			for k, t := range ts {
				data, off := expertSlice(t, e)
				sp[k] = span{data: data, part: t.Split, off: f.DataOffset(t.Split) + t.Offset + off}
				n += int64(len(data))
			}
			return sp, n
		}}
	}
	p, err := newPager(lays, cfg, adv)
	if err != nil {
		adv.close()
		return nil, err
	}
	return p, nil
}

// willNeed starts reading the expert's pages (asynchronously).
func (a *fileAdvisor) willNeed(en *entry) {
	for _, s := range en.spans {
		for off := 0; off < len(s.data); off += willNeedChunk {
			_ = a.f.Advise(s.data[off:min(off+willNeedChunk, len(s.data))], gguf.AdviseWillNeed)
		}
	}
}

// evict releases the expert's pages. Only whole pages inside its ranges
// go, so a neighbour sharing a boundary page keeps it.
func (a *fileAdvisor) evict(en *entry) {
	for _, s := range en.spans {
		in := innerPages(s.data)
		switch a.mode {
		case EvictDrop:
			_ = a.f.Advise(in, gguf.AdviseDontNeed)
			if fd := a.fds[s.part]; fd != nil {
				_ = unix.Fadvise(int(fd.Fd()), s.off, int64(len(s.data)), unix.FADV_DONTNEED)
			}
		case EvictPageOut:
			_ = a.f.Advise(in, gguf.AdvisePageOut)
		case EvictDontNeed:
			_ = a.f.Advise(in, gguf.AdviseDontNeed)
		}
	}
}

func (a *fileAdvisor) close() {
	for _, fd := range a.fds {
		if fd != nil {
			fd.Close()
		}
	}
	a.fds = nil
}

// innerPages returns the whole pages inside b (possibly none).
func innerPages(b []byte) []byte {
	if len(b) == 0 {
		return nil
	}
	addr := uintptr(unsafe.Pointer(unsafe.SliceData(b)))
	ps := uintptr(pageSize)
	lo := (addr + ps - 1) &^ (ps - 1)
	hi := (addr + uintptr(len(b))) &^ (ps - 1)
	if hi <= lo {
		return nil
	}
	return b[lo-addr : hi-addr]
}

// residentBytes counts the bytes of b's whole pages that mincore reports
// resident, using *vec as scratch.
func residentBytes(b []byte, vec *[]byte) (int64, error) {
	in := innerPages(b)
	if len(in) == 0 {
		return 0, nil
	}
	n := len(in) / pageSize
	if cap(*vec) < n {
		*vec = make([]byte, n)
	}
	v := (*vec)[:n]
	_, _, errno := unix.Syscall(unix.SYS_MINCORE, uintptr(unsafe.Pointer(unsafe.SliceData(in))), uintptr(len(in)), uintptr(unsafe.Pointer(unsafe.SliceData(v))))
	if errno != 0 {
		return 0, fmt.Errorf("experts: mincore: %w", errno)
	}
	var r int64
	for _, x := range v {
		r += int64(x & 1)
	}
	return r * int64(pageSize), nil
}

// readIOBytes returns read_bytes of /proc/self/io: the bytes this process
// caused to be read from storage (page cache misses, read-ahead included).
func readIOBytes() (int64, error) {
	b, err := os.ReadFile("/proc/self/io")
	if err != nil {
		return 0, err
	}
	for _, line := range bytes.Split(b, []byte("\n")) {
		if v, ok := bytes.CutPrefix(line, []byte("read_bytes:")); ok {
			return strconv.ParseInt(string(bytes.TrimSpace(v)), 10, 64)
		}
	}
	return 0, errors.New("experts: no read_bytes in /proc/self/io")
}
