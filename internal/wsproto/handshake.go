package wsproto

import (
	"bytes"
	"cmp"
	"crypto/sha1"
	"encoding/base64"
	"net/http"
	"strconv"
	"strings"
)

// This file parses the HTTP/1.1 upgrade request and builds the responses. ws.Upgrader is not
// used because its header callback hides the headers it handles itself, and the embedder must see
// every header.

const wsGUID = "258EAFA5-E914-47DA-95CA-C5AB0DC85B11"

// EndOfHead ends a request head: the blank line after the header lines.
const EndOfHead = "\r\n\r\n"

var crlfcrlf = []byte(EndOfHead)

// Header is one header: in a request, its name lower-cased, and its value (repeated headers
// joined in the order received: with "; " for Cookie, as RFC 6265 section 5.4 writes one, else
// with ", ").
type Header struct {
	Name, Value string
}

// UpgradeRequest is a valid upgrade request.
type UpgradeRequest struct {
	URL     string   // the request target as sent
	Headers []Header // every header once
	Accept  string   // the Sec-WebSocket-Accept value
}

// HTTPError is the response to a request that is refused.
type HTTPError struct {
	Status      int
	Extra       string // additional header lines, each ending in \r\n
	ContentType string // the body's; "": text/plain; charset=utf-8
	Body        string
}

// The refusals of ParseUpgrade.

var (
	ErrBadRequest   = &HTTPError{Status: 400, Body: "Bad Request"}
	ErrMethod       = &HTTPError{Status: 405, Extra: "Allow: GET\r\n", Body: "Method Not Allowed"}
	ErrNotUpgrade   = &HTTPError{Status: 426, Extra: "Upgrade: websocket\r\nSec-WebSocket-Version: 13\r\n", Body: "Upgrade Required: this is a WebSocket server"}
	ErrVersion      = &HTTPError{Status: 426, Extra: "Sec-WebSocket-Version: 13\r\n", Body: "Unsupported WebSocket version"}
	ErrBadKey       = &HTTPError{Status: 400, Body: "Bad Request: invalid Sec-WebSocket-Key"}
	ErrNoConnection = &HTTPError{Status: 400, Body: "Bad Request: Connection header must contain upgrade"}
	ErrTooLarge     = &HTTPError{Status: 431, Body: "Request Header Fields Too Large"}
)

// Response renders e as a complete HTTP/1.1 response that closes the connection.
func (e *HTTPError) Response() []byte {
	var b bytes.Buffer
	b.WriteString("HTTP/1.1 ")
	b.WriteString(strconv.Itoa(e.Status))
	b.WriteByte(' ')
	b.WriteString(http.StatusText(e.Status)) // "" for a status without one, which HTTP allows
	b.WriteString("\r\nConnection: close\r\nContent-Type: ")
	b.WriteString(cmp.Or(e.ContentType, "text/plain; charset=utf-8"))
	b.WriteString("\r\nContent-Length: ")
	b.WriteString(strconv.Itoa(len(e.Body)))
	b.WriteString("\r\n")
	b.WriteString(e.Extra)
	b.WriteString("\r\n")
	b.WriteString(e.Body)
	return b.Bytes()
}

// SwitchingResponse is the 101 response for a Sec-WebSocket-Accept value, with the chosen
// subprotocol and extensions ("": none).
func SwitchingResponse(accept, protocol, extensions string) []byte {
	head := "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Accept: " + accept + "\r\n"
	if protocol != "" {
		head += "Sec-WebSocket-Protocol: " + protocol + "\r\n"
	}
	if extensions != "" {
		head += "Sec-WebSocket-Extensions: " + extensions + "\r\n"
	}
	return []byte(head + "\r\n")
}

// ChooseProtocol returns the first subprotocol the client offers (Sec-WebSocket-Protocol, a
// comma-separated list) that is in supported, or "" if none is.
func ChooseProtocol(headers []Header, supported []string) string {
	if len(supported) == 0 {
		return ""
	}
	for _, h := range headers {
		if h.Name != "sec-websocket-protocol" {
			continue
		}
		for _, offered := range strings.Split(h.Value, ",") {
			offered = strings.TrimSpace(offered)
			for _, p := range supported {
				if offered == p {
					return p
				}
			}
		}
	}
	return ""
}

// acceptKey computes Sec-WebSocket-Accept for a Sec-WebSocket-Key.
func acceptKey(key string) string {
	h := sha1.New()
	h.Write([]byte(key))
	h.Write([]byte(wsGUID))
	return base64.StdEncoding.EncodeToString(h.Sum(nil))
}

