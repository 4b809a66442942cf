package grammar

import (
	"errors"
	"fmt"
	"slices"
)

// ErrRejected is returned (wrapped) by Accept when the text cannot
// continue the grammar; the Matcher keeps its state from before.
var ErrRejected = errors.New("grammar: text rejected")

// Limits on the matcher's stacks: a grammar that nests deeper, or is so
// ambiguous that more parses live at once, loses the excess parses (the
// output still matches the grammar; it only has fewer choices).
const (
	maxStackDepth = 1024
	maxStacks     = 1024
	maxCache      = 64 // cached masks per Matcher
)

// node is one frame of a parse stack: a position in Grammar.prog (the
// next element to match, or the continuation after a rule reference) on
// top of its parent frame (-1: the bottom).
type node struct {
	pos    int32
	parent int32
	depth  int32
}

// accepting stands for the empty stack in a stack set: the grammar can
// end here.
const accepting = -1

// utf8State is a partly decoded UTF-8 sequence: the bits so far, how
// many continuation bytes are missing and the sequence's length.
type utf8State struct {
	val int32
	rem int32
	n   int32
}

// utf8Min is the smallest code point of a sequence of n bytes.
var utf8Min = [5]rune{0, 0, 0x80, 0x800, 0x10000}

// step feeds one byte; ok is false for a byte that cannot occur there.
func (s utf8State) step(b byte) (next utf8State, cp rune, complete, ok bool) {
	if s.rem == 0 {
		switch {
		case b < 0x80:
			return s, rune(b), true, true
		case b >= 0xC2 && b <= 0xDF:
			return utf8State{int32(b & 0x1F), 1, 2}, 0, false, true
		case b >= 0xE0 && b <= 0xEF:
			return utf8State{int32(b & 0x0F), 2, 3}, 0, false, true
		case b >= 0xF0 && b <= 0xF4:
			return utf8State{int32(b & 0x07), 3, 4}, 0, false, true
		}
		return s, 0, false, false
	}
	if b&0xC0 != 0x80 {
		return s, 0, false, false
	}
	v := s.val<<6 | int32(b&0x3F)
	if s.rem > 1 {
		next := utf8State{v, s.rem - 1, s.n}
		if lo, hi := next.span(); lo > hi || lo >= 0xD800 && hi <= 0xDFFF {
			return s, 0, false, false // overlong, a surrogate or beyond U+10FFFF
		}
		return next, 0, false, true
	}
	r := rune(v)
	if r < utf8Min[s.n] || r >= 0xD800 && r <= 0xDFFF || r > 0x10FFFF {
		return s, 0, false, false
	}
	return utf8State{}, r, true, true
}

// utf8Max is the largest code point of a sequence of n bytes.
var utf8Max = [5]rune{0, 0x7F, 0x7FF, 0xFFFF, 0x10FFFF}

// span is the range of code points a partial sequence can still become
// (empty, lo > hi, when it can become none).
func (s utf8State) span() (lo, hi rune) {
	sh := uint(6 * s.rem)
	lo = rune(s.val) << sh
	hi = lo | (1<<sh - 1)
	return max(lo, utf8Min[s.n]), min(hi, utf8Max[s.n])
}

// Matcher follows one generation through a Grammar: the set of parse
// stacks that the text so far leaves open, like llama.cpp's grammar
// stacks, with stack frames shared between stacks and interned so that
// equal stacks are equal frames. Each distinct stack set is a state of a
// lazily built automaton whose transitions per code point are memoized,
// so text seen in a state before (the inside of a string, say) costs a
// table look-up. Not safe for concurrent use; a Matcher per sequence.
type Matcher struct {
	g *Grammar
	v *Vocab

	nodes    []node
	intern   map[[2]int32]int32
	states   []dfaState
	stateIDs map[string]int32
	cur      int32 // the state after the text so far
	utf      utf8State
	buf      []int32
	key      []byte
	seen     map[[2]int32]struct{} // (pos, parent) expanded in this advance
	budget   int                   // expansion steps left in this advance

	// Mask scratch, reused between calls.
	sets   []int32
	levels []level
	dlev   []dfaLevel
	cache  map[int32][]uint64 // complete-UTF-8 state -> mask
	hits   int
	misses int
}

// dfaState is one stack set: its sorted top frames (accepting first when
// present) and its memoized transitions.
type dfaState struct {
	tops  []int32
	ascii [128]int32 // next state + 2 per ASCII code point; 0: not computed, 1: dead
	other map[rune]int32
	// hi says whether every code point >= 128 leads to the same state
	// (hiUniform: hiNext), as inside a string; hiUnknown until computed.
	hi     uint8
	hiNext int32
}

