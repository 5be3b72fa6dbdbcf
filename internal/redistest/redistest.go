// Package redistest runs real redis-server processes for Go tests: each test starts its own, on a
// Unix socket in its temporary directory or on a free loopback port, optionally with a password
// or TLS, and stops it by PID when it ends.
package redistest

import (
	"bufio"
	"crypto/x509"
	"fmt"
	"io"
	"net"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
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

	t    testing.TB
	bin  string
	args []string
	cmd  *exec.Cmd
	exit chan struct{} // closed once cmd has been waited for
	log  *tail
}

// readyLine is what redis-server logs once it accepts connections, in lower case: "Ready to accept
// connections" (TCP, TLS) or "The server is now ready to accept connections at …" (Unix socket).
const readyLine = "ready to accept connections"

// Start starts a redis-server for t and stops it at t's cleanup. Without the binary the test is
// skipped, or fails under CI=true, where the server is part of what is tested.
func Start(t testing.TB, opts Options) *Server {
	t.Helper()
	bin, err := exec.LookPath("redis-server")
	if err != nil {
		if os.Getenv("CI") == "true" {
			t.Fatalf("redis-server is not installed (make system-deps installs it): %v", err)
		}
		t.Skipf("redis-server is not installed (make system-deps installs it): %v", err)
	}
	dir := t.TempDir()
	s := &Server{t: t, bin: bin}
	s.args = []string{"--save", "", "--appendonly", "no", "--dir", dir, "--bind", "127.0.0.1"}
	var userinfo string
	if opts.Password != "" {
		s.args = append(s.args, "--requirepass", opts.Password)
		userinfo = url.UserPassword("", opts.Password).String() + "@"
	}
	switch {
	case opts.TLS:
		port := freePort(t)
		files, pool := writeCertificates(t, dir)
		s.CAs = pool
		s.args = append(s.args, "--port", "0", "--tls-port", port,
			"--tls-cert-file", files.cert, "--tls-key-file", files.key, "--tls-ca-cert-file", files.ca,
			"--tls-auth-clients", "no")
		s.URL = "rediss://" + userinfo + "127.0.0.1:" + port
	case opts.TCP:
		port := freePort(t)
		s.args = append(s.args, "--port", port)
		s.URL = "redis://" + userinfo + "127.0.0.1:" + port
	default:
		socket := filepath.Join(dir, "redis.sock")
		s.args = append(s.args, "--port", "0", "--unixsocket", socket, "--unixsocketperm", "700")
		s.URL = "unix://" + userinfo + socket
	}
	s.start()
	t.Cleanup(s.stop)
	return s
}

// Kill ends the server with SIGKILL, as a crash would, and waits until it is gone.
func (s *Server) Kill() {
	s.t.Helper()
	s.signal(syscall.SIGKILL)
	<-s.exit
}

// Restart starts the server again, on the same address, after Kill.
func (s *Server) Restart() {
	s.t.Helper()
	select {
	case <-s.exit:
	default:
		s.t.Fatal("redistest: Restart of a server that still runs")
	}
	s.start()
}

// Pause freezes the server (SIGSTOP): connections stay open and nothing answers.
func (s *Server) Pause() { s.signal(syscall.SIGSTOP) }

// Resume undoes Pause (SIGCONT).
func (s *Server) Resume() { s.signal(syscall.SIGCONT) }

func (s *Server) signal(sig syscall.Signal) {
	s.t.Helper()
	if err := syscall.Kill(s.cmd.Process.Pid, sig); err != nil {
		s.t.Fatalf("redistest: %v to redis-server (pid %d): %v", sig, s.cmd.Process.Pid, err)
	}
}

// start runs the process and returns once it has logged that it accepts connections.
func (s *Server) start() {
	s.t.Helper()
	cmd := exec.Command(s.bin, s.args...)
	cmd.SysProcAttr = childAttributes()
	// A pipe of our own rather than StdoutPipe, so that Wait does not close it before the log is read.
	r, w, err := os.Pipe()
	if err != nil {
		s.t.Fatal(err)
	}
	cmd.Stdout, cmd.Stderr = w, w
	err = cmd.Start()
	w.Close()
	if err != nil {
		r.Close()
		s.t.Fatalf("redistest: starting redis-server: %v", err)
	}
	s.cmd, s.exit, s.log = cmd, make(chan struct{}), &tail{}
	ready, logEnd := make(chan struct{}), make(chan struct{})
	go func() {
		s.log.read(r, ready)
		r.Close()
		close(logEnd)
	}()
	go func(exit chan struct{}) {
		_ = cmd.Wait() // its status is of no interest: tests kill it
		close(exit)
	}(s.exit)
	select {
	case <-ready:
	case <-logEnd:
		<-s.exit
		s.t.Fatalf("redistest: redis-server %s exited before accepting connections:\n%s",
			strings.Join(s.args, " "), s.log.String())
	}
}

// stop kills the process if it still runs: the test is over, nothing of it need be kept.
func (s *Server) stop() {
	select {
	case <-s.exit:
		return
	default:
	}
	_ = syscall.Kill(s.cmd.Process.Pid, syscall.SIGKILL) // a paused server dies of it too
	<-s.exit
}

// freePort returns a loopback port that was free a moment ago.
func freePort(t testing.TB) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return strconv.Itoa(l.Addr().(*net.TCPAddr).Port)
}

// tail keeps the last lines a server printed, for the message of a failed start.
type tail struct {
	mu    sync.Mutex
	lines []string
}

const tailLines = 30

// read consumes out until it closes and closes ready at the first line that says the server
// accepts connections.
func (l *tail) read(out io.Reader, ready chan<- struct{}) {
	sc := bufio.NewScanner(out)
	signalled := false
	for sc.Scan() {
		line := sc.Text()
		l.mu.Lock()
		l.lines = append(l.lines, line)
		if len(l.lines) > tailLines {
			l.lines = l.lines[1:]
		}
		l.mu.Unlock()
		if !signalled && strings.Contains(strings.ToLower(line), readyLine) {
			close(ready)
			signalled = true
		}
	}
}

func (l *tail) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return fmt.Sprintln(strings.Join(l.lines, "\n"))
}
