package store

import (
	"context"
	"errors"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/cockroachdb/pebble/v2"
)

func TestRetained(t *testing.T) {
	tests := []struct {
		name string
		ops  func(b *Batch)
		want []kv
	}{
		{"empty", func(*Batch) {}, nil},
		{"set one", func(b *Batch) { b.SetRetained("a/b", []byte("1")) }, []kv{{"a/b", "1"}}},
		{
			"topics sort by bytes",
			func(b *Batch) {
				b.SetRetained("sensors/ünïcødé/🌡", []byte("u"))
				b.SetRetained("$SYS/broker/uptime", []byte("sys"))
				b.SetRetained("/leading/slash", []byte("slash"))
				b.SetRetained("a/b/c", []byte("abc"))
				b.SetRetained("a", []byte("a"))
			},
			[]kv{{"$SYS/broker/uptime", "sys"}, {"/leading/slash", "slash"}, {"a", "a"}, {"a/b/c", "abc"}, {"sensors/ünïcødé/🌡", "u"}},
		},
		{
			"overwrite keeps last",
			func(b *Batch) {
				b.SetRetained("t", []byte("old"))
				b.SetRetained("t", []byte("new"))
			},
			[]kv{{"t", "new"}},
		},
		{
			"delete",
			func(b *Batch) {
				b.SetRetained("t", []byte("v"))
				b.SetRetained("u", []byte("w"))
				b.DeleteRetained("t")
			},
			[]kv{{"u", "w"}},
		},
		{"delete missing", func(b *Batch) { b.DeleteRetained("nope") }, nil},
		{"empty value", func(b *Batch) { b.SetRetained("t", nil) }, []kv{{"t", ""}}},
		{"empty topic", func(b *Batch) { b.SetRetained("", []byte("x")) }, []kv{{"", "x"}}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := openMem(t)
			mustCommit(t, s, tt.ops)
			if got := retainedAll(t, s); !slices.Equal(got, tt.want) {
				t.Fatalf("retained = %q, want %q", got, tt.want)
			}
			for _, w := range tt.want {
				v, ok, err := s.GetRetained(context.Background(), w.key)
				if err != nil || !ok || string(v) != w.value {
					t.Fatalf("GetRetained(%q) = %q, %v, %v", w.key, v, ok, err)
				}
			}
			// Retained messages never show up as sessions or queues.
			if got := sessionsAll(t, s); len(got) != 0 {
				t.Fatalf("sessions = %q", got)
			}
		})
	}
}

func TestSessions(t *testing.T) {
	tests := []struct {
		name string
		ops  []func(b *Batch) // each committed separately
		want []kv
	}{
		{"put", []func(*Batch){func(b *Batch) { b.PutSession("c1", []byte("s1")) }}, []kv{{"c1", "s1"}}},
		{
			"overwrite across commits",
			[]func(*Batch){
				func(b *Batch) { b.PutSession("c1", []byte("v1")) },
				func(b *Batch) { b.PutSession("c1", []byte("v2")) },
			},
			[]kv{{"c1", "v2"}},
		},
		{
			"ordered by id length then bytes",
			[]func(*Batch){func(b *Batch) {
				b.PutSession("bb", []byte("2"))
				b.PutSession("a", []byte("1"))
				b.PutSession("ccc", []byte("3"))
				b.PutSession("b", []byte("1b"))
			}},
			[]kv{{"a", "1"}, {"b", "1b"}, {"bb", "2"}, {"ccc", "3"}},
		},
		{
			"delete",
			[]func(*Batch){
				func(b *Batch) { b.PutSession("c1", []byte("v")); b.PutSession("c2", []byte("w")) },
				func(b *Batch) { b.DeleteSession("c1") },
			},
			[]kv{{"c2", "w"}},
		},
		{"delete missing", []func(*Batch){func(b *Batch) { b.DeleteSession("ghost") }}, nil},
		{
			"tricky ids",
			[]func(*Batch){func(b *Batch) {
				b.PutSession("a\x00b", []byte("nul"))
				b.PutSession("\xff", []byte("ff"))
				b.PutSession("", []byte("empty"))
			}},
			[]kv{{"", "empty"}, {"\xff", "ff"}, {"a\x00b", "nul"}},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := openMem(t)
			for _, op := range tt.ops {
				mustCommit(t, s, op)
			}
			if got := sessionsAll(t, s); !slices.Equal(got, tt.want) {
				t.Fatalf("sessions = %q, want %q", got, tt.want)
			}
			for _, w := range tt.want {
				v, ok, err := s.GetSession(context.Background(), w.key)
				if err != nil || !ok || string(v) != w.value {
					t.Fatalf("GetSession(%q) = %q, %v, %v", w.key, v, ok, err)
				}
			}
			if _, ok, err := s.GetSession(context.Background(), "not-there"); ok || err != nil {
				t.Fatalf("GetSession(missing) = %v, %v", ok, err)
			}
		})
	}
}

