package grammar

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"math/rand/v2"
	"regexp"
	"strings"
	"sync"
	"testing"
	"unicode/utf8"

	"github.com/inference-x/inference-x/gguf"
	"github.com/inference-x/inference-x/internal/testenv"
	"github.com/inference-x/inference-x/tokenizer"
)

var vocabCache sync.Map // path -> *Vocab

// loadTokenizer reads the tokenizer of a GGUF in ../shared.
func loadTokenizer(t testing.TB, rel string) *tokenizer.Tokenizer {
	t.Helper()
	f, err := gguf.Open(testenv.Shared(t, rel))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	tok, err := tokenizer.New(f)
	if err != nil {
		t.Fatal(err)
	}
	return tok
}

// loadVocab reads the vocabulary of a GGUF in ../shared (once per test
// binary).
func loadVocab(t testing.TB, rel string) *Vocab {
	t.Helper()
	path := testenv.Shared(t, rel)
	if v, ok := vocabCache.Load(path); ok {
		return v.(*Vocab)
	}
	v, err := VocabFromTokenizer(loadTokenizer(t, rel))
	if err != nil {
		t.Fatal(err)
	}
	vocabCache.Store(path, v)
	return v
}

// testSchemas are the schemas every vocabulary is sampled under.
var testSchemas = []struct{ name, schema string }{
	{"person", `{"type":"object","properties":{"name":{"type":"string"},"age":{"type":"integer","minimum":0,"maximum":150}},"required":["name","age"],"additionalProperties":false}`},
	{"interleaved-optional", `{"type":"object","properties":{"a":{"type":"integer"},"b":{"type":"boolean"},"c":{"type":"string","maxLength":5},"d":{"type":"null"}},"required":["a","c"]}`},
	{"all-optional", `{"type":"object","properties":{"x":{"type":"integer"},"y":{"type":"integer"},"z":{"type":"integer"}}}`},
	{"enum", `{"type":"object","properties":{"color":{"enum":["red","green","blue \"dark\""]},"size":{"enum":[1,2,3.5,null,true]}},"required":["color","size"]}`},
	{"const", `{"type":"object","properties":{"kind":{"const":"point"},"v":{"const":{"a":[1,2],"b":null}}},"required":["kind","v"]}`},
	{"nested", `{"type":"object","properties":{"user":{"type":"object","properties":{"id":{"type":"integer"},"tags":{"type":"array","items":{"type":"string","maxLength":6},"maxItems":3}},"required":["id","tags"]},"items":{"type":"array","items":{"type":"object","properties":{"sku":{"type":"string","maxLength":4},"qty":{"type":"integer","minimum":1,"maximum":9}},"required":["sku","qty"]},"minItems":1,"maxItems":2}},"required":["user","items"]}`},
	{"array-bounds", `{"type":"array","items":{"type":"integer","minimum":-5,"maximum":1234},"minItems":2,"maxItems":4}`},
	{"tuple", `{"type":"array","prefixItems":[{"type":"string","maxLength":3},{"type":"integer"},{"type":"boolean"}]}`},
	{"ref-defs", `{"$defs":{"address":{"type":"object","properties":{"street":{"type":"string","maxLength":8},"zip":{"type":"string","pattern":"^[0-9]{5}$"}},"required":["street","zip"]}},"type":"object","properties":{"home":{"$ref":"#/$defs/address"},"work":{"$ref":"#/$defs/address"}},"required":["home"]}`},
	{"recursive", `{"$defs":{"node":{"type":"object","properties":{"value":{"type":"integer","minimum":0,"maximum":99},"children":{"type":"array","items":{"$ref":"#/$defs/node"},"maxItems":2}},"required":["value"]}},"$ref":"#/$defs/node"}`},
	{"anyOf", `{"type":"object","properties":{"v":{"anyOf":[{"type":"string","maxLength":4},{"type":"integer"},{"type":"null"}]}},"required":["v"]}`},
	{"oneOf", `{"oneOf":[{"type":"object","properties":{"type":{"const":"circle"},"r":{"type":"number"}},"required":["type","r"],"additionalProperties":false},{"type":"object","properties":{"type":{"const":"rect"},"w":{"type":"integer"},"h":{"type":"integer"}},"required":["type","w","h"],"additionalProperties":false}]}`},
	{"type-union", `{"type":"object","properties":{"note":{"type":["string","null"],"maxLength":6},"n":{"type":["integer","boolean"]}},"required":["note","n"]}`},
	{"allOf", `{"allOf":[{"type":"object","properties":{"id":{"type":"integer"}},"required":["id"]},{"properties":{"label":{"type":"string","maxLength":5}},"required":["label"]}]}`},
	{"formats", `{"type":"object","properties":{"d":{"type":"string","format":"date"},"t":{"type":"string","format":"time"},"dt":{"type":"string","format":"date-time"},"u":{"type":"string","format":"uuid"}},"required":["d","t","dt","u"]}`},
	{"string-length", `{"type":"object","properties":{"s":{"type":"string","minLength":3,"maxLength":8}},"required":["s"]}`},
	{"pattern", `{"type":"object","properties":{"code":{"type":"string","pattern":"^[A-Z]{2}-\\d{3}$"},"slug":{"type":"string","pattern":"^(foo|bar)(-[a-z]{1,4})?$"}},"required":["code","slug"]}`},
	{"additional-schema", `{"type":"object","properties":{"total":{"type":"integer"}},"required":["total"],"additionalProperties":{"type":"integer","minimum":0,"maximum":9}}`},
	{"additional-true", `{"type":"object","properties":{"id":{"type":"integer"}},"required":["id"],"additionalProperties":true}`},
	{"numbers", `{"type":"object","properties":{"price":{"type":"number"},"ok":{"type":"boolean"},"neg":{"type":"integer","minimum":-50,"maximum":-10}},"required":["price","ok","neg"]}`},
	{"definitions", `{"definitions":{"pt":{"type":"array","items":{"type":"number"},"minItems":2,"maxItems":2}},"type":"object","properties":{"from":{"$ref":"#/definitions/pt"},"to":{"$ref":"#/definitions/pt"}},"required":["from","to"]}`},
	{"json-object", `{"type":"object"}`},
	{"any", `{}`},
	{"enum-array", `{"type":"array","items":{"enum":["a","b","c"]},"maxItems":5}`},
	{"exclusive", `{"type":"object","properties":{"p":{"type":"integer","exclusiveMinimum":0,"exclusiveMaximum":10}},"required":["p"]}`},
}

