package bench

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"maps"
	"math/rand/v2"
	"net/url"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/rampart-mqtt/rampart/internal/mqtt/packet"
)

// Mode is what the clients of a run do once connected.
type Mode string

// The modes of a run.
const (
	ModePub  Mode = "pub"  // publish at a rate
	ModeSub  Mode = "sub"  // subscribe and count what arrives
	ModeConn Mode = "conn" // connect and stay connected
)

type stats struct {
	connected  atomic.Int64
	connFailed atomic.Int64
	published  atomic.Int64
	acked      atomic.Int64
	received   atomic.Int64

	mu     sync.Mutex
	errors map[string]int64
}

func (s *stats) addError(reason string) {
	s.mu.Lock()
	if s.errors == nil {
		s.errors = make(map[string]int64)
	}
	s.errors[reason]++
	s.mu.Unlock()
}

type runner struct {
	o       Options
	mode    Mode
	ws      *url.URL // the WebSocket URL; nil for MQTT over TCP
	tag     uint32   // the run tag in every payload a publisher sends
	stats   stats
	lat     hist // end-to-end latency (sub) from the send time in the payload
	connLat hist // dial to CONNACK
	stop    atomic.Bool
}

func (r *runner) stopping() bool { return r.stop.Load() }

// ErrTargetMissed is the error of a run that ended (its duration over, or its clients
// gone) before its target (Options.Count) was reached; Run returns it with the summary.
var ErrTargetMissed = errors.New("target not reached")

// Summary is the result of a run. Rates are computed over FlowSeconds, the time from the
// first message to the last (sent by the publishers, or received by the subscribers), not
// over the whole window: a subscriber that waited for its publishers is not averaged over
// the wait. They are (messages - 1) / FlowSeconds, since that span holds one interval
// fewer than it has messages; 0 with fewer than two messages.
type Summary struct {
	Mode           Mode    `json:"mode"`
	QoS            byte    `json:"qos"`
	Clients        int     `json:"clients"`
	Connected      int64   `json:"connected"`
	ConnectFailed  int64   `json:"connect_failed"`
	ConnectSeconds float64 `json:"connect_seconds"`
	ConnectsPerSec float64 `json:"connects_per_sec"`
	ConnectP50us   float64 `json:"connect_p50_us"`
	ConnectP99us   float64 `json:"connect_p99_us"`
	Seconds        float64 `json:"seconds"`      // the timed window, connected to done
	FlowSeconds    float64 `json:"flow_seconds"` // first message to last
	Target         int64   `json:"target"`       // messages expected in all (Count); 0 = none
	TargetReached  bool    `json:"target_reached"`
	Published      int64   `json:"published"`
	Acked          int64   `json:"acked"`
	Received       int64   `json:"received"`
	// Missing and Duplicates are counted by subscribers at QoS 1 or 2 from the sequence
	// numbers in the payloads, per publisher: Missing are the numbers below a publisher's
	// highest one received that never arrived, Duplicates the arrivals of a number already
	// received.
	Missing       int64            `json:"missing"`
	Duplicates    int64            `json:"duplicates"`
	PublishPerSec float64          `json:"publish_per_sec"`
	ReceivePerSec float64          `json:"receive_per_sec"`
	LatencyP50us  float64          `json:"latency_p50_us"`
	LatencyP99us  float64          `json:"latency_p99_us"`
	LatencyP999us float64          `json:"latency_p999_us"`
	Errors        map[string]int64 `json:"errors"`
}