func TestQueued(t *testing.T) {
	const id = "client"
	tests := []struct {
		name     string
		ops      func(b *Batch)
		want     []seqValue
		wantLast uint64
	}{
		{"none", func(*Batch) {}, nil, 0},
		{
			"ascending numeric order",
			func(b *Batch) {
				for _, seq := range []uint64{1 << 63, 256, 1, 1 << 32, 255, 0, math.MaxUint64} {
					b.PutQueued(id, seq, fmt.Appendf(nil, "m%d", seq))
				}
			},
			[]seqValue{
				{0, "m0"}, {1, "m1"}, {255, "m255"}, {256, "m256"},
				{1 << 32, fmt.Sprintf("m%d", uint64(1<<32))}, {1 << 63, fmt.Sprintf("m%d", uint64(1<<63))},
				{math.MaxUint64, fmt.Sprintf("m%d", uint64(math.MaxUint64))},
			},
			math.MaxUint64,
		},
		{
			"overwrite",
			func(b *Batch) { b.PutQueued(id, 7, []byte("a")); b.PutQueued(id, 7, []byte("b")) },
			[]seqValue{{7, "b"}},
			7,
		},
		{
			"delete one",
			func(b *Batch) {
				b.PutQueued(id, 1, []byte("a"))
				b.PutQueued(id, 2, []byte("b"))
				b.PutQueued(id, 3, []byte("c"))
				b.DeleteQueued(id, 3)
				b.DeleteQueued(id, 99)
			},
			[]seqValue{{1, "a"}, {2, "b"}},
			2,
		},
		{
			"delete session clears queue",
			func(b *Batch) {
				b.PutSession(id, []byte("s"))
				b.PutQueued(id, 1, []byte("a"))
				b.PutQueued(id, math.MaxUint64, []byte("z"))
				b.DeleteSession(id)
			},
			nil, 0,
		},
		{
			"operations apply in order within a batch",
			func(b *Batch) {
				b.PutQueued(id, 1, []byte("old"))
				b.DeleteSession(id)
				b.PutQueued(id, 2, []byte("new"))
			},
			[]seqValue{{2, "new"}},
			2,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := openMem(t)
			mustCommit(t, s, tt.ops)
			if got := queuedAll(t, s, id); !slices.Equal(got, tt.want) {
				t.Fatalf("queued = %v, want %v", got, tt.want)
			}
			last, ok, err := s.LastQueuedSeq(context.Background(), id)
			if err != nil || ok != (len(tt.want) > 0) || last != tt.wantLast {
				t.Fatalf("LastQueuedSeq = %d, %v, %v; want %d, %v", last, ok, err, tt.wantLast, len(tt.want) > 0)
			}
		})
	}
}

