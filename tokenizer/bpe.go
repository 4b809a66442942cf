package tokenizer

import (
	"fmt"
	"strings"
	"unicode/utf8"

	"github.com/inference-x/inference-x/gguf"
)

// bpeModel holds byte-level BPE merges as integer tables. Every string a
// merge can involve (its two sides and their concatenation) and every
// token text gets a symbol id, so merging compares ids instead of the
// strings llama.cpp builds (llm_tokenizer_bpe_session).
type bpeModel struct {
	merges       map[uint64]bpeMerge // left<<32 | right -> merge
	byteSym      [256]int32          // symbol of the byte-level character of each byte, -1 if none
	symToken     []int32             // symbol -> token id, -1 if the symbol is no token
	byteToken    [256]int32          // token whose text is the single byte b, -1 if none
	ignoreMerges bool                // look a whole word up before merging (llama3)
}

type bpeMerge struct {
	rank   int32 // position in tokenizer.ggml.merges: lower merges first
	result int32 // symbol of the concatenation
}

func mergeKey(left, right int32) uint64 { return uint64(uint32(left))<<32 | uint64(uint32(right)) }

func newBPEModel(f *gguf.File, texts []string, pre string) (*bpeModel, error) {
	var merges []string
	if f.Has(keyMerges) {
		var err error
		if merges, err = f.Strings(keyMerges); err != nil {
			return nil, fmt.Errorf("%w: %v", ErrVocab, err)
		}
	} else if pre != "kimi-k2" { // llama.cpp lets only Kimi-K2 go without merges
		return nil, fmt.Errorf("%w: %s is missing", ErrVocab, keyMerges)
	}
	m := &bpeModel{merges: make(map[uint64]bpeMerge, len(merges))}
	syms := make(map[string]int32, len(texts)+len(merges)/4)
	intern := func(s string) int32 {
		id, ok := syms[s]
		if !ok {
			id = int32(len(syms))
			syms[s] = id
			m.symToken = append(m.symToken, -1)
		}
		return id
	}
	for id, s := range texts {
		m.symToken[intern(s)] = int32(id) // the last duplicate wins, as in llama.cpp's map
	}
	for rank, s := range merges {
		// llama.cpp splits at the first space after the first byte; a
		// merge without one is the pair ("", ""), which never matches.
		i := strings.IndexByte(s[min(1, len(s)):], ' ')
		if i < 0 {
			continue
		}
		i += min(1, len(s))
		left, right := s[:i], s[i+1:]
		if left == "" || right == "" {
			continue
		}
		key := mergeKey(intern(left), intern(right))
		if _, dup := m.merges[key]; !dup { // emplace keeps the first rank
			m.merges[key] = bpeMerge{rank: int32(rank), result: intern(left + right)}
		}
	}
	var buf [utf8.UTFMax]byte
	for b := range m.byteSym {
		n := utf8.EncodeRune(buf[:], byteRunes[b])
		id, ok := syms[string(buf[:n])]
		if !ok {
			id = -1
		}
		m.byteSym[b] = id
		m.byteToken[b] = -1
		if sym, ok := syms[string([]byte{byte(b)})]; ok {
			m.byteToken[b] = m.symToken[sym]
		}
	}
	return m, nil
}

// symbol is one piece of a word during merging: the bytes
// word[start:start+n], in a doubly linked list of live symbols.
type symbol struct {
	start, n   int32
	prev, next int32
	sym        int32 // BPE symbol id, -1 if the piece is no known string
}

// bigram is a candidate merge of symbols left and right. It is stale
// once either side has changed, which shows as a changed total length.
type bigram struct {
	rank        int32   // BPE: lower first
	score       float32 // SPM: higher first
	left, right int32
	size        int32
	result      int32 // BPE: the merged symbol
}

// bigramHeap is a binary heap ordered by less.
type bigramHeap struct {
	items []bigram
	less  func(a, b *bigram) bool
}

func (h *bigramHeap) push(b bigram) {
	h.items = append(h.items, b)
	i := len(h.items) - 1
	for i > 0 {
		p := (i - 1) / 2
		if !h.less(&h.items[i], &h.items[p]) {
			break
		}
		h.items[i], h.items[p] = h.items[p], h.items[i]
		i = p
	}
}

func (h *bigramHeap) pop() bigram {
	top := h.items[0]
	last := len(h.items) - 1
	h.items[0] = h.items[last]
	h.items = h.items[:last]
	for i := 0; ; {
		l, r, m := 2*i+1, 2*i+2, i
		if l < last && h.less(&h.items[l], &h.items[m]) {
			m = l
		}
		if r < last && h.less(&h.items[r], &h.items[m]) {
			m = r
		}
		if m == i {
			break
		}
		h.items[i], h.items[m] = h.items[m], h.items[i]
		i = m
	}
	return top
}

// bpeLess orders BPE bigrams: lowest rank first, then leftmost.
func bpeLess(a, b *bigram) bool {
	return a.rank < b.rank || a.rank == b.rank && a.left < b.left
}

