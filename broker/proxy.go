package broker

import (
	"net"
	"net/netip"

	"github.com/wsbroker/wsbroker/internal/wsproto"
)

// clientIP is what Request.IP reports for a request from nc: the peer's address, or, when the
// peer is one of the listener's trusted proxies, the client they name (Limits.TrustProxy).
func (l *listener) clientIP(nc net.Conn, headers []Header) string {
	a, ok := nc.RemoteAddr().(*net.TCPAddr)
	if !ok {
		return ""
	}
	peer := a.AddrPort().Addr().Unmap().WithZone("")
	return forwardedClient(peer, headers, l.lim.TrustProxy).String()
}

// forwardedClient walks the forwarding headers' hops from the nearest one while each hop's
// sender is trusted (the peer first): the first hop not trusted is the client; a hop that names
// no address ends the walk at its sender, the last trusted address reached.
func forwardedClient(peer netip.Addr, headers []Header, trusted []netip.Prefix) netip.Addr {
	if !contains(trusted, peer) {
		return peer
	}
	hops := wsproto.ForwardedHops(headers)
	last := peer
	for i := len(hops) - 1; i >= 0; i-- {
		hop := hops[i]
		if !hop.IsValid() {
			break
		}
		last = hop
		if !contains(trusted, hop) {
			break
		}
	}
	return last
}

// contains reports whether a is in one of the prefixes, which as16 has made IPv6.
func contains(prefixes []netip.Prefix, a netip.Addr) bool {
	a = netip.AddrFrom16(a.As16())
	for _, p := range prefixes {
		if p.Contains(a) {
			return true
		}
	}
	return false
}

// as16 is p in IPv6 form, an IPv4 prefix as the IPv4-mapped one, with its host bits cleared.
func as16(p netip.Prefix) netip.Prefix {
	bits := p.Bits()
	if p.Addr().Is4() {
		bits += 96
	}
	return netip.PrefixFrom(netip.AddrFrom16(p.Addr().As16()), bits).Masked()
}
