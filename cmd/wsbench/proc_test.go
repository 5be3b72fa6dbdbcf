package main

import (
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

func TestParseProcStat(t *testing.T) {
	// A command name with spaces and parentheses; utime 250 and stime 50 ticks.
	stat := "4242 (node (x) y) S 1 4242 4242 0 -1 4194560 7380 0 0 0 250 50 0 0 20 0 11 0 1234 " +
		"1000000 5000 18446744073709551615 0 0 0 0 0 0 0 16781312 0 0 0 17 0 0 0 0 0 0\n"
	got, err := parseProcStat([]byte(stat))
	if err != nil || got != 3.0 {
		t.Fatalf("got %v, %v; want 3 s", got, err)
	}
	for _, bad := range []string{"", "1 (x S 1", "1 (x) S 1 2 3", "1 (x) S 1 2 3 4 5 6 7 8 9 10 zz 1 0"} {
		if _, err := parseProcStat([]byte(bad)); err == nil {
			t.Errorf("%q accepted", bad)
		}
	}
}

func TestParseStatusKiB(t *testing.T) {
	status := "Name:\tnode\nVmPeak:\t  999 kB\nVmRSS:\t   65432 kB\nThreads:\t11\n"
	if v, err := parseStatusKiB([]byte(status), "VmRSS"); err != nil || v != 65432 {
		t.Fatalf("VmRSS %d, %v", v, err)
	}
	if _, err := parseStatusKiB([]byte(status), "VmSwap"); err == nil {
		t.Fatal("missing line accepted")
	}
	if _, err := parseStatusKiB([]byte("VmRSS:\t12 MB\n"), "VmRSS"); err == nil {
		t.Fatal("unknown unit accepted")
	}
}

func TestOwnProcess(t *testing.T) {
	if runtime.GOOS != "linux" {
		t.Skip("/proc")
	}
	// Burn a little CPU so that the tick counters are likely to move; only sanity is checked.
	end := time.Now().Add(30 * time.Millisecond)
	for time.Now().Before(end) {
	}
	cpu, err := serverCPU(os.Getpid())
	if err != nil || cpu < 0 {
		t.Fatalf("cpu %v, %v", cpu, err)
	}
	rss, err := serverRSS([]int{os.Getpid()})
	if err != nil || rss <= 0 {
		t.Fatalf("rss %v, %v", rss, err)
	}
	if anon, err := serverAnonRSS([]int{os.Getpid()}); err != nil || anon <= 0 || anon > rss {
		t.Fatalf("anonymous rss %v of %v, %v", anon, rss, err)
	}
	s0, err := takeCPU([]int{os.Getpid()})
	if err != nil || s0.threads == nil {
		t.Fatalf("threads' CPU %+v, %v", s0, err)
	}
	burnThreadCPU(t, 5*time.Millisecond)
	s1, err := takeCPU([]int{os.Getpid()})
	if d := s0.until(s1); err != nil || d < 0.004 || d > 1 {
		t.Fatalf("5 ms of CPU measured as %v s, %v", d, err)
	}
	if selfCPU() <= 0 {
		t.Fatal("getrusage")
	}
	if n := raiseNofile(1024); n < 1024 {
		t.Fatalf("RLIMIT_NOFILE %d", n)
	}
}

func TestParseFlags(t *testing.T) {
	c, err := parseFlags([]string{"-scenario", "fanout", "-size", "2"})
	if err != nil || c.size != 8 {
		t.Fatalf("fanout size %d, %v", c.size, err)
	}
	c, err = parseFlags([]string{"-scenario", "rooms", "-size", "2"})
	if err != nil || c.size != 16 {
		t.Fatalf("rooms size %d, %v", c.size, err)
	}
	c, err = parseFlags([]string{"-scenario", "roundtrip", "-size", "5"})
	if err != nil || c.conns != 1 || !slices.Equal(c.sizes, []int{5}) {
		t.Fatalf("roundtrip: conns %d, sizes %v, %v", c.conns, c.sizes, err)
	}
	for _, bad := range [][]string{{"-scenario", "nope"}, {"-conns", "0"}, {"-channel", "a:b"}, {"extra"}, {"-srcaddrs", "300"},
		{"-cafile", "ca.pem"}, {"-scenario", "echo", "-warm"}, {"-sizes", "16"}, {"-binary"}, {"-scenario", "roundtrip", "-sizes", "1,x"},
		{"-scenario", "roundtrip", "-count", "0"}, {"-scenario", "roundtrip", "-binary", "-deflate"}} {
		if _, err := parseFlags(bad); err == nil {
			t.Errorf("%q accepted", bad)
		}
	}
}

func TestTLSConfig(t *testing.T) {
	c, err := tlsConfig("127.0.0.1:1", "")
	if err != nil || !c.InsecureSkipVerify {
		t.Fatalf("without -cafile: %+v, %v", c, err)
	}
	dir := t.TempDir()
	notPEM := filepath.Join(dir, "x.pem")
	os.WriteFile(notPEM, []byte("not a certificate"), 0o600)
	if _, err := tlsConfig("127.0.0.1:1", notPEM); err == nil || !strings.Contains(err.Error(), "no PEM certificate") {
		t.Fatalf("a file without a certificate: %v", err)
	}
	if _, err := tlsConfig("127.0.0.1:1", filepath.Join(dir, "missing.pem")); err == nil {
		t.Fatal("a missing file accepted")
	}
}

func TestNum(t *testing.T) {
	for n, want := range map[float64]string{0: "0", 999: "999", 1000: "1,000", 1234567.4: "1,234,567", -1500: "-1,500"} {
		if got := num(n); got != want {
			t.Errorf("num(%v) = %q, want %q", n, got, want)
		}
	}
}

// burnThreadCPU keeps the calling thread busy until it has had d of CPU time by its own count
// (CLOCK_THREAD_CPUTIME_ID): a busy loop of d on the wall clock gets less on a loaded machine.
func burnThreadCPU(t *testing.T, d time.Duration) {
	t.Helper()
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	used := func() time.Duration {
		var ts unix.Timespec
		if err := unix.ClockGettime(unix.CLOCK_THREAD_CPUTIME_ID, &ts); err != nil {
			t.Fatal(err)
		}
		return time.Duration(ts.Nano())
	}
	for start := used(); used()-start < d; {
	}
}
