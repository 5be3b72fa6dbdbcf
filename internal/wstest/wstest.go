// Package wstest builds what a WebSocket client sends, byte by byte, for tests that feed the
// broker or its protocol layer malformed or hand-split input.
package wstest

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"math/rand/v2"
	"strings"

	"github.com/gobwas/ws"
)

// Key is the Sec-WebSocket-Key of UpgradeRequest (RFC 6455's example); AcceptKey is its answer.
const (
	Key       = "dGhlIHNhbXBsZSBub25jZQ=="
	AcceptKey = "s3pPLMBiTxaQ9kYGzzhZRbK+xOo="
)

// UpgradeRequest is a complete upgrade request for path, ending with its blank line.
func UpgradeRequest(path string) string {
	return "GET " + path + " HTTP/1.1\r\nHost: test\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n" +
		"Sec-WebSocket-Key: " + Key + "\r\nSec-WebSocket-Version: 13\r\n\r\n"
}

// ClosePayload is a close frame's payload: code, then reason.
func ClosePayload(code uint16, reason string) []byte {
	p := binary.BigEndian.AppendUint16(nil, code)
	return append(p, reason...)
}

// mask is the masking key of every frame built here.
var mask = [4]byte{0x12, 0x34, 0x56, 0x78}

// Frame builds a client frame: b0 is FIN|RSV|opcode; masked as clients must unless unmasked.
func Frame(b0 byte, payload []byte, unmasked ...bool) []byte {
	masked := len(unmasked) == 0 || !unmasked[0]
	f := Header(b0, uint64(len(payload)), masked)
	p := bytes.Clone(payload)
	if masked {
		ws.Cipher(p, mask, 0)
	}
	return append(f, p...)
}

// Header builds a client frame header declaring length.
func Header(b0 byte, length uint64, masked bool) []byte {
	f := []byte{b0, 0}
	switch {
	case length < 126:
		f[1] = byte(length)
	case length <= 0xffff:
		f[1] = 126
		f = binary.BigEndian.AppendUint16(f, uint16(length))
	default:
		f[1] = 127
		f = binary.BigEndian.AppendUint64(f, length)
	}
	if masked {
		f[1] |= 0x80
		f = append(f, mask[:]...)
	}
	return f
}

// MaskedPrefix masks p as the start of a frame's payload (a frame built by Header).
func MaskedPrefix(p []byte) []byte {
	p = bytes.Clone(p)
	ws.Cipher(p, mask, 0)
	return p
}

// Cat joins frames.
func Cat(parts ...[]byte) []byte { return bytes.Join(parts, nil) }

// ChatMessage is a chat-like JSON text of n bytes: entries of varied words, the same every time.
func ChatMessage(n int) []byte {
	words := strings.Fields("the a broker message channel socket worker hello world compress deflate json user text time room join leave typing quick brown fox jumps over lazy dog")
	rng := rand.New(rand.NewPCG(1, 2))
	var b strings.Builder
	b.WriteString("[")
	for b.Len() < n {
		fmt.Fprintf(&b, `{"user":"user%d","room":"room%d","ts":%d,"text":"`, rng.IntN(1000), rng.IntN(20), 1732579200000+rng.IntN(1e6))
		for range 8 {
			b.WriteString(words[rng.IntN(len(words))] + " ")
		}
		b.WriteString(`"},`)
	}
	return []byte(b.String()[:n])
}
