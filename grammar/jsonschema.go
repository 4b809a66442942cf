package grammar

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"regexp"
	"strconv"
	"strings"
)

// ErrSchema is wrapped by the errors of SchemaToGBNF for a schema that is
// malformed or uses something the converter does not support.
var ErrSchema = errors.New("json schema")

// The primitive rules every converted schema may use. Whitespace: at most
// one space after each token (space ::= " "?), never newlines, so the
// output stays compact and a model cannot pad forever.
var primitiveRules = []struct{ name, body string }{
	{"space", `" "?`},
	{"boolean", `("true" | "false") space`},
	{"null", `"null" space`},
	{"char", `[^"\\\x7F\x00-\x1F] | [\\] (["\\/bfnrt] | "u" [0-9a-fA-F]{4})`},
	{"string", `"\"" char* "\"" space`},
	{"integral-part", `[0] | [1-9] [0-9]{0,15}`},
	{"decimal-part", `[0-9]{1,16}`},
	{"integer", `("-"? integral-part) space`},
	{"number", `("-"? integral-part) ("." decimal-part)? ([eE] [-+]? integral-part)? space`},
	{"value", `object | array | string | number | boolean | null`},
	{"object", `"{" space ( string ":" space value ("," space string ":" space value)* )? "}" space`},
	{"array", `"[" space ( value ("," space value)* )? "]" space`},
	{"date", `[0-9]{4} "-" ( "0" [1-9] | "1" [0-2] ) "-" ( "0" [1-9] | [1-2] [0-9] | "3" [0-1] )`},
	{"time", `( [01] [0-9] | "2" [0-3] ) ":" [0-5] [0-9] ":" [0-5] [0-9] ( "." [0-9]{3} )? ( "Z" | ( "+" | "-" ) ( [01] [0-9] | "2" [0-3] ) ":" [0-5] [0-9] )`},
	{"date-time", `date "T" time`},
	{"uuid", `[0-9a-fA-F]{8} "-" [0-9a-fA-F]{4} "-" [0-9a-fA-F]{4} "-" [0-9a-fA-F]{4} "-" [0-9a-fA-F]{12}`},
	{"date-string", `"\"" date "\"" space`},
	{"time-string", `"\"" time "\"" space`},
	{"date-time-string", `"\"" date-time "\"" space`},
	{"uuid-string", `"\"" uuid "\"" space`},
}

// primitiveDeps lists the rules each primitive needs.
var primitiveDeps = map[string][]string{
	"boolean": {"space"}, "null": {"space"}, "string": {"char", "space"},
	"integer": {"integral-part", "space"}, "number": {"integral-part", "decimal-part", "space"},
	"value":  {"object", "array", "string", "number", "boolean", "null"},
	"object": {"string", "value", "space"}, "array": {"value", "space"},
	"date-time": {"date", "time"}, "date-string": {"date", "space"}, "time-string": {"time", "space"},
	"date-time-string": {"date-time", "space"}, "uuid-string": {"uuid", "space"},
}

// converter builds GBNF from one schema document.
type converter struct {
	root  any
	rules map[string]string
	order []string
	refs  map[string]string // $ref -> rule name
	depth int
}

// SchemaToGBNF converts a JSON Schema to a GBNF grammar whose sentences
// are the compact JSON documents that validate against it (for the
// supported subset; see the package documentation). Properties come in
// schema order; optional ones may be left out.
func SchemaToGBNF(schema []byte) (string, error) {
	b := NewSchemaBuilder()
	b.c.rules["root"] = "" // reserved for the top rule
	b.c.order = append(b.c.order, "root")
	body, err := b.expr(schema, "root")
	if err != nil {
		return "", err
	}
	b.c.rules["root"] = body
	return b.GBNF(), nil
}

// SchemaBuilder puts the grammars of several schemas into one GBNF
// text, sharing the primitive rules, so a caller can embed JSON values in
// a larger grammar (a tool call: a name, then the arguments' schema).
type SchemaBuilder struct{ c *converter }

