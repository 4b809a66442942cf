package tokenizer

import (
	"fmt"
	"sort"
	"strings"
)

// codepoints is one text fragment decoded the way llama.cpp's
// unicode_regex_split sees it: code points (malformed bytes become
// U+FFFD), their classes, and the UTF-8 that llama.cpp re-encodes the
// words from. norm equals the input for well-formed UTF-8.
type codepoints struct {
	cpts  []rune
	flags []cptFlags
	off   []int32 // off[i] is the byte offset of cpts[i] in norm; off[len(cpts)] = len(norm)
	norm  []byte  // the re-encoded text
	work  int     // splitter steps, for the linearity tests
}

func (c *codepoints) reset(text string, tab *unicodeTable) {
	if cap(c.cpts) < len(text) {
		c.cpts = make([]rune, 0, len(text))
		c.flags = make([]cptFlags, 0, len(text))
		c.off = make([]int32, 0, len(text)+1)
	}
	if cap(c.norm) < len(text) {
		c.norm = make([]byte, 0, len(text))
	}
	c.cpts, c.flags, c.off, c.norm = c.cpts[:0], c.flags[:0], c.off[:0], c.norm[:0]
	for i := 0; i < len(text); {
		c.off = append(c.off, int32(len(c.norm)))
		if b := text[i]; b < 0x80 {
			c.cpts = append(c.cpts, rune(b))
			c.flags = append(c.flags, tab.flags(rune(b)))
			c.norm = append(c.norm, b)
			i++
			continue
		}
		r, n := decodeCpt(text, i)
		c.cpts = append(c.cpts, r)
		c.flags = append(c.flags, tab.flags(r))
		c.norm = appendCpt(c.norm, r)
		i += n
	}
	c.off = append(c.off, int32(len(c.norm)))
}

// fl returns the flags of code point i, or 0 outside [start, end): the
// "out of range" llama.cpp's hand-written splitters look ahead into.
func (c *codepoints) fl(i, start, end int) cptFlags {
	if i < start || i >= end {
		return 0
	}
	return c.flags[i]
}

// cpt returns code point i, or -1 outside [start, end).
func (c *codepoints) cpt(i, start, end int) rune {
	if i < start || i >= end {
		return -1
	}
	return c.cpts[i]
}

// collapsed is the byte llama.cpp substitutes for code point i when it
// runs a std::regex that uses \p{..} classes: ASCII stays, non-ASCII
// whitespace becomes \v, other code points a byte per category
// (0xD1 N, 0xD2 L, 0xD3 P, 0xD4 M, 0xD5 S, 0xD0 anything else).
func (c *codepoints) collapsed(i int) byte {
	r := c.cpts[i]
	if r < 0x80 {
		return byte(r)
	}
	f := c.flags[i]
	if f&flagWhitespace != 0 {
		return '\v'
	}
	switch f & 0xFF {
	case flagNumber:
		return 0xD1
	case flagLetter:
		return 0xD2
	case flagPunct:
		return 0xD3
	case flagMark:
		return 0xD4
	case flagSymbol:
		return 0xD5
	}
	return 0xD0
}

// wide is code point i as llama.cpp feeds it to a std::wregex (a regex
// without \p{..} classes): non-ASCII whitespace becomes \v so that \s
// matches it.
func (c *codepoints) wide(i int) rune {
	r := c.cpts[i]
	if r >= 0x80 && c.flags[i]&flagWhitespace != 0 {
		return '\v'
	}
	return r
}

// A splitFunc splits the code points [start, end) into consecutive words
// and appends the end offset of each to out; the words cover the range.
type splitFunc func(c *codepoints, start, end int, out []int) []int

// preTokenizer is one entry of llama.cpp's pre-tokenizer table
// (llm_tokenizer_bpe, llama_vocab::impl::load): the splits run in order,
// each over the words the previous one produced.
type preTokenizer struct {
	splits []splitFunc
	// Flags llama.cpp sets for this pre-tokenizer name.
	cleanSpaces  bool
	ignoreMerges bool
	addBOS       bool // add_bos default before tokenizer.ggml.add_bos_token
	noBOS        bool // the default BOS id is LLAMA_TOKEN_NULL (chatglm)
}

