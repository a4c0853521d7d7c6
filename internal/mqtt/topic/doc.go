// Package topic validates MQTT topic names and filters, matches names against filters,
// and provides the subscription trie used by the router and the ACL index.
//
// # Rules
//
// ValidateName checks a Topic Name as carried in PUBLISH (or a Will Topic): at least one
// byte [MQTT-4.7.3-1], at most 65535 bytes [MQTT-4.7.3-3] or the configured Limits, no
// U+0000 [MQTT-4.7.3-2] [MQTT-1.5.4-2], well-formed UTF-8 without surrogates [MQTT-1.5.4-1],
// and no wildcard characters [MQTT-4.7.0-1].
//
// ValidateFilter checks a Topic Filter as carried in SUBSCRIBE or UNSUBSCRIBE: the same
// string rules, '#' only alone in the last level [MQTT-4.7.1-1], '+' only as a whole level
// [MQTT-4.7.1-2], and for "$share/{ShareName}/{filter}" a non-empty share name without '/',
// '+' or '#' followed by "/" and a valid filter [MQTT-4.8.2-1] [MQTT-4.8.2-2]. A filter that
// starts with "$share/" is always read as a shared subscription. Limits.MaxLength and
// Limits.MaxLevels apply to the filter part; the 65535-byte limit of the specification
// applies to the whole string.
//
// Both return an *Error carrying the Kind of failure, the normative statement broken (when
// there is one) and the byte offset; errors.Is(err, ErrWildcardInName) and its siblings test
// the Kind. Messages never quote the topic. Validating a valid topic does not allocate.
//
// Matching is byte-exact: nothing is normalised [MQTT-4.7.3-4]. Levels are separated by '/'
// and may be empty, so "/finance" has two levels, "" and "finance". A filter "a/#" matches
// "a" itself as well as everything below it, and "+" matches an empty level. Names starting
// with '$' (for example "$SYS/broker/uptime") are not matched by filters whose first level is
// a wildcard [MQTT-4.7.2-1]: "#" and "+/uptime" do not match them, "$SYS/#" does.
//
// # Trie
//
// Trie indexes values by topic filter so that a published name can be matched against every
// subscription in time proportional to the number of levels in the name (times the number of
// wildcard branches that exist), not to the number of subscriptions. Each node holds its
// literal children (a short slice while there are at most 8, a map beyond that), a dedicated
// '+' child and a dedicated '#' child. Entries are kept per node in a slice, indexed by a map
// once a filter has more than a few subscribers, so Add and Remove stay O(levels) even with
// hundreds of thousands of subscribers on one filter. Remove prunes nodes that become empty
// and shrinks oversized slices and maps, so memory is returned as subscriptions go away.
//
// Trie.Match does no heap allocation. It reports each matching ordinary entry through fn, and
// each matching (share name, filter) pair once through fnShared with the slice of all members
// of that group, so the caller can pick one member (round robin, random, least loaded).
//
// A Trie is safe for concurrent use: any number of Match, Get and Len calls run in parallel,
// Add and Remove are serialised against them by a sync.RWMutex. Match holds the read lock
// while it runs the callbacks, therefore:
//
//   - callbacks must not call any method of the same Trie (Add and Remove would deadlock; a
//     nested Match can deadlock behind a waiting writer);
//   - callbacks must be quick: a slow callback delays writers. Collect what you need and do
//     the work (sending, I/O) after Match returns;
//   - the members slice passed to fnShared is the trie's own storage: it is valid only during
//     the callback and must not be modified or retained. Copy the member you pick. (The
//     filter and group strings are immutable and may be kept.)
//
// Member order within a group is unspecified and changes as members leave.
//
// The trie does not validate: callers pass filters accepted by ValidateFilter and names
// accepted by ValidateName. Other strings never make it panic, but how they are stored and
// matched is unspecified.
package topic
