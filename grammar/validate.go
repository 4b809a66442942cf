package grammar

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"regexp"
	"strings"
	"unicode/utf8"
)

// Validate checks the JSON document doc against schema, for the subset
// of JSON Schema that FromJSONSchema supports (type, enum, const,
// anyOf/oneOf/allOf, $ref, properties in schema order, required,
// additionalProperties, items/prefixItems, minItems/maxItems, string
// lengths, pattern, format, number bounds). It is the check behind the
// package's tests, exported so the server's tests can check generated
// output the same way; errors name the JSON pointer.
func Validate(schema, doc []byte) error {
	s, err := decodeOrdered(schema)
	if err != nil {
		return fmt.Errorf("%w: %v", ErrSchema, err)
	}
	v, err := decodeOrdered(doc)
	if err != nil {
		return fmt.Errorf("document: %w", err)
	}
	return validate(s, s, v, "#")
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