// Run connects o.Clients clients, runs mode for o.Duration (or until the message count is
// reached), disconnects them and returns the summary. Progress lines go to progress.
func Run(ctx context.Context, mode Mode, o Options, progress io.Writer) (*Summary, error) {
	if err := o.Validate(); err != nil {
		return nil, err
	}
	switch mode {
	case ModePub, ModeSub, ModeConn:
	default:
		return nil, fmt.Errorf("unknown mode %q", mode)
	}
	r := &runner{o: o, mode: mode, tag: rand.Uint32()}
	if isWSAddr(o.Addr) {
		r.ws, _ = wsURL(o.Addr) // checked by Validate
		if r.ws.Scheme == "wss" && r.o.TLS == nil {
			r.o.TLS = &tls.Config{MinVersion: tls.VersionTLS12, ServerName: r.ws.Hostname()}
		}
	}
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()

	stopProgress := r.startProgress(progress)
	defer stopProgress()

	connStart := time.Now()
	clients := r.connectAll(ctx)
	connSecs := time.Since(connStart).Seconds()
	if len(clients) == 0 {
		r.stop.Store(true)
		return r.summary(connSecs, 0, nil), errors.New("no client could connect")
	}

	if o.Ready != nil {
		o.Ready(len(clients))
	}
	runCtx, runCancel := context.WithTimeout(ctx, o.Duration)
	defer runCancel()
	start := time.Now()
	var wg sync.WaitGroup
	for _, c := range clients {
		wg.Add(1)
		go func() {
			defer wg.Done()
			r.work(runCtx, c)
		}()
	}
	if mode == ModeSub && o.Count > 0 {
		// Stop early once every expected message arrived.
		go func() {
			t := time.NewTicker(10 * time.Millisecond)
			defer t.Stop()
			for {
				select {
				case <-runCtx.Done():
					return
				case <-t.C:
					if r.stats.received.Load() >= o.Count {
						runCancel()
						return
					}
				}
			}
		}()
	}
	if mode == ModeConn || mode == ModeSub {
		r.keepAlive(runCtx, clients)
	}
	wg.Wait()
	elapsed := time.Since(start).Seconds()
	r.stop.Store(true)
	var cw sync.WaitGroup
	for _, c := range clients {
		cw.Add(1)
		go func() { defer cw.Done(); c.close() }()
	}
	cw.Wait()
	sum := r.summary(connSecs, elapsed, clients)
	if !sum.TargetReached {
		return sum, r.missed(sum)
	}
	return sum, nil
}

// missed describes how a run fell short of its target.
func (r *runner) missed(s *Summary) error {
	switch {
	case r.mode == ModeSub:
		return fmt.Errorf("%w: received %d of %d messages", ErrTargetMissed, s.Received, s.Target)
	case s.Published < s.Target:
		return fmt.Errorf("%w: published %d of %d messages (%d publishers × %d)", ErrTargetMissed, s.Published, s.Target, r.o.Clients, r.o.Count)
	}
	return fmt.Errorf("%w: %d of %d messages acknowledged", ErrTargetMissed, s.Acked, s.Target)
}

// connectAll opens the clients at the configured rate, at most 256 handshakes at a time.
func (r *runner) connectAll(ctx context.Context) []*client {
	o := &r.o
	var (
		mu      sync.Mutex
		clients = make([]*client, 0, o.Clients)
		wg      sync.WaitGroup
		sem     = make(chan struct{}, 256)
		start   = time.Now()
	)
	for i := range o.Clients {
		if o.ConnRate > 0 {
			due := start.Add(time.Duration(float64(i) / o.ConnRate * float64(time.Second)))
			if d := time.Until(due); d > 0 {
				select {
				case <-ctx.Done():
				case <-time.After(d):
				}
			}
		}
		if ctx.Err() != nil {
			break
		}
		sem <- struct{}{}
		wg.Add(1)
		go func(idx int) {
			defer wg.Done()
			defer func() { <-sem }()
			t0 := time.Now()
			c, err := r.connect(ctx, idx)
			if err != nil {
				r.stats.connFailed.Add(1)
				r.stats.addError(err.Error())
				return
			}
			r.connLat.record(time.Since(t0))
			if r.mode == ModeSub {
				if err := c.subscribe(); err != nil {
					r.stats.connFailed.Add(1)
					r.stats.addError(err.Error())
					_ = c.nc.Close()
					return
				}
			}
			r.stats.connected.Add(1)
			if r.mode == ModePub && o.QoS > 0 {
				w := o.Inflight
				if c.recvMax > 0 {
					w = min(w, c.recvMax) // more would be a protocol error [MQTT-3.3.4-7]
				}
				c.window = make(chan struct{}, w)
			}
			if r.mode == ModeSub && o.QoS > 0 {
				c.seen = newSeqSeen()
			}
			go c.readLoop(r.mode == ModeSub)
			mu.Lock()
			clients = append(clients, c)
			mu.Unlock()
		}(o.StartAt + i)
	}
	wg.Wait()
	return clients
}

// subscribe sends SUBSCRIBE and waits for its SUBACK (before the read loop starts).
func (c *client) subscribe() error {
	o := &c.r.o
	_ = c.nc.SetDeadline(time.Now().Add(o.ConnectTimeout))
	defer func() { _ = c.nc.SetDeadline(time.Time{}) }()
	sp := &packet.Subscribe{PacketID: 1, Subscriptions: []packet.Subscription{{Filter: expand(o.Topic, c.idx), QoS: o.QoS}}}
	if err := c.write(sp, true); err != nil {
		return classify("send SUBSCRIBE", err)
	}
	for {
		p, err := c.rd.ReadPacket(o.Version)
		if err != nil {
			return classify("read SUBACK", err)
		}
		if sa, ok := p.(*packet.Suback); ok {
			if len(sa.ReasonCodes) != 1 || sa.ReasonCodes[0].IsError() {
				return fmt.Errorf("SUBACK refused: %v", sa.ReasonCodes)
			}
			return nil
		}
		// Retained messages may arrive first; they do not count.
	}
}

