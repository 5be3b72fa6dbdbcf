package wsproto

import (
	"net/netip"
	"strconv"
	"strings"
)

// ForwardedHops returns the client addresses that reverse proxies recorded in a request, from
// the first (the original client, as the first proxy saw it) to the last (as the nearest proxy
// saw it): those of X-Forwarded-For if the request has one, else the for= parameters of
// Forwarded (RFC 7239); nil with neither. X-Forwarded-For wins because it is what nginx and most
// proxies set, passing a client's own Forwarded through untouched. An entry that names no
// address (malformed, "unknown", an obfuscated "_id", an element without for=) is the zero
// (invalid) Addr; empty list elements are skipped. IPv4-mapped IPv6 addresses are returned as
// IPv4, and ports are dropped.
func ForwardedHops(headers []Header) []netip.Addr {
	var forwarded string
	haveForwarded := false
	for _, h := range headers {
		switch h.Name {
		case "x-forwarded-for":
			return hopsOfList(h.Value)
		case "forwarded":
			forwarded, haveForwarded = h.Value, true
		}
	}
	if !haveForwarded {
		return nil
	}
	return hopsOfForwarded(forwarded)
}

// hopsOfList parses X-Forwarded-For: nodes separated by commas.
func hopsOfList(value string) []netip.Addr {
	var hops []netip.Addr
	for entry := range strings.SplitSeq(value, ",") {
		if entry = strings.Trim(entry, " \t"); entry != "" {
			hops = append(hops, parseNode(entry))
		}
	}
	return hops
}

// hopsOfForwarded parses Forwarded: elements separated by commas, each of pairs name=value
// separated by semicolons, a value a token or a quoted string (which may hold commas and
// semicolons). An unterminated quoted string runs to the end of the header.
func hopsOfForwarded(value string) []netip.Addr {
	var hops []netip.Addr
	var pairs []string
	start := 0
	endPair := func(end int) {
		pairs = append(pairs, value[start:end])
		start = end + 1
	}
	endElement := func(end int) {
		endPair(end)
		if !blank(pairs) {
			hops = append(hops, forParameter(pairs))
		}
		pairs = pairs[:0]
	}
	quoted := false
	for i := 0; i < len(value); i++ {
		switch c := value[i]; {
		case quoted && c == '\\':
			i++
		case c == '"':
			quoted = !quoted
		case quoted:
		case c == ';':
			endPair(i)
		case c == ',':
			endElement(i)
		}
	}
	endElement(len(value))
	return hops
}

// blank reports whether an element's pairs are all empty (an empty list element).
func blank(pairs []string) bool {
	for _, p := range pairs {
		if strings.Trim(p, " \t") != "" {
			return false
		}
	}
	return true
}

// forParameter is the address of an element's only for= pair: invalid if it has none, or more
// than one (RFC 7239 allows one). A value that RFC 7239 says to quote (with a port, or IPv6) is
// also taken unquoted.
func forParameter(pairs []string) netip.Addr {
	var found netip.Addr
	seen := false
	for _, p := range pairs {
		name, v, ok := strings.Cut(strings.Trim(p, " \t"), "=")
		if !ok || !strings.EqualFold(name, "for") {
			continue
		}
		if seen {
			return netip.Addr{}
		}
		seen = true
		if len(v) >= 2 && v[0] == '"' && v[len(v)-1] == '"' {
			v, ok = unquote(v[1 : len(v)-1])
		}
		if ok {
			found = parseNode(v)
		}
	}
	return found
}

// unquote is the text of a quoted string's content (between the quotes): a backslash escapes
// the next byte. ok is false when it ends inside an escape or holds an unescaped quote.
func unquote(s string) (string, bool) {
	if !strings.ContainsAny(s, `\"`) {
		return s, true
	}
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		switch s[i] {
		case '\\':
			if i++; i == len(s) {
				return "", false
			}
		case '"':
			return "", false
		}
		b.WriteByte(s[i])
	}
	return b.String(), true
}

// parseNode is the address of a node as proxies write it: an IPv4 or IPv6 address, optionally
// with a port ("192.0.2.1:8080", "[2001:db8::1]:8080"; "[2001:db8::1]" too). Anything else
// ("unknown", an obfuscated "_id", a zone, a host name) is the invalid Addr.
func parseNode(s string) netip.Addr {
	if a, err := netip.ParseAddr(s); err == nil {
		return unzoned(a)
	}
	if rest, ok := strings.CutPrefix(s, "["); ok {
		host, port, ok := strings.Cut(rest, "]")
		if a, err := netip.ParseAddr(host); ok && err == nil && a.Is6() && (port == "" || hasPort(port)) {
			return unzoned(a)
		}
		return netip.Addr{}
	}
	if i := strings.LastIndexByte(s, ':'); i >= 0 && hasPort(s[i:]) {
		if a, err := netip.ParseAddr(s[:i]); err == nil && a.Is4() {
			return a
		}
	}
	return netip.Addr{}
}

// unzoned is a, IPv4-mapped addresses as IPv4, or the invalid Addr if a has a zone (which means
// nothing beyond its host).
func unzoned(a netip.Addr) netip.Addr {
	if a.Zone() != "" {
		return netip.Addr{}
	}
	return a.Unmap()
}

// hasPort reports whether s is ":" and a port as RFC 7239 allows it: a decimal number up to
// 65535, or an obfuscated one ("_" and letters, digits, ".", "_", "-").
func hasPort(s string) bool {
	port, ok := strings.CutPrefix(s, ":")
	if !ok || port == "" {
		return false
	}
	if obfuscated, ok := strings.CutPrefix(port, "_"); ok {
		return obfuscated != "" && strings.Trim(obfuscated, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789._-") == ""
	}
	_, err := strconv.ParseUint(port, 10, 16)
	return err == nil && len(port) <= 5
}
