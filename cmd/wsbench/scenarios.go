package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"os"
	"strconv"
	"sync/atomic"
	"time"
)

// stallAfter fails a run in which nothing arrives for this long.
const stallAfter = 5 * time.Second

// readBuf is the initial read buffer of a connection that carries load.
const readBuf = 16 << 10

// isStop reports whether a connection error is only the run stopping it (read deadlines are set
// to now, connections closed).
func isStop(r *run, err error) bool { return r.stopping() }

// subscribeTo returns a setup step that subscribes a connection to the channel chosen by name
// and waits for the server's "ok".
func subscribeTo(name func(i int) string) func(i int, c *wsConn) error {
	return func(i int, c *wsConn) error {
		if err := c.write(c.template([]byte("s:"+name(i)), 0).frame); err != nil {
			return err
		}
		p, err := c.next()
		if err != nil {
			return fmt.Errorf("waiting for the subscription: %w", err)
		}
		if string(p) != "ok" {
			return fmt.Errorf("subscription answered %q, want \"ok\"", p)
		}
		return nil
	}
}

// subscribeMany returns a setup step that subscribes a connection to n channels "x<k>", sent at
// once, and waits for their n "ok"s.
func subscribeMany(n int) func(i int, c *wsConn) error {
	return func(i int, c *wsConn) error {
		var frames []byte
		for k := range n {
			frames = append(frames, c.template([]byte("s:x"+strconv.Itoa(k)), 0).frame...)
		}
		if err := c.write(frames); err != nil {
			return err
		}
		for range n {
			p, err := c.next()
			if err != nil {
				return fmt.Errorf("waiting for %d subscriptions: %w", n, err)
			}
			if string(p) != "ok" {
				return fmt.Errorf("subscription answered %q, want \"ok\"", p)
			}
		}
		return nil
	}
}

// --- echo ---

// runEcho: every connection sends "e:<payload>" and the server sends <payload> back. Closed loop:
// one message in flight per connection, latency is the round trip. Open loop (-rate): each
// connection sends on a fixed schedule whatever the answers do, and latency runs from the
// scheduled send time, so queueing in the server shows.
func runEcho(cfg *config) (*result, error) {
	res := newResult(cfg)
	res.Size = cfg.size
	res.Mode = "closed"
	if cfg.rate > 0 {
		res.Mode, res.Rate = "open", cfg.rate
	}
	r, err := newRun(cfg, readBuf)
	if err != nil {
		return res, err
	}
	frame := echoFrame(cfg)
	conns, err := r.dialAll(cfg.conns, 0, nil, nil)
	if err != nil {
		return res, err
	}
	r.tracked(len(conns))
	// Sends too sparse to judge a connection's progress: not checked.
	r.checkStalls = cfg.rate == 0 || float64(cfg.conns)/cfg.rate < 0.25
	if cfg.rate == 0 {
		for i, c := range conns {
			r.wg.Add(1)
			go echoClosed(r, c, frame, cfg.size, &r.progress[i])
		}
	} else {
		interval := float64(cfg.conns) / cfg.rate * 1e9 // ns between two sends of one connection
		start := mono() + int64(50*time.Millisecond)
		for i, c := range conns {
			sched := make(chan int64, 4096)
			first := start + int64(interval*float64(i)/float64(cfg.conns))
			r.wg.Add(2)
			go echoOpenWriter(r, c, frame, sched, first, interval)
			go echoOpenReader(r, c, sched, &r.progress[i])
		}
	}
	s0, s1, err := r.measure(stallAfter)
	r.fill(res, s0, s1)
	return res, err
}

// echoFrame is "e:<-size bytes>", compressed with -deflate: read-only, shared by the connections.
func echoFrame(cfg *config) []byte {
	return protoTemplate(append([]byte("e:"), padding(cfg.size)...), 0, randomKey(), cfg.deflate, cfg.proto == "socketio").frame
}

func echoClosed(r *run, c *wsConn, frame []byte, want int, progress *atomic.Int64) {
	defer r.wg.Done()
	for !r.stopping() {
		t0 := mono()
		if err := c.write(frame); err != nil {
			r.fail(fmt.Errorf("write: %w", err))
			return
		}
		p, err := c.next()
		if err != nil {
			if !isStop(r, err) {
				r.fail(fmt.Errorf("read: %w", err))
			}
			return
		}
		t1 := mono()
		r.latency(t1 - t0)
		progress.Store(t1)
		if len(p) != want {
			r.errs.Add(1)
		}
		r.answers.Add(1)
	}
}

