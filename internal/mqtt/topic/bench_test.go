package topic

import (
	"runtime"
	"strconv"
	"testing"
	"time"
)

// subOpts stands in for the router's per-subscription options.
type subOpts struct {
	QoS               uint8
	NoLocal           bool
	RetainAsPublished bool
	RetainHandling    uint8
	ID                uint32
}

func BenchmarkMatch(b *testing.B) {
	cases := []struct {
		name, filter, topic string
	}{
		{"exact", "devices/d-4711/commands", "devices/d-4711/commands"},
		{"plus", "devices/+/telemetry", "devices/d-4711/telemetry"},
		{"hash", "fleet/eu-west/#", "fleet/eu-west/d-4711/battery/voltage"},
		{"miss", "devices/+/telemetry", "devices/d-4711/commands"},
		{"sys", "#", "$SYS/broker/clients/connected"},
	}
	for _, c := range cases {
		b.Run(c.name, func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				Match(c.filter, c.topic)
			}
		})
	}
}

// fleetTrie builds a trie of n subscriptions shaped like a device fleet: most devices
// subscribe to their own command topic, some to a config subtree or a regional subtree or a
// tenant status topic, and a fixed set of back-end services subscribe with wildcards and in
// shared groups.
func fleetTrie(n int) *Trie[string, subOpts] {
	tr := NewTrie[string, subOpts]()
	for i := 0; i < n; i++ {
		id := "d" + strconv.Itoa(i)
		var f string
		switch i % 10 {
		case 7:
			f = "devices/" + id + "/config/+"
		case 8:
			f = "fleet/region" + strconv.Itoa(i%50) + "/" + id + "/#"
		case 9:
			f = "tenants/t" + strconv.Itoa(i%1000) + "/devices/" + id + "/status"
		default:
			f = "devices/" + id + "/commands"
		}
		tr.Add(f, id, subOpts{QoS: 1, ID: uint32(i)})
	}
	for i := 0; i < 20; i++ {
		tr.Add("devices/+/telemetry", "monitor"+strconv.Itoa(i), subOpts{})
	}
	for i := 0; i < 5; i++ {
		tr.Add("devices/#", "audit"+strconv.Itoa(i), subOpts{QoS: 2})
	}
	tr.Add("#", "debug-tap", subOpts{})
	tr.Add("$SYS/#", "ops", subOpts{})
	for i := 0; i < 50; i++ {
		tr.Add("$share/ingest/devices/+/telemetry", "ingest"+strconv.Itoa(i), subOpts{QoS: 1})
	}
	for i := 0; i < 10; i++ {
		tr.Add("$share/alerts/devices/+/alerts", "alerter"+strconv.Itoa(i), subOpts{QoS: 1})
		tr.Add("$share/status/tenants/+/devices/+/status", "status"+strconv.Itoa(i), subOpts{})
	}
	return tr
}

func heapInUse() uint64 {
	runtime.GC()
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	return ms.HeapAlloc
}

func BenchmarkTrieMatch(b *testing.B) {
	for _, size := range []struct {
		name string
		n    int
	}{{"1k", 1_000}, {"100k", 100_000}, {"1M", 1_000_000}} {
		b.Run(size.name, func(b *testing.B) {
			before := heapInUse()
			start := time.Now()
			tr := fleetTrie(size.n)
			build := time.Since(start)
			perSub := float64(heapInUse()-before) / float64(tr.Len())
			// Names published by devices spread over the fleet: telemetry (matched by
			// monitors, audit, the debug tap and the ingest group), their own command
			// topic echoed, a tenant status topic and a regional battery reading.
			var names []string
			for i := 0; i < 64; i++ {
				id := strconv.Itoa((i * 7919) % size.n)
				switch i % 4 {
				case 0, 1:
					names = append(names, "devices/d"+id+"/telemetry")
				case 2:
					names = append(names, "devices/d"+id+"/commands")
				case 3:
					names = append(names, "tenants/t"+strconv.Itoa(i)+"/devices/d"+id+"/status")
				}
			}
			hits, rr := 0, 0
			var picked subOpts
			deliver := func(filter, key string, o subOpts) { hits++ }
			pick := func(group, filter string, ms []Member[string, subOpts]) {
				rr++
				picked = ms[rr%len(ms)].Value
			}
			b.ReportAllocs()
			i := 0
			for b.Loop() {
				tr.Match(names[i&63], deliver, pick)
				i++
			}
			_ = picked
			b.ReportMetric(float64(hits+rr)/float64(i), "deliveries/op")
			b.ReportMetric(perSub, "heapB/sub")
			b.ReportMetric(build.Seconds(), "build-s")
			runtime.KeepAlive(tr)
		})
	}
}

func BenchmarkTrieMatchParallel(b *testing.B) {
	tr := fleetTrie(100_000)
	b.ReportAllocs()
	b.ResetTimer()
	names := make([]string, 1024)
	for i := range names {
		names[i] = "devices/d" + strconv.Itoa(i*97) + "/telemetry"
	}
	b.RunParallel(func(pb *testing.PB) {
		n := 0
		fn := func(string, string, subOpts) { n++ }
		for i := 0; pb.Next(); i++ {
			tr.Match(names[i&1023], fn, nil)
		}
	})
}

func BenchmarkTrieAdd(b *testing.B) {
	const batch = 1 << 16
	filters := make([]string, batch)
	keys := make([]string, batch)
	for i := range filters {
		keys[i] = "d" + strconv.Itoa(i)
		filters[i] = "devices/" + keys[i] + "/commands"
	}
	b.Run("new", func(b *testing.B) {
		// Each op adds a subscription to a fresh filter; the trie is rebuilt every batch.
		b.ReportAllocs()
		var tr *Trie[string, subOpts]
		for i := 0; b.Loop(); i++ {
			if i%batch == 0 {
				b.StopTimer()
				tr = NewTrie[string, subOpts]()
				b.StartTimer()
			}
			tr.Add(filters[i%batch], keys[i%batch], subOpts{QoS: 1})
		}
	})
	b.Run("replace", func(b *testing.B) {
		tr := NewTrie[string, subOpts]()
		for i := range filters {
			tr.Add(filters[i], keys[i], subOpts{})
		}
		b.ReportAllocs()
		for i := 0; b.Loop(); i++ {
			tr.Add(filters[i%batch], keys[i%batch], subOpts{QoS: 2})
		}
	})
	b.Run("shared-member", func(b *testing.B) {
		// Many members joining one shared group: the key index keeps this O(1).
		tr := NewTrie[string, subOpts]()
		b.ReportAllocs()
		for i := 0; b.Loop(); i++ {
			if i%batch == 0 {
				b.StopTimer()
				tr = NewTrie[string, subOpts]()
				b.StartTimer()
			}
			tr.Add("$share/ingest/devices/+/telemetry", keys[i%batch], subOpts{})
		}
	})
	b.Run("add-remove", func(b *testing.B) {
		// Connect/disconnect churn against a 64k-subscription trie.
		tr := NewTrie[string, subOpts]()
		churn := make([]string, batch)
		for i := range filters {
			tr.Add(filters[i], keys[i], subOpts{})
			churn[i] = "devices/x" + keys[i] + "/commands"
		}
		b.ReportAllocs()
		for i := 0; b.Loop(); i++ {
			tr.Add(churn[i%batch], keys[i%batch], subOpts{})
			tr.Remove(churn[i%batch], keys[i%batch])
		}
	})
}
