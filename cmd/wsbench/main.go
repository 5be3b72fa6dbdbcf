// Command wsbench is the load generator of the WSBroker benchmarks. It talks to a WebSocket
// server over loopback only, speaking the benchmark protocol of bench/README.md, and reports one
// JSON line on stdout (for bench/run.mjs) and a human summary on stderr.
//
//	wsbench -addr 127.0.0.1:9001 -scenario echo -conns 100 -size 32 -duration 5s -pid <server pid>
//
// Scenarios: echo (closed loop, or open loop with -rate), fanout, rooms, send, idle, connect,
// roundtrip. See bench/README.md for what each measures.
package main

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"maps"
	"net"
	"os"
	"runtime"
	"runtime/pprof"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

type config struct {
	addr     string
	scenario string
	label    string
	path     string
	channel  string
	conns    int
	size     int
	rate     float64
	window   int
	room     int
	stalled  int
	channels int
	gaps     bool
	mem      bool
	srcs     int
	dialConc int
	warmup   time.Duration
	duration time.Duration
	setup    time.Duration
	pids     []int
	proto    string
	quiet    bool
	cpuprof  string
	tls      bool
	caFile   string
	deflate  bool
	warm     bool
	sizes    []int
	count    int
	binary   bool
}

func parseFlags(args []string) (*config, error) {
	c := &config{}
	fs := flag.NewFlagSet("wsbench", flag.ContinueOnError)
	fs.StringVar(&c.addr, "addr", "127.0.0.1:9001", "server address (loopback only); a server of several nodes: their addresses, comma-separated (connection i goes to node i mod nodes, a publisher to the first)")
	fs.StringVar(&c.proto, "proto", "ws", "ws: the bench protocol in WebSocket text messages; socketio: in Socket.IO events (Engine.IO v4 over a WebSocket)")
	fs.StringVar(&c.scenario, "scenario", "echo", "echo, fanout, rooms, send, idle, connect or roundtrip")
	fs.StringVar(&c.label, "label", "", "name of the server, copied into the report")
	fs.StringVar(&c.path, "path", "/", "request path of the upgrade")
	fs.StringVar(&c.channel, "channel", "bench", "fanout: the channel")
	fs.IntVar(&c.conns, "conns", 100, "connections (fanout: subscribers; connect: concurrent dialers)")
	fs.IntVar(&c.size, "size", 32, "payload bytes per message (at least 8 for fanout, 16 for rooms)")
	fs.Float64Var(&c.rate, "rate", 0, "echo, fanout: open loop at this many messages/s in total (0: closed loop)")
	fs.IntVar(&c.window, "window", 8, "fanout, closed loop: messages in flight (a message is done when every subscriber has it)")
	fs.IntVar(&c.room, "room", 10, "rooms: connections per room")
	fs.IntVar(&c.stalled, "stalled", 0, "fanout: extra subscribers that never read (a 4 KiB receive buffer each)")
	fs.IntVar(&c.channels, "channels", 0, "fanout: one more connection per node subscribes to this many other channels (what a node resubscribes after an engine outage)")
	fs.BoolVar(&c.gaps, "gaps", false, "fanout: report each node's longest time without a delivery and the messages that did not reach every subscriber")
	fs.BoolVar(&c.mem, "mem", false, "idle: ask the server for its memory figures (\"m:\", the bench protocol)")
	fs.IntVar(&c.srcs, "srcaddrs", 16, "source addresses 127.0.0.1..127.0.0.N to spread connections over")
	fs.IntVar(&c.dialConc, "dial-concurrency", 64, "connections being opened at once during setup")
	fs.DurationVar(&c.warmup, "warmup", time.Second, "load before measuring (not counted)")
	fs.DurationVar(&c.duration, "duration", 5*time.Second, "measured interval (idle: how long the connections are held; roundtrip: the longest for one size)")
	fs.DurationVar(&c.setup, "setup-timeout", 60*time.Second, "limit for opening the connections")
	pids := fs.String("pid", "", "server process ids, comma-separated (every node and the engine of a server of several): their CPU time and RSS are read from /proc and summed")
	fs.BoolVar(&c.quiet, "q", false, "no human summary on stderr")
	fs.StringVar(&c.cpuprof, "cpuprofile", "", "write the generator's CPU profile to this file")
	fs.BoolVar(&c.tls, "tls", false, "wss://: TLS before the upgrade (the certificate is not verified without -cafile)")
	fs.StringVar(&c.caFile, "cafile", "", "with -tls: verify the server's certificate against this PEM file")
	fs.BoolVar(&c.deflate, "deflate", false, "offer permessage-deflate without context takeover and send every message compressed; a server that declines it fails the run")
	sizes := fs.String("sizes", "", "roundtrip: payload sizes in bytes, comma-separated, measured in turn (default: -size)")
	fs.IntVar(&c.count, "count", 1000, "roundtrip: round trips measured per size (at most -duration of them), after -warmup of them")
	fs.BoolVar(&c.binary, "binary", false, "roundtrip: binary messages, which the server echoes as they are (default: text \"e:<payload>\")")
	fs.BoolVar(&c.warm, "warm", false, "idle: each connection echoes one -size message before idling, so that what a server keeps after a message (compression or TLS buffers) is counted")
	if err := fs.Parse(args); err != nil {
		return nil, err
	}
	if fs.NArg() > 0 {
		return nil, fmt.Errorf("unexpected arguments %q", fs.Args())
	}
	if *pids != "" {
		for _, f := range strings.Split(*pids, ",") {
			pid, err := strconv.Atoi(f)
			if err != nil || pid <= 0 {
				return nil, fmt.Errorf("-pid: %q is not a process id", f)
			}
			c.pids = append(c.pids, pid)
		}
	}
	if *sizes != "" {
		for _, f := range strings.Split(*sizes, ",") {
			n, err := strconv.Atoi(f)
			if err != nil || n < 0 || n > maxMessage-2 {
				return nil, fmt.Errorf("-sizes: %q is not a size from 0 to %d", f, maxMessage-2)
			}
			c.sizes = append(c.sizes, n)
		}
	}
	switch c.proto {
	case "ws":
	case "socketio":
		if c.deflate || c.tls {
			return nil, errors.New("-proto socketio runs without -deflate and -tls")
		}
		if c.path == "/" {
			c.path = sioPath
		}
	default:
		return nil, fmt.Errorf("unknown -proto %q", c.proto)
	}
	switch c.scenario {
	case "echo", "fanout", "rooms", "send", "idle", "connect", "roundtrip":
	default:
		return nil, fmt.Errorf("unknown scenario %q", c.scenario)
	}
	if c.conns < 1 || c.stalled < 0 || c.size < 0 || c.window < 1 || c.room < 1 || c.srcs < 0 || c.srcs > 254 ||
		c.dialConc < 1 || c.rate < 0 || c.duration <= 0 || c.warmup < 0 {
		return nil, errors.New("a numeric flag is out of range")
	}
	if c.scenario == "idle" && c.conns < 2 {
		return nil, errors.New("idle needs -conns 2 or more (the first one is the baseline)")
	}
	if c.scenario == "fanout" && c.size < 8 {
		c.size = 8
	}
	if c.scenario == "send" && c.conns%2 != 0 {
		return nil, errors.New("send needs an even -conns (pairs)")
	}
	if (c.gaps || c.channels > 0) && c.scenario != "fanout" {
		return nil, errors.New("-gaps and -channels are for the fanout scenario")
	}
	if c.gaps && c.rate == 0 {
		return nil, errors.New("-gaps needs -rate (a closed loop stops at the first lost message)")
	}
	if (c.scenario == "rooms" || c.scenario == "send") && c.size < 16 {
		c.size = 16
	}
	if strings.ContainsAny(c.channel, ": ") || c.channel == "" {
		return nil, errors.New("-channel must be non-empty and hold no ':'")
	}
	if c.caFile != "" && !c.tls {
		return nil, errors.New("-cafile needs -tls")
	}
	if c.warm && c.scenario != "idle" {
		return nil, errors.New("-warm is for the idle scenario")
	}
	if (len(c.sizes) > 0 || c.binary) && c.scenario != "roundtrip" {
		return nil, errors.New("-sizes and -binary are for the roundtrip scenario")
	}
	if c.scenario == "roundtrip" {
		c.conns = 1
		if len(c.sizes) == 0 {
			c.sizes = []int{c.size}
		}
		if c.count < 1 {
			return nil, errors.New("-count must be at least 1")
		}
		if c.binary && (c.deflate || c.proto != "ws") {
			return nil, errors.New("-binary runs without -deflate, over -proto ws")
		}
	}
	return c, nil
}