const (
	hiUnknown uint8 = iota
	hiUniform
	hiMixed
)

// dead is the transition to no stack at all.
const dead = -1

// Limits after which a Matcher drops its automaton and keeps only the
// current stacks, and the walk falls back to stacks without memoizing
// (variables so tests can lower them).
var (
	maxNodes  = 1 << 18
	maxStates = 1 << 12
)

// level is the stack set after a trie prefix in the scratch walk:
// sets[start:end] and the UTF-8 state, with the node count to truncate
// to when leaving it.
type level struct {
	start, end int32
	nodes      int32
	utf        utf8State
}

// dfaLevel is the state after a trie prefix in the automaton walk.
type dfaLevel struct {
	state int32
	utf   utf8State
}

// NewMatcher starts matching g from its root rule. v may be nil when only
// Accept is used (Mask and AcceptToken then panic).
func (g *Grammar) NewMatcher(v *Vocab) *Matcher {
	m := &Matcher{g: g, v: v}
	m.Reset()
	return m
}

// Reset returns to the start of the grammar.
func (m *Matcher) Reset() {
	m.resetAutomaton()
	m.utf = utf8State{}
	m.startAdvance()
	tops := m.buf[:0]
	for _, a := range m.g.alts[m.g.root] {
		tops = m.expand(a, -1, tops, 0, true)
	}
	m.cur = m.internState(tops)
	m.buf = tops[:0]
}

func (m *Matcher) resetAutomaton() {
	m.nodes = m.nodes[:0]
	if m.intern == nil {
		m.intern = map[[2]int32]int32{}
		m.stateIDs = map[string]int32{}
		m.cache = map[int32][]uint64{}
	}
	clear(m.intern)
	clear(m.stateIDs)
	clear(m.cache)
	m.states = m.states[:0]
}

// compact drops the automaton when it has grown past its limits, keeping
// the current stacks (re-interned).
func (m *Matcher) compact() {
	if len(m.nodes) <= maxNodes && len(m.states) <= maxStates {
		return
	}
	var chains [][]int32
	for _, id := range m.states[m.cur].tops {
		var chain []int32
		for ; id >= 0; id = m.nodes[id].parent {
			chain = append(chain, m.nodes[id].pos)
		}
		chains = append(chains, chain)
	}
	m.resetAutomaton()
	tops := m.buf[:0]
	for _, chain := range chains {
		id := int32(accepting)
		for i := len(chain) - 1; i >= 0; i-- {
			id, _ = m.mk(chain[i], id, true)
		}
		tops = append(tops, id)
	}
	m.cur = m.internState(tops)
	m.buf = tops[:0]
}

// internState returns the state of a set of interned tops (sorting and
// deduplicating them), or dead for none.
func (m *Matcher) internState(tops []int32) int32 {
	if len(tops) == 0 {
		return dead
	}
	slices.Sort(tops)
	tops = slices.Compact(tops)
	m.key = m.key[:0]
	for _, id := range tops {
		m.key = append(m.key, byte(id), byte(id>>8), byte(id>>16), byte(id>>24))
	}
	if id, ok := m.stateIDs[string(m.key)]; ok {
		return id
	}
	id := int32(len(m.states))
	m.states = append(m.states, dfaState{tops: slices.Clone(tops)})
	m.stateIDs[string(m.key)] = id
	return id
}

// transition returns the state after r in state s (dead if none).
func (m *Matcher) transition(s int32, r rune) int32 {
	if r < 128 {
		if x := m.states[s].ascii[r]; x != 0 {
			return x - 2
		}
	} else if m.uniformHigh(s) {
		return m.states[s].hiNext
	} else if x, ok := m.states[s].other[r]; ok {
		return x
	}
	buf := m.advance(m.states[s].tops, r, m.buf[:0], true)
	next := m.internState(buf)
	m.buf = buf[:0]
	st := &m.states[s]
	if r < 128 {
		st.ascii[r] = next + 2
	} else {
		if st.other == nil {
			st.other = map[rune]int32{}
		}
		st.other[r] = next
	}
	return next
}

