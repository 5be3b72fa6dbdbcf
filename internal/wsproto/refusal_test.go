package wsproto

import (
	"bufio"
	"bytes"
	"io"
	"net/http"
	"strings"
	"testing"
)

func TestNewRefusal(t *testing.T) {
	cases := []struct {
		status  int
		headers []Header
		body    string
		want    string // the response, or the error's start
	}{
		{401, []Header{{Name: "WWW-Authenticate", Value: `Bearer realm="chat"`}}, "Log in first",
			"HTTP/1.1 401 Unauthorized\r\nConnection: close\r\nContent-Type: text/plain; charset=utf-8\r\nContent-Length: 12\r\nWWW-Authenticate: Bearer realm=\"chat\"\r\n\r\nLog in first"},
		{429, []Header{{Name: "Retry-After", Value: "30"}}, "",
			"HTTP/1.1 429 Too Many Requests\r\nConnection: close\r\nContent-Type: text/plain; charset=utf-8\r\nContent-Length: 17\r\nRetry-After: 30\r\n\r\nToo Many Requests"},
		{599, []Header{{Name: "content-type", Value: "application/json"}, {Name: "Set-Cookie", Value: "a=1"}, {Name: "Set-Cookie", Value: "b=2"}}, "",
			"HTTP/1.1 599 \r\nConnection: close\r\nContent-Type: application/json\r\nContent-Length: 0\r\nSet-Cookie: a=1\r\nSet-Cookie: b=2\r\n\r\n"},
		{400, []Header{{Name: "X-Latin", Value: "caf\xe9\tok"}}, "\x00\xff",
			"HTTP/1.1 400 Bad Request\r\nConnection: close\r\nContent-Type: text/plain; charset=utf-8\r\nContent-Length: 2\r\nX-Latin: caf\xe9\tok\r\n\r\n\x00\xff"},
		{399, nil, "", "status 399 is not from 400 to 599"},
		{600, nil, "", "status 600 is not from 400 to 599"},
		{101, nil, "", "status 101 is not from 400 to 599"},
		{401, []Header{{Name: "X-A", Value: "1\r\nSet-Cookie: evil=1"}}, "", `the value of header "X-A" holds a CR, LF`},
		{401, []Header{{Name: "X-A", Value: "1\n"}}, "", `the value of header "X-A" holds a CR, LF`},
		{401, []Header{{Name: "X-A", Value: "\x00"}}, "", `the value of header "X-A" holds a CR, LF`},
		{401, []Header{{Name: "X-A", Value: "\x7f"}}, "", `the value of header "X-A" holds a CR, LF`},
		{401, []Header{{Name: "X A", Value: "1"}}, "", `header name "X A" is not an HTTP token`},
		{401, []Header{{Name: "X-A\r\n", Value: "1"}}, "", `header name "X-A\r\n" is not an HTTP token`},
		{401, []Header{{Name: "", Value: "1"}}, "", `header name "" is not an HTTP token`},
		{401, []Header{{Name: "Content-Length", Value: "1"}}, "", `header "Content-Length" is written by the server`},
		{401, []Header{{Name: "CONNECTION", Value: "keep-alive"}}, "", `header "CONNECTION" is written by the server`},
		{401, []Header{{Name: "Upgrade", Value: "websocket"}}, "", `header "Upgrade" is written by the server`},
		{401, []Header{{Name: "Transfer-Encoding", Value: "chunked"}}, "", `header "Transfer-Encoding" is written by the server`},
		{401, []Header{{Name: "Content-Type", Value: "a/b"}, {Name: "content-type", Value: "c/d"}}, "", "header Content-Type is set twice"},
		{401, []Header{{Name: "X-A", Value: strings.Repeat("v", MaxRefusalBytes-2)}}, "", "its headers and body take 65537 bytes, over 65536"},
		{401, nil, strings.Repeat("b", MaxRefusalBytes+1), "its headers and body take 65537 bytes, over 65536"},
	}
	for _, c := range cases {
		e, err := NewRefusal(c.status, c.headers, []byte(c.body))
		got := ""
		if err != nil {
			got = err.Error()
		} else {
			got = string(e.Response())
		}
		if !strings.HasPrefix(got, c.want) || (err == nil) != strings.HasPrefix(c.want, "HTTP/1.1") {
			t.Errorf("%d, %d headers, a body of %d bytes:\ngot  %.300q\nwant %q", c.status, len(c.headers), len(c.body), got, c.want)
		}
	}
	// At the limit exactly: taken.
	if _, err := NewRefusal(401, []Header{{Name: "X-A", Value: strings.Repeat("v", MaxRefusalBytes-4)}}, []byte("b")); err != nil {
		t.Fatal(err)
	}
}

// FuzzRefusal: a refusal is either an error or a response that an HTTP client reads back as it
// was given (no header can smuggle another, and the body is exactly the one given).
func FuzzRefusal(f *testing.F) {
	f.Add(401, "WWW-Authenticate", "Bearer", "body")
	f.Add(429, "Retry-After", "1\r\nX-Injected: 1", "")
	f.Add(500, "X:A", "v", "\r\n\r\nHTTP/1.1 200 OK")
	f.Fuzz(func(t *testing.T, status int, name, value, body string) {
		e, err := NewRefusal(status, []Header{{Name: name, Value: value}}, []byte(body))
		if err != nil {
			return
		}
		resp, err := http.ReadResponse(bufio.NewReader(bytes.NewReader(e.Response())), nil)
		if err != nil {
			t.Fatalf("unreadable response %q: %v", e.Response(), err)
		}
		got, _ := io.ReadAll(resp.Body)
		if resp.StatusCode != status || !resp.Close || len(resp.Header) > 3 || string(got) != e.Body {
			t.Fatalf("response %q read back as %d %v %q", e.Response(), resp.StatusCode, resp.Header, got)
		}
		if body != "" && string(got) != body {
			t.Fatalf("body %q read back as %q", body, got)
		}
	})
}
