package grammar

import (
	"fmt"
	"strings"
)

// runeRange is the closed range lo..hi of code points.
type runeRange struct{ lo, hi rune }

// charSet is a character class: the union of its ranges, or its
// complement when neg.
type charSet struct {
	neg    bool
	ranges []runeRange
	ascii  [2]uint64 // membership of the code points 0..127, computed by seal
}

// seal fills the ASCII bitmap.
func (s *charSet) seal() {
	s.ascii = [2]uint64{}
	for c := rune(0); c < 128; c++ {
		if s.slowMatch(c) {
			s.ascii[c>>6] |= 1 << (c & 63)
		}
	}
}

func (s *charSet) slowMatch(r rune) bool {
	in := false
	for _, g := range s.ranges {
		if r >= g.lo && r <= g.hi {
			in = true
			break
		}
	}
	return in != s.neg
}

func (s *charSet) match(r rune) bool {
	if r < 128 {
		return s.ascii[r>>6]&(1<<(r&63)) != 0
	}
	return s.slowMatch(r)
}

// intersects reports whether some code point in lo..hi is in the set.
func (s *charSet) intersects(lo, hi rune) bool {
	if !s.neg {
		for _, g := range s.ranges {
			if g.lo <= hi && lo <= g.hi {
				return true
			}
		}
		return false
	}
	// A negated set misses lo..hi only if its ranges cover it; checking
	// whether any single range covers it is enough for the classes seen in
	// practice, and erring towards true only keeps a partial UTF-8 token.
	for _, g := range s.ranges {
		if g.lo <= lo && hi <= g.hi {
			return false
		}
	}
	return true
}

// opKind is the kind of one compiled element.
type opKind uint8

const (
	opEnd   opKind = iota // end of a rule
	opAlt                 // end of one alternative, another follows
	opRef                 // val: rule index
	opLit                 // val: the code point
	opSet                 // val: index in Grammar.sets
	opAny                 // any code point
	opToken               // val: one token id (matched by AcceptToken, never by text)
)

// elem is one element of a compiled rule.
type elem struct {
	kind opKind
	val  int32
}

// Grammar is a compiled grammar: immutable, safe for concurrent use by
// any number of Matchers.
type Grammar struct {
	prog  []elem
	alts  [][]int32 // per rule, the position of each alternative's first element
	names []string
	sets  []charSet
	root  int32
	// hasTokens says some rule has a <[id]> element.
	hasTokens bool
}

// Parse compiles GBNF text (llama.cpp's grammar syntax) whose start rule
// is "root". Errors wrap ErrSyntax and name line:column. Token
// references by id (<[id]>) are kept as ids; by text (<think>) they need
// ParseForVocab.
func Parse(src string) (*Grammar, error) { return ParseForVocab(src, nil) }

// ParseForVocab is Parse resolving token references by text (<think>)
// in v, and checking ids against its size.
func ParseForVocab(src string, v *Vocab) (*Grammar, error) {
	defs, err := parseRules(src)
	if err != nil {
		return nil, err
	}
	return compile(defs, v)
}

// compiler turns parsed rules into a Grammar.
type compiler struct {
	g      *Grammar
	ids    map[string]int32
	bodies [][]elem
	gen    map[string]int
	vocab  *Vocab
}

func compile(defs []ruleDef, v *Vocab) (*Grammar, error) {
	c := &compiler{g: &Grammar{}, ids: map[string]int32{}, gen: map[string]int{}, vocab: v}
	for _, d := range defs {
		if _, dup := c.ids[d.name]; dup {
			return nil, fmt.Errorf("%w: %d:%d: rule %q is defined twice", ErrSyntax, d.line, d.col, d.name)
		}
		c.newRule(d.name)
	}
	root, ok := c.ids["root"]
	if !ok {
		return nil, fmt.Errorf("%w: the grammar has no rule named root", ErrSyntax)
	}
	c.g.root = root
	for _, d := range defs {
		body, err := c.alternatives(d.name, d.body)
		if err != nil {
			return nil, err
		}
		c.bodies[c.ids[d.name]] = body
	}
	total := 0
	for _, b := range c.bodies {
		total += len(b)
	}
	if total > maxElements {
		return nil, fmt.Errorf("%w: the grammar expands to %d elements, more than the limit of %d (large repetition counts?)", ErrSyntax, total, maxElements)
	}
	g := c.g
	g.prog = make([]elem, 0, total)
	g.alts = make([][]int32, len(c.bodies))
	for r, b := range c.bodies {
		start := int32(len(g.prog))
		g.alts[r] = append(g.alts[r], start)
		for i, e := range b {
			g.prog = append(g.prog, e)
			if e.kind == opAlt {
				g.alts[r] = append(g.alts[r], start+int32(i)+1)
			}
		}
	}
	for i := range g.sets {
		g.sets[i].seal()
	}
	if err := g.checkLeftRecursion(); err != nil {
		return nil, err
	}
	return g, nil
}

