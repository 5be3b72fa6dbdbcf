//go:build linux

package broker

import (
	"os"
	"syscall"
	"unsafe"
)

// The socket calls here (and internal/writeq's sendv) are raw system calls (RawSyscall: the
// scheduler is not told). A socket is non-blocking, so a call never waits; told of a system call,
// the runtime lets sysmon hand the P to another thread when one runs long (a send to a loopback
// peer delivers to it in the same call), and sysmon, finding such work, keeps waking and, on one
// core, preempting the thread doing the work (BENCHMARKS.md, "Design decisions").

// recv reads from the socket fd into p with one recvfrom call; the error is a syscall.Errno.
func recv(fd uintptr, p []byte) (int, error) {
	for {
		n, _, e := syscall.RawSyscall6(syscall.SYS_RECVFROM, fd, uintptr(unsafe.Pointer(&p[0])), uintptr(len(p)), 0, 0, 0)
		if e == syscall.EINTR {
			continue
		}
		if e != 0 {
			return 0, e
		}
		return int(n), nil
	}
}

// deferAcceptSeconds: how long the kernel holds a connection whose peer has sent nothing yet.
const deferAcceptSeconds = 1

// deferAccept (a listener's Control) has the kernel hand over a connection only once its first
// bytes are in: the handshake's first read finds the upgrade request (or TLS hello) instead of
// waiting for it: one read and one wait on the netpoller fewer per connection (connects per
// server CPU-second +2-5%). A peer that sends nothing is handed over after about
// deferAcceptSeconds all the same, and HandshakeTimeout runs from then.
func deferAccept(_, _ string, rc syscall.RawConn) error {
	var err error
	if cerr := rc.Control(func(fd uintptr) {
		err = syscall.SetsockoptInt(int(fd), syscall.IPPROTO_TCP, syscall.TCP_DEFER_ACCEPT, deferAcceptSeconds)
	}); cerr != nil {
		return cerr
	}
	return os.NewSyscallError("setsockopt", err)
}
