package grammar

import (
	"errors"
	"fmt"
	"strconv"
	"unicode/utf8"
)

// ErrSyntax is wrapped by every error Parse returns for a malformed
// grammar; the message names line:column and the problem.
var ErrSyntax = errors.New("grammar")

// Limits of what Parse accepts, so a hostile grammar cannot exhaust
// memory or the goroutine stack.
const (
	maxSource   = 1 << 20 // bytes of grammar text
	maxNesting  = 200     // nested groups
	maxRepeat   = 10000   // the m and n of {m,n}
	maxElements = 1 << 20 // compiled elements in all rules
)

// exprKind says what an expression node is.
type exprKind uint8

const (
	exprAlt   exprKind = iota // sub are the alternatives
	exprSeq                   // sub are in sequence
	exprLit                   // runes
	exprSet                   // set
	exprAny                   // any code point
	exprRef                   // name
	exprRep                   // sub[0] repeated min..max times (max < 0: unbounded)
	exprToken                 // one token: min is its id, or name its text (-1)
)

// expr is a node of a parsed rule body.
type expr struct {
	kind     exprKind
	sub      []*expr
	runes    []rune
	set      charSet
	name     string
	min, max int
	line     int
	col      int
}

// ruleDef is one parsed `name ::= body`.
type ruleDef struct {
	name      string
	body      *expr
	line, col int
}

// parser reads GBNF text.
type parser struct {
	src   string
	pos   int
	line  int
	col   int
	depth int
}

func (p *parser) errorf(format string, args ...any) error {
	return fmt.Errorf("%w: %d:%d: %s", ErrSyntax, p.line, p.col, fmt.Sprintf(format, args...))
}

func (p *parser) eof() bool { return p.pos >= len(p.src) }

func (p *parser) peek() byte {
	if p.eof() {
		return 0
	}
	return p.src[p.pos]
}

// advance moves past n bytes, keeping line and column (in code points).
func (p *parser) advance(n int) {
	for i := 0; i < n && p.pos < len(p.src); {
		c := p.src[p.pos]
		if c == '\n' {
			p.line++
			p.col = 1
			p.pos++
			i++
			continue
		}
		_, sz := utf8.DecodeRuneInString(p.src[p.pos:])
		p.pos += sz
		i += sz
		p.col++
	}
}

// space skips blanks and comments; newlines too when newlineOK.
func (p *parser) space(newlineOK bool) {
	for !p.eof() {
		switch c := p.peek(); {
		case c == ' ' || c == '\t':
			p.advance(1)
		case c == '#':
			for !p.eof() && p.peek() != '\n' && p.peek() != '\r' {
				p.advance(1)
			}
		case (c == '\n' || c == '\r') && newlineOK:
			p.advance(1)
		default:
			return
		}
	}
}

func isWordChar(c byte) bool {
	return c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '-' || c == '_'
}

func (p *parser) name() string {
	start := p.pos
	for !p.eof() && isWordChar(p.peek()) {
		p.advance(1)
	}
	return p.src[start:p.pos]
}

// parseRules reads a whole grammar.
func parseRules(src string) ([]ruleDef, error) {
	if len(src) > maxSource {
		return nil, fmt.Errorf("%w: grammar of %d bytes is larger than the limit of %d", ErrSyntax, len(src), maxSource)
	}
	if !utf8.ValidString(src) {
		return nil, fmt.Errorf("%w: grammar is not valid UTF-8", ErrSyntax)
	}
	p := &parser{src: src, line: 1, col: 1}
	var rules []ruleDef
	p.space(true)
	for !p.eof() {
		line, col := p.line, p.col
		n := p.name()
		if n == "" {
			return nil, p.errorf("expected a rule name, found %s", p.describe())
		}
		p.space(false)
		if !hasPrefixAt(p.src, p.pos, "::=") {
			return nil, p.errorf("expected ::= after rule name %q, found %s", n, p.describe())
		}
		p.advance(3)
		p.space(true)
		body, err := p.alternates(false)
		if err != nil {
			return nil, err
		}
		rules = append(rules, ruleDef{name: n, body: body, line: line, col: col})
		if !p.eof() && p.peek() != '\n' && p.peek() != '\r' && !p.atRuleStart() {
			return nil, p.errorf("expected the end of rule %q, found %s", n, p.describe())
		}
		p.space(true)
	}
	return rules, nil
}

// atRuleStart reports whether `name ::=` starts here (a rule whose last
// alternative was empty, `a ::= "x" |`, ends where the next one starts).
func (p *parser) atRuleStart() bool {
	save := *p
	defer func() { *p = save }()
	if p.name() == "" {
		return false
	}
	p.space(false)
	return hasPrefixAt(p.src, p.pos, "::=")
}

func hasPrefixAt(s string, i int, prefix string) bool {
	return len(s)-i >= len(prefix) && s[i:i+len(prefix)] == prefix
}