// HeadEnd returns the index of the blank line ending the request head in buf, or -1. from is
// where the new bytes start (the search backs up 3 bytes to find a terminator split by reads).
func HeadEnd(buf []byte, from int) int {
	from = max(from-3, 0)
	if i := bytes.Index(buf[from:], crlfcrlf); i >= 0 {
		return from + i
	}
	return -1
}

// ParseUpgrade parses a request head (request line and header lines separated by CRLF, without
// the final blank line) of at most maxHead bytes and checks it is a WebSocket upgrade.
func ParseUpgrade(head []byte, maxHead int) (*UpgradeRequest, *HTTPError) {
	if len(head) > maxHead {
		return nil, ErrTooLarge
	}
	line, rest, _ := bytes.Cut(head, []byte("\r\n"))
	method, line, ok1 := bytes.Cut(line, []byte(" "))
	target, version, ok2 := bytes.Cut(line, []byte(" "))
	if !ok1 || !ok2 || len(method) == 0 || len(target) == 0 || !isToken(method) || !validText(target) ||
		bytes.IndexByte(target, ' ') >= 0 {
		return nil, ErrBadRequest
	}
	if string(version) != "HTTP/1.1" {
		return nil, ErrBadRequest
	}

	var headers []Header
	var index map[string]int // name -> position in headers, once there are many
	for len(rest) > 0 {
		line, rest, _ = bytes.Cut(rest, []byte("\r\n"))
		name, value, ok := bytes.Cut(line, []byte(":"))
		if !ok || len(name) == 0 || !isToken(name) {
			// Also rejects obsolete line folding (a line starting with a space).
			return nil, ErrBadRequest
		}
		value = bytes.Trim(value, " \t")
		if !validText(value) {
			return nil, ErrBadRequest
		}
		n := strings.ToLower(string(name))
		i := -1
		if index != nil {
			if j, ok := index[n]; ok {
				i = j
			}
		} else {
			for j := range headers {
				if headers[j].Name == n {
					i = j
					break
				}
			}
		}
		if i >= 0 {
			headers[i].Value += joiner(n) + string(value)
			continue
		}
		headers = append(headers, Header{Name: n, Value: string(value)})
		if index != nil {
			index[n] = len(headers) - 1
		} else if len(headers) > 16 {
			index = make(map[string]int, 32)
			for j, h := range headers {
				index[h.Name] = j
			}
		}
	}

	if string(method) != "GET" {
		return nil, ErrMethod
	}
	var upgrade, connection, version13, key string
	var haveVersion bool
	for _, h := range headers {
		switch h.Name {
		case "upgrade":
			upgrade = h.Value
		case "connection":
			connection = h.Value
		case "sec-websocket-version":
			version13, haveVersion = h.Value, true
		case "sec-websocket-key":
			key = h.Value
		}
	}
	if !hasToken(upgrade, "websocket") {
		return nil, ErrNotUpgrade
	}
	if !hasToken(connection, "upgrade") {
		return nil, ErrNoConnection
	}
	if !haveVersion || version13 != "13" {
		return nil, ErrVersion
	}
	if k, err := base64.StdEncoding.DecodeString(key); err != nil || len(k) != 16 {
		return nil, ErrBadKey
	}
	return &UpgradeRequest{URL: string(target), Headers: headers, Accept: acceptKey(key)}, nil
}

// joiner is what separates the values of a repeated request header named name.
func joiner(name string) string {
	if name == "cookie" {
		return "; "
	}
	return ", "
}

// hasToken reports whether the comma-separated list contains token (case-insensitive).
func hasToken(list, token string) bool {
	for list != "" {
		var t string
		t, list, _ = strings.Cut(list, ",")
		if strings.EqualFold(strings.Trim(t, " \t"), token) {
			return true
		}
	}
	return false
}

// isToken reports whether b is an HTTP token (RFC 9110 5.6.2).
func isToken(b []byte) bool {
	for _, c := range b {
		if c < '!' || c > '~' {
			return false
		}
		switch c {
		case '"', '(', ')', ',', '/', ':', ';', '<', '=', '>', '?', '@', '[', '\\', ']', '{', '}':
			return false
		}
	}
	return true
}

// validText reports whether b holds no control characters other than tab.
func validText(b []byte) bool {
	for _, c := range b {
		if (c < ' ' && c != '\t') || c == 0x7f {
			return false
		}
	}
	return true
}
