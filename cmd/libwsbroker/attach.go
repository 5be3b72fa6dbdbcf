package main

import (
	"errors"
	"fmt"
	"net"
	"os"

	"golang.org/x/sys/unix"
)

// adopt hands the TCP connection of fd, a socket of the JS thread's (which closes it once this
// returns), over to the Attachment of server id with pre, the bytes already read from it. The
// connection is a duplicate of fd: the socket stays open in Go when JS closes its descriptor.
func adopt(id uint32, fd int, pre []byte) error {
	servers.Lock()
	a := servers.byID[id].attachment
	servers.Unlock()
	if a == nil {
		return errors.New("the server is no longer attached")
	}
	tc, err := tcpConnOf(fd)
	if err != nil {
		return err
	}
	return a.Adopt(tc, pre)
}

// tcpConnOf returns a *net.TCPConn on a duplicate of fd (close-on-exec, non-blocking, in Go's
// netpoller); fd stays its owner's.
func tcpConnOf(fd int) (*net.TCPConn, error) {
	dup, err := unix.FcntlInt(uintptr(fd), unix.F_DUPFD_CLOEXEC, 0)
	if err != nil {
		return nil, fmt.Errorf("cannot take the connection's socket over: %w", os.NewSyscallError("fcntl", err))
	}
	f := os.NewFile(uintptr(dup), "attached connection")
	defer f.Close() // FileConn has a descriptor of its own
	nc, err := net.FileConn(f)
	if err != nil {
		return nil, fmt.Errorf("cannot take the connection's socket over: %w", err)
	}
	tc, ok := nc.(*net.TCPConn)
	if !ok {
		nc.Close()
		return nil, fmt.Errorf("cannot take the connection over: it is not a TCP connection but %s", nc.LocalAddr().Network())
	}
	return tc, nil
}
