//go:build linux

package writeq

import (
	"syscall"
	"unsafe"
)

// sendv writes iov to the socket fd with one sendmsg call. It is a raw system call: the socket is
// non-blocking, so the call never waits, and a scheduler told of it would hand the P to another
// thread when a send to a loopback peer (which delivers to it in the same call) runs long.
// sendmsg is writev plus flags: MSG_NOSIGNAL makes a write to a reset connection return EPIPE
// instead of raising SIGPIPE, which in a c-shared library loaded by node could kill the process.
func sendv(fd uintptr, iov []syscall.Iovec) (int, syscall.Errno) {
	var msg syscall.Msghdr
	msg.Iov = &iov[0]
	setLen(&msg.Iovlen, len(iov))
	for {
		n, _, e := syscall.RawSyscall(syscall.SYS_SENDMSG, fd, uintptr(unsafe.Pointer(&msg)), syscall.MSG_NOSIGNAL)
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