// uniformHigh reports whether all code points >= 128 take state s to the
// same state (then in hiNext): no top element tells them apart.
func (m *Matcher) uniformHigh(s int32) bool {
	st := &m.states[s]
	if st.hi != hiUnknown {
		return st.hi == hiUniform
	}
	st.hi = hiUniform
	for _, id := range st.tops {
		if id == accepting {
			continue
		}
		switch e := m.g.prog[m.nodes[id].pos]; e.kind {
		case opLit:
			if e.val >= 128 {
				st.hi = hiMixed
			}
		case opSet:
			for _, r := range m.g.sets[e.val].ranges {
				if r.hi >= 128 {
					st.hi = hiMixed
				}
			}
		}
	}
	if st.hi == hiMixed {
		return false
	}
	buf := m.advance(st.tops, 0x80, m.buf[:0], true)
	next := m.internState(buf)
	m.buf = buf[:0]
	m.states[s].hiNext = next
	return true
}

// Grammar returns the grammar being matched.
func (m *Matcher) Grammar() *Grammar { return m.g }

// CanEnd reports whether the text so far is a complete sentence of the
// grammar (so an end-of-generation token may come now).
func (m *Matcher) CanEnd() bool {
	t := m.states[m.cur].tops
	return m.utf.rem == 0 && t[0] == accepting
}

// Done reports whether nothing but the end can follow: the grammar is
// complete and no character can extend it.
func (m *Matcher) Done() bool {
	return m.CanEnd() && len(m.states[m.cur].tops) == 1
}

// mk returns the frame (pos over parent), interned when canonical is set
// so equal stacks have equal frames, or appended as scratch.
func (m *Matcher) mk(pos, parent int32, canonical bool) (int32, bool) {
	depth := int32(1)
	if parent >= 0 {
		depth = m.nodes[parent].depth + 1
	}
	if depth > maxStackDepth {
		return 0, false
	}
	if canonical {
		k := [2]int32{pos, parent}
		if id, ok := m.intern[k]; ok {
			return id, true
		}
		id := int32(len(m.nodes))
		m.nodes = append(m.nodes, node{pos, parent, depth})
		m.intern[k] = id
		return id, true
	}
	m.nodes = append(m.nodes, node{pos, parent, depth})
	return int32(len(m.nodes) - 1), true
}

// expand appends to out the stacks whose top is a character element,
// reached from the stack "pos over parent" without consuming: a finished
// rule pops, a reference pushes its continuation and each alternative.
//
// Each (pos, parent) of interned frames is expanded once per advance
// (equal frames give equal stacks), so nullable alternatives cannot blow
// up; scratch expansions have a step budget instead.
func (m *Matcher) expand(pos, parent int32, out []int32, from int, canonical bool) []int32 {
	prog := m.g.prog
	if canonical {
		k := [2]int32{pos, parent}
		if _, done := m.seen[k]; done {
			return out
		}
		m.seen[k] = struct{}{}
	}
	for {
		if m.budget--; m.budget < 0 {
			return out
		}
		switch e := prog[pos]; e.kind {
		case opEnd, opAlt:
			if parent < 0 {
				return addTop(m, out, from, accepting, canonical)
			}
			n := m.nodes[parent]
			pos, parent = n.pos, n.parent
			continue
		case opRef:
			cont := parent
			if k := prog[pos+1].kind; k != opEnd && k != opAlt {
				var ok bool
				if cont, ok = m.mk(pos+1, parent, canonical); !ok {
					return out
				}
			}
			for _, a := range m.g.alts[e.val] {
				out = m.expand(a, cont, out, from, canonical)
			}
			return out
		default:
			id, ok := m.mk(pos, parent, canonical)
			if !ok {
				return out
			}
			return addTop(m, out, from, id, canonical)
		}
	}
}

// addTop adds a stack to the set out[from:] unless it is there already
// (exactly for interned frames; by frame content for scratch ones) or the
// set is full.
func addTop(m *Matcher, out []int32, from int, id int32, canonical bool) []int32 {
	set := out[from:]
	if len(set) >= maxStacks {
		return out
	}
	if canonical || id == accepting {
		if slices.Contains(set, id) {
			return out
		}
		return append(out, id)
	}
	n := m.nodes[id]
	for _, o := range set {
		if o >= 0 && m.nodes[o].pos == n.pos && m.nodes[o].parent == n.parent {
			m.nodes = m.nodes[:len(m.nodes)-1] // id is the frame just made
			return out
		}
	}
	return append(out, id)
}

// maxExpand bounds the expansion steps of one advance.
const maxExpand = 1 << 16

