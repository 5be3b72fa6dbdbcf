package main

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/gobwas/ws"
)

// Socket.IO servers (-proto socketio) carry the bench protocol as Socket.IO events: each message
// is the one string argument of an event named "m", in Engine.IO v4 packets over a WebSocket
// (https://socket.io/docs/v4/socket-io-protocol/): the server opens with "0{…}", the client joins
// the main namespace with "40" and waits for "40{…}", events travel as `42["m","<text>"]`, and
// the server's ping "2" is answered with the pong "3".

// sioPath is the request path of an Engine.IO v4 connection that starts as a WebSocket.
const sioPath = "/socket.io/?EIO=4&transport=websocket"

// sioEventHead starts every event of the bench protocol; the JSON string of its text follows.
const sioEventHead = `42["m",`

var sioPong = []byte("3")

// sioEvent wraps msg in an event of the bench protocol and returns where msg's first byte lands
// in it. msg[:patchable] must be bytes that JSON leaves as they are (a prefix and hex digits), so
// that the template can patch them in place.
func sioEvent(msg []byte, patchable int) (event []byte, at int) {
	var b bytes.Buffer
	enc := json.NewEncoder(&b)
	enc.SetEscapeHTML(false)
	enc.Encode(string(msg)) // a string always encodes
	quoted := bytes.TrimSuffix(b.Bytes(), []byte("\n"))
	if !bytes.Equal(quoted[1:1+patchable], msg[:patchable]) {
		panic(fmt.Sprintf("sioEvent: the patchable bytes %q change in JSON", msg[:patchable]))
	}
	event = append(append([]byte(sioEventHead), quoted...), ']')
	return event, len(sioEventHead) + 1
}

// template builds the frame of a bench protocol message for this connection (see newTemplate):
// a WebSocket text message, or a Socket.IO event on a Socket.IO connection.
func (c *wsConn) template(msg []byte, patchable int) *template {
	return protoTemplate(msg, patchable, c.key, c.deflate, c.sio)
}

// protoTemplate is template for a frame shared by connections (masked with key).
func protoTemplate(msg []byte, patchable int, key [4]byte, deflate, sio bool) *template {
	if !sio {
		return newTemplate(msg, patchable, key, deflate)
	}
	event, at := sioEvent(msg, patchable)
	t := newTemplate(event, 0, key, false)
	t.off += at
	t.phase += at
	return t
}

// sioJoin completes the Socket.IO handshake after the WebSocket upgrade: the open packet, then
// joining the main namespace.
func (c *wsConn) sioJoin(timeout time.Duration) error {
	c.nc.SetDeadline(time.Now().Add(timeout))
	defer c.nc.SetDeadline(time.Time{})
	p, err := c.nextMessage()
	if err != nil {
		return fmt.Errorf("waiting for the Engine.IO open packet: %w", err)
	}
	if len(p) == 0 || p[0] != '0' {
		return fmt.Errorf("the Engine.IO open packet is %q", p)
	}
	if err := c.write(maskedFrame(ws.OpText, false, []byte("40"), c.key)); err != nil {
		return err
	}
	for {
		p, err := c.nextMessage()
		if err != nil {
			return fmt.Errorf("waiting for the namespace to be joined: %w", err)
		}
		switch {
		case bytes.HasPrefix(p, []byte("40")):
			return nil
		case bytes.Equal(p, []byte("2")):
			if err := c.write(maskedFrame(ws.OpText, false, sioPong, c.key)); err != nil {
				return err
			}
		default:
			return fmt.Errorf("joining the namespace answered %q", p)
		}
	}
}

// nextEvent returns the text of the next bench protocol event, answering pings on the way. The
// slice is valid until the next call.
func (c *wsConn) nextEvent() ([]byte, error) {
	for {
		p, err := c.nextMessage()
		if err != nil {
			return nil, err
		}
		if bytes.Equal(p, []byte("2")) {
			if err := c.write(maskedFrame(ws.OpText, false, sioPong, c.key)); err != nil {
				return nil, err
			}
			continue
		}
		if bytes.HasPrefix(p, []byte("41")) {
			return nil, errServerClosed // the server left the namespace
		}
		return sioText(p)
	}
}

var errNotEvent = errors.New("not a bench protocol event")

// sioText returns the text of the event `42["m","<text>"]`: its JSON string unquoted, without a
// copy when it holds no escape.
func sioText(p []byte) ([]byte, error) {
	if !bytes.HasPrefix(p, []byte(sioEventHead+`"`)) || !bytes.HasSuffix(p, []byte(`"]`)) || len(p) < len(sioEventHead)+3 {
		return nil, fmt.Errorf("%w: %q", errNotEvent, p[:min(len(p), 64)])
	}
	quoted := p[len(sioEventHead) : len(p)-1]
	if bytes.IndexByte(quoted, '\\') < 0 {
		return quoted[1 : len(quoted)-1], nil
	}
	var s string
	if err := json.Unmarshal(quoted, &s); err != nil {
		return nil, fmt.Errorf("%w: %v", errNotEvent, err)
	}
	return []byte(s), nil
}