func main() {
	cfg, err := parseFlags(os.Args[1:])
	if err != nil {
		if errors.Is(err, flag.ErrHelp) {
			os.Exit(0)
		}
		fmt.Fprintln(os.Stderr, "wsbench:", err)
		os.Exit(2)
	}
	nofile := raiseNofile(uint64(cfg.conns) + 4096)
	if nofile < uint64(cfg.conns)+64 {
		fmt.Fprintf(os.Stderr, "wsbench: warning: RLIMIT_NOFILE is %d, too low for %d connections\n", nofile, cfg.conns)
	}
	// Whatever happens, the process ends: setup, warm-up, measurement and a grace for teardown.
	limit := cfg.setup + cfg.warmup + cfg.duration + 30*time.Second
	time.AfterFunc(limit, func() {
		emit(&result{Scenario: cfg.scenario, Label: cfg.label, Error: fmt.Sprintf("did not finish within %s", limit)})
		os.Exit(3)
	})

	if cfg.cpuprof != "" {
		f, err := os.Create(cfg.cpuprof)
		if err != nil {
			fmt.Fprintln(os.Stderr, "wsbench:", err)
			os.Exit(2)
		}
		pprof.StartCPUProfile(f)
		defer pprof.StopCPUProfile()
	}
	var res *result
	switch cfg.scenario {
	case "echo":
		res, err = runEcho(cfg)
	case "fanout":
		res, err = runFanout(cfg)
	case "rooms":
		res, err = runRooms(cfg)
	case "send":
		res, err = runSend(cfg)
	case "idle":
		res, err = runIdle(cfg)
	case "connect":
		res, err = runConnect(cfg)
	case "roundtrip":
		res, err = runRoundtrip(cfg)
	}
	if res == nil {
		res = newResult(cfg)
	}
	if err != nil {
		res.Error = err.Error()
	}
	if !cfg.quiet {
		fmt.Fprint(os.Stderr, res.summary())
	}
	emit(res)
	if err != nil {
		pprof.StopCPUProfile()
		os.Exit(1)
	}
}