// describe names what is at the current position for an error.
func (p *parser) describe() string {
	if p.eof() {
		return "the end of the grammar"
	}
	r, _ := utf8.DecodeRuneInString(p.src[p.pos:])
	switch r {
	case '\n', '\r':
		return "the end of the line"
	}
	return strconv.QuoteRune(r)
}

func (p *parser) alternates(nested bool) (*expr, error) {
	alt := &expr{kind: exprAlt, line: p.line, col: p.col}
	for {
		seq, err := p.sequence(nested)
		if err != nil {
			return nil, err
		}
		alt.sub = append(alt.sub, seq)
		if !nested && (p.peek() == '\n' || p.peek() == '\r') {
			// An alternative may continue on the next line when that line
			// starts with |.
			save := *p
			p.space(true)
			if p.peek() != '|' {
				*p = save
			}
		}
		if p.peek() != '|' {
			break
		}
		p.advance(1)
		p.space(true)
	}
	return alt, nil
}

func (p *parser) sequence(nested bool) (*expr, error) {
	seq := &expr{kind: exprSeq, line: p.line, col: p.col}
	for !p.eof() {
		line, col := p.line, p.col
		c := p.peek()
		var e *expr
		switch {
		case c == '"':
			p.advance(1)
			var rs []rune
			for {
				if p.eof() || p.peek() == '\n' || p.peek() == '\r' {
					return nil, fmt.Errorf("%w: %d:%d: unterminated string literal", ErrSyntax, line, col)
				}
				if p.peek() == '"' {
					p.advance(1)
					break
				}
				r, err := p.char()
				if err != nil {
					return nil, err
				}
				rs = append(rs, r)
			}
			e = &expr{kind: exprLit, runes: rs}
		case c == '[':
			p.advance(1)
			set, err := p.charClass(line, col)
			if err != nil {
				return nil, err
			}
			e = &expr{kind: exprSet, set: set}
		case c == '.':
			p.advance(1)
			e = &expr{kind: exprAny}
		case c == '(':
			p.advance(1)
			p.depth++
			if p.depth > maxNesting {
				return nil, p.errorf("groups nested deeper than %d", maxNesting)
			}
			p.space(true)
			inner, err := p.alternates(true)
			if err != nil {
				return nil, err
			}
			if p.peek() != ')' {
				return nil, fmt.Errorf("%w: %d:%d: group opened here is not closed (found %s at %d:%d)", ErrSyntax, line, col, p.describe(), p.line, p.col)
			}
			p.advance(1)
			p.depth--
			e = inner
		case isWordChar(c):
			save := *p
			n := p.name()
			p.space(false)
			if hasPrefixAt(p.src, p.pos, "::=") {
				// The next rule starts: this sequence ended at a line break
				// inside a group or after `|`.
				*p = save
				if nested {
					return nil, fmt.Errorf("%w: %d:%d: rule %q defined inside an unclosed group", ErrSyntax, line, col, n)
				}
				return seq, nil
			}
			*p = save
			p.name()
			e = &expr{kind: exprRef, name: n}
		case c == '<' || c == '!' && p.pos+1 < len(p.src) && p.src[p.pos+1] == '<':
			if c == '!' {
				return nil, p.errorf("negated token references (!<...>) are not supported")
			}
			var err error
			if e, err = p.token(line, col); err != nil {
				return nil, err
			}
		case c == '*' || c == '+' || c == '?' || c == '{':
			if len(seq.sub) == 0 {
				return nil, p.errorf("repetition %q without a preceding item", string(c))
			}
			last := seq.sub[len(seq.sub)-1]
			min, max := 0, -1
			switch c {
			case '*':
				p.advance(1)
			case '+':
				min = 1
				p.advance(1)
			case '?':
				max = 1
				p.advance(1)
			case '{':
				var err error
				if min, max, err = p.braces(); err != nil {
					return nil, err
				}
			}
			seq.sub[len(seq.sub)-1] = &expr{kind: exprRep, sub: []*expr{last}, min: min, max: max, line: line, col: col}
			p.space(nested)
			continue
		case c == '|' || c == ')' || c == '\n' || c == '\r':
			if c == ')' && !nested {
				return nil, p.errorf("unexpected ) without an open group")
			}
			return seq, nil
		default:
			return nil, p.errorf("unexpected %s", p.describe())
		}
		e.line, e.col = line, col
		seq.sub = append(seq.sub, e)
		p.space(nested)
	}
	return seq, nil
}

