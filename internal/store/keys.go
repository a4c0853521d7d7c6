package store

import (
	"encoding/binary"
	"fmt"
)

// Namespace prefixes: the first byte of every key names its kind. They are
// part of the on-disk format; never renumber them.
const (
	nsMeta     byte = 0x00 // store metadata, e.g. the format version
	nsRetained byte = 'r'  // 'r' topic
	nsSession  byte = 's'  // 's' uvarint(len(id)) id
	nsQueue    byte = 'q'  // 'q' uvarint(len(id)) id seq(8 bytes, big-endian)
)

// versionKey holds the uvarint-encoded format version of the key space.
var versionKey = []byte("\x00version")

// seqLen is the size of the big-endian sequence number suffix of queue keys.
const seqLen = 8

// retainedKey returns 'r' + topic.
func retainedKey(topic string) []byte {
	k := make([]byte, 0, 1+len(topic))
	k = append(k, nsRetained)
	return append(k, topic...)
}

// appendClient appends ns + uvarint(len(id)) + id to dst. The length prefix
// makes the encoding prefix-free: no client's encoded id is a prefix of
// another's, whatever bytes the ids contain.
func appendClient(dst []byte, ns byte, clientID string) []byte {
	dst = append(dst, ns)
	dst = binary.AppendUvarint(dst, uint64(len(clientID)))
	return append(dst, clientID...)
}

// sessionKey returns 's' + uvarint(len(id)) + id.
func sessionKey(clientID string) []byte {
	return appendClient(make([]byte, 0, 1+binary.MaxVarintLen64+len(clientID)), nsSession, clientID)
}

// queuePrefix returns 'q' + uvarint(len(id)) + id: the common prefix of all of
// the client's queue keys and of no other client's keys.
func queuePrefix(clientID string) []byte {
	return appendClient(make([]byte, 0, 1+binary.MaxVarintLen64+len(clientID)+seqLen), nsQueue, clientID)
}

// queueKey returns queuePrefix(id) + seq as 8 bytes big-endian, so that keys
// sort by ascending seq within a client.
func queueKey(clientID string, seq uint64) []byte {
	return binary.BigEndian.AppendUint64(queuePrefix(clientID), seq)
}

// prefixEnd returns the smallest key greater than every key starting with
// prefix, for use as an exclusive upper bound. All prefixes used here start
// with a namespace byte below 0xff, so the result is never empty.
func prefixEnd(prefix []byte) []byte {
	end := append([]byte(nil), prefix...)
	for i := len(end) - 1; i >= 0; i-- {
		if end[i] != 0xff {
			end[i]++
			return end[:i+1]
		}
	}
	return nil // unreachable for our prefixes: no upper bound
}

// nsBounds returns the [lower, upper) bounds of one namespace.
func nsBounds(ns byte) (lower, upper []byte) {
	return []byte{ns}, []byte{ns + 1}
}

// decodeClient parses ns + uvarint(len) + id from the start of key and
// returns the id and the remaining bytes. It fails on a truncated or
// inconsistent key rather than panicking.
func decodeClient(key []byte, ns byte) (clientID string, rest []byte, err error) {
	if len(key) == 0 || key[0] != ns {
		return "", nil, fmt.Errorf("key %q: not in namespace %q", key, ns)
	}
	n, w := binary.Uvarint(key[1:])
	if w <= 0 {
		return "", nil, fmt.Errorf("key %q: bad client id length", key)
	}
	body := key[1+w:]
	if n > uint64(len(body)) {
		return "", nil, fmt.Errorf("key %q: client id length %d exceeds key", key, n)
	}
	return string(body[:n]), body[n:], nil
}

// decodeSessionKey parses a session key.
func decodeSessionKey(key []byte) (string, error) {
	id, rest, err := decodeClient(key, nsSession)
	if err != nil {
		return "", err
	}
	if len(rest) != 0 {
		return "", fmt.Errorf("key %q: %d trailing bytes after client id", key, len(rest))
	}
	return id, nil
}

// decodeQueueSeq parses the seq of a queue key that is known to start with
// prefix (the iterator bounds guarantee that).
func decodeQueueSeq(key, prefix []byte) (uint64, error) {
	if len(key) != len(prefix)+seqLen {
		return 0, fmt.Errorf("key %q: queue key has length %d, want %d", key, len(key), len(prefix)+seqLen)
	}
	return binary.BigEndian.Uint64(key[len(prefix):]), nil
}
