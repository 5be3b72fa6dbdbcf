package cluster_test

import (
	"bytes"
	"context"
	"log/slog"
	"os/exec"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/coder/websocket"

	"github.com/wsbroker/wsbroker/broker"
	"github.com/wsbroker/wsbroker/cluster"
	"github.com/wsbroker/wsbroker/cluster/redis"
	"github.com/wsbroker/wsbroker/internal/redistest"
)

const waitTimeout = 10 * time.Second

// opened is a Handler that accepts every socket and reports its id.
type opened struct {
	b   *broker.Broker
	ids chan uint64
}

func (h *opened) Open(c *broker.Conn, _ *broker.Request) {
	h.b.Accept(c.ID(), true)
	h.ids <- c.ID()
}
func (h *opened) Text(*broker.Conn, []byte)   {}
func (h *opened) Binary(*broker.Conn, []byte) {}
func (h *opened) ReadDone(*broker.Conn)       {}
func (h *opened) Close(*broker.Conn)          {}

// node is one Broker of a test cluster, listening on loopback.
type node struct {
	b    *broker.Broker
	n    *cluster.Node
	h    *opened
	addr string
}

// join starts a Broker and joins it to the cluster on srv.
func join(t *testing.T, srv *redistest.Server, opts cluster.Options) *node {
	t.Helper()
	return joinURL(t, srv.URL, opts)
}

// joinURL starts a Broker and joins it to the cluster on the Redis at url.
func joinURL(t *testing.T, url string, opts cluster.Options) *node {
	t.Helper()
	h := &opened{ids: make(chan uint64, 100)}
	h.b = broker.New(h, broker.Options{})
	listeners, err := h.b.Listen([]string{"127.0.0.1:0"}, broker.DefaultLimits())
	if err != nil {
		t.Fatal(err)
	}
	e, err := redis.New(url, redis.Options{})
	if err != nil {
		t.Fatal(err)
	}
	n, err := cluster.Join(h.b, e, opts)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), waitTimeout)
	defer cancel()
	if err := n.WaitConnected(ctx); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		h.b.Close()
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		defer cancel()
		n.Leave(ctx)
	})
	return &node{b: h.b, n: n, h: h, addr: listeners.Addrs()[0].String()}
}

// client dials nd and returns the connection and its socket id.
func (nd *node) client(t *testing.T) (*websocket.Conn, uint64) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), waitTimeout)
	defer cancel()
	c, _, err := websocket.Dial(ctx, "ws://"+nd.addr, nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.CloseNow() })
	select {
	case id := <-nd.h.ids:
		return c, id
	case <-ctx.Done():
		t.Fatal("no open")
		return nil, 0
	}
}

func read(t *testing.T, c *websocket.Conn) string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), waitTimeout)
	defer cancel()
	_, p, err := c.Read(ctx)
	if err != nil {
		t.Fatalf("read: %v", err)
	}
	return string(p)
}

func expect(t *testing.T, c *websocket.Conn, want string) {
	t.Helper()
	if got := read(t, c); got != want {
		t.Fatalf("got %q, want %q", got, want)
	}
}

// eventually waits until cond holds, checking it each millisecond: the state it reads is another
// process's (Redis) or another goroutine's, with no event to wait on.
func eventually(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(waitTimeout)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(time.Millisecond)
	}
}

// numsub returns how many subscribers Redis counts for topic.
func numsub(t *testing.T, srv *redistest.Server, topic string) int {
	t.Helper()
	out, err := exec.Command("redis-cli", append(cliArgs(t, srv.URL), "PUBSUB", "NUMSUB", topic)...).Output()
	if err != nil {
		t.Fatalf("redis-cli: %v", err)
	}
	lines := strings.Fields(string(out))
	n, err := strconv.Atoi(lines[len(lines)-1])
	if err != nil {
		t.Fatalf("PUBSUB NUMSUB answered %q", out)
	}
	return n
}

// subscribed waits until the engine has confirmed every interest change of the nodes.
func subscribed(t *testing.T, nodes ...*node) {
	t.Helper()
	eventually(t, "subscriptions confirmed", func() bool {
		for _, nd := range nodes {
			if nd.n.Stats().PendingSubscribes != 0 {
				return false
			}
		}
		return true
	})
}