// work runs the mode of the run on one client until ctx ends.
func (r *runner) work(ctx context.Context, c *client) {
	switch r.mode {
	case ModePub:
		r.publish(ctx, c)
	default:
		select {
		case <-ctx.Done():
		case <-c.done:
		}
	}
}

// publish sends messages at the configured rate (or as fast as the window allows).
func (r *runner) publish(ctx context.Context, c *client) {
	o := &r.o
	payload := make([]byte, o.Size)
	p := &packet.Publish{QoS: o.QoS, Retain: o.Retain, Topic: expand(o.Topic, c.idx), Payload: payload}
	from := origin{run: r.tag, pub: uint32(c.idx)}
	const tick = 10 * time.Millisecond
	start := time.Now()
	var seq int64
	for ctx.Err() == nil && (o.Count == 0 || seq < o.Count) {
		// How many messages are due now: all of them when there is no rate.
		due := int64(64)
		if o.Rate > 0 {
			due = int64(time.Since(start).Seconds()*o.Rate) - seq
			if due <= 0 {
				select {
				case <-ctx.Done():
				case <-c.done:
					return
				case <-time.After(tick):
				}
				continue
			}
		}
		if o.Count > 0 {
			due = min(due, o.Count-seq)
		}
		for range due {
			if c.window != nil {
				select {
				case c.window <- struct{}{}:
				case <-ctx.Done():
					_ = c.flush()
					return
				case <-c.done:
					return
				}
			}
			seq++
			if o.QoS > 0 {
				p.PacketID = uint16(seq%65535) + 1
			}
			now := time.Now()
			if seq == 1 {
				c.first = now
			}
			c.last = now
			stamp(payload, now, uint64(seq), from)
			if err := c.write(p, false); err != nil {
				r.stats.addError(classify("publish", err).Error())
				return
			}
			r.stats.published.Add(1)
			if c.window != nil && len(c.window) == cap(c.window) {
				_ = c.flush() // the window is full: let the acknowledgements come
			}
		}
		if err := c.flush(); err != nil {
			r.stats.addError(classify("publish", err).Error())
			return
		}
	}
	// Wait a little for the last acknowledgements.
	if c.window != nil {
		deadline := time.Now().Add(10 * time.Second)
		for len(c.window) > 0 && time.Now().Before(deadline) {
			select {
			case <-c.done:
				return
			case <-time.After(5 * time.Millisecond):
			}
		}
	}
}

// keepAlive sends PINGREQ to every client at half the keep alive interval until ctx ends.
func (r *runner) keepAlive(ctx context.Context, clients []*client) {
	if r.o.KeepAlive == 0 {
		<-ctx.Done()
		return
	}
	t := time.NewTicker(time.Duration(r.o.KeepAlive) * time.Second / 2)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			for _, c := range clients {
				_ = c.write(&packet.Pingreq{}, true)
			}
		}
	}
}

func (r *runner) startProgress(w io.Writer) func() {
	if w == nil || r.o.Progress <= 0 {
		return func() {}
	}
	done := make(chan struct{})
	stopped := make(chan struct{})
	go func() {
		defer close(stopped)
		t := time.NewTicker(r.o.Progress)
		defer t.Stop()
		start := time.Now()
		var lastPub, lastRecv int64
		for {
			select {
			case <-done:
				return
			case <-t.C:
				s := &r.stats
				pub, recv := s.published.Load(), s.received.Load()
				secs := r.o.Progress.Seconds()
				s.mu.Lock()
				nerr := int64(0)
				for _, n := range s.errors {
					nerr += n
				}
				s.mu.Unlock()
				fmt.Fprintf(w, "%6.1fs conn %d/%d failed %d | pub %d (%.0f/s) acked %d | recv %d (%.0f/s) | errors %d\n",
					time.Since(start).Seconds(), s.connected.Load(), r.o.Clients, s.connFailed.Load(),
					pub, float64(pub-lastPub)/secs, s.acked.Load(), recv, float64(recv-lastRecv)/secs, nerr)
				lastPub, lastRecv = pub, recv
			}
		}
	}()
	return func() { close(done); <-stopped }
}

