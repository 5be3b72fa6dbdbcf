package main

import (
	"bytes"
	"encoding/binary"
	"errors"
	"io"
	"net"
	"strings"
	"testing"

	"github.com/gobwas/ws"
)

// decode reads one client frame with gobwas/ws and returns its header and unmasked payload.
func decode(t *testing.T, f []byte) (ws.Header, []byte) {
	t.Helper()
	r := bytes.NewReader(f)
	h, err := ws.ReadHeader(r)
	if err != nil {
		t.Fatal(err)
	}
	p := make([]byte, h.Length)
	if _, err := io.ReadFull(r, p); err != nil {
		t.Fatal(err)
	}
	if r.Len() != 0 {
		t.Fatalf("%d bytes after the frame", r.Len())
	}
	if h.Masked {
		ws.Cipher(p, h.Mask, 0)
	}
	return h, p
}

func TestMaskedFrameSizes(t *testing.T) {
	key := [4]byte{0x12, 0x34, 0x56, 0x78}
	for _, n := range []int{0, 1, 2, 125, 126, 127, 4096, 65535, 65536, 70000} {
		payload := padding(n)
		f := maskedFrame(ws.OpText, payload, key)
		h, p := decode(t, f)
		if !h.Fin || h.OpCode != ws.OpText || !h.Masked || h.Mask != key {
			t.Fatalf("size %d: header %+v", n, h)
		}
		if !bytes.Equal(p, payload) {
			t.Fatalf("size %d: payload differs", n)
		}
		if n > 3 && bytes.Equal(f[len(f)-n:], payload) {
			t.Fatalf("size %d: payload not masked", n)
		}
		if got := frameHeaderLen(f); got != len(f)-n {
			t.Fatalf("size %d: frameHeaderLen %d, want %d", n, got, len(f)-n)
		}
	}
}

func TestTemplatePatch(t *testing.T) {
	prefix := "r:room7:"
	tpl := newTemplate(append([]byte(prefix+"0000000000000000"), padding(20)...), [4]byte{1, 2, 3, 4})
	// Offsets that are not multiples of 4 exercise the mask phase.
	for _, c := range []struct{ id, seq uint32 }{{0, 0}, {7, 1}, {0xdeadbeef, 0xffffffff}, {42, 123456}} {
		tpl.patchHex(len(prefix), c.id)
		tpl.patchHex(len(prefix)+8, c.seq)
		_, p := decode(t, tpl.frame)
		if !bytes.HasPrefix(p, []byte(prefix)) {
			t.Fatalf("prefix lost: %q", p)
		}
		body := p[len(prefix):]
		id, ok1 := parseHex(body)
		seq, ok2 := parseHex(body[8:])
		if !ok1 || !ok2 || id != c.id || seq != c.seq {
			t.Fatalf("patched %x/%x, decoded %x/%x (%v %v) from %q", c.id, c.seq, id, seq, ok1, ok2, body)
		}
		if !bytes.Equal(body[16:], padding(20)) {
			t.Fatalf("padding changed: %q", body[16:])
		}
	}
}

func TestHex(t *testing.T) {
	var d [8]byte
	for _, v := range []uint32{0, 1, 0xa, 0xff, 0x12345678, 0xffffffff} {
		putHex(d[:], v)
		got, ok := parseHex(d[:])
		if !ok || got != v {
			t.Fatalf("%x -> %q -> %x %v", v, d, got, ok)
		}
	}
	for _, bad := range []string{"", "1234567", "1234567g", "ABCDEF01", "-1234567"} {
		if _, ok := parseHex([]byte(bad)); ok {
			t.Fatalf("parseHex(%q) accepted", bad)
		}
	}
}

func TestPaddingIsASCII(t *testing.T) {
	for _, c := range padding(1000) {
		if c < 'a' || c > 'z' {
			t.Fatalf("byte %q", c)
		}
	}
	if len(padding(-3)) != 0 {
		t.Fatal("negative padding")
	}
}

func TestAcceptKey(t *testing.T) {
	// RFC 6455 §1.3.
	if got := acceptKey("dGhlIHNhbXBsZSBub25jZQ=="); got != "s3pPLMBiTxaQ9kYGzzhZRbK+xOo=" {
		t.Fatal(got)
	}
	if k := newKey(); len(k) != 24 || k == newKey() {
		t.Fatalf("newKey %q", k)
	}
}

func TestUpgradeRequest(t *testing.T) {
	req := string(upgradeRequest("127.0.0.1:9001", "/x", "KEY", []string{"X-Bench-Token: t1"}))
	for _, want := range []string{"GET /x HTTP/1.1\r\n", "Host: 127.0.0.1:9001\r\n", "Upgrade: websocket\r\n",
		"Connection: Upgrade\r\n", "Sec-WebSocket-Key: KEY\r\n", "Sec-WebSocket-Version: 13\r\n", "X-Bench-Token: t1\r\n"} {
		if !strings.Contains(req, want) {
			t.Fatalf("request lacks %q:\n%s", want, req)
		}
	}
	if !strings.HasSuffix(req, "\r\n\r\n") {
		t.Fatal("request does not end the head")
	}
}

