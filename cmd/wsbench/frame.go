package main

import (
	"bytes"
	"crypto/sha1"
	"encoding/base64"
	"errors"
	"fmt"
	"math/rand/v2"
	"strings"

	"github.com/gobwas/ws"
	"github.com/klauspost/compress/flate"
)

// Client frames must be masked (RFC 6455 §5.3). The generator encodes and masks every frame it
// sends once, before the run: a frame whose payload changes from one message to the next (a
// sequence number, a connection number) is a template whose bytes are patched in place, masked,
// at a known offset. Sending a message is then one write of a ready slice.

// maskedFrame returns a complete client frame (FIN set) with opcode op, payload masked with key;
// rsv1 marks a compressed message (RFC 7692).
func maskedFrame(op ws.OpCode, rsv1 bool, payload []byte, key [4]byte) []byte {
	var b bytes.Buffer
	b.Grow(14 + len(payload))
	h := ws.Header{Fin: true, Rsv: ws.Rsv(rsv1, false, false), OpCode: op, Masked: true, Mask: key, Length: int64(len(payload))}
	if err := ws.WriteHeader(&b, h); err != nil {
		panic(err) // a bytes.Buffer does not fail
	}
	off := b.Len()
	b.Write(payload)
	f := b.Bytes()
	ws.Cipher(f[off:], key, 0)
	return f
}

// template is a masked client frame whose first message bytes can be patched in place.
type template struct {
	frame []byte // the whole frame, ready to write
	off   int    // where the patchable message bytes start in frame
	phase int    // and where in the frame's payload (the mask's phase)
	key   [4]byte
}

// newTemplate builds a masked text frame carrying msg, whose first patchable bytes can be patched.
// With deflate the message is sent compressed (RSV1, as after negotiating permessage-deflate
// without context takeover): the patchable bytes go first, as they are, in a stored block, and
// the rest is compressed after it, so that patching stays a masked write at a known offset.
func newTemplate(msg []byte, patchable int, key [4]byte, deflate bool) *template {
	if !deflate {
		f := maskedFrame(ws.OpText, false, msg, key)
		return &template{frame: f, off: len(f) - len(msg), key: key}
	}
	z := deflateMessage(msg, patchable)
	f := maskedFrame(ws.OpText, true, z, key)
	t := &template{frame: f, off: len(f) - len(z), key: key}
	if patchable > 0 {
		t.off += storedHeader
		t.phase = storedHeader
	}
	return t
}

// deflateTail ends every sync-flushed deflate stream; permessage-deflate strips it from the wire
// (RFC 7692 7.2.1) and the receiver puts it back.
var deflateTail = []byte{0x00, 0x00, 0xff, 0xff}

// storedHeader is the size of a stored deflate block's header when it starts a stream: the block
// type byte (not final, stored), LEN and NLEN.
const storedHeader = 5

// deflateMessage is the permessage-deflate payload of msg: msg[:stored] in a stored block, then the
// rest compressed on its own (a fresh window, as no context takeover needs), sync-flushed, its
// tail stripped.
func deflateMessage(msg []byte, stored int) []byte {
	var b bytes.Buffer
	if stored > 0 {
		n := uint16(stored)
		b.Write([]byte{0, byte(n), byte(n >> 8), ^byte(n), ^byte(n >> 8)})
		b.Write(msg[:stored])
	}
	w, err := flate.NewWriter(&b, flate.DefaultCompression)
	if err != nil {
		panic(err) // a valid level
	}
	w.Write(msg[stored:]) // a bytes.Buffer does not fail
	w.Flush()
	return bytes.TrimSuffix(b.Bytes(), deflateTail)
}