// TestClientIsolation deletes each tricky client id in turn and checks that
// no other client's session or queue is touched.
func TestClientIsolation(t *testing.T) {
	seqs := []uint64{0, 1, 255, 256, 1 << 32, 1 << 63, math.MaxUint64}
	fill := func(s *Store) {
		mustCommit(t, s, func(b *Batch) {
			for i, id := range trickyIDs {
				b.PutSession(id, fmt.Appendf(nil, "session-%d", i))
				// Each client's highest seq differs, so LastQueuedSeq
				// isolation is visible too.
				for _, seq := range seqs[:1+i%len(seqs)] {
					b.PutQueued(id, seq, fmt.Appendf(nil, "%d-%d", i, seq))
				}
			}
		})
	}
	check := func(t *testing.T, s *Store, deleted int) {
		t.Helper()
		for i, id := range trickyIDs {
			v, ok, err := s.GetSession(context.Background(), id)
			if err != nil {
				t.Fatal(err)
			}
			q := queuedAll(t, s, id)
			last, lastOK, err := s.LastQueuedSeq(context.Background(), id)
			if err != nil {
				t.Fatal(err)
			}
			if i == deleted {
				if ok || len(q) != 0 || lastOK {
					t.Fatalf("deleted client %q still has session=%v queue=%d last=%v", id, ok, len(q), lastOK)
				}
				continue
			}
			if !ok || string(v) != fmt.Sprintf("session-%d", i) {
				t.Fatalf("client %q session = %q, %v after deleting %q", id, v, ok, trickyIDs[deleted])
			}
			want := seqs[:1+i%len(seqs)]
			if len(q) != len(want) {
				t.Fatalf("client %q has %d queued, want %d after deleting %q", id, len(q), len(want), trickyIDs[deleted])
			}
			for j, e := range q {
				if e.seq != want[j] || e.value != fmt.Sprintf("%d-%d", i, want[j]) {
					t.Fatalf("client %q entry %d = %v", id, j, e)
				}
			}
			if !lastOK || last != want[len(want)-1] {
				t.Fatalf("client %q LastQueuedSeq = %d, %v; want %d", id, last, lastOK, want[len(want)-1])
			}
		}
	}
	for victim, id := range trickyIDs {
		name := fmt.Sprintf("%d_%.20q", victim, id)
		t.Run(name, func(t *testing.T) {
			s := openMem(t)
			fill(s)
			check(t, s, -1)
			mustCommit(t, s, func(b *Batch) { b.DeleteSession(id) })
			check(t, s, victim)
			if n := len(sessionsAll(t, s)); n != len(trickyIDs)-1 {
				t.Fatalf("%d sessions left, want %d", n, len(trickyIDs)-1)
			}
		})
	}
}

func TestBatchLifecycle(t *testing.T) {
	ctx := context.Background()
	t.Run("commit after discard", func(t *testing.T) {
		s := openMem(t)
		b := s.NewBatch()
		b.PutSession("c", []byte("v"))
		b.Discard()
		if err := b.Commit(ctx); !errors.Is(err, ErrBatchClosed) {
			t.Fatalf("Commit after Discard = %v, want ErrBatchClosed", err)
		}
		if got := sessionsAll(t, s); len(got) != 0 {
			t.Fatalf("discarded batch was written: %q", got)
		}
		b.Discard() // twice is fine
	})
	t.Run("commit twice", func(t *testing.T) {
		s := openMem(t)
		b := s.NewBatch()
		b.PutSession("c", []byte("v"))
		if err := b.Commit(ctx); err != nil {
			t.Fatal(err)
		}
		b.PutSession("d", []byte("ignored"))
		if err := b.Commit(ctx); !errors.Is(err, ErrBatchClosed) {
			t.Fatalf("second Commit = %v, want ErrBatchClosed", err)
		}
		b.Discard() // after Commit: no-op
		if got := sessionsAll(t, s); !slices.Equal(got, []kv{{"c", "v"}}) {
			t.Fatalf("sessions = %q", got)
		}
	})
	t.Run("len", func(t *testing.T) {
		s := openMem(t)
		b := s.NewBatch()
		defer b.Discard()
		ops := []func(){
			func() { b.SetRetained("t", nil) },
			func() { b.DeleteRetained("t") },
			func() { b.PutSession("c", nil) },
			func() { b.DeleteSession("c") },
			func() { b.PutQueued("c", 1, nil) },
			func() { b.DeleteQueued("c", 1) },
		}
		for i, op := range ops {
			op()
			if b.Len() != i+1 {
				t.Fatalf("Len = %d after %d ops", b.Len(), i+1)
			}
		}
	})
	t.Run("empty commit", func(t *testing.T) {
		s := openMem(t)
		if err := s.NewBatch().Commit(ctx); err != nil {
			t.Fatal(err)
		}
		if st := s.Stats(); st.Commits != 0 {
			t.Fatalf("empty commit counted: %+v", st)
		}
	})
	t.Run("caller may reuse value after put", func(t *testing.T) {
		s := openMem(t)
		buf := []byte("original")
		mustCommit(t, s, func(b *Batch) {
			b.PutQueued("c", 1, buf)
			copy(buf, "XXXXXXXX")
		})
		if got := queuedAll(t, s, "c"); !slices.Equal(got, []seqValue{{1, "original"}}) {
			t.Fatalf("queued = %v", got)
		}
	})
}

