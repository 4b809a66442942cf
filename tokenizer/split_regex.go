package tokenizer

// The splitters in this file stand for the pre-tokenizer regexes that
// llama.cpp runs through std::regex (unicode_regex_split_stl): every match
// is a word and so is every gap between matches. Regexes with \p{..}
// classes run on a "collapsed" text in which a non-ASCII code point is a
// byte naming its category (codepoints.collapsed); on that text the class
// tests below reduce to the code point flags. Regexes without \p{..} run
// on the code points (std::wregex), non-ASCII whitespace turned into \v
// (codepoints.wide). std::regex's \s is C's isspace: the six ASCII spaces,
// which with the \v substitution is exactly flagWhitespace.

// runs splits [start, end) into maximal runs of code points for which in
// is true, and the gaps between them: the words of "[class]+".
func runs(c *codepoints, start, end int, out []int, in func(i int) bool) []int {
	for pos := start; pos < end; {
		isIn := in(pos)
		for pos++; pos < end && in(pos) == isIn; pos++ {
		}
		out = append(out, pos)
	}
	return out
}

// splitMatches splits [start, end) into the leftmost matches of a regex
// and the gaps between them. match returns the end of a match at pos, or
// -1 if none starts there.
func splitMatches(c *codepoints, start, end int, out []int, match func(pos int) int) []int {
	gap := start
	for pos := start; pos < end; {
		c.work++
		q := match(pos)
		if q < 0 {
			pos++
			continue
		}
		if pos > gap {
			out = append(out, pos)
		}
		out = append(out, q)
		pos, gap = q, q
	}
	if gap < end {
		out = append(out, end)
	}
	return out
}

// splitNumbers is \p{N}+.
func splitNumbers(c *codepoints, start, end int, out []int) []int {
	return runs(c, start, end, out, func(i int) bool { return c.flags[i]&flagNumber != 0 })
}

// splitDefaultPunct is [\p{P}\$\+<=>\^~\|]+ (llama.cpp's default BPE
// pre-tokenizer).
func splitDefaultPunct(c *codepoints, start, end int, out []int) []int {
	return runs(c, start, end, out, func(i int) bool {
		switch c.cpts[i] {
		case '$', '+', '<', '=', '>', '^', '~', '|':
			return true
		}
		return c.flags[i]&flagPunct != 0
	})
}

func isASCIIDigit(r rune) bool { return r >= '0' && r <= '9' }

// splitASCIIDigits3 is [0-9][0-9][0-9].
func splitASCIIDigits3(c *codepoints, start, end int, out []int) []int {
	return splitMatches(c, start, end, out, func(pos int) int {
		if pos+3 <= end && isASCIIDigit(c.cpts[pos]) && isASCIIDigit(c.cpts[pos+1]) && isASCIIDigit(c.cpts[pos+2]) {
			return pos + 3
		}
		return -1
	})
}

// splitDigits1to3 is \p{N}{1,3}: digit runs in groups of three from the left.
func splitDigits1to3(c *codepoints, start, end int, out []int) []int {
	return splitMatches(c, start, end, out, func(pos int) int {
		n := 0
		for n < 3 && pos+n < end && c.flags[pos+n]&flagNumber != 0 {
			n++
		}
		if n == 0 {
			return -1
		}
		return pos + n
	})
}

// splitDeepSeekV3CJK is [一-龥぀-ゟ゠-ヿ]+.
func splitDeepSeekV3CJK(c *codepoints, start, end int, out []int) []int {
	return splitMatches(c, start, end, out, func(pos int) int {
		q := pos
		for q < end && isDeepSeekV3CJK(c.wide(q)) {
			q++
		}
		if q == pos {
			return -1
		}
		return q
	})
}

func isDeepSeekV3CJK(r rune) bool {
	return r >= 0x4E00 && r <= 0x9FA5 || r >= 0x3040 && r <= 0x30FF
}

// isASCIIPunct is [!"#$%&'()*+,\-./:;<=>?@\[\\\]^_`{|}~].
func isASCIIPunct(r rune) bool {
	return r >= 0x21 && r <= 0x2F || r >= 0x3A && r <= 0x40 || r >= 0x5B && r <= 0x60 || r >= 0x7B && r <= 0x7E
}

