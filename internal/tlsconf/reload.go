package tlsconf

import (
	"context"
	"crypto/tls"
	"fmt"
	"log/slog"
	"os"
	"sync"
	"sync/atomic"
	"time"
)

// Reloader holds a listener's TLS configuration and replaces it when its files change,
// without touching established connections: each new handshake takes the configuration
// current at that moment. A replacement that does not load (a corrupt or mismatched file)
// is refused and the previous configuration stays in use.
type Reloader struct {
	o   ServerOptions
	log *slog.Logger
	cur atomic.Pointer[tls.Config]

	mu    sync.Mutex // serialises reloads
	stamp string     // sizes and modification times of the files last loaded
	rev   *Revocation
}

// UseRevocation makes every handshake from now on check client certificates against rev,
// across reloads too. Call it before the listener serves.
func (r *Reloader) UseRevocation(rev *Revocation) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.rev = rev
	r.store(r.cur.Load().Clone())
}

// store makes cfg current, adding the revocation check when there is one.
func (r *Reloader) store(cfg *tls.Config) {
	if r.rev != nil {
		prev, rev := cfg.VerifyConnection, r.rev
		cfg.VerifyConnection = func(cs tls.ConnectionState) error {
			if prev != nil {
				if err := prev(cs); err != nil {
					return err
				}
			}
			return rev.Check(cs)
		}
	}
	r.cur.Store(cfg)
}

// NewReloader loads the files once; errors name the file, as NewServer's do.
func NewReloader(o ServerOptions, log *slog.Logger) (*Reloader, error) {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	r := &Reloader{o: o, log: log}
	stamp := r.fileStamp()
	cfg, err := NewServer(o)
	if err != nil {
		return nil, err
	}
	r.cur.Store(cfg)
	r.stamp = stamp
	return r, nil
}

// Config returns the configuration to give a listener: it hands every new handshake the
// current configuration.
func (r *Reloader) Config() *tls.Config {
	return &tls.Config{
		MinVersion: tls.VersionTLS12,
		GetConfigForClient: func(*tls.ClientHelloInfo) (*tls.Config, error) {
			return r.cur.Load(), nil
		},
	}
}

// Reload reads the files again. On error the previous configuration stays in use.
func (r *Reloader) Reload() error {
	r.mu.Lock()
	defer r.mu.Unlock()
	stamp := r.fileStamp()
	cfg, err := NewServer(r.o)
	if err != nil {
		r.stamp = stamp // do not retry the same broken files every poll
		return fmt.Errorf("reload refused, the previous certificate stays in use: %w", err)
	}
	r.store(cfg)
	r.stamp = stamp
	return nil
}

// Watch polls the files every interval until ctx ends and reloads when one changed,
// logging the outcome.
func (r *Reloader) Watch(ctx context.Context, interval time.Duration, name string) {
	t := time.NewTicker(interval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			r.mu.Lock()
			changed := r.fileStamp() != r.stamp
			r.mu.Unlock()
			if changed {
				r.ReloadAndLog(name, "files changed")
			}
		}
	}
}

// ReloadAndLog reloads and logs the result for listener name.
func (r *Reloader) ReloadAndLog(name, why string) {
	if err := r.Reload(); err != nil {
		r.log.Error("TLS reload failed", "listener", name, "why", why, "err", err)
		return
	}
	r.log.Info("TLS certificates reloaded", "listener", name, "why", why)
}

// fileStamp summarises the size and modification time of every file of the options.
func (r *Reloader) fileStamp() string {
	stamp := ""
	for _, f := range []string{r.o.CertFile, r.o.KeyFile, r.o.CACertFile} {
		if f == "" {
			continue
		}
		if fi, err := os.Stat(f); err == nil {
			stamp += fmt.Sprintf("%s:%d:%d;", f, fi.Size(), fi.ModTime().UnixNano())
		} else {
			stamp += f + ":missing;"
		}
	}
	return stamp
}
