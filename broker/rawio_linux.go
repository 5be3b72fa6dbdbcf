//go:build linux

package broker

import (
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