func TestForEachStopsOnError(t *testing.T) {
	s := openMem(t)
	mustCommit(t, s, func(b *Batch) {
		for i := range 10 {
			b.SetRetained(fmt.Sprintf("t/%d", i), []byte("v"))
			b.PutSession(fmt.Sprintf("c%d", i), []byte("v"))
			b.PutQueued("c", uint64(i), []byte("v"))
		}
	})
	stop := errors.New("stop here")
	ctx := context.Background()
	tests := []struct {
		name string
		run  func(fn func() error) error
	}{
		{"retained", func(fn func() error) error {
			return s.ForEachRetained(ctx, func(string, []byte) error { return fn() })
		}},
		{"sessions", func(fn func() error) error {
			return s.ForEachSession(ctx, func(string, []byte) error { return fn() })
		}},
		{"queued", func(fn func() error) error {
			return s.ForEachQueued(ctx, "c", func(uint64, []byte) error { return fn() })
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			calls := 0
			err := tt.run(func() error {
				calls++
				if calls == 3 {
					return stop
				}
				return nil
			})
			if err != stop { // must be returned unchanged, not wrapped
				t.Fatalf("err = %v, want the callback's error unchanged", err)
			}
			if calls != 3 {
				t.Fatalf("fn called %d times after error, want 3", calls)
			}
		})
	}
}

func TestContextCancellation(t *testing.T) {
	s := openMem(t)
	canceled, cancel := context.WithCancel(context.Background())
	cancel()

	b := s.NewBatch()
	b.PutSession("c", []byte("v"))
	if err := b.Commit(canceled); !errors.Is(err, context.Canceled) {
		t.Fatalf("Commit = %v, want context.Canceled", err)
	}
	if err := b.Commit(context.Background()); !errors.Is(err, ErrBatchClosed) {
		t.Fatalf("Commit after failed Commit = %v, want ErrBatchClosed", err)
	}
	if got := sessionsAll(t, s); len(got) != 0 {
		t.Fatalf("canceled commit wrote %q", got)
	}

	checks := map[string]error{
		"ForEachRetained": s.ForEachRetained(canceled, func(string, []byte) error { return nil }),
		"ForEachSession":  s.ForEachSession(canceled, func(string, []byte) error { return nil }),
		"ForEachQueued":   s.ForEachQueued(canceled, "c", func(uint64, []byte) error { return nil }),
	}
	_, _, checks["LastQueuedSeq"] = s.LastQueuedSeq(canceled, "c")
	_, _, checks["GetSession"] = s.GetSession(canceled, "c")
	_, checks["Open"] = Open(canceled, Options{InMemory: true})
	for name, err := range checks {
		if !errors.Is(err, context.Canceled) {
			t.Errorf("%s = %v, want context.Canceled", name, err)
		}
	}

	// Cancellation during a long iteration stops it within ctxCheckEvery.
	const n = 3 * ctxCheckEvery
	mustCommit(t, s, func(b *Batch) {
		for i := range n {
			b.PutQueued("c", uint64(i), []byte("v"))
		}
	})
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	calls := 0
	err := s.ForEachQueued(ctx, "c", func(uint64, []byte) error {
		calls++
		if calls == 10 {
			cancel()
		}
		return nil
	})
	if !errors.Is(err, context.Canceled) {
		t.Fatalf("ForEachQueued = %v after cancel, want context.Canceled", err)
	}
	if calls >= n || calls > 10+ctxCheckEvery {
		t.Fatalf("fn called %d times; cancellation not noticed", calls)
	}
}

