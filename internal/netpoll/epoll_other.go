//go:build unix && !linux

package netpoll

import (
	"errors"
	"syscall"
)

// Supported reports whether this system has pollers (epoll); where it has not, NewSet fails.
const Supported = false

func newPoller[C any](*Config[C]) (*Poller[C], error) { return nil, errors.ErrUnsupported }

// DispatchReady: see epoll_linux.go; a Set is never made here.
func (s *Set[C]) DispatchReady(int, func(C) bool) bool { return false }

func (p *Poller[C]) register(int, uint32, uint32) error { return errors.ErrUnsupported }
func (p *Poller[C]) deregister(int)                     {}

// ReportRoom: see epoll_linux.go.
func (p *Poller[C]) ReportRoom(C, syscall.RawConn) error { return errors.ErrUnsupported }
