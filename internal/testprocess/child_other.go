//go:build !linux

package testprocess

import "syscall"

// childAttributes has no parent-death signal to ask for outside Linux.
func childAttributes() *syscall.SysProcAttr { return nil }
