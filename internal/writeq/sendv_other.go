//go:build unix && !linux

package writeq

import (
	"syscall"
	"unsafe"
)

// sendv writes iov to the socket fd with one writev call.
func sendv(fd uintptr, iov []syscall.Iovec) (int, syscall.Errno) {
	for {
		n, _, e := syscall.Syscall(syscall.SYS_WRITEV, fd, uintptr(unsafe.Pointer(&iov[0])), uintptr(len(iov)))
		if e == syscall.EINTR {
			continue
		}
		if e != 0 {
			return 0, e
		}
		return int(n), 0
	}
}
