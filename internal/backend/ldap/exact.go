package ldap

import (
	"errors"
	"fmt"
	"strconv"
	"strings"

	goldap "github.com/go-ldap/ldap/v3"

	"github.com/rampart-mqtt/rampart/internal/placeholder"
)

// ErrNotExact is wrapped by the error of Filter.Exact and DN.Exact when the entry the
// directory found holds a placeholder's value only under the directory's matching rules
// (uid's caseIgnoreMatch folds case, insignificant spaces and Unicode compatibility
// forms, so "ALICE", " alice" and "ａｌｉｃｅ" all find alice's entry), not byte for byte.
// Callers treat it as "no such entry".
var ErrNotExact = errors.New("the entry matches only under the directory's matching rules")

// exactNode is what a template asks of an entry byte for byte: the equality assertions
// whose whole value is one placeholder, under the filter's "&" and "|". Everything else
// (substrings, ordering, extensible matches, "!", literal values) is the directory's to
// decide and counts as satisfied here.
type exactNode struct {
	op   byte // '&', '|', '=' (attr holds the value of ${name}), 't' (the directory decided)
	attr string
	name string
	kids []*exactNode
}

var satisfied = &exactNode{op: 't'}

// prune drops what the directory alone decides: an "&" keeps its exact parts, an "|"
// with an undecided branch is satisfied whenever the directory matched the entry.
func (n *exactNode) prune() *exactNode {
	switch n.op {
	case '&':
		var kids []*exactNode
		for _, k := range n.kids {
			if k = k.prune(); k.op != 't' {
				kids = append(kids, k)
			}
		}
		switch len(kids) {
		case 0:
			return satisfied
		case 1:
			return kids[0]
		}
		return &exactNode{op: '&', kids: kids}
	case '|':
		kids := make([]*exactNode, 0, len(n.kids))
		for _, k := range n.kids {
			k = k.prune()
			if k.op == 't' {
				return satisfied
			}
			kids = append(kids, k)
		}
		if len(kids) == 1 {
			return kids[0]
		}
		return &exactNode{op: '|', kids: kids}
	}
	return n
}

// attrs appends the attributes n compares to out, without repeats.
func (n *exactNode) attrs(out []string) []string {
	if n == nil {
		return out
	}
	if n.op == '=' {
		for _, a := range out {
			if equalFold(a, n.attr) {
				return out
			}
		}
		return append(out, n.attr)
	}
	for _, k := range n.kids {
		out = k.attrs(out)
	}
	return out
}

// holds reports whether e satisfies n byte for byte. A nil e holds nothing but a
// satisfied node.
func (n *exactNode) holds(v placeholder.Values, e *Entry) bool {
	switch n.op {
	case '=':
		if e == nil {
			return false
		}
		want := v.Lookup(n.name)
		for _, got := range e.Values(n.attr) {
			if got == want {
				return true
			}
		}
		return false
	case '&':
		for _, k := range n.kids {
			if !k.holds(v, e) {
				return false
			}
		}
		return true
	case '|':
		for _, k := range n.kids {
			if k.holds(v, e) {
				return true
			}
		}
		return false
	}
	return true
}

// failures describes, for the log, the assertions of n that e does not hold (names of
// attributes and variables only, never values).
func (n *exactNode) failures(v placeholder.Values, e *Entry, out []string) []string {
	switch n.op {
	case '=':
		if n.holds(v, e) {
			return out
		}
		s := fmt.Sprintf("no value of %s is ${%s} byte for byte", n.attr, n.name)
		if e == nil || len(e.Values(n.attr)) == 0 {
			s += fmt.Sprintf(" (%s came back empty: may the service account read it?)", n.attr)
		}
		return append(out, s)
	case '&', '|':
		for _, k := range n.kids {
			out = k.failures(v, e, out)
		}
	}
	return out
}

// check is Filter.Exact and DN.Exact.
func (n *exactNode) check(v placeholder.Values, e *Entry) error {
	if n == nil || n.holds(v, e) {
		return nil
	}
	what := "no entry could be read"
	if e != nil {
		what = e.DN
	}
	return fmt.Errorf("%s: %w: %s", what, ErrNotExact, strings.Join(n.failures(v, e, nil), "; "))
}

// filterExact reads the structure of a filter template that is known to parse (its
// probe compiled) and returns what the entry must hold exactly.
func filterExact(src string) (*exactNode, error) {
	p := &filterReader{s: src}
	n, err := p.filter()
	if err != nil {
		return nil, err
	}
	if p.i != len(src) {
		return nil, fmt.Errorf("unexpected %q at offset %d", src[p.i:], p.i)
	}
	return n.prune(), nil
}

