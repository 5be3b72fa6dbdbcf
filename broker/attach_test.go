package broker

import (
	"errors"
	"net"
	"syscall"
	"testing"
	"time"

	"github.com/wsbroker/wsbroker/internal/wstest"
)

// frontServer stands for the server an Attachment's connections come from: it accepts on a
// loopback port, reads at least the first want bytes of each connection and hands it over to a.
func frontServer(t *testing.T, a *Attachment, want int) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	go func() {
		for {
			nc, err := ln.Accept()
			if err != nil {
				return
			}
			pre := make([]byte, 0, 4096)
			for len(pre) < want {
				n, err := nc.Read(pre[len(pre):cap(pre)])
				pre = pre[:len(pre)+n]
				if err != nil {
					break
				}
			}
			tc := nc.(*net.TCPConn)
			tc.SetNoDelay(false) // as a server that is not Go's may hand it over: the Attachment sets it
			a.Adopt(tc, pre)
		}
	}()
	return ln.Addr().String()
}

// attach starts a Broker with an Attachment of lim (no listener); both are closed when the test ends.
func attach(t *testing.T, rec *recorder, lim Limits) (*Broker, *Attachment) {
	t.Helper()
	b := New(rec, Options{Logger: testLogger()})
	rec.b = b
	configureRuns(b)
	a, err := b.Attach("test server", lim)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(b.Close)
	return b, a
}

func TestAttachServesWhatWasReadThenTheSocket(t *testing.T) {
	request := []byte(wstest.UpgradeRequest("/chat?room=1"))
	hello := wstest.Frame(0x81, []byte("hello"))
	for _, tc := range []struct {
		name string
		read int // bytes the front server reads before it hands the connection over
	}{
		{"part of the request", 20},
		{"the request and the frame after it", len(request) + len(hello)},
	} {
		t.Run(tc.name, func(t *testing.T) {
			rec := newRecorder()
			rec.onText = func(c *Conn, data []byte) { rec.b.Send(c.ID(), data, true) }
			_, a := attach(t, rec, Limits{})
			r := rawConnect(t, frontServer(t, a, tc.read))
			r.send(wstest.Cat(request, hello)) // one write: the frame arrives with the request
			if resp := r.response(); resp.StatusCode != 101 {
				t.Fatalf("upgrade: %v", resp.Status)
			}
			open := await(t, rec.opens, "open")
			if open.req.URL != "/chat?room=1" || open.req.IP != "127.0.0.1" {
				t.Fatalf("open: url %q ip %q", open.req.URL, open.req.IP)
			}
			if h, p := r.readFrame(); h.OpCode != 1 || string(p) != "hello" {
				t.Fatalf("echo: %v %q", h.OpCode, p)
			}
		})
	}
}

func TestAttachAppliesItsLimits(t *testing.T) {
	rec := newRecorder()
	rec.onOpen = func(c *Conn, req *Request) {} // no verdict: the first connection stays pending
	_, a := attach(t, rec, Limits{MaxConnections: 1, IdleTimeout: time.Minute})
	addr := frontServer(t, a, 1)
	first := rawConnect(t, addr)
	first.send([]byte(wstest.UpgradeRequest("/")))
	c := await(t, rec.opens, "open").c
	second := rawConnect(t, addr)
	second.send([]byte(wstest.UpgradeRequest("/")))
	if got := second.status(); got != 503 {
		t.Fatalf("over MaxConnections: got %d, want 503", got)
	}
	// A listener's connection has no TCP keep-alive while IdleTimeout pings, and no Nagle.
	for _, opt := range []struct {
		level, name, want int
	}{{syscall.SOL_SOCKET, syscall.SO_KEEPALIVE, 0}, {syscall.IPPROTO_TCP, syscall.TCP_NODELAY, 1}} {
		var got int
		var err error
		c.rc.Control(func(fd uintptr) { got, err = syscall.GetsockoptInt(int(fd), opt.level, opt.name) })
		if err != nil || (got != 0) != (opt.want != 0) {
			t.Errorf("socket option %d: got %d (%v), want %d", opt.name, got, err, opt.want)
		}
	}
}

// openedThrough connects a client through a front server that hands it over to a, and returns it
// once the upgrade is answered and Open was called.
func openedThrough(t *testing.T, rec *recorder, a *Attachment) *rawClient {
	t.Helper()
	r := rawConnect(t, frontServer(t, a, 1))
	r.send([]byte(wstest.UpgradeRequest("/")))
	if resp := r.response(); resp.StatusCode != 101 {
		t.Fatalf("upgrade: %v", resp.Status)
	}
	await(t, rec.opens, "open")
	return r
}

func TestAttachmentListenersClose(t *testing.T) {
	rec := newRecorder()
	_, a := attach(t, rec, Limits{})
	r := openedThrough(t, rec, a)
	awaitClosed(t, closeInBackground(a.Listeners(), 0))
	r.expectClose(wstest.ClosePayload(1001, ""))
	if e := await(t, rec.closes, "close"); e.code != 1001 {
		t.Fatalf("close cause %d, want 1001", e.code)
	}
	client, server := tcpPair(t)
	if err := a.Adopt(server, nil); !errors.Is(err, net.ErrClosed) {
		t.Fatalf("Adopt after its Listeners' Close: %v, want net.ErrClosed", err)
	}
	client.Close()
}

func TestAttachmentClosed(t *testing.T) {
	rec := newRecorder()
	b, a := attach(t, rec, Limits{})
	r := openedThrough(t, rec, a)
	a.Close()

	// A connection handed over after Close is closed, and Adopt says so.
	client, server := tcpPair(t)
	if err := a.Adopt(server, nil); !errors.Is(err, net.ErrClosed) {
		t.Fatalf("Adopt after Close: %v, want net.ErrClosed", err)
	}
	client.SetReadDeadline(time.Now().Add(waitTimeout))
	if n, err := client.Read(make([]byte, 1)); n != 0 || err == nil {
		t.Fatalf("the refused connection: read %d, %v; want EOF", n, err)
	}

	// The connections it took stay until Broker.Close, which closes them with 1001.
	b.Close()
	r.expectClose(wstest.ClosePayload(1001, ""))
	if e := await(t, rec.closes, "close"); e.code != 1001 {
		t.Fatalf("close cause %d, want 1001", e.code)
	}
}

func TestAttachRefusesTLS(t *testing.T) {
	b := New(newRecorder(), Options{})
	cfg, _ := testCert(t)
	if _, err := b.Attach("tls", Limits{TLS: cfg}); !errors.Is(err, errAttachTLS) {
		t.Fatalf("Attach with TLS: %v", err)
	}
}

// tcpPair returns both ends of a loopback TCP connection.
func tcpPair(t *testing.T) (client, server *net.TCPConn) {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	nc, err := net.Dial("tcp", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { nc.Close() })
	sc, err := ln.Accept()
	if err != nil {
		t.Fatal(err)
	}
	return nc.(*net.TCPConn), sc.(*net.TCPConn)
}
