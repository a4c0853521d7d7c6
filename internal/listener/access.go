package listener

import (
	"fmt"
	"net/netip"
	"strings"
	"time"
)

// AccessRules decide, from the peer's address alone, whether a new connection may talk to
// the broker at all. They are checked right after accept, before any byte is read or a
// TLS handshake starts. The first rule that matches decides; with no rule every address is
// allowed.
type AccessRules struct {
	rules []accessRule
	perIP *ipRate // nil: no per-address connection rate
}

type accessRule struct {
	allow  bool
	prefix netip.Prefix // invalid: "all"
}

// ParseAccessRules parses rules such as "allow 10.0.0.0/8", "deny 192.168.1.7",
// "allow ::1", "deny all". Errors name the rule.
func ParseAccessRules(rules []string) (*AccessRules, error) {
	a := &AccessRules{}
	for i, r := range rules {
		verb, target, ok := strings.Cut(strings.TrimSpace(r), " ")
		target = strings.TrimSpace(target)
		if !ok || target == "" {
			return nil, fmt.Errorf("access rule %d %q: want \"allow|deny <address, CIDR or all>\"", i+1, r)
		}
		var rule accessRule
		switch verb {
		case "allow":
			rule.allow = true
		case "deny":
		default:
			return nil, fmt.Errorf("access rule %d %q: %q is neither allow nor deny", i+1, r, verb)
		}
		if target != "all" {
			p, err := netip.ParsePrefix(target)
			if err != nil {
				addr, aerr := netip.ParseAddr(target)
				if aerr != nil {
					return nil, fmt.Errorf("access rule %d %q: %q is not an address, a CIDR or all", i+1, r, target)
				}
				p = netip.PrefixFrom(addr.Unmap(), addr.Unmap().BitLen())
			}
			if p.Addr().Is4In6() {
				p = netip.PrefixFrom(p.Addr().Unmap(), p.Bits()-96)
			}
			if p.Masked() != p {
				return nil, fmt.Errorf("access rule %d %q: %s has host bits set; did you mean %s?", i+1, r, p, p.Masked())
			}
			rule.prefix = p
		}
		a.rules = append(a.rules, rule)
	}
	return a, nil
}

// Allowed reports whether a connection from addr may proceed: the rules allow it and, with
// a per-address rate, the address has not connected too often. A nil *AccessRules allows
// everything.
func (a *AccessRules) Allowed(addr netip.Addr) bool {
	if a == nil {
		return true
	}
	addr = addr.Unmap()
	for _, r := range a.rules {
		if !r.prefix.IsValid() || r.prefix.Contains(addr) {
			if !r.allow {
				return false
			}
			break
		}
	}
	return a.perIP.allow(addr, time.Now())
}