var emitMu sync.Mutex

func emit(r *result) {
	emitMu.Lock()
	defer emitMu.Unlock()
	b, _ := json.Marshal(r)
	os.Stdout.Write(append(b, '\n'))
}

// base is the origin of mono(): nanoseconds on the monotonic clock.
var base = time.Now()

func mono() int64 { return int64(time.Since(base)) }

// sleepUntil sleeps until mono() reaches t, or until done is closed (then false).
func sleepUntil(t int64, done <-chan struct{}) bool {
	d := time.Duration(t - mono())
	if d <= 0 {
		select {
		case <-done:
			return false
		default:
			return true
		}
	}
	tm := time.NewTimer(d)
	defer tm.Stop()
	select {
	case <-tm.C:
		return true
	case <-done:
		return false
	}
}

// Phases of a run.
const (
	phaseWarmup int32 = iota
	phaseMeasure
	phaseStop
)

// run is the state shared by the goroutines of one benchmark run.
type run struct {
	cfg   *config
	dial  *dialer
	phase atomic.Int32
	done  chan struct{} // closed when the load must stop

	msgs       atomic.Uint64 // requests completed (published messages fully delivered, replies, connections; echoes are answers)
	deliveries atomic.Uint64 // messages received from the server
	// answers: echoes received, each a message and a delivery, counted once so that a sample
	// never holds one of the two without the other
	answers atomic.Uint64
	errs    atomic.Uint64 // unexpected messages, failed connections
	hist    histogram     // latencies of the measured interval
	rssPeak atomic.Int64  // the server's largest RSS seen while measuring, KiB

	failOnce sync.Once
	failErr  error
	failed   chan struct{}

	// progress[i] is when connection i last completed something (mono), for the closed-loop
	// scenarios: a connection whose message was lost would otherwise hide behind the others.
	progress    []atomic.Int64
	checkStalls bool

	wg    sync.WaitGroup
	mu    sync.Mutex
	conns []*wsConn
}

// tracked sets up progress tracking for n connections.
func (r *run) tracked(n int) {
	r.progress = make([]atomic.Int64, n)
	r.checkStalls = true
	now := mono()
	for i := range r.progress {
		r.progress[i].Store(now)
	}
}

