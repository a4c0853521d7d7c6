package config

import (
	"encoding"
	"fmt"
	"reflect"
	"sort"
	"strings"
)

// The schema is the Config struct itself: these helpers read it through reflection on the
// `yaml` tags, for the file loader, the environment overrides and KeyPaths alike.

type field struct {
	name  string
	index []int
	typ   reflect.Type
}

// fieldsOf lists the keys of a struct type, flattening `yaml:",inline"` fields and
// skipping `yaml:"-"` ones.
func fieldsOf(t reflect.Type) []field {
	var out []field
	for i := 0; i < t.NumField(); i++ {
		f := t.Field(i)
		name, opts, _ := strings.Cut(f.Tag.Get("yaml"), ",")
		if !f.IsExported() || name == "-" {
			continue
		}
		if opts == "inline" {
			for _, sub := range fieldsOf(f.Type) {
				sub.index = append([]int{i}, sub.index...)
				out = append(out, sub)
			}
			continue
		}
		if name == "" {
			panic(fmt.Sprintf("config: field %s.%s has no yaml key", t.Name(), f.Name))
		}
		out = append(out, field{name: name, index: []int{i}, typ: f.Type})
	}
	return out
}

func fieldNamed(t reflect.Type, name string) (field, bool) {
	for _, f := range fieldsOf(t) {
		if f.name == name {
			return f, true
		}
	}
	return field{}, false
}

var textUnmarshalerType = reflect.TypeFor[encoding.TextUnmarshaler]()

func isText(t reflect.Type) bool { return reflect.PointerTo(t).Implements(textUnmarshalerType) }

// isLeaf reports whether a key of type t takes a value rather than holding more keys.
func isLeaf(t reflect.Type) bool {
	if isText(t) {
		return true
	}
	switch t.Kind() {
	case reflect.Bool, reflect.Int, reflect.Float64, reflect.String:
		return true
	case reflect.Slice:
		return !isStructList(t)
	}
	return false
}

// isStructList reports whether t is a list of mappings (e.g. the authentication chain)
// rather than a list of strings.
func isStructList(t reflect.Type) bool {
	return t.Kind() == reflect.Slice && t.Elem().Kind() == reflect.Struct
}

// newElem returns a new list or map element of type t with its defaults.
func newElem(t reflect.Type) reflect.Value {
	elem := reflect.New(t).Elem()
	if d, ok := elem.Addr().Interface().(interface{ setDefaults() }); ok {
		d.setDefaults()
	}
	return elem
}

// want describes the value a key of type t takes, for error messages.
func want(t reflect.Type) string {
	switch t {
	case reflect.TypeFor[Size]():
		return "a size (e.g. 512B, 64KB, 1MB)"
	case reflect.TypeFor[Duration]():
		return "a duration (e.g. 15s, 1m30s, 2h, 7d)"
	case reflect.TypeFor[Limit]():
		return "a whole number or infinity"
	}
	switch t.Kind() {
	case reflect.Bool:
		return "true or false"
	case reflect.Int:
		return "an integer"
	case reflect.Float64:
		return "a number"
	case reflect.String:
		return "a string"
	case reflect.Slice:
		if isStructList(t) {
			return "a list of mappings"
		}
		return "a list of strings"
	case reflect.Struct, reflect.Map:
		return "a mapping of keys"
	}
	return "a value"
}

// setText parses text into v, which must be addressable and of a leaf type. tag is the
// resolved YAML tag of the scalar, or "" when text comes from the environment, where
// every value is a string and only the parser decides.
func setText(v reflect.Value, text, tag string) error {
	accepts := func(tags ...string) error {
		if tag == "" {
			return nil
		}
		for _, t := range tags {
			if tag == t {
				return nil
			}
		}
		return fmt.Errorf("want %s, got %s", want(v.Type()), describe(text, tag))
	}
	if isText(v.Type()) {
		tags := []string{"!!str", "!!int", "!!float"}
		if v.Type() == reflect.TypeFor[AuthnMode]() {
			tags = append(tags, "!!bool") // enable_authn: true | false | quick_deny_anonymous
		}
		if err := accepts(tags...); err != nil {
			return err
		}
		return v.Addr().Interface().(encoding.TextUnmarshaler).UnmarshalText([]byte(text))
	}
	switch v.Kind() {
	case reflect.Bool:
		if err := accepts("!!bool"); err != nil {
			return err
		}
		b, err := parseBool(text)
		if err != nil {
			return err
		}
		v.SetBool(b)
	case reflect.Int:
		if err := accepts("!!int"); err != nil {
			return err
		}
		n, err := parseInt(text)
		if err != nil {
			return err
		}
		v.SetInt(int64(n))
	case reflect.Float64:
		if err := accepts("!!int", "!!float"); err != nil {
			return err
		}
		f, err := parseFloat(text)
		if err != nil {
			return err
		}
		v.SetFloat(f)
	case reflect.String:
		if err := accepts("!!str"); err != nil {
			return fmt.Errorf("%v (quote it if it is meant as text)", err)
		}
		v.SetString(text)
	case reflect.Slice:
		if tag != "" {
			return fmt.Errorf("want %s, got %s", want(v.Type()), describe(text, tag))
		}
		v.Set(reflect.Zero(v.Type()))
		if strings.TrimSpace(text) == "" {
			return nil
		}
		items := strings.Split(text, ",")
		list := reflect.MakeSlice(v.Type(), 0, len(items))
		for _, it := range items {
			it = strings.TrimSpace(it)
			if it == "" {
				return fmt.Errorf("empty item in list %q", text)
			}
			list = reflect.Append(list, reflect.ValueOf(it).Convert(v.Type().Elem()))
		}
		v.Set(list)
	default:
		panic("config: unsupported leaf type " + v.Type().String())
	}
	return nil
}

func describe(text, tag string) string {
	switch tag {
	case "!!str":
		return fmt.Sprintf("string %q", text)
	case "!!int":
		return "integer " + text
	case "!!float":
		return "number " + text
	case "!!bool":
		return "boolean " + text
	case "!!null":
		return "no value"
	case "!!timestamp":
		return "timestamp " + text
	}
	return fmt.Sprintf("%s %q", tag, text)
}

// mapEntry returns an addressable copy of m[key], or, for a new key, the type's defaults.
// The caller stores it back with SetMapIndex.
func mapEntry(m reflect.Value, key string) reflect.Value {
	if old := m.MapIndex(reflect.ValueOf(key)); old.IsValid() {
		elem := reflect.New(m.Type().Elem()).Elem()
		elem.Set(old)
		return elem
	}
	return newElem(m.Type().Elem())
}

func joinPath(path, key string) string {
	if path == "" {
		return key
	}
	return path + "." + key
}

// KeyPaths returns every key path of the schema in sorted order, with "<name>" standing
// for the name of a map entry and "[]" for any entry of a list of mappings:
// "listeners.tcp.<name>.bind", "mqtt.max_packet_size", "authentication[].mechanism".
func KeyPaths() []string {
	var out []string
	var walk func(t reflect.Type, path string)
	walk = func(t reflect.Type, path string) {
		switch {
		case isLeaf(t):
			out = append(out, path)
		case isStructList(t):
			walk(t.Elem(), path+"[]")
		case t.Kind() == reflect.Struct:
			for _, f := range fieldsOf(t) {
				walk(f.typ, joinPath(path, f.name))
			}
		case t.Kind() == reflect.Map:
			walk(t.Elem(), joinPath(path, "<name>"))
		}
	}
	walk(reflect.TypeFor[Config](), "")
	sort.Strings(out)
	return out
}
