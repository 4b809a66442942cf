package router

import (
	"errors"
	"fmt"
	"maps"
	"math/bits"
	"slices"
	"strconv"
	"strings"

	ixv1 "github.com/inference-x/inference-x/proto/ix/v1"
)

// ErrSpec is wrapped by errors about expert set specs and placement files.
var ErrSpec = errors.New("router: bad expert spec")

// Set is a set of expert ids of one layer. The zero value is empty.
type Set struct {
	words []uint64
}

// Has reports whether id is in s.
func (s *Set) Has(id int) bool {
	w := id >> 6
	return id >= 0 && w < len(s.words) && s.words[w]&(1<<(id&63)) != 0
}

// Add puts id (>= 0) in s.
func (s *Set) Add(id int) {
	w := id >> 6
	for len(s.words) <= w {
		s.words = append(s.words, 0)
	}
	s.words[w] |= 1 << (id & 63)
}

// AddRange puts first..last (both included) in s.
func (s *Set) AddRange(first, last int) {
	for id := first; id <= last; id++ {
		s.Add(id)
	}
}

// Remove takes id out of s.
func (s *Set) Remove(id int) {
	if w := id >> 6; id >= 0 && w < len(s.words) {
		s.words[w] &^= 1 << (id & 63)
	}
}

// Len returns the number of ids in s.
func (s *Set) Len() int {
	n := 0
	for _, w := range s.words {
		n += bits.OnesCount64(w)
	}
	return n
}

// Max returns the largest id in s, or -1 when s is empty.
func (s *Set) Max() int {
	for i := len(s.words) - 1; i >= 0; i-- {
		if s.words[i] != 0 {
			return i*64 + 63 - bits.LeadingZeros64(s.words[i])
		}
	}
	return -1
}

// Union adds the ids of o to s.
func (s *Set) Union(o *Set) {
	for len(s.words) < len(o.words) {
		s.words = append(s.words, 0)
	}
	for i, w := range o.words {
		s.words[i] |= w
	}
}

// Subtract removes the ids of o from s.
func (s *Set) Subtract(o *Set) {
	for i := range min(len(s.words), len(o.words)) {
		s.words[i] &^= o.words[i]
	}
}

// Clone returns a copy of s.
func (s *Set) Clone() Set { return Set{words: append([]uint64(nil), s.words...)} }

// Ranges returns the ids of s as sorted, maximal [first, last] runs.
func (s *Set) Ranges() [][2]int {
	var out [][2]int
	start := -1
	top := s.Max()
	for id := 0; id <= top+1; id++ {
		in := s.Has(id)
		switch {
		case in && start < 0:
			start = id
		case !in && start >= 0:
			out = append(out, [2]int{start, id - 1})
			start = -1
		}
	}
	return out
}

// String formats s as a spec: "0-127,256-383", or "" when empty.
func (s *Set) String() string {
	var b strings.Builder
	for i, r := range s.Ranges() {
		if i > 0 {
			b.WriteByte(',')
		}
		b.WriteString(strconv.Itoa(r[0]))
		if r[1] != r[0] {
			b.WriteByte('-')
			b.WriteString(strconv.Itoa(r[1]))
		}
	}
	return b.String()
}

// ParseSet parses an expert spec: "all" (0..experts-1), or comma-separated
// ids and inclusive ranges such as "0-127,256-383". Every id must be below
// experts.
func ParseSet(spec string, experts int) (Set, error) {
	var s Set
	spec = strings.TrimSpace(spec)
	if spec == "all" {
		if experts <= 0 {
			return s, fmt.Errorf("%w: \"all\" of a model without routed experts", ErrSpec)
		}
		s.AddRange(0, experts-1)
		return s, nil
	}
	if spec == "" {
		return s, fmt.Errorf("%w: empty (want \"all\" or ranges such as 0-127,256-383)", ErrSpec)
	}
	for _, part := range strings.Split(spec, ",") {
		part = strings.TrimSpace(part)
		lo, hi, isRange := strings.Cut(part, "-")
		first, err := strconv.Atoi(strings.TrimSpace(lo))
		last := first
		if err == nil && isRange {
			last, err = strconv.Atoi(strings.TrimSpace(hi))
		}
		if err != nil || first < 0 || last < first {
			return Set{}, fmt.Errorf("%w: %q is not an id or a range first-last", ErrSpec, part)
		}
		if last >= experts {
			return Set{}, fmt.Errorf("%w: expert %d is out of range: the model has %d experts", ErrSpec, last, experts)
		}
		s.AddRange(first, last)
	}
	return s, nil
}

// Holdings are the experts one node holds, per layer.
type Holdings map[int]*Set

// Uniform returns holdings of the same set in every given layer.
func Uniform(s Set, layers []int) Holdings {
	h := Holdings{}
	for _, l := range layers {
		c := s.Clone()
		h[l] = &c
	}
	return h
}

// Has reports whether the holdings include expert e of layer l.
func (h Holdings) Has(l, e int) bool {
	s := h[l]
	return s != nil && s.Has(e)
}

// ToProto converts h to the wire form, in layer order.
func (h Holdings) ToProto() []*ixv1.LayerExperts {
	var out []*ixv1.LayerExperts
	for _, l := range slices.Sorted(maps.Keys(h)) {
		le := &ixv1.LayerExperts{Layer: uint32(l)}
		for _, r := range h[l].Ranges() {
			le.Ranges = append(le.Ranges, &ixv1.ExpertRange{First: uint32(r[0]), Last: uint32(r[1])})
		}
		out = append(out, le)
	}
	return out
}

// HoldingsFromProto converts the wire form, checking every layer and id
// with valid (nil: no check).
func HoldingsFromProto(sets []*ixv1.LayerExperts, valid func(layer, first, last int) error) (Holdings, error) {
	h := Holdings{}
	for _, le := range sets {
		l := int(le.GetLayer())
		s := h[l]
		if s == nil {
			s = &Set{}
			h[l] = s
		}
		for _, r := range le.GetRanges() {
			first, last := int(r.GetFirst()), int(r.GetLast())
			if last < first {
				return nil, fmt.Errorf("%w: layer %d: range %d-%d is reversed", ErrSpec, l, first, last)
			}
			if valid != nil {
				if err := valid(l, first, last); err != nil {
					return nil, err
				}
			}
			s.AddRange(first, last)
		}
	}
	return h, nil
}
