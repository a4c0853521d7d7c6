package broker

import (
	"net"
	"os"
	"runtime"
	"runtime/pprof"
	"testing"
	"time"

	"github.com/rampart-mqtt/rampart/internal/mqtt/packet"
)

// BenchmarkIdleConnMemory reports heap and stack memory per connected, idle MQTT 3.1.1
// client once the connections have parked. The client sockets live in the same process
// and are included (a few hundred bytes each).
func BenchmarkIdleConnMemory(b *testing.B) {
	const n = 2000
	tb := startBroker(b, func(o *Options) { o.ParkAfter = 200 * time.Millisecond })
	connect := func(addr string) []net.Conn {
		conns := make([]net.Conn, 0, n)
		for i := range n {
			c, err := net.Dial("tcp", addr)
			if err != nil {
				b.Fatal(err)
			}
			cp := &packet.Connect{Version: packet.V311, CleanStart: true, KeepAlive: 300, ClientID: "idle-" + itoa(i)}
			if err := packet.Write(c, cp, packet.V311); err != nil {
				b.Fatal(err)
			}
			var ack [4]byte
			if _, err := c.Read(ack[:]); err != nil {
				b.Fatal(err)
			}
			conns = append(conns, c)
		}
		return conns
	}
	mem := func() uint64 {
		runtime.GC()
		runtime.GC()
		var ms runtime.MemStats
		runtime.ReadMemStats(&ms)
		return ms.HeapInuse + ms.StackInuse
	}
	for range b.N {
		before := mem()
		conns := connect(tb.addr)
		time.Sleep(time.Second) // idle long enough to park
		after := mem()
		if path := os.Getenv("IDLE_HEAP_PROFILE"); path != "" {
			if f, err := os.Create(path); err == nil {
				_ = pprof.WriteHeapProfile(f)
				_ = f.Close()
			}
		}
		b.ReportMetric(float64(after-before)/n, "bytes/conn")
		b.ReportMetric(float64(runtime.NumGoroutine())/n, "goroutines/conn")
		for _, c := range conns {
			_ = c.Close()
		}
	}
}

func itoa(i int) string {
	var b [20]byte
	p := len(b)
	for {
		p--
		b[p] = byte('0' + i%10)
		i /= 10
		if i == 0 {
			return string(b[p:])
		}
	}
}

// BenchmarkConnect measures one MQTT 3.1.1 connect, CONNACK and disconnect over loopback
// TCP (client and broker in the same process).
func BenchmarkConnect(b *testing.B) {
	tb := startBroker(b, nil)
	cp := &packet.Connect{Version: packet.V311, CleanStart: true, KeepAlive: 60}
	b.ReportAllocs()
	i := 0
	for b.Loop() {
		c, err := net.Dial("tcp", tb.addr)
		if err != nil {
			b.Fatal(err)
		}
		i++
		cp.ClientID = "conn-" + itoa(i)
		if err := packet.Write(c, cp, packet.V311); err != nil {
			b.Fatal(err)
		}
		var ack [4]byte
		if _, err := c.Read(ack[:]); err != nil {
			b.Fatal(err)
		}
		_ = packet.Write(c, &packet.Disconnect{}, packet.V311)
		_ = c.Close()
	}
}