func TestParseUpgradeResponse(t *testing.T) {
	key := "dGhlIHNhbXBsZSBub25jZQ=="
	ok := "HTTP/1.1 101 Switching Protocols\r\nupgrade: WebSocket\r\nConnection: Upgrade\r\n" +
		"sec-websocket-accept: s3pPLMBiTxaQ9kYGzzhZRbK+xOo=\r\n\r\n"
	n, err := parseUpgradeResponse([]byte(ok+"\x81\x02ok"), key)
	if err != nil || n != len(ok) {
		t.Fatalf("n=%d err=%v", n, err)
	}
	if _, err := parseUpgradeResponse([]byte(ok[:len(ok)-2]), key); err != errIncomplete {
		t.Fatalf("partial head: %v", err)
	}
	if _, err := parseUpgradeResponse([]byte("HTTP/1.1 403 Forbidden\r\n\r\n"), key); err == nil {
		t.Fatal("403 accepted")
	}
	bad := strings.Replace(ok, "s3pP", "xxxx", 1)
	if _, err := parseUpgradeResponse([]byte(bad), key); err == nil {
		t.Fatal("wrong accept key accepted")
	}
	noUp := strings.Replace(ok, "upgrade: WebSocket\r\n", "", 1)
	if _, err := parseUpgradeResponse([]byte(noUp), key); err == nil {
		t.Fatal("missing Upgrade accepted")
	}
}

// serverFrame encodes an unmasked server frame.
func serverFrame(fin bool, op byte, p []byte) []byte {
	b0 := op
	if fin {
		b0 |= 0x80
	}
	var h []byte
	switch {
	case len(p) < 126:
		h = []byte{b0, byte(len(p))}
	case len(p) < 65536:
		h = []byte{b0, 126, 0, 0}
		binary.BigEndian.PutUint16(h[2:], uint16(len(p)))
	default:
		h = make([]byte, 10)
		h[0], h[1] = b0, 127
		binary.BigEndian.PutUint64(h[2:], uint64(len(p)))
	}
	return append(h, p...)
}

// TestReader feeds the frame parser a stream in small pieces (through net.Pipe: every Write is
// one Read) and checks messages, reassembly, buffer growth and the pong answered to a ping.
func TestReader(t *testing.T) {
	cli, srv := net.Pipe()
	defer cli.Close()
	defer srv.Close()
	c := &wsConn{nc: cli, buf: make([]byte, 16), key: [4]byte{9, 8, 7, 6}}

	big := padding(70000)
	var stream []byte
	stream = append(stream, serverFrame(true, 1, []byte("ok"))...)
	stream = append(stream, serverFrame(true, 1, padding(300))...)
	stream = append(stream, serverFrame(true, 9, []byte("pi"))...) // ping
	stream = append(stream, serverFrame(false, 1, []byte("hel"))...)
	stream = append(stream, serverFrame(true, 10, nil)...) // pong between fragments
	stream = append(stream, serverFrame(true, 0, []byte("lo"))...)
	stream = append(stream, serverFrame(true, 2, big)...)
	stream = append(stream, serverFrame(true, 8, []byte{3, 0xe8})...)

	pongs := make(chan []byte, 1)
	go func() {
		// Write in 7-byte pieces, then collect what the client writes (the pong).
		go func() {
			f, err := readClientFrame(srv)
			if err == nil {
				pongs <- f
			}
		}()
		for i := 0; i < len(stream); i += 7 {
			if _, err := srv.Write(stream[i:min(i+7, len(stream))]); err != nil {
				return
			}
		}
	}()
	want := [][]byte{[]byte("ok"), padding(300), []byte("hello"), big}
	for i, w := range want {
		p, err := c.next()
		if err != nil {
			t.Fatalf("message %d: %v", i, err)
		}
		if !bytes.Equal(p, w) {
			t.Fatalf("message %d: %d bytes, want %d", i, len(p), len(w))
		}
	}
	if _, err := c.next(); !errors.Is(err, errServerClosed) {
		t.Fatalf("after the close frame: %v", err)
	}
	pong := <-pongs
	h, p := decode(t, pong)
	if h.OpCode != ws.OpPong || !h.Masked || string(p) != "pi" {
		t.Fatalf("pong %+v %q", h, p)
	}
}

// readClientFrame reads one masked frame from r, returned whole.
func readClientFrame(r io.Reader) ([]byte, error) {
	h, err := ws.ReadHeader(r)
	if err != nil {
		return nil, err
	}
	p := make([]byte, h.Length)
	if _, err := io.ReadFull(r, p); err != nil {
		return nil, err
	}
	var b bytes.Buffer
	ws.WriteHeader(&b, h)
	b.Write(p)
	return b.Bytes(), nil
}

func TestReaderProtocolErrors(t *testing.T) {
	for name, stream := range map[string][]byte{
		"continuation without start": serverFrame(true, 0, []byte("x")),
		"text inside a fragmented":   append(serverFrame(false, 1, []byte("a")), serverFrame(true, 1, []byte("b"))...),
		"unknown opcode":             serverFrame(true, 3, nil),
	} {
		cli, srv := net.Pipe()
		go func() { srv.Write(stream); srv.Close() }()
		c := &wsConn{nc: cli, buf: make([]byte, 64)}
		if _, err := c.next(); !errors.Is(err, errProtocol) {
			t.Errorf("%s: %v", name, err)
		}
		cli.Close()
	}
}

func TestNewDialerLoopbackOnly(t *testing.T) {
	for _, a := range []string{"127.0.0.1:1", "[::1]:1", "localhost:1", "127.5.6.7:80"} {
		if _, err := newDialer(a, "/", 4, 64); err != nil {
			t.Errorf("%s refused: %v", a, err)
		}
	}
	for _, a := range []string{"10.0.0.1:80", "example.com:80", "0.0.0.0:80", "127.0.0.1"} {
		if _, err := newDialer(a, "/", 4, 64); err == nil {
			t.Errorf("%s accepted", a)
		}
	}
	d, _ := newDialer("[::1]:1", "/", 4, 64)
	if d.srcs != 0 {
		t.Error("IPv6 target with IPv4 source addresses")
	}
}
