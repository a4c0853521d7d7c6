package authz

import "time"

// decisionCache is one client's cache of recent decisions, bounded in size and age. It is
// guarded by its Client's lock.
type decisionCache struct {
	max     int
	entries map[cacheKey]cacheEntry
}

type cacheKey struct {
	kind   Actions
	qos    byte
	retain bool
	group  string
	topic  string
}

type cacheEntry struct {
	allowed bool
	until   time.Time
}

func newDecisionCache(max int) *decisionCache {
	if max <= 0 {
		max = 32
	}
	return &decisionCache{max: max, entries: make(map[cacheKey]cacheEntry, min(max, 64))}
}

func keyOf(a Action, t string) cacheKey {
	return cacheKey{kind: a.Kind, qos: a.QoS, retain: a.Retain, group: a.Group, topic: t}
}

func (c *decisionCache) get(a Action, t string, now time.Time) (bool, bool) {
	e, ok := c.entries[keyOf(a, t)]
	if !ok || now.After(e.until) {
		return false, false
	}
	return e.allowed, true
}

func (c *decisionCache) put(a Action, t string, allowed bool, until time.Time) {
	if len(c.entries) >= c.max {
		// Full: drop expired entries, and if none expired, an arbitrary one. The cache is
		// small (32 by default); what matters is that it never grows past max.
		now := time.Now()
		for k, e := range c.entries {
			if now.After(e.until) {
				delete(c.entries, k)
			}
		}
		for k := range c.entries {
			if len(c.entries) < c.max {
				break
			}
			delete(c.entries, k)
		}
	}
	c.entries[keyOf(a, t)] = cacheEntry{allowed: allowed, until: until}
}

func (c *decisionCache) clear() { clear(c.entries) }
