package grammar

import (
	"fmt"
	"strconv"
	"strings"
)

// regexToGBNF converts a JSON Schema "pattern" to a GBNF expression for
// the inside of a JSON string (the text between the quotes, with JSON's
// escaping). The pattern must match the whole string (a leading ^ and a
// trailing $ are optional). Supported: literals, escapes \d \D \w \W \s
// \S \. \\ \/ \- etc, \n \t \r, \uXXXX, ., classes [...] and [^...] with
// ranges, groups (...) and (?:...), alternation |, and the quantifiers
// * + ? {m} {m,} {m,n} (a trailing lazy ? is ignored). Not supported:
// backreferences, lookaround, named groups, anchors inside the pattern,
// Unicode classes \p{...}. Characters that JSON must escape (" \ and
// controls) are produced in their escaped form by literals and never by
// classes or "." .
func regexToGBNF(pattern string) (string, error) {
	p := &regexParser{src: []rune(pattern)}
	if len(p.src) > 0 && p.src[0] == '^' {
		p.pos++
	}
	if n := len(p.src); n > 0 && p.src[n-1] == '$' && (n < 2 || p.src[n-2] != '\\') {
		p.src = p.src[:n-1]
	}
	e, err := p.alternation()
	if err != nil {
		return "", err
	}
	if p.pos < len(p.src) {
		return "", fmt.Errorf("pattern %q: unexpected %q at %d", pattern, p.src[p.pos], p.pos)
	}
	if e == "" {
		e = `""`
	}
	return e, nil
}

type regexParser struct {
	src   []rune
	pos   int
	depth int
}

func (p *regexParser) more() bool { return p.pos < len(p.src) }

func (p *regexParser) alternation() (string, error) {
	var alts []string
	for {
		s, err := p.sequence()
		if err != nil {
			return "", err
		}
		if s == "" {
			s = `""`
		}
		alts = append(alts, s)
		if !p.more() || p.src[p.pos] != '|' {
			break
		}
		p.pos++
	}
	if len(alts) == 1 {
		return alts[0], nil
	}
	return "(" + strings.Join(alts, " | ") + ")", nil
}

func (p *regexParser) sequence() (string, error) {
	var parts []string
	for p.more() {
		c := p.src[p.pos]
		if c == '|' || c == ')' {
			break
		}
		atom, err := p.atom()
		if err != nil {
			return "", err
		}
		if atom, err = p.quantifier(atom); err != nil {
			return "", err
		}
		parts = append(parts, atom)
	}
	return strings.Join(parts, " "), nil
}

// plain is the class of characters JSON strings hold unescaped.
const plain = `"\\\x7F\x00-\x1F`

func (p *regexParser) atom() (string, error) {
	c := p.src[p.pos]
	p.pos++
	switch c {
	case '(':
		p.depth++
		if p.depth > maxNesting {
			return "", fmt.Errorf("pattern groups nested deeper than %d", maxNesting)
		}
		if p.pos+1 < len(p.src) && p.src[p.pos] == '?' {
			if p.src[p.pos+1] != ':' {
				return "", fmt.Errorf("pattern: (?%c is not supported (only (?:...))", p.src[p.pos+1])
			}
			p.pos += 2
		}
		e, err := p.alternation()
		if err != nil {
			return "", err
		}
		if !p.more() || p.src[p.pos] != ')' {
			return "", fmt.Errorf("pattern: unclosed group")
		}
		p.pos++
		p.depth--
		return "(" + e + ")", nil
	case '[':
		return p.class()
	case '.':
		return "[^\\n" + plain + "]", nil
	case '^', '$':
		return "", fmt.Errorf("pattern: anchor %q inside the pattern is not supported", c)
	case '*', '+', '?', '{':
		return "", fmt.Errorf("pattern: quantifier %q without a preceding item", c)
	case '\\':
		e, err := p.escaped()
		if err != nil {
			return "", err
		}
		switch e {
		case 'd':
			return "[0-9]", nil
		case 'D':
			return "[^0-9" + plain + "]", nil
		case 'w':
			return "[a-zA-Z0-9_]", nil
		case 'W':
			return "[^a-zA-Z0-9_" + plain + "]", nil
		case 's':
			return `(" " | "\\t" | "\\n" | "\\r")`, nil
		case 'S':
			return "[^ " + plain + "]", nil
		}
		r, err := p.escapedRune(e)
		if err != nil {
			return "", err
		}
		return literalRune(r), nil
	}
	return literalRune(c), nil
}

// escaped reads the character after a backslash.
func (p *regexParser) escaped() (rune, error) {
	if !p.more() {
		return 0, fmt.Errorf("pattern: escape at the end")
	}
	p.pos++
	return p.src[p.pos-1], nil
}

