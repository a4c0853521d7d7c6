package bench

import (
	"testing"
	"time"
)

func TestBucketsAreMonotonicAndTight(t *testing.T) {
	prev := -1
	for _, v := range []int64{0, 1, 63, 64, 65, 127, 128, 1000, 1 << 20, 123456789, 1 << 40} {
		b := bucketOf(v)
		if b < prev {
			t.Fatalf("bucket of %d is %d, below the previous %d", v, b, prev)
		}
		prev = b
		lo := lowOf(b)
		if lo > v || float64(v-lo) > float64(v)/64+1 {
			t.Fatalf("value %d in bucket %d whose low end is %d: more than 1/64 apart", v, b, lo)
		}
	}
}

func TestQuantiles(t *testing.T) {
	tests := []struct {
		name   string
		values []time.Duration
		q      float64
		want   time.Duration
	}{
		{"empty", nil, 0.5, 0},
		{"single", []time.Duration{time.Millisecond}, 0.99, time.Millisecond},
		{"median of 1..100 us", usRange(1, 100), 0.5, 50 * time.Microsecond},
		{"p99 of 1..100 us", usRange(1, 100), 0.99, 99 * time.Microsecond},
		{"max", usRange(1, 100), 1, 100 * time.Microsecond},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			var h hist
			for _, v := range tc.values {
				h.record(v)
			}
			got := h.quantile(tc.q)
			if diff := got - tc.want; diff < -tc.want/60 || diff > tc.want/60 {
				t.Fatalf("quantile(%v) = %v, want %v within 1/64", tc.q, got, tc.want)
			}
		})
	}
}

func usRange(from, to int) []time.Duration {
	var out []time.Duration
	for i := from; i <= to; i++ {
		out = append(out, time.Duration(i)*time.Microsecond)
	}
	return out
}
