package store

import (
	"context"

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