// split runs the pipeline over all code points of c. It returns the end
// offsets of the words, using bufs as scratch (the result aliases one).
func (p *preTokenizer) split(c *codepoints, bufs *[2][]int) []int {
	cur, next := bufs[0][:0], bufs[1][:0]
	if len(c.cpts) == 0 {
		return cur
	}
	cur = append(cur, len(c.cpts))
	for _, s := range p.splits {
		next = next[:0]
		start := 0
		for _, end := range cur {
			next = s(c, start, end, next)
			start = end
		}
		cur, next = next, cur
	}
	bufs[0], bufs[1] = cur, next
	return cur
}

// Families of pre-tokenizers: each is a list of splits (llama.cpp's
// regex_exprs) and the default flags of the BPE vocabulary type.
var (
	splitsDefault     = []splitFunc{splitDefaultPunct, splitGPT2, splitNumbers, splitASCIIDigits3}
	splitsGPT2        = []splitFunc{splitGPT2}
	splitsLlama3      = []splitFunc{splitLlama3}
	splitsQwen2       = []splitFunc{splitQwen2}
	splitsQwen35      = []splitFunc{splitQwen35}
	splitsKimiK2      = []splitFunc{splitKimiK2}
	splitsDeepSeekV3  = []splitFunc{splitDigits1to3, splitDeepSeekV3CJK, splitDeepSeekV3Words}
	splitsDeepSeekLLM = []splitFunc{
		splitNewlines, splitDeepSeekLLMLetters, splitDeepSeekLLMPunct,
		splitTrailingSpace, splitDeepSeekLLMCJK, splitNumbers,
	}
)

// preTokenizers maps tokenizer.ggml.pre to a pre-tokenizer, for the names
// whose llama.cpp regexes this package implements. Aliases llama.cpp
// treats identically are listed too.
var preTokenizers = func() map[string]preTokenizer {
	m := map[string]preTokenizer{}
	add := func(p preTokenizer, names ...string) {
		for _, n := range names {
			m[n] = p
		}
	}
	// clean_spaces is true for BPE vocabularies unless the name turns it off.
	add(preTokenizer{splits: splitsDefault, cleanSpaces: true}, "default")
	add(preTokenizer{splits: splitsLlama3, cleanSpaces: true, ignoreMerges: true, addBOS: true},
		"llama3", "llama-v3", "llama-bpe", "falcon3", "falcon-h1", "pixtral", "midm-2.0", "lfm2", "jina-v5-nano")
	add(preTokenizer{splits: splitsLlama3, cleanSpaces: true}, "dbrx", "smaug-bpe")
	add(preTokenizer{splits: splitsLlama3, cleanSpaces: true, noBOS: true}, "glm4", "chatglm-bpe")
	add(preTokenizer{splits: splitsDeepSeekLLM}, "deepseek-llm")
	add(preTokenizer{splits: splitsDeepSeekV3}, "deepseek-v3", "hunyuan-dense", "joyai-llm")
	add(preTokenizer{splits: splitsGPT2, cleanSpaces: true},
		"gpt-2", "phi-2", "jina-es", "jina-de", "gigachat", "jina-v2-es", "jina-v2-de", "a.x-4.0",
		"mellum", "modern-bert", "mpt", "olmo", "jais", "exaone4")
	add(preTokenizer{splits: splitsGPT2}, "trillion", "granite-docling")
	add(preTokenizer{splits: splitsQwen2}, "qwen2", "deepseek-r1-qwen", "kormo", "f2llmv2", "hunyuan", "solar-open")
	add(preTokenizer{splits: splitsQwen2, cleanSpaces: true}, "megrez", "stablelm2")
	add(preTokenizer{splits: splitsQwen35}, "qwen35")
	add(preTokenizer{splits: splitsKimiK2}, "kimi-k2")
	return m
}()

// SupportedPreTokenizers lists the tokenizer.ggml.pre names New accepts.
func SupportedPreTokenizers() []string {
	names := make([]string, 0, len(preTokenizers))
	for n := range preTokenizers {
		names = append(names, n)
	}
	sort.Strings(names)
	return names
}

func lookupPreTokenizer(name string) (preTokenizer, error) {
	if name == "" {
		// llama.cpp warns ("GENERATION QUALITY WILL BE DEGRADED") and uses the default.
		name = "default"
	}
	p, ok := preTokenizers[name]
	if !ok {
		return p, fmt.Errorf("%w: pre-tokenizer %q (tokenizer.ggml.pre); supported: %s",
			ErrUnsupported, name, strings.Join(SupportedPreTokenizers(), ", "))
	}
	return p, nil
}
