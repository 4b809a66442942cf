package tokenizer

import (
	"sort"
	"strings"
)

// fragment is a piece of the input after special tokens are split out:
// either a special token (tok >= 0) or raw text [start, end).
type fragment struct {
	tok        int32
	start, end int
}

// trie finds which special tokens occur anywhere in a text, so that the
// exact (and per token linear) splitting below runs only for those.
type trie struct {
	root  [256]int32 // child of the root per byte, 0 = none
	nodes []trieNode // nodes[0] is unused
	edges []trieEdge
}

type trieNode struct {
	edgeLo, edgeHi int32 // children: edges[edgeLo:edgeHi]
	match          int32 // index into Tokenizer.specials ending here, -1 if none
}

type trieEdge struct {
	b     byte
	child int32
}

// buildTrie indexes the texts of the specials selected by keep.
func buildTrie(texts []string, specials []int32, keep func(id int32) bool) trie {
	type entry struct {
		text string
		idx  int32
	}
	var es []entry
	for i, id := range specials {
		if keep(id) {
			es = append(es, entry{texts[id], int32(i)})
		}
	}
	sort.Slice(es, func(i, j int) bool { return es[i].text < es[j].text })
	var tr trie
	if len(es) == 0 {
		return tr
	}
	tr.nodes = append(tr.nodes, trieNode{}) // 0: the "none" sentinel
	// build adds the node for prefix es[lo:hi][..depth] and returns its index.
	var build func(lo, hi, depth int) int32
	build = func(lo, hi, depth int) int32 {
		n := int32(len(tr.nodes))
		tr.nodes = append(tr.nodes, trieNode{match: -1})
		if len(es[lo].text) == depth { // sorted: the exact match comes first
			tr.nodes[n].match = es[lo].idx
			lo++
		}
		var kids []trieEdge
		for lo < hi {
			b := es[lo].text[depth]
			end := lo
			for end < hi && es[end].text[depth] == b {
				end++
			}
			kids = append(kids, trieEdge{b, build(lo, end, depth+1)})
			lo = end
		}
		tr.nodes[n].edgeLo = int32(len(tr.edges))
		tr.edges = append(tr.edges, kids...)
		tr.nodes[n].edgeHi = int32(len(tr.edges))
		return n
	}
	for lo := 0; lo < len(es); {
		b := es[lo].text[0]
		end := lo
		for end < len(es) && es[end].text[0] == b {
			end++
		}
		tr.root[b] = build(lo, end, 1)
		lo = end
	}
	return tr
}

// mark sets seen[i] for every special i occurring in text and returns how
// many distinct ones it found.
func (tr *trie) mark(text string, seen []bool) int {
	if len(tr.nodes) == 0 {
		return 0
	}
	found := 0
	for i := 0; i < len(text); i++ {
		n := tr.root[text[i]]
		for j := i + 1; n != 0; j++ {
			nd := &tr.nodes[n]
			if nd.match >= 0 && !seen[nd.match] {
				seen[nd.match] = true
				found++
			}
			if j == len(text) {
				break
			}
			next := int32(0)
			for _, e := range tr.edges[nd.edgeLo:nd.edgeHi] {
				if e.b == text[j] {
					next = e.child
					break
				}
			}
			n = next
		}
	}
	return found
}

func (t *Tokenizer) buildSpecialTries() {
	t.specialTrie = buildTrie(t.texts, t.specials, func(int32) bool { return true })
	t.userDefTrie = buildTrie(t.texts, t.specials, func(id int32) bool {
		return t.attrs[id]&(AttrControl|AttrUnknown) == 0
	})
}

// partition splits text into raw fragments and special tokens as
// llama.cpp's tokenizer_st_partition does: special tokens longest first,
// each cutting every occurrence out of the raw fragments left by the
// longer ones. CONTROL and UNKNOWN tokens take part only with
// parseSpecial; USER_DEFINED tokens always do.
func (t *Tokenizer) partition(e *encoder, text string, parseSpecial bool) []fragment {
	frags := append(e.frags[:0], fragment{tok: Null, start: 0, end: len(text)})
	if len(text) == 0 {
		e.frags = frags
		return frags[:0]
	}
	tr := &t.userDefTrie
	if parseSpecial {
		tr = &t.specialTrie
	}
	if len(tr.nodes) == 0 {
		e.frags = frags
		return frags
	}
	seen := e.seen[:0]
	for range t.specials {
		seen = append(seen, false)
	}
	e.seen = seen
	if tr.mark(text, seen) == 0 {
		e.frags = frags
		return frags
	}
	next := e.frags2[:0]
	for i, id := range t.specials {
		if !seen[i] {
			continue
		}
		tok, attr := t.texts[id], t.attrs[id]
		next = next[:0]
		for _, f := range frags {
			if f.tok != Null {
				next = append(next, f)
				continue
			}
			off, end := f.start, f.end
			for {
				m := strings.Index(text[off:end], tok)
				if m < 0 {
					if off < end {
						next = append(next, fragment{tok: Null, start: off, end: end})
					}
					break
				}
				m += off
				if m > off {
					left := m
					if attr&AttrLStrip != 0 {
						for left > off && isCSpace(text[left-1]) {
							left--
						}
					}
					if left > off {
						next = append(next, fragment{tok: Null, start: off, end: left})
					}
				}
				next = append(next, fragment{tok: id, start: m, end: m + len(tok)})
				off = m + len(tok)
				if attr&AttrRStrip != 0 {
					for off < end && isCSpace(text[off]) {
						off++
					}
				}
				if off >= end {
					break
				}
			}
		}
		frags, next = next, frags
	}
	e.frags, e.frags2 = frags, next
	return frags
}