func TestReopenPersistence(t *testing.T) {
	ctx := context.Background()
	for _, sync := range []bool{true, false} {
		t.Run(fmt.Sprintf("sync=%v", sync), func(t *testing.T) {
			dir := t.TempDir()
			s, err := Open(ctx, Options{Dir: dir, Sync: sync})
			if err != nil {
				t.Fatal(err)
			}
			mustCommit(t, s, func(b *Batch) {
				b.SetRetained("a/b", []byte("ret"))
				b.PutSession("c\x00", []byte("sess"))
				b.PutQueued("c\x00", 5, []byte("five"))
				b.PutQueued("c\x00", 6, []byte("six"))
				b.PutSession("gone", []byte("x"))
				b.PutQueued("gone", 1, []byte("x"))
			})
			mustCommit(t, s, func(b *Batch) {
				b.DeleteQueued("c\x00", 5)
				b.DeleteSession("gone")
			})
			if err := s.Close(); err != nil {
				t.Fatalf("Close: %v", err)
			}
			if err := s.Close(); err != nil {
				t.Fatalf("second Close: %v", err)
			}

			fi, err := os.Stat(filepath.Join(dir, "store"))
			if err != nil {
				t.Fatal(err)
			}
			if perm := fi.Mode().Perm(); perm != 0o700 {
				t.Fatalf("store dir mode = %o, want 700", perm)
			}

			s2 := openDir(t, dir, sync)
			if got := retainedAll(t, s2); !slices.Equal(got, []kv{{"a/b", "ret"}}) {
				t.Fatalf("retained = %q", got)
			}
			if got := sessionsAll(t, s2); !slices.Equal(got, []kv{{"c\x00", "sess"}}) {
				t.Fatalf("sessions = %q", got)
			}
			if got := queuedAll(t, s2, "c\x00"); !slices.Equal(got, []seqValue{{6, "six"}}) {
				t.Fatalf("queued = %v", got)
			}
			if got := queuedAll(t, s2, "gone"); len(got) != 0 {
				t.Fatalf("deleted session's queue survived reopen: %v", got)
			}
			if last, ok, err := s2.LastQueuedSeq(ctx, "c\x00"); err != nil || !ok || last != 6 {
				t.Fatalf("LastQueuedSeq = %d, %v, %v", last, ok, err)
			}
		})
	}
}

