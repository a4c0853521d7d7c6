package store

import (
	"context"
	"fmt"

	"github.com/cockroachdb/pebble/v2"
)

// CommitNoSync applies the batch atomically like Commit but never waits for the WAL to be
// fsynced, whatever Options.Sync says. Use it for writes whose loss in a crash is harmless,
// such as forgetting a message that was already acknowledged (it is then delivered again).
// A later synced Commit makes it durable too: the WAL is written in order, so the fsync of
// that commit covers every earlier write.
func (b *Batch) CommitNoSync(ctx context.Context) error {
	return b.commit(ctx, pebble.NoSync)
}

// Sync makes every batch committed so far durable: with Options.Sync it returns once the
// WAL is fsynced (concurrent calls and synced commits share fsyncs); without it, it does
// nothing. Callers that commit many batches with CommitNoSync and acknowledge them
// together call Sync once before acknowledging.
func (s *Store) Sync(ctx context.Context) error {
	if err := ctx.Err(); err != nil {
		return fmt.Errorf("store: sync: %w", err)
	}
	if !s.writeOpt.Sync {
		return nil
	}
	if err := s.acquire(); err != nil {
		return fmt.Errorf("store: sync: %w", err)
	}
	defer s.release()
	if err := s.db.LogData(nil, pebble.Sync); err != nil {
		s.commitErrors.Add(1)
		return fmt.Errorf("store: sync: %w", err)
	}
	s.syncedCommits.Add(1)
	return nil
}