// sample generates one completion under g by drawing uniformly among the
// allowed tokens; after budget tokens it prefers end-of-generation and
// tokens that close something (" } ]) so random walks finish.
func sample(t *testing.T, g *Grammar, v *Vocab, rng *rand.Rand, budget int, checkMask bool) []byte {
	t.Helper()
	m := g.NewMatcher(v)
	mask := make([]uint64, v.MaskWords())
	var allowed, closing []int32
	var out []byte
	for step := 0; step < 4000; step++ {
		m.Mask(mask)
		allowed, closing = allowed[:0], closing[:0]
		eog := int32(-1)
		for id := int32(0); int(id) < v.Size(); id++ {
			if !Allowed(mask, id) {
				continue
			}
			allowed = append(allowed, id)
			if v.IsEOG(id) {
				eog = id
			} else if bytes.ContainsAny(v.Piece(id), `"}]`) {
				closing = append(closing, id)
			}
		}
		if len(allowed) == 0 {
			t.Fatalf("no token allowed after %q", out)
		}
		if (eog >= 0) != m.CanEnd() {
			t.Fatalf("end-of-generation allowed=%v but CanEnd=%v after %q", eog >= 0, m.CanEnd(), out)
		}
		if checkMask && step%7 == 0 {
			// Disallowed whole-UTF-8 tokens are rejected by Accept too.
			for k := 0; k < 20; k++ {
				id := int32(rng.IntN(v.Size()))
				p := v.Piece(id)
				if Allowed(mask, id) || len(p) == 0 || !utf8.Valid(p) || v.IsEOG(id) {
					continue
				}
				if err := m.AcceptToken(id); !errors.Is(err, ErrRejected) {
					t.Fatalf("token %d %q masked out but accepted after %q (err %v)", id, p, out, err)
				}
			}
		}
		id := allowed[rng.IntN(len(allowed))]
		if step >= budget {
			switch {
			case eog >= 0:
				id = eog
			case len(closing) > 0 && rng.IntN(4) > 0:
				id = closing[rng.IntN(len(closing))]
			}
		}
		if v.IsEOG(id) {
			return out
		}
		if err := m.AcceptToken(id); err != nil {
			t.Fatalf("allowed token %d %q rejected after %q: %v", id, v.Piece(id), out, err)
		}
		out = append(out, v.Piece(id)...)
	}
	t.Fatalf("no end after 4000 tokens: %q", out)
	return nil
}

