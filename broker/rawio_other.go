//go:build unix && !linux

package broker

import "syscall"

// recv reads from the socket fd into p with one read call; the error is a syscall.Errno.
func recv(fd uintptr, p []byte) (int, error) {
	for {
		n, err := syscall.Read(int(fd), p)
		if err == nil {
			return n, nil
		}
		if err != syscall.EINTR {
			return 0, err
		}
	}
}

// deferAccept: only Linux has TCP_DEFER_ACCEPT (rawio_linux.go).
func deferAccept(_, _ string, _ syscall.RawConn) error { return nil }
