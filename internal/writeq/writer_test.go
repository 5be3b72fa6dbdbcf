package writeq

import (
	"bytes"
	"io"
	"net"
	"syscall"
	"testing"
)

// tcpPair returns the two ends of a loopback TCP connection, the first with a small send buffer.
func tcpPair(t *testing.T) (*net.TCPConn, *net.TCPConn) {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	peer, err := net.Dial("tcp", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	c, err := ln.Accept()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close(); peer.Close() })
	tc := c.(*net.TCPConn)
	tc.SetWriteBuffer(4 << 10)
	return tc, peer.(*net.TCPConn)
}

func rawConn(t *testing.T, c *net.TCPConn) syscall.RawConn {
	t.Helper()
	rc, err := c.SyscallConn()
	if err != nil {
		t.Fatal(err)
	}
	return rc
}

// TestWriterFullSocket: a non-blocking Writer stops at a full socket, leaving a partly written
// frame; a blocking one writes the rest while the peer reads.
func TestWriterFullSocket(t *testing.T) {
	c, peer := tcpPair(t)
	var q Queue
	var want []byte
	for i := range 300 {
		f := bytes.Repeat([]byte{byte(i)}, 1000+i)
		q.Append(f)
		want = append(want, f...)
	}
	q.Take()
	n, frames, calls, err := NewWriter(false).Write(rawConn(t, c), &q)
	if err != nil || n >= len(want) || calls == 0 || !q.Unwritten() {
		t.Fatalf("non-blocking write of %d bytes to a peer that does not read: %d written, %d calls, %v", len(want), n, calls, err)
	}
	q.Wrote(n, frames)
	got := make(chan []byte)
	go func() { b, _ := io.ReadAll(io.LimitReader(peer, int64(len(want)))); got <- b }()
	n2, frames2, _, err := NewWriter(true).Write(rawConn(t, c), &q)
	if err != nil || n+n2 != len(want) || frames+frames2 != 300 || q.Unwritten() {
		t.Fatalf("blocking write: %d+%d of %d bytes, %d+%d frames, %v", n, n2, len(want), frames, frames2, err)
	}
	q.Wrote(n2, frames2)
	if q.Queued() != 0 || q.Settle(true) != Done {
		t.Fatalf("queued %d after everything was written", q.Queued())
	}
	if !bytes.Equal(<-got, want) {
		t.Fatal("the peer read other bytes")
	}
}

// TestWriterBrokenSocket: a write to a reset connection fails (EPIPE or ECONNRESET, no SIGPIPE).
func TestWriterBrokenSocket(t *testing.T) {
	c, peer := tcpPair(t)
	peer.SetLinger(0)
	peer.Close()
	var q Queue
	var err error
	for i := 0; i < 100 && err == nil; i++ {
		q.Append(make([]byte, 1000))
		q.Take()
		var n, frames int
		n, frames, _, err = NewWriter(false).Write(rawConn(t, c), &q)
		q.Wrote(n, frames)
		q.Settle(false)
		q.Take()
	}
	if err == nil {
		t.Fatal("writes to a reset connection kept succeeding")
	}
}

// TestNonblockingWriterKeepsTheRest: Write takes everything without waiting and keeps what the
// socket did not take; FlushLeft sends it.
func TestNonblockingWriterKeepsTheRest(t *testing.T) {
	c, peer := tcpPair(t)
	var w NonblockingWriter
	rc := rawConn(t, c)
	want := bytes.Repeat([]byte("0123456789"), 100<<10)
	if n, err := w.Write(rc, want); n != len(want) || err != nil {
		t.Fatalf("Write: %d, %v", n, err)
	}
	if !w.HasLeft() {
		t.Fatal("a megabyte went into a socket whose peer does not read")
	}
	got := make(chan []byte)
	go func() { b, _ := io.ReadAll(io.LimitReader(peer, int64(len(want)))); got <- b }()
	if err := w.FlushLeft(c); err != nil || w.HasLeft() {
		t.Fatalf("FlushLeft: %v, left %v", err, w.HasLeft())
	}
	if !bytes.Equal(<-got, want) {
		t.Fatal("the peer read other bytes")
	}
}
