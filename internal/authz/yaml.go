package authz

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"strconv"
	"strings"

	"go.yaml.in/yaml/v3"
)

// ParseYAMLRules reads the ACL file format: a mapping with the single key "rules", a list
// of rules such as
//
//	{permission: allow, who: {username: admin}, action: subscribe, topics: ["$SYS/#"], qos: [0, 1]}
//
// Keys: permission (allow | deny, required), who (all, or an object of one of the shapes of
// Who; default all), action (publish | subscribe | all; default all), topics (a list of
// filters) or topic (one filter), qos (0..2 or a list of them), retain (true | false).
// Parsing is strict: an unknown key, a duplicate key, a value of the wrong type, a second
// YAML document or an empty document is an error; so is anything Compile would refuse.
// Errors about a rule are *RuleError values carrying the rule's index and the line.
func ParseYAMLRules(data []byte) ([]Rule, error) {
	rules, lines, err := parseYAML(data)
	if err != nil {
		return nil, err
	}
	var ts templates
	for i := range rules {
		if _, err := compileRule(i, &rules[i], &ts); err != nil {
			return nil, &RuleError{Index: i, Line: lines[i], Err: err}
		}
	}
	return rules, nil
}

// CompileYAML is ParseYAMLRules followed by Compile, checking each rule once; a rule that
// does not compile is reported with its line.
func CompileYAML(data []byte) (*RuleSet, error) {
	rules, lines, err := parseYAML(data)
	if err != nil {
		return nil, err
	}
	rs, err := Compile(rules)
	if re := (*RuleError)(nil); errors.As(err, &re) && re.Index >= 0 && re.Index < len(lines) {
		re.Line = lines[re.Index]
	}
	return rs, err
}

// parseYAML reads the rules and the line of each, without compiling them.
func parseYAML(data []byte) ([]Rule, []int, error) {
	dec := yaml.NewDecoder(bytes.NewReader(data))
	var doc yaml.Node
	if err := dec.Decode(&doc); err != nil {
		if errors.Is(err, io.EOF) {
			return nil, nil, errors.New(`no rules: the document is empty (write "rules: []" for none)`)
		}
		return nil, nil, err
	}
	var extra yaml.Node
	switch err := dec.Decode(&extra); {
	case err == nil:
		return nil, nil, fmt.Errorf("line %d: a second YAML document; the file holds one", extra.Line)
	case !errors.Is(err, io.EOF):
		return nil, nil, err
	}
	root := deref(&doc)
	if root.Kind == yaml.DocumentNode && len(root.Content) == 1 {
		root = deref(root.Content[0])
	}
	if root.Kind != yaml.MappingNode {
		return nil, nil, fmt.Errorf("line %d: want a mapping with the key rules, got %s", root.Line, kindName(root))
	}
	var list *yaml.Node
	for i := 0; i+1 < len(root.Content); i += 2 {
		k := deref(root.Content[i])
		if k.Value != "rules" || k.Kind != yaml.ScalarNode {
			return nil, nil, fmt.Errorf("line %d: unknown key %q: the file holds only rules", k.Line, k.Value)
		}
		if list != nil {
			return nil, nil, fmt.Errorf("line %d: duplicate key rules", k.Line)
		}
		list = deref(root.Content[i+1])
	}
	if list == nil {
		return nil, nil, fmt.Errorf("line %d: no rules key", root.Line)
	}
	if list.Kind != yaml.SequenceNode {
		return nil, nil, fmt.Errorf("line %d: rules: want a list of rules, got %s", list.Line, kindName(list))
	}
	rules := make([]Rule, 0, len(list.Content))
	lines := make([]int, 0, len(list.Content))
	for i, item := range list.Content {
		item = deref(item)
		r, line, err := ruleFromNode(item)
		if err != nil {
			return nil, nil, &RuleError{Index: i, Line: line, Err: err}
		}
		rules = append(rules, r)
		lines = append(lines, item.Line)
	}
	return rules, lines, nil
}

