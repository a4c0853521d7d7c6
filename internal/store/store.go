// Package store is Rampart's embedded durable storage for the message path:
// retained messages, persistent sessions and each session's queue of QoS 1/2
// messages, kept in a pebble (LSM) database under <data dir>/store.
//
// The broker serialises messages and session state itself; this package
// stores opaque values under a small typed key space:
//
//	0x00 "version"                       format version, uvarint (currently 1)
//	'r' topic                            retained message for topic
//	's' uvarint(len(id)) id              session state of client id
//	'q' uvarint(len(id)) id seq          queued message seq of client id;
//	                                     seq is 8 bytes big-endian
//
// Client ids are arbitrary bytes (including 0x00 and 0xff), so they are
// length-prefixed rather than terminated by a separator: the encoding is
// prefix-free, and the queue keys of one client form the contiguous range
// ['q' uvarint(len(id)) id, prefixEnd) that contains no other client's keys
// ("a" and "a\x00b" and "ab" never overlap). DeleteSession removes the
// session record and that range with one range deletion. Within a client,
// big-endian seqs sort numerically, so queues iterate in ascending seq;
// sessions iterate ordered by (len(id), id), retained messages by topic bytes.
//
// All writes go through a Batch, which commits atomically. Durability: with
// Options.Sync, Commit uses pebble.Sync and returns only after the batch is in
// the write-ahead log and the log has been fsynced, so a batch whose Commit
// returned nil survives the process being killed (SIGKILL) and, as far as
// the disk honours fsync, power loss. Pebble's commit pipeline coalesces
// concurrent synced commits into one fsync (group commit), so many committers
// share the cost of one sync. Without Sync a commit is visible at once and
// reaches the disk shortly after; with InMemory nothing reaches a disk
// (durability "none").
//
// A Store is safe for concurrent use; a Batch is not.
package store

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"

	"github.com/cockroachdb/pebble/v2"
	"github.com/cockroachdb/pebble/v2/vfs"
)

// FormatVersion is the version of the key layout written by this package.
// Open refuses a store with any other version.
const FormatVersion = 1

// Tuning. The broker must be cheap to run, so memory is kept modest; the
// write load (small values, many tiny batches) does not need large tables.
const (
	// memTableSize caps one memtable. Pebble starts with a 256 KB memtable
	// and doubles up to this, so an idle broker pays little; with the default
	// stop-writes threshold of 2 at most 2 x 16 MB are held before writes
	// stall behind a flush. 16 MB is enough to absorb bursts of queued
	// messages that are acknowledged (deleted) before they ever reach an
	// sstable.
	memTableSize = 16 << 20
	// blockCacheSize is the shared sstable block cache. Reads on the message
	// path are rare (startup, session resume); recent data is in memtables.
	blockCacheSize = 16 << 20
	// maxOpenFiles bounds the file descriptors pebble keeps for sstables, so
	// the store does not compete with client connections for the fd limit.
	maxOpenFiles = 256
)

// ErrClosed is returned by operations on a closed Store.
var ErrClosed = errors.New("store: closed")

// Options configures Open.
type Options struct {
	// Dir is the data directory; the store lives in Dir/store, created 0700.
	// It is required unless InMemory is set.
	Dir string
	// Sync selects durability "sync": Commit returns only after the WAL is
	// fsynced.
	Sync bool
	// InMemory keeps everything in pebble's in-memory filesystem (durability
	// "none", and tests). Nothing survives Close.
	InMemory bool
	// Logger receives pebble's own log lines at debug level (its error lines
	// and background errors, disk stalls and write stalls at warn/error).
	// Nil discards them.
	Logger *slog.Logger
}

// Store is an open store. Create it with Open, release it with Close.
type Store struct {
	db       *pebble.DB
	writeOpt *pebble.WriteOptions
	inMemory bool

	// mu guards closed; inflight counts operations that use db, so that
	// Close can wait for them instead of pebble panicking on a closed DB.
	mu       sync.Mutex
	closed   bool
	inflight sync.WaitGroup

	commits       atomic.Uint64
	syncedCommits atomic.Uint64
	commitErrors  atomic.Uint64
	ops           atomic.Uint64
	bytesWritten  atomic.Uint64
	walSyncs      atomic.Uint64
}

// Stats are cumulative counters since Open, for metrics and benchmarks.
type Stats struct {
	Commits       uint64 // successful non-empty commits
	SyncedCommits uint64 // of which committed with fsync (Options.Sync)
	CommitErrors  uint64 // failed commits (not counting closed batches)
	Operations    uint64 // operations in successful commits
	BytesWritten  uint64 // encoded size of successfully committed batches
	// WALSyncs counts fsyncs of the write-ahead log. SyncedCommits/WALSyncs
	// is the average group-commit size.
	WALSyncs uint64
}

