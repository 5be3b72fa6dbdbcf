package main

import (
	"bytes"
	"context"
	"crypto/tls"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net"
	"strconv"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/gobwas/ws"
	"github.com/klauspost/compress/flate"
)

// maxMessage bounds what the generator accepts from a server (frame or reassembled message).
const maxMessage = 64 << 20

var (
	errServerClosed = errors.New("server closed the connection (close frame)")
	errProtocol     = errors.New("protocol error from server")
)

// wsConn is the client side of one WebSocket connection: a socket, its read buffer and a frame
// parser. One goroutine reads (next); writes may come from any goroutine (write is locked).
type wsConn struct {
	nc   net.Conn
	buf  []byte
	r, w int // unread bytes are buf[r:w]
	key  [4]byte
	wmu  sync.Mutex

	frag    []byte // a fragmented message being reassembled
	fragged bool
	op      ws.OpCode // text or binary: the last message nextMessage returned

	// permessage-deflate, when negotiated: the message being read is compressed (RSV1 on its
	// first frame); the last one inflated; the run's count.
	deflate bool
	zmsg    bool
	zout    bytes.Buffer
	count   *wireCount

	sio bool // a Socket.IO connection: messages are events (socketio.go)
}

// inflater is a pooled decompressor (~40 KiB with its window, too much to keep for each of
// 10,000 idle connections) and its input: a message with the tail the sender stripped put back.
type inflater struct {
	in  []byte
	src bytes.Reader
	r   io.ReadCloser // a flate reader, also a flate.Resetter
}

var inflaters = sync.Pool{New: func() any {
	z := new(inflater)
	z.r = flate.NewReader(&z.src)
	return z
}}

// wireCount counts the compressed messages received on a run's connections and their payload
// bytes as they came over the wire.
type wireCount struct{ msgs, bytes atomic.Uint64 }

func (c *wsConn) write(p []byte) error {
	c.wmu.Lock()
	_, err := c.nc.Write(p)
	c.wmu.Unlock()
	return err
}

// next returns the next message of the bench protocol. The slice is valid until the next call.
func (c *wsConn) next() ([]byte, error) {
	if c.sio {
		return c.nextEvent()
	}
	return c.nextMessage()
}

// nextMessage returns the next data message (text or binary), inflated if it came compressed,
// answering pings on the way. The slice is valid until the next call.
func (c *wsConn) nextMessage() ([]byte, error) {
	for {
		fin, rsv1, op, p, err := c.frame()
		if err != nil {
			return nil, err
		}
		if rsv1 && (!c.deflate || op != byte(ws.OpText) && op != byte(ws.OpBinary)) {
			return nil, errProtocol // RSV1 only on the first frame of a message, once negotiated
		}
		switch ws.OpCode(op) {
		case ws.OpText, ws.OpBinary:
			if c.fragged {
				return nil, errProtocol
			}
			c.zmsg = rsv1
			c.op = ws.OpCode(op)
			if fin {
				return c.message(p)
			}
			c.frag = append(c.frag[:0], p...)
			c.fragged = true
		case ws.OpContinuation:
			if !c.fragged {
				return nil, errProtocol
			}
			if len(c.frag)+len(p) > maxMessage {
				return nil, errProtocol
			}
			c.frag = append(c.frag, p...)
			if fin {
				c.fragged = false
				return c.message(c.frag)
			}
		case ws.OpPing:
			if err := c.write(maskedFrame(ws.OpPong, false, p, c.key)); err != nil {
				return nil, err
			}
		case ws.OpPong:
		case ws.OpClose:
			return nil, errServerClosed
		default:
			return nil, errProtocol
		}
	}
}

// message returns a complete message p, inflated if it came compressed (counting it).
func (c *wsConn) message(p []byte) ([]byte, error) {
	if !c.zmsg {
		return p, nil
	}
	c.count.msgs.Add(1)
	c.count.bytes.Add(uint64(len(p)))
	// The server takes over no context: each message inflates on its own.
	z := inflaters.Get().(*inflater)
	defer inflaters.Put(z)
	z.in = append(append(z.in[:0], p...), deflateTail...)
	z.src.Reset(z.in)
	z.r.(flate.Resetter).Reset(&z.src, nil)
	c.zout.Reset()
	// A sync-flushed stream ends without a final block: running out of input is its end.
	if _, err := c.zout.ReadFrom(io.LimitReader(z.r, maxMessage+1)); err != nil && err != io.ErrUnexpectedEOF || c.zout.Len() > maxMessage {
		return nil, fmt.Errorf("%w: a compressed message that does not inflate", errProtocol)
	}
	return c.zout.Bytes(), nil
}

