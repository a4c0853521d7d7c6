package store

import (
	"bufio"
	"context"
	"fmt"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"
)

const (
	helperDirEnv  = "RAMPART_STORE_HELPER_DIR"
	helperClient  = "crash-client"
	helperMax     = 2000
	helperMaxTime = 10 * time.Second
)

// TestHelperProcessWriter is not a test: TestCrashDurability runs it in a
// child process that commits synced batches (or unsynced ones followed by Sync)
// and reports each one on stdout once it is durable, until it is killed.
func TestHelperProcessWriter(t *testing.T) {
	dir := os.Getenv(helperDirEnv)
	if dir == "" {
		t.Skip("helper process for TestCrashDurability")
	}
	ctx := context.Background()
	s, err := Open(ctx, Options{Dir: dir, Sync: true})
	if err != nil {
		fmt.Fprintln(os.Stderr, "open:", err)
		os.Exit(2)
	}
	value := []byte(strings.Repeat("v", 200))
	deadline := time.Now().Add(helperMaxTime)
	for seq := uint64(1); seq <= helperMax && time.Now().Before(deadline); seq++ {
		b := s.NewBatch()
		b.PutQueued(helperClient, seq, value)
		b.PutSession(helperClient, strconv.AppendUint(nil, seq, 10))
		b.SetRetained("crash/last", strconv.AppendUint(nil, seq, 10))
		// Every other batch is committed without sync and made durable by Sync, the
		// way the broker acknowledges a run of pipelined messages.
		var err error
		if seq%2 == 0 {
			if err = b.CommitNoSync(ctx); err == nil {
				err = s.Sync(ctx)
			}
		} else {
			err = b.Commit(ctx)
		}
		if err != nil {
			fmt.Fprintln(os.Stderr, "commit:", err)
			os.Exit(2)
		}
		fmt.Printf("committed %d\n", seq)
	}
	// Reaching here means the parent was too slow to kill us; it still
	// checks everything. Exit without Close, like a crash.
	os.Exit(0)
}

// TestCrashDurability kills a writer with SIGKILL mid-stream and checks that
// every batch whose Commit had returned is in the store after reopening.
func TestCrashDurability(t *testing.T) {
	if testing.Short() {
		t.Skip("spawns a child process")
	}
	dir := t.TempDir()
	cmd := exec.Command(os.Args[0], "-test.run=^TestHelperProcessWriter$", "-test.count=1")
	cmd.Env = append(os.Environ(), helperDirEnv+"="+dir)
	var stderr strings.Builder
	cmd.Stderr = &stderr
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = cmd.Process.Kill() }) // if we fail early

	const killAfter = 300
	var (
		reported uint64 // highest seq the child reported as committed
		lines    int
		killOnce sync.Once
	)
	sc := bufio.NewScanner(out)
	for sc.Scan() {
		seqText, ok := strings.CutPrefix(sc.Text(), "committed ")
		if !ok {
			continue // test framework chatter
		}
		seq, err := strconv.ParseUint(seqText, 10, 64)
		if err != nil {
			t.Fatalf("bad line %q", sc.Text())
		}
		if seq != reported+1 {
			t.Fatalf("child reported %d after %d", seq, reported)
		}
		reported = seq
		if lines++; lines == killAfter {
			killOnce.Do(func() { _ = cmd.Process.Kill() }) // SIGKILL
		}
	}
	// Lines written before the kill landed are read above too: each one
	// was printed after its Commit returned, so each must be durable.
	waitErr := cmd.Wait()
	if reported == 0 || (reported < killAfter && waitErr != nil) {
		t.Fatalf("child failed after %d commits (wait: %v, stderr: %s)", reported, waitErr, stderr.String())
	}
	t.Logf("child reported %d commits before SIGKILL (wait: %v)", reported, waitErr)

	s := openDir(t, dir, true)
	ctx := context.Background()
	next := uint64(1)
	err = s.ForEachQueued(ctx, helperClient, func(seq uint64, value []byte) error {
		if seq != next {
			return fmt.Errorf("queue has seq %d, want %d (gap)", seq, next)
		}
		if len(value) != 200 {
			return fmt.Errorf("seq %d: value of %d bytes", seq, len(value))
		}
		next++
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	recovered := next - 1
	if recovered < reported {
		t.Fatalf("lost committed data: child reported %d commits, store has %d", reported, recovered)
	}
	// The child may have committed one batch it had no time to report.
	if recovered > reported+1 {
		t.Fatalf("store has %d commits, child reported %d", recovered, reported)
	}
	// The other writes of the last recovered batch came with it (atomic).
	sess, ok, err := s.GetSession(ctx, helperClient)
	if err != nil || !ok || string(sess) != strconv.FormatUint(recovered, 10) {
		t.Fatalf("session = %q, %v, %v; want %d", sess, ok, err, recovered)
	}
	ret, ok, err := s.GetRetained(ctx, "crash/last")
	if err != nil || !ok || string(ret) != strconv.FormatUint(recovered, 10) {
		t.Fatalf("retained = %q, %v, %v; want %d", ret, ok, err, recovered)
	}
	t.Logf("recovered %d commits", recovered)
}

// TestSyncCommitsReachWAL checks that Options.Sync really fsyncs the WAL on
// commit, and that without it commits do not.
func TestSyncCommitsReachWAL(t *testing.T) {
	ctx := context.Background()
	for _, sync := range []bool{true, false} {
		t.Run(fmt.Sprintf("sync=%v", sync), func(t *testing.T) {
			s := openDir(t, t.TempDir(), sync)
			const n = 20
			before := s.Stats().WALSyncs
			for i := range n {
				b := s.NewBatch()
				b.PutQueued("c", uint64(i), []byte("v"))
				if err := b.Commit(ctx); err != nil {
					t.Fatal(err)
				}
			}
			syncs := s.Stats().WALSyncs - before
			t.Logf("%d sequential commits: %d WAL syncs", n, syncs)
			if sync && syncs < n {
				t.Fatalf("%d sequential synced commits caused only %d WAL syncs", n, syncs)
			}
			if !sync && syncs >= n {
				t.Fatalf("%d unsynced commits caused %d WAL syncs", n, syncs)
			}
		})
	}
}

// TestGroupCommit runs concurrent synced committers and reports how many
// commits shared each WAL fsync. It asserts only correctness (every commit
// is there), not the ratio, which depends on the disk.
func TestGroupCommit(t *testing.T) {
	const (
		committers = 32
		perWorker  = 20
	)
	ctx := context.Background()
	s := openDir(t, t.TempDir(), true)
	before := s.Stats()
	var wg sync.WaitGroup
	errc := make(chan error, committers)
	for g := range committers {
		wg.Go(func() {
			id := fmt.Sprintf("client-%d", g)
			for i := range perWorker {
				b := s.NewBatch()
				b.PutQueued(id, uint64(i), make([]byte, 200))
				if err := b.Commit(ctx); err != nil {
					errc <- err
					return
				}
			}
		})
	}
	wg.Wait()
	close(errc)
	for err := range errc {
		t.Fatal(err)
	}
	st := s.Stats()
	commits := st.SyncedCommits - before.SyncedCommits
	syncs := st.WALSyncs - before.WALSyncs
	t.Logf("%d concurrent committers: %d synced commits, %d WAL syncs (%.1f commits per fsync)",
		committers, commits, syncs, float64(commits)/float64(max(syncs, 1)))
	for g := range committers {
		if n := len(queuedAll(t, s, fmt.Sprintf("client-%d", g))); n != perWorker {
			t.Fatalf("client-%d has %d queued, want %d", g, n, perWorker)
		}
	}
}