func echoOpenWriter(r *run, c *wsConn, frame []byte, sched chan<- int64, first int64, interval float64) {
	defer r.wg.Done()
	p, err := newPacer()
	if err != nil {
		r.fail(err)
		return
	}
	defer p.close()
	for k := 0; ; k++ {
		t := first + int64(interval*float64(k))
		if !p.until(t, r.done) {
			return
		}
		select {
		case sched <- t:
		case <-r.done:
			return
		}
		if err := c.write(frame); err != nil {
			if !r.stopping() {
				r.fail(fmt.Errorf("write: %w", err))
			}
			return
		}
	}
}

func echoOpenReader(r *run, c *wsConn, sched <-chan int64, progress *atomic.Int64) {
	defer r.wg.Done()
	for {
		_, err := c.next()
		if err != nil {
			if !isStop(r, err) {
				r.fail(fmt.Errorf("read: %w", err))
			}
			return
		}
		var t int64
		select {
		case t = <-sched:
		default:
			r.errs.Add(1) // an answer to nothing we sent
			continue
		}
		t1 := mono()
		r.latency(t1 - t)
		progress.Store(t1)
		r.answers.Add(1)
	}
}

// --- fanout ---

const fanRing = 1 << 16 // messages tracked at once (a power of two)

// stalledRcvBuf is the receive buffer of a subscriber that never reads (the kernel doubles it and
// keeps a minimum).
const stalledRcvBuf = 4096

// lostAfter: a message published this long before the end of the measured interval that has not
// reached every subscriber counts as lost (-gaps).
const lostAfter = time.Second

// fanTrack follows each published message until every subscriber has it.
type fanTrack struct {
	subs int32
	sent [fanRing]atomic.Int64 // send time (scheduled time in open loop)
	got  [fanRing]atomic.Int32 // subscribers that have it

	// -gaps: the deliveries on each node, and the first and last message published while measuring
	// (first is -1 until then)
	nodes       []nodeGap
	first, last atomic.Int64
}

// nodeGap follows the deliveries to one node's subscribers: when the last came, and the longest
// time without one.
type nodeGap struct{ last, longest atomic.Int64 }

func (g *nodeGap) seen(t int64) {
	d := t - g.last.Swap(t)
	for {
		m := g.longest.Load()
		if d <= m || g.longest.CompareAndSwap(m, d) {
			return
		}
	}
}

// gapReport fills the -gaps figures of a run that ended at end (mono).
func (tr *fanTrack) gapReport(res *result, end int64) {
	for i := range tr.nodes {
		tr.nodes[i].seen(end) // a node still waiting at the end
		res.NodeGapMs = append(res.NodeGapMs, float64(tr.nodes[i].longest.Load())/1e6)
	}
	var lost uint64
	for seq := tr.first.Load(); seq >= 0 && seq <= tr.last.Load(); seq++ {
		slot := seq & (fanRing - 1)
		if tr.sent[slot].Load() > end-int64(lostAfter) {
			break
		}
		if got := tr.got[slot].Load(); got < tr.subs {
			lost++
			res.LostDeliveries += uint64(tr.subs - got)
		}
	}
	res.LostMsgs = &lost
}

