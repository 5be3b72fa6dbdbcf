package main

import (
	"errors"
	"fmt"
	"net"
	"os"
	"sync"
	"syscall"

	"github.com/wsbroker/wsbroker/broker"
)

// attachments are the Attachments of the start() calls given a server, by the id listen returned,
// until stop.
var attachments struct {
	sync.Mutex
	next uint32
	byID map[uint32]*broker.Attachment
}

// attach makes an Attachment with lim for the server name stands for, and returns it with its id.
func attach(name string, lim broker.Limits) (*broker.Attachment, uint32, error) {
	a, err := brk.Attach(name, lim)
	if err != nil {
		return nil, 0, err
	}
	attachments.Lock()
	defer attachments.Unlock()
	if attachments.byID == nil {
		attachments.byID = make(map[uint32]*broker.Attachment)
	}
	attachments.next++
	attachments.byID[attachments.next] = a
	return a, attachments.next, nil
}

// detach forgets Attachment id (0: none); its Listeners' Close closes it.
func detach(id uint32) {
	attachments.Lock()
	delete(attachments.byID, id)
	attachments.Unlock()
}

// detachAll forgets every Attachment (Broker.Close has closed them).
func detachAll() {
	attachments.Lock()
	attachments.byID = nil
	attachments.Unlock()
}

// adopt hands the TCP connection of fd, a socket of the JS thread's (which closes it once this
// returns), over to Attachment id with pre, the bytes already read from it. The connection is a
// duplicate of fd: the socket stays open in Go when JS closes its descriptor.
func adopt(id uint32, fd int, pre []byte) error {
	attachments.Lock()
	a := attachments.byID[id]
	attachments.Unlock()
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
	dup, _, errno := syscall.Syscall(syscall.SYS_FCNTL, uintptr(fd), syscall.F_DUPFD_CLOEXEC, 0)
	if errno != 0 {
		return nil, fmt.Errorf("cannot take the connection's socket over: %w", os.NewSyscallError("fcntl", errno))
	}
	f := os.NewFile(dup, "attached connection")
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