func (c *compiler) newRule(name string) int32 {
	id := int32(len(c.g.names))
	c.ids[name] = id
	c.g.names = append(c.g.names, name)
	c.bodies = append(c.bodies, nil)
	return id
}

// genRule adds a generated rule named after its parent.
func (c *compiler) genRule(parent string, body []elem) int32 {
	for {
		c.gen[parent]++
		name := fmt.Sprintf("%s-%d", parent, c.gen[parent])
		if _, taken := c.ids[name]; !taken {
			id := c.newRule(name)
			c.bodies[id] = body
			return id
		}
	}
}

// alternatives compiles an exprAlt (or any expression) as a rule body.
func (c *compiler) alternatives(rule string, e *expr) ([]elem, error) {
	alts := []*expr{e}
	if e.kind == exprAlt {
		alts = e.sub
	}
	var body []elem
	for i, a := range alts {
		if i > 0 {
			body = append(body, elem{kind: opAlt})
		}
		var err error
		if body, err = c.sequence(rule, a, body); err != nil {
			return nil, err
		}
		if len(body) > maxElements {
			return nil, fmt.Errorf("%w: rule %q expands to more than %d elements", ErrSyntax, rule, maxElements)
		}
	}
	return append(body, elem{kind: opEnd}), nil
}

// sequence appends the elements of e inline.
func (c *compiler) sequence(rule string, e *expr, out []elem) ([]elem, error) {
	var err error
	switch e.kind {
	case exprSeq:
		for _, s := range e.sub {
			if out, err = c.sequence(rule, s, out); err != nil {
				return nil, err
			}
		}
	case exprAlt:
		if len(e.sub) == 1 {
			return c.sequence(rule, e.sub[0], out)
		}
		body, err := c.alternatives(rule, e)
		if err != nil {
			return nil, err
		}
		out = append(out, elem{kind: opRef, val: c.genRule(rule, body)})
	case exprLit:
		for _, r := range e.runes {
			out = append(out, elem{kind: opLit, val: r})
		}
	case exprSet:
		out = append(out, elem{kind: opSet, val: int32(len(c.g.sets))})
		c.g.sets = append(c.g.sets, e.set)
	case exprAny:
		out = append(out, elem{kind: opAny})
	case exprToken:
		id := int32(e.min)
		switch {
		case e.min < 0 && c.vocab == nil:
			return nil, fmt.Errorf("%w: %d:%d: token %s needs a vocabulary to resolve (ParseForVocab)", ErrSyntax, e.line, e.col, e.name)
		case e.min < 0:
			var ok bool
			if id, ok = c.vocab.tokenID(e.name); !ok {
				return nil, fmt.Errorf("%w: %d:%d: %s is not a token of the vocabulary", ErrSyntax, e.line, e.col, e.name)
			}
		case c.vocab != nil && e.min >= c.vocab.n:
			return nil, fmt.Errorf("%w: %d:%d: token <[%d]> is outside the vocabulary of %d", ErrSyntax, e.line, e.col, e.min, c.vocab.n)
		}
		out = append(out, elem{kind: opToken, val: id})
		c.g.hasTokens = true
	case exprRef:
		id, ok := c.ids[e.name]
		if !ok {
			return nil, fmt.Errorf("%w: %d:%d: rule %q is not defined", ErrSyntax, e.line, e.col, e.name)
		}
		out = append(out, elem{kind: opRef, val: id})
	case exprRep:
		unit, err := c.sequence(rule, e.sub[0], nil)
		if err != nil {
			return nil, err
		}
		if len(unit)*max(e.min, 1) > maxElements {
			return nil, fmt.Errorf("%w: %d:%d: repetition expands to more than %d elements", ErrSyntax, e.line, e.col, maxElements)
		}
		for i := 0; i < e.min; i++ {
			out = append(out, unit...)
		}
		switch {
		case e.max < 0:
			// star ::= unit star |
			id := c.genRule(rule, nil)
			body := append(append([]elem{}, unit...), elem{kind: opRef, val: id}, elem{kind: opAlt}, elem{kind: opEnd})
			c.bodies[id] = body
			out = append(out, elem{kind: opRef, val: id})
		case e.max > e.min:
			// opt1 ::= unit | ; optK ::= unit opt(K-1) |
			if len(unit)*(e.max-e.min) > maxElements {
				return nil, fmt.Errorf("%w: %d:%d: repetition expands to more than %d elements", ErrSyntax, e.line, e.col, maxElements)
			}
			prev := int32(-1)
			for k := 0; k < e.max-e.min; k++ {
				body := append([]elem{}, unit...)
				if prev >= 0 {
					body = append(body, elem{kind: opRef, val: prev})
				}
				body = append(body, elem{kind: opAlt}, elem{kind: opEnd})
				prev = c.genRule(rule, body)
			}
			out = append(out, elem{kind: opRef, val: prev})
		}
	}
	if len(out) > maxElements {
		return nil, fmt.Errorf("%w: rule %q expands to more than %d elements", ErrSyntax, rule, maxElements)
	}
	return out, nil
}