// NewSchemaBuilder returns an empty builder.
func NewSchemaBuilder() *SchemaBuilder {
	return &SchemaBuilder{c: &converter{rules: map[string]string{}}}
}

// Add converts schema into rules and returns the name of the rule that
// matches its values (name, or name with a suffix if taken).
func (b *SchemaBuilder) Add(name string, schema []byte) (string, error) {
	body, err := b.expr(schema, name)
	if err != nil {
		return "", err
	}
	return b.c.add(name, body), nil
}

// Rule adds a rule written in GBNF (say, root ::= ...) and returns its
// name, suffixed if taken.
func (b *SchemaBuilder) Rule(name, body string) string { return b.c.add(name, body) }

func (b *SchemaBuilder) expr(schema []byte, name string) (string, error) {
	doc, err := decodeOrdered(schema)
	if err != nil {
		return "", fmt.Errorf("%w: %w", ErrSchema, err)
	}
	b.c.root, b.c.refs = doc, map[string]string{}
	return b.c.visit(doc, name, "#")
}

// GBNF returns the rules added so far, one a line.
func (b *SchemaBuilder) GBNF() string {
	var sb strings.Builder
	for _, n := range b.c.order {
		fmt.Fprintf(&sb, "%s ::= %s\n", n, b.c.rules[n])
	}
	return sb.String()
}

// FromJSONSchema compiles a JSON Schema into a Grammar (SchemaToGBNF then
// Parse).
func FromJSONSchema(schema []byte) (*Grammar, error) {
	src, err := SchemaToGBNF(schema)
	if err != nil {
		return nil, err
	}
	g, err := Parse(src)
	if err != nil {
		return nil, fmt.Errorf("%w: the generated grammar does not compile: %w", ErrSchema, err)
	}
	return g, nil
}

// JSONObject is the grammar of response_format {"type": "json_object"}:
// any JSON value whose top level is an object.
func JSONObject() *Grammar {
	g, err := FromJSONSchema([]byte(`{"type":"object"}`))
	if err != nil {
		panic(err) // a constant schema
	}
	return g
}

// use adds a primitive rule (and what it needs) and returns its name.
func (c *converter) use(name string) string {
	if _, ok := c.rules[name]; ok {
		return name
	}
	for _, p := range primitiveRules {
		if p.name == name {
			c.rules[name] = p.body
			c.order = append(c.order, name)
			for _, d := range primitiveDeps[name] {
				c.use(d)
			}
			return name
		}
	}
	panic("grammar: unknown primitive " + name)
}

var nonWord = regexp.MustCompile(`[^a-zA-Z0-9-]+`)

// add defines a new rule with a name derived from base and returns it.
func (c *converter) add(base, body string) string {
	base = nonWord.ReplaceAllString(base, "-")
	if base == "" {
		base = "r"
	}
	name := base
	for i := 1; ; i++ {
		if _, taken := c.rules[name]; !taken {
			break
		}
		name = fmt.Sprintf("%s-%d", base, i)
	}
	c.rules[name] = body
	c.order = append(c.order, name)
	return name
}

func (c *converter) errorf(path, format string, args ...any) error {
	if path == "" {
		path = "#"
	}
	return fmt.Errorf("%w: %s: %s", ErrSchema, path, fmt.Sprintf(format, args...))
}

// ref returns the rule of a $ref, defining it on first use (so recursive
// schemas work: the name exists before its body).
func (c *converter) ref(ref, path string) (string, error) {
	if name, ok := c.refs[ref]; ok {
		return name, nil
	}
	target, err := c.resolve(ref, path)
	if err != nil {
		return "", err
	}
	base := ref[strings.LastIndex(ref, "/")+1:]
	name := c.add("ref-"+base, "")
	c.refs[ref] = name
	body, err := c.visit(target, name, ref)
	if err != nil {
		return "", err
	}
	c.rules[name] = body
	return name, nil
}

