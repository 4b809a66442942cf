package grammar

import (
	"errors"
	"strings"
	"testing"
)

func TestParseErrors(t *testing.T) {
	cases := []struct{ src, want string }{
		{``, "no rule named root"},
		{`foo ::= "a"`, "no rule named root"},
		{`root ::= foo`, `1:10: rule "foo" is not defined`},
		{`root "a"`, "1:6: expected ::= after rule name"},
		{`root ::= "abc`, "1:10: unterminated string literal"},
		{"root ::= [a-z\n", "1:10: unterminated character class"},
		{`root ::= ("a" | "b"`, "1:10: group opened here is not closed"},
		{`root ::= "a")`, "1:13: unexpected ) without an open group"},
		{`root ::= * "a"`, `1:10: repetition "*" without a preceding item`},
		{`root ::= "a"{3,1}`, "1:13: repetition {3,1} has its maximum below its minimum"},
		{`root ::= "a"{x}`, "expected a number in repetition"},
		{`root ::= "a"{2`, "expected } to close the repetition opened at 1:13"},
		{`root ::= "a"{99999}`, "larger than the limit"},
		{`root ::= "\q"`, `1:11: unknown escape \q`},
		{`root ::= "\x4"`, `escape \x needs 2 hex digits`},
		{`root ::= [z-a]`, "reversed"},
		{"root ::= \"a\"\nroot ::= \"b\"", `2:1: rule "root" is defined twice`},
		{"root ::= expr\nexpr ::= expr \"+\" term | term\nterm ::= [0-9]", `left recursion in rule "expr"`},
		{"root ::= a\na ::= b? \"x\"\nb ::= a", `left recursion`},
		{"root ::= (\"a\"?)*", `left recursion`},
		{"root ::= " + strings.Repeat("(", 300) + `"a"` + strings.Repeat(")", 300), "nested deeper than"},
		{`root ::= @`, `1:10: unexpected '@'`},
		{"root ::= \"a\"\n  \"b\"", "2:3: expected a rule name"},
		{"root ::= \"\xff\"", "not valid UTF-8"},
		{`root ::= "a"{2000}{1000}`, "more than"},
	}
	for _, c := range cases {
		_, err := Parse(c.src)
		if err == nil {
			t.Errorf("Parse(%q): no error, want %q", c.src, c.want)
			continue
		}
		if !errors.Is(err, ErrSyntax) {
			t.Errorf("Parse(%q): %v does not wrap ErrSyntax", c.src, err)
		}
		if !strings.Contains(err.Error(), c.want) {
			t.Errorf("Parse(%q): %v, want it to contain %q", c.src, err, c.want)
		}
	}
}

// matches reports whether the whole of s is a sentence of g.
func matches(t *testing.T, g *Grammar, s string) bool {
	t.Helper()
	m := g.NewMatcher(nil)
	if err := m.AcceptString(s); err != nil {
		if !errors.Is(err, ErrRejected) {
			t.Fatalf("%q: %v does not wrap ErrRejected", s, err)
		}
		return false
	}
	return m.CanEnd()
}