// patch writes plain over the message bytes starting at offset pos (within the patchable ones),
// masked.
func (t *template) patch(pos int, plain []byte) {
	p := t.frame[t.off+pos:]
	for i, c := range plain {
		p[i] = c ^ t.key[(t.phase+pos+i)&3]
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

// padding returns n bytes of chat-like JSON (entries of varied words, user and room numbers,
// timestamps): printable ASCII, so every payload is valid UTF-8, and compressible the way real
// messages are (not random, not one byte repeated), for the -deflate runs. The same n gives the
// same bytes.
func padding(n int) []byte {
	words := strings.Fields("the a broker message channel socket worker hello world compress deflate json user text time room join leave typing quick brown fox jumps over lazy dog")
	rng := rand.New(rand.NewPCG(1, 2))
	b := make([]byte, 0, max(n, 0)+160)
	for len(b) < n {
		b = fmt.Appendf(b, `{"user":"user%d","room":"room%d","ts":%d,"text":"`, rng.IntN(1000), rng.IntN(20), 1732579200000+rng.IntN(1e6))
		for range 8 {
			b = append(append(b, words[rng.IntN(len(words))]...), ' ')
		}
		b = append(b, `"},`...)
	}
	return b[:max(n, 0)]
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
	return maskedFrame(ws.OpClose, false, []byte{0x03, 0xe8}, key)
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
// returns the length of the response head (the bytes after it are WebSocket frames) and its
// Sec-WebSocket-Extensions, or errIncomplete if p does not hold the whole head yet.
func parseUpgradeResponse(p []byte, key string) (n int, extensions string, err error) {
	end := bytes.Index(p, []byte("\r\n\r\n"))
	if end < 0 {
		return 0, "", errIncomplete
	}
	head := p[:end]
	lines := bytes.Split(head, []byte("\r\n"))
	status := lines[0]
	if !bytes.HasPrefix(status, []byte("HTTP/1.1 101")) {
		return 0, "", fmt.Errorf("upgrade refused: %q", status)
	}
	var accept, ext []byte
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
		case bytes.EqualFold(bytes.TrimSpace(name), []byte("Sec-WebSocket-Extensions")):
			ext = value
		}
	}
	if !upgrade {
		return 0, "", errors.New("upgrade response without Upgrade: websocket")
	}
	if string(accept) != acceptKey(key) {
		return 0, "", fmt.Errorf("wrong Sec-WebSocket-Accept %q", accept)
	}
	return end + 4, string(ext), nil
}

// deflateOffer is the permessage-deflate offer of -deflate: no context takeover either way, so
// that every message is compressed and inflated on its own, as WSBroker always does.
const deflateOffer = "permessage-deflate; client_no_context_takeover; server_no_context_takeover"

// acceptedDeflate checks the server's Sec-WebSocket-Extensions against what was offered, and
// reports whether messages are compressed. Having offered deflateOffer, the answer must be
// permessage-deflate with server_no_context_takeover (RFC 7692 7.1.1.1: the server accepts that
// parameter by repeating it; each message it sends is then inflated with a fresh window). A
// server that declines fails the run: a -deflate figure must be the cost of compression.
func acceptedDeflate(ext string, offered bool) (bool, error) {
	if ext == "" {
		if offered {
			return false, errors.New("the server declined permessage-deflate")
		}
		return false, nil
	}
	if !offered {
		return false, fmt.Errorf("the server answered an extension that was not offered: %q", ext)
	}
	params := strings.Split(ext, ";")
	if strings.TrimSpace(params[0]) != "permessage-deflate" {
		return false, fmt.Errorf("the server answered an extension that was not offered: %q", ext)
	}
	noTakeover := false
	for _, p := range params[1:] {
		name, value, _ := strings.Cut(strings.TrimSpace(p), "=")
		switch strings.TrimSpace(name) {
		case "server_no_context_takeover":
			noTakeover = true
		case "client_no_context_takeover":
		case "server_max_window_bits": // any: the inflater has a 32 KiB window
		case "client_max_window_bits":
			// Our messages are compressed with a 32 KiB window: only 15 is honoured.
			if strings.Trim(strings.TrimSpace(value), `"`) != "15" {
				return false, fmt.Errorf("permessage-deflate answer %q: client_max_window_bits below 15", ext)
			}
		default:
			return false, fmt.Errorf("permessage-deflate answer %q: unknown parameter %q", ext, p)
		}
	}
	if !noTakeover {
		return false, fmt.Errorf("permessage-deflate answer %q: without server_no_context_takeover", ext)
	}
	return true, nil
}
