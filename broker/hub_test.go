package broker

import (
	"fmt"
	"slices"
	"sync"
	"testing"
)

// testSocket is a socket type of the hub's own, with no connection behind it.
type testSocket struct {
	member
}

func (s *testSocket) hubMember() *member { return &s.member }

// newTestHub returns a hub with n registered sockets, ids 1 to n (sockets[id-1]).
func newTestHub(t *testing.T, n int) (*hub[*testSocket], []*testSocket) {
	t.Helper()
	h := new(hub[*testSocket])
	h.init()
	sockets := make([]*testSocket, n)
	for i := range sockets {
		s := &testSocket{}
		s.id = h.newID()
		if s.id != uint64(i+1) {
			t.Fatalf("id %d, want %d", s.id, i+1)
		}
		h.register(s)
		sockets[i] = s
	}
	return h, sockets
}

// channels returns the names of the channels in h's table, sorted; it also checks that none is
// kept without subscribers.
func channels(t *testing.T, h *hub[*testSocket]) []string {
	t.Helper()
	var names []string
	for i := range h.chans {
		for name, set := range h.chans[i].m {
			if len(set) == 0 {
				t.Errorf("channel %q kept without subscribers", name)
			}
			names = append(names, name)
		}
	}
	slices.Sort(names)
	if n := h.channelCount(); n != len(names) {
		t.Errorf("channelCount %d, want %d", n, len(names))
	}
	return names
}

func subscriptionNames(h *hub[*testSocket], id uint64) []string {
	var names []string
	for _, name := range h.subscriptions(id) {
		names = append(names, string(name))
	}
	slices.Sort(names)
	return names
}

func TestHubRegistry(t *testing.T) {
	h, s := newTestHub(t, 3)
	for _, c := range s {
		if got := h.lookup(c.id); got != c {
			t.Fatalf("lookup(%d) = %p, want %p", c.id, got, c)
		}
	}
	if got := h.lookup(99); got != nil {
		t.Fatalf("lookup of an unknown id: %p", got)
	}
	n := 0
	for range h.all() {
		n++
	}
	if n != 3 {
		t.Fatalf("all yielded %d sockets, want 3", n)
	}
	for range h.all() {
		break // the iteration stops (and unlocks) early
	}

	// A socket registered again under the same id is not unregistered by the one it replaced.
	other := &testSocket{}
	other.id = s[1].id
	h.register(other)
	h.unregister(s[1])
	if got := h.lookup(other.id); got != other {
		t.Fatalf("lookup after unregistering the replaced socket: %p", got)
	}
	h.unregister(other)
	if got := h.lookup(other.id); got != nil {
		t.Fatalf("lookup after unregister: %p", got)
	}
}

func TestHubSubscribe(t *testing.T) {
	h, s := newTestHub(t, 2)
	a, b := s[0].id, s[1].id
	ch := []byte("room")
	if !h.subscribe(a, ch) || !h.subscribe(b, ch) {
		t.Fatal("subscribe returned false")
	}
	if h.subscribe(a, ch) {
		t.Fatal("subscribing twice returned true")
	}
	if h.subscribe(99, ch) {
		t.Fatal("subscribing an unknown id returned true")
	}
	if n := h.subscriberCount(ch); n != 2 {
		t.Fatalf("subscriberCount %d", n)
	}
	h.subscribe(a, []byte("other"))
	if got := subscriptionNames(h, a); !slices.Equal(got, []string{"other", "room"}) {
		t.Fatalf("subscriptions %q", got)
	}
	if got := h.subscriptions(99); got != nil {
		t.Fatalf("subscriptions of an unknown id: %q", got)
	}

	// The channel the fan-out reads: its shard, its set.
	sh := h.chanShard(ch)
	sh.mu.RLock()
	set := sh.m[string(ch)]
	sh.mu.RUnlock()
	if _, in := set[s[0]]; !in || len(set) != 2 {
		t.Fatalf("set %v", set)
	}

	if !h.unsubscribe(a, ch) {
		t.Fatal("unsubscribe returned false")
	}
	if h.unsubscribe(a, ch) || h.unsubscribe(99, ch) || h.unsubscribe(b, []byte("nowhere")) {
		t.Fatal("unsubscribing what is not subscribed returned true")
	}
	if n := h.subscriberCount(ch); n != 1 {
		t.Fatalf("subscriberCount %d", n)
	}
	if got := subscriptionNames(h, a); !slices.Equal(got, []string{"other"}) {
		t.Fatalf("subscriptions %q", got)
	}
	if n := h.subscriberCount([]byte("nowhere")); n != 0 {
		t.Fatalf("subscriberCount of no channel: %d", n)
	}
}

