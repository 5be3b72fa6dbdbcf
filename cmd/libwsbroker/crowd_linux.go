package main

import (
	"os"
	"strconv"

	"golang.org/x/sys/unix"
)

// shareCores makes every thread of the process but the main one SCHED_BATCH (sched(7)), keeping
// its nice value: a thread woken then waits for the running one to block or use its time slice
// instead of preempting it, so that each JS thread, woken for its sockets while another runs,
// finds a batch's worth of them, and runs it with its caches warm. Threads started later (Go's,
// by a thread already batch) inherit the policy; the main thread is the application's, and keeps
// its own.
func shareCores() {
	tasks, err := os.ReadDir("/proc/self/task")
	if err != nil {
		return
	}
	for _, task := range tasks {
		if tid, err := strconv.Atoi(task.Name()); err == nil && tid != os.Getpid() {
			batch(tid)
		}
	}
}

// batch makes thread tid SCHED_BATCH, keeping its nice value, unless it is gone or has a policy of
// its own (real-time, idle) or is batch already.
func batch(tid int) {
	attr, err := unix.SchedGetAttr(tid, 0)
	if err != nil || attr.Policy != unix.SCHED_NORMAL {
		return
	}
	attr.Policy = unix.SCHED_BATCH
	unix.SchedSetAttr(tid, attr, 0)
}

// threadID is the calling thread's id.
func threadID() int { return unix.Gettid() }
