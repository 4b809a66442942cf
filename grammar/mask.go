package grammar

import (
	"math"
	mbits "math/bits"
)

// Mask sets allowed (a bitset of Vocab.MaskWords() words, bit id%64 of
// word id/64) to the tokens that may come next: a token is allowed when
// its whole piece continues the grammar (a piece may stop inside a UTF-8
// sequence that some parse can still finish); end-of-generation tokens
// are allowed exactly when CanEnd. Tokens with no text never are.
//
// The work is one walk of the vocabulary trie against the current stacks,
// skipping every subtree whose prefix no stack takes, and its result is
// cached by state, so a state seen before (the inside of a string, say)
// costs a copy. Nothing is allocated once the buffers have grown.
func (m *Matcher) Mask(allowed []uint64) {
	words := m.v.MaskWords()
	if len(allowed) < words {
		panic("grammar: mask shorter than Vocab.MaskWords")
	}
	allowed = allowed[:words]
	m.compact()
	cacheable := m.utf.rem == 0
	if c, ok := m.cache[m.cur]; ok && cacheable {
		m.hits++
		copy(allowed, c)
		return
	}
	m.misses++
	clear(allowed)
	if !m.walkAutomaton(allowed) {
		clear(allowed)
		m.walkScratch(allowed)
	}
	if m.g.hasTokens && m.utf.rem == 0 {
		for _, t := range m.states[m.cur].tops {
			if t == accepting {
				continue
			}
			if e := m.g.prog[m.nodes[t].pos]; e.kind == opToken && int(e.val) < m.v.n && !m.v.IsEOG(e.val) {
				allowed[e.val>>6] |= 1 << (e.val & 63)
			}
		}
	}
	if m.CanEnd() {
		for _, id := range m.v.eog {
			allowed[id>>6] |= 1 << (id & 63)
		}
	}
	if !cacheable {
		return
	}
	if len(m.cache) >= maxCache {
		for k, c := range m.cache { // drop one entry, reuse its buffer
			delete(m.cache, k)
			copy(c, allowed)
			m.cache[m.cur] = c
			return
		}
	}
	m.cache[m.cur] = append([]uint64(nil), allowed...)
}

// CacheStats returns how many Mask calls were answered from the cache and
// how many walked the vocabulary.
func (m *Matcher) CacheStats() (hits, misses int) { return m.hits, m.misses }

// walkAutomaton marks every token of the trie whose piece the current
// state takes, following (and memoizing) the automaton's transitions. It
// gives up, returning false, if the automaton grows past twice its
// limits on the way.
func (m *Matcher) walkAutomaton(allowed []uint64) bool {
	v := m.v
	if cap(m.dlev) < v.maxDepth+1 {
		m.dlev = make([]dfaLevel, v.maxDepth+1)
	}
	levels := m.dlev[:v.maxDepth+1]
	levels[0] = dfaLevel{state: m.cur, utf: m.utf}
	nb, nd, ne, nt := v.nodeByte, v.nodeDepth, v.nodeEnd, v.nodeTok
	for i := int32(0); i < int32(len(nb)); {
		parent := levels[nd[i]-1]
		b := nb[i]
		var s int32
		var utf utf8State
		if x := m.states[parent.state].ascii[b&0x7F]; b < 0x80 && parent.utf.rem == 0 && x != 0 {
			s = x - 2 // memoized: the common case
		} else {
			next, r, complete, ok := parent.utf.step(b)
			if !ok {
				i = ne[i]
				continue
			}
			utf = next
			switch {
			case complete:
				s = m.transition(parent.state, r)
				if len(m.states) > 2*maxStates || len(m.nodes) > 2*maxNodes {
					return false
				}
			case m.uniformHigh(parent.state):
				// Every code point >= 128 goes the same way: the sequence
				// is good if that way is.
				s = parent.state
				if m.states[s].hiNext == dead {
					i = ne[i]
					continue
				}
			default:
				s = parent.state
				lo, hi := next.span()
				if !m.anyMayMatch(m.states[s].tops, lo, hi) {
					i = ne[i]
					continue
				}
			}
		}
		if s == dead {
			i = ne[i]
			continue
		}
		levels[nd[i]] = dfaLevel{state: s, utf: utf}
		switch t := nt[i]; t {
		case noToken:
		case manyTokens:
			for _, id := range v.toks[v.tokOff[i]:v.tokOff[i+1]] {
				allowed[id>>6] |= 1 << (id & 63)
			}
		default:
			allowed[t>>6] |= 1 << (t & 63)
		}
		i++
	}
	return true
}