func TestAcceptReject(t *testing.T) {
	cases := []struct {
		name, src string
		accept    []string
		reject    []string
	}{
		{"arithmetic", `root  ::= (expr "=" ws term "\n")+
expr  ::= term ([-+*/] term)*
term  ::= ident | num | "(" ws expr ")" ws
ident ::= [a-z] [a-z0-9_]* ws
num   ::= [0-9]+ ws
ws    ::= [ \t\n]*`,
			[]string{"1+2=3\n", "(a+b)*c= 4\n1=1\n", "x_1/(2) = y\n"},
			[]string{"", "1+2=3", "+1=2\n", "1+=2\n", "(1=2\n"}},
		{"json", `root   ::= object
value  ::= object | array | string | number | ("true" | "false" | "null") ws

object ::=
  "{" ws (
            string ":" ws value
    ("," ws string ":" ws value)*
  )? "}" ws

array  ::=
  "[" ws (
            value
    ("," ws value)*
  )? "]" ws

string ::=
  "\"" (
    [^"\\\x7F\x00-\x1F] |
    "\\" (["\\bfnrt] | "u" [0-9a-fA-F]{4}) # escapes
  )* "\"" ws

number ::= ("-"? ([0-9] | [1-9] [0-9]{0,15})) ("." [0-9]+)? ([eE] [-+]? [0-9] [1-9]{0,15})? ws

# Optional space: by convention, applied in this grammar after literal chars when allowed
ws ::= | " " | "\n" [ \t]{0,20}`,
			[]string{`{}`, `{"a": [1, 2.5, -3e4, true, null, {"b": "\u00e9\n"}]}`, `{"k":"日本語"}`, "{\n  \"a\":1}"},
			[]string{`[]`, `{"a":}`, `{"a":01x}`, `{"a":"\x"}`, `{"a":"` + "\x01" + `"}`, `{a:1}`}},
		{"list", `root ::= item+
item ::= "- " [^\r\n\x0b\x0c\x85\u2028\u2029]+ "\n"`,
			[]string{"- a\n", "- one\n- two two\n"},
			[]string{"", "- \n", "-a\n", "- a"}},
		{"bounds", `root ::= "a"{2,4} "b"{3} "c"{1,} "d"{0,2} ("xy"){2}`,
			[]string{"aabbbcxyxy", "aaaabbbcccddxyxy", "aaabbbcdxyxy"},
			[]string{"abbbcxyxy", "aaaaabbbcxyxy", "aabbcxyxy", "aabbbxyxy", "aabbbcdddxyxy", "aabbbcxy"}},
		{"classes", `root ::= [^a-c] [\x41-\x43] [\u00e0-\u00e9] [\U0001F600-\U0001F64F] . "\t\"\\"`,
			[]string{"dBé😀z\t\"\\", "zAà😃日\t\"\\"},
			[]string{"aBé😀z\t\"\\", "dDé😀z\t\"\\", "dBê😀z\t\"\\", "dBé🚀z\t\"\\"}},
		{"alternatives", "root ::= \"cat\" | \"car\" | \"ca\"\n     | \"dog\" # comment\n", []string{"cat", "car", "ca", "dog"}, []string{"c", "cab", "do", "cats"}},
		{"optional-empty", `root ::= "<" x? ">"
x ::= "y" | ""`, []string{"<>", "<y>"}, []string{"<yy>", "<"}},
		{"recursive", `root ::= paren
paren ::= "(" paren* ")"`, []string{"()", "(()())", "((()))"}, []string{"(", "())", ")("}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			g, err := Parse(c.src)
			if err != nil {
				t.Fatal(err)
			}
			for _, s := range c.accept {
				if !matches(t, g, s) {
					t.Errorf("rejected %q", s)
				}
			}
			for _, s := range c.reject {
				if matches(t, g, s) {
					t.Errorf("accepted %q", s)
				}
			}
		})
	}
}

// A token's bytes may split a UTF-8 sequence; a rejected piece leaves
// the state as it was.
func TestAcceptPartialUTF8(t *testing.T) {
	g, err := Parse(`root ::= "é" [ぁ-ゟ]+ "!"`)
	if err != nil {
		t.Fatal(err)
	}
	m := g.NewMatcher(nil)
	text := []byte("éあい!")
	for i, b := range text {
		if err := m.Accept([]byte{b}); err != nil {
			t.Fatalf("byte %d: %v", i, err)
		}
		if i < len(text)-1 && m.CanEnd() {
			t.Fatalf("CanEnd after %d bytes", i+1)
		}
	}
	if !m.Done() {
		t.Fatal("not done after the whole text")
	}
	m.Reset()
	if err := m.Accept([]byte("é\xe3")); err != nil {
		t.Fatal(err)
	}
	if err := m.Accept([]byte("\x41")); err == nil {
		t.Fatal("accepted a broken UTF-8 sequence")
	}
	if err := m.Accept([]byte("\x81\x82!")); err != nil { // も
		t.Fatalf("state changed by the rejected piece: %v", err)
	}
	if !m.CanEnd() {
		t.Fatal("cannot end")
	}
}

// Nullable alternatives in a long sequence do not make the expansion
// exponential (40 x with 3 ways each to match nothing or "b").
func TestNullableBlowup(t *testing.T) {
	g, err := Parse("root ::= " + strings.Repeat("x ", 40) + "\"a\"\nx ::= \"\" | \"\" | \"b\"")
	if err != nil {
		t.Fatal(err)
	}
	if !matches(t, g, "bba") || matches(t, g, "bbab") {
		t.Fatal("wrong language")
	}
}

func FuzzParse(f *testing.F) {
	for _, s := range []string{
		`root ::= "a" | [b-c]* x{2,3}` + "\nx ::= (\"y\" .)?",
		"root ::= (\n \"a\"\n | \"b\" # c\n)+",
		`root ::= [^\x00-\x1F\u2028] "\U0001F600"`,
		"root ::= a\na ::= a",
		"root ::= <[3]> \"x\" <[0]>*",
		`root ::= "a"{0,100}`,
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, src string) {
		g, err := Parse(src)
		if err != nil {
			if !errors.Is(err, ErrSyntax) {
				t.Fatalf("error %v does not wrap ErrSyntax", err)
			}
			return
		}
		// A compiled grammar must match without looping or panicking, and
		// its String form must compile again.
		m := g.NewMatcher(nil)
		_ = m.AcceptString("a(b)c")
		if _, err := Parse(g.String()); err != nil {
			t.Fatalf("String() of %q does not compile: %v\n%s", src, err, g.String())
		}
	})
}
