package wsproto

import (
	"errors"
	"fmt"
	"net/http"
	"slices"
	"strings"
)

// MaxRefusalBytes bounds what an application's refusal puts on the wire: the names and values of
// its headers and its body, together.
const MaxRefusalBytes = 64 << 10

// reservedHeaders are the response headers a refusal may not set, because the broker writes them
// itself (Content-Length from the body; Connection: close, as it closes the connection after the
// response) or because they would contradict a response that ends the connection after a body of
// that length (Transfer-Encoding, Keep-Alive, Upgrade: a refusal switches to nothing).
var reservedHeaders = []string{"content-length", "connection", "transfer-encoding", "keep-alive", "upgrade"}

// NewRefusal checks and builds the response with which an application refuses an upgrade: status
// from 400 to 599; headers each with an HTTP token as name, not a reserved one, and a value without
// control characters but tab (CR and LF would end the header); Content-Type at most once (without
// it the body is text/plain; charset=utf-8); body, whose default (empty, without Content-Type) is
// the status's reason phrase; names, values and body within MaxRefusalBytes. The error says which
// rule the refusal breaks.
func NewRefusal(status int, headers []Header, body []byte) (*HTTPError, error) {
	if status < 400 || status > 599 {
		return nil, fmt.Errorf("status %d is not from 400 to 599", status)
	}
	size := len(body)
	for _, h := range headers {
		size += len(h.Name) + len(h.Value)
	}
	if size > MaxRefusalBytes {
		return nil, fmt.Errorf("its headers and body take %d bytes, over %d", size, MaxRefusalBytes)
	}
	e := &HTTPError{Status: status, Body: string(body)}
	var extra strings.Builder
	for _, h := range headers {
		name := strings.ToLower(h.Name)
		switch {
		case h.Name == "" || !isToken([]byte(h.Name)):
			return nil, fmt.Errorf("header name %q is not an HTTP token", h.Name)
		case !validText([]byte(h.Value)):
			return nil, fmt.Errorf("the value of header %q holds a CR, LF or another control character", h.Name)
		case slices.Contains(reservedHeaders, name):
			return nil, fmt.Errorf("header %q is written by the server: a refusal may not set it", h.Name)
		case name == "content-type" && e.ContentType != "":
			return nil, errors.New("header Content-Type is set twice")
		case name == "content-type":
			e.ContentType = h.Value
		default:
			extra.WriteString(h.Name + ": " + h.Value + "\r\n")
		}
	}
	e.Extra = extra.String()
	if e.Body == "" && e.ContentType == "" {
		e.Body = http.StatusText(status)
	}
	return e, nil
}