// frame parses one frame, reading from the socket as needed. payload points into the read buffer.
func (c *wsConn) frame() (fin, rsv1 bool, op byte, payload []byte, err error) {
	if err = c.need(2); err != nil {
		return
	}
	b0, b1 := c.buf[c.r], c.buf[c.r+1]
	if b0&0x30 != 0 {
		err = errProtocol // RSV2, RSV3: no extension of ours uses them
		return
	}
	hl := 2
	n := uint64(b1 & 0x7f)
	switch n {
	case 126:
		hl = 4
	case 127:
		hl = 10
	}
	masked := b1&0x80 != 0
	if masked {
		hl += 4
	}
	if err = c.need(hl); err != nil {
		return
	}
	h := c.buf[c.r : c.r+hl]
	switch n {
	case 126:
		n = uint64(binary.BigEndian.Uint16(h[2:]))
	case 127:
		n = binary.BigEndian.Uint64(h[2:])
	}
	if n > maxMessage {
		err = errProtocol
		return
	}
	var key [4]byte
	if masked {
		copy(key[:], h[hl-4:])
	}
	if err = c.need(hl + int(n)); err != nil {
		return
	}
	payload = c.buf[c.r+hl : c.r+hl+int(n)]
	if masked {
		ws.Cipher(payload, key, 0)
	}
	c.r += hl + int(n)
	return b0&0x80 != 0, b0&0x40 != 0, b0 & 0x0f, payload, nil
}

// need makes sure that at least n unread bytes are buffered.
func (c *wsConn) need(n int) error {
	for c.w-c.r < n {
		if c.r == c.w {
			c.r, c.w = 0, 0
		}
		if len(c.buf)-c.r < n {
			if n > len(c.buf) {
				nb := make([]byte, max(n, 2*len(c.buf)))
				c.w = copy(nb, c.buf[c.r:c.w])
				c.buf = nb
			} else {
				c.w = copy(c.buf, c.buf[c.r:c.w])
			}
			c.r = 0
		}
		m, err := c.nc.Read(c.buf[c.w:])
		c.w += m
		if err != nil {
			if c.w-c.r >= n {
				return nil
			}
			if err == io.EOF && c.w > c.r {
				err = io.ErrUnexpectedEOF
			}
			return err
		}
	}
	return nil
}

// closeNow sends a close frame (best effort, not waiting) and closes the socket.
func (c *wsConn) closeNow() {
	c.nc.SetWriteDeadline(time.Now().Add(100 * time.Millisecond))
	c.write(closeFrame(c.key))
	c.nc.Close()
}

// dialer opens WebSocket connections to a loopback server, from source addresses 127.0.0.1 to
// 127.0.0.<srcs> in turn (each source address has its own ~28k ephemeral ports). A server of
// several nodes gets connection i on node i mod nodes.
type dialer struct {
	addrs   []string // host:port of each node, also its Host header
	path    string
	srcs    int  // source addresses to spread over; 0: let the kernel choose
	v4      bool // the server is on IPv4 loopback (source binding applies)
	sio     bool // speak Socket.IO (Engine.IO v4) over each connection
	bufSize int  // initial read buffer per connection
	rcvBuf  int  // SO_RCVBUF of new sockets; 0: the kernel's default (autotuned)
	timeout time.Duration

	tls     *tls.Config // wss://: TLS over each connection before the upgrade; nil: ws://
	deflate bool        // offer permessage-deflate; a server that declines it is an error
	count   wireCount   // compressed messages received on all connections
}

func newDialer(addrs []string, path string, srcs, bufSize int) (*dialer, error) {
	d := &dialer{path: path, srcs: srcs, v4: true, bufSize: bufSize, timeout: 10 * time.Second}
	for _, addr := range addrs {
		host, port, err := net.SplitHostPort(addr)
		if err != nil {
			return nil, err
		}
		if _, err := strconv.Atoi(port); err != nil {
			return nil, fmt.Errorf("port %q", port)
		}
		ip := net.ParseIP(host)
		if host == "localhost" {
			ip = net.IPv4(127, 0, 0, 1)
			addr = net.JoinHostPort("127.0.0.1", port)
		}
		if ip == nil || !ip.IsLoopback() {
			return nil, fmt.Errorf("%s is not a loopback address: wsbench only loads local servers", host)
		}
		d.addrs = append(d.addrs, addr)
		d.v4 = d.v4 && ip.To4() != nil
	}
	if len(d.addrs) == 0 {
		return nil, errors.New("no server address")
	}
	if !d.v4 {
		d.srcs = 0
	}
	return d, nil
}

