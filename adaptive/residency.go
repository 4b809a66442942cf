package adaptive

import (
	"errors"
	"fmt"
	"strings"
	"sync"

	"github.com/inference-x/inference-x/gguf"
)

// Residency drops and restores the base pages of a layer's routed
// experts. The expert pager implements it (it owns expert residency and
// its budget); FileResidency is the stand-in that advises the kernel
// directly. Calls come from the goroutine that sets a sequence's
// precision (the scheduler's, or run's) and must not block for long.
type Residency interface {
	// Release says the base pages of these experts of layer are not
	// needed while a lower copy serves it (nil: all of its experts).
	Release(layer int, experts []int) error
	// Load says they are needed again.
	Load(layer int, experts []int) error
}

// FileResidency advises the kernel about the expert tensors of a mapped
// file (MADV_DONTNEED to release, MADV_WILLNEED to load).
type FileResidency struct{ File *gguf.File }

// Release implements Residency.
func (r FileResidency) Release(layer int, experts []int) error {
	return r.advise(layer, experts, gguf.AdviseDontNeed)
}

// Load implements Residency.
func (r FileResidency) Load(layer int, experts []int) error {
	return r.advise(layer, experts, gguf.AdviseWillNeed)
}

func (r FileResidency) advise(layer int, experts []int, a gguf.Advice) error {
	var errs []error
	for _, n := range []string{"ffn_gate_exps", "ffn_up_exps", "ffn_down_exps"} {
		t, ok := r.File.Tensor(fmt.Sprintf("blk.%d.%s.weight", layer, n))
		if !ok {
			continue
		}
		if experts == nil {
			errs = append(errs, r.File.Advise(t.Data, a))
			continue
		}
		per := len(t.Data) / int(t.Dims[2])
		for _, e := range experts {
			if e >= 0 && e < int(t.Dims[2]) {
				errs = append(errs, r.File.Advise(t.Data[e*per:(e+1)*per], a))
			}
		}
	}
	return errors.Join(errs...)
}

// pages counts, for every base tensor that some lower copy replaces, the
// attached sequences that read it (base users) and those served by a
// copy instead (copy users). While a tensor has copy users and no base
// user its pages are released; a base user arriving loads them again.
// Dense tensors are advised on the model's file; routed expert tensors go
// through Residency, per layer.
type pages struct {
	f   *gguf.File
	res Residency

	mu       sync.Mutex
	base     map[string]int
	lower    map[string]int
	released map[string]bool
	// ReleasedBytes is the base tensor data currently released.
	releasedBytes int64
	errs          int
	lastErr       error
}

func newPages(f *gguf.File, res Residency) *pages {
	return &pages{f: f, res: res, base: map[string]int{}, lower: map[string]int{}, released: map[string]bool{}}
}

// use is one precision's reads: base tensors it reads that some copy
// replaces, and base tensors its own copies replace.
type use struct {
	base, lower []string
}

// attach accounts a sequence taking (delta 1) or dropping (-1) u, then
// releases or loads what changed.
func (p *pages) attach(u *use, delta int) {
	p.mu.Lock()
	defer p.mu.Unlock()
	for _, n := range u.base {
		p.base[n] += delta
	}
	for _, n := range u.lower {
		p.lower[n] += delta
	}
	type action struct {
		layer   int
		release bool
	}
	experts := map[action]bool{}
	for _, list := range [][]string{u.base, u.lower} {
		for _, n := range list {
			release := p.base[n] == 0 && p.lower[n] > 0
			load := p.base[n] > 0
			switch {
			case release && !p.released[n]:
			case load && p.released[n]:
			default:
				continue
			}
			t, ok := p.f.Tensor(n)
			if !ok {
				continue
			}
			p.released[n] = release
			if release {
				p.releasedBytes += t.Size
			} else {
				p.releasedBytes -= t.Size
			}
			if strings.Contains(n, "_exps.") && p.res != nil {
				l, _ := layerOf(n)
				experts[action{l, release}] = true
				continue
			}
			adv := gguf.AdviseWillNeed
			if release {
				adv = gguf.AdviseDontNeed
			}
			p.note(p.f.Advise(t.Data, adv))
		}
	}
	for a := range experts {
		if a.release {
			p.note(p.res.Release(a.layer, nil))
		} else {
			p.note(p.res.Load(a.layer, nil))
		}
	}
}

func (p *pages) note(err error) {
	if err != nil {
		p.errs++
		p.lastErr = err
	}
}

// stats returns the bytes released now and the advice errors seen.
func (p *pages) stats() (int64, int, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.releasedBytes, p.errs, p.lastErr
}
