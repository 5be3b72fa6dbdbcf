package broker

import (
	"net"
	"net/http"
	"net/netip"
	"strconv"
	"strings"
	"testing"
)

func TestForwardedClient(t *testing.T) {
	trusted := resolvedTrust(t, "10.0.0.0/8", "192.0.2.1/32", "2001:db8::/32", "::ffff:172.16.0.0/108")
	for _, c := range []struct {
		name, peer, xff, forwarded, want string
	}{
		{"an untrusted peer's headers are ignored", "203.0.113.9", "198.51.100.1", "", "203.0.113.9"},
		{"a trusted peer without headers", "10.0.0.1", "", "", "10.0.0.1"},
		{"the rightmost untrusted address", "10.0.0.1", "198.51.100.1, 203.0.113.7", "", "203.0.113.7"},
		{"trusted hops skipped", "10.0.0.1", "198.51.100.1, 203.0.113.7, 10.9.9.9, 192.0.2.1", "", "203.0.113.7"},
		{"a spoofed left part stays left", "10.0.0.1", "10.6.6.6, 203.0.113.7", "", "203.0.113.7"},
		{"every hop trusted: the first", "10.0.0.1", "10.0.0.3, 10.0.0.2", "", "10.0.0.3"},
		{"a hop naming no address: its sender", "10.0.0.1", "198.51.100.1, unknown, 10.0.0.2", "", "10.0.0.2"},
		{"the nearest hop naming no address: the peer", "10.0.0.1", "198.51.100.1, _hidden", "", "10.0.0.1"},
		{"IPv6 peer and hops", "2001:db8::1", "2001:db8:1::5, [2001:db8::2]:4711", "", "2001:db8:1::5"},
		{"an IPv6 prefix covering IPv4-mapped addresses matches IPv4", "172.16.3.4", "198.51.100.1", "", "198.51.100.1"},
		{"an IPv4-mapped hop matches an IPv4 prefix", "10.0.0.1", "198.51.100.1, ::ffff:10.1.1.1", "", "198.51.100.1"},
		{"Forwarded", "10.0.0.1", "", `for=198.51.100.1, for="[2001:db9::7]:4711";proto=https`, "2001:db9::7"},
		{"X-Forwarded-For wins", "10.0.0.1", "203.0.113.7", "for=198.51.100.1", "203.0.113.7"},
	} {
		t.Run(c.name, func(t *testing.T) {
			var headers []Header
			if c.xff != "" {
				headers = append(headers, Header{Name: "x-forwarded-for", Value: c.xff})
			}
			if c.forwarded != "" {
				headers = append(headers, Header{Name: "forwarded", Value: c.forwarded})
			}
			got := forwardedClient(netip.MustParseAddr(c.peer), headers, trusted)
			if got.String() != c.want {
				t.Errorf("peer %s, %q: %v, want %s", c.peer, headers, got, c.want)
			}
		})
	}
}

// resolvedTrust is TrustProxy of the prefixes as a listener holds it.
func resolvedTrust(t *testing.T, prefixes ...string) []netip.Prefix {
	t.Helper()
	var lim Limits
	for _, p := range prefixes {
		lim.TrustProxy = append(lim.TrustProxy, netip.MustParsePrefix(p))
	}
	r, err := lim.resolve()
	if err != nil {
		t.Fatal(err)
	}
	return r.TrustProxy
}

func TestTrustProxyInvalidPrefix(t *testing.T) {
	b := New(newRecorder(), Options{Logger: testLogger()})
	t.Cleanup(b.Close)
	_, err := b.Listen([]string{"127.0.0.1:0"}, Limits{TrustProxy: []netip.Prefix{netip.MustParsePrefix("10.0.0.0/8"), {}}})
	if err == nil || !strings.Contains(err.Error(), "TrustProxy[1] is not a valid prefix") {
		t.Fatalf("Listen: %v", err)
	}
}

// TestTrustProxyRequestIP: through real connections, Request.IP is the forwarded client when the
// peer (an IPv4 client of a dual-stack listener included) is trusted, and the peer otherwise.
func TestTrustProxyRequestIP(t *testing.T) {
	xff := http.Header{"X-Forwarded-For": {"198.51.100.1, 203.0.113.7"}}
	for _, c := range []struct {
		name, bind, trust, want string
	}{
		{"trusted peer", "127.0.0.1:0", "127.0.0.1/32", "203.0.113.7"},
		{"untrusted peer", "127.0.0.1:0", "10.0.0.0/8", "127.0.0.1"},
		{"IPv4 peer of a dual-stack listener", "[::]:0", "127.0.0.0/8", "203.0.113.7"},
	} {
		t.Run(c.name, func(t *testing.T) {
			rec := newRecorder()
			b := New(rec, Options{Logger: testLogger()})
			rec.b = b
			t.Cleanup(b.Close)
			a, err := b.Listen([]string{c.bind}, Limits{TrustProxy: []netip.Prefix{netip.MustParsePrefix(c.trust)}})
			if err != nil {
				skipWithoutIPv6(t, err) // only [::] can fail to listen here
			}
			dial(t, "127.0.0.1:"+strconv.Itoa(a.Addrs()[0].(*net.TCPAddr).Port), "/", xff)
			if ip := await(t, rec.opens, "open").req.IP; ip != c.want {
				t.Fatalf("Request.IP %q, want %q", ip, c.want)
			}
		})
	}
}
