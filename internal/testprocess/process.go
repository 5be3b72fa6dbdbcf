// Package testprocess runs the server processes of Go tests (redis-server, nats-server): it finds
// the binary under the CI rule, picks free loopback ports, generates TLS certificates, starts a
// child process and waits until it logs that it is ready, and kills it by PID when the test ends.
package testprocess

import (
	"bufio"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
)

// Binary returns the path of the server binary name. Without it the test is skipped, or fails
// under CI=true, where the server is part of what is tested.
func Binary(t testing.TB, name string) string {
	t.Helper()
	bin, err := exec.LookPath(name)
	if err != nil {
		if os.Getenv("CI") == "true" {
			t.Fatalf("%s is not installed (make system-deps installs it): %v", name, err)
		}
		t.Skipf("%s is not installed (make system-deps installs it): %v", name, err)
	}
	return bin
}

// FreePort returns a loopback port that was free a moment ago.
func FreePort(t testing.TB) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return strconv.Itoa(l.Addr().(*net.TCPAddr).Port)
}

// Process is one server child process of a test, which can be killed and started again with the
// same arguments.
type Process struct {
	t         testing.TB
	bin       string
	args      []string
	readyLine string
	cmd       *exec.Cmd
	exit      chan struct{} // closed once cmd has been waited for
	log       *tail
}

// Start runs bin with args, returns once the process has printed a line containing readyLine
// (compared in lower case), and kills it at t's cleanup.
func Start(t testing.TB, bin string, args []string, readyLine string) *Process {
	t.Helper()
	p := &Process{t: t, bin: bin, args: args, readyLine: strings.ToLower(readyLine)}
	p.start()
	t.Cleanup(p.stop)
	return p
}

// Pid is the process's id.
func (p *Process) Pid() int { return p.cmd.Process.Pid }

// Kill ends the process with SIGKILL, as a crash would, and waits until it is gone.
func (p *Process) Kill() {
	p.t.Helper()
	p.Signal(syscall.SIGKILL)
	<-p.exit
}

// Restart starts the process again, with the same arguments, after Kill.
func (p *Process) Restart() {
	p.t.Helper()
	select {
	case <-p.exit:
	default:
		p.t.Fatalf("testprocess: Restart of %s, which still runs", p.bin)
	}
	p.start()
}

// Signal sends sig to the process.
func (p *Process) Signal(sig syscall.Signal) {
	p.t.Helper()
	if err := syscall.Kill(p.cmd.Process.Pid, sig); err != nil {
		p.t.Fatalf("testprocess: %v to %s (pid %d): %v", sig, p.bin, p.cmd.Process.Pid, err)
	}
}

// start runs the process and returns once it has printed its ready line.
func (p *Process) start() {
	p.t.Helper()
	cmd := exec.Command(p.bin, p.args...)
	cmd.SysProcAttr = childAttributes()
	// A pipe of our own rather than StdoutPipe, so that Wait does not close it before the log is read.
	r, w, err := os.Pipe()
	if err != nil {
		p.t.Fatal(err)
	}
	cmd.Stdout, cmd.Stderr = w, w
	err = cmd.Start()
	w.Close()
	if err != nil {
		r.Close()
		p.t.Fatalf("testprocess: starting %s: %v", p.bin, err)
	}
	p.cmd, p.exit, p.log = cmd, make(chan struct{}), &tail{}
	ready, logEnd := make(chan struct{}), make(chan struct{})
	go func() {
		p.log.read(r, p.readyLine, ready)
		r.Close()
		close(logEnd)
	}()
	go func(exit chan struct{}) {
		_ = cmd.Wait() // its status is of no interest: tests kill it
		close(exit)
	}(p.exit)
	select {
	case <-ready:
	case <-logEnd:
		<-p.exit
		p.t.Fatalf("testprocess: %s %s exited before it was ready:\n%s",
			p.bin, strings.Join(p.args, " "), p.log.String())
	}
}

// stop kills the process if it still runs: the test is over, nothing of it need be kept.
func (p *Process) stop() {
	select {
	case <-p.exit:
		return
	default:
	}
	_ = syscall.Kill(p.cmd.Process.Pid, syscall.SIGKILL) // a stopped (SIGSTOP) process dies of it too
	<-p.exit
}

// tail keeps the last lines a process printed, for the message of a failed start.
type tail struct {
	mu    sync.Mutex
	lines []string
}

const tailLines = 30

// read consumes out until it closes and closes ready at the first line that contains readyLine
// in lower case.
func (l *tail) read(out io.Reader, readyLine string, ready chan<- struct{}) {
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