// checkLeftRecursion refuses a rule that can reach itself without
// consuming a character: the stack-based matcher would loop on it.
func (g *Grammar) checkLeftRecursion() error {
	n := len(g.alts)
	nullable := make([]bool, n)
	for changed := true; changed; {
		changed = false
		for r := 0; r < n; r++ {
			if nullable[r] {
				continue
			}
			for _, a := range g.alts[r] {
				if g.seqNullable(a, nullable) {
					nullable[r] = true
					changed = true
					break
				}
			}
		}
	}
	// Edges: rule -> rules it references before consuming anything.
	const (
		white = iota
		grey
		black
	)
	color := make([]uint8, n)
	var path []int32
	var visit func(r int32) error
	visit = func(r int32) error {
		color[r] = grey
		path = append(path, r)
		for _, a := range g.alts[r] {
			for p := a; ; p++ {
				e := g.prog[p]
				if e.kind != opRef {
					break
				}
				switch color[e.val] {
				case grey:
					var names []string
					for i := len(path) - 1; i >= 0; i-- {
						names = append(names, g.names[path[i]])
						if path[i] == e.val {
							break
						}
					}
					for i, j := 0, len(names)-1; i < j; i, j = i+1, j-1 {
						names[i], names[j] = names[j], names[i]
					}
					return fmt.Errorf("%w: left recursion in rule %q (%s -> %s): rewrite it with repetition", ErrSyntax, g.names[e.val], strings.Join(names, " -> "), g.names[e.val])
				case white:
					if err := visit(e.val); err != nil {
						return err
					}
				}
				if !nullable[e.val] {
					break
				}
			}
		}
		path = path[:len(path)-1]
		color[r] = black
		return nil
	}
	for r := int32(0); r < int32(n); r++ {
		if color[r] == white {
			if err := visit(r); err != nil {
				return err
			}
		}
	}
	return nil
}

func (g *Grammar) seqNullable(p int32, nullable []bool) bool {
	for ; ; p++ {
		switch e := g.prog[p]; e.kind {
		case opEnd, opAlt:
			return true
		case opRef:
			if !nullable[e.val] {
				return false
			}
		default:
			return false
		}
	}
}

// String renders the compiled grammar as GBNF, one rule a line, with the
// generated rules of groups and repetitions spelled out.
func (g *Grammar) String() string {
	var b strings.Builder
	for r, alts := range g.alts {
		b.WriteString(g.names[r])
		b.WriteString(" ::=")
		for i, a := range alts {
			if i > 0 {
				b.WriteString(" |")
			}
			if k := g.prog[a].kind; k == opEnd || k == opAlt {
				b.WriteString(` ""`)
			}
			for p := a; g.prog[p].kind != opEnd && g.prog[p].kind != opAlt; p++ {
				b.WriteByte(' ')
				switch e := g.prog[p]; e.kind {
				case opRef:
					b.WriteString(g.names[e.val])
				case opLit:
					b.WriteString(quoteLiteral(string(rune(e.val))))
				case opAny:
					b.WriteByte('.')
				case opToken:
					fmt.Fprintf(&b, "<[%d]>", e.val)
				case opSet:
					b.WriteString(g.sets[e.val].String())
				}
			}
		}
		b.WriteByte('\n')
	}
	return b.String()
}

func (s *charSet) String() string {
	var b strings.Builder
	b.WriteByte('[')
	if s.neg {
		b.WriteByte('^')
	}
	for _, r := range s.ranges {
		b.WriteString(classChar(r.lo))
		if r.hi != r.lo {
			b.WriteByte('-')
			b.WriteString(classChar(r.hi))
		}
	}
	b.WriteByte(']')
	return b.String()
}
