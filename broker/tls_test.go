package broker

import (
	"bufio"
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"io"
	"math/big"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/coder/websocket"
	"github.com/gobwas/ws"
	"github.com/wsbroker/wsbroker/internal/wstest"
)

// testCert makes a self-signed certificate for 127.0.0.1 and returns the server's TLS config
// and a client pool that trusts it.
func testCert(t testing.TB) (*tls.Config, *x509.CertPool) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1),
		Subject:      pkix.Name{CommonName: "wsbroker test"},
		NotBefore:    time.Now().Add(-time.Hour),
		NotAfter:     time.Now().Add(time.Hour),
		IPAddresses:  []net.IP{net.IPv4(127, 0, 0, 1)},
		KeyUsage:     x509.KeyUsageDigitalSignature,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	leaf, err := x509.ParseCertificate(der)
	if err != nil {
		t.Fatal(err)
	}
	pool := x509.NewCertPool()
	pool.AddCert(leaf)
	return &tls.Config{Certificates: []tls.Certificate{{Certificate: [][]byte{der}, PrivateKey: key, Leaf: leaf}}}, pool
}

func dialTLS(t *testing.T, addr string, pool *x509.CertPool, mode websocket.CompressionMode) *websocket.Conn {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), waitTimeout)
	defer cancel()
	client := &http.Client{Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool}}}
	c, _, err := websocket.Dial(ctx, "wss://"+addr, &websocket.DialOptions{HTTPClient: client, CompressionMode: mode})
	if err != nil {
		t.Fatalf("dial: %v", err)
	}
	c.SetReadLimit(1 << 22)
	t.Cleanup(func() { c.CloseNow() })
	return c
}

func TestTLS(t *testing.T) {
	cfg, pool := testCert(t)
	rec := newRecorder()
	b, addr := start(t, rec, Limits{TLS: cfg, Compression: true})
	rec.onText = func(c *Conn, data []byte) { b.Send(c.ID(), data, true) }

	for _, mode := range []websocket.CompressionMode{websocket.CompressionDisabled, websocket.CompressionNoContextTakeover} {
		c := dialTLS(t, addr, pool, mode)
		await(t, rec.opens, "open")
		// Larger than a TLS record and than writeq.WriteTLS's chunk; then many small ones, written together.
		for _, msg := range []string{"hello", strings.Repeat("ü", 100_000)} {
			write(t, c, websocket.MessageText, []byte(msg))
			readText(t, c, msg)
		}
		for i := range 200 {
			write(t, c, websocket.MessageText, []byte(msgName(i)))
		}
		for i := range 200 {
			readText(t, c, msgName(i))
		}
		c.Close(4000, "bye")
		if e := await(t, rec.closes, "close"); e.code != 4000 {
			t.Fatalf("close cause %d", e.code)
		}
	}

	// Broker.Close closes TLS connections like the others.
	c := dialTLS(t, addr, pool, websocket.CompressionDisabled)
	await(t, rec.opens, "open")
	go b.Close()
	if code := readCloseStatus(t, c); code != websocket.StatusGoingAway {
		t.Fatalf("after Close: %d", code)
	}
	if e := await(t, rec.closes, "close"); e.code != 1001 {
		t.Fatalf("close cause %d", e.code)
	}
}

// TestTLSPlainRequest: plain HTTP on a TLS listener gets a plain 400, and nothing is leaked.
func TestTLSPlainRequest(t *testing.T) {
	cfg, _ := testCert(t)
	rec := newRecorder()
	b, addr := start(t, rec, Limits{TLS: cfg})
	for range 3 {
		r := rawConnect(t, addr)
		r.send([]byte(wstest.UpgradeRequest("/")))
		if st := r.status(); st != 400 {
			t.Fatalf("status %d", st)
		}
		r.expectEOF()
	}
	// A broken TLS handshake (an empty ClientHello): a TLS alert, then the connection is closed.
	r := rawConnect(t, addr)
	r.send([]byte{0x16, 0x03, 0x01, 0x00, 0x04, 0x01, 0x00, 0x00, 0x00})
	if _, err := io.ReadAll(r.br); err != nil {
		t.Fatalf("not closed: %v", err)
	}
	waitFor(t, "every connection to end", func() bool {
		g := b.groups[0]
		g.allMu.Lock()
		defer g.allMu.Unlock()
		return len(g.all) == 0 && g.lns[0].conns.Load() == 0
	})
	select {
	case e := <-rec.opens:
		t.Fatalf("an open: %+v", e)
	default:
	}
}

