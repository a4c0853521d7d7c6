package broker

// A session's subscriptions are counted in the memory budget, online or offline: an
// offline session keeps its filters in the session and in the router's trie, and a client
// creating sessions with many filters must not grow the broker past MaxMemoryBytes.

// subOverhead approximates what one subscription costs besides its filter: the
// subscription record, the map entry and the trie's node and entry.
const subOverhead = 256

// subCost is what the memory budget counts for a subscription to filter: the filter held
// by the session and by the trie, and subOverhead.
func subCost(filter string) int64 { return 2*int64(len(filter)) + subOverhead }

// putSubLocked adds or replaces a subscription and reports whether the session already
// had one with that filter. Call with s.mu held.
func (s *session) putSubLocked(sub *subscription) (existed bool) {
	if _, existed = s.subs[sub.filter]; !existed {
		s.srv.o.limits.subs.Add(subCost(sub.filter))
	}
	s.subs[sub.filter] = sub
	return existed
}

// dropSubLocked removes the subscription to filter and reports whether there was one.
// Call with s.mu held.
func (s *session) dropSubLocked(filter string) bool {
	if _, ok := s.subs[filter]; !ok {
		return false
	}
	delete(s.subs, filter)
	s.srv.o.limits.subs.Add(-subCost(filter))
	return true
}

// takeSubsLocked removes every subscription and returns them by filter. Call with s.mu
// held.
func (s *session) takeSubsLocked() map[string]*subscription {
	subs := s.subs
	s.subs = nil
	for f := range subs {
		s.srv.o.limits.subs.Add(-subCost(f))
	}
	return subs
}
