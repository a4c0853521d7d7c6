package config

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
	"reflect"
	"strconv"
	"strings"

	"go.yaml.in/yaml/v3"
)

// MaxFileSize bounds the configuration file that Load reads.
const MaxFileSize = 4 << 20

// Load builds the configuration: Default, then the YAML file at path merged over it (when
// path is not empty), then the RAMPART_ variables of environ, then Validate. Pass
// os.Environ() as environ in production. Every problem is reported, joined with
// errors.Join; each is an *Error naming the key path and, where it has one, the file line
// or the environment variable it came from.
func Load(path string, environ []string) (*Config, error) {
	c := Default()
	o := origins{}
	var errs []error
	if path != "" {
		root, err := readFile(path)
		if err != nil {
			return nil, err
		}
		if root != nil {
			d := fileDecoder{file: path, origins: o}
			d.decode(root, reflect.ValueOf(c).Elem(), "")
			errs = append(errs, d.errs...)
		}
	}
	errs = append(errs, applyEnv(c, environ, o)...)
	if len(errs) > 0 {
		return nil, errors.Join(errs...)
	}
	if err := c.validate(o); err != nil {
		return nil, err
	}
	return c, nil
}

// readFile parses the file into a node tree. It returns nil for a file without content.
func readFile(path string) (*yaml.Node, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("config: %w", err)
	}
	defer f.Close()
	data, err := io.ReadAll(io.LimitReader(f, MaxFileSize+1))
	if err != nil {
		return nil, fmt.Errorf("config: %w", err)
	}
	if len(data) > MaxFileSize {
		return nil, &Error{Source: path, Msg: fmt.Sprintf("file is larger than %d bytes", MaxFileSize)}
	}
	dec := yaml.NewDecoder(bytes.NewReader(data))
	var doc yaml.Node
	if err := dec.Decode(&doc); err != nil {
		if err == io.EOF {
			return nil, nil
		}
		return nil, syntaxError(path, err)
	}
	var next yaml.Node
	switch err := dec.Decode(&next); {
	case err == io.EOF:
	case err != nil:
		return nil, syntaxError(path, err)
	default:
		return nil, &Error{Source: fmt.Sprintf("%s:%d", path, next.Line), Msg: "a second YAML document; the file must hold exactly one"}
	}
	if doc.Kind != yaml.DocumentNode || len(doc.Content) == 0 {
		return nil, nil
	}
	return doc.Content[0], nil
}

// syntaxError turns "yaml: line 3: ..." into an *Error with Source "FILE:3".
func syntaxError(path string, err error) error {
	msg := err.Error()
	src := path
	if rest, ok := strings.CutPrefix(msg, "yaml: line "); ok {
		if num, tail, ok := strings.Cut(rest, ": "); ok {
			if _, err := strconv.Atoi(num); err == nil {
				src, msg = path+":"+num, tail
			}
		}
	}
	return &Error{Source: src, Msg: "invalid YAML: " + strings.TrimPrefix(msg, "yaml: ")}
}

// fileDecoder walks a YAML node tree against the Config schema, writing values into the
// configuration and collecting every problem with its line.
type fileDecoder struct {
	file    string
	origins origins
	errs    []error
}

func (d *fileDecoder) at(n *yaml.Node) string { return fmt.Sprintf("%s:%d", d.file, n.Line) }

func (d *fileDecoder) fail(n *yaml.Node, path, format string, args ...any) {
	d.errs = append(d.errs, &Error{Source: d.at(n), Path: path, Msg: fmt.Sprintf(format, args...)})
}

func deref(n *yaml.Node) *yaml.Node {
	for n.Kind == yaml.AliasNode && n.Alias != nil {
		n = n.Alias
	}
	return n
}

func isNull(n *yaml.Node) bool { return n.Kind == yaml.ScalarNode && n.ShortTag() == "!!null" }

func kindName(n *yaml.Node) string {
	switch n.Kind {
	case yaml.MappingNode:
		return "a mapping"
	case yaml.SequenceNode:
		return "a list"
	case yaml.ScalarNode:
		return describe(n.Value, n.ShortTag())
	}
	return "something else"
}

func (d *fileDecoder) decode(n *yaml.Node, v reflect.Value, path string) {
	n = deref(n)
	t := v.Type()
	switch {
	case isStructList(t):
		d.decodeStructList(n, v, path)
	case t.Kind() == reflect.Slice && !isText(t):
		d.decodeList(n, v, path)
	case isLeaf(t):
		d.decodeScalar(n, v, path)
	case t.Kind() == reflect.Struct:
		d.decodeMapping(n, v, path, func(key string) (reflect.Value, bool) {
			f, ok := fieldNamed(t, key)
			if !ok {
				return reflect.Value{}, false
			}
			return v.FieldByIndex(f.index), true
		})
	case t.Kind() == reflect.Map:
		if isNull(n) || (n.Kind == yaml.MappingNode && len(n.Content) == 0) {
			return // {} adds no entries
		}
		if v.IsNil() {
			v.Set(reflect.MakeMap(t))
		}
		d.decodeMapping(n, v, path, nil)
	default:
		panic("config: unsupported schema type " + t.String())
	}
}