// onFirstNode returns the first connection number from i on that the dialer puts on the first node.
func (d *dialer) onFirstNode(i int) int {
	n := len(d.addrs)
	return (i + n - 1) / n * n
}

// ipBindAddressNoPort is IP_BIND_ADDRESS_NO_PORT (Linux): a bind with port 0 leaves the port to
// connect(), which can then reuse a port towards another destination.
const ipBindAddressNoPort = 24

// control sets the socket options before connect (a receive buffer size must be set before, for
// the window scale to follow it).
func (d *dialer) control(network, address string, rc syscall.RawConn) error {
	var err error
	rc.Control(func(fd uintptr) {
		if d.srcs > 0 {
			syscall.SetsockoptInt(int(fd), syscall.IPPROTO_IP, ipBindAddressNoPort, 1) // best effort
		}
		if d.rcvBuf > 0 {
			err = syscall.SetsockoptInt(int(fd), syscall.SOL_SOCKET, syscall.SO_RCVBUF, d.rcvBuf)
		}
	})
	return err
}

// dial opens connection number i (which chooses its source address) and upgrades it, sending the
// extra header lines.
func (d *dialer) dial(ctx context.Context, i int, extra []string) (*wsConn, error) {
	nd := net.Dialer{Timeout: d.timeout, Control: d.control}
	if d.srcs > 0 {
		nd.LocalAddr = &net.TCPAddr{IP: net.IPv4(127, 0, 0, byte(1+i%d.srcs))}
	}
	addr := d.addrs[i%len(d.addrs)]
	nc, err := nd.DialContext(ctx, "tcp", addr)
	if err != nil {
		return nil, err
	}
	if d.tls != nil {
		tc := tls.Client(nc, d.tls)
		hctx, cancel := context.WithTimeout(ctx, d.timeout)
		err := tc.HandshakeContext(hctx)
		cancel()
		if err != nil {
			nc.Close()
			return nil, fmt.Errorf("TLS handshake: %w", err)
		}
		nc = tc
	}
	c := &wsConn{nc: nc, buf: make([]byte, d.bufSize), key: randomKey(), count: &d.count, sio: d.sio}
	if d.deflate {
		extra = append(extra[:len(extra):len(extra)], "Sec-WebSocket-Extensions: "+deflateOffer)
	}
	ext, err := c.handshake(addr, d.path, extra, d.timeout)
	if err == nil {
		c.deflate, err = acceptedDeflate(ext, d.deflate)
	}
	if err == nil && c.sio {
		err = c.sioJoin(d.timeout)
	}
	if err != nil {
		nc.Close()
		return nil, err
	}
	return c, nil
}

// handshake sends the upgrade request and reads the response; bytes after it stay buffered. It
// returns the response's Sec-WebSocket-Extensions.
func (c *wsConn) handshake(host, path string, extra []string, timeout time.Duration) (string, error) {
	key := newKey()
	c.nc.SetDeadline(time.Now().Add(timeout))
	defer c.nc.SetDeadline(time.Time{})
	if _, err := c.nc.Write(upgradeRequest(host, path, key, extra)); err != nil {
		return "", err
	}
	for {
		if c.w == len(c.buf) {
			if len(c.buf) >= 64<<10 {
				return "", errors.New("upgrade response head too large")
			}
			nb := make([]byte, max(2*len(c.buf), 1024))
			copy(nb, c.buf[:c.w])
			c.buf = nb
		}
		m, err := c.nc.Read(c.buf[c.w:])
		c.w += m
		n, ext, perr := parseUpgradeResponse(c.buf[:c.w], key)
		if perr == nil {
			c.r = n
			return ext, nil
		}
		if perr != errIncomplete {
			return "", perr
		}
		if err != nil {
			return "", fmt.Errorf("reading the upgrade response: %w", err)
		}
	}
}