func (c *converter) resolve(ref, path string) (any, error) {
	if ref == "#" {
		return c.root, nil
	}
	if !strings.HasPrefix(ref, "#/") {
		return nil, c.errorf(path, "$ref %q: only local references (#/$defs/..., #/definitions/...) are supported", ref)
	}
	cur := c.root
	for _, part := range strings.Split(ref[2:], "/") {
		part = strings.ReplaceAll(strings.ReplaceAll(part, "~1", "/"), "~0", "~")
		o, ok := cur.(*object)
		if !ok {
			return nil, c.errorf(path, "$ref %q does not resolve", ref)
		}
		if cur, ok = o.get(part); !ok {
			return nil, c.errorf(path, "$ref %q does not resolve: no %q", ref, part)
		}
	}
	return cur, nil
}

// visit returns a GBNF expression for schema s (rule bodies for its parts
// are added under names derived from name).
func (c *converter) visit(s any, name, path string) (string, error) {
	c.depth++
	defer func() { c.depth-- }()
	if c.depth > maxJSONDepth {
		return "", c.errorf(path, "schema nested deeper than %d", maxJSONDepth)
	}
	switch t := s.(type) {
	case bool:
		if !t {
			return "", c.errorf(path, "schema false matches nothing")
		}
		return c.use("value"), nil
	case *object:
		return c.visitObject(t, name, path)
	}
	return "", c.errorf(path, "a schema must be an object or a boolean")
}

func (c *converter) visitObject(s *object, name, path string) (string, error) {
	if r, ok := s.get("$ref"); ok {
		ref, _ := r.(string)
		return c.ref(ref, path+"/$ref")
	}
	if v, ok := s.get("const"); ok {
		return literalJSON(v) + " " + c.use("space"), nil
	}
	if v, ok := s.get("enum"); ok {
		vals, _ := v.([]any)
		if len(vals) == 0 {
			return "", c.errorf(path+"/enum", "enum must be a non-empty array")
		}
		alts := make([]string, len(vals))
		for i, e := range vals {
			alts[i] = literalJSON(e)
		}
		return "(" + strings.Join(alts, " | ") + ") " + c.use("space"), nil
	}
	for _, kw := range []string{"anyOf", "oneOf"} {
		if v, ok := s.get(kw); ok {
			subs, _ := v.([]any)
			if len(subs) == 0 {
				return "", c.errorf(path+"/"+kw, "%s must be a non-empty array", kw)
			}
			alts := make([]string, len(subs))
			for i, sub := range subs {
				e, err := c.visit(sub, fmt.Sprintf("%s-%d", name, i), fmt.Sprintf("%s/%s/%d", path, kw, i))
				if err != nil {
					return "", err
				}
				alts[i] = c.add(fmt.Sprintf("%s-%d", name, i), e)
			}
			return "(" + strings.Join(alts, " | ") + ")", nil
		}
	}
	if v, ok := s.get("allOf"); ok {
		return c.allOf(v, name, path+"/allOf")
	}
	typ, hasType := s.get("type")
	if types, ok := typ.([]any); ok {
		alts := make([]string, 0, len(types))
		for i, tv := range types {
			sub := &object{keys: append([]string{}, s.keys...), vals: map[string]any{}}
			for k, v := range s.vals {
				sub.vals[k] = v
			}
			sub.vals["type"] = tv
			e, err := c.visitObject(sub, fmt.Sprintf("%s-%d", name, i), fmt.Sprintf("%s/type/%d", path, i))
			if err != nil {
				return "", err
			}
			alts = append(alts, "("+e+")")
		}
		if len(alts) == 0 {
			return "", c.errorf(path+"/type", "type must not be an empty array")
		}
		return "(" + strings.Join(alts, " | ") + ")", nil
	}
	ts, _ := typ.(string)
	if hasType && ts == "" {
		return "", c.errorf(path+"/type", "type must be a string or an array of strings")
	}
	_, hasProps := s.get("properties")
	_, hasItems := s.get("items")
	_, hasPrefix := s.get("prefixItems")
	switch {
	case ts == "object" || !hasType && hasProps:
		return c.object(s, name, path)
	case ts == "array" || !hasType && (hasItems || hasPrefix):
		return c.array(s, name, path)
	case ts == "string":
		return c.str(s, name, path)
	case ts == "integer":
		return c.integer(s, path)
	case ts == "number":
		return c.use("number"), nil
	case ts == "boolean":
		return c.use("boolean"), nil
	case ts == "null":
		return c.use("null"), nil
	case !hasType:
		return c.use("value"), nil
	}
	return "", c.errorf(path+"/type", "unknown type %q", ts)
}