func TestOpenTightensDirMode(t *testing.T) {
	dir := t.TempDir()
	if err := os.Mkdir(filepath.Join(dir, "store"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(filepath.Join(dir, "store"), 0o755); err != nil { // beat the umask
		t.Fatal(err)
	}
	openDir(t, dir, false)
	fi, err := os.Stat(filepath.Join(dir, "store"))
	if err != nil {
		t.Fatal(err)
	}
	if perm := fi.Mode().Perm(); perm != 0o700 {
		t.Fatalf("store dir mode = %o, want 700", perm)
	}
}

func TestOpenErrors(t *testing.T) {
	ctx := context.Background()
	if _, err := Open(ctx, Options{}); err == nil || !strings.Contains(err.Error(), "Dir is required") {
		t.Fatalf("Open without Dir = %v", err)
	}
	t.Run("store path is a file", func(t *testing.T) {
		dir := t.TempDir()
		if err := os.WriteFile(filepath.Join(dir, "store"), nil, 0o600); err != nil {
			t.Fatal(err)
		}
		if _, err := Open(ctx, Options{Dir: dir}); err == nil {
			t.Fatal("Open succeeded on a file")
		}
	})
	t.Run("locked by another store", func(t *testing.T) {
		dir := t.TempDir()
		openDir(t, dir, false)
		if s, err := Open(ctx, Options{Dir: dir}); err == nil {
			_ = s.Close()
			t.Fatal("second Open of the same dir succeeded")
		}
	})
}

func TestFormatVersion(t *testing.T) {
	ctx := context.Background()
	tests := []struct {
		name    string
		plant   func(db *pebble.DB) error
		wantErr string
	}{
		{"future version", func(db *pebble.DB) error { return db.Set(versionKey, []byte{2}, pebble.Sync) }, "unsupported format version 2"},
		{"version zero", func(db *pebble.DB) error { return db.Set(versionKey, []byte{0}, pebble.Sync) }, "unsupported format version 0"},
		{"garbage version", func(db *pebble.DB) error { return db.Set(versionKey, []byte{0x80}, pebble.Sync) }, "corrupt format version"},
		{"trailing bytes", func(db *pebble.DB) error { return db.Set(versionKey, []byte{1, 1}, pebble.Sync) }, "corrupt format version"},
		{"data without version", func(db *pebble.DB) error { return db.Set(sessionKey("c"), []byte("v"), pebble.Sync) }, "without a format version"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dir := t.TempDir()
			if err := os.MkdirAll(filepath.Join(dir, "store"), 0o700); err != nil {
				t.Fatal(err)
			}
			rawPebble(t, dir, func(db *pebble.DB) {
				if err := tt.plant(db); err != nil {
					t.Fatal(err)
				}
			})
			s, err := Open(ctx, Options{Dir: dir})
			if err == nil {
				_ = s.Close()
				t.Fatal("Open succeeded")
			}
			if !strings.Contains(err.Error(), tt.wantErr) {
				t.Fatalf("Open error = %q, want it to mention %q", err, tt.wantErr)
			}
			// The failed Open released the directory lock.
			rawPebble(t, dir, func(*pebble.DB) {})
		})
	}
	t.Run("new store records version 1", func(t *testing.T) {
		dir := t.TempDir()
		s := openDir(t, dir, true)
		if err := s.Close(); err != nil {
			t.Fatal(err)
		}
		rawPebble(t, dir, func(db *pebble.DB) {
			v, closer, err := db.Get(versionKey)
			if err != nil {
				t.Fatal(err)
			}
			defer closer.Close()
			if string(v) != "\x01" {
				t.Fatalf("version value = %x", v)
			}
		})
	})
}

// TestCorruptKeys plants keys this package cannot decode: iteration must
// fail with an error, never panic.
func TestCorruptKeys(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	openDir(t, dir, false).Close()
	rawPebble(t, dir, func(db *pebble.DB) {
		for _, k := range []string{"s\x05ab", "s\x80", "s\x01ab"} {
			if err := db.Set([]byte(k), []byte("x"), pebble.Sync); err != nil {
				t.Fatal(err)
			}
		}
		// A queue key of client "c" with a 3-byte seq.
		if err := db.Set([]byte("q\x01c\x00\x00\x01"), []byte("x"), pebble.Sync); err != nil {
			t.Fatal(err)
		}
	})
	s := openDir(t, dir, false)
	err := s.ForEachSession(ctx, func(string, []byte) error { return nil })
	if err == nil || !strings.Contains(err.Error(), "corrupt") {
		t.Fatalf("ForEachSession = %v, want corrupt key error", err)
	}
	err = s.ForEachQueued(ctx, "c", func(uint64, []byte) error { return nil })
	if err == nil || !strings.Contains(err.Error(), "corrupt") {
		t.Fatalf("ForEachQueued = %v, want corrupt key error", err)
	}
	if _, _, err := s.LastQueuedSeq(ctx, "c"); err == nil {
		t.Fatal("LastQueuedSeq accepted a corrupt key")
	}
}

func TestClosedStore(t *testing.T) {
	ctx := context.Background()
	s, err := Open(ctx, Options{InMemory: true})
	if err != nil {
		t.Fatal(err)
	}
	pending := s.NewBatch()
	pending.PutSession("c", []byte("v"))
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	errs := map[string]error{
		"pending Commit":  pending.Commit(ctx),
		"new Commit":      func() error { b := s.NewBatch(); b.PutSession("c", nil); return b.Commit(ctx) }(),
		"ForEachRetained": s.ForEachRetained(ctx, func(string, []byte) error { return nil }),
		"ForEachSession":  s.ForEachSession(ctx, func(string, []byte) error { return nil }),
		"ForEachQueued":   s.ForEachQueued(ctx, "c", func(uint64, []byte) error { return nil }),
	}
	_, _, errs["LastQueuedSeq"] = s.LastQueuedSeq(ctx, "c")
	_, _, errs["GetRetained"] = s.GetRetained(ctx, "t")
	for name, err := range errs {
		if !errors.Is(err, ErrClosed) {
			t.Errorf("%s on closed store = %v, want ErrClosed", name, err)
		}
	}
}

// TestCloseWhileBusy closes the store under concurrent commits and
// iterations: each either succeeds or reports ErrClosed; nothing panics.
func TestCloseWhileBusy(t *testing.T) {
	ctx := context.Background()
	s, err := Open(ctx, Options{Dir: t.TempDir(), Sync: true})
	if err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	errc := make(chan error, 64)
	for g := range 4 {
		wg.Go(func() {
			for i := uint64(0); ; i++ {
				b := s.NewBatch()
				b.PutQueued(fmt.Sprint(g), i, []byte("v"))
				if err := b.Commit(ctx); err != nil {
					if !errors.Is(err, ErrClosed) {
						errc <- err
					}
					return
				}
				err := s.ForEachQueued(ctx, fmt.Sprint(g), func(uint64, []byte) error { return nil })
				if err != nil {
					if !errors.Is(err, ErrClosed) {
						errc <- err
					}
					return
				}
			}
		})
	}
	for s.Stats().Commits < 50 {
		time.Sleep(time.Millisecond)
	}
	if err := s.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}
	wg.Wait()
	close(errc)
	for err := range errc {
		t.Errorf("unexpected error: %v", err)
	}
}

