package broker

import (
	"io"
	"net"
	"sync"
)

// inBufSize is the read buffer of a connection while it is active.
const inBufSize = 4096

// inBuf is a connection's buffered reader whose buffer goes back to a shared pool whenever
// it is empty and the connection waits for its next packet, so an idle connection holds
// no read buffer.
type inBuf struct {
	nc   net.Conn
	pool *sync.Pool // of *[inBufSize]byte
	buf  *[inBufSize]byte
	r, w int
}

func (b *inBuf) buffered() int { return b.w - b.r }

// release gives the buffer back when it holds nothing.
func (b *inBuf) release() {
	if b.buf != nil && b.r == b.w {
		b.pool.Put(b.buf)
		b.buf, b.r, b.w = nil, 0, 0
	}
}

// fill reads what the socket has into the empty buffer (blocking until something comes,
// an error, or the read deadline).
func (b *inBuf) fill() error {
	if b.buf == nil {
		b.buf = b.pool.Get().(*[inBufSize]byte)
	}
	b.r, b.w = 0, 0
	n, err := b.nc.Read(b.buf[:])
	b.w = n
	if n > 0 {
		return nil
	}
	if err == nil {
		err = io.ErrNoProgress
	}
	return err
}

// Read implements io.Reader. Large reads with an empty buffer go straight to the socket.
func (b *inBuf) Read(p []byte) (int, error) {
	if len(p) == 0 {
		return 0, nil
	}
	if b.r == b.w {
		if len(p) >= inBufSize {
			return b.nc.Read(p)
		}
		if err := b.fill(); err != nil {
			return 0, err
		}
	}
	n := copy(p, b.buf[b.r:b.w])
	b.r += n
	return n, nil
}

// ReadByte implements io.ByteReader, which the packet reader uses for fixed headers.
func (b *inBuf) ReadByte() (byte, error) {
	if b.r == b.w {
		if err := b.fill(); err != nil {
			return 0, err
		}
	}
	c := b.buf[b.r]
	b.r++
	return c, nil
}

// waitData waits until the next packet starts to arrive; the caller has set the read
// deadline. A timeout is os.ErrDeadlineExceeded with nothing consumed.
func (b *inBuf) waitData() error {
	if b.r < b.w {
		return nil
	}
	return b.fill()
}

// hasPacket reports whether a whole MQTT packet is buffered, so reading it needs no
// socket read (and no read deadline).
func (b *inBuf) hasPacket() bool {
	if b.w-b.r < 2 {
		return false
	}
	n, mult := 0, 1
	for i := b.r + 1; i < b.w && i <= b.r+4; i++ {
		c := b.buf[i]
		n += int(c&0x7f) * mult
		if c&0x80 == 0 {
			return i+1+n <= b.w
		}
		mult <<= 7
	}
	return false
}