// ruleFromNode reads one rule; on error it returns the line of the offending node.
func ruleFromNode(n *yaml.Node) (Rule, int, error) {
	r := Rule{Action: ActAll}
	if n.Kind != yaml.MappingNode {
		return r, n.Line, fmt.Errorf("want a mapping such as {permission: allow, topics: [...]}, got %s", kindName(n))
	}
	seen := map[string]int{}
	for i := 0; i+1 < len(n.Content); i += 2 {
		k, v := deref(n.Content[i]), deref(n.Content[i+1])
		if k.Kind != yaml.ScalarNode || k.ShortTag() == "!!merge" {
			return r, k.Line, errors.New("want a key name (YAML merge keys are not supported)")
		}
		if first, dup := seen[k.Value]; dup {
			return r, k.Line, fmt.Errorf("duplicate key %s (first at line %d)", k.Value, first)
		}
		seen[k.Value] = k.Line
		var err error
		switch k.Value {
		case "permission":
			var s string
			if s, err = scalar(v); err == nil {
				switch strings.ToLower(s) {
				case "allow":
					r.Permission = PermAllow
				case "deny":
					r.Permission = PermDeny
				default:
					err = fmt.Errorf("%q: want allow or deny", s)
				}
			}
		case "action":
			var s string
			if s, err = scalar(v); err == nil {
				switch strings.ToLower(s) {
				case "publish":
					r.Action = ActPublish
				case "subscribe":
					r.Action = ActSubscribe
				case "all":
					r.Action = ActAll
				default:
					err = fmt.Errorf("%q: want publish, subscribe or all", s)
				}
			}
		case "who":
			var raw any
			if raw, err = nodeToAny(v, 0); err == nil {
				var w Who
				if w, err = parseWho(raw, 0); err == nil {
					r.Who = &w
				}
			}
		case "topic":
			var s string
			if s, err = scalar(v); err == nil {
				r.Topics = append(r.Topics, s)
			}
		case "topics":
			if v.Kind != yaml.SequenceNode {
				err = fmt.Errorf("want a list of topic filters, got %s", kindName(v))
				break
			}
			for _, e := range v.Content {
				var s string
				if s, err = scalar(deref(e)); err != nil {
					break
				}
				r.Topics = append(r.Topics, s)
			}
		case "qos":
			r.QoS, err = qosList(v)
		case "retain":
			var b bool
			if v.Kind != yaml.ScalarNode || v.ShortTag() != "!!bool" || v.Decode(&b) != nil {
				err = errors.New("want true or false")
				break
			}
			r.Retain = &b
		default:
			return r, k.Line, fmt.Errorf("unknown key %q: want permission, who, action, topics, qos or retain", k.Value)
		}
		if err != nil {
			return r, v.Line, fmt.Errorf("%s: %w", k.Value, err)
		}
	}
	if _, ok := seen["permission"]; !ok {
		return r, n.Line, errors.New("permission: missing (allow or deny)")
	}
	if _, ok := seen["topics"]; ok && len(r.Topics) == 0 {
		// An empty list would read as "every topic": refuse it rather than guess.
		return r, seen["topics"], errors.New("topics: empty list (leave topics out for every topic)")
	}
	for _, t := range r.Topics {
		if t == "" {
			return r, n.Line, errors.New("topics: empty topic")
		}
	}
	return r, n.Line, nil
}

func qosList(v *yaml.Node) ([]byte, error) {
	one := func(n *yaml.Node) (byte, error) {
		n = deref(n)
		if n.Kind != yaml.ScalarNode || n.ShortTag() != "!!int" {
			return 0, fmt.Errorf("want 0, 1 or 2, got %s", kindName(n))
		}
		q, err := strconv.Atoi(n.Value)
		if err != nil || q < 0 || q > 2 {
			return 0, fmt.Errorf("%s: want 0, 1 or 2", n.Value)
		}
		return byte(q), nil
	}
	if v.Kind == yaml.SequenceNode {
		if len(v.Content) == 0 {
			return nil, errors.New("empty list (leave qos out for any QoS)")
		}
		out := make([]byte, 0, len(v.Content))
		for _, e := range v.Content {
			q, err := one(e)
			if err != nil {
				return nil, err
			}
			out = append(out, q)
		}
		return out, nil
	}
	q, err := one(v)
	if err != nil {
		return nil, err
	}
	return []byte{q}, nil
}

// scalar returns the text of a non-null scalar.
func scalar(n *yaml.Node) (string, error) {
	if n.Kind != yaml.ScalarNode || n.ShortTag() == "!!null" {
		return "", fmt.Errorf("want a string, got %s", kindName(n))
	}
	return n.Value, nil
}

// nodeToAny turns a YAML value into the generic shapes parseWho reads: scalars become their
// text (so an unquoted number is the same as a quoted one), null becomes nil.
func nodeToAny(n *yaml.Node, depth int) (any, error) {
	n = deref(n)
	if depth > 2*maxWhoDepth+2 {
		return nil, errors.New("nested too deep")
	}
	switch n.Kind {
	case yaml.ScalarNode:
		if n.ShortTag() == "!!null" {
			return nil, nil
		}
		return n.Value, nil
	case yaml.SequenceNode:
		out := make([]any, 0, len(n.Content))
		for _, e := range n.Content {
			v, err := nodeToAny(e, depth+1)
			if err != nil {
				return nil, err
			}
			out = append(out, v)
		}
		return out, nil
	case yaml.MappingNode:
		out := make(map[string]any, len(n.Content)/2)
		for i := 0; i+1 < len(n.Content); i += 2 {
			k := deref(n.Content[i])
			if k.Kind != yaml.ScalarNode || k.ShortTag() == "!!merge" {
				return nil, fmt.Errorf("line %d: want a key name", k.Line)
			}
			if _, dup := out[k.Value]; dup {
				return nil, fmt.Errorf("line %d: duplicate key %s", k.Line, k.Value)
			}
			v, err := nodeToAny(n.Content[i+1], depth+1)
			if err != nil {
				return nil, err
			}
			out[k.Value] = v
		}
		return out, nil
	}
	return nil, fmt.Errorf("line %d: unexpected %s", n.Line, kindName(n))
}

func deref(n *yaml.Node) *yaml.Node {
	for i := 0; n.Kind == yaml.AliasNode && n.Alias != nil && i < 16; i++ {
		n = n.Alias
	}
	return n
}

func kindName(n *yaml.Node) string {
	switch n.Kind {
	case yaml.ScalarNode:
		if n.ShortTag() == "!!null" {
			return "nothing"
		}
		return "a scalar"
	case yaml.SequenceNode:
		return "a list"
	case yaml.MappingNode:
		return "a mapping"
	case yaml.DocumentNode:
		return "a document"
	case yaml.AliasNode:
		return "an alias"
	}
	return "an unknown node"
}