// runFanout: -conns subscribers on one channel, one more connection publishes
// "p:<channel>:<8 hex seq><padding>". Closed loop: -window messages in flight, a message leaves the
// window once every subscriber has it. Open loop: -rate messages/s. Latency is the time until the
// last subscriber received the message. -stalled more subscribers never read, with a tiny receive
// buffer, so that what is sent to them piles up in the server at once; they are not waited for.
// With several nodes, subscriber i is on node i mod nodes and the publisher on the first; -channels
// adds a connection per node holding that many other subscriptions.
func runFanout(cfg *config) (*result, error) {
	res := newResult(cfg)
	res.Size = cfg.size
	res.Mode = "closed"
	res.Window = cfg.window
	if cfg.rate > 0 {
		res.Mode, res.Rate, res.Window = "open", cfg.rate, 0
	}
	if cfg.window > fanRing/2 {
		return res, fmt.Errorf("-window at most %d", fanRing/2)
	}
	r, err := newRun(cfg, readBuf)
	if err != nil {
		return res, err
	}
	subs, err := r.dialAll(cfg.conns, 0, nil, subscribeTo(func(int) string { return cfg.channel }))
	if err != nil {
		return res, err
	}
	pubs, err := r.dialAll(1, r.dial.onFirstNode(cfg.conns), nil, nil)
	if err != nil {
		return res, err
	}
	var stalled []*wsConn
	if cfg.stalled > 0 {
		res.Stalled = cfg.stalled
		r.dial.rcvBuf = stalledRcvBuf // for these connections only: dialAll uses r.dial
		stalled, err = r.dialAll(cfg.stalled, cfg.conns+1, nil, subscribeTo(func(int) string { return cfg.channel }))
		r.dial.rcvBuf = 0
		if err != nil {
			return res, err
		}
		// Left open by stop: whether the server closed them is checked after the run.
		r.mu.Lock()
		r.conns = r.conns[:len(r.conns)-len(stalled)]
		r.mu.Unlock()
	}
	pub := pubs[0]
	nodes := len(r.dial.addrs)
	if cfg.channels > 0 {
		holders, err := r.dialAll(nodes, r.dial.onFirstNode(cfg.conns)+nodes, nil, subscribeMany(cfg.channels))
		if err != nil {
			return res, err
		}
		for _, c := range holders {
			r.wg.Add(1)
			go discard(r, c)
		}
	}
	tr := &fanTrack{subs: int32(cfg.conns)}
	tr.first.Store(-1)
	if cfg.gaps {
		tr.nodes = make([]nodeGap, nodes)
		for i := range tr.nodes {
			tr.nodes[i].last.Store(mono())
		}
	}
	tokens := make(chan struct{}, cfg.window)
	for range cfg.window {
		tokens <- struct{}{}
	}
	for i, c := range subs {
		var gap *nodeGap
		if cfg.gaps {
			gap = &tr.nodes[i%nodes]
		}
		r.wg.Add(1)
		go fanSubscriber(r, c, tr, tokens, gap)
	}
	r.wg.Add(2)
	go discard(r, pub)
	go fanPublisher(r, pub, tr, tokens)
	s0, s1, err := r.measure(stallAfter)
	r.fill(res, s0, s1)
	if cfg.gaps {
		tr.gapReport(res, int64(s1.t.Sub(base)))
	}
	if stalled != nil {
		n := closedByServer(stalled)
		res.StalledClosed = &n
	}
	return res, err
}

// closedByServer reads what the server sent to connections that did not read (the load has
// stopped, so it ends) and counts those the server closed; it closes them all.
func closedByServer(conns []*wsConn) int {
	n := 0
	for _, c := range conns {
		c.nc.SetReadDeadline(time.Now().Add(2 * time.Second))
		var err error
		for err == nil {
			_, err = c.next()
		}
		var ne net.Error
		if !errors.As(err, &ne) || !ne.Timeout() {
			n++ // a close frame, EOF or a reset
		}
		c.nc.Close()
	}
	return n
}

// fanSubscriber counts what one subscriber receives; gap (-gaps) follows its node.
func fanSubscriber(r *run, c *wsConn, tr *fanTrack, tokens chan<- struct{}, gap *nodeGap) {
	defer r.wg.Done()
	for {
		p, err := c.next()
		if err != nil {
			if !isStop(r, err) {
				r.fail(fmt.Errorf("subscriber read: %w", err))
			}
			return
		}
		r.deliveries.Add(1)
		if gap != nil {
			gap.seen(mono())
		}
		seq, ok := parseHex(p)
		if !ok {
			r.errs.Add(1)
			continue
		}
		slot := seq & (fanRing - 1)
		if tr.got[slot].Add(1) == tr.subs {
			r.latency(mono() - tr.sent[slot].Load())
			r.msgs.Add(1)
			select {
			case tokens <- struct{}{}:
			default:
			}
		}
	}
}

