// Package file is the "file" authorization source: rules read from a YAML ACL file (the
// format of authz.ParseYAMLRules), compiled once, and replaced as a whole when the file is
// reloaded (on SIGHUP, or when Watch sees it change). A file that does not load keeps the
// rules in force and says why, with the file's name, the line and the rule.
package file

import (
	"bytes"
	"context"
	"crypto/sha256"
	"fmt"
	"log/slog"
	"os"
	"sync"
	"sync/atomic"
	"time"

	"github.com/rampart-mqtt/rampart/internal/authz"
	"github.com/rampart-mqtt/rampart/internal/clientinfo"
)

// DefaultInterval is how often Watch looks at the file when given no interval.
const DefaultInterval = 5 * time.Second

// racyWindow covers the coarsest common file system timestamps (FAT: 2 s).
const racyWindow = 3 * time.Second

// Source is the file authorization source. It is safe for concurrent use.
type Source struct {
	path string
	log  *slog.Logger

	rules atomic.Pointer[authz.RuleSet]

	mu     sync.Mutex // serialises loads; guards the fields below
	loaded [sha256.Size]byte
	tried  [sha256.Size]byte // the content of the last attempt, good or bad
	seen   stamp             // the file's size and time at the last look
	// racy is how long after its modification time a file is read at every look, so that
	// a same-size rewrite within a coarse file system timestamp is not missed.
	racy time.Duration

	lmu       sync.Mutex
	listeners []func()
}

// stamp is what a stat tells about the file.
type stamp struct {
	size  int64
	mtime time.Time
}

func (a stamp) same(b stamp) bool { return a.size == b.size && a.mtime.Equal(b.mtime) }

// Compile-time checks of the interfaces the chain uses.
var (
	_ authz.Source          = (*Source)(nil)
	_ authz.Notifier        = (*Source)(nil)
	_ authz.PlaceholderUser = (*Source)(nil)
)

// New loads and compiles the ACL file at path. A file that does not load is an error: the
// broker does not start without its rules.
func New(path string, log *slog.Logger) (*Source, error) {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	s := &Source{path: path, log: log.With("source", "file", "path", path), racy: racyWindow}
	data, st, err := s.read()
	if err != nil {
		return nil, err
	}
	rs, err := s.parse(data)
	if err != nil {
		return nil, err
	}
	s.rules.Store(rs)
	s.loaded = sha256.Sum256(data)
	s.tried, s.seen = s.loaded, st
	s.log.Info("ACL file loaded", "rules", rs.Len())
	return s, nil
}

// Name implements authz.Source.
func (s *Source) Name() string { return "file" }

// Path returns the file's path.
func (s *Source) Path() string { return s.path }

// ForClient implements authz.Source with the rules in force now. A reload does not change
// an answer already given: the chain asks again after OnChange.
func (s *Source) ForClient(info *clientinfo.Info) authz.ClientSource {
	return s.rules.Load().ForClient(info)
}

// UsesPlaceholders reports whether the rules in force use ${...} placeholders.
func (s *Source) UsesPlaceholders() bool { return s.rules.Load().UsesPlaceholders() }

// UsesPlaceholder reports whether the rules in force use the placeholder name.
func (s *Source) UsesPlaceholder(name string) bool { return s.rules.Load().UsesPlaceholder(name) }

// Len returns the number of rules in force.
func (s *Source) Len() int { return s.rules.Load().Len() }

// OnChange implements authz.Notifier: fn runs after each reload that changed the rules,
// once the new rules are in effect for ForClient.
func (s *Source) OnChange(fn func()) {
	s.lmu.Lock()
	s.listeners = append(s.listeners, fn)
	s.lmu.Unlock()
}

