// Package redistest runs real redis-server processes for Go tests: each test starts its own, on a
// Unix socket in its temporary directory or on a free loopback port, optionally with a password
// or TLS, and stops it by PID when it ends.
package redistest

import (
	"crypto/x509"
	"net/url"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"

	"github.com/wsbroker/wsbroker/internal/testprocess"
)

// Options chooses how the server listens and whom it lets in.
type Options struct {
	// TCP listens on a free 127.0.0.1 port instead of a Unix socket.
	TCP bool
	// TLS listens with TLS only, on a free 127.0.0.1 port, with a certificate signed by a CA
	// generated for this server (Server.CAs).
	TLS bool
	// Password is the server's requirepass; the URL carries it.
	Password string
}

// Server is one redis-server child process of a test.
type Server struct {
	// URL is what a client is given: unix://, redis:// or rediss://, with the password if any.
	URL string
	// CAs holds the CA that signed the server's certificate (TLS only).
	CAs *x509.CertPool

	process *testprocess.Process
	cli     []string // redis-cli's arguments that reach and log in to the server
}

// readyLine is what redis-server logs once it accepts connections: "Ready to accept connections"
// (TCP, TLS) or "The server is now ready to accept connections at …" (Unix socket).
const readyLine = "ready to accept connections"

// Start starts a redis-server for t and stops it at t's cleanup. Without the binary the test is
// skipped, or fails under CI=true, where the server is part of what is tested.
func Start(t testing.TB, opts Options) *Server {
	t.Helper()
	bin := testprocess.Binary(t, "redis-server")
	dir := t.TempDir()
	s := &Server{}
	args := []string{"--save", "", "--appendonly", "no", "--dir", dir, "--bind", "127.0.0.1"}
	var userinfo string
	if opts.Password != "" {
		args = append(args, "--requirepass", opts.Password)
		userinfo = url.UserPassword("", opts.Password).String() + "@"
		s.cli = append(s.cli, "-a", opts.Password, "--no-auth-warning")
	}
	switch {
	case opts.TLS:
		port := testprocess.FreePort(t)
		files, pool := testprocess.WriteCertificates(t, dir)
		s.CAs = pool
		args = append(args, "--port", "0", "--tls-port", port,
			"--tls-cert-file", files.Cert, "--tls-key-file", files.Key, "--tls-ca-cert-file", files.CA,
			"--tls-auth-clients", "no")
		s.URL = "rediss://" + userinfo + "127.0.0.1:" + port
		s.cli = append(s.cli, "-p", port, "--tls", "--cacert", files.CA)
	case opts.TCP:
		port := testprocess.FreePort(t)
		args = append(args, "--port", port)
		s.URL = "redis://" + userinfo + "127.0.0.1:" + port
		s.cli = append(s.cli, "-p", port)
	default:
		socket := filepath.Join(dir, "redis.sock")
		args = append(args, "--port", "0", "--unixsocket", socket, "--unixsocketperm", "700")
		s.URL = "unix://" + userinfo + socket
		s.cli = append(s.cli, "-s", socket)
	}
	s.process = testprocess.Start(t, bin, args, readyLine)
	return s
}

// CLI runs redis-cli against the server with args (a command and its arguments) and returns
// what it printed; an error reply fails t.
func (s *Server) CLI(t testing.TB, args ...string) string {
	t.Helper()
	cmd := exec.Command(testprocess.Binary(t, "redis-cli"), append(append([]string{"-e"}, s.cli...), args...)...)
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("redis-cli %s: %v: %s", strings.Join(args, " "), err, out)
	}
	return string(out)
}

// Kill ends the server with SIGKILL, as a crash would, and waits until it is gone.
func (s *Server) Kill() { s.process.Kill() }

// Restart starts the server again, on the same address, after Kill.
func (s *Server) Restart() { s.process.Restart() }

// Pause freezes the server (SIGSTOP): connections stay open and nothing answers.
func (s *Server) Pause() { s.process.Signal(syscall.SIGSTOP) }

// Resume undoes Pause (SIGCONT).
func (s *Server) Resume() { s.process.Signal(syscall.SIGCONT) }
