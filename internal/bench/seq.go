package bench

import (
	"encoding/binary"
	"time"
)

// The head of every payload a publisher sends, big endian:
//
//	[0:8]   send time, Unix nanoseconds (end-to-end latency)
//	[8:16]  sequence number, 1 for a publisher's first message of a run
//	[16:20] run tag, random per run (tells a publisher's messages from those of an
//	        earlier run, such as ones a persistent session kept)
//	[20:24] publisher index (%i)
//
// The rest of the payload is zero.
const minPayload = 24

// origin names one publisher of one run.
type origin struct {
	run, pub uint32
}

// stamp writes the head of a payload.
func stamp(payload []byte, sent time.Time, seq uint64, from origin) {
	binary.BigEndian.PutUint64(payload, uint64(sent.UnixNano()))
	binary.BigEndian.PutUint64(payload[8:], seq)
	binary.BigEndian.PutUint32(payload[16:], from.run)
	binary.BigEndian.PutUint32(payload[20:], from.pub)
}

// unstamp reads the head of a payload of at least minPayload bytes.
func unstamp(payload []byte) (sent time.Time, seq uint64, from origin) {
	sent = time.Unix(0, int64(binary.BigEndian.Uint64(payload)))
	seq = binary.BigEndian.Uint64(payload[8:])
	from = origin{binary.BigEndian.Uint32(payload[16:]), binary.BigEndian.Uint32(payload[20:])}
	return sent, seq, from
}

// Bounds of what one subscriber tracks, so that payloads from another tool cannot make it
// allocate without limit: sequence numbers above maxTrackedSeq and publishers beyond
// maxTrackedOrigins are not tracked (they still count as received).
const (
	maxTrackedSeq     = 1 << 28 // 32 MiB of bits per publisher at most
	maxTrackedOrigins = 1 << 12
)

// seqSeen records, for one subscriber, which sequence numbers arrived from each
// publisher. It is used by one goroutine (the subscriber's read loop).
type seqSeen struct {
	from map[origin]*seqSet
}

// seqSet is the set of sequence numbers seen from one publisher.
type seqSet struct {
	bits     []uint64
	high     uint64 // highest sequence number seen
	distinct uint64
	dups     uint64
}

func newSeqSeen() *seqSeen { return &seqSeen{from: make(map[origin]*seqSet)} }

// add records one arrival.
func (s *seqSeen) add(from origin, seq uint64) {
	if seq == 0 || seq > maxTrackedSeq {
		return
	}
	set := s.from[from]
	if set == nil {
		if len(s.from) >= maxTrackedOrigins {
			return
		}
		set = &seqSet{}
		s.from[from] = set
	}
	w, bit := seq/64, uint64(1)<<(seq%64)
	if int(w) >= len(set.bits) {
		set.bits = append(set.bits, make([]uint64, int(w)-len(set.bits)+1)...)
	}
	if set.bits[w]&bit != 0 {
		set.dups++
		return
	}
	set.bits[w] |= bit
	set.distinct++
	set.high = max(set.high, seq)
}

// counts returns the messages missing (sequence numbers below a publisher's highest one
// seen that never arrived) and the duplicates (arrivals of a number already seen), over
// every publisher. A message lost after a publisher's last delivered one cannot be told
// from one never sent; it shows as a shortfall against the target (--count) instead.
func (s *seqSeen) counts() (missing, dups int64) {
	if s == nil {
		return 0, 0
	}
	for _, set := range s.from {
		missing += int64(set.high - set.distinct)
		dups += int64(set.dups)
	}
	return missing, dups
}