// Three nodes: a channel's publication reaches its subscribers on every node once, the exception
// of another node included; a socket of another node can be sent to, closed, given a token and
// subscribed; a node without subscribers to a channel is not subscribed to it in Redis.
func TestClusterChannelsAndSockets(t *testing.T) {
	srv := redistest.Start(t, redistest.Options{})
	a, b, c := join(t, srv, cluster.Options{}), join(t, srv, cluster.Options{}), join(t, srv, cluster.Options{})
	ca, ida := a.client(t)
	cb, idb := b.client(t)
	cb2, idb2 := b.client(t)
	_, idc := c.client(t)
	ids := map[uint64]bool{ida: true, idb: true, idb2: true, idc: true}
	for id := range ids {
		if id > 1<<53-1 || id>>32 == 0 {
			t.Fatalf("id %d: want slot·2^32+seq, at most 2^53-1", id)
		}
	}
	if len(ids) != 4 {
		t.Fatalf("ids not distinct: %v", ids)
	}

	a.b.Subscribe(ida, []byte("room"))
	b.b.Subscribe(idb, []byte("room"))
	b.b.Subscribe(idb2, []byte("room"))
	subscribed(t, a, b, c)
	if got := numsub(t, srv, "wsb:c:room"); got != 2 {
		t.Fatalf("PUBSUB NUMSUB wsb:c:room = %d, want 2 (a and b; c has no subscriber)", got)
	}

	a.b.SendToChannel([]byte("room"), []byte("one"), true, idb2)
	expect(t, ca, "one")
	expect(t, cb, "one")
	a.b.SendToChannel([]byte("room"), []byte("two"), true, 0)
	expect(t, ca, "two")
	expect(t, cb, "two")
	expect(t, cb2, "two") // not "one": the exception was a socket of node b

	count, complete := c.n.SubscriberCount(context.Background(), []byte("room"))
	if count != 3 || !complete {
		t.Fatalf("cluster subscriber count from c: %d (complete %v), want 3", count, complete)
	}

	// A socket of b, from a.
	a.b.Send(idb, []byte("direct"), true)
	expect(t, cb, "direct")
	if a.b.Subscribe(idb, []byte("other")) {
		t.Fatal("subscribe of another node's socket returned true")
	}
	eventually(t, "the remote subscribe", func() bool { return b.b.SubscriberCount([]byte("other")) == 1 })
	a.b.SetToken(idb, []byte("tok"))
	a.b.CopySubscriptions([]byte("other"), []byte("copied"))
	eventually(t, "the copy on b", func() bool { return b.b.SubscriberCount([]byte("copied")) == 1 })
	if closed, err := a.b.CloseSocket(idb2, 4001, []byte("bye")); !closed || err != nil {
		t.Fatalf("close of another node's socket: %v %v", closed, err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), waitTimeout)
	defer cancel()
	if _, _, err := cb2.Read(ctx); websocket.CloseStatus(err) != 4001 {
		t.Fatalf("closed with %v, want 4001", err)
	}

	// The last subscriber gone, b's interest is too.
	b.b.Unsubscribe(idb, []byte("room"))
	subscribed(t, a, b, c)
	eventually(t, "b's interest gone", func() bool { return numsub(t, srv, "wsb:c:room") == 1 })

	eventually(t, "3 nodes", func() bool { return a.n.Stats().Nodes == 3 })
	if st := a.n.Stats(); !st.Connected || st.Dropped != (cluster.Dropped{}) {
		t.Fatalf("a's stats %+v", st)
	}
}

// The empty channel's topic is the channel prefix itself: it crosses nodes as any other does.
// lockedBuffer is a log's output, read by the test while the node writes.
type lockedBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *lockedBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

// A publication Redis refuses (the node's user has no ACL for its channel) is dropped and
// counted, logged, and holds up nothing behind it; what was published with it is not repeated.
// A refused subscription is logged.
func TestClusterRefusedPublication(t *testing.T) {
	srv := redistest.Start(t, redistest.Options{})
	srv.CLI(t, "ACL", "SETUSER", "limited", "on", ">pw", "resetchannels", "&wsb:c:open", "&wsb:n:*", "&wsb:ctl", "&wsbroker:*", "+@all", "~*")
	var log lockedBuffer
	a := joinURL(t, strings.Replace(srv.URL, "unix://", "unix://limited:pw@", 1), cluster.Options{Logger: slog.New(slog.NewTextHandler(&log, nil))})
	b := join(t, srv, cluster.Options{})
	ca, ida := a.client(t)
	cb, idb := b.client(t)
	a.b.Subscribe(ida, []byte("open"))
	b.b.Subscribe(idb, []byte("open"))
	b.b.Subscribe(idb, []byte("closed"))
	subscribed(t, a, b)

	k := a.b.NewCork() // both in one batch of the publisher
	k.SendToChannel([]byte("closed"), []byte("refused"), true, 0)
	k.SendToChannel([]byte("open"), []byte("first"), true, 0)
	k.Flush()
	a.b.SendToChannel([]byte("open"), []byte("second"), true, 0)
	for _, c := range []*websocket.Conn{ca, cb} {
		expect(t, c, "first")
		expect(t, c, "second")
	}
	// The publisher counts and logs the refusal once Redis's replies are read, which may come after
	// the deliveries.
	eventually(t, "the refusal logged", func() bool { return strings.Contains(log.String(), "refused to publish") })
	if d := a.n.Stats().Dropped; d.Refused != 1 {
		t.Fatalf("dropped %+v: want 1 refused", d)
	}
	if got := log.String(); !strings.Contains(got, "NOPERM") || strings.Contains(got, "pw@") {
		t.Fatalf("log %q: want Redis's words, no password", got)
	}
	a.b.Subscribe(ida, []byte("closed"))
	eventually(t, "the refused subscription logged", func() bool { return strings.Contains(log.String(), "refused subscriptions") })
}

