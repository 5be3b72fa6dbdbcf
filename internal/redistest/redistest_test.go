package redistest

import (
	"bufio"
	"crypto/tls"
	"net"
	"net/url"
	"strings"
	"testing"
	"time"
)

// command sends one inline command to the server at s.URL and returns its reply line.
func command(t *testing.T, s *Server, line string) (string, error) {
	t.Helper()
	u, err := url.Parse(s.URL)
	if err != nil {
		t.Fatal(err)
	}
	var conn net.Conn
	switch u.Scheme {
	case "unix":
		conn, err = net.Dial("unix", u.Path)
	case "redis":
		conn, err = net.Dial("tcp", u.Host)
	case "rediss":
		conn, err = tls.Dial("tcp", u.Host, &tls.Config{RootCAs: s.CAs})
	default:
		t.Fatalf("unexpected URL %s", s.URL)
	}
	if err != nil {
		return "", err
	}
	defer conn.Close()
	if err := conn.SetDeadline(time.Now().Add(5 * time.Second)); err != nil {
		t.Fatal(err)
	}
	if _, err := conn.Write([]byte(line + "\r\n")); err != nil {
		return "", err
	}
	reply, err := bufio.NewReader(conn).ReadString('\n')
	return strings.TrimSpace(reply), err
}

func expectReply(t *testing.T, s *Server, line, want string) {
	t.Helper()
	got, err := command(t, s, line)
	if err != nil || got != want {
		t.Fatalf("%s to %s: got %q, %v; want %q", line, s.URL, got, err, want)
	}
}

func TestListeners(t *testing.T) {
	for _, tc := range []struct {
		name   string
		opts   Options
		scheme string
	}{
		{"unix", Options{}, "unix://"},
		{"tcp", Options{TCP: true}, "redis://127.0.0.1:"},
		{"tls", Options{TLS: true}, "rediss://127.0.0.1:"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s := Start(t, tc.opts)
			if !strings.HasPrefix(s.URL, tc.scheme) {
				t.Fatalf("URL %q does not start with %q", s.URL, tc.scheme)
			}
			if (s.CAs != nil) != tc.opts.TLS {
				t.Fatalf("CAs %v with TLS %v", s.CAs, tc.opts.TLS)
			}
			expectReply(t, s, "PING", "+PONG")
		})
	}
}

func TestPassword(t *testing.T) {
	s := Start(t, Options{TCP: true, Password: "se cret"})
	if !strings.Contains(s.URL, ":se%20cret@") {
		t.Fatalf("URL %q does not carry the escaped password", s.URL)
	}
	expectReply(t, s, "PING", "-NOAUTH Authentication required.")
	expectReply(t, s, `AUTH "se cret"`, "+OK")
}

func TestKillRestart(t *testing.T) {
	s := Start(t, Options{})
	s.Kill()
	if reply, err := command(t, s, "PING"); err == nil {
		t.Fatalf("PING after Kill answered %q", reply)
	}
	s.Restart()
	expectReply(t, s, "PING", "+PONG")
}

func TestPauseResume(t *testing.T) {
	s := Start(t, Options{})
	s.Pause()
	u, _ := url.Parse(s.URL)
	conn, err := net.Dial("unix", u.Path)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	if _, err := conn.Write([]byte("PING\r\n")); err != nil {
		t.Fatal(err)
	}
	if err := conn.SetReadDeadline(time.Now().Add(200 * time.Millisecond)); err != nil {
		t.Fatal(err)
	}
	r := bufio.NewReader(conn)
	if reply, err := r.ReadString('\n'); err == nil {
		t.Fatalf("a paused server answered %q", reply)
	}
	s.Resume()
	if err := conn.SetReadDeadline(time.Now().Add(5 * time.Second)); err != nil {
		t.Fatal(err)
	}
	if reply, err := r.ReadString('\n'); err != nil || strings.TrimSpace(reply) != "+PONG" {
		t.Fatalf("after Resume: %q, %v", reply, err)
	}
}