func isASCIILetter(r rune) bool { return r >= 'A' && r <= 'Z' || r >= 'a' && r <= 'z' }

// splitDeepSeekV3Words is DeepSeek-V3's word regex:
//
//	[!"#$%&'()*+,\-./:;<=>?@\[\\\]^_`{|}~][A-Za-z]+
//	|[^\r\n\p{L}\p{P}\p{S}]?[\p{L}\p{M}]+
//	| ?[\p{P}\p{S}]+[\r\n]*
//	|\s*[\r\n]+|\s+(?!\S)|\s+
func splitDeepSeekV3Words(c *codepoints, start, end int, out []int) []int {
	const letterMark = flagLetter | flagMark
	const punctSymbol = flagPunct | flagSymbol
	run := func(pos int, class cptFlags) int {
		for pos < end && c.flags[pos]&class != 0 {
			pos++
		}
		return pos
	}
	return splitMatches(c, start, end, out, func(pos int) int {
		r, f := c.cpts[pos], c.flags[pos]
		next := c.fl(pos+1, start, end)
		// [punct][A-Za-z]+
		if isASCIIPunct(r) && pos+1 < end && isASCIILetter(c.cpts[pos+1]) {
			q := pos + 2
			for q < end && isASCIILetter(c.cpts[q]) {
				q++
			}
			return q
		}
		// [^\r\n\p{L}\p{P}\p{S}]?[\p{L}\p{M}]+
		if r != '\r' && r != '\n' && f&(flagLetter|punctSymbol) == 0 && next&letterMark != 0 {
			return run(pos+1, letterMark)
		}
		if f&letterMark != 0 {
			return run(pos, letterMark)
		}
		// ?[\p{P}\p{S}]+[\r\n]*
		if r == ' ' && next&punctSymbol != 0 {
			return skipNewlines(c, run(pos+1, punctSymbol), end)
		}
		if f&punctSymbol != 0 {
			return skipNewlines(c, run(pos, punctSymbol), end)
		}
		if f&flagWhitespace == 0 {
			return -1
		}
		return whitespaceEnd(c, pos, start, end, true)
	})
}

// splitNewlines is [\r\n]: every CR and LF alone.
func splitNewlines(c *codepoints, start, end int, out []int) []int {
	return splitMatches(c, start, end, out, func(pos int) int {
		if r := c.cpts[pos]; r == '\r' || r == '\n' {
			return pos + 1
		}
		return -1
	})
}

// deepSeekLLMLetters is the class of DeepSeek-LLM's \s?[A-Za-zµÀ-ÖØ-ö...]+
// (llama-vocab.cpp, LLAMA_VOCAB_PRE_TYPE_DEEPSEEK_LLM), as code point ranges.
var deepSeekLLMLetters = [][2]rune{
	{0x41, 0x5A}, {0x61, 0x7A}, {0xB5, 0xB5}, {0xC0, 0xD6}, {0xD8, 0xF6}, {0xF8, 0x1BA},
	{0x1BC, 0x1BF}, {0x1C4, 0x293}, {0x295, 0x2AF}, {0x370, 0x373}, {0x376, 0x377},
	{0x37B, 0x37D}, {0x37F, 0x37F}, {0x386, 0x386}, {0x388, 0x38A}, {0x38C, 0x38C},
	{0x38E, 0x3A1}, {0x3A3, 0x3F5}, {0x3F7, 0x481}, {0x48A, 0x52F}, {0x531, 0x556},
	{0x10A0, 0x10C5}, {0x13A0, 0x13F5}, {0x13F8, 0x13FD}, {0x1C90, 0x1CBA}, {0x1CBD, 0x1CBF},
	{0x1D00, 0x1D2B}, {0x1D6B, 0x1D77}, {0x1D79, 0x1D9A}, {0x1E00, 0x1F15}, {0x1F18, 0x1F1D},
	{0x1F20, 0x1F45}, {0x1F48, 0x1F4D}, {0x1F50, 0x1F57}, {0x1F59, 0x1F59}, {0x1F5B, 0x1F5B},
	{0x1F5D, 0x1F5D}, {0x1F5F, 0x1F7D}, {0x1F80, 0x1FB4}, {0x1FB6, 0x1FBC}, {0x1FBE, 0x1FBE},
	{0x1FC2, 0x1FC4}, {0x1FC6, 0x1FCC}, {0x1FD0, 0x1FD3}, {0x1FD6, 0x1FDB}, {0x1FE0, 0x1FEC},
	{0x1FF2, 0x1FF4}, {0x1FF6, 0x1FFC}, {0x2102, 0x2102}, {0x2107, 0x2107}, {0x210A, 0x2113},
	{0x2115, 0x2115}, {0x2119, 0x211D}, {0x2124, 0x2124}, {0x2126, 0x2126}, {0x2128, 0x2128},
	{0x212A, 0x212D}, {0x212F, 0x2134}, {0x2139, 0x2139}, {0x213C, 0x213F}, {0x2145, 0x2149},
	{0x214E, 0x214E}, {0x2183, 0x2184}, {0x2C00, 0x2C7B}, {0x2C7E, 0x2CE4}, {0x2CEB, 0x2CEE},
	{0x2CF2, 0x2CF3}, {0xA640, 0xA66D}, {0xA680, 0xA69B}, {0xA722, 0xA76F}, {0xA771, 0xA787},
	{0xA78B, 0xA78E}, {0xAB70, 0xABBF}, {0xFB00, 0xFB06}, {0xFB13, 0xFB17}, {0xFF21, 0xFF3A},
	{0xFF41, 0xFF5A}, {0x10400, 0x1044F}, {0x104B0, 0x104D3}, {0x104D8, 0x104FB},
	{0x10C80, 0x10CB2}, {0x10CC0, 0x10CF2}, {0x118A0, 0x118DF}, {0x1E900, 0x1E943},
}

