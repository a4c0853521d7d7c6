package store

import (
	"bytes"
	"math"
	"strings"
	"testing"
)

// trickyIDs are client ids that break separator-based key layouts.
var trickyIDs = []string{
	"", "a", "a\x00", "a\x00b", "ab", "b", "\x00", "\xff", "\xff\xff", "a\xff",
	"q", "s", "ü", strings.Repeat("x", 127), strings.Repeat("x", 128), strings.Repeat("long", 20000),
}

func TestQueuePrefixIsExclusive(t *testing.T) {
	seqs := []uint64{0, 1, 255, 256, 1 << 32, 1 << 63, math.MaxUint64}
	for _, a := range trickyIDs {
		prefix := queuePrefix(a)
		end := prefixEnd(prefix)
		for _, b := range trickyIDs {
			for _, seq := range seqs {
				k := queueKey(b, seq)
				in := bytes.Compare(k, prefix) >= 0 && bytes.Compare(k, end) < 0
				if in != (a == b) {
					t.Fatalf("queue key of %q seq %d in range of %q: %v", b, seq, a, in)
				}
				if got, err := decodeQueueSeq(k, queuePrefix(b)); err != nil || got != seq {
					t.Fatalf("decodeQueueSeq(%q, %d) = %d, %v", b, seq, got, err)
				}
			}
			sk := sessionKey(b)
			if bytes.HasPrefix(sk, sessionKey(a)) != (a == b) {
				t.Fatalf("session key of %q has prefix of %q", b, a)
			}
		}
	}
}

func TestSessionKeyRoundTrip(t *testing.T) {
	for _, id := range trickyIDs {
		got, err := decodeSessionKey(sessionKey(id))
		if err != nil || got != id {
			t.Fatalf("decodeSessionKey(sessionKey(%q)) = %q, %v", id, got, err)
		}
	}
}

func TestDecodeCorruptKeys(t *testing.T) {
	tests := []struct {
		name string
		key  []byte
	}{
		{"empty", nil},
		{"wrong namespace", []byte("r\x01a")},
		{"no length", []byte("s")},
		{"unterminated varint", []byte("s\x80")},
		{"varint overflow", []byte("s\xff\xff\xff\xff\xff\xff\xff\xff\xff\xff\x01")},
		{"length exceeds key", []byte("s\x05ab")},
		{"huge length", []byte("s\xff\xff\xff\xff\xff\xff\xff\xff\x7f")},
		{"trailing bytes", []byte("s\x01ab")},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if id, err := decodeSessionKey(tt.key); err == nil {
				t.Fatalf("decodeSessionKey(%q) = %q, want error", tt.key, id)
			}
		})
	}
	if _, err := decodeQueueSeq([]byte("q\x01a\x00\x01"), []byte("q\x01a")); err == nil {
		t.Fatal("decodeQueueSeq accepted a short seq")
	}
}

func TestPrefixEnd(t *testing.T) {
	tests := []struct{ in, want string }{
		{"q", "r"},
		{"q\x01a", "q\x01b"},
		{"q\x01\xff", "q\x02"},
		{"q\x02\xff\xff", "q\x03"},
	}
	for _, tt := range tests {
		if got := prefixEnd([]byte(tt.in)); string(got) != tt.want {
			t.Errorf("prefixEnd(%q) = %q, want %q", tt.in, got, tt.want)
		}
	}
}