// Reload reads the file again. If it does not load, the rules in force stay and the error,
// which names the file, the line and the rule, is logged and returned. If its content is
// the same as the rules in force, nothing happens; otherwise the new rules replace the old
// and the OnChange functions run before Reload returns.
func (s *Source) Reload() error {
	s.mu.Lock()
	data, st, err := s.read()
	if err != nil {
		s.mu.Unlock()
		s.log.Error("ACL file not reloaded: the rules in force stay", "err", err)
		return err
	}
	changed, err := s.apply(data, st)
	s.mu.Unlock()
	if err != nil {
		s.log.Error("ACL file not reloaded: the rules in force stay", "err", err)
		return err
	}
	if changed {
		s.notify()
	}
	return nil
}

// apply installs data unless it is what is loaded already. Called with s.mu held.
func (s *Source) apply(data []byte, st stamp) (changed bool, err error) {
	sum := sha256.Sum256(data)
	s.seen, s.tried = st, sum
	if sum == s.loaded {
		return false, nil
	}
	rs, err := s.parse(data)
	if err != nil {
		return false, err
	}
	s.rules.Store(rs)
	s.loaded = sum
	s.log.Info("ACL file reloaded", "rules", rs.Len())
	return true, nil
}

func (s *Source) notify() {
	s.lmu.Lock()
	fns := append([]func(){}, s.listeners...)
	s.lmu.Unlock()
	for _, fn := range fns {
		fn()
	}
}

// Watch looks at the file every interval (DefaultInterval when interval <= 0) until ctx is
// done, and reloads it when its content changed. It reads the file only when its size or
// modification time changed, or for a few seconds after that time, while a same-size
// rewrite within the file system's timestamp granularity could hide behind it; a content
// hash then decides. A file that does not load is reported once per distinct content.
func (s *Source) Watch(ctx context.Context, interval time.Duration) {
	if interval <= 0 {
		interval = DefaultInterval
	}
	t := time.NewTicker(interval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			s.poll(interval)
		}
	}
}

// poll is one look of Watch.
func (s *Source) poll(interval time.Duration) {
	fi, err := os.Stat(s.path)
	if err != nil {
		s.mu.Lock()
		report := !s.seen.same(stamp{})
		s.seen = stamp{}
		s.mu.Unlock()
		if report {
			s.log.Error("ACL file cannot be read: the rules in force stay", "err", err)
		}
		return
	}
	st := stamp{size: fi.Size(), mtime: fi.ModTime()}
	s.mu.Lock()
	if st.same(s.seen) && time.Since(st.mtime) > s.racy+interval {
		s.mu.Unlock()
		return
	}
	data, st, err := s.read()
	if err != nil {
		s.mu.Unlock()
		s.log.Error("ACL file cannot be read: the rules in force stay", "err", err)
		return
	}
	if sha256.Sum256(data) == s.tried {
		s.seen = st // already loaded, or already reported as broken
		s.mu.Unlock()
		return
	}
	changed, err := s.apply(data, st)
	s.mu.Unlock()
	if err != nil {
		s.log.Error("ACL file not reloaded: the rules in force stay", "err", err)
		return
	}
	if changed {
		s.notify()
	}
}

// read returns the file's content and the stamp it had when read.
func (s *Source) read() ([]byte, stamp, error) {
	f, err := os.Open(s.path)
	if err != nil {
		return nil, stamp{}, fmt.Errorf("acl file: %w", err)
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return nil, stamp{}, fmt.Errorf("acl file %s: %w", s.path, err)
	}
	if !fi.Mode().IsRegular() {
		return nil, stamp{}, fmt.Errorf("acl file %s: not a regular file", s.path)
	}
	var b bytes.Buffer
	if _, err := b.ReadFrom(f); err != nil {
		return nil, stamp{}, fmt.Errorf("acl file %s: %w", s.path, err)
	}
	return b.Bytes(), stamp{size: fi.Size(), mtime: fi.ModTime()}, nil
}

// parse reads and compiles the rules; errors name the file (and, from the parser, the line
// and the rule).
func (s *Source) parse(data []byte) (*authz.RuleSet, error) {
	rs, err := authz.CompileYAML(data)
	if err != nil {
		return nil, fmt.Errorf("acl file %s: %w", s.path, err)
	}
	return rs, nil
}