func TestSchemaSampling(t *testing.T) {
	vocabs := []struct {
		name, rel string
		seeds     int
	}{
		{"stories260K", "models/stories260K/stories260K.gguf", 6},
		{"llama2-spm", "testdata/tokenizer/llama2-spm.gguf", 3},
		{"qwen3-bpe", "testdata/tokenizer/qwen3-bpe.gguf", 2},
	}
	for _, vc := range vocabs {
		t.Run(vc.name, func(t *testing.T) {
			v := loadVocab(t, vc.rel)
			for _, sc := range testSchemas {
				t.Run(sc.name, func(t *testing.T) {
					g, err := FromJSONSchema([]byte(sc.schema))
					if err != nil {
						t.Fatal(err)
					}
					schema, err := decodeOrdered([]byte(sc.schema))
					if err != nil {
						t.Fatal(err)
					}
					for seed := 0; seed < vc.seeds; seed++ {
						rng := rand.New(rand.NewPCG(uint64(seed), uint64(len(sc.name))))
						out := sample(t, g, v, rng, 20+seed*15, seed == 0)
						if seed == 0 {
							t.Logf("%s", out)
						}
						if !json.Valid(out) {
							t.Fatalf("seed %d: not JSON: %q", seed, out)
						}
						doc, err := decodeOrdered(out)
						if err != nil {
							t.Fatalf("seed %d: %q: %v", seed, out, err)
						}
						if err := validate(schema, schema, doc, "#"); err != nil {
							t.Fatalf("seed %d: %q does not validate: %v", seed, out, err)
						}
					}
				})
			}
		})
	}
}

// validate checks v against the subset of JSON Schema the converter
// supports, including that properties come in schema order.
func validate(root, s, v any, path string) error {
	switch st := s.(type) {
	case bool:
		if !st {
			return fmt.Errorf("%s: schema false", path)
		}
		return nil
	case *object:
		return validateObject(root, st, v, path)
	}
	return fmt.Errorf("%s: bad schema", path)
}

func compact(v any) string {
	var b bytes.Buffer
	encodeCompact(&b, v)
	return b.String()
}

// sameJSON compares two decoded values (numbers by value).
func sameJSON(a, b any) bool {
	an, aok := a.(json.Number)
	bn, bok := b.(json.Number)
	if aok && bok {
		af, _ := an.Float64()
		bf, _ := bn.Float64()
		return af == bf
	}
	return compact(a) == compact(b)
}

var formats = map[string]*regexp.Regexp{
	"date":      regexp.MustCompile(`^\d{4}-(0[1-9]|1[0-2])-(0[1-9]|[12]\d|3[01])$`),
	"time":      regexp.MustCompile(`^([01]\d|2[0-3]):[0-5]\d:[0-5]\d(\.\d{3})?(Z|[+-]([01]\d|2[0-3]):[0-5]\d)$`),
	"date-time": regexp.MustCompile(`^\d{4}-(0[1-9]|1[0-2])-(0[1-9]|[12]\d|3[01])T([01]\d|2[0-3]):[0-5]\d:[0-5]\d(\.\d{3})?(Z|[+-]([01]\d|2[0-3]):[0-5]\d)$`),
	"uuid":      regexp.MustCompile(`^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$`),
}

func num(s *object, kw string) (float64, bool) {
	v, ok := s.get(kw)
	if !ok {
		return 0, false
	}
	f, err := v.(json.Number).Float64()
	return f, err == nil
}

func typeOf(v any) string {
	switch t := v.(type) {
	case *object:
		return "object"
	case []any:
		return "array"
	case string:
		return "string"
	case bool:
		return "boolean"
	case nil:
		return "null"
	case json.Number:
		if !strings.ContainsAny(t.String(), ".eE") {
			return "integer"
		}
		return "number"
	}
	return "?"
}

