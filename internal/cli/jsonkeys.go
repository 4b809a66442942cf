package cli

import (
	"fmt"
	"reflect"
	"regexp"
	"strings"
)

var snakeCase = regexp.MustCompile(`^[a-z][a-z0-9]*(_[a-z0-9]+)*$`)

// CheckJSONKeys reports the JSON object keys of v's type (v is a value
// printed with -o json) that are not snake_case, as every -o json output
// spells them: the tests of the commands call it on each output type. It
// follows struct fields (embedded ones too), pointers, slices, arrays and
// map values; map keys are data and are not checked.
func CheckJSONKeys(v any) error {
	var bad []string
	seen := map[reflect.Type]bool{}
	var walk func(t reflect.Type, path string)
	walk = func(t reflect.Type, path string) {
		for t.Kind() == reflect.Pointer || t.Kind() == reflect.Slice || t.Kind() == reflect.Array || t.Kind() == reflect.Map {
			t = t.Elem()
		}
		if t.Kind() != reflect.Struct || seen[t] {
			return
		}
		if _, ok := reflect.New(t).Interface().(interface{ MarshalJSON() ([]byte, error) }); ok {
			return
		}
		seen[t] = true
		defer delete(seen, t)
		for i := range t.NumField() {
			f := t.Field(i)
			if !f.IsExported() && !f.Anonymous {
				continue
			}
			tag := f.Tag.Get("json")
			if tag == "-" {
				continue
			}
			name, _, _ := strings.Cut(tag, ",")
			if f.Anonymous && name == "" {
				walk(f.Type, path)
				continue
			}
			if name == "" {
				name = f.Name
			}
			if !snakeCase.MatchString(name) {
				bad = append(bad, path+name)
			}
			walk(f.Type, path+name+".")
		}
	}
	walk(reflect.TypeOf(v), "")
	if len(bad) > 0 {
		return fmt.Errorf("JSON keys not in snake_case: %s", strings.Join(bad, ", "))
	}
	return nil
}