// filterReader walks a filter template (RFC 4515, placeholders unexpanded).
type filterReader struct {
	s string
	i int
}

func (p *filterReader) peek() byte {
	if p.i < len(p.s) {
		return p.s[p.i]
	}
	return 0
}

func (p *filterReader) expect(c byte) error {
	if p.peek() != c {
		return fmt.Errorf("expected %q at offset %d", c, p.i)
	}
	p.i++
	return nil
}

func (p *filterReader) filter() (*exactNode, error) {
	if err := p.expect('('); err != nil {
		return nil, err
	}
	var n *exactNode
	switch c := p.peek(); c {
	case '&', '|':
		p.i++
		n = &exactNode{op: c}
		for p.peek() == '(' {
			k, err := p.filter()
			if err != nil {
				return nil, err
			}
			n.kids = append(n.kids, k)
		}
	case '!':
		// The directory found the entry; what a negation refuses is its business.
		p.i++
		if _, err := p.filter(); err != nil {
			return nil, err
		}
		n = satisfied
	default:
		n = p.item()
	}
	if err := p.expect(')'); err != nil {
		return nil, err
	}
	return n, nil
}

// item reads "attr=value" (or "~=", ">=", "<=", ":=") up to its ")".
func (p *filterReader) item() *exactNode {
	start := p.i
	for p.i < len(p.s) && p.s[p.i] != '=' && p.s[p.i] != ')' {
		p.i++
	}
	desc := p.s[start:p.i]
	if p.peek() != '=' {
		return satisfied // the probe parsed, so this does not happen
	}
	p.i++
	vstart := p.i
	for p.i < len(p.s) && p.s[p.i] != ')' {
		switch {
		case p.s[p.i] == '\\':
			p.i += 2 // skip the backslash and the escape's first hexadecimal digit
		case strings.HasPrefix(p.s[p.i:], "${"):
			end := strings.IndexByte(p.s[p.i:], '}')
			if end < 0 {
				p.i = len(p.s)
			} else {
				p.i += end + 1
			}
		default:
			p.i++
		}
	}
	if p.i > len(p.s) {
		p.i = len(p.s)
	}
	// Only a plain equality: "~=", ">=", "<=" end the description with their first
	// character, and an extensible match (":=", ":dn:", ":rule:") has a colon in it.
	if desc == "" || strings.ContainsAny(desc, ":~<>") {
		return satisfied
	}
	if name, ok := onePlaceholder(p.s[vstart:p.i]); ok {
		return &exactNode{op: '=', attr: desc, name: name}
	}
	return satisfied
}

// onePlaceholder reports whether s is exactly one "${name}" and names it.
func onePlaceholder(s string) (string, bool) {
	if !strings.HasPrefix(s, "${") || !strings.HasSuffix(s, "}") || strings.IndexByte(s, '}') != len(s)-1 {
		return "", false
	}
	return s[2 : len(s)-1], true
}

// dnExact returns what the entry named by a DN template must hold exactly: for each
// attribute of its first RDN (the entry's own) whose whole value is one placeholder, a
// value equal to the placeholder's. The other RDNs name other entries, not checked here.
func dnExact(src string, t *placeholder.Template) (*exactNode, error) {
	// Mark each placeholder with a distinct text of one length that the template does
	// not hold, then see which RDN values are exactly one mark.
	base := "xrampartmark"
	for strings.Contains(src, base) {
		base += "x"
	}
	vars := t.Vars()
	i := 0
	marked := t.Expand(placeholder.Values{}, func(string) string {
		m := base + fmt.Sprintf("%06d", i)
		i++
		return m
	})
	dn, err := goldap.ParseDN(marked)
	if err != nil {
		return nil, err
	}
	n := &exactNode{op: '&'}
	if len(dn.RDNs) == 0 {
		return satisfied, nil
	}
	for _, a := range dn.RDNs[0].Attributes {
		rest, ok := strings.CutPrefix(a.Value, base)
		if !ok || len(rest) != 6 {
			continue
		}
		k, err := strconv.Atoi(rest)
		if err != nil || k < 0 || k >= len(vars) {
			continue
		}
		n.kids = append(n.kids, &exactNode{op: '=', attr: a.Type, name: vars[k]})
	}
	return n.prune(), nil
}