func fanPublisher(r *run, pub *wsConn, tr *fanTrack, tokens <-chan struct{}) {
	defer r.wg.Done()
	p, err := newPacer()
	if err != nil {
		r.fail(err)
		return
	}
	defer p.close()
	prefix := "p:" + r.cfg.channel + ":"
	tpl := pub.template(append([]byte(prefix+"00000000"), padding(r.cfg.size-8)...), len(prefix)+8)
	interval := 0.0
	start := mono()
	if r.cfg.rate > 0 {
		interval = 1e9 / r.cfg.rate
	}
	for seq := uint32(0); ; seq++ {
		var t int64
		if interval == 0 {
			select {
			case <-tokens:
			case <-r.done:
				return
			}
			t = mono()
		} else {
			t = start + int64(interval*float64(seq))
			if !p.until(t, r.done) {
				return
			}
			// Never reuse a slot whose message is still travelling.
			for uint64(seq)-r.msgs.Load() >= fanRing/2 {
				if !sleepUntil(mono()+int64(time.Millisecond), r.done) {
					return
				}
			}
		}
		slot := seq & (fanRing - 1)
		tr.got[slot].Store(0)
		tr.sent[slot].Store(t)
		if r.measuring() {
			tr.first.CompareAndSwap(-1, int64(seq))
			tr.last.Store(int64(seq))
		}
		tpl.patchHex(len(prefix), seq)
		if err := pub.write(tpl.frame); err != nil {
			if !r.stopping() {
				r.fail(fmt.Errorf("publish: %w", err))
			}
			return
		}
	}
}

// discard reads and drops what a connection receives (answering pings).
func discard(r *run, c *wsConn) {
	defer r.wg.Done()
	for {
		if _, err := c.next(); err != nil {
			if !isStop(r, err) {
				r.fail(fmt.Errorf("read: %w", err))
			}
			return
		}
	}
}

// --- rooms ---

// runRooms: connections in rooms of -room, each subscribed to its room's channel. Every
// connection sends "r:<room>:<8 hex conn><8 hex seq><padding>" and waits for its reply; the server
// replies to the sender and publishes the payload to the room, so each request makes room+1
// deliveries. msgs counts replies, deliveries every message received.
func runRooms(cfg *config) (*result, error) {
	res := newResult(cfg)
	res.Size, res.Mode, res.Room = cfg.size, "closed", cfg.room
	r, err := newRun(cfg, readBuf)
	if err != nil {
		return res, err
	}
	room := func(i int) string { return "room" + strconv.Itoa(i/cfg.room) }
	conns, err := r.dialAll(cfg.conns, 0, nil, subscribeTo(room))
	if err != nil {
		return res, err
	}
	r.tracked(len(conns))
	for i, c := range conns {
		prefix := "r:" + room(i) + ":"
		tpl := c.template(append([]byte(prefix+"0000000000000000"), padding(cfg.size-16)...), len(prefix)+16)
		tpl.patchHex(len(prefix), uint32(i))
		r.wg.Add(1)
		go roomClient(r, c, uint32(i), tpl, len(prefix), &r.progress[i])
	}
	s0, s1, err := r.measure(stallAfter)
	r.fill(res, s0, s1)
	return res, err
}

func roomClient(r *run, c *wsConn, id uint32, tpl *template, off int, progress *atomic.Int64) {
	defer r.wg.Done()
	for seq := uint32(0); !r.stopping(); seq++ {
		tpl.patchHex(off+8, seq)
		t0 := mono()
		if err := c.write(tpl.frame); err != nil {
			r.fail(fmt.Errorf("write: %w", err))
			return
		}
		for {
			p, err := c.next()
			if err != nil {
				if !isStop(r, err) {
					r.fail(fmt.Errorf("read: %w", err))
				}
				return
			}
			r.deliveries.Add(1)
			from, ok1 := parseHex(p)
			s, ok2 := parseHex(p[min(8, len(p)):])
			if !ok1 || !ok2 {
				r.errs.Add(1)
				continue
			}
			if from == id && s == seq {
				break // the reply (or our own broadcast, whichever comes first)
			}
		}
		t1 := mono()
		r.latency(t1 - t0)
		progress.Store(t1)
		r.msgs.Add(1)
	}
}

// --- send ---

