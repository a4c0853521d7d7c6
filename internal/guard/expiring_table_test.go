package guard

import (
	"sync"
	"testing"
)

// checkTable checks, holding mu, that the table's map and heap hold the same entries, each
// at its slot, in heap order.
func checkTable[K comparable, E tableEntry[K]](t *testing.T, mu sync.Locker, tab *expiringTable[K, E]) {
	t.Helper()
	mu.Lock()
	defer mu.Unlock()
	if len(tab.entries) != len(tab.expiry) {
		t.Fatalf("%d entries in the map, %d in the heap", len(tab.entries), len(tab.expiry))
	}
	for i, e := range tab.expiry {
		if *e.slot() != i || tab.entries[e.tableKey()] != e {
			t.Fatalf("heap slot %d holds a stray entry", i)
		}
		if i > 0 && e.due().Before(tab.expiry[(i-1)/2].due()) {
			t.Fatalf("heap order broken at %d", i)
		}
	}
}
