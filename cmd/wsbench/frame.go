package main

import (
	"bytes"
	"crypto/sha1"
	"encoding/base64"
	"errors"
	"fmt"
	"math/rand/v2"

	"github.com/gobwas/ws"
)

// Client frames must be masked (RFC 6455 §5.3). The generator encodes and masks every frame it
// sends once, before the run: a frame whose payload changes from one message to the next (a
// sequence number, a connection number) is a template whose bytes are patched in place, masked,
// at a known offset. Sending a message is then one write of a ready slice.

// maskedFrame returns a complete client frame (FIN set) with opcode op, payload masked with key.
func maskedFrame(op ws.OpCode, payload []byte, key [4]byte) []byte {
	var b bytes.Buffer
	b.Grow(14 + len(payload))
	h := ws.Header{Fin: true, OpCode: op, Masked: true, Mask: key, Length: int64(len(payload))}
	if err := ws.WriteHeader(&b, h); err != nil {
		panic(err) // a bytes.Buffer does not fail
	}
	off := b.Len()
	b.Write(payload)
	f := b.Bytes()
	ws.Cipher(f[off:], key, 0)
	return f
}

// template is a masked client frame whose payload can be patched in place.
type template struct {
	frame []byte // the whole frame, ready to write
	off   int    // where the payload starts in frame
	key   [4]byte
}

// newTemplate builds a masked text frame carrying payload.
func newTemplate(payload []byte, key [4]byte) *template {
	f := maskedFrame(ws.OpText, payload, key)
	return &template{frame: f, off: len(f) - len(payload), key: key}
}

// patch writes plain over the payload bytes starting at payload offset pos, masked.
func (t *template) patch(pos int, plain []byte) {
	p := t.frame[t.off+pos:]
	for i, c := range plain {
		p[i] = c ^ t.key[(pos+i)&3]
	}
}

// patchHex writes v as 8 lower-case hex digits at payload offset pos, masked.
func (t *template) patchHex(pos int, v uint32) {
	var d [8]byte
	putHex(d[:], v)
	t.patch(pos, d[:])
}

const hexDigits = "0123456789abcdef"

// putHex writes v as 8 lower-case hex digits into d[:8].
func putHex(d []byte, v uint32) {
	for i := 7; i >= 0; i-- {
		d[i] = hexDigits[v&15]
		v >>= 4
	}
}

// parseHex reads 8 hex digits from p; ok is false if p is shorter or holds another byte.
func parseHex(p []byte) (v uint32, ok bool) {
	if len(p) < 8 {
		return 0, false
	}
	for _, c := range p[:8] {
		var d byte
		switch {
		case c >= '0' && c <= '9':
			d = c - '0'
		case c >= 'a' && c <= 'f':
			d = c - 'a' + 10
		default:
			return 0, false
		}
		v = v<<4 | uint32(d)
	}
	return v, true
}

// padding returns n filler bytes (printable ASCII, so every payload is valid UTF-8).
func padding(n int) []byte {
	p := make([]byte, max(n, 0))
	for i := range p {
		p[i] = 'a' + byte(i%26)
	}
	return p
}

// randomKey returns a mask key.
func randomKey() [4]byte {
	var k [4]byte
	v := rand.Uint32()
	k[0], k[1], k[2], k[3] = byte(v), byte(v>>8), byte(v>>16), byte(v>>24)
	return k
}

// closeFrame is a masked close frame with status 1000.
func closeFrame(key [4]byte) []byte {
	return maskedFrame(ws.OpClose, []byte{0x03, 0xe8}, key)
}

// --- Opening handshake (client side) ---

const wsGUID = "258EAFA5-E914-47DA-95CA-C5AB0DC85B11"

// acceptKey is the Sec-WebSocket-Accept value a server must answer to key.
func acceptKey(key string) string {
	h := sha1.Sum([]byte(key + wsGUID))
	return base64.StdEncoding.EncodeToString(h[:])
}

// newKey returns a fresh Sec-WebSocket-Key.
func newKey() string {
	var b [16]byte
	for i := 0; i < 16; i += 8 {
		v := rand.Uint64()
		for j := 0; j < 8; j++ {
			b[i+j] = byte(v >> (8 * j))
		}
	}
	return base64.StdEncoding.EncodeToString(b[:])
}

// upgradeRequest is the HTTP request that opens a WebSocket connection. extra holds header
// lines without their CRLF ("Name: value").
func upgradeRequest(host, path, key string, extra []string) []byte {
	var b bytes.Buffer
	fmt.Fprintf(&b, "GET %s HTTP/1.1\r\nHost: %s\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"+
		"Sec-WebSocket-Key: %s\r\nSec-WebSocket-Version: 13\r\n", path, host, key)
	for _, h := range extra {
		b.WriteString(h)
		b.WriteString("\r\n")
	}
	b.WriteString("\r\n")
	return b.Bytes()
}

var errIncomplete = errors.New("incomplete response")

// parseUpgradeResponse checks the server's answer to an upgrade request whose key was key. It
// returns the length of the response head (the bytes after it are WebSocket frames), or
// errIncomplete if p does not hold the whole head yet.
func parseUpgradeResponse(p []byte, key string) (int, error) {
	end := bytes.Index(p, []byte("\r\n\r\n"))
	if end < 0 {
		return 0, errIncomplete
	}
	head := p[:end]
	lines := bytes.Split(head, []byte("\r\n"))
	status := lines[0]
	if !bytes.HasPrefix(status, []byte("HTTP/1.1 101")) {
		return 0, fmt.Errorf("upgrade refused: %q", status)
	}
	var accept []byte
	upgrade := false
	for _, l := range lines[1:] {
		name, value, ok := bytes.Cut(l, []byte(":"))
		if !ok {
			continue
		}
		value = bytes.TrimSpace(value)
		switch {
		case bytes.EqualFold(bytes.TrimSpace(name), []byte("Sec-WebSocket-Accept")):
			accept = value
		case bytes.EqualFold(bytes.TrimSpace(name), []byte("Upgrade")):
			upgrade = bytes.EqualFold(value, []byte("websocket"))
		}
	}
	if !upgrade {
		return 0, errors.New("upgrade response without Upgrade: websocket")
	}
	if string(accept) != acceptKey(key) {
		return 0, fmt.Errorf("wrong Sec-WebSocket-Accept %q", accept)
	}
	return end + 4, nil
}