// TestHubChannelTransitions: a channel is in the table from its first subscriber to its last,
// whichever operation adds the first (subscribe, copySubscriptions) or removes the last
// (unsubscribe, dropSubs).
func TestHubChannelTransitions(t *testing.T) {
	h, s := newTestHub(t, 3)
	if got := channels(t, h); got != nil {
		t.Fatalf("channels at start %q", got)
	}
	h.subscribe(s[0].id, []byte("a"))
	h.subscribe(s[1].id, []byte("a"))
	if got := channels(t, h); !slices.Equal(got, []string{"a"}) {
		t.Fatalf("channels %q", got)
	}
	h.unsubscribe(s[0].id, []byte("a"))
	if got := channels(t, h); !slices.Equal(got, []string{"a"}) {
		t.Fatalf("channels with one subscriber left %q", got)
	}
	h.unsubscribe(s[1].id, []byte("a"))
	if got := channels(t, h); got != nil {
		t.Fatalf("channels after the last unsubscribe %q", got)
	}

	h.subscribe(s[0].id, []byte("a"))
	h.subscribe(s[1].id, []byte("a"))
	h.copySubscriptions([]byte("a"), []byte("b"))
	if got := channels(t, h); !slices.Equal(got, []string{"a", "b"}) {
		t.Fatalf("channels after copySubscriptions %q", got)
	}
	h.copySubscriptions([]byte("none"), []byte("c"))
	if got := channels(t, h); !slices.Equal(got, []string{"a", "b"}) {
		t.Fatalf("copySubscriptions from no channel made one: %q", got)
	}
	h.subscribe(s[2].id, []byte("c"))
	h.dropSubs(s[0])
	if got := channels(t, h); !slices.Equal(got, []string{"a", "b", "c"}) {
		t.Fatalf("channels after one of two subscribers left %q", got)
	}
	h.dropSubs(s[1])
	if got := channels(t, h); !slices.Equal(got, []string{"c"}) {
		t.Fatalf("channels after the last subscriber of a and b left %q", got)
	}
	h.dropSubs(s[2])
	if got := channels(t, h); got != nil {
		t.Fatalf("channels after every socket left %q", got)
	}
}

func TestHubCopySubscriptions(t *testing.T) {
	h, s := newTestHub(t, 4)
	// Channels in the same shard and in shards on either side of the source's, so that every
	// branch of the lock order runs.
	var from []byte
	for i := 0; from == nil || h.chanIndex(from) == 0 || h.chanIndex(from) == chanShards-1; i++ {
		from = []byte(fmt.Sprint("from", i))
	}
	var same, lower, higher []byte
	fi := h.chanIndex(from)
	for i := 0; same == nil || lower == nil || higher == nil; i++ {
		name := []byte(fmt.Sprint("to", i))
		switch ti := h.chanIndex(name); {
		case ti == fi && same == nil:
			same = name
		case ti < fi && lower == nil:
			lower = name
		case ti > fi && higher == nil:
			higher = name
		}
	}
	h.subscribe(s[0].id, from)
	h.subscribe(s[1].id, from)
	h.subscribe(s[1].id, lower) // already in the target: stays once
	h.subscribe(s[2].id, []byte("elsewhere"))
	for _, to := range [][]byte{same, lower, higher} {
		h.copySubscriptions(from, to)
		if n := h.subscriberCount(to); n != 2 {
			t.Fatalf("%s: %d subscribers, want 2", to, n)
		}
	}
	if got := subscriptionNames(h, s[0].id); !slices.Equal(got, slices.Sorted(slices.Values([]string{string(from), string(same), string(lower), string(higher)}))) {
		t.Fatalf("subscriptions %q", got)
	}
	if got := subscriptionNames(h, s[2].id); !slices.Equal(got, []string{"elsewhere"}) {
		t.Fatalf("a socket not in from was copied: %q", got)
	}
	h.copySubscriptions(from, from)
	if n := h.subscriberCount(from); n != 2 {
		t.Fatalf("copying a channel onto itself: %d subscribers", n)
	}
	h.dropSubs(s[0])
	h.copySubscriptions(lower, []byte("after"))
	if n := h.subscriberCount([]byte("after")); n != 1 {
		t.Fatalf("copy after a socket left: %d subscribers, want 1", n)
	}
}