// stalled counts the tracked connections that completed nothing in the last d before t.
func (r *run) stalled(t int64, d time.Duration) int {
	n := 0
	for i := range r.progress {
		if r.progress[i].Load() < t-int64(d) {
			n++
		}
	}
	return n
}

func newRun(cfg *config, bufSize int) (*run, error) {
	d, err := newDialer(strings.Split(cfg.addr, ","), cfg.path, cfg.srcs, bufSize)
	if err != nil {
		return nil, err
	}
	d.deflate = cfg.deflate
	d.sio = cfg.proto == "socketio"
	if cfg.tls {
		if d.tls, err = tlsConfig(d.addrs[0], cfg.caFile); err != nil {
			return nil, err
		}
	}
	return &run{cfg: cfg, dial: d, done: make(chan struct{}), failed: make(chan struct{})}, nil
}

// tlsConfig is the client side of -tls: the server's certificate verified against the PEM file
// caFile (for the loopback address it must name), or not verified when caFile is "". No session
// cache: every connection makes a full handshake.
func tlsConfig(addr, caFile string) (*tls.Config, error) {
	if caFile == "" {
		return &tls.Config{InsecureSkipVerify: true}, nil
	}
	pem, err := os.ReadFile(caFile)
	if err != nil {
		return nil, err
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(pem) {
		return nil, fmt.Errorf("-cafile %s: no PEM certificate", caFile)
	}
	host, _, err := net.SplitHostPort(addr) // a checked loopback address
	if err != nil {
		return nil, err
	}
	return &tls.Config{RootCAs: pool, ServerName: host}, nil
}

func (r *run) measuring() bool { return r.phase.Load() == phaseMeasure }
func (r *run) stopping() bool  { return r.phase.Load() == phaseStop }

// fail ends the run with err (the first error wins); errors after the stop are not failures.
func (r *run) fail(err error) {
	if r.stopping() {
		return
	}
	r.failOnce.Do(func() {
		r.failErr = err
		close(r.failed)
	})
}

// latency records a latency if the run is in its measured interval.
func (r *run) latency(ns int64) {
	if r.measuring() {
		r.hist.record(ns)
	}
}

// dialAll opens n connections, dialConc at a time, running after (if any) on each once open,
// e.g. to subscribe. It reports progress on stderr for large n.
func (r *run) dialAll(n, first int, extra []string, after func(i int, c *wsConn) error) ([]*wsConn, error) {
	ctx, cancel := context.WithTimeout(context.Background(), r.cfg.setup)
	defer cancel()
	conns := make([]*wsConn, n)
	var next, opened atomic.Int64
	var firstErr error
	var errOnce sync.Once
	var wg sync.WaitGroup
	stopProgress := make(chan struct{})
	if n >= 5000 && !r.cfg.quiet {
		go func() {
			t := time.NewTicker(time.Second)
			defer t.Stop()
			for {
				select {
				case <-t.C:
					fmt.Fprintf(os.Stderr, "wsbench: %d/%d connections open\n", opened.Load(), n)
				case <-stopProgress:
					return
				}
			}
		}()
	}
	for w := 0; w < min(r.cfg.dialConc, n); w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				i := int(next.Add(1) - 1)
				if i >= n || ctx.Err() != nil {
					return
				}
				c, err := r.dial.dial(ctx, first+i, extra)
				if err == nil && after != nil {
					c.nc.SetDeadline(time.Now().Add(r.dial.timeout))
					err = after(i, c)
					c.nc.SetDeadline(time.Time{})
					if err != nil {
						c.nc.Close()
					}
				}
				if err != nil {
					errOnce.Do(func() { firstErr = fmt.Errorf("opening connection %d: %w", first+i, err) })
					cancel()
					return
				}
				conns[i] = c
				opened.Add(1)
			}
		}()
	}
	wg.Wait()
	close(stopProgress)
	if firstErr == nil && ctx.Err() != nil {
		firstErr = fmt.Errorf("opening %d connections took longer than %s", n, r.cfg.setup)
	}
	if firstErr != nil {
		for _, c := range conns {
			if c != nil {
				c.nc.Close()
			}
		}
		return nil, firstErr
	}
	r.mu.Lock()
	r.conns = append(r.conns, conns...)
	r.mu.Unlock()
	return conns, nil
}

