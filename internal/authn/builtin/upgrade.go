package builtin

import (
	"context"
	"sync"
	"time"

	"github.com/rampart-mqtt/rampart/internal/authn/password"
)

// upgradeTimeout bounds one background re-hash and its write.
const upgradeTimeout = 30 * time.Second

// upgrader runs background password hash upgrades: at most one per user at a time, none
// after close. The number running is bounded by the number of distinct users logging in
// with an outdated hash, and each waits for a slot of the shared hashing semaphore.
type upgrader struct {
	base   context.Context // cancelled by close
	cancel context.CancelFunc

	mu      sync.Mutex
	closed  bool
	running map[string]bool
	wg      sync.WaitGroup
}

func (u *upgrader) init() {
	u.base, u.cancel = context.WithCancel(context.Background())
	u.running = map[string]bool{}
}

// start runs fn in the background unless an upgrade of id is running or the upgrader is
// closed, and reports whether it did.
func (u *upgrader) start(id string, fn func(ctx context.Context)) bool {
	u.mu.Lock()
	defer u.mu.Unlock()
	if u.closed || u.running[id] {
		return false
	}
	u.running[id] = true
	u.wg.Add(1)
	go func() {
		defer u.wg.Done()
		defer func() {
			u.mu.Lock()
			delete(u.running, id)
			u.mu.Unlock()
		}()
		ctx, cancel := context.WithTimeout(u.base, upgradeTimeout)
		defer cancel()
		fn(ctx)
	}()
	return true
}

// close refuses new work and waits for running work; when ctx ends first it cancels the
// running work, waits for it to return, and reports ctx's error.
func (u *upgrader) close(ctx context.Context) error {
	u.mu.Lock()
	u.closed = true
	u.mu.Unlock()
	done := make(chan struct{})
	go func() { u.wg.Wait(); close(done) }()
	select {
	case <-done:
		u.cancel()
		return nil
	case <-ctx.Done():
		u.cancel()
		<-done
		return ctx.Err()
	}
}

// upgrade re-hashes a user's password with the configured default after a successful
// login, and stores the new hash only if the stored one is still the hash that was
// verified: an administrator's password change in between wins.
func (a *Authenticator) upgrade(id, oldHash string, pw []byte) {
	pw = append([]byte(nil), pw...) // the broker clears its copy when Authenticate returns
	started := a.upgrades.start(id, func(ctx context.Context) {
		defer clear(pw)
		newHash, err := a.hasher.Hash(ctx, pw)
		if err != nil {
			a.log.Warn("password hash upgrade failed", "user_id", id, "error", err)
			return
		}
		a.writeMu.Lock()
		defer a.writeMu.Unlock()
		swapped, err := a.users.SwapPasswordHash(ctx, a.cfg.UserIDType, id, oldHash, newHash)
		if err != nil {
			a.log.Warn("password hash upgrade failed", "user_id", id, "error", err)
			return
		}
		if !swapped {
			a.log.Debug("password hash upgrade skipped: the user changed meanwhile", "user_id", id)
			return
		}
		a.mu.Lock()
		if cur := a.index[id]; cur != nil && cur.hash == oldHash {
			next := *cur
			next.hash = newHash
			a.index[id] = &next
		}
		a.mu.Unlock()
		from, _ := password.ParamsOf(oldHash)
		a.log.Info("password hash upgraded", "user_id", id, "from", string(from.Algorithm),
			"to", string(a.hasher.Params().Algorithm))
	})
	if !started {
		clear(pw)
	}
}
