package guard

import (
	"fmt"
	"net/netip"
	"regexp"
	"slices"
	"time"

	"github.com/rampart-mqtt/rampart/internal/clientinfo"
	"github.com/rampart-mqtt/rampart/internal/store/controldb"
)

// banKey identifies a ban: its kind and canonical value.
type banKey struct {
	kind  BanKind
	value string
}

// banEntry is one ban in the index, with what matching it needs prepared. It is not
// modified once indexed: replacing a ban indexes a new entry.
type banEntry struct {
	ban    Ban
	prefix netip.Prefix   // peerhost
	re     *regexp.Regexp // clientid_re, username_re
	index  int            // position in banIndex.expiry; -1 for a ban without end
}

func (e *banEntry) due() time.Time { return e.ban.Until }
func (e *banEntry) slot() *int     { return &e.index }

// newBanEntry prepares b, whose value is canonical, for the index.
func newBanEntry(b Ban) (*banEntry, error) {
	e := &banEntry{ban: b, index: -1}
	switch {
	case b.Kind == BanPeerHost:
		p, err := controldb.ParseBanPeer(b.Value)
		if err != nil {
			return nil, err
		}
		e.prefix = p
	case b.Kind.IsPattern():
		if len(b.Value) > controldb.MaxBanPatternLen {
			return nil, fmt.Errorf("%s ban pattern of %d bytes: at most %d", b.Kind, len(b.Value), controldb.MaxBanPatternLen)
		}
		re, err := regexp.Compile(b.Value)
		if err != nil {
			return nil, fmt.Errorf("%s ban pattern: %w", b.Kind, err)
		}
		e.re = re
	}
	return e, nil
}

func (e *banEntry) key() banKey { return banKey{e.ban.Kind, e.ban.Value} }

// matches reports whether the ban's kind and value match info, whatever its time. Patterns
// are not applied to an empty client id or username.
func (e *banEntry) matches(info *clientinfo.Info) bool {
	switch e.ban.Kind {
	case BanClientID:
		return info.ClientID == e.ban.Value
	case BanUsername:
		return info.Username == e.ban.Value
	case BanPeerHost:
		a, ok := peerAddr(info)
		return ok && e.prefix.Contains(a)
	case BanClientIDRe:
		return info.ClientID != "" && e.re.MatchString(info.ClientID)
	case BanUsernameRe:
		return info.Username != "" && e.re.MatchString(info.Username)
	}
	return false
}

// peerAddr returns the client's address as bans see it: unmapped, without a zone.
func peerAddr(info *clientinfo.Info) (netip.Addr, bool) {
	if !info.Peer.IsValid() {
		return netip.Addr{}, false
	}
	return info.Peer.Addr().Unmap().WithZone(""), true
}

// banIndex holds the bans in effect, arranged for matching a client in few steps:
//
//   - exact client ids and usernames, and every ban by identity, in one map;
//   - address blocks in a map keyed by the masked block, with a count of blocks per prefix
//     length and family, so a client address is looked up once per length in use (at most
//     33 lookups for IPv4, 129 for IPv6), however many blocks are banned;
//   - patterns in copy-on-write slices, so they can be run without holding the lock.
//
// It is not safe for concurrent use; Bans guards it.
type banIndex struct {
	all      map[banKey]*banEntry
	nets     map[netip.Prefix]*banEntry
	v4Lens   [33]int32
	v6Lens   [129]int32
	patterns [2][]*banEntry // clientid_re, username_re; replaced, never modified in place
	expiry   deadlines[*banEntry]
}

func newBanIndex() banIndex {
	return banIndex{all: make(map[banKey]*banEntry), nets: make(map[netip.Prefix]*banEntry)}
}

func (x *banIndex) len() int { return len(x.all) }

func (x *banIndex) patternCount() int { return len(x.patterns[0]) + len(x.patterns[1]) }

func patternSlot(k BanKind) int {
	if k == BanUsernameRe {
		return 1
	}
	return 0
}

func (x *banIndex) lens(p netip.Prefix) *int32 {
	if p.Addr().Is4() {
		return &x.v4Lens[p.Bits()]
	}
	return &x.v6Lens[p.Bits()]
}

// get returns the entry of k, or nil.
func (x *banIndex) get(k banKey) *banEntry { return x.all[k] }

// put indexes e, replacing the entry of the same key, which it returns (or nil).
func (x *banIndex) put(e *banEntry) *banEntry {
	old := x.remove(e.key())
	x.all[e.key()] = e
	switch {
	case e.ban.Kind == BanPeerHost:
		x.nets[e.prefix] = e
		*x.lens(e.prefix)++
	case e.ban.Kind.IsPattern():
		i := patternSlot(e.ban.Kind)
		x.patterns[i] = append(slices.Clip(x.patterns[i]), e)
	}
	if !e.ban.Until.IsZero() {
		x.expiry.push(e)
	}
	return old
}

// remove drops the entry of k and returns it, or returns nil when there is none.
func (x *banIndex) remove(k banKey) *banEntry {
	e := x.all[k]
	if e == nil {
		return nil
	}
	delete(x.all, k)
	switch {
	case e.ban.Kind == BanPeerHost:
		delete(x.nets, e.prefix)
		*x.lens(e.prefix)--
	case e.ban.Kind.IsPattern():
		i := patternSlot(e.ban.Kind)
		x.patterns[i] = slices.DeleteFunc(slices.Clone(x.patterns[i]), func(p *banEntry) bool { return p == e })
	}
	x.expiry.remove(e)
	return e
}

// dropExpired removes up to limit entries that have ended at now and returns how many it
// removed.
func (x *banIndex) dropExpired(now time.Time, limit int) int {
	n := 0
	for ; n < limit; n++ {
		e, ok := x.expiry.peek()
		if !ok || e.ban.ActiveAt(now) {
			break
		}
		x.remove(e.key())
	}
	return n
}

// matchExact finds an exact or address ban in effect at now that matches info. The caller
// holds the read lock.
func (x *banIndex) matchExact(info *clientinfo.Info, now time.Time) *banEntry {
	if info.ClientID != "" {
		if e := x.all[banKey{BanClientID, info.ClientID}]; e != nil && e.ban.ActiveAt(now) {
			return e
		}
	}
	if info.Username != "" {
		if e := x.all[banKey{BanUsername, info.Username}]; e != nil && e.ban.ActiveAt(now) {
			return e
		}
	}
	a, ok := peerAddr(info)
	if !ok || len(x.nets) == 0 {
		return nil
	}
	lens := x.v6Lens[:]
	if a.Is4() {
		lens = x.v4Lens[:]
	}
	// Longest prefix first: the most specific ban is the one reported.
	for bits := len(lens) - 1; bits >= 0; bits-- {
		if lens[bits] == 0 {
			continue
		}
		p, err := a.Prefix(bits)
		if err != nil {
			continue
		}
		if e := x.nets[p]; e != nil && e.ban.ActiveAt(now) {
			return e
		}
	}
	return nil
}