// summary gathers the results; clients have all ended (their goroutines are done).
func (r *runner) summary(connSecs, secs float64, clients []*client) *Summary {
	s := &r.stats
	us := func(d time.Duration) float64 { return float64(d) / float64(time.Microsecond) }
	sum := &Summary{
		Mode: r.mode, QoS: r.o.QoS, Clients: r.o.Clients,
		Connected: s.connected.Load(), ConnectFailed: s.connFailed.Load(), ConnectSeconds: connSecs,
		ConnectP50us: us(r.connLat.quantile(0.5)), ConnectP99us: us(r.connLat.quantile(0.99)),
		Seconds: secs, Published: s.published.Load(), Acked: s.acked.Load(), Received: s.received.Load(),
		LatencyP50us: us(r.lat.quantile(0.5)), LatencyP99us: us(r.lat.quantile(0.99)), LatencyP999us: us(r.lat.quantile(0.999)),
		Errors: map[string]int64{},
	}
	if connSecs > 0 {
		sum.ConnectsPerSec = float64(sum.Connected) / connSecs
	}
	var first, last time.Time
	for _, c := range clients {
		if c.first.IsZero() {
			continue
		}
		if first.IsZero() || c.first.Before(first) {
			first = c.first
		}
		if c.last.After(last) {
			last = c.last
		}
		m, d := c.seen.counts()
		sum.Missing += m
		sum.Duplicates += d
	}
	if !first.IsZero() {
		sum.FlowSeconds = last.Sub(first).Seconds()
	}
	sum.PublishPerSec = perSec(sum.Published, sum.FlowSeconds)
	sum.ReceivePerSec = perSec(sum.Received, sum.FlowSeconds)
	switch {
	case r.o.Count == 0 || r.mode == ModeConn:
		sum.TargetReached = true
	case r.mode == ModeSub:
		sum.Target = r.o.Count
		sum.TargetReached = sum.Received >= sum.Target
	default:
		sum.Target = r.o.Count * int64(r.o.Clients)
		sum.TargetReached = sum.Published >= sum.Target && (r.o.QoS == 0 || sum.Acked >= sum.Target)
	}
	s.mu.Lock()
	maps.Copy(sum.Errors, s.errors)
	s.mu.Unlock()
	return sum
}

// perSec is the rate of n messages whose first and last are secs apart.
func perSec(n int64, secs float64) float64 {
	if n < 2 || secs <= 0 {
		return 0
	}
	return float64(n-1) / secs
}

// WriteText prints the summary for people.
func (s *Summary) WriteText(w io.Writer) {
	fmt.Fprintf(w, "mode %s: %d/%d clients connected in %.2fs (%.0f connects/s, handshake p50 %.0fus p99 %.0fus), %d failed\n",
		s.Mode, s.Connected, s.Clients, s.ConnectSeconds, s.ConnectsPerSec, s.ConnectP50us, s.ConnectP99us, s.ConnectFailed)
	switch s.Mode {
	case ModePub:
		fmt.Fprintf(w, "published %d over %.2fs from first to last (%.0f msg/s; window %.2fs), acknowledged %d\n",
			s.Published, s.FlowSeconds, s.PublishPerSec, s.Seconds, s.Acked)
	case ModeSub:
		fmt.Fprintf(w, "received %d over %.2fs from first to last (%.0f msg/s; window %.2fs), latency p50 %.0fus p99 %.0fus p99.9 %.0fus\n",
			s.Received, s.FlowSeconds, s.ReceivePerSec, s.Seconds, s.LatencyP50us, s.LatencyP99us, s.LatencyP999us)
		if s.QoS > 0 {
			fmt.Fprintf(w, "missing %d, duplicates %d (by sequence number per publisher)\n", s.Missing, s.Duplicates)
		}
	case ModeConn:
		fmt.Fprintf(w, "held %d connections for %.2fs\n", s.Connected, s.Seconds)
	}
	if s.Target > 0 {
		verdict := "reached"
		if !s.TargetReached {
			verdict = "NOT reached"
		}
		fmt.Fprintf(w, "target %d messages: %s\n", s.Target, verdict)
	}
	if len(s.Errors) == 0 {
		fmt.Fprintln(w, "errors: none")
		return
	}
	fmt.Fprintln(w, "errors:")
	for _, k := range slices.Sorted(maps.Keys(s.Errors)) {
		fmt.Fprintf(w, "  %8d  %s\n", s.Errors[k], k)
	}
}