// decodeMapping walks the pairs of a mapping node. For a struct, field finds the key's
// field; for a map (field == nil) every key is an entry name and merges into v by name.
func (d *fileDecoder) decodeMapping(n *yaml.Node, v reflect.Value, path string, field func(string) (reflect.Value, bool)) {
	if isNull(n) {
		return // an empty section, e.g. every key below it commented out
	}
	if n.Kind != yaml.MappingNode {
		d.fail(n, path, "want a mapping of keys, got %s", kindName(n))
		return
	}
	seen := map[string]int{}
	for i := 0; i+1 < len(n.Content); i += 2 {
		k, val := deref(n.Content[i]), n.Content[i+1]
		if k.ShortTag() == "!!merge" {
			d.fail(k, path, "YAML merge keys (<<) are not supported; write the keys out")
			continue
		}
		if k.Kind != yaml.ScalarNode || isNull(k) {
			d.fail(k, path, "want a key name, got %s", kindName(k))
			continue
		}
		key := k.Value
		kp := joinPath(path, key)
		if first, dup := seen[key]; dup {
			d.fail(k, kp, "duplicate key (first at line %d)", first)
			continue
		}
		seen[key] = k.Line
		if field == nil {
			entry := mapEntry(v, key)
			d.origins[kp] = d.at(k)
			d.decode(val, entry, kp)
			v.SetMapIndex(reflect.ValueOf(key), entry)
			continue
		}
		fv, ok := field(key)
		if !ok {
			d.errs = append(d.errs, unknownKeyError(d.at(k), kp))
			continue
		}
		if isLeaf(fv.Type()) {
			d.origins[kp] = d.at(k)
		}
		d.decode(val, fv, kp)
	}
}

func (d *fileDecoder) decodeScalar(n *yaml.Node, v reflect.Value, path string) {
	if n.Kind != yaml.ScalarNode {
		d.fail(n, path, "want %s, got %s", want(v.Type()), kindName(n))
		return
	}
	if isNull(n) {
		d.fail(n, path, "missing value; want %s", want(v.Type()))
		return
	}
	if err := setText(v, n.Value, n.ShortTag()); err != nil {
		d.fail(n, path, "%v", err)
	}
}

func (d *fileDecoder) decodeList(n *yaml.Node, v reflect.Value, path string) {
	if isNull(n) {
		v.Set(reflect.Zero(v.Type()))
		return
	}
	if n.Kind != yaml.SequenceNode {
		d.fail(n, path, "want %s, got %s", want(v.Type()), kindName(n))
		return
	}
	var list reflect.Value
	if len(n.Content) > 0 {
		list = reflect.MakeSlice(v.Type(), 0, len(n.Content))
	} else {
		list = reflect.Zero(v.Type())
	}
	for i, item := range n.Content {
		item = deref(item)
		if item.Kind != yaml.ScalarNode || item.ShortTag() != "!!str" {
			d.fail(item, fmt.Sprintf("%s[%d]", path, i), "want a string, got %s", kindName(item))
			continue
		}
		list = reflect.Append(list, reflect.ValueOf(item.Value).Convert(v.Type().Elem()))
	}
	v.Set(list)
}

// decodeStructList reads a list of mappings; each entry starts from its type's defaults and
// its keys are checked like any section's ("authentication[2].mechanism" in errors).
func (d *fileDecoder) decodeStructList(n *yaml.Node, v reflect.Value, path string) {
	if isNull(n) {
		v.Set(reflect.Zero(v.Type()))
		return
	}
	if n.Kind != yaml.SequenceNode {
		d.fail(n, path, "want %s, got %s", want(v.Type()), kindName(n))
		return
	}
	if len(n.Content) == 0 {
		v.Set(reflect.Zero(v.Type())) // [] is the same as no entries
		return
	}
	list := reflect.MakeSlice(v.Type(), 0, len(n.Content))
	for i, item := range n.Content {
		elem := newElem(v.Type().Elem())
		ip := fmt.Sprintf("%s[%d]", path, i)
		d.origins[ip] = d.at(deref(item))
		d.decode(item, elem, ip)
		list = reflect.Append(list, elem)
	}
	v.Set(list)
}