// rawTLS connects with TLS and upgrades: a rawClient over TLS.
func rawTLS(t *testing.T, addr string, pool *x509.CertPool) *rawClient {
	t.Helper()
	r := rawConnect(t, addr)
	tc := tls.Client(r.nc, &tls.Config{RootCAs: pool, ServerName: "127.0.0.1"})
	r.nc, r.br = tc, bufio.NewReader(tc)
	r.send([]byte(wstest.UpgradeRequest("/")))
	if resp := r.response(); resp.StatusCode != 101 {
		t.Fatalf("upgrade: %v", resp.Status)
	}
	return r
}

// TestTLSLimits: the idle ping and close, and backpressure, work through crypto/tls too.
func TestTLSLimits(t *testing.T) {
	cfg, pool := testCert(t)
	rec := newRecorder()
	b, addr := start(t, rec, Limits{TLS: cfg, IdleTimeout: 200 * time.Millisecond, MaxBackpressure: 256 << 10},
		func(b *Broker) { b.drainTimeout = 200 * time.Millisecond })

	r := rawTLS(t, addr, pool)
	await(t, rec.opens, "open")
	if h, _ := r.readFrame(); h.OpCode != ws.OpPing {
		t.Fatalf("got %v, want a ping", h.OpCode)
	}
	r.send(wstest.Frame(0x8A, nil))
	if h, _ := r.readFrame(); h.OpCode != ws.OpPing {
		t.Fatalf("got %v, want a second ping", h.OpCode)
	}
	r.expectClose(wstest.ClosePayload(1001, ""))
	if e := await(t, rec.closes, "close"); e.code != 1001 {
		t.Fatalf("idle close cause %d", e.code)
	}

	// A client that does not read: the writer blocks in crypto/tls until the queue passes the
	// limit; the close frame cannot go out either, so the connection ends at the drain timeout,
	// with 1008.
	slow := rawTLS(t, addr, pool)
	id := await(t, rec.opens, "open").id
	chunk := make([]byte, 16<<10)
	for i := 0; i < 4096 && b.hub.lookup(id) != nil; i++ {
		b.Send(id, chunk, false)
	}
	if e := await(t, rec.closes, "close"); e.id != id || e.code != 1008 {
		t.Fatalf("close of %d with %d, want %d with 1008", e.id, e.code, id)
	}
	slow.nc.Close()
}

// corkedConn holds back writes while corked and sends them in one write when uncorked.
type corkedConn struct {
	net.Conn
	held   []byte
	corked bool
}

func (c *corkedConn) Write(p []byte) (int, error) {
	if c.corked {
		c.held = append(c.held, p...)
		return len(p), nil
	}
	return c.Conn.Write(p)
}

func (c *corkedConn) uncork() error {
	c.corked = false
	_, err := c.Conn.Write(c.held)
	return err
}