// literalJSON is a GBNF literal of v as compact JSON.
func literalJSON(v any) string {
	var b bytes.Buffer
	encodeCompact(&b, v)
	return quoteLiteral(b.String())
}

// allOf merges the properties and required lists of object schemas.
func (c *converter) allOf(v any, name, path string) (string, error) {
	subs, _ := v.([]any)
	if len(subs) == 0 {
		return "", c.errorf(path, "allOf must be a non-empty array")
	}
	merged := &object{vals: map[string]any{}}
	props := &object{vals: map[string]any{}}
	var required []any
	for i, sub := range subs {
		o, ok := sub.(*object)
		for ok {
			r, isRef := o.get("$ref")
			if !isRef {
				break
			}
			ref, _ := r.(string)
			t, err := c.resolve(ref, fmt.Sprintf("%s/%d", path, i))
			if err != nil {
				return "", err
			}
			o, ok = t.(*object)
		}
		if !ok {
			return "", c.errorf(fmt.Sprintf("%s/%d", path, i), "allOf is supported for object schemas only")
		}
		if t, _ := o.get("type"); t != nil && t != "object" {
			return "", c.errorf(fmt.Sprintf("%s/%d", path, i), "allOf is supported for object schemas only, not type %v", t)
		}
		if p, ok := o.get("properties"); ok {
			po, ok := p.(*object)
			if !ok {
				return "", c.errorf(fmt.Sprintf("%s/%d/properties", path, i), "properties must be an object")
			}
			for _, k := range po.keys {
				if _, dup := props.vals[k]; !dup {
					props.keys = append(props.keys, k)
				}
				props.vals[k] = po.vals[k]
			}
		}
		if r, ok := o.get("required"); ok {
			ra, ok := r.([]any)
			if !ok {
				return "", c.errorf(fmt.Sprintf("%s/%d/required", path, i), "required must be an array of strings")
			}
			required = append(required, ra...)
		}
		if a, ok := o.get("additionalProperties"); ok {
			merged.vals["additionalProperties"] = a
		}
	}
	merged.keys = []string{"properties", "required"}
	merged.vals["properties"] = props
	merged.vals["required"] = required
	if _, ok := merged.vals["additionalProperties"]; ok {
		merged.keys = append(merged.keys, "additionalProperties")
	}
	return c.object(merged, name, path)
}