// TestCommitInsideForEach: fn may write to the store (e.g. expire sessions
// while scanning them).
func TestCommitInsideForEach(t *testing.T) {
	s := openMem(t)
	mustCommit(t, s, func(b *Batch) {
		b.PutSession("old", []byte("expired"))
		b.PutSession("new", []byte("live"))
		b.PutQueued("old", 1, []byte("m"))
	})
	err := s.ForEachSession(context.Background(), func(id string, v []byte) error {
		if string(v) != "expired" {
			return nil
		}
		b := s.NewBatch()
		b.DeleteSession(id)
		return b.Commit(context.Background())
	})
	if err != nil {
		t.Fatal(err)
	}
	if got := sessionsAll(t, s); !slices.Equal(got, []kv{{"new", "live"}}) {
		t.Fatalf("sessions = %q", got)
	}
	if got := queuedAll(t, s, "old"); len(got) != 0 {
		t.Fatalf("queue of deleted session = %v", got)
	}
}

func TestStats(t *testing.T) {
	s := openMem(t)
	mustCommit(t, s, func(b *Batch) {
		b.PutSession("c", []byte("v"))
		b.PutQueued("c", 1, make([]byte, 200))
	})
	mustCommit(t, s, func(b *Batch) { b.DeleteQueued("c", 1) })
	st := s.Stats()
	if st.Commits != 2 || st.SyncedCommits != 2 || st.Operations != 3 || st.CommitErrors != 0 {
		t.Fatalf("stats = %+v", st)
	}
	if st.BytesWritten < 200 {
		t.Fatalf("BytesWritten = %d, want >= 200", st.BytesWritten)
	}
}

func TestCommitNoSync(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	s := openDir(t, dir, true)
	before := s.Stats()
	b := s.NewBatch()
	b.PutQueued("c", 1, []byte("v"))
	b.PutQueued("c", 2, []byte("w"))
	if err := b.CommitNoSync(ctx); err != nil {
		t.Fatal(err)
	}
	if err := b.CommitNoSync(ctx); !errors.Is(err, ErrBatchClosed) {
		t.Fatalf("second CommitNoSync = %v, want ErrBatchClosed", err)
	}
	st := s.Stats()
	if st.Commits-before.Commits != 1 || st.SyncedCommits != before.SyncedCommits || st.WALSyncs != before.WALSyncs {
		t.Fatalf("CommitNoSync stats: before %+v after %+v", before, st)
	}
	// A following synced commit makes the unsynced one durable too.
	mustCommit(t, s, func(b *Batch) { b.DeleteQueued("c", 2) })
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	s2 := openDir(t, dir, true)
	if got := queuedAll(t, s2, "c"); !slices.Equal(got, []seqValue{{1, "v"}}) {
		t.Fatalf("queued = %v", got)
	}
	canceled, cancel := context.WithCancel(ctx)
	cancel()
	b = s2.NewBatch()
	b.PutQueued("c", 3, nil)
	if err := b.CommitNoSync(canceled); !errors.Is(err, context.Canceled) {
		t.Fatalf("CommitNoSync(canceled) = %v", err)
	}
}