func validateObject(root any, s *object, v any, path string) error {
	if r, ok := s.get("$ref"); ok {
		c := &converter{root: root}
		target, err := c.resolve(r.(string), path)
		if err != nil {
			return err
		}
		return validate(root, target, v, path)
	}
	if c, ok := s.get("const"); ok && !sameJSON(c, v) {
		return fmt.Errorf("%s: %s is not the const %s", path, compact(v), compact(c))
	}
	if e, ok := s.get("enum"); ok {
		found := false
		for _, x := range e.([]any) {
			found = found || sameJSON(x, v)
		}
		if !found {
			return fmt.Errorf("%s: %s not in enum", path, compact(v))
		}
	}
	if a, ok := s.get("anyOf"); ok {
		var errs []error
		for _, sub := range a.([]any) {
			errs = append(errs, validate(root, sub, v, path))
		}
		if !slicesAny(errs, func(e error) bool { return e == nil }) {
			return fmt.Errorf("%s: no anyOf branch matches: %v", path, errors.Join(errs...))
		}
	}
	if a, ok := s.get("oneOf"); ok {
		n := 0
		for _, sub := range a.([]any) {
			if validate(root, sub, v, path) == nil {
				n++
			}
		}
		if n != 1 {
			return fmt.Errorf("%s: %d oneOf branches match", path, n)
		}
	}
	if a, ok := s.get("allOf"); ok {
		for _, sub := range a.([]any) {
			if err := validate(root, sub, v, path); err != nil {
				return err
			}
		}
	}
	got := typeOf(v)
	if tv, ok := s.get("type"); ok {
		var types []string
		switch tt := tv.(type) {
		case string:
			types = []string{tt}
		case []any:
			for _, x := range tt {
				types = append(types, x.(string))
			}
		}
		okType := false
		for _, want := range types {
			okType = okType || want == got || want == "number" && got == "integer"
		}
		if !okType {
			return fmt.Errorf("%s: %s is %s, want %v", path, compact(v), got, types)
		}
	}
	switch t := v.(type) {
	case *object:
		props, _ := s.get("properties")
		po, _ := props.(*object)
		last := -1
		for _, k := range t.keys {
			if sub, ok := po.get(k); ok {
				idx := indexOf(po.keys, k)
				if idx < last {
					return fmt.Errorf("%s: property %q out of schema order", path, k)
				}
				last = idx
				if err := validate(root, sub, t.vals[k], path+"/"+k); err != nil {
					return err
				}
				continue
			}
			if ap, ok := s.get("additionalProperties"); ok {
				if err := validate(root, ap, t.vals[k], path+"/"+k); err != nil {
					return fmt.Errorf("%s: additional property %q: %w", path, k, err)
				}
			}
		}
		if r, ok := s.get("required"); ok {
			for _, k := range r.([]any) {
				if _, ok := t.vals[k.(string)]; !ok {
					return fmt.Errorf("%s: required property %q missing", path, k)
				}
			}
		}
	case []any:
		var prefix []any
		if p, ok := s.get("prefixItems"); ok {
			prefix = p.([]any)
		}
		items, hasItems := s.get("items")
		for i, e := range t {
			switch {
			case i < len(prefix):
				if err := validate(root, prefix[i], e, fmt.Sprintf("%s/%d", path, i)); err != nil {
					return err
				}
			case hasItems:
				if err := validate(root, items, e, fmt.Sprintf("%s/%d", path, i)); err != nil {
					return err
				}
			}
		}
		if n, ok := num(s, "minItems"); ok && float64(len(t)) < n {
			return fmt.Errorf("%s: %d items, fewer than %v", path, len(t), n)
		}
		if n, ok := num(s, "maxItems"); ok && float64(len(t)) > n {
			return fmt.Errorf("%s: %d items, more than %v", path, len(t), n)
		}
	case string:
		n := float64(utf8.RuneCountInString(t))
		if m, ok := num(s, "minLength"); ok && n < m {
			return fmt.Errorf("%s: %q shorter than %v", path, t, m)
		}
		if m, ok := num(s, "maxLength"); ok && n > m {
			return fmt.Errorf("%s: %q longer than %v", path, t, m)
		}
		if p, ok := s.get("pattern"); ok {
			re := regexp.MustCompile(`^(?:` + strings.TrimSuffix(strings.TrimPrefix(p.(string), "^"), "$") + `)$`)
			if !re.MatchString(t) {
				return fmt.Errorf("%s: %q does not match %s", path, t, p)
			}
		}
		if f, ok := s.get("format"); ok {
			if re := formats[f.(string)]; re != nil && !re.MatchString(t) {
				return fmt.Errorf("%s: %q is not a %s", path, t, f)
			}
		}
	case json.Number:
		f, _ := t.Float64()
		if m, ok := num(s, "minimum"); ok && f < m {
			return fmt.Errorf("%s: %v below minimum %v", path, t, m)
		}
		if m, ok := num(s, "maximum"); ok && f > m {
			return fmt.Errorf("%s: %v above maximum %v", path, t, m)
		}
		if m, ok := num(s, "exclusiveMinimum"); ok && f <= m {
			return fmt.Errorf("%s: %v not above %v", path, t, m)
		}
		if m, ok := num(s, "exclusiveMaximum"); ok && f >= m {
			return fmt.Errorf("%s: %v not below %v", path, t, m)
		}
	}
	return nil
}

