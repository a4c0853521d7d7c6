//go:build linux

package broker

import (
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"syscall"
	"time"
)

// parker watches idle connections with an epoll instance of its own, so a connection that
// has been quiet for a while needs no goroutine: when data (or a hang-up) arrives, a new
// goroutine resumes its read loop. Go's runtime keeps its own registration of the same
// sockets; the two do not interfere.
type parker struct {
	epfd int
	log  *slog.Logger

	mu     sync.Mutex
	parked map[uint64]*conn // by park id, which is also the epoll user data
	nextID uint64
	closed bool
	done   chan struct{}
}

func newParker(log *slog.Logger) (*parker, error) {
	fd, err := syscall.EpollCreate1(syscall.EPOLL_CLOEXEC)
	if err != nil {
		return nil, fmt.Errorf("epoll_create1: %w", err)
	}
	p := &parker{epfd: fd, log: log, parked: make(map[uint64]*conn), done: make(chan struct{})}
	go p.loop()
	return p, nil
}

// park registers c, whose read loop is about to end, for a wake-up on readability. It
// reports false when c cannot be parked; the caller then keeps reading as usual.
func (p *parker) park(c *conn) bool {
	if c.fd < 0 {
		return false
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.closed || c.parkID != 0 || c.noPark {
		return false
	}
	p.nextID++
	id := p.nextID
	ev := syscall.EpollEvent{Events: syscall.EPOLLIN | syscall.EPOLLRDHUP | syscall.EPOLLONESHOT}
	ev.Fd, ev.Pad = int32(uint32(id)), int32(uint32(id>>32))
	if err := syscall.EpollCtl(p.epfd, syscall.EPOLL_CTL_ADD, c.fd, &ev); err != nil {
		return false
	}
	c.parkID = id
	p.parked[id] = c
	return true
}

// unpark takes c off the watch list. It reports whether c was parked; the caller then owns
// the connection's read side and must resume it.
func (p *parker) unpark(c *conn) bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.unparkLocked(c.parkID) != nil
}

// stop forbids parking c from now on, because its socket is about to be closed (a closed
// descriptor's number can be reused at once), and unparks it. It reports whether c was
// parked.
func (p *parker) stop(c *conn) bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	c.noPark = true
	return p.unparkLocked(c.parkID) != nil
}

func (p *parker) unparkLocked(id uint64) *conn {
	c := p.parked[id]
	if c == nil {
		return nil
	}
	delete(p.parked, id)
	c.parkID = 0
	// The socket may already be closed, which removed it from the epoll set.
	_ = syscall.EpollCtl(p.epfd, syscall.EPOLL_CTL_DEL, c.fd, nil)
	return c
}

func (p *parker) loop() {
	defer close(p.done)
	events := make([]syscall.EpollEvent, 128)
	for {
		n, err := syscall.EpollWait(p.epfd, events, 500)
		p.mu.Lock()
		if p.closed {
			p.mu.Unlock()
			return
		}
		var ready []*conn
		for i := range max(n, 0) {
			id := uint64(uint32(events[i].Fd)) | uint64(uint32(events[i].Pad))<<32
			if c := p.unparkLocked(id); c != nil {
				ready = append(ready, c)
			}
		}
		p.mu.Unlock()
		for _, c := range ready {
			go c.resume()
		}
		if err != nil && !errors.Is(err, syscall.EINTR) {
			p.log.Error("epoll_wait failed; parked connections stay parked until closed", "err", err)
			time.Sleep(100 * time.Millisecond)
		}
	}
}

// count is the number of parked connections.
func (p *parker) count() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return len(p.parked)
}

// close stops the parker; parked connections are resumed so that they can end.
func (p *parker) close() {
	p.mu.Lock()
	if p.closed {
		p.mu.Unlock()
		return
	}
	p.closed = true
	var all []*conn
	for id := range p.parked {
		all = append(all, p.unparkLocked(id))
	}
	p.mu.Unlock()
	<-p.done
	_ = syscall.Close(p.epfd)
	for _, c := range all {
		go c.resume()
	}
}