func TestHubDropSubs(t *testing.T) {
	h, s := newTestHub(t, 2)
	c := s[0]
	h.subscribe(c.id, []byte("a"))
	h.subscribe(c.id, []byte("b"))
	h.subscribe(s[1].id, []byte("a"))
	h.unregister(c)
	h.dropSubs(c)
	if n := h.subscriberCount([]byte("a")); n != 1 {
		t.Fatalf("a: %d subscribers", n)
	}
	if h.subscribe(c.id, []byte("c")) {
		t.Fatal("an unregistered socket was subscribed")
	}
	// A caller that looked the socket up before it left cannot subscribe it either.
	sh := h.chanShard([]byte("c"))
	sh.mu.Lock()
	added := h.addLocked(sh, "c", c)
	sh.mu.Unlock()
	if added || c.chans != nil || h.subscriberCount([]byte("c")) != 0 {
		t.Fatal("a socket that left was subscribed")
	}
	if got := channels(t, h); !slices.Equal(got, []string{"a"}) {
		t.Fatalf("channels %q", got)
	}
}

func TestHubToken(t *testing.T) {
	h, s := newTestHub(t, 1)
	c := s[0]
	if c.token.Load() != nil {
		t.Fatal("a new socket has a token")
	}
	tok := []byte("secret")
	h.setToken(c.id, tok)
	tok[0] = 'X'
	if got := *c.token.Load(); string(got) != "secret" {
		t.Fatalf("token %q: not a copy", got)
	}
	h.setToken(c.id, []byte{})
	if p := c.token.Load(); p == nil || len(*p) != 0 {
		t.Fatalf("empty token %v", p)
	}
	h.setToken(c.id, nil)
	if c.token.Load() != nil {
		t.Fatal("nil did not clear the token")
	}
	h.setToken(99, []byte("x")) // unknown id: no-op
}

// TestHubConcurrent runs every operation at once on few channels, for the race detector and the
// lock order, then checks that the table and the sockets' own lists agree.
func TestHubConcurrent(t *testing.T) {
	h, s := newTestHub(t, 8)
	names := [][]byte{[]byte("a"), []byte("b"), []byte("c"), []byte("d")}
	var wg sync.WaitGroup
	for w := range 4 {
		wg.Go(func() {
			for i := range 500 {
				id := s[(w+i)%len(s)].id
				ch := names[i%len(names)]
				switch i % 5 {
				case 0, 1:
					h.subscribe(id, ch)
				case 2:
					h.unsubscribe(id, ch)
				case 3:
					h.copySubscriptions(ch, names[(i+1)%len(names)])
				case 4:
					h.subscriptions(id)
					h.subscriberCount(ch)
				}
			}
		})
	}
	wg.Go(func() { h.dropSubs(s[0]) })
	wg.Wait()
	for _, c := range s {
		for _, name := range h.subscriptions(c.id) {
			if _, in := h.chanShard(name).m[string(name)][c]; !in {
				t.Fatalf("socket %d lists %q but is not in its set", c.id, name)
			}
		}
	}
	for i := range h.chans {
		for name, set := range h.chans[i].m {
			for c := range set {
				if _, in := c.chans[name]; !in {
					t.Fatalf("socket %d is in %q's set but does not list it", c.id, name)
				}
			}
		}
	}
	channels(t, h)
}
