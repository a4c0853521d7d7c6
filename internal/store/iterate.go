package store

import (
	"context"
	"errors"
	"fmt"

	"github.com/cockroachdb/pebble/v2"
)

// ctxCheckEvery is how many entries an iteration visits between checks of
// its context.
const ctxCheckEvery = 256

// The ForEach methods stream entries in key order without loading them all
// into memory. The value slice passed to fn is only valid until fn returns:
// it points into pebble's buffers and is reused; copy it to keep it. Keys are
// passed as fresh strings. If fn returns an error, iteration stops and that
// error is returned unchanged. fn may commit batches, but must not call
// Close. The iteration sees a consistent snapshot taken when it starts.

// ForEachRetained calls fn for each retained message, ordered by topic bytes.
func (s *Store) ForEachRetained(ctx context.Context, fn func(topic string, value []byte) error) error {
	lower, upper := nsBounds(nsRetained)
	return s.iterate(ctx, "retained", lower, upper, func(key, value []byte) error {
		return fn(string(key[1:]), value)
	})
}

// ForEachSession calls fn for each stored session, ordered by the encoded key
// (by length of the client id, then by its bytes).
func (s *Store) ForEachSession(ctx context.Context, fn func(clientID string, value []byte) error) error {
	lower, upper := nsBounds(nsSession)
	return s.iterate(ctx, "sessions", lower, upper, func(key, value []byte) error {
		id, err := decodeSessionKey(key)
		if err != nil {
			return &corruptError{err}
		}
		return fn(id, value)
	})
}

// ForEachQueued calls fn for each queued message of clientID in ascending
// seq order.
func (s *Store) ForEachQueued(ctx context.Context, clientID string, fn func(seq uint64, value []byte) error) error {
	prefix := queuePrefix(clientID)
	return s.iterate(ctx, "queue", prefix, prefixEnd(prefix), func(key, value []byte) error {
		seq, err := decodeQueueSeq(key, prefix)
		if err != nil {
			return &corruptError{err}
		}
		return fn(seq, value)
	})
}

// LastQueuedSeq returns the highest queued seq of clientID, and false if the
// client has no queued messages, so numbering can resume after a restart.
func (s *Store) LastQueuedSeq(ctx context.Context, clientID string) (uint64, bool, error) {
	if err := ctx.Err(); err != nil {
		return 0, false, fmt.Errorf("store: last queued seq: %w", err)
	}
	if err := s.acquire(); err != nil {
		return 0, false, fmt.Errorf("store: last queued seq: %w", err)
	}
	defer s.release()
	prefix := queuePrefix(clientID)
	it, err := s.db.NewIterWithContext(ctx, &pebble.IterOptions{LowerBound: prefix, UpperBound: prefixEnd(prefix)})
	if err != nil {
		return 0, false, fmt.Errorf("store: last queued seq: %w", err)
	}
	var (
		seq   uint64
		found = it.Last()
	)
	if found {
		seq, err = decodeQueueSeq(it.Key(), prefix)
	}
	if err = errors.Join(err, it.Error(), it.Close()); err != nil {
		return 0, false, fmt.Errorf("store: last queued seq: %w", err)
	}
	return seq, found, nil
}

// GetSession returns a copy of the session state of clientID, and false if
// there is none.
func (s *Store) GetSession(ctx context.Context, clientID string) ([]byte, bool, error) {
	return s.get(ctx, "get session", sessionKey(clientID))
}

// GetRetained returns a copy of the retained message of topic, and false if
// there is none.
func (s *Store) GetRetained(ctx context.Context, topic string) ([]byte, bool, error) {
	return s.get(ctx, "get retained", retainedKey(topic))
}

func (s *Store) get(ctx context.Context, what string, key []byte) ([]byte, bool, error) {
	if err := ctx.Err(); err != nil {
		return nil, false, fmt.Errorf("store: %s: %w", what, err)
	}
	if err := s.acquire(); err != nil {
		return nil, false, fmt.Errorf("store: %s: %w", what, err)
	}
	defer s.release()
	v, closer, err := s.db.Get(key)
	if errors.Is(err, pebble.ErrNotFound) {
		return nil, false, nil
	}
	if err != nil {
		return nil, false, fmt.Errorf("store: %s: %w", what, err)
	}
	out := append([]byte{}, v...)
	if err := closer.Close(); err != nil {
		return nil, false, fmt.Errorf("store: %s: %w", what, err)
	}
	return out, true, nil
}

// corruptError marks a key this package cannot decode, to tell it apart from
// an error returned by the caller's fn.
type corruptError struct{ err error }

func (e *corruptError) Error() string { return "corrupt " + e.err.Error() }
func (e *corruptError) Unwrap() error { return e.err }

// iterate visits the keys in [lower, upper) and calls visit for each. Errors
// returned by visit are passed through unchanged, except corruptError, which
// is wrapped like the store's own errors.
func (s *Store) iterate(ctx context.Context, what string, lower, upper []byte, visit func(key, value []byte) error) (err error) {
	if err := ctx.Err(); err != nil {
		return fmt.Errorf("store: iterate %s: %w", what, err)
	}
	if err := s.acquire(); err != nil {
		return fmt.Errorf("store: iterate %s: %w", what, err)
	}
	defer s.release()
	it, err := s.db.NewIterWithContext(ctx, &pebble.IterOptions{LowerBound: lower, UpperBound: upper})
	if err != nil {
		return fmt.Errorf("store: iterate %s: %w", what, err)
	}
	defer func() {
		if cerr := it.Close(); cerr != nil && err == nil {
			err = fmt.Errorf("store: iterate %s: %w", what, cerr)
		}
	}()
	n := 0
	for valid := it.First(); valid; valid = it.Next() {
		if n++; n%ctxCheckEvery == 0 {
			if err := ctx.Err(); err != nil {
				return fmt.Errorf("store: iterate %s: %w", what, err)
			}
		}
		value, err := it.ValueAndErr()
		if err != nil {
			return fmt.Errorf("store: iterate %s: %w", what, err)
		}
		if err := visit(it.Key(), value); err != nil {
			if _, ok := err.(*corruptError); ok {
				return fmt.Errorf("store: iterate %s: %w", what, err)
			}
			return err
		}
	}
	if err := it.Error(); err != nil {
		return fmt.Errorf("store: iterate %s: %w", what, err)
	}
	return nil
}
