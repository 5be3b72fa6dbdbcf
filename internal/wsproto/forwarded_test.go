package wsproto

import (
	"net/netip"
	"slices"
	"strings"
	"testing"
)

// none stands for an entry that names no address.
const none = "-"

func TestForwardedHops(t *testing.T) {
	for _, c := range []struct {
		name    string
		headers []Header
		want    []string // none: the invalid Addr
	}{
		{"no header", []Header{{"host", "a"}}, nil},
		{"one address", xff("203.0.113.7"), []string{"203.0.113.7"}},
		{"a list, spaces and tabs", xff("203.0.113.7 ,\t10.0.0.2,  10.0.0.1"), []string{"203.0.113.7", "10.0.0.2", "10.0.0.1"}},
		{"empty elements skipped", xff(", 203.0.113.7,, ,10.0.0.1,"), []string{"203.0.113.7", "10.0.0.1"}},
		{"empty value", xff(""), nil},
		{"IPv6", xff("2001:db8::1, ::1"), []string{"2001:db8::1", "::1"}},
		{"IPv4-mapped IPv6 as IPv4", xff("::ffff:192.0.2.1"), []string{"192.0.2.1"}},
		{"ports", xff("192.0.2.1:4711, [2001:db8::1]:80, [2001:db8::2], 192.0.2.2:65535"), []string{"192.0.2.1", "2001:db8::1", "2001:db8::2", "192.0.2.2"}},
		{"bad ports", xff("192.0.2.1:65536, 192.0.2.1:, [2001:db8::1]:x, [2001:db8::1]x, 192.0.2.1:+1"), []string{none, none, none, none, none}},
		{"bracketed IPv4, IPv6 port without brackets", xff("[192.0.2.1], [2001:db8::1"), []string{none, none}},
		{"not addresses", xff("unknown, _hidden, example.com, 1.2.3, 01.2.3.4, fe80::1%eth0, 1.2.3.4.5"), []string{none, none, none, none, none, none, none}},
		{"X-Forwarded-For wins over Forwarded", []Header{{"forwarded", "for=192.0.2.9"}, {"x-forwarded-for", "203.0.113.7"}}, []string{"203.0.113.7"}},
		{"Forwarded", fwd("for=192.0.2.43, for=198.51.100.17;by=203.0.113.60;proto=http;host=example.com"), []string{"192.0.2.43", "198.51.100.17"}},
		{"Forwarded: quoted IPv6 with port", fwd(`for="[2001:db8:cafe::17]:4711"`), []string{"2001:db8:cafe::17"}},
		{"Forwarded: parameter names in any case, spaces around elements and pairs", fwd(` For=192.0.2.1 ; proto=https ,  FOR="192.0.2.2"`), []string{"192.0.2.1", "192.0.2.2"}},
		{"Forwarded: unquoted port and IPv6 taken too", fwd("for=192.0.2.1:80, for=[2001:db8::1]"), []string{"192.0.2.1", "2001:db8::1"}},
		{"Forwarded: obfuscated and unknown", fwd(`for=_hidden, for="_SEVKISEK", for=unknown, for="192.0.2.1:_port"`), []string{none, none, none, "192.0.2.1"}},
		{"Forwarded: an element without for", fwd("for=192.0.2.1, proto=https;by=10.0.0.1"), []string{"192.0.2.1", none}},
		{"Forwarded: for twice in one element", fwd("for=192.0.2.1;for=192.0.2.2"), []string{none}},
		{"Forwarded: commas and semicolons inside quotes", fwd(`for=192.0.2.1;host="a,b;c", for=192.0.2.2`), []string{"192.0.2.1", "192.0.2.2"}},
		{"Forwarded: escapes", fwd(`for="\[2001:db8::1\]", for="192.0.2.1\"", for="192.0.2.2\`), []string{"2001:db8::1", none, none}},
		{"Forwarded: an unterminated quote runs to the end", fwd(`for=192.0.2.1, for="192.0.2.2, for=192.0.2.3`), []string{"192.0.2.1", none}},
		{"Forwarded: empty elements and pairs", fwd(" , ;; ,for=192.0.2.1;,"), []string{"192.0.2.1"}},
	} {
		t.Run(c.name, func(t *testing.T) {
			var got []string
			for _, a := range ForwardedHops(c.headers) {
				if a.IsValid() {
					got = append(got, a.String())
				} else {
					got = append(got, none)
				}
			}
			if !slices.Equal(got, c.want) {
				t.Errorf("ForwardedHops(%q) = %q, want %q", c.headers, got, c.want)
			}
		})
	}
}

func xff(v string) []Header { return []Header{{"x-forwarded-for", v}} }
func fwd(v string) []Header { return []Header{{"forwarded", v}} }

// FuzzForwardedHops: any header value parses without a panic into at most one hop per comma, and
// every hop is a usable address or the invalid Addr: never zoned, never IPv4-mapped.
func FuzzForwardedHops(f *testing.F) {
	for _, s := range []string{"203.0.113.7, 10.0.0.1", `for="[2001:db8::1]:4711";proto=https, for=_x`, `for="\`, "[::1]:80", ",,;"} {
		f.Add(s, false)
		f.Add(s, true)
	}
	f.Fuzz(func(t *testing.T, value string, forwarded bool) {
		name := "x-forwarded-for"
		if forwarded {
			name = "forwarded"
		}
		hops := ForwardedHops([]Header{{name, value}})
		if len(hops) > strings.Count(value, ",")+1 {
			t.Fatalf("%d hops from %d commas", len(hops), strings.Count(value, ","))
		}
		for _, a := range hops {
			if a != (netip.Addr{}) && (a.Zone() != "" || a.Is4In6()) {
				t.Fatalf("hop %v of %q", a, value)
			}
		}
	})
}
