package tlsconf

import (
	"context"
	"crypto/tls"
	"fmt"
	"log/slog"
	"maps"
	"os"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

// Reloader holds a listener's TLS configuration and replaces it when its files change,
// without touching established connections: each new handshake takes the configuration
// current at that moment. A replacement that does not load (a corrupt or mismatched file,
// a wrong key password) is refused and the previous configuration stays in use. With OCSP
// stapling, Watch also keeps a verified staple for every certificate.
type Reloader struct {
	o   ServerOptions
	log *slog.Logger
	on  *online
	cur atomic.Pointer[tls.Config]
	set atomic.Pointer[certSet]
	// reloaded wakes the stapling loop after a reload, so that new certificates get
	// their staple at once.
	reloaded chan struct{}

	mu    sync.Mutex // serialises reloads
	stamp string     // sizes and modification times of the files last loaded
}

// UseRevocation makes every handshake from now on check client certificates against rev,
// across reloads too. Call it before the listener serves.
func (r *Reloader) UseRevocation(rev *Revocation) {
	r.on.rev.Store(rev)
}

// NewReloader loads the files once; errors name the file, as NewServer's do.
func NewReloader(o ServerOptions, log *slog.Logger) (*Reloader, error) {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	r := &Reloader{o: o, log: log, on: newOnline(o, log), reloaded: make(chan struct{}, 1)}
	stamp := r.fileStamp()
	cfg, set, err := build(o, r.on)
	if err != nil {
		return nil, err
	}
	r.cur.Store(cfg)
	r.set.Store(set)
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
	cfg, set, err := build(r.o, r.on)
	if err != nil {
		r.stamp = stamp // do not retry the same broken files every poll
		return fmt.Errorf("reload refused, the previous certificate stays in use: %w", err)
	}
	r.set.Store(set)
	r.cur.Store(cfg)
	r.stamp = stamp
	select {
	case r.reloaded <- struct{}{}:
	default:
	}
	return nil
}

// RefreshOCSP fetches and verifies an OCSP response for every served certificate now,
// staples those that say "good", and returns when they should be fetched again. Without
// stapling it does nothing.
func (r *Reloader) RefreshOCSP(ctx context.Context) (time.Time, error) {
	if r.on.staples == nil {
		return time.Time{}, nil
	}
	return r.on.staples.refresh(ctx, r.set.Load())
}

// staple keeps the staples fresh until ctx ends: before each response's nextUpdate, on
// refresh_interval, and right after a reload. A failed refresh is logged; the server then
// staples nothing for a certificate whose last good response has expired.
func (r *Reloader) staple(ctx context.Context, name string) {
	for {
		next, err := r.RefreshOCSP(ctx)
		if err != nil && ctx.Err() == nil {
			r.log.Error("OCSP stapling: no fresh response; a certificate without a valid one is served without a staple",
				"listener", name, "err", err)
		}
		t := time.NewTimer(time.Until(next))
		select {
		case <-ctx.Done():
			t.Stop()
			return
		case <-t.C:
		case <-r.reloaded:
			t.Stop()
		}
	}
}

// Watch polls the files every interval until ctx ends and reloads when one changed,
// logging the outcome. With OCSP stapling it also keeps the staples fresh.
func (r *Reloader) Watch(ctx context.Context, interval time.Duration, name string) {
	if r.on.staples != nil {
		go r.staple(ctx, name)
	}
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

// fileStamp summarises the size and modification time of every file of the options,
// password files and SNI certificates included.
func (r *Reloader) fileStamp() string {
	files := []string{r.o.CertFile, r.o.KeyFile, passwordFile(r.o.KeyFilePassword), r.o.CACertFile, r.o.OCSP.IssuerFile}
	for _, name := range slices.Sorted(maps.Keys(r.o.SNICerts)) {
		ck := r.o.SNICerts[name]
		files = append(files, ck.CertFile, ck.KeyFile, passwordFile(ck.KeyFilePassword))
	}
	stamp := ""
	for _, f := range files {
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

// passwordFile returns the file a keyfile_password names, or "".
func passwordFile(ref string) string {
	if f, ok := strings.CutPrefix(ref, "file:"); ok {
		return f
	}
	return ""
}