func indexOf(list []string, s string) int {
	for i, e := range list {
		if e == s {
			return i
		}
	}
	return -1
}

func slicesAny[T any](s []T, f func(T) bool) bool {
	for _, e := range s {
		if f(e) {
			return true
		}
	}
	return false
}

// The grammar of a schema accepts what the schema describes and refuses
// what it does not, on hand-written documents.
func TestSchemaAcceptReject(t *testing.T) {
	cases := []struct {
		schema         string
		accept, reject []string
	}{
		{`{"type":"object","properties":{"a":{"type":"integer"},"b":{"type":"string"},"c":{"type":"boolean"}},"required":["b"]}`,
			[]string{`{"b":""}`, `{"a":1,"b":"x"}`, `{"b":"x","c":true}`, `{"a": -3, "b": "y", "c": false}`},
			[]string{`{}`, `{"b":"x","a":1}`, `{"c":true,"b":"x"}`, `{"a":1}`, `{"b":"x",}`, `{"b":"x","d":1}`, `{,"b":"x"}`}},
		{`{"type":"object","properties":{"ab":{"type":"integer"},"b":{"type":"integer"}},"additionalProperties":{"type":"string"}}`,
			[]string{`{"ab":1,"a":"x"}`, `{"abc":"x"}`, `{"":"x","bb":"y","ba":"z"}`, `{"b":2,"a\"":"q"}`},
			[]string{`{"ab":1,"ab":"x"}`, `{"b":"x"}`, `{"a":1,"b":"y"}`}},
		{`{"type":"integer","minimum":-12,"maximum":305}`,
			[]string{"-12", "-1", "0", "9", "10", "99", "100", "305", "299"},
			[]string{"-13", "306", "400", "01", "-0x", "1000", "-20"}},
		{`{"type":"integer","minimum":7}`,
			[]string{"7", "8", "10", "12345"},
			[]string{"6", "0", "-1"}},
		{`{"type":"array","items":{"type":"integer"},"minItems":1,"maxItems":2}`,
			[]string{"[1]", "[1,2]", "[1, 2]"},
			[]string{"[]", "[1,2,3]", "[1,]"}},
		{`{"type":"string","format":"date-time"}`,
			[]string{`"2024-02-29T23:59:59Z"`, `"1999-12-31T00:00:00.123+05:30"`},
			[]string{`"2024-13-01T00:00:00Z"`, `"2024-01-01 00:00:00Z"`, `"2024-01-01T24:00:00Z"`}},
		{`{"type":"array","items":[{"type":"integer"},{"type":"string"}]}`,
			[]string{`[1,"a"]`},
			[]string{`[1]`, `[1,"a",2]`, `["a",1]`}},
		{`{"type":"array","items":[{"type":"integer"}],"additionalItems":{"type":"boolean"}}`,
			[]string{`[1]`, `[1,true,false]`},
			[]string{`[1,2]`, `[]`}},
		{`{"type":"string","pattern":"^a\\.b*[^x]$"}`,
			[]string{`"a.c"`, `"a.bbbq"`},
			[]string{`"a.x"`, `"abc"`, `"a.bx"`}},
	}
	for _, c := range cases {
		g, err := FromJSONSchema([]byte(c.schema))
		if err != nil {
			t.Fatalf("%s: %v", c.schema, err)
		}
		for _, s := range c.accept {
			if !matches(t, g, s) {
				t.Errorf("%s: rejected %s", c.schema, s)
			}
		}
		for _, s := range c.reject {
			if matches(t, g, s) {
				t.Errorf("%s: accepted %s", c.schema, s)
			}
		}
	}
}

