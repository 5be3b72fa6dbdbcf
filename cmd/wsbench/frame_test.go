package main

import (
	"bytes"
	"compress/flate"
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
		f := maskedFrame(ws.OpText, false, payload, key)
		h, p := decode(t, f)
		if !h.Fin || h.OpCode != ws.OpText || !h.Masked || h.Mask != key || h.Rsv != 0 {
			t.Fatalf("size %d: header %+v", n, h)
		}
		if !bytes.Equal(p, payload) {
			t.Fatalf("size %d: payload differs", n)
		}
		if n > 3 && bytes.Equal(f[len(f)-n:], payload) {
			t.Fatalf("size %d: payload not masked", n)
		}
	}
	h, _ := decode(t, maskedFrame(ws.OpText, true, []byte("x"), key))
	if h.Rsv != ws.Rsv(true, false, false) {
		t.Fatalf("rsv1 frame: header %+v", h)
	}
}

// inflateStd inflates a permessage-deflate payload with the standard library (not the generator's
// own inflater), putting back the tail the sender strips.
func inflateStd(t *testing.T, p []byte) []byte {
	t.Helper()
	out, err := io.ReadAll(flate.NewReader(io.MultiReader(bytes.NewReader(p), bytes.NewReader(deflateTail))))
	if err != nil && err != io.ErrUnexpectedEOF {
		t.Fatalf("inflate: %v", err)
	}
	return out
}

func TestTemplatePatch(t *testing.T) {
	prefix := "r:room7:"
	for _, deflate := range []bool{false, true} {
		tpl := newTemplate(append([]byte(prefix+"0000000000000000"), padding(300)...), len(prefix)+16, [4]byte{1, 2, 3, 4}, deflate)
		// Offsets that are not multiples of 4 exercise the mask phase.
		for _, c := range []struct{ id, seq uint32 }{{0, 0}, {7, 1}, {0xdeadbeef, 0xffffffff}, {42, 123456}} {
			tpl.patchHex(len(prefix), c.id)
			tpl.patchHex(len(prefix)+8, c.seq)
			h, p := decode(t, tpl.frame)
			if (h.Rsv != 0) != deflate {
				t.Fatalf("deflate %v: header %+v", deflate, h)
			}
			if deflate {
				if len(p) >= 300 {
					t.Fatalf("compressed %d bytes into %d", 324, len(p))
				}
				p = inflateStd(t, p)
			}
			if !bytes.HasPrefix(p, []byte(prefix)) {
				t.Fatalf("deflate %v: prefix lost: %q", deflate, p)
			}
			body := p[len(prefix):]
			id, ok1 := parseHex(body)
			seq, ok2 := parseHex(body[8:])
			if !ok1 || !ok2 || id != c.id || seq != c.seq {
				t.Fatalf("deflate %v: patched %x/%x, decoded %x/%x (%v %v) from %q", deflate, c.id, c.seq, id, seq, ok1, ok2, body)
			}
			if !bytes.Equal(body[16:], padding(300)) {
				t.Fatalf("deflate %v: padding changed: %q", deflate, body[16:])
			}
		}
	}
}

