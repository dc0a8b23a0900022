package appliance

import (
	"cmp"
	"fmt"
	"reflect"
	"regexp"
	"strings"
)

// decoderTypeError matches the type errors of the TOML decoder, which are
// plain strings in BurntSushi/toml v1.6 (only syntax errors, and errors
// of a type's own UnmarshalTOML or UnmarshalText, are toml.ParseError):
//
//	toml: line 2 (last key "relay.enabled"): incompatible types: TOML value has type string; destination has type boolean
//	toml: line 1 (last key "relay"): type mismatch for appliance.RelayConfig: expected table but found int64
//
// TestParseConfig notices if an upgrade changes them.
var decoderTypeError = regexp.MustCompile(`^toml: line (\d+) \(last key "([^"]+)"\): (?:incompatible types: TOML value has type ([^;]+);|type mismatch for [^:]+: expected table but found (.+))`)

// typeError rewrites a type error of the TOML decoder in our words, naming
// the key, what it takes and what it got, as in "line 2: relay.enabled:
// want true or false, got a string". It returns other errors unchanged.
func typeError(err error) error {
	m := decoderTypeError.FindStringSubmatch(err.Error())
	if m == nil {
		return err
	}
	line, key, got := m[1], m[2], cmp.Or(m[3], m[4])
	t, ok := configKeyType(key)
	if !ok {
		return err
	}
	return fmt.Errorf("line %s: %s: want %s, got %s", line, key, describeGoType(t, key), describeTOMLType(got))
}

// configKeyType returns the type of the Config field at the dotted key,
// following toml tags.
func configKeyType(key string) (reflect.Type, bool) {
	t := reflect.TypeFor[Config]()
	for name := range strings.SplitSeq(key, ".") {
		if t.Kind() != reflect.Struct {
			return nil, false
		}
		field := -1
		for i := range t.NumField() {
			if t.Field(i).Tag.Get("toml") == name {
				field = i
			}
		}
		if field < 0 {
			return nil, false
		}
		t = t.Field(field).Type
	}
	return t, true
}

// describeGoType says what TOML value a field of type t, at key, takes.
func describeGoType(t reflect.Type, key string) string {
	switch t.Kind() {
	case reflect.Bool:
		return "true or false"
	case reflect.String:
		return "a string in double quotes"
	case reflect.Int, reflect.Int64:
		return "a whole number"
	case reflect.Slice:
		if t.Elem().Kind() == reflect.String {
			return `a list of strings in brackets, such as ["…", "…"]`
		}
		return "a list in brackets"
	case reflect.Struct:
		return fmt.Sprintf("a [%s] section", key)
	}
	return t.String()
}

// describeTOMLType names, for people, the Go type the TOML decoder gives a
// value.
func describeTOMLType(t string) string {
	switch {
	case t == "string":
		return "a string"
	case t == "bool":
		return "true or false"
	case strings.HasPrefix(t, "int"):
		return "a whole number"
	case strings.HasPrefix(t, "float"):
		return "a number with a fraction"
	case t == "map[string]any":
		return "a table"
	case strings.HasPrefix(t, "[]map"):
		return "an array of tables"
	case strings.HasPrefix(t, "[]"):
		return "a list"
	case strings.Contains(t, "Date") || strings.Contains(t, "Time"):
		return "a date or time"
	}
	return t
}