// sample is a snapshot of the counters and CPU clocks.
type sample struct {
	t          time.Time
	msgs       uint64
	deliveries uint64
	errs       uint64
	serverCPU  float64
	pidCPU     []float64 // serverCPU by process, in the order of -pid
	serverOK   bool
	serverRSS  int64 // KiB, 0 if unknown
	genCPU     float64
	zmsgs      uint64 // compressed messages received
	zbytes     uint64
}

func (r *run) sample() sample {
	answers := r.answers.Load()
	s := sample{t: time.Now(), msgs: r.msgs.Load() + answers, deliveries: r.deliveries.Load() + answers, errs: r.errs.Load(),
		genCPU: selfCPU(), zmsgs: r.dial.count.msgs.Load(), zbytes: r.dial.count.bytes.Load()}
	if len(r.cfg.pids) > 0 {
		if v, err := serverCPUs(r.cfg.pids); err == nil {
			s.pidCPU, s.serverOK = v, true
			for _, c := range v {
				s.serverCPU += c
			}
		}
		s.serverRSS, _ = serverRSS(r.cfg.pids)
	}
	return s
}

// measure runs the warm-up and the measured interval, and returns the snapshots at both ends of
// the latter. It fails a run that makes no progress for stall (the server stopped answering).
func (r *run) measure(stall time.Duration) (s0, s1 sample, err error) {
	if !r.wait(r.cfg.warmup, stall) {
		return s0, s1, r.stop()
	}
	s0 = r.sample()
	r.phase.Store(phaseMeasure)
	if !r.cfg.quiet {
		fmt.Fprintln(os.Stderr, "wsbench: measuring")
	}
	ok := r.wait(r.cfg.duration, stall)
	r.phase.Store(phaseStop)
	s1 = r.sample()
	end := mono()
	err = r.stop()
	if ok && err == nil && s1.msgs == s0.msgs && stall > 0 {
		err = errors.New("no message completed in the measured interval")
	}
	if window := min(2*time.Second, r.cfg.duration/2); ok && err == nil && r.checkStalls {
		if n := r.stalled(end, window); n > 0 {
			err = fmt.Errorf("%d of %d connections completed nothing in the last %s of the run (lost messages?)", n, len(r.progress), window)
		}
	}
	return s0, s1, err
}

// wait lets the load run for d; false if the run failed or stalled meanwhile.
func (r *run) wait(d, stall time.Duration) bool {
	end := time.Now().Add(d)
	tick := time.NewTicker(100 * time.Millisecond)
	defer tick.Stop()
	last, lastT := r.msgs.Load()+r.deliveries.Load()+r.answers.Load(), time.Now()
	for {
		select {
		case <-r.failed:
			return false
		case now := <-tick.C:
			if r.measuring() && len(r.cfg.pids) > 0 {
				if v, err := serverRSS(r.cfg.pids); err == nil && v > r.rssPeak.Load() {
					r.rssPeak.Store(v)
				}
			}
			if now.After(end) {
				return true
			}
			if stall > 0 {
				if v := r.msgs.Load() + r.deliveries.Load() + r.answers.Load(); v != last {
					last, lastT = v, now
				} else if now.Sub(lastT) > stall {
					r.fail(fmt.Errorf("no progress for %s: the server stopped answering", stall))
					return false
				}
			}
		}
	}
}

// stop ends the load: the goroutines are told, blocked reads are woken, connections are closed.
// It returns the error that failed the run, if any.
func (r *run) stop() error {
	r.phase.Store(phaseStop)
	select {
	case <-r.done:
	default:
		close(r.done)
	}
	r.mu.Lock()
	conns := r.conns
	r.mu.Unlock()
	now := time.Now()
	for _, c := range conns {
		c.nc.SetReadDeadline(now)
	}
	waited := make(chan struct{})
	go func() { r.wg.Wait(); close(waited) }()
	select {
	case <-waited:
	case <-time.After(5 * time.Second):
	}
	for _, c := range conns {
		c.closeNow()
	}
	select {
	case <-r.failed:
		return r.failErr
	default:
		return nil
	}
}