// escapedRune decodes the character of an escape \e (after the e).
func (p *regexParser) escapedRune(e rune) (rune, error) {
	switch e {
	case 'n':
		return '\n', nil
	case 't':
		return '\t', nil
	case 'r':
		return '\r', nil
	case 'f':
		return '\f', nil
	case 'v':
		return '\v', nil
	case 'u':
		if p.pos+4 > len(p.src) {
			return 0, fmt.Errorf("pattern: \\u needs 4 hex digits")
		}
		v, err := strconv.ParseUint(string(p.src[p.pos:p.pos+4]), 16, 32)
		if err != nil {
			return 0, fmt.Errorf("pattern: \\u needs 4 hex digits")
		}
		p.pos += 4
		return rune(v), nil
	}
	if e >= 'a' && e <= 'z' || e >= 'A' && e <= 'Z' || e >= '0' && e <= '9' {
		return 0, fmt.Errorf("pattern: escape \\%c is not supported", e)
	}
	return e, nil
}

// literalRune is a GBNF literal of r as it appears inside a JSON string.
func literalRune(r rune) string {
	switch r {
	case '"':
		return `"\\\""`
	case '\\':
		return `"\\\\"`
	case '\n':
		return `"\\n"`
	case '\t':
		return `"\\t"`
	case '\r':
		return `"\\r"`
	}
	if r < 0x20 || r == 0x7f {
		return quoteLiteral(fmt.Sprintf(`\u%04x`, r))
	}
	return quoteLiteral(string(r))
}

// class converts [...] (after the [) to a GBNF class of plain characters.
func (p *regexParser) class() (string, error) {
	neg := false
	if p.more() && p.src[p.pos] == '^' {
		neg = true
		p.pos++
	}
	var b strings.Builder
	first := true
	for {
		if !p.more() {
			return "", fmt.Errorf("pattern: unclosed character class")
		}
		c := p.src[p.pos]
		if c == ']' && !first {
			p.pos++
			break
		}
		first = false
		p.pos++
		lo := c
		if c == '\\' {
			e, err := p.escaped()
			if err != nil {
				return "", err
			}
			switch e {
			case 'd':
				b.WriteString("0-9")
				continue
			case 'w':
				b.WriteString("a-zA-Z0-9_")
				continue
			case 's':
				b.WriteString(" ")
				continue
			case 'D', 'W', 'S':
				return "", fmt.Errorf("pattern: \\%c inside a class is not supported", e)
			}
			if lo, err = p.escapedRune(e); err != nil {
				return "", err
			}
		}
		hi := lo
		if p.pos+1 < len(p.src) && p.src[p.pos] == '-' && p.src[p.pos+1] != ']' {
			p.pos++
			hi = p.src[p.pos]
			p.pos++
			if hi == '\\' {
				e, err := p.escaped()
				if err != nil {
					return "", err
				}
				if hi, err = p.escapedRune(e); err != nil {
					return "", err
				}
			}
			if hi < lo {
				return "", fmt.Errorf("pattern: reversed range %q-%q", lo, hi)
			}
		}
		for _, r := range plainRanges(lo, hi) {
			b.WriteString(classChar(r.lo))
			if r.hi != r.lo {
				b.WriteByte('-')
				b.WriteString(classChar(r.hi))
			}
		}
	}
	if neg {
		return "[^" + b.String() + plain + "]", nil
	}
	if b.Len() == 0 {
		return "", fmt.Errorf("pattern: the class holds only characters that JSON must escape")
	}
	return "[" + b.String() + "]", nil
}

// plainRanges is lo..hi without the characters JSON escapes.
func plainRanges(lo, hi rune) []runeRange {
	out := []runeRange{{lo, hi}}
	for _, x := range []runeRange{{0, 0x1f}, {'"', '"'}, {'\\', '\\'}, {0x7f, 0x7f}} {
		var next []runeRange
		for _, r := range out {
			if x.hi < r.lo || x.lo > r.hi {
				next = append(next, r)
				continue
			}
			if r.lo < x.lo {
				next = append(next, runeRange{r.lo, x.lo - 1})
			}
			if r.hi > x.hi {
				next = append(next, runeRange{x.hi + 1, r.hi})
			}
		}
		out = next
	}
	return out
}

func (p *regexParser) quantifier(atom string) (string, error) {
	if !p.more() {
		return atom, nil
	}
	q := ""
	switch c := p.src[p.pos]; c {
	case '*', '+', '?':
		q = string(c)
		p.pos++
	case '{':
		end := p.pos + 1
		for end < len(p.src) && p.src[end] != '}' {
			end++
		}
		if end == len(p.src) {
			return "", fmt.Errorf("pattern: unclosed {")
		}
		body := string(p.src[p.pos+1 : end])
		lo, hi, comma := strings.Cut(body, ",")
		m, err := strconv.Atoi(strings.TrimSpace(lo))
		if err != nil || m > maxRepeat {
			return "", fmt.Errorf("pattern: bad repetition {%s}", body)
		}
		if comma && strings.TrimSpace(hi) != "" {
			n, err := strconv.Atoi(strings.TrimSpace(hi))
			if err != nil || n > maxRepeat || n < m {
				return "", fmt.Errorf("pattern: bad repetition {%s}", body)
			}
		}
		q = "{" + body + "}"
		p.pos = end + 1
	default:
		return atom, nil
	}
	if p.more() && p.src[p.pos] == '?' {
		p.pos++ // lazy: same language
	}
	return "(" + atom + ")" + q, nil
}
