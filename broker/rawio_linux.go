//go:build linux

package broker

import (
	"os"
	"syscall"
	"unsafe"
)

// sendv writes iov to the socket fd with one sendmsg call. sendmsg is writev plus flags:
// MSG_NOSIGNAL makes a write to a reset connection return EPIPE instead of raising SIGPIPE, which
// in a c-shared library loaded by node could kill the process.
func sendv(fd uintptr, iov []syscall.Iovec) (int, syscall.Errno) {
	var msg syscall.Msghdr
	msg.Iov = &iov[0]
	setLen(&msg.Iovlen, len(iov))
	for {
		n, _, e := syscall.Syscall(syscall.SYS_SENDMSG, fd, uintptr(unsafe.Pointer(&msg)), syscall.MSG_NOSIGNAL)
		if e == syscall.EINTR {
			continue
		}
		if e != 0 {
			return 0, e
		}
		return int(n), 0
	}
}

// setLen stores n in a length field whose width depends on the architecture.
func setLen[T uint32 | uint64](p *T, n int) { *p = T(n) }

// deferAcceptSeconds: how long the kernel holds a connection whose peer has sent nothing yet.
const deferAcceptSeconds = 1

// deferAccept (a listener's Control) has the kernel hand over a connection only once its first
// bytes are in: the handshake's first read finds the upgrade request (or TLS hello) instead of
// waiting for it. In a connect storm that is about 5% of the server's CPU per connection (one read
// and one wait on the netpoller fewer). A peer that sends nothing is handed over after about
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
