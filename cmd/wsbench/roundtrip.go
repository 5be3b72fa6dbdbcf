package main

import (
	"bytes"
	"errors"
	"fmt"
	"time"

	"github.com/gobwas/ws"
)

// roundtripRep is one size's figures in the roundtrip report.
type roundtripRep struct {
	Size      int         `json:"size"`
	Count     uint64      `json:"count"`
	DurationS float64     `json:"duration_s"` // the wall time of the measured round trips
	Latency   *latencyRep `json:"latency_us"`
	// the server's CPU time over the measured round trips, divided by their count (µs); absent
	// without -pid
	ServerCPUUs *float64 `json:"server_cpu_us,omitempty"`
}

// runRoundtrip: one connection, and for each of -sizes in turn, round trips for -warmup (not
// counted) and then -count of them or as many as -duration allows (a 16 MiB round trip takes
// 0.1 s or more), each one message sent and its echo read before the next. Text
// messages "e:<payload>" (Autobahn|Testsuite 9.7), or with -binary a binary <payload> that the
// server echoes as it is (9.8). Latency is the round trip; each size has its own figures.
func runRoundtrip(cfg *config) (*result, error) {
	res := newResult(cfg)
	res.Mode, res.Binary = "closed", cfg.binary
	r, err := newRun(cfg, readBuf)
	if err != nil {
		return res, err
	}
	conns, err := r.dialAll(1, 0, nil, nil)
	if err != nil {
		return res, err
	}
	c := conns[0]
	s0 := r.sample()
	err = func() error {
		for _, size := range cfg.sizes {
			rep, err := roundtrips(r, c, size)
			res.Sizes = append(res.Sizes, rep)
			if err != nil {
				return fmt.Errorf("%d B: %w", size, err)
			}
		}
		return nil
	}()
	r.phase.Store(phaseStop)
	s1 := r.sample()
	r.fill(res, s0, s1) // no latency of its own: each size has its figures
	if serr := r.stop(); err == nil {
		err = serr
	}
	return res, err
}

// roundtrips measures one size on c: round trips for -warmup, then -count of them, for at most
// -duration.
func roundtrips(r *run, c *wsConn, size int) (roundtripRep, error) {
	rep := roundtripRep{Size: size}
	payload := padding(size)
	op := opOf(r.cfg.binary)
	var frame []byte
	if op == ws.OpText {
		frame = c.template(append([]byte("e:"), payload...), 0).frame
	} else {
		frame = maskedFrame(op, false, payload, c.key)
	}
	one := func(h *histogram) error {
		// A server that stops answering fails the run instead of hanging it.
		c.nc.SetDeadline(time.Now().Add(stallAfter))
		t0 := mono()
		if err := c.write(frame); err != nil {
			return fmt.Errorf("write: %w", err)
		}
		p, err := c.next()
		if err != nil {
			return fmt.Errorf("read: %w", err)
		}
		if h != nil {
			h.record(mono() - t0)
		}
		r.answers.Add(1)
		if !bytes.Equal(p, payload) || c.op != op {
			r.errs.Add(1)
			return fmt.Errorf("the echo of a %s message of %d B is a %s message of %d B, or other bytes", kind(op), size, kind(c.op), len(p))
		}
		return nil
	}
	for end := time.Now().Add(r.cfg.warmup); time.Now().Before(end); {
		if err := one(nil); err != nil {
			return rep, err
		}
	}
	var h histogram
	cpu0, cpuErr := takeCPU(r.cfg.pids)
	t0 := time.Now()
	for i := 0; i < r.cfg.count && time.Since(t0) < r.cfg.duration; i++ {
		if err := one(&h); err != nil {
			return rep, err
		}
	}
	rep.DurationS = time.Since(t0).Seconds()
	cpu1, cpuErr1 := takeCPU(r.cfg.pids)
	rep.Count, rep.Latency = h.count(), h.report()
	if len(r.cfg.pids) > 0 && cpuErr == nil && cpuErr1 == nil {
		us := cpu0.until(cpu1) * 1e6 / float64(rep.Count)
		rep.ServerCPUUs = &us
	}
	return rep, errors.Join(cpuErr, cpuErr1)
}

// opOf is the opcode of the messages of a roundtrip run.
func opOf(binary bool) ws.OpCode {
	if binary {
		return ws.OpBinary
	}
	return ws.OpText
}

// kind names a data message's opcode.
func kind(op ws.OpCode) string {
	if op == ws.OpBinary {
		return "binary"
	}
	return "text"
}