// object builds `{ kv, kv, ... }` with the properties in schema order:
// required ones always, optional ones each either present or not, so the
// rule chain has one rule per property and per "a comma is needed".
func (c *converter) object(s *object, name, path string) (string, error) {
	pv, hasProps := s.get("properties")
	props, _ := pv.(*object)
	if hasProps && props == nil {
		return "", c.errorf(path+"/properties", "properties must be an object")
	}
	required := map[string]bool{}
	if r, ok := s.get("required"); ok {
		ra, ok := r.([]any)
		if !ok {
			return "", c.errorf(path+"/required", "required must be an array of strings")
		}
		for _, k := range ra {
			ks, ok := k.(string)
			if !ok {
				return "", c.errorf(path+"/required", "required must be an array of strings")
			}
			required[ks] = true
		}
	}
	extra := ""
	if a, ok := s.get("additionalProperties"); ok {
		switch at := a.(type) {
		case bool:
			if at {
				extra = c.use("value")
			}
		case *object:
			e, err := c.visit(at, name+"-additional", path+"/additionalProperties")
			if err != nil {
				return "", err
			}
			extra = c.add(name+"-additional", e)
		default:
			return "", c.errorf(path+"/additionalProperties", "additionalProperties must be a boolean or a schema")
		}
	} else if props == nil || len(props.keys) == 0 {
		extra = c.use("value") // {"type":"object"}: any object
	}
	space := c.use("space")
	var kvs []string
	var keys []string
	if props != nil {
		for _, k := range props.keys {
			e, err := c.visit(props.vals[k], name+"-"+k, path+"/properties/"+k)
			if err != nil {
				return "", err
			}
			kb, _ := json.Marshal(k)
			kvs = append(kvs, c.add(name+"-"+k+"-kv", quoteLiteral(string(kb))+" "+space+` ":" `+space+" "+e))
			keys = append(keys, k)
		}
	}
	for k := range required {
		if props == nil || !containsString(props.keys, k) {
			return "", c.errorf(path+"/required", "required property %q is not in properties", k)
		}
	}
	extraKV := ""
	if extra != "" {
		key := c.use("string")
		if len(keys) > 0 {
			key = `"\"" ` + c.notStrings(name+"-additional-key", keys) + ` "\"" ` + space
		}
		extraKV = c.add(name+"-additional-kv", key+` ":" `+space+" "+extra)
	}
	// tail[i][first]: what may follow once properties before i are done;
	// first says no property has been written yet (so no comma).
	n := len(kvs)
	tail := make([][2]string, n+1)
	if extraKV != "" {
		tail[n][0] = c.add(name+"-rest", fmt.Sprintf(`( "," %s %s )*`, space, extraKV))
		tail[n][1] = c.add(name+"-rest", fmt.Sprintf(`( %s ( "," %s %s )* )?`, extraKV, space, extraKV))
	}
	for i := n - 1; i >= 0; i-- {
		after := func(first bool) string {
			if first {
				return tail[i+1][1]
			}
			return tail[i+1][0]
		}
		join := func(parts ...string) string {
			var out []string
			for _, p := range parts {
				if p != "" {
					out = append(out, p)
				}
			}
			return strings.Join(out, " ")
		}
		var notFirst, first string
		if required[keys[i]] {
			notFirst = join(`","`, space, kvs[i], after(false))
			first = join(kvs[i], after(false))
		} else {
			notFirst = join(`( ","`, space, kvs[i], `)?`, after(false))
			if a := after(true); a != "" {
				first = fmt.Sprintf("( %s | %s )", join(kvs[i], after(false)), a)
			} else {
				first = fmt.Sprintf("( %s )?", join(kvs[i], after(false)))
			}
		}
		tail[i][0] = c.add(fmt.Sprintf("%s-after-%d", name, i), notFirst)
		tail[i][1] = c.add(fmt.Sprintf("%s-from-%d", name, i), first)
	}
	body := `"{" ` + space
	if tail[0][1] != "" {
		body += " " + tail[0][1]
	}
	return body + ` "}" ` + space, nil
}

