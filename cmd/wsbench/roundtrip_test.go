package main

import (
	"fmt"
	"net"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/gobwas/ws"
	"github.com/gobwas/ws/wsutil"
)

// echoServer serves WebSocket connections on a loopback port: a text message "e:<payload>" is
// answered with <payload> as text, a binary one with itself as asOp. It returns the address.
func echoServer(t *testing.T, asOp ws.OpCode) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	go func() {
		for {
			nc, err := ln.Accept()
			if err != nil {
				return
			}
			go func() {
				defer nc.Close()
				if _, err := ws.Upgrade(nc); err != nil {
					return
				}
				for {
					msg, op, err := wsutil.ReadClientData(nc)
					if err != nil {
						return
					}
					if op == ws.OpText {
						msg = []byte(strings.TrimPrefix(string(msg), "e:"))
					} else {
						op = asOp
					}
					if wsutil.WriteServerMessage(nc, op, msg) != nil {
						return
					}
				}
			}()
		}
	}()
	return ln.Addr().String()
}

func TestRoundtrip(t *testing.T) {
	for _, binary := range []bool{false, true} {
		cfg, err := parseFlags([]string{"-scenario", "roundtrip", "-addr", echoServer(t, ws.OpBinary), "-sizes", "0,16,70000",
			"-count", "50", "-warmup", "10ms", "-pid", fmt.Sprint(os.Getpid()), "-q", "-binary=" + fmt.Sprint(binary)})
		if err != nil {
			t.Fatal(err)
		}
		res, err := runRoundtrip(cfg)
		if err != nil {
			t.Fatalf("binary %v: %v", binary, err)
		}
		if res.Binary != binary || res.Conns != 1 || len(res.Sizes) != 3 || res.Latency != nil || res.Errors != 0 {
			t.Fatalf("binary %v: report %+v", binary, res)
		}
		for i, s := range res.Sizes {
			l := s.Latency
			if s.Size != cfg.sizes[i] || s.Count != 50 || l == nil || l.Count != 50 || l.P50 <= 0 || l.P50 > l.P99 || l.P99 > l.Max ||
				s.ServerCPUUs == nil || *s.ServerCPUUs <= 0 || s.DurationS <= 0 {
				t.Fatalf("binary %v, size %d: %+v, latency %+v", binary, cfg.sizes[i], s, l)
			}
		}
		if res.Msgs < 150 || res.Deliveries != res.Msgs {
			t.Fatalf("binary %v: %d round trips, %d deliveries", binary, res.Msgs, res.Deliveries)
		}
		if !strings.Contains(res.summary(), "70,000 B") {
			t.Fatalf("summary:\n%s", res.summary())
		}
	}
}

// TestRoundtripWrongKind: a binary message echoed as text fails the run.
func TestRoundtripWrongKind(t *testing.T) {
	cfg, err := parseFlags([]string{"-scenario", "roundtrip", "-addr", echoServer(t, ws.OpText), "-sizes", "8", "-binary", "-warmup", "0s", "-q"})
	if err != nil {
		t.Fatal(err)
	}
	res, err := runRoundtrip(cfg)
	if err == nil || !strings.Contains(err.Error(), "binary message of 8 B is a text message") || res.Errors != 1 {
		t.Fatalf("%v, %+v", err, res)
	}
}

// TestRoundtripDuration: -duration bounds each size's round trips below -count.
func TestRoundtripDuration(t *testing.T) {
	cfg, err := parseFlags([]string{"-scenario", "roundtrip", "-addr", echoServer(t, ws.OpBinary), "-size", "100", "-count", "1000000",
		"-duration", "50ms", "-warmup", "0s", "-q"})
	if err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	res, err := runRoundtrip(cfg)
	if err != nil || len(res.Sizes) != 1 || res.Sizes[0].Size != 100 || res.Sizes[0].Count == 0 || res.Sizes[0].Count >= 1000000 || time.Since(start) > 5*time.Second {
		t.Fatalf("%v, %+v", err, res)
	}
	if res.Sizes[0].ServerCPUUs != nil {
		t.Fatal("server CPU without -pid")
	}
}