// runSend: -conns connections in pairs (2k, 2k+1), which several nodes put on different nodes.
// Each learns its socket id ("i:"). The first of a pair asks its server to send
// "<8 hex pair><8 hex seq><padding>" to its partner ("d:<id>:<payload>") and waits; the partner
// sends it back the same way. msgs counts round trips (the latency), deliveries every message.
func runSend(cfg *config) (*result, error) {
	res := newResult(cfg)
	res.Size, res.Mode = cfg.size, "closed"
	r, err := newRun(cfg, readBuf)
	if err != nil {
		return res, err
	}
	ids := make([]string, cfg.conns)
	conns, err := r.dialAll(cfg.conns, 0, nil, func(i int, c *wsConn) error {
		if err := c.write(c.template([]byte("i:"), 0).frame); err != nil {
			return err
		}
		p, err := c.next()
		if err != nil {
			return fmt.Errorf("waiting for the socket id: %w", err)
		}
		ids[i] = string(p)
		return nil
	})
	if err != nil {
		return res, err
	}
	pairs := cfg.conns / 2
	r.tracked(pairs)
	for k := range pairs {
		to := func(i int) (*template, int) {
			prefix := "d:" + ids[i] + ":"
			tpl := conns[i^1].template(append([]byte(prefix+"0000000000000000"), padding(cfg.size-16)...), len(prefix)+16)
			tpl.patchHex(len(prefix), uint32(k))
			return tpl, len(prefix)
		}
		ask, askAt := to(2*k + 1)
		answer, answerAt := to(2 * k)
		r.wg.Add(2)
		go roomClient(r, conns[2*k], uint32(k), ask, askAt, &r.progress[k])
		go sendBack(r, conns[2*k+1], answer, answerAt)
	}
	s0, s1, err := r.measure(stallAfter)
	r.fill(res, s0, s1)
	return res, err
}

// sendBack answers every message with its pair and sequence numbers, through tpl.
func sendBack(r *run, c *wsConn, tpl *template, off int) {
	defer r.wg.Done()
	for {
		p, err := c.next()
		if err != nil {
			if !isStop(r, err) {
				r.fail(fmt.Errorf("read: %w", err))
			}
			return
		}
		r.deliveries.Add(1)
		if len(p) < 16 {
			r.errs.Add(1)
			continue
		}
		tpl.patch(off, p[:16])
		if err := c.write(tpl.frame); err != nil {
			if !r.stopping() {
				r.fail(fmt.Errorf("write: %w", err))
			}
			return
		}
	}
}

// --- idle ---

// runIdle opens -conns connections, the first one alone (the baseline), says so on stderr as soon
// as they are all open, holds them for -duration and reports the server's RSS before (with the
// first one), once open and at the end. With -mem it also asks the server, on the first
// connection, for its memory figures before and at the end. With -warm every connection,
// the first one too, echoes one message as it opens.
func runIdle(cfg *config) (*result, error) {
	res := newResult(cfg)
	r, err := newRun(cfg, 512)
	if err != nil {
		return res, err
	}
	t0 := time.Now()
	var warm func(int, *wsConn) error
	if cfg.warm {
		warm = echoOnce(cfg)
	}
	first, err := r.dialAll(1, 0, nil, warm)
	if err != nil {
		return res, err
	}
	if cfg.mem {
		if res.MemBefore, err = askMemory(first[0], r.dial.timeout); err != nil {
			r.stop()
			return res, err
		}
	}
	if len(cfg.pids) > 0 {
		res.RSSBeforeKiB, _ = serverRSS(cfg.pids)
		res.AnonBeforeKiB, _ = serverAnonRSS(cfg.pids)
	}
	conns, err := r.dialAll(cfg.conns-1, 1, nil, warm)
	if err != nil {
		r.stop()
		return res, err
	}
	res.OpenS = time.Since(t0).Seconds()
	var alive atomic.Int64
	alive.Store(int64(len(conns)))
	for _, c := range conns {
		r.wg.Add(1)
		go func() {
			defer r.wg.Done()
			if _, err := c.next(); err != nil && !isStop(r, err) {
				alive.Add(-1)
			}
		}()
	}
	if len(cfg.pids) > 0 {
		res.RSSOpenKiB, _ = serverRSS(cfg.pids)
	}
	if !cfg.quiet {
		fmt.Fprintf(os.Stderr, "wsbench: ready: %d connections open in %.2f s\n", cfg.conns, res.OpenS)
	}
	s0 := r.sample()
	r.phase.Store(phaseMeasure)
	select {
	case <-time.After(cfg.duration):
	case <-r.failed:
	}
	s1 := r.sample()
	if cfg.mem {
		res.MemAfter, err = askMemory(first[0], r.dial.timeout)
	}
	r.phase.Store(phaseStop)
	res.Alive = int(alive.Load()) + 1
	r.fill(res, s0, s1)
	n := float64(len(conns))
	if res.ServerRSSKiB > 0 && res.RSSBeforeKiB > 0 {
		res.RSSPerConnKiB = float64(res.ServerRSSKiB-res.RSSBeforeKiB) / n
	}
	if res.AnonBeforeKiB > 0 {
		if anon, err := serverAnonRSS(cfg.pids); err == nil {
			res.AnonPerConnKiB = float64(anon-res.AnonBeforeKiB) / n
		}
	}
	if res.MemAfter != nil {
		res.MemPerConn = map[string]float64{}
		for k, v := range res.MemAfter {
			res.MemPerConn[k] = (v - res.MemBefore[k]) / n
		}
	}
	if serr := r.stop(); err == nil {
		err = serr
	}
	if err == nil && res.Alive < cfg.conns {
		err = fmt.Errorf("%d of %d connections were closed by the server", cfg.conns-res.Alive, cfg.conns)
	}
	return res, err
}