// result is the report: one JSON line.
type result struct {
	Scenario   string  `json:"scenario"`
	Label      string  `json:"label,omitempty"`
	Addr       string  `json:"addr,omitempty"`
	Conns      int     `json:"conns"`
	Size       int     `json:"size,omitempty"`
	Mode       string  `json:"mode,omitempty"` // closed or open loop
	Rate       float64 `json:"rate,omitempty"` // open loop: the target, messages/s
	Window     int     `json:"window,omitempty"`
	Room       int     `json:"room,omitempty"`
	Stalled    int     `json:"stalled,omitempty"` // fanout: subscribers that never read
	TLS        bool    `json:"tls,omitempty"`
	Deflate    bool    `json:"deflate,omitempty"`
	GOMAXPROCS int     `json:"gomaxprocs"`
	WarmupS    float64 `json:"warmup_s"`
	DurationS  float64 `json:"duration_s"` // the measured interval as it was

	Msgs           uint64      `json:"msgs"`
	MsgsPerS       float64     `json:"msgs_per_s"`
	Deliveries     uint64      `json:"deliveries"`
	DeliveriesPerS float64     `json:"deliveries_per_s"`
	Latency        *latencyRep `json:"latency_us,omitempty"`
	// -deflate: the messages received compressed (RSV1) and their payload bytes on the wire
	CompressedMsgs  uint64 `json:"compressed_msgs,omitempty"`
	CompressedBytes uint64 `json:"compressed_bytes,omitempty"`

	ServerCPUS              *float64  `json:"server_cpu_s,omitempty"`
	ServerCPUByPidS         []float64 `json:"server_cpu_by_pid_s,omitempty"` // several -pid: each one's share of server_cpu_s
	MsgsPerServerCPUS       float64   `json:"msgs_per_server_cpu_s,omitempty"`
	DeliveriesPerServerCPUS float64   `json:"deliveries_per_server_cpu_s,omitempty"`
	ServerRSSKiB            int64     `json:"server_rss_kib,omitempty"`       // at the end
	RSSStartKiB             int64     `json:"server_rss_start_kib,omitempty"` // when the measured interval began
	RSSPeakKiB              int64     `json:"server_rss_peak_kib,omitempty"`  // the largest seen while measuring (every 100 ms)
	GenCPUS                 float64   `json:"gen_cpu_s"`
	GenCPUUtil              float64   `json:"gen_cpu_util"` // generator CPU-s per second: near 1×GOMAXPROCS means it was the limit

	// idle
	OpenS         float64 `json:"open_s,omitempty"`
	RSSBeforeKiB  int64   `json:"server_rss_before_kib,omitempty"`
	RSSOpenKiB    int64   `json:"server_rss_open_kib,omitempty"`
	RSSPerConnKiB float64 `json:"server_rss_per_conn_kib,omitempty"`
	// The same for the anonymous part of the resident set (serverAnonRSS).
	AnonBeforeKiB  int64   `json:"server_anon_before_kib,omitempty"`
	AnonPerConnKiB float64 `json:"server_anon_per_conn_kib,omitempty"`
	Alive          int     `json:"alive,omitempty"`
	// idle -mem: the server's answers to "m:" (bytes; goroutines a count) with the first
	// connection only, at the end, and the difference per connection opened after the first
	MemBefore  map[string]float64 `json:"server_mem_before,omitempty"`
	MemAfter   map[string]float64 `json:"server_mem_after,omitempty"`
	MemPerConn map[string]float64 `json:"server_mem_per_conn,omitempty"`

	// fanout -stalled: how many of those the server had closed by the end (a backpressure limit)
	StalledClosed *int `json:"stalled_closed,omitempty"`

	// fanout -gaps: each node's longest time without a delivery in the measured interval (ms), and
	// the messages published in it, at least lostAfter before its end, that did not reach every
	// subscriber, with the deliveries they lack
	NodeGapMs      []float64 `json:"node_gap_ms,omitempty"`
	LostMsgs       *uint64   `json:"lost_msgs,omitempty"`
	LostDeliveries uint64    `json:"lost_deliveries,omitempty"`

	// roundtrip: text or binary messages, and each size's figures in the order measured
	Binary bool           `json:"binary,omitempty"`
	Sizes  []roundtripRep `json:"sizes,omitempty"`

	Errors uint64 `json:"errors"`
	Error  string `json:"error,omitempty"`
}

type latencyRep struct {
	Count uint64  `json:"count"`
	P50   float64 `json:"p50"`
	P99   float64 `json:"p99"`
	P999  float64 `json:"p999"`
	Max   float64 `json:"max"`
	Mean  float64 `json:"mean"`
}

