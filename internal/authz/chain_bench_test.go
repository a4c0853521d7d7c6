package authz

import (
	"context"
	"testing"
	"time"

	"github.com/rampart-mqtt/rampart/internal/clientinfo"
)

// BenchmarkChainAuthorize measures one publish decision through the chain: a source that
// answers from a map, with the decision cache on or off and the source wrapped with a TTL
// or not (the cost of the TTL bookkeeping on the publish path).
func BenchmarkChainAuthorize(b *testing.B) {
	for _, tc := range []struct {
		name  string
		cache bool
		ttl   time.Duration // < 0: no TTL wrapper
	}{
		{"cache-off/no-ttl", false, -1},
		{"cache-off/ttl-1m", false, time.Minute},
		{"cache-on/no-ttl", true, -1},
		{"cache-on/ttl-1m", true, time.Minute},
	} {
		b.Run(tc.name, func(b *testing.B) {
			var src Source = &mapSource{answers: map[string]Decision{"devices/d1/up": Allow}}
			if tc.ttl >= 0 {
				src = WithTTL(src, tc.ttl)
			}
			ch := New(Options{Sources: []Source{src}, Cache: CacheOptions{Enable: tc.cache, MaxSize: 32, TTL: time.Minute}})
			c := ch.ForClient(&clientinfo.Info{ClientID: "d1"}, nil)
			ctx := context.Background()
			b.ReportAllocs()
			for b.Loop() {
				if !c.Authorize(ctx, pubAct, "devices/d1/up") {
					b.Fatal("denied")
				}
			}
		})
	}
}