func TestDeflateMessage(t *testing.T) {
	for _, c := range []struct{ msg, stored int }{{0, 0}, {1, 0}, {4096, 0}, {4096, 20}, {20, 20}, {70000, 8}} {
		msg := padding(c.msg)
		z := deflateMessage(msg, c.stored)
		if bytes.HasSuffix(z, deflateTail) {
			t.Fatalf("%+v: the tail is not stripped", c)
		}
		if got := inflateStd(t, z); !bytes.Equal(got, msg) {
			t.Fatalf("%+v: inflates to %d bytes, want %d", c, len(got), len(msg))
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

// The payload is chat-like JSON: printable ASCII (valid UTF-8), the same for the same size, and
// as compressible as real messages are: not random (no gain), not one byte repeated (near total).
func TestPaddingIsChatJSON(t *testing.T) {
	p := padding(4096)
	for _, c := range p {
		if c < 0x20 || c > 0x7e {
			t.Fatalf("byte %q", c)
		}
	}
	if !bytes.HasPrefix(p, []byte(`{"user":"user`)) || !bytes.Equal(p, padding(4096)) || !bytes.HasPrefix(p, padding(100)) {
		t.Fatalf("not the same chat-like JSON each time: %.100q", p)
	}
	if ratio := float64(len(deflateMessage(p, 0))) / float64(len(p)); ratio < 0.15 || ratio > 0.5 {
		t.Fatalf("4 KiB compress to %.0f%%", 100*ratio)
	}
	if len(padding(-3)) != 0 || len(padding(77)) != 77 {
		t.Fatal("padding length")
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
	n, ext, err := parseUpgradeResponse([]byte(ok+"\x81\x02ok"), key)
	if err != nil || n != len(ok) || ext != "" {
		t.Fatalf("n=%d ext=%q err=%v", n, ext, err)
	}
	withExt := strings.Replace(ok, "\r\n\r\n", "\r\nSec-WebSocket-Extensions:  permessage-deflate; server_no_context_takeover \r\n\r\n", 1)
	if _, ext, err := parseUpgradeResponse([]byte(withExt), key); err != nil || ext != "permessage-deflate; server_no_context_takeover" {
		t.Fatalf("ext=%q err=%v", ext, err)
	}
	if _, _, err := parseUpgradeResponse([]byte(ok[:len(ok)-2]), key); err != errIncomplete {
		t.Fatalf("partial head: %v", err)
	}
	if _, _, err := parseUpgradeResponse([]byte("HTTP/1.1 403 Forbidden\r\n\r\n"), key); err == nil {
		t.Fatal("403 accepted")
	}
	bad := strings.Replace(ok, "s3pP", "xxxx", 1)
	if _, _, err := parseUpgradeResponse([]byte(bad), key); err == nil {
		t.Fatal("wrong accept key accepted")
	}
	noUp := strings.Replace(ok, "upgrade: WebSocket\r\n", "", 1)
	if _, _, err := parseUpgradeResponse([]byte(noUp), key); err == nil {
		t.Fatal("missing Upgrade accepted")
	}
}

func TestAcceptedDeflate(t *testing.T) {
	for _, c := range []struct {
		ext     string
		offered bool
		want    bool
		err     string
	}{
		{"", false, false, ""},
		{"", true, false, "declined"},
		{"permessage-deflate; server_no_context_takeover; client_no_context_takeover", true, true, ""},
		{"permessage-deflate;server_no_context_takeover;server_max_window_bits=12;client_max_window_bits=15", true, true, ""},
		{"permessage-deflate; server_no_context_takeover", false, false, "not offered"},
		{"x-webkit-deflate-frame", true, false, "not offered"},
		{"permessage-deflate; client_no_context_takeover", true, false, "without server_no_context_takeover"},
		{"permessage-deflate; server_no_context_takeover; client_max_window_bits=10", true, false, "below 15"},
		{"permessage-deflate; server_no_context_takeover; foo", true, false, "unknown parameter"},
	} {
		got, err := acceptedDeflate(c.ext, c.offered)
		if got != c.want || (err == nil) != (c.err == "") || err != nil && !strings.Contains(err.Error(), c.err) {
			t.Errorf("acceptedDeflate(%q, %v) = %v, %v; want %v and an error with %q", c.ext, c.offered, got, err, c.want, c.err)
		}
	}
}

// serverFrame encodes an unmasked server frame; op may carry the RSV bits (0x40: RSV1).
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

// deflateStd compresses msg as a permessage-deflate server would, with the standard library.
func deflateStd(t *testing.T, msg []byte) []byte {
	t.Helper()
	var b bytes.Buffer
	w, _ := flate.NewWriter(&b, flate.BestSpeed)
	w.Write(msg)
	w.Flush()
	return bytes.TrimSuffix(b.Bytes(), deflateTail)
}

// TestReaderInflates: on a connection that negotiated permessage-deflate, messages with RSV1
// (whole or fragmented) come out inflated and are counted with their bytes on the wire; the
// others come out as they are.
func TestReaderInflates(t *testing.T) {
	cli, srv := net.Pipe()
	defer cli.Close()
	defer srv.Close()
	var count wireCount
	c := &wsConn{nc: cli, buf: make([]byte, 64), deflate: true, count: &count}
	big := padding(100000)
	z1, z2 := deflateStd(t, padding(4096)), deflateStd(t, big)
	var stream []byte
	stream = append(stream, serverFrame(true, 1|0x40, z1)...)
	stream = append(stream, serverFrame(true, 1, []byte("plain"))...)
	stream = append(stream, serverFrame(false, 1|0x40, z2[:10])...)
	stream = append(stream, serverFrame(true, 0, z2[10:])...)
	stream = append(stream, serverFrame(true, 1|0x40, z1)...)
	go srv.Write(stream)
	for i, want := range [][]byte{padding(4096), []byte("plain"), big, padding(4096)} {
		p, err := c.next()
		if err != nil || !bytes.Equal(p, want) {
			t.Fatalf("message %d: %d bytes, want %d (%v)", i, len(p), len(want), err)
		}
	}
	if count.msgs.Load() != 3 || count.bytes.Load() != uint64(2*len(z1)+len(z2)) {
		t.Fatalf("counted %d messages, %d bytes", count.msgs.Load(), count.bytes.Load())
	}
}

func TestReaderProtocolErrors(t *testing.T) {
	z := deflateStd(t, []byte("hello"))
	for name, c := range map[string]struct {
		stream  []byte
		deflate bool
	}{
		"continuation without start":    {serverFrame(true, 0, []byte("x")), false},
		"text inside a fragmented":      {append(serverFrame(false, 1, []byte("a")), serverFrame(true, 1, []byte("b"))...), false},
		"unknown opcode":                {serverFrame(true, 3, nil), false},
		"RSV1 without deflate":          {serverFrame(true, 1|0x40, z), false},
		"RSV1 on a continuation":        {append(serverFrame(false, 1|0x40, z[:2]), serverFrame(true, 0|0x40, z[2:])...), true},
		"RSV1 on a ping":                {serverFrame(true, 9|0x40, nil), true},
		"RSV2":                          {serverFrame(true, 1|0x20, []byte("x")), true},
		"RSV1 on what does not inflate": {serverFrame(true, 1|0x40, []byte{0xff, 0xff, 0xff}), true},
	} {
		cli, srv := net.Pipe()
		go func() { srv.Write(c.stream); srv.Close() }()
		conn := &wsConn{nc: cli, buf: make([]byte, 64), deflate: c.deflate, count: new(wireCount)}
		if _, err := conn.next(); !errors.Is(err, errProtocol) {
			t.Errorf("%s: %v", name, err)
		}
		cli.Close()
	}
}

func TestNewDialerLoopbackOnly(t *testing.T) {
	for _, a := range []string{"127.0.0.1:1", "[::1]:1", "localhost:1", "127.5.6.7:80"} {
		if _, err := newDialer([]string{a}, "/", 4, 64); err != nil {
			t.Errorf("%s refused: %v", a, err)
		}
	}
	for _, a := range []string{"10.0.0.1:80", "example.com:80", "0.0.0.0:80", "127.0.0.1"} {
		if _, err := newDialer([]string{a}, "/", 4, 64); err == nil {
			t.Errorf("%s accepted", a)
		}
	}
	d, _ := newDialer([]string{"[::1]:1"}, "/", 4, 64)
	if d.srcs != 0 {
		t.Error("IPv6 target with IPv4 source addresses")
	}
}
