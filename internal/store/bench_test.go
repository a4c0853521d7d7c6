package store

import (
	"context"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
)

// BenchmarkCommitSync measures synced commits of one ~200-byte PutQueued
// each with 1, 8 and 32 concurrent committers. commits/fsync above 1 is
// pebble's group commit at work.
func BenchmarkCommitSync(b *testing.B) {
	for _, committers := range []int{1, 8, 32} {
		b.Run(fmt.Sprintf("committers=%d", committers), func(b *testing.B) {
			benchCommit(b, true, committers)
		})
	}
}

// BenchmarkCommitNoSync is the same write without waiting for fsync.
func BenchmarkCommitNoSync(b *testing.B) {
	for _, committers := range []int{1, 8} {
		b.Run(fmt.Sprintf("committers=%d", committers), func(b *testing.B) {
			benchCommit(b, false, committers)
		})
	}
}

func benchCommit(b *testing.B, synced bool, committers int) {
	ctx := context.Background()
	s, err := Open(ctx, Options{Dir: b.TempDir(), Sync: synced})
	if err != nil {
		b.Fatal(err)
	}
	defer s.Close()
	value := make([]byte, 200)
	var next atomic.Int64
	var wg sync.WaitGroup
	before := s.Stats()
	b.ReportAllocs()
	b.ResetTimer()
	for g := range committers {
		wg.Go(func() {
			id := fmt.Sprintf("client-%d", g)
			for {
				i := next.Add(1)
				if i > int64(b.N) {
					return
				}
				batch := s.NewBatch()
				batch.PutQueued(id, uint64(i), value)
				if err := batch.Commit(ctx); err != nil {
					b.Error(err)
					return
				}
			}
		})
	}
	wg.Wait()
	b.StopTimer()
	st := s.Stats()
	commits := st.Commits - before.Commits
	b.ReportMetric(float64(commits)/b.Elapsed().Seconds(), "commits/s")
	if syncs := st.WALSyncs - before.WALSyncs; synced && syncs > 0 {
		b.ReportMetric(float64(commits)/float64(syncs), "commits/fsync")
	}
}
