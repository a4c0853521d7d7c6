package config

import (
	"errors"
	"fmt"
	"reflect"
	"slices"
	"strconv"
	"strings"
)

// EnvPrefix starts every environment variable that Load looks at.
const EnvPrefix = "RAMPART_"

// EnvConfigFile is the variable that names the configuration file for `rampart serve`.
// It is not a configuration key, so Load ignores it.
const EnvConfigFile = "RAMPART_CONFIG"

// NonConfigEnv returns the RAMPART_ variables that are not configuration keys and that
// Load therefore skips instead of refusing as unknown.
func NonConfigEnv() []string { return []string{EnvConfigFile} }

var (
	errUnknownKey = errors.New("unknown key")
	errSection    = errors.New("names a section, not a single key")
)

// applyEnv applies the RAMPART_ variables of environ, in order, to c. The name after the
// prefix is the key path in upper case with "__" between levels.
func applyEnv(c *Config, environ []string, o origins) []error {
	var errs []error
	for _, kv := range environ {
		name, value, ok := strings.Cut(kv, "=")
		if !ok || !strings.HasPrefix(name, EnvPrefix) || slices.Contains(NonConfigEnv(), name) {
			continue
		}
		source := "environment " + name
		segs := strings.Split(strings.ToLower(strings.TrimPrefix(name, EnvPrefix)), "__")
		path := strings.Join(segs, ".")
		err := setPath(reflect.ValueOf(c).Elem(), segs, value, "", source, o)
		switch {
		case err == nil:
		case errors.Is(err, errUnknownKey):
			errs = append(errs, unknownKeyError(source, path))
		default:
			errs = append(errs, &Error{Source: source, Path: path, Msg: err.Error()})
		}
	}
	return errs
}

// setPath follows segs down from v and parses text into the key it reaches. A map level
// takes any entry name, creating the entry from its defaults when it is new; the entry is
// stored only when the value parses.
func setPath(v reflect.Value, segs []string, text, path, source string, o origins) error {
	t := v.Type()
	if isLeaf(t) {
		if len(segs) > 0 {
			return errUnknownKey
		}
		if err := setText(v, text, ""); err != nil {
			return err
		}
		o[path] = source
		return nil
	}
	if len(segs) == 0 {
		return errSection
	}
	key, rest := segs[0], segs[1:]
	if key == "" {
		return errUnknownKey
	}
	switch t.Kind() {
	case reflect.Struct:
		f, ok := fieldNamed(t, key)
		if !ok {
			return errUnknownKey
		}
		return setPath(v.FieldByIndex(f.index), rest, text, joinPath(path, key), source, o)
	case reflect.Slice:
		// A list of mappings: RAMPART_AUTHENTICATION__0__ENABLE changes a key of an entry
		// the file defined; entries cannot be added from the environment.
		i, err := strconv.Atoi(key)
		if err != nil || i < 0 || i >= v.Len() || len(rest) == 0 {
			return errUnknownKey
		}
		return setPath(v.Index(i), rest, text, fmt.Sprintf("%s[%d]", path, i), source, o)
	case reflect.Map:
		if len(rest) == 0 {
			return errSection
		}
		entry := mapEntry(v, key)
		entryPath := joinPath(path, key)
		if err := setPath(entry, rest, text, entryPath, source, o); err != nil {
			return err
		}
		if v.IsNil() {
			v.Set(reflect.MakeMap(t))
		}
		if !v.MapIndex(reflect.ValueOf(key)).IsValid() {
			o[entryPath] = source
		}
		v.SetMapIndex(reflect.ValueOf(key), entry)
		return nil
	}
	panic(fmt.Sprintf("config: unsupported schema type %s", t))
}
