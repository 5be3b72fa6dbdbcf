package main

import (
	"bytes"
	"fmt"
	"os"
	"strconv"
	"syscall"
	"time"
)

// clockTicks is USER_HZ, the unit of the times in /proc/<pid>/stat: 100 on every Linux ABI.
const clockTicks = 100

// parseProcStat returns utime+stime (seconds) from the text of /proc/<pid>/stat. For a process
// these sum all its threads, live and exited. The command name (field 2) may hold spaces and
// parentheses, so fields are counted after the last ')'.
func parseProcStat(b []byte) (float64, error) {
	i := bytes.LastIndexByte(b, ')')
	if i < 0 {
		return 0, fmt.Errorf("no ')' in stat")
	}
	f := bytes.Fields(b[i+1:])
	// f[0] is field 3 (state); utime is field 14, stime field 15.
	if len(f) < 13 {
		return 0, fmt.Errorf("stat has %d fields after the name", len(f))
	}
	ut, err := strconv.ParseUint(string(f[11]), 10, 64)
	if err != nil {
		return 0, fmt.Errorf("utime: %w", err)
	}
	st, err := strconv.ParseUint(string(f[12]), 10, 64)
	if err != nil {
		return 0, fmt.Errorf("stime: %w", err)
	}
	return float64(ut+st) / clockTicks, nil
}

// parseStatusKiB returns the value in KiB of a "Name:  1234 kB" line of /proc/<pid>/status.
func parseStatusKiB(b []byte, name string) (int64, error) {
	for _, line := range bytes.Split(b, []byte("\n")) {
		k, v, ok := bytes.Cut(line, []byte(":"))
		if !ok || string(k) != name {
			continue
		}
		f := bytes.Fields(v)
		if len(f) == 0 {
			break
		}
		n, err := strconv.ParseInt(string(f[0]), 10, 64)
		if err != nil {
			return 0, fmt.Errorf("%s: %w", name, err)
		}
		if len(f) > 1 && string(f[1]) != "kB" {
			return 0, fmt.Errorf("%s: unit %q", name, f[1])
		}
		return n, nil
	}
	return 0, fmt.Errorf("no %s line", name)
}

// serverCPU returns the CPU seconds (user+system, all threads) used so far by process pid.
func serverCPU(pid int) (float64, error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0, err
	}
	return parseProcStat(b)
}

// serverCPUs returns serverCPU of each process.
func serverCPUs(pids []int) ([]float64, error) {
	cpus := make([]float64, len(pids))
	for i, pid := range pids {
		var err error
		if cpus[i], err = serverCPU(pid); err != nil {
			return nil, err
		}
	}
	return cpus, nil
}

// serverRSS returns the resident set size of the processes in KiB, summed.
func serverRSS(pids []int) (int64, error) { return statusKiB(pids, "VmRSS") }

// serverAnonRSS returns the anonymous part of the processes' resident sets in KiB, summed: their
// own memory, without the pages of their executables and libraries, which a process faults in
// whenever it first runs their code (an optimizing compiler, say) and which no connection holds.
func serverAnonRSS(pids []int) (int64, error) { return statusKiB(pids, "RssAnon") }

// statusKiB returns the sum over the processes of a line of /proc/<pid>/status in KiB.
func statusKiB(pids []int, name string) (int64, error) {
	var sum int64
	for _, pid := range pids {
		b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
		if err != nil {
			return 0, err
		}
		v, err := parseStatusKiB(b, name)
		if err != nil {
			return 0, err
		}
		sum += v
	}
	return sum, nil
}

// selfCPU returns the CPU seconds (user+system) this process has used.
func selfCPU() float64 {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano()).Seconds()
}

// raiseNofile raises RLIMIT_NOFILE as far as allowed: to want (or fs.nr_open) when privileged,
// else to the hard limit. It returns the soft limit in force.
func raiseNofile(want uint64) uint64 {
	var rl syscall.Rlimit
	if err := syscall.Getrlimit(syscall.RLIMIT_NOFILE, &rl); err != nil {
		return 0
	}
	if b, err := os.ReadFile("/proc/sys/fs/nr_open"); err == nil {
		if n, err := strconv.ParseUint(string(bytes.TrimSpace(b)), 10, 64); err == nil && want > n {
			want = n
		}
	}
	if rl.Cur >= want {
		return rl.Cur
	}
	if rl.Max < want {
		try := syscall.Rlimit{Cur: want, Max: want}
		if syscall.Setrlimit(syscall.RLIMIT_NOFILE, &try) == nil {
			return want
		}
	}
	rl.Cur = min(want, rl.Max)
	syscall.Setrlimit(syscall.RLIMIT_NOFILE, &rl)
	syscall.Getrlimit(syscall.RLIMIT_NOFILE, &rl)
	return rl.Cur
}

// cpuSample is the CPU time of the -pid processes at one moment, for intervals too short for
// USER_HZ ticks (1,000 round trips of 0.1 ms would be measured to ±10%).
type cpuSample struct {
	ticks float64 // utime+stime summed, seconds in ticks (every thread, exited ones too)
	// each live thread's time on a CPU in nanoseconds (/proc/<pid>/task/<tid>/schedstat); nil
	// where the kernel has no schedstat
	threads map[int]int64
}

// takeCPU samples the CPU time of the processes.
func takeCPU(pids []int) (cpuSample, error) {
	var s cpuSample
	cpus, err := serverCPUs(pids)
	if err != nil {
		return s, err
	}
	for _, c := range cpus {
		s.ticks += c
	}
	s.threads = map[int]int64{}
	for _, pid := range pids {
		dir := fmt.Sprintf("/proc/%d/task", pid)
		tasks, err := os.ReadDir(dir)
		if err != nil {
			return s, err
		}
		for _, t := range tasks {
			tid, err1 := strconv.Atoi(t.Name())
			b, err2 := os.ReadFile(dir + "/" + t.Name() + "/schedstat")
			if err1 != nil || err2 != nil {
				continue // a thread that ended meanwhile, or no schedstat
			}
			f := bytes.Fields(b)
			if len(f) == 0 {
				continue
			}
			if ns, err := strconv.ParseInt(string(f[0]), 10, 64); err == nil {
				s.threads[tid] = ns
			}
		}
	}
	if len(s.threads) == 0 {
		s.threads = nil
	}
	return s, nil
}

// until returns the CPU seconds used from s to a later sample: by the threads, to the nanosecond,
// unless one of them ended meanwhile (its time would be lost), else in ticks.
func (s cpuSample) until(later cpuSample) float64 {
	if s.threads == nil || later.threads == nil {
		return later.ticks - s.ticks
	}
	var ns int64
	for tid, t := range s.threads {
		t1, ok := later.threads[tid]
		if !ok {
			return later.ticks - s.ticks
		}
		ns += t1 - t
	}
	for tid, t1 := range later.threads {
		if _, ok := s.threads[tid]; !ok {
			ns += t1 // a thread started meanwhile
		}
	}
	return float64(ns) / 1e9
}
