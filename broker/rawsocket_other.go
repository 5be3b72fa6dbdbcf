//go:build !linux

package broker

import (
	"errors"
	"net"
	"syscall"
)

// rawSocket: see rawsocket_linux.go; without epoll no connection is polled, so none is made here.
type rawSocket struct {
	tcpSocket
	syscall.RawConn
}

func detachSocket(*Conn, *net.TCPConn, syscall.RawConn) (*rawSocket, error) {
	return nil, errors.ErrUnsupported
}

func (*rawSocket) writable() {}
