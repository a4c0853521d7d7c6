package store

import (
	"context"
	"errors"
	"fmt"

	"github.com/cockroachdb/pebble/v2"
)

// ErrBatchClosed is returned by Commit on a batch that was already committed
// or discarded.
var ErrBatchClosed = errors.New("store: batch already committed or discarded")

// Batch collects writes that Commit applies atomically: either all of them
// survive or none does. Operations apply in the order they were added (a
// PutQueued after a DeleteSession of the same client survives). A Batch is
// not safe for concurrent use. After Commit or Discard it is unusable: its
// methods do nothing and Commit returns ErrBatchClosed.
type Batch struct {
	s   *Store
	b   *pebble.Batch // nil once committed or discarded
	ops int
}

// NewBatch returns an empty batch. On a closed store, the batch's Commit
// returns ErrClosed.
func (s *Store) NewBatch() *Batch {
	return &Batch{s: s, b: s.db.NewBatch()}
}

// Encoding into a pebble batch fails only on misuse (a closed or read-only
// batch), which the nil check rules out, so the errors below are dropped.

// SetRetained stores value as the retained message of topic, replacing any.
func (b *Batch) SetRetained(topic string, value []byte) {
	if b.b == nil {
		return
	}
	_ = b.b.Set(retainedKey(topic), value, nil)
	b.ops++
}

// DeleteRetained removes the retained message of topic, if any.
func (b *Batch) DeleteRetained(topic string) {
	if b.b == nil {
		return
	}
	_ = b.b.Delete(retainedKey(topic), nil)
	b.ops++
}

// PutSession stores value as the session state of clientID, replacing any.
func (b *Batch) PutSession(clientID string, value []byte) {
	if b.b == nil {
		return
	}
	_ = b.b.Set(sessionKey(clientID), value, nil)
	b.ops++
}

// DeleteSession removes the session record of clientID and all of its
// queued messages (one point deletion and one range deletion over exactly
// that client's queue keys). It counts as one operation.
func (b *Batch) DeleteSession(clientID string) {
	if b.b == nil {
		return
	}
	_ = b.b.Delete(sessionKey(clientID), nil)
	prefix := queuePrefix(clientID)
	_ = b.b.DeleteRange(prefix, prefixEnd(prefix), nil)
	b.ops++
}

// PutQueued stores value as message seq in the queue of clientID, replacing
// any message with the same seq.
func (b *Batch) PutQueued(clientID string, seq uint64, value []byte) {
	if b.b == nil {
		return
	}
	_ = b.b.Set(queueKey(clientID, seq), value, nil)
	b.ops++
}

// DeleteQueued removes message seq from the queue of clientID, if present.
func (b *Batch) DeleteQueued(clientID string, seq uint64) {
	if b.b == nil {
		return
	}
	_ = b.b.Delete(queueKey(clientID, seq), nil)
	b.ops++
}

// Len returns the number of operations in the batch.
func (b *Batch) Len() int { return b.ops }

// Commit applies the batch atomically. With Options.Sync it returns only
// after the WAL holding the batch is fsynced: once Commit returns nil, the
// batch survives a crash of the process. Concurrent synced commits share
// fsyncs (pebble's group commit). Commit always releases the batch, whether
// it succeeds or not; a context that is already done fails the commit
// without writing anything. An empty batch commits without touching disk.
func (b *Batch) Commit(ctx context.Context) error {
	return b.commit(ctx, b.s.writeOpt)
}

// commit implements Commit and CommitNoSync with the given write options.
func (b *Batch) commit(ctx context.Context, wo *pebble.WriteOptions) error {
	pb := b.b
	if pb == nil {
		return ErrBatchClosed
	}
	b.b = nil
	if err := ctx.Err(); err != nil {
		_ = pb.Close()
		return fmt.Errorf("store: commit: %w", err)
	}
	s := b.s
	if err := s.acquire(); err != nil {
		_ = pb.Close()
		return fmt.Errorf("store: commit: %w", err)
	}
	defer s.release()
	defer pb.Close() // before release: Close may be waiting for us
	if b.ops == 0 {
		return nil
	}
	size := pb.Len()
	if err := pb.Commit(wo); err != nil {
		s.commitErrors.Add(1)
		return fmt.Errorf("store: commit: %w", err)
	}
	s.commits.Add(1)
	if wo.Sync {
		s.syncedCommits.Add(1)
	}
	s.ops.Add(uint64(b.ops))
	s.bytesWritten.Add(uint64(size))
	return nil
}

// Discard releases the batch without writing it. It is safe to call after
// Commit (it then does nothing), so `defer b.Discard()` is a valid pattern.
func (b *Batch) Discard() {
	if b.b != nil {
		_ = b.b.Close()
		b.b = nil
	}
}
