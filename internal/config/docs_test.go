package config

import (
	"os"
	"path/filepath"
	"reflect"
	"regexp"
	"strings"
	"testing"
)

const docsPath = "../../docs/configuration.md"

var backquoted = regexp.MustCompile("`([^`]+)`")

func readDocs(t *testing.T) string {
	t.Helper()
	b, err := os.ReadFile(docsPath)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// tableRows returns the cells of every Markdown table row in doc, header and separator
// rows excluded.
func tableRows(doc string) [][]string {
	var rows [][]string
	for _, line := range strings.Split(doc, "\n") {
		line = strings.TrimSpace(line)
		if !strings.HasPrefix(line, "|") || strings.HasPrefix(line, "| ---") {
			continue
		}
		cells := strings.Split(strings.Trim(line, "|"), "|")
		for i := range cells {
			cells[i] = strings.TrimSpace(cells[i])
		}
		rows = append(rows, cells)
	}
	return rows
}

// schemaPath turns a concrete key path into its schema form: the listener name becomes
// "<name>".
func schemaPath(p string) string {
	parts := strings.Split(p, ".")
	if len(parts) > 2 && parts[0] == "listeners" {
		parts[2] = "<name>"
	}
	return strings.Join(parts, ".")
}

// listenerAuthn matches the keys of a listener's own authentication list; they are the
// keys of the global list and documented once, there.
var listenerAuthn = regexp.MustCompile(`^listeners\.[a-z]+\.<name>\.(authentication\[\]\..*)$`)

// docKeyPaths is KeyPaths with every listener's authentication keys folded into the
// global list's.
func docKeyPaths() []string {
	var out []string
	seen := map[string]bool{}
	for _, p := range KeyPaths() {
		if m := listenerAuthn.FindStringSubmatch(p); m != nil {
			p = m[1]
		}
		if !seen[p] {
			seen[p] = true
			out = append(out, p)
		}
	}
	return out
}

func topLevelKeys() map[string]bool {
	keys := map[string]bool{}
	for _, p := range KeyPaths() {
		first, _, _ := strings.Cut(p, ".")
		keys[first] = true
	}
	return keys
}

func TestEveryKeyIsDocumented(t *testing.T) {
	doc := readDocs(t)
	var missing []string
	for _, p := range docKeyPaths() {
		if !strings.Contains(doc, "`"+p+"`") {
			missing = append(missing, p)
		}
	}
	if len(missing) > 0 {
		t.Errorf("%s does not document these keys (write each in backquotes in a table):\n  %s",
			docsPath, strings.Join(missing, "\n  "))
	}
}

func TestDocumentedKeysExist(t *testing.T) {
	leaves := map[string]bool{}
	sections := map[string]bool{}
	for _, p := range docKeyPaths() {
		leaves[p] = true
		for i := range p {
			if p[i] == '.' {
				sections[p[:i]] = true
			}
		}
	}
	top := topLevelKeys()
	documented := 0
	for _, row := range tableRows(readDocs(t)) {
		for col, cell := range row {
			for _, m := range backquoted.FindAllStringSubmatch(cell, -1) {
				p := m[1]
				first, _, dotted := strings.Cut(p, ".")
				if !dotted || !top[first] || strings.ContainsAny(p, " =/:") {
					continue
				}
				sp := schemaPath(p)
				switch {
				case leaves[sp]:
					if col == 0 {
						documented++
					}
				case sections[sp] && col != 0:
				default:
					t.Errorf("the docs name %q in a table, but there is no such key", p)
				}
			}
		}
	}
	if documented == 0 {
		t.Error("no key found in the tables of the docs")
	}
}

// TestDocumentedDefaults checks the default column of every key row against Default().
func TestDocumentedDefaults(t *testing.T) {
	def := reflect.ValueOf(Default()).Elem()
	seen := 0
	for _, row := range tableRows(readDocs(t)) {
		if len(row) != 4 {
			continue
		}
		key := backquoted.FindStringSubmatch(row[0])
		if key == nil || !strings.Contains(key[1], "<name>") && !strings.Contains(key[1], ".") {
			continue
		}
		actual, ok := lookupDefault(def, key[1])
		if !ok {
			continue // not a key row (TestDocumentedKeysExist reports unknown keys)
		}
		seen++
		m := backquoted.FindStringSubmatch(row[2])
		if m == nil && strings.HasPrefix(row[2], "none") && actual.IsZero() {
			continue // an empty default, documented as "none"
		}
		if m == nil {
			t.Errorf("%s: the default column %q has no value in backquotes", key[1], row[2])
			continue
		}
		documented := reflect.New(actual.Type()).Elem()
		text := m[1]
		if actual.Kind() == reflect.Slice && text == "[]" {
			text = ""
		}
		if err := setText(documented, text, ""); err != nil {
			t.Errorf("%s: documented default %q: %v", key[1], m[1], err)
			continue
		}
		same := reflect.DeepEqual(documented.Interface(), actual.Interface())
		if actual.Kind() == reflect.Slice && actual.Len() == 0 && documented.Len() == 0 {
			same = true
		}
		if !same {
			t.Errorf("%s: documented default %q, but Default() has %v", key[1], m[1], actual.Interface())
		}
	}
	if want := len(docKeyPaths()); seen != want {
		t.Errorf("checked %d defaults; want one per key (%d)", seen, want)
	}
}

// lookupDefault follows a schema path into the default configuration; "<name>" takes the
// entry named "default".
func lookupDefault(v reflect.Value, path string) (reflect.Value, bool) {
	for _, seg := range strings.Split(path, ".") {
		switch v.Kind() {
		case reflect.Struct:
			name, list := strings.CutSuffix(seg, "[]")
			f, ok := fieldNamed(v.Type(), name)
			if !ok {
				return reflect.Value{}, false
			}
			v = v.FieldByIndex(f.index)
			if list {
				if !isStructList(v.Type()) {
					return reflect.Value{}, false
				}
				v = newElem(v.Type().Elem()) // an entry's defaults
			}
		case reflect.Map:
			if seg != "<name>" {
				return reflect.Value{}, false
			}
			m := v
			v = m.MapIndex(reflect.ValueOf("default"))
			if !v.IsValid() {
				// No entry named default: take the defaults of a new entry.
				v = reflect.New(m.Type().Elem()).Elem()
				if d, ok := v.Addr().Interface().(interface{ setDefaults() }); ok {
					d.setDefaults()
				}
			}
		default:
			return reflect.Value{}, false
		}
	}
	return v, isLeaf(v.Type())
}

// TestDocsExamplesLoad loads every YAML block of the docs; the complete example must be
// exactly the default configuration.
func TestDocsExamplesLoad(t *testing.T) {
	blocks := regexp.MustCompile("(?s)```yaml\n(.*?)```").FindAllStringSubmatch(readDocs(t), -1)
	if len(blocks) == 0 {
		t.Fatal("no yaml blocks in the docs")
	}
	complete := false
	for i, b := range blocks {
		path := filepath.Join(t.TempDir(), "example.yaml")
		if err := os.WriteFile(path, []byte(b[1]), 0o600); err != nil {
			t.Fatal(err)
		}
		c, err := Load(path, nil)
		if err != nil {
			t.Errorf("yaml block %d does not load: %v", i+1, err)
			continue
		}
		if strings.Contains(b[1], "# Complete example") {
			complete = true
			if !reflect.DeepEqual(c, Default()) {
				t.Errorf("the complete example differs from Default()")
			}
			for _, p := range docKeyPaths() {
				p = strings.TrimSuffix(p, ".<name>") // a map's entries: its key must appear
				leaf := p[strings.LastIndexByte(p, '.')+1:]
				leaf = strings.TrimSuffix(leaf, "[]")
				if !strings.Contains(b[1], leaf+":") {
					t.Errorf("the complete example lacks %s", p)
				}
			}
		}
	}
	if !complete {
		t.Error("no yaml block marked # Complete example")
	}
}

func TestEveryFieldHasAKey(t *testing.T) {
	// fieldsOf panics on an exported field without a yaml tag; KeyPaths walks them all.
	defer func() {
		if r := recover(); r != nil {
			t.Fatal(r)
		}
	}()
	if len(KeyPaths()) == 0 {
		t.Fatal("no keys")
	}
}