// token reads <[id]> or <text> (a token by its text, such as <think>).
func (p *parser) token(line, col int) (*expr, error) {
	end := p.pos + 1
	for end < len(p.src) && p.src[end] != '>' && p.src[end] != '\n' {
		end++
	}
	if end >= len(p.src) || p.src[end] != '>' || end == p.pos+1 {
		return nil, fmt.Errorf("%w: %d:%d: token reference needs <[id]> or <text>", ErrSyntax, line, col)
	}
	body := p.src[p.pos+1 : end]
	e := &expr{kind: exprToken, min: -1}
	if len(body) > 2 && body[0] == '[' && body[len(body)-1] == ']' {
		id, err := strconv.ParseInt(body[1:len(body)-1], 10, 32)
		if err != nil || id < 0 {
			return nil, fmt.Errorf("%w: %d:%d: token id %q is not a non-negative number", ErrSyntax, line, col, body[1:len(body)-1])
		}
		e.min = int(id)
	} else {
		e.name = "<" + body + ">"
	}
	p.advance(end + 1 - p.pos)
	return e, nil
}

// braces reads {m}, {m,} or {m,n}.
func (p *parser) braces() (int, int, error) {
	line, col := p.line, p.col
	p.advance(1)
	p.space(false)
	num := func() (int, bool, error) {
		start := p.pos
		for !p.eof() && p.peek() >= '0' && p.peek() <= '9' {
			p.advance(1)
		}
		if start == p.pos {
			return 0, false, nil
		}
		v, err := strconv.Atoi(p.src[start:p.pos])
		if err != nil || v > maxRepeat {
			return 0, false, fmt.Errorf("%w: %d:%d: repetition count %s is larger than the limit of %d", ErrSyntax, line, col, p.src[start:p.pos], maxRepeat)
		}
		return v, true, nil
	}
	m, ok, err := num()
	if err != nil {
		return 0, 0, err
	}
	if !ok {
		return 0, 0, p.errorf("expected a number in repetition {m,n}")
	}
	p.space(false)
	n := m
	if p.peek() == ',' {
		p.advance(1)
		p.space(false)
		var has bool
		if n, has, err = num(); err != nil {
			return 0, 0, err
		}
		if !has {
			n = -1
		}
		p.space(false)
	}
	if p.peek() != '}' {
		return 0, 0, p.errorf("expected } to close the repetition opened at %d:%d, found %s", line, col, p.describe())
	}
	p.advance(1)
	if n >= 0 && n < m {
		return 0, 0, fmt.Errorf("%w: %d:%d: repetition {%d,%d} has its maximum below its minimum", ErrSyntax, line, col, m, n)
	}
	return m, n, nil
}

// char reads one possibly escaped character of a literal or class.
func (p *parser) char() (rune, error) {
	line, col := p.line, p.col
	if p.peek() != '\\' {
		r, sz := utf8.DecodeRuneInString(p.src[p.pos:])
		p.advance(sz)
		return r, nil
	}
	p.advance(1)
	if p.eof() {
		return 0, p.errorf("escape at the end of the grammar")
	}
	c := p.peek()
	p.advance(1)
	digits := 0
	switch c {
	case 'x':
		digits = 2
	case 'u':
		digits = 4
	case 'U':
		digits = 8
	case 'n':
		return '\n', nil
	case 'r':
		return '\r', nil
	case 't':
		return '\t', nil
	case '\\', '"', '[', ']', '-', '^':
		return rune(c), nil
	default:
		return 0, fmt.Errorf("%w: %d:%d: unknown escape \\%c", ErrSyntax, line, col, c)
	}
	var v rune
	for i := 0; i < digits; i++ {
		d := p.peek()
		var x byte
		switch {
		case d >= '0' && d <= '9':
			x = d - '0'
		case d >= 'a' && d <= 'f':
			x = d - 'a' + 10
		case d >= 'A' && d <= 'F':
			x = d - 'A' + 10
		default:
			return 0, fmt.Errorf("%w: %d:%d: escape \\%c needs %d hex digits", ErrSyntax, line, col, c, digits)
		}
		v = v<<4 | rune(x)
		p.advance(1)
	}
	if v > utf8.MaxRune {
		return 0, fmt.Errorf("%w: %d:%d: escape \\%c%08X is beyond U+10FFFF", ErrSyntax, line, col, c, v)
	}
	return v, nil
}

// charClass reads the rest of [...] after the [.
func (p *parser) charClass(line, col int) (charSet, error) {
	var set charSet
	if p.peek() == '^' {
		set.neg = true
		p.advance(1)
	}
	for {
		if p.eof() || p.peek() == '\n' || p.peek() == '\r' {
			return set, fmt.Errorf("%w: %d:%d: unterminated character class", ErrSyntax, line, col)
		}
		if p.peek() == ']' {
			p.advance(1)
			break
		}
		lo, err := p.char()
		if err != nil {
			return set, err
		}
		hi := lo
		if p.peek() == '-' && p.pos+1 < len(p.src) && p.src[p.pos+1] != ']' {
			p.advance(1)
			if hi, err = p.char(); err != nil {
				return set, err
			}
			if hi < lo {
				return set, p.errorf("character range %q-%q is reversed", lo, hi)
			}
		}
		set.ranges = append(set.ranges, runeRange{lo, hi})
	}
	return set, nil
}