// echoOnce is the setup step of idle -warm: one echo of -size bytes, answered in full.
func echoOnce(cfg *config) func(i int, c *wsConn) error {
	frame := echoFrame(cfg)
	return func(i int, c *wsConn) error {
		if err := c.write(frame); err != nil {
			return err
		}
		p, err := c.next()
		if err != nil {
			return fmt.Errorf("waiting for the echo: %w", err)
		}
		if len(p) != cfg.size {
			return fmt.Errorf("an echo of %d bytes answered with %d", cfg.size, len(p))
		}
		return nil
	}
}

// askMemory sends "m:" and returns the server's answer: a JSON object of numbers.
func askMemory(c *wsConn, timeout time.Duration) (map[string]float64, error) {
	c.nc.SetDeadline(time.Now().Add(timeout))
	defer c.nc.SetDeadline(time.Time{})
	if err := c.write(c.template([]byte("m:"), 0).frame); err != nil {
		return nil, fmt.Errorf("asking for the memory figures: %w", err)
	}
	p, err := c.next()
	if err != nil {
		return nil, fmt.Errorf("waiting for the memory figures: %w", err)
	}
	var m map[string]float64
	if err := json.Unmarshal(p, &m); err != nil {
		return nil, fmt.Errorf("the memory figures %q: %w", p, err)
	}
	return m, nil
}

// --- connect ---

// runConnect: -conns dialers in parallel, each opening a connection (the upgrade carries
// "X-Bench-Token: t<n>"), closing it with a close frame once open, waiting for the server to
// close, and starting again. msgs counts completed upgrades; latency is connect + upgrade.
func runConnect(cfg *config) (*result, error) {
	res := newResult(cfg)
	r, err := newRun(cfg, 1024)
	if err != nil {
		return res, err
	}
	var next atomic.Uint64
	var firstErr atomic.Pointer[string]
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go func() { <-r.done; cancel() }()
	for range cfg.conns {
		r.wg.Add(1)
		go func() {
			defer r.wg.Done()
			for !r.stopping() {
				n := next.Add(1)
				t0 := mono()
				c, err := r.dial.dial(ctx, int(n), []string{"X-Bench-Token: t" + strconv.FormatUint(n, 10)})
				if err != nil {
					if r.stopping() {
						return
					}
					r.errs.Add(1)
					s := err.Error()
					firstErr.CompareAndSwap(nil, &s)
					time.Sleep(10 * time.Millisecond)
					continue
				}
				r.latency(mono() - t0)
				r.msgs.Add(1)
				closeGracefully(c)
			}
		}()
	}
	s0, s1, err := r.measure(stallAfter)
	r.fill(res, s0, s1)
	if p := firstErr.Load(); p != nil && err == nil && res.Errors > 0 {
		res.Error = "first connection error: " + *p
	}
	return res, err
}

// closeGracefully sends a close frame and waits (briefly) for the server to close its side
// first, so that TIME_WAIT stays on the server side and the generator's ports are not used up.
func closeGracefully(c *wsConn) {
	c.nc.SetDeadline(time.Now().Add(2 * time.Second))
	if c.write(closeFrame(c.key)) == nil {
		for {
			if _, err := c.next(); err != nil {
				if errors.Is(err, errServerClosed) {
					// The server's close frame; now wait for its FIN.
					var b [64]byte
					for {
						if _, err := c.nc.Read(b[:]); err != nil {
							break
						}
					}
				}
				break
			}
		}
	}
	c.nc.Close()
}
