package testprocess

import "syscall"

// childAttributes makes the kernel kill the server when the test process dies without cleaning up,
// so that no server outlives a crashed test.
func childAttributes() *syscall.SysProcAttr {
	return &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
}