// report is the histogram's summary in microseconds, nil when nothing was recorded.
func (h *histogram) report() *latencyRep {
	n := h.count()
	if n == 0 {
		return nil
	}
	us := func(ns int64) float64 { return float64(ns) / 1e3 }
	return &latencyRep{Count: n, P50: us(h.quantile(0.5)), P99: us(h.quantile(0.99)),
		P999: us(h.quantile(0.999)), Max: us(h.max.Load()), Mean: h.mean() / 1e3}
}

func newResult(cfg *config) *result {
	return &result{Scenario: cfg.scenario, Label: cfg.label, Addr: cfg.addr, Conns: cfg.conns,
		TLS: cfg.tls, Deflate: cfg.deflate, GOMAXPROCS: runtime.GOMAXPROCS(0), WarmupS: cfg.warmup.Seconds()}
}

// fill sets the rates, latencies and CPU figures from the snapshots around the measured interval.
func (r *run) fill(res *result, s0, s1 sample) {
	el := s1.t.Sub(s0.t).Seconds()
	res.DurationS = el
	res.Msgs = s1.msgs - s0.msgs
	res.Deliveries = s1.deliveries - s0.deliveries
	res.CompressedMsgs, res.CompressedBytes = s1.zmsgs-s0.zmsgs, s1.zbytes-s0.zbytes
	res.Errors = r.errs.Load()
	if el > 0 {
		res.MsgsPerS = float64(res.Msgs) / el
		res.DeliveriesPerS = float64(res.Deliveries) / el
		res.GenCPUS = s1.genCPU - s0.genCPU
		res.GenCPUUtil = res.GenCPUS / el
	}
	if s0.serverOK && s1.serverOK {
		cpu := s1.serverCPU - s0.serverCPU
		res.ServerCPUS = &cpu
		if len(s1.pidCPU) > 1 {
			for i := range s1.pidCPU {
				res.ServerCPUByPidS = append(res.ServerCPUByPidS, s1.pidCPU[i]-s0.pidCPU[i])
			}
		}
		if cpu > 0 {
			res.MsgsPerServerCPUS = float64(res.Msgs) / cpu
			res.DeliveriesPerServerCPUS = float64(res.Deliveries) / cpu
		}
	}
	res.RSSStartKiB, res.ServerRSSKiB = s0.serverRSS, s1.serverRSS
	res.RSSPeakKiB = max(r.rssPeak.Load(), s0.serverRSS, s1.serverRSS)
	res.Latency = r.hist.report()
}

