package natstest

import (
	"crypto/tls"
	"errors"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
)

const testTimeout = 5 * time.Second

// connect connects a plain nats.go client to url, which must succeed, and closes it at cleanup.
func connect(t *testing.T, url string, opts ...nats.Option) *nats.Conn {
	t.Helper()
	nc, err := nats.Connect(url, append(opts, nats.Timeout(testTimeout))...)
	if err != nil {
		t.Fatalf("connecting to %s: %v", url, err)
	}
	t.Cleanup(nc.Close)
	return nc
}

// roundTrip subscribes on sub, publishes on pub and waits for the message.
func roundTrip(t *testing.T, sub, pub *nats.Conn) {
	t.Helper()
	s, err := sub.SubscribeSync("natstest.round")
	if err != nil {
		t.Fatal(err)
	}
	if err := sub.Flush(); err != nil {
		t.Fatal(err)
	}
	if err := pub.Publish("natstest.round", []byte("hello")); err != nil {
		t.Fatal(err)
	}
	m, err := s.NextMsg(testTimeout)
	if err != nil || string(m.Data) != "hello" {
		t.Fatalf("round trip: %v, %v", m, err)
	}
}

func TestPlain(t *testing.T) {
	s := Start(t, Options{})
	if !strings.HasPrefix(s.URL, "nats://127.0.0.1:") || s.CAs != nil {
		t.Fatalf("URL %q, CAs %v", s.URL, s.CAs)
	}
	nc := connect(t, s.URL)
	roundTrip(t, nc, nc)
	if n := s.Interest("natstest.round"); n != 1 {
		t.Fatalf("the server counts %d subscriptions on natstest.round", n)
	}
	subs := s.Subscriptions(mustClientID(t, nc))
	if !slices.Contains(subs, "natstest.round") {
		t.Fatalf("the server lists the subscriptions %q", subs)
	}
}

func TestCredentials(t *testing.T) {
	for _, tc := range []struct {
		name, wrong string
		opts        Options
	}{
		{"token", "nats://wrong@", Options{Token: "t0ken"}},
		{"user", "nats://user:wrong@", Options{User: "user", Password: "pa ss"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s := Start(t, tc.opts)
			roundTrip(t, connect(t, s.URL), connect(t, s.URL))
			host := s.URL[strings.LastIndexByte(s.URL, '@')+1:]
			if _, err := nats.Connect(tc.wrong + host); !errors.Is(err, nats.ErrAuthorization) {
				t.Fatalf("wrong credentials: %v", err)
			}
		})
	}
}

func TestTLSWithToken(t *testing.T) {
	s := Start(t, Options{TLS: true, Token: "secret"})
	if !strings.HasPrefix(s.URL, "tls://secret@127.0.0.1:") {
		t.Fatalf("URL %q", s.URL)
	}
	nc := connect(t, s.URL, nats.Secure(&tls.Config{RootCAs: s.CAs}))
	if !nc.TLSRequired() {
		t.Fatal("not over TLS")
	}
	roundTrip(t, nc, nc)
	if _, err := nats.Connect(s.URL, nats.Timeout(testTimeout)); err == nil || !strings.Contains(err.Error(), "certificate") {
		t.Fatalf("a client without the CA: %v", err)
	}
}

func TestKillRestart(t *testing.T) {
	s := Start(t, Options{})
	s.Kill()
	if nc, err := nats.Connect(s.URL); err == nil {
		nc.Close()
		t.Fatal("connected to a killed server")
	}
	s.Restart()
	nc := connect(t, s.URL)
	roundTrip(t, nc, nc)
}

func TestCluster(t *testing.T) {
	servers := StartCluster(t, 3)
	sub := connect(t, servers[2].URL)
	s, err := sub.SubscribeSync("natstest.across")
	if err != nil {
		t.Fatal(err)
	}
	if err := sub.Flush(); err != nil {
		t.Fatal(err)
	}
	pub := connect(t, servers[0].URL)
	// Interest crosses the routes shortly after the subscription, with no event to wait for.
	for deadline := time.Now().Add(testTimeout); servers[0].Interest("natstest.across") != 1; {
		if time.Now().After(deadline) {
			t.Fatalf("the subscription did not reach the first server's routes within %v", testTimeout)
		}
		time.Sleep(10 * time.Millisecond)
	}
	if err := pub.Publish("natstest.across", []byte("x")); err != nil {
		t.Fatal(err)
	}
	if _, err := s.NextMsg(testTimeout); err != nil {
		t.Fatalf("across the cluster: %v", err)
	}
}

func mustClientID(t *testing.T, nc *nats.Conn) uint64 {
	t.Helper()
	cid, err := nc.GetClientID()
	if err != nil {
		t.Fatal(err)
	}
	return cid
}