// notStrings is a rule for the inside of a JSON string that is none of
// words (so an additional property never repeats a listed one): a trie
// of the words where each node also allows any other character, and the
// end only where no word ends. Escapes are taken as other characters.
func (c *converter) notStrings(name string, words []string) string {
	type trieNode struct {
		next  map[rune]*trieNode
		order []rune
		end   bool
	}
	root := &trieNode{next: map[rune]*trieNode{}}
	for _, w := range words {
		n := root
		for _, r := range w {
			child, ok := n.next[r]
			if !ok {
				child = &trieNode{next: map[rune]*trieNode{}}
				n.next[r] = child
				n.order = append(n.order, r)
			}
			n = child
		}
		n.end = true
	}
	ch := c.use("char")
	var build func(n *trieNode) string
	build = func(n *trieNode) string {
		var alts []string
		var class strings.Builder
		for _, r := range n.order {
			alts = append(alts, quoteLiteral(string(r))+" "+build(n.next[r]))
			class.WriteString(classChar(r))
		}
		alts = append(alts, "[^"+class.String()+`"\\\x7F\x00-\x1F] `+ch+"*", `[\\] (["\\/bfnrt] | "u" [0-9a-fA-F]{4}) `+ch+"*")
		if !n.end {
			alts = append(alts, `""`)
		}
		return c.add(name, strings.Join(alts, " | "))
	}
	return build(root)
}

func containsString(list []string, s string) bool {
	for _, e := range list {
		if e == s {
			return true
		}
	}
	return false
}

// count reads a non-negative integer keyword (-1 when absent).
func (c *converter) count(s *object, kw, path string) (int, error) {
	v, ok := s.get(kw)
	if !ok {
		return -1, nil
	}
	num, _ := v.(json.Number)
	n, err := strconv.Atoi(num.String())
	if err != nil || n < 0 {
		return 0, c.errorf(path+"/"+kw, "%s must be a non-negative integer", kw)
	}
	if n > maxRepeat {
		return 0, c.errorf(path+"/"+kw, "%s %d is larger than the supported %d", kw, n, maxRepeat)
	}
	return n, nil
}

// repeatSep is `item ("," item){min-1,max-1}` with min..max items (max <
// 0: unbounded), optional as a whole when min is 0.
func repeatSep(item, sep string, min, max int) string {
	if max == 0 {
		return ""
	}
	rest := ""
	switch {
	case max < 0:
		rest = fmt.Sprintf("( %s %s ){%d,}", sep, item, maxInt(min-1, 0))
	case max == 1:
	default:
		rest = fmt.Sprintf("( %s %s ){%d,%d}", sep, item, maxInt(min-1, 0), max-1)
	}
	out := item
	if rest != "" {
		out += " " + rest
	}
	if min == 0 {
		return "( " + out + " )?"
	}
	return out
}

func maxInt(a, b int) int {
	if a > b {
		return a
	}
	return b
}

func (c *converter) array(s *object, name, path string) (string, error) {
	space := c.use("space")
	minItems, err := c.count(s, "minItems", path)
	if err != nil {
		return "", err
	}
	maxItems, err := c.count(s, "maxItems", path)
	if err != nil {
		return "", err
	}
	if maxItems >= 0 && minItems > maxItems {
		return "", c.errorf(path, "minItems %d is larger than maxItems %d", minItems, maxItems)
	}
	minItems = maxInt(minItems, 0)
	sep := `"," ` + space
	pv, ok := s.get("prefixItems")
	if iv, isList := s.get("items"); !ok && isList {
		if list, isArray := iv.([]any); isArray {
			// Draft-07 tuples: items as an array, additionalItems for the rest.
			pv, ok = list, true
			rest := any(false)
			if ai, has := s.get("additionalItems"); has {
				rest = ai
			}
			s = &object{keys: []string{"items"}, vals: map[string]any{"items": rest}}
		}
	}
	if ok {
		pa, ok := pv.([]any)
		if !ok {
			return "", c.errorf(path+"/prefixItems", "prefixItems must be an array of schemas")
		}
		var parts []string
		for i, sub := range pa {
			e, err := c.visit(sub, fmt.Sprintf("%s-%d", name, i), fmt.Sprintf("%s/prefixItems/%d", path, i))
			if err != nil {
				return "", err
			}
			item := c.add(fmt.Sprintf("%s-%d", name, i), e)
			if i > 0 {
				item = sep + " " + item
			}
			parts = append(parts, item)
		}
		body := `"[" ` + space + " " + strings.Join(parts, " ")
		if iv, ok := s.get("items"); ok && iv != false && len(pa) > 0 {
			e, err := c.visit(iv, name+"-item", path+"/items")
			if err != nil {
				return "", err
			}
			item := c.add(name+"-item", e)
			body += fmt.Sprintf(" ( %s %s )*", sep, item)
		}
		return body + ` "]" ` + space, nil
	}
	var item string
	if iv, ok := s.get("items"); ok {
		e, err := c.visit(iv, name+"-item", path+"/items")
		if err != nil {
			return "", err
		}
		item = c.add(name+"-item", e)
	} else {
		item = c.use("value")
	}
	body := `"[" ` + space
	if r := repeatSep(item, sep, minItems, maxItems); r != "" {
		body += " " + r
	}
	return body + ` "]" ` + space, nil
}

