package broker

import (
	"bytes"
	"log/slog"
	"strings"
	"sync"
	"testing"

	"github.com/rampart-mqtt/rampart/internal/mqtt/packet"
)

// syncBuffer is a bytes.Buffer safe for the logger's concurrent writes.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

func TestLimitHitLogsOncePerReason(t *testing.T) {
	var log syncBuffer
	s := New(Options{Logger: slog.New(slog.NewTextHandler(&log, nil))})
	for range 100 {
		s.limitHit(reasonControlThrottled, nil)
		s.limitHit(reasonRetainedCount, nil, "client", "c1")
	}
	st := s.LimitStats()
	if st.ControlThrottled != 100 || st.RetainedCountFull != 100 {
		t.Fatalf("counters %+v, want 100 each", st)
	}
	lines := strings.Split(strings.TrimSpace(log.String()), "\n")
	if len(lines) != 2 {
		t.Fatalf("%d log lines for 200 hits of two reasons, want 2:\n%s", len(lines), log.String())
	}
	for _, want := range []string{"reason=control_throttled", "reason=retained_count_full"} {
		if !strings.Contains(log.String(), want) {
			t.Errorf("no log line with %s:\n%s", want, log.String())
		}
	}
}

func TestLimitStatsInSys(t *testing.T) {
	b := startBroker(t, func(o *Options) { o.MaxSubscriptions = 1 })
	c := b.rawV5(t, "sys-limits")
	c.mustSubscribe(0, "$SYS/brokers/+/limits/#")
	if rc := c.subscribe(0, packet.Subscription{Filter: "one/more"}).ReasonCodes[0]; rc != packet.QuotaExceeded {
		t.Fatalf("second filter: 0x%02X, want 0x97", byte(rc))
	}
	b.srv.publishSys()
	got := map[string]string{}
	for len(got) < len(LimitStats{}.counters()) {
		p := c.expectPublish()
		got[p.Topic[strings.LastIndexByte(p.Topic, '/')+1:]] = string(p.Payload)
	}
	if got["subscriptions_refused"] != "1" {
		t.Errorf("limits in $SYS: %v", got)
	}
}
