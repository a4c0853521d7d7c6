package broker

import (
	"context"
	"strconv"
	"time"
)

// runSys publishes broker statistics under $SYS/brokers/<node>/ every SysInterval, as
// retained messages so that a new subscriber sees the latest values at once.
func (s *Server) runSys(ctx context.Context) {
	s.publishSys()
	t := time.NewTicker(s.o.SysInterval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			s.publishSys()
		}
	}
}

func (s *Server) publishSys() {
	s.mu.Lock()
	sessions := len(s.sessions)
	s.mu.Unlock()
	prefix := "$SYS/brokers/" + s.o.NodeName + "/"
	values := []struct{ topic, value string }{
		{"version", s.o.Version},
		{"uptime", strconv.FormatInt(int64(time.Since(s.started)/time.Second), 10)},
		{"clients/connected", strconv.FormatInt(s.stats.connected.Load(), 10)},
		{"clients/total", strconv.FormatInt(s.stats.connections.Load(), 10)},
		{"sessions/count", strconv.Itoa(sessions)},
		{"messages/received", strconv.FormatInt(s.stats.msgsIn.Load(), 10)},
		{"messages/sent", strconv.FormatInt(s.stats.msgsOut.Load(), 10)},
		{"messages/dropped", strconv.FormatInt(s.stats.dropped.Load(), 10)},
		{"messages/retained", strconv.Itoa(s.retained.len())},
		{"bytes/received", strconv.FormatInt(s.stats.bytesIn.Load(), 10)},
		{"bytes/sent", strconv.FormatInt(s.stats.bytesOut.Load(), 10)},
	}
	for _, l := range s.LimitStats().counters() {
		values = append(values, struct{ topic, value string }{"limits/" + l.name, strconv.FormatInt(l.value, 10)})
	}
	var scratch []target
	for _, v := range values {
		m := &Message{Topic: prefix + v.topic, Payload: []byte(v.value), Retain: true}
		var err error
		if scratch, _, _, err = s.route(m, scratch, false); err != nil {
			s.log.Error("$SYS publish failed", "err", err)
			return
		}
	}
}