// Open opens (or creates) the store in o.Dir/store, checks its format
// version and returns it.
func Open(ctx context.Context, o Options) (*Store, error) {
	if err := ctx.Err(); err != nil {
		return nil, fmt.Errorf("store: open: %w", err)
	}
	s := &Store{inMemory: o.InMemory, writeOpt: pebble.NoSync}
	if o.Sync {
		s.writeOpt = pebble.Sync
	}

	var base vfs.FS
	dir := filepath.Join(o.Dir, "store")
	if o.InMemory {
		base = vfs.NewMem()
	} else {
		if o.Dir == "" {
			return nil, errors.New("store: open: Options.Dir is required unless InMemory is set")
		}
		if err := makePrivateDir(dir); err != nil {
			return nil, fmt.Errorf("store: open: %w", err)
		}
		base = vfs.Default
	}

	cache := pebble.NewCache(blockCacheSize)
	defer cache.Unref() // pebble takes its own reference in Open
	opts := &pebble.Options{
		FS:                 &syncCountingFS{FS: base, syncs: &s.walSyncs},
		Cache:              cache,
		MemTableSize:       memTableSize,
		MaxOpenFiles:       maxOpenFiles,
		FormatMajorVersion: pebble.FormatNewest,
		Logger:             pebbleLogger{l: o.Logger},
		EventListener:      eventListener(o.Logger),
	}
	if !o.InMemory {
		// Disk-health checking: reports operations stalled > 5s as DiskSlow.
		opts.WithFSDefaults()
	}
	db, err := pebble.Open(dir, opts)
	if err != nil {
		return nil, fmt.Errorf("store: open %s: %w", dir, err)
	}
	s.db = db
	if err := s.checkVersion(); err != nil {
		_ = db.Close()
		return nil, err
	}
	return s, nil
}

// makePrivateDir creates dir (and parents) with mode 0700 and tightens an
// existing dir that is accessible to group or others.
func makePrivateDir(dir string) error {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return err
	}
	fi, err := os.Stat(dir)
	if err != nil {
		return err
	}
	if !fi.IsDir() {
		return fmt.Errorf("%s is not a directory", dir)
	}
	if fi.Mode().Perm()&0o077 != 0 {
		if err := os.Chmod(dir, 0o700); err != nil {
			return err
		}
	}
	return nil
}

// checkVersion writes the format version into a new (empty) store, or
// verifies the version of an existing one.
func (s *Store) checkVersion() error {
	v, closer, err := s.db.Get(versionKey)
	switch {
	case err == nil:
		defer closer.Close()
		ver, n := binary.Uvarint(v)
		if n <= 0 || n != len(v) {
			return fmt.Errorf("store: corrupt format version value %x", v)
		}
		if ver != FormatVersion {
			return fmt.Errorf("store: unsupported format version %d (this build reads version %d); refusing to open", ver, FormatVersion)
		}
		return nil
	case errors.Is(err, pebble.ErrNotFound):
		empty, err := s.isEmpty()
		if err != nil {
			return err
		}
		if !empty {
			return errors.New("store: data without a format version key; refusing to open")
		}
		val := binary.AppendUvarint(nil, FormatVersion)
		if err := s.db.Set(versionKey, val, pebble.Sync); err != nil {
			return fmt.Errorf("store: write format version: %w", err)
		}
		return nil
	default:
		return fmt.Errorf("store: read format version: %w", err)
	}
}

// isEmpty reports whether the database holds no keys at all.
func (s *Store) isEmpty() (bool, error) {
	it, err := s.db.NewIter(nil)
	if err != nil {
		return false, fmt.Errorf("store: check empty: %w", err)
	}
	found := it.First()
	if err := errors.Join(it.Error(), it.Close()); err != nil {
		return false, fmt.Errorf("store: check empty: %w", err)
	}
	return !found, nil
}

// acquire registers an operation on the database; it fails once Close has
// begun. Every successful acquire must be paired with release.
func (s *Store) acquire() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return ErrClosed
	}
	s.inflight.Add(1)
	return nil
}

func (s *Store) release() { s.inflight.Done() }

// Close waits for in-flight commits and iterations, flushes the memtable to
// disk and closes the store. It is safe to call more than once; later calls
// return nil. It must not be called from inside a ForEach callback.
func (s *Store) Close() error {
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		return nil
	}
	s.closed = true
	s.mu.Unlock()
	s.inflight.Wait()

	var flushErr error
	if !s.inMemory {
		// Not needed for durability (the WAL is replayed on Open), but it
		// persists unsynced writes and makes the next Open fast.
		flushErr = s.db.Flush()
		if flushErr != nil {
			flushErr = fmt.Errorf("store: close: flush: %w", flushErr)
		}
	}
	closeErr := s.db.Close()
	if closeErr != nil {
		closeErr = fmt.Errorf("store: close: %w", closeErr)
	}
	return errors.Join(flushErr, closeErr)
}

// Stats returns a snapshot of the store's counters.
func (s *Store) Stats() Stats {
	return Stats{
		Commits:       s.commits.Load(),
		SyncedCommits: s.syncedCommits.Load(),
		CommitErrors:  s.commitErrors.Load(),
		Operations:    s.ops.Load(),
		BytesWritten:  s.bytesWritten.Load(),
		WALSyncs:      s.walSyncs.Load(),
	}
}
