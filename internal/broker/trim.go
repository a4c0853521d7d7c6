package broker

import (
	"context"
	"runtime"
	"runtime/debug"
	"time"
)

// Memory trimming. When many connections go idle at once (a fleet connecting after an
// outage), their goroutine stacks and read buffers are freed, but Go keeps that memory
// until its next collection, which an idle broker may not run for minutes: the resident
// size stays at the burst's peak. After such a burst the broker collects and returns the
// free memory to the system, at most once per trimMinInterval.
const (
	trimCheckEvery  = 2 * time.Second
	trimMinParked   = 1000 // newly parked connections that make a burst
	trimMinInterval = 30 * time.Second
)

func (s *Server) runTrim(ctx context.Context, p *parker) {
	t := time.NewTicker(trimCheckEvery)
	defer t.Stop()
	last, base := 0, 0 // parked count at the last check, and at the last trim
	var lastTrim time.Time
	for {
		select {
		case <-ctx.Done():
			return
		case now := <-t.C:
			n := p.count()
			grown, step := n-base, n-last
			last = n
			if n < base {
				base = n
			}
			// Trim once a burst has settled (few new parked connections in the last
			// check), or during a long one every ten bursts' worth.
			settled := step < trimMinParked/10 || grown >= 10*trimMinParked
			if grown >= trimMinParked && settled && now.Sub(lastTrim) >= trimMinInterval {
				runtime.GC()         // pooled read buffers survive one collection in the pool's victim cache
				debug.FreeOSMemory() // a second collection, then free pages go back to the system
				lastTrim, base = now, n
				s.log.Debug("returned memory to the system after a burst of idle connections", "parked", n)
			}
		}
	}
}