// summary is the human-readable report.
func (res *result) summary() string {
	var b strings.Builder
	name := res.Scenario
	if res.Label != "" {
		name += " [" + res.Label + "]"
	}
	fmt.Fprintf(&b, "wsbench %s: %d conns", name, res.Conns)
	if res.TLS {
		b.WriteString(", TLS")
	}
	if res.Deflate {
		b.WriteString(", permessage-deflate")
	}
	if res.Size > 0 {
		fmt.Fprintf(&b, ", %d B", res.Size)
	}
	if res.Mode != "" {
		fmt.Fprintf(&b, ", %s loop", res.Mode)
	}
	if res.Rate > 0 {
		fmt.Fprintf(&b, " at %s msgs/s", num(res.Rate))
	}
	if res.Window > 0 {
		fmt.Fprintf(&b, ", window %d", res.Window)
	}
	if res.Room > 0 {
		fmt.Fprintf(&b, ", rooms of %d", res.Room)
	}
	if res.Stalled > 0 {
		fmt.Fprintf(&b, ", %d subscriber(s) not reading", res.Stalled)
		if res.StalledClosed != nil {
			fmt.Fprintf(&b, " (%d closed by the server)", *res.StalledClosed)
		}
	}
	fmt.Fprintf(&b, ", %.1f s measured\n", res.DurationS)
	if res.Error != "" {
		fmt.Fprintf(&b, "  ERROR      %s\n", res.Error)
	}
	if res.Scenario == "idle" {
		fmt.Fprintf(&b, "  opened     %d in %.2f s, %d alive at the end\n", res.Conns, res.OpenS, res.Alive)
		if res.RSSOpenKiB > 0 {
			fmt.Fprintf(&b, "  server RSS %s KiB before, %s KiB open, %s KiB at the end: %.2f KiB per connection\n",
				num(float64(res.RSSBeforeKiB)), num(float64(res.RSSOpenKiB)), num(float64(res.ServerRSSKiB)), res.RSSPerConnKiB)
			if res.AnonBeforeKiB > 0 {
				fmt.Fprintf(&b, "  anonymous  %.2f KiB per connection\n", res.AnonPerConnKiB)
			}
		}
		if len(res.MemPerConn) > 0 {
			b.WriteString("  per conn  ")
			for _, k := range slices.Sorted(maps.Keys(res.MemPerConn)) {
				fmt.Fprintf(&b, " %s %.0f", k, res.MemPerConn[k])
			}
			b.WriteString("\n")
		}
	} else if res.Scenario == "connect" {
		fmt.Fprintf(&b, "  opened     %s connections/s   errors %d\n", num(res.MsgsPerS), res.Errors)
	} else {
		fmt.Fprintf(&b, "  messages   %s/s   deliveries %s/s   errors %d\n", num(res.MsgsPerS), num(res.DeliveriesPerS), res.Errors)
	}
	if res.CompressedMsgs > 0 {
		fmt.Fprintf(&b, "  compressed %s of the messages received, %.0f B each on average\n",
			num(float64(res.CompressedMsgs)), float64(res.CompressedBytes)/float64(res.CompressedMsgs))
	}
	if l := res.Latency; l != nil {
		fmt.Fprintf(&b, "  latency    p50 %s  p99 %s  p99.9 %s  max %s  (%d samples)\n",
			dur(l.P50), dur(l.P99), dur(l.P999), dur(l.Max), l.Count)
	}
	for _, s := range res.Sizes {
		if l := s.Latency; l != nil {
			fmt.Fprintf(&b, "  %8s B %s round trips: p50 %s  p99 %s  max %s", num(float64(s.Size)), kind(opOf(res.Binary)), dur(l.P50), dur(l.P99), dur(l.Max))
			if s.ServerCPUUs != nil {
				fmt.Fprintf(&b, ", server CPU %.1f µs each", *s.ServerCPUUs)
			}
			fmt.Fprintf(&b, " (%d in %.2f s)\n", s.Count, s.DurationS)
		}
	}
	if res.ServerCPUS != nil {
		fmt.Fprintf(&b, "  server     %.2f CPU-s (%.0f%% of a core)", *res.ServerCPUS, 100**res.ServerCPUS/max(res.DurationS, 1e-9))
		if res.Scenario == "connect" && res.MsgsPerServerCPUS > 0 {
			fmt.Fprintf(&b, ": %s connections per CPU-s", num(res.MsgsPerServerCPUS))
		} else if res.MsgsPerServerCPUS > 0 {
			fmt.Fprintf(&b, ": %s msgs, %s deliveries per CPU-s", num(res.MsgsPerServerCPUS), num(res.DeliveriesPerServerCPUS))
		}
		if res.ServerRSSKiB > 0 && res.Scenario != "idle" {
			fmt.Fprintf(&b, ", RSS %.1f MiB (%.1f at the start, peak %.1f)", float64(res.ServerRSSKiB)/1024,
				float64(res.RSSStartKiB)/1024, float64(res.RSSPeakKiB)/1024)
		}
		b.WriteString("\n")
	}
	fmt.Fprintf(&b, "  generator  %.2f CPU-s (%.0f%% of %d core(s))", res.GenCPUS,
		100*res.GenCPUUtil/float64(max(res.GOMAXPROCS, 1)), res.GOMAXPROCS)
	if res.GenCPUUtil > 0.9*float64(res.GOMAXPROCS) {
		b.WriteString(": the generator may have been the limit")
	}
	b.WriteString("\n")
	return b.String()
}

// num formats n with thousands separators.
func num(n float64) string {
	s := fmt.Sprintf("%.0f", n)
	neg := strings.HasPrefix(s, "-")
	s = strings.TrimPrefix(s, "-")
	var b strings.Builder
	for i, c := range s {
		if i > 0 && (len(s)-i)%3 == 0 {
			b.WriteByte(',')
		}
		b.WriteRune(c)
	}
	if neg {
		return "-" + b.String()
	}
	return b.String()
}

// dur formats microseconds.
func dur(us float64) string {
	switch {
	case us >= 1e6:
		return fmt.Sprintf("%.2f s", us/1e6)
	case us >= 1e3:
		return fmt.Sprintf("%.2f ms", us/1e3)
	default:
		return fmt.Sprintf("%.0f µs", us)
	}
}