func (m *Matcher) startAdvance() {
	if m.seen == nil {
		m.seen = map[[2]int32]struct{}{}
	}
	if len(m.seen) > 0 {
		clear(m.seen)
	}
	m.budget = maxExpand
}

// matches reports whether the character element at pos takes r.
func (g *Grammar) matches(pos int32, r rune) bool {
	switch e := g.prog[pos]; e.kind {
	case opLit:
		return rune(e.val) == r
	case opSet:
		return g.sets[e.val].match(r)
	case opAny:
		return true
	}
	return false
}

// mayMatch reports whether the element at pos takes some code point in
// lo..hi (for a partial UTF-8 sequence).
func (g *Grammar) mayMatch(pos int32, lo, hi rune) bool {
	switch e := g.prog[pos]; e.kind {
	case opLit:
		return rune(e.val) >= lo && rune(e.val) <= hi
	case opSet:
		return g.sets[e.val].intersects(lo, hi)
	case opAny:
		return true
	}
	return false
}

// advance appends to out the stacks of set after consuming r.
func (m *Matcher) advance(set []int32, r rune, out []int32, canonical bool) []int32 {
	m.startAdvance()
	from := len(out)
	for _, id := range set {
		if id == accepting {
			continue
		}
		n := m.nodes[id]
		if m.g.matches(n.pos, r) {
			out = m.expand(n.pos+1, n.parent, out, from, canonical)
		}
	}
	return out
}

// Accept advances over the bytes of a token's piece. A piece may end or
// start inside a UTF-8 sequence. On error (wrapping ErrRejected) the
// state is unchanged.
func (m *Matcher) Accept(piece []byte) error {
	m.compact()
	cur, utf, err := m.acceptBytes(m.cur, m.utf, piece)
	if err != nil {
		return err
	}
	m.cur, m.utf = cur, utf
	return nil
}

func (m *Matcher) acceptBytes(cur int32, utf utf8State, piece []byte) (int32, utf8State, error) {
	for i, b := range piece {
		next, r, complete, ok := utf.step(b)
		if !ok {
			return cur, utf, fmt.Errorf("%w: byte %#02x at offset %d is not valid UTF-8 here", ErrRejected, b, i)
		}
		utf = next
		if !complete {
			continue
		}
		if cur = m.transition(cur, r); cur == dead {
			return cur, utf, fmt.Errorf("%w: %q at offset %d", ErrRejected, r, i)
		}
	}
	return cur, utf, nil
}

// tokenStep is the state after token id taken by <[id]> elements (dead
// if no stack expects it).
func (m *Matcher) tokenStep(id int32) int32 {
	if m.utf.rem != 0 || !m.g.hasTokens {
		return dead
	}
	m.startAdvance()
	buf := m.buf[:0]
	for _, t := range m.states[m.cur].tops {
		if t == accepting {
			continue
		}
		n := m.nodes[t]
		if e := m.g.prog[n.pos]; e.kind == opToken && e.val == id {
			buf = m.expand(n.pos+1, n.parent, buf, 0, true)
		}
	}
	next := m.internState(buf)
	m.buf = buf[:0]
	return next
}

// AcceptString is Accept of s.
func (m *Matcher) AcceptString(s string) error { return m.Accept([]byte(s)) }

// AcceptToken advances over token id: its piece as text, or the token
// itself where the grammar has <[id]>. An end-of-generation token is
// accepted only when CanEnd.
func (m *Matcher) AcceptToken(id int32) error {
	if m.v.IsEOG(id) {
		if !m.CanEnd() {
			return fmt.Errorf("%w: end of generation before the grammar is complete", ErrRejected)
		}
		return nil
	}
	m.compact()
	byToken := m.tokenStep(id)
	p := m.v.Piece(id)
	byText, utf, err := int32(dead), m.utf, error(nil)
	if len(p) > 0 {
		byText, utf, err = m.acceptBytes(m.cur, m.utf, p)
	} else {
		err = fmt.Errorf("%w: token %d has no text", ErrRejected, id)
	}
	switch {
	case byToken == dead && err != nil:
		return err
	case byToken == dead:
		m.cur, m.utf = byText, utf
	case err != nil || utf.rem != 0:
		m.cur, m.utf = byToken, utf8State{}
	default:
		// Both ways: the union of the stacks.
		tops := append(append(m.buf[:0], m.states[byToken].tops...), m.states[byText].tops...)
		m.cur = m.internState(tops)
		m.buf = tops[:0]
		m.utf = utf8State{}
	}
	return nil
}
