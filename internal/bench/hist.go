package bench

import (
	"math"
	"math/bits"
	"sync"
	"time"
)

// hist is a log-linear latency histogram: values in nanoseconds, 1/64 relative precision,
// fixed memory. It is safe for concurrent use.
type hist struct {
	mu     sync.Mutex
	counts [64 * 64]uint64
	n      uint64
	max    int64
}

const subBits = 6 // 64 sub-buckets per power of two

func bucketOf(v int64) int {
	if v < 1<<subBits {
		return int(max(v, 0))
	}
	exp := bits.Len64(uint64(v)) - 1 // >= subBits
	sub := int(uint64(v)>>(exp-subBits)) & (1<<subBits - 1)
	return (exp-subBits+1)<<subBits + sub
}

// lowOf is the smallest value that falls in bucket b.
func lowOf(b int) int64 {
	if b < 1<<subBits {
		return int64(b)
	}
	exp := b>>subBits + subBits - 1
	sub := b & (1<<subBits - 1)
	return int64(1<<exp) | int64(sub)<<(exp-subBits)
}

func (h *hist) record(d time.Duration) {
	v := int64(d)
	b := min(bucketOf(v), len(h.counts)-1)
	h.mu.Lock()
	h.counts[b]++
	h.n++
	h.max = max(h.max, v)
	h.mu.Unlock()
}

// quantile returns the value at quantile q (0..1), 0 with no samples.
func (h *hist) quantile(q float64) time.Duration {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.n == 0 {
		return 0
	}
	rank := uint64(math.Ceil(q * float64(h.n)))
	rank = max(rank, 1)
	var seen uint64
	for b, c := range h.counts {
		seen += c
		if seen >= rank {
			return time.Duration(min(lowOf(b), h.max))
		}
	}
	return time.Duration(h.max)
}