// TestTLSMessageInTheRequestsSegment: a message in a TLS record of its own that comes in the
// same segment as the request's record is read by the handshake's read into crypto/tls's buffer,
// where no epoll event will announce it: the connection's first turn must find it.
func TestTLSMessageInTheRequestsSegment(t *testing.T) {
	cfg, pool := testCert(t)
	rec := newRecorder()
	b, addr := start(t, rec, Limits{TLS: cfg})
	rec.onText = func(c *Conn, data []byte) { b.Send(c.ID(), data, true) }

	r := rawConnect(t, addr)
	cc := &corkedConn{Conn: r.nc}
	tc := tls.Client(cc, &tls.Config{RootCAs: pool, ServerName: "127.0.0.1"})
	if err := tc.Handshake(); err != nil {
		t.Fatal(err)
	}
	r.nc, r.br = tc, bufio.NewReader(tc)
	cc.corked = true
	r.send([]byte(wstest.UpgradeRequest("/")))
	r.send(wstest.Frame(0x81, []byte("with the request")))
	if err := cc.uncork(); err != nil {
		t.Fatal(err)
	}
	if resp := r.response(); resp.StatusCode != 101 {
		t.Fatalf("upgrade: %v", resp.Status)
	}
	if h, p := r.readFrame(); h.OpCode != ws.OpText || string(p) != "with the request" {
		t.Fatalf("got %v %q, want the echo", h.OpCode, p)
	}
}

// awaitRecordsLeft waits until records written to socket id wait in its tlsSocket for room.
func awaitRecordsLeft(t *testing.T, b *Broker, id uint64) {
	t.Helper()
	waitFor(t, "records waiting for the socket", func() bool {
		sc := b.hub.lookup(id)
		return sc != nil && sc.tlsSocket().w.HasLeft()
	})
}

// TestTLSFullSocket: records that the socket cannot take at once wait in its tlsSocket and go out
// first, in order, once the client reads.
func TestTLSFullSocket(t *testing.T) {
	cfg, pool := testCert(t)
	rec := newRecorder()
	b, addr := start(t, rec, Limits{TLS: cfg}, polled)
	const n, size = 256, 64 << 10 // 16 MiB: more than loopback buffers hold, whatever their autotuning
	rec.onText = func(c *Conn, _ []byte) {
		for i := range n {
			b.Send(c.ID(), bytes.Repeat([]byte{byte(i)}, size), false)
		}
	}
	c := dialTLS(t, addr, pool, websocket.CompressionDisabled)
	id := await(t, rec.opens, "open").id
	write(t, c, websocket.MessageText, []byte("burst"))
	awaitRecordsLeft(t, b, id)
	for i := range n {
		typ, p := read(t, c)
		if typ != websocket.MessageBinary || len(p) != size || p[0] != byte(i) || p[size-1] != byte(i) {
			t.Fatalf("message %d: %v, %d bytes, starting with %d", i, typ, len(p), p[0])
		}
	}
}

// TestTLSCloseOfAFullSocket: a TLS client whose socket is full when it is closed gets its data,
// the close frame and then the end of the stream as soon as it reads them, not at the drain
// deadline. (Whether the close_notify itself finds the socket full depends on the timing: this
// test does not make sure it does.)
func TestTLSCloseOfAFullSocket(t *testing.T) {
	cfg, pool := testCert(t)
	rec := newRecorder()
	b, addr := start(t, rec, Limits{TLS: cfg}, polled, func(b *Broker) { b.drainTimeout = time.Minute })
	r := rawTLS(t, addr, pool)
	id := await(t, rec.opens, "open").id
	const n, size = 256, 64 << 10 // 16 MiB: more than loopback buffers hold, whatever their autotuning
	for i := range n {
		b.Send(id, bytes.Repeat([]byte{byte(i)}, size), false)
	}
	awaitRecordsLeft(t, b, id)
	if ok, err := b.CloseSocket(id, 4000, nil); !ok || err != nil {
		t.Fatalf("CloseSocket: %v %v", ok, err)
	}
	for i := range n {
		if h, p := r.readFrame(); h.OpCode != ws.OpBinary || len(p) != size || p[0] != byte(i) {
			t.Fatalf("frame %d: %v, %d bytes", i, h.OpCode, len(p))
		}
	}
	r.expectClose(wstest.ClosePayload(4000, ""))
}