func TestSchemaErrors(t *testing.T) {
	cases := []struct{ schema, want string }{
		{`{"type":"strin"}`, `#/type: unknown type "strin"`},
		{`{"$ref":"#/$defs/missing"}`, `does not resolve`},
		{`{"$ref":"https://example.com/s.json"}`, "only local references"},
		{`{"type":"object","properties":{"a":{}},"required":["b"]}`, `required property "b" is not in properties`},
		{`{"type":"array","minItems":3,"maxItems":1}`, "minItems 3 is larger than maxItems 1"},
		{`{"type":"string","pattern":"(?=x)"}`, "not supported"},
		{`{"type":"integer","minimum":5,"maximum":1}`, "no integer fits"},
		{`{"enum":[]}`, "non-empty"},
		{`{"allOf":[{"type":"string"}]}`, "object schemas only"},
		{`{"type":"object"`, "json schema"},
		{`false`, "matches nothing"},
	}
	for _, c := range cases {
		_, err := FromJSONSchema([]byte(c.schema))
		if err == nil || !errors.Is(err, ErrSchema) || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%s: error %v, want ErrSchema containing %q", c.schema, err, c.want)
		}
	}
}

// Two schemas share one grammar through a SchemaBuilder, as a tool call
// with a choice of functions would.
func TestSchemaBuilder(t *testing.T) {
	b := NewSchemaBuilder()
	w, err := b.Add("weather", []byte(`{"type":"object","properties":{"city":{"type":"string"}},"required":["city"]}`))
	if err != nil {
		t.Fatal(err)
	}
	s, err := b.Add("sum", []byte(`{"$defs":{"n":{"type":"integer"}},"type":"object","properties":{"a":{"$ref":"#/$defs/n"},"b":{"$ref":"#/$defs/n"}},"required":["a","b"]}`))
	if err != nil {
		t.Fatal(err)
	}
	b.Rule("root", `"<tool_call>" ( "{\"name\":\"weather\",\"arguments\":" `+w+` | "{\"name\":\"sum\",\"arguments\":" `+s+` ) "}</tool_call>"`)
	g, err := Parse(b.GBNF())
	if err != nil {
		t.Fatalf("%v\n%s", err, b.GBNF())
	}
	for _, ok := range []string{`<tool_call>{"name":"weather","arguments":{"city":"Oslo"}}</tool_call>`, `<tool_call>{"name":"sum","arguments":{"a":1, "b":-2} }</tool_call>`} {
		if !matches(t, g, ok) {
			t.Errorf("rejected %s", ok)
		}
	}
	for _, bad := range []string{`<tool_call>{"name":"sum","arguments":{"city":"Oslo"}}</tool_call>`, `<tool_call>{"name":"weather","arguments":{}}</tool_call>`} {
		if matches(t, g, bad) {
			t.Errorf("accepted %s", bad)
		}
	}
}

func FuzzSchema(f *testing.F) {
	for _, s := range testSchemas {
		f.Add(s.schema)
	}
	f.Add(`{"$ref":"#"}`)
	f.Add(`{"type":"string","pattern":"^(a|b(c[d-f]{2,}))*$"}`)
	f.Fuzz(func(t *testing.T, schema string) {
		g, err := FromJSONSchema([]byte(schema))
		if err != nil {
			if !errors.Is(err, ErrSchema) {
				t.Fatalf("error %v does not wrap ErrSchema", err)
			}
			return
		}
		_ = g.NewMatcher(nil).AcceptString(`{"a":[1,"x"]}`)
	})
}