func inRanges(r rune, ranges [][2]rune) bool {
	for _, rg := range ranges {
		if r >= rg[0] && r <= rg[1] {
			return true
		}
	}
	return false
}

// deepSeekLLMPunct is the class of \s?[!-/:-~！-／：-～‘-‟　-。]+.
var deepSeekLLMPunct = [][2]rune{
	{0x21, 0x2F}, {0x3A, 0x7E}, {0xFF01, 0xFF0F}, {0xFF1A, 0xFF5E}, {0x2018, 0x201F}, {0x3000, 0x3002},
}

// optSpaceRun matches \s?[class]+ at pos on the wide code points.
func optSpaceRun(c *codepoints, pos, end int, class [][2]rune) int {
	q := pos
	if c.flags[q]&flagWhitespace != 0 && q+1 < end && inRanges(c.wide(q+1), class) {
		q++
	}
	n := q
	for n < end && inRanges(c.wide(n), class) {
		n++
	}
	if n == q {
		return -1
	}
	return n
}

// splitDeepSeekLLMLetters is \s?[A-Za-zµÀ-ÖØ-ö...]+.
func splitDeepSeekLLMLetters(c *codepoints, start, end int, out []int) []int {
	return splitMatches(c, start, end, out, func(pos int) int { return optSpaceRun(c, pos, end, deepSeekLLMLetters) })
}

// splitDeepSeekLLMPunct is \s?[!-/:-~！-／：-～‘-‟　-。]+.
func splitDeepSeekLLMPunct(c *codepoints, start, end int, out []int) []int {
	return splitMatches(c, start, end, out, func(pos int) int { return optSpaceRun(c, pos, end, deepSeekLLMPunct) })
}

// splitTrailingSpace is \s+$: the whitespace that ends the range.
func splitTrailingSpace(c *codepoints, start, end int, out []int) []int {
	q := end
	for q > start && c.flags[q-1]&flagWhitespace != 0 {
		q--
	}
	if q > start {
		out = append(out, q)
	}
	if q < end {
		out = append(out, end)
	}
	return out
}

// splitDeepSeekLLMCJK is [一-龥ࠀ-一가-퟿]+.
func splitDeepSeekLLMCJK(c *codepoints, start, end int, out []int) []int {
	return splitMatches(c, start, end, out, func(pos int) int {
		q := pos
		for q < end {
			r := c.wide(q)
			if !(r >= 0x4E00 && r <= 0x9FA5 || r >= 0x800 && r <= 0x4E00 || r >= 0xAC00 && r <= 0xD7FF) {
				break
			}
			q++
		}
		if q == pos {
			return -1
		}
		return q
	})
}
