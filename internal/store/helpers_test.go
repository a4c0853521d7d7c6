package store

import (
	"context"
	"path/filepath"
	"testing"

	"github.com/cockroachdb/pebble/v2"
)

func openMem(t testing.TB) *Store {
	t.Helper()
	s, err := Open(context.Background(), Options{InMemory: true, Sync: true})
	if err != nil {
		t.Fatalf("Open: %v", err)
	}
	t.Cleanup(func() { _ = s.Close() })
	return s
}

func openDir(t testing.TB, dir string, sync bool) *Store {
	t.Helper()
	s, err := Open(context.Background(), Options{Dir: dir, Sync: sync})
	if err != nil {
		t.Fatalf("Open(%s): %v", dir, err)
	}
	t.Cleanup(func() { _ = s.Close() })
	return s
}

func mustCommit(t testing.TB, s *Store, fill func(b *Batch)) {
	t.Helper()
	b := s.NewBatch()
	fill(b)
	if err := b.Commit(context.Background()); err != nil {
		t.Fatalf("Commit: %v", err)
	}
}

type kv struct {
	key   string
	value string
}

func retainedAll(t testing.TB, s *Store) []kv {
	t.Helper()
	var out []kv
	err := s.ForEachRetained(context.Background(), func(topic string, value []byte) error {
		out = append(out, kv{topic, string(value)})
		return nil
	})
	if err != nil {
		t.Fatalf("ForEachRetained: %v", err)
	}
	return out
}

func sessionsAll(t testing.TB, s *Store) []kv {
	t.Helper()
	var out []kv
	err := s.ForEachSession(context.Background(), func(id string, value []byte) error {
		out = append(out, kv{id, string(value)})
		return nil
	})
	if err != nil {
		t.Fatalf("ForEachSession: %v", err)
	}
	return out
}

type seqValue struct {
	seq   uint64
	value string
}

func queuedAll(t testing.TB, s *Store, id string) []seqValue {
	t.Helper()
	var out []seqValue
	err := s.ForEachQueued(context.Background(), id, func(seq uint64, value []byte) error {
		out = append(out, seqValue{seq, string(value)})
		return nil
	})
	if err != nil {
		t.Fatalf("ForEachQueued(%q): %v", id, err)
	}
	return out
}

// rawPebble opens the pebble database under dir/store directly, to plant
// data this package would never write.
func rawPebble(t testing.TB, dir string, fill func(db *pebble.DB)) {
	t.Helper()
	db, err := pebble.Open(filepath.Join(dir, "store"), &pebble.Options{})
	if err != nil {
		t.Fatalf("pebble.Open: %v", err)
	}
	fill(db)
	if err := db.Close(); err != nil {
		t.Fatalf("pebble Close: %v", err)
	}
}