func (c *converter) str(s *object, name, path string) (string, error) {
	if f, ok := s.get("format"); ok {
		switch f {
		case "date", "time", "date-time", "uuid":
			return c.use(f.(string) + "-string"), nil
		}
		// Other formats (email, uri, ...) are plain strings, as in llama.cpp.
	}
	if p, ok := s.get("pattern"); ok {
		ps, _ := p.(string)
		e, err := regexToGBNF(ps)
		if err != nil {
			return "", c.errorf(path+"/pattern", "%v", err)
		}
		return `"\"" ` + c.add(name+"-pattern", e) + ` "\"" ` + c.use("space"), nil
	}
	minLen, err := c.count(s, "minLength", path)
	if err != nil {
		return "", err
	}
	maxLen, err := c.count(s, "maxLength", path)
	if err != nil {
		return "", err
	}
	if minLen < 0 && maxLen < 0 {
		return c.use("string"), nil
	}
	if maxLen >= 0 && minLen > maxLen {
		return "", c.errorf(path, "minLength %d is larger than maxLength %d", minLen, maxLen)
	}
	minLen = maxInt(minLen, 0)
	ch := c.use("char")
	rep := fmt.Sprintf("{%d,}", minLen)
	if maxLen >= 0 {
		rep = fmt.Sprintf("{%d,%d}", minLen, maxLen)
	}
	return `"\"" ` + ch + rep + ` "\"" ` + c.use("space"), nil
}

// bound reads a numeric keyword as an integer bound: minimum rounds up,
// maximum down; exclusive ones move by one.
func (c *converter) bound(s *object, kw string, up bool, path string) (int64, bool, error) {
	v, ok := s.get(kw)
	if !ok {
		return 0, false, nil
	}
	num, _ := v.(json.Number)
	f, err := num.Float64()
	if err != nil || math.IsInf(f, 0) || math.Abs(f) > 1e15 {
		return 0, false, c.errorf(path+"/"+kw, "%s must be a number of at most 15 digits", kw)
	}
	if up {
		return int64(math.Ceil(f)), true, nil
	}
	return int64(math.Floor(f)), true, nil
}

func (c *converter) integer(s *object, path string) (string, error) {
	lo, hasLo, err := c.bound(s, "minimum", true, path)
	if err != nil {
		return "", err
	}
	hi, hasHi, err := c.bound(s, "maximum", false, path)
	if err != nil {
		return "", err
	}
	if x, ok, err := c.bound(s, "exclusiveMinimum", false, path); err != nil {
		return "", err
	} else if ok && (!hasLo || x+1 > lo) {
		lo, hasLo = x+1, true
	}
	if x, ok, err := c.bound(s, "exclusiveMaximum", true, path); err != nil {
		return "", err
	} else if ok && (!hasHi || x-1 < hi) {
		hi, hasHi = x-1, true
	}
	if !hasLo && !hasHi {
		return c.use("integer"), nil
	}
	if hasLo && hasHi && lo > hi {
		return "", c.errorf(path, "minimum %d is above maximum %d: no integer fits", lo, hi)
	}
	return "(" + intRange(lo, hasLo, hi, hasHi) + ") " + c.use("space"), nil
}