// wordCache remembers the tokens of recent words: BPE of a word depends
// on its bytes only, and running text repeats words all the time. Each
// pooled encoder has its own, so it needs no lock. It keeps two
// generations: when the current one is full it becomes the old one, so
// frequent words survive.
type wordCache struct {
	cur, old cacheGen
}

type cacheGen struct {
	words map[string]uint64 // word -> offset<<32 | count in ids
	ids   []int32
}

const (
	maxCachedWord  = 48      // bytes; longer words are rare and not cached
	maxCachedWords = 1 << 14 // words per generation
)

func (g *cacheGen) get(word []byte) ([]int32, bool) {
	v, ok := g.words[string(word)]
	if !ok {
		return nil, false
	}
	return g.ids[v>>32 : v>>32+v&0xFFFFFFFF], true
}

func (g *cacheGen) put(word []byte, ids []int32) {
	g.words[string(word)] = uint64(len(g.ids))<<32 | uint64(len(ids))
	g.ids = append(g.ids, ids...)
}

func (c *wordCache) get(word []byte) ([]int32, bool) {
	if ids, ok := c.cur.get(word); ok {
		return ids, true
	}
	ids, ok := c.old.get(word)
	if ok {
		c.put(word, ids)
	}
	return ids, ok
}

func (c *wordCache) put(word []byte, ids []int32) {
	if c.cur.words == nil || len(c.cur.words) >= maxCachedWords {
		recycled := c.old
		c.old = c.cur
		if recycled.words == nil {
			recycled.words = make(map[string]uint64, maxCachedWords)
		}
		clear(recycled.words)
		c.cur = cacheGen{words: recycled.words, ids: recycled.ids[:0]}
	}
	c.cur.put(word, ids)
}

// encodeWord appends the tokens of one pre-tokenized word (raw bytes,
// before the byte-level mapping) to out.
func (m *bpeModel) encodeWord(e *encoder, t *Tokenizer, word []byte, out []int32) []int32 {
	if len(word) == 0 {
		return out
	}
	if len(word) > maxCachedWord {
		return m.mergeWord(e, t, word, out)
	}
	if ids, ok := e.cache.get(word); ok {
		return append(out, ids...)
	}
	n := len(out)
	out = m.mergeWord(e, t, word, out)
	e.cache.put(word, out[n:])
	return out
}

// mergeWord runs llama.cpp's BPE merge loop over one word.
func (m *bpeModel) mergeWord(e *encoder, t *Tokenizer, word []byte, out []int32) []int32 {
	if m.ignoreMerges || len(word) == 1 {
		e.buf = appendByteLevel(e.buf[:0], word)
		if id, ok := t.ids[string(e.buf)]; ok {
			return append(out, id)
		}
	}
	syms := e.syms[:0]
	for i, b := range word {
		syms = append(syms, symbol{start: int32(i), n: 1, prev: int32(i - 1), next: int32(i + 1), sym: m.byteSym[b]})
	}
	syms[len(syms)-1].next = -1
	h := &e.heap
	h.items, h.less = h.items[:0], bpeLess
	for i := 1; i < len(syms); i++ {
		m.addBigram(e, syms, int32(i-1), int32(i))
	}
	for len(h.items) > 0 {
		b := h.pop()
		e.work++
		l, r := &syms[b.left], &syms[b.right]
		if l.n == 0 || r.n == 0 || l.n+r.n != b.size {
			continue // stale
		}
		l.n += r.n
		l.sym = b.result
		r.n = 0
		l.next = r.next
		if r.next >= 0 {
			syms[r.next].prev = b.left
		}
		m.addBigram(e, syms, l.prev, b.left)
		m.addBigram(e, syms, b.left, l.next)
	}
	for i := int32(0); i >= 0; i = syms[i].next {
		s := syms[i]
		if s.sym >= 0 && m.symToken[s.sym] >= 0 {
			out = append(out, m.symToken[s.sym])
			continue
		}
		// Not a token: llama.cpp looks up each byte of the byte-level text
		// alone and drops the ones that are no token.
		for _, b := range word[s.start : s.start+s.n] {
			e.buf = appendByteLevel(e.buf[:0], []byte{b})
			for _, c := range e.buf {
				if id := m.byteToken[c]; id >= 0 {
					out = append(out, id)
				}
			}
		}
	}
	e.syms = syms
	return out
}

func (m *bpeModel) addBigram(e *encoder, syms []symbol, left, right int32) {
	if left < 0 || right < 0 {
		return
	}
	l, r := syms[left].sym, syms[right].sym
	if l < 0 || r < 0 {
		return
	}
	mg, ok := m.merges[mergeKey(l, r)]
	if !ok {
		return
	}
	e.work++
	e.heap.push(bigram{rank: mg.rank, left: left, right: right, size: syms[left].n + syms[right].n, result: mg.result})
}

// appendByteLevel appends GPT-2's byte-level text of raw bytes.
func appendByteLevel(dst, raw []byte) []byte {
	for _, b := range raw {
		dst = utf8.AppendRune(dst, byteRunes[b])
	}
	return dst
}