func TestClusterEmptyChannel(t *testing.T) {
	srv := redistest.Start(t, redistest.Options{})
	a, b := join(t, srv, cluster.Options{}), join(t, srv, cluster.Options{})
	cb, idb := b.client(t)
	b.b.Subscribe(idb, []byte{})
	subscribed(t, a, b)
	a.b.SendToChannel([]byte{}, []byte("to nobody's name"), true, 0)
	expect(t, cb, "to nobody's name")
}

// Messages from one node arrive in order on the others, channel messages and sends to one socket
// interleaved.
func TestClusterOrder(t *testing.T) {
	srv := redistest.Start(t, redistest.Options{})
	a, b := join(t, srv, cluster.Options{}), join(t, srv, cluster.Options{})
	cb, idb := b.client(t)
	b.b.Subscribe(idb, []byte("seq"))
	subscribed(t, b)
	const n = 1000
	for i := range n {
		if i%2 == 0 {
			a.b.SendToChannel([]byte("seq"), []byte(strconv.Itoa(i)), true, 0)
		} else {
			a.b.Send(idb, []byte(strconv.Itoa(i)), true)
		}
	}
	for i := range n {
		expect(t, cb, strconv.Itoa(i))
	}
}

// Redis killed: each node still delivers to its own subscribers and says it is disconnected;
// Redis back, the nodes subscribe again and cross-node delivery resumes.
func TestClusterEngineOutage(t *testing.T) {
	srv := redistest.Start(t, redistest.Options{TCP: true})
	a, b := join(t, srv, cluster.Options{}), join(t, srv, cluster.Options{})
	ca, ida := a.client(t)
	cb, idb := b.client(t)
	a.b.Subscribe(ida, []byte("room"))
	b.b.Subscribe(idb, []byte("room"))
	subscribed(t, a, b)
	a.b.SendToChannel([]byte("room"), []byte("before"), true, 0)
	expect(t, ca, "before")
	expect(t, cb, "before")

	srv.Kill()
	eventually(t, "a disconnected", func() bool { return !a.n.Stats().Connected })
	if st := a.n.Stats(); st.Error == "" || strings.Contains(st.Engine, "@") {
		t.Fatalf("a's stats while disconnected: %+v", st)
	}
	a.b.SendToChannel([]byte("room"), []byte("during"), true, 0)
	expect(t, ca, "during")

	srv.Restart()
	eventually(t, "both connected and subscribed again", func() bool {
		sa, sb := a.n.Stats(), b.n.Stats()
		return sa.Connected && sb.Connected && sa.Channels == 1 && sb.Channels == 1 && sa.PendingSubscribes == 0 && sb.PendingSubscribes == 0
	})
	a.b.SendToChannel([]byte("room"), []byte("after"), true, 0)
	expect(t, ca, "after")
	// "during", held by a while Redis was down, waits until b has subscribed again.
	expect(t, cb, "during")
	expect(t, cb, "after")
	if st := a.n.Stats(); st.Connects != 2 {
		t.Fatalf("a connected %d times, want 2", st.Connects)
	}
}

// cliArgs returns redis-cli's arguments to reach the server at url.
func cliArgs(t *testing.T, url string) []string {
	t.Helper()
	switch {
	case strings.HasPrefix(url, "unix://"):
		return []string{"-s", strings.TrimPrefix(url, "unix://")}
	case strings.HasPrefix(url, "redis://"):
		host, port, _ := strings.Cut(strings.TrimPrefix(url, "redis://"), ":")
		return []string{"-h", host, "-p", strings.TrimSuffix(port, "/")}
	}
	t.Fatalf("no redis-cli arguments for %s", url)
	return nil
}