// walkScratch is the walk without the automaton: stack sets built in
// scratch frames that are dropped when the walk leaves a prefix.
func (m *Matcher) walkScratch(allowed []uint64) {
	v := m.v
	base := int32(len(m.nodes))
	if cap(m.levels) < v.maxDepth+1 {
		m.levels = make([]level, v.maxDepth+1)
	}
	levels := m.levels[:v.maxDepth+1]
	sets := append(m.sets[:0], m.states[m.cur].tops...)
	levels[0] = level{start: 0, end: int32(len(sets)), nodes: base, utf: m.utf}
	nb, nd, ne, to, toks := v.nodeByte, v.nodeDepth, v.nodeEnd, v.tokOff, v.toks
	for i := int32(0); i < int32(len(nb)); {
		d := nd[i]
		parent := &levels[d-1]
		sets = sets[:parent.end]
		m.nodes = m.nodes[:parent.nodes]
		next, r, complete, ok := parent.utf.step(nb[i])
		if !ok {
			i = ne[i]
			continue
		}
		cur := &levels[d]
		if complete {
			start := int32(len(sets))
			sets = m.advance(sets[parent.start:parent.end], r, sets, false)
			if int32(len(sets)) == start {
				i = ne[i]
				continue
			}
			*cur = level{start: start, end: int32(len(sets)), nodes: int32(len(m.nodes)), utf: next}
		} else {
			lo, hi := next.span()
			if !m.anyMayMatch(sets[parent.start:parent.end], lo, hi) {
				i = ne[i]
				continue
			}
			*cur = level{start: parent.start, end: parent.end, nodes: parent.nodes, utf: next}
		}
		for _, id := range toks[to[i]:to[i+1]] {
			allowed[id>>6] |= 1 << (id & 63)
		}
		i++
	}
	m.sets = sets[:0]
	m.nodes = m.nodes[:base]
}

func (m *Matcher) anyMayMatch(set []int32, lo, hi rune) bool {
	for _, id := range set {
		if id != accepting && m.g.mayMatch(m.nodes[id].pos, lo, hi) {
			return true
		}
	}
	return false
}

// Allowed reports whether token id is set in mask.
func Allowed(mask []uint64, id int32) bool {
	return id >= 0 && int(id>>6) < len(mask) && mask[id>>6]&(1<<(id&63)) != 0
}

// negInf is a word's worth of -Inf logits.
var negInf = func() (b [64]float32) {
	for i := range b {
		b[i] = float32(math.Inf(-1))
	}
	return b
}()

// ApplyMask sets the logits of the tokens not in mask to -Inf (before
// any sampling step: penalties, top-k, top-p, temperature). Logits past
// the mask (an output layer wider than the vocabulary) are disallowed.
func ApplyMask(logits []float32, mask []uint64) {
	neg := float32(math.Inf(-1))
	for w := 0; w*64 < len(logits); w++ {
		base := w * 64
		chunk := logits[base:min(len(logits), base+64)]
		var bits uint64
		if w < len(mask) {
			bits = mask[w]
		}
		switch bits {
		case 0:
			copy(chunk, negInf[:])
		case math.MaxUint64:
		default:
			for off := ^bits; off != 0; off &= off - 1 {
				if i := mbits.TrailingZeros64(off); i < len(chunk) {
					chunk[i] = neg
				}
			}
		}
	}
}
