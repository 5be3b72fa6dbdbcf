package nats

import (
	"strings"
	"testing"
)

func TestParseURLs(t *testing.T) {
	for _, tc := range []struct {
		raw, want string
		login     credentials
		tls       bool
	}{
		{"nats://127.0.0.1", "nats://127.0.0.1:4222", credentials{}, false},
		{"nats://a:4222, nats://b:4223", "nats://a:4222,nats://b:4223", credentials{}, false},
		{"tls://s3cret@a:1,tls://b:2", "tls://a:1,tls://b:2", credentials{token: "s3cret"}, true},
		{"nats://u:p%40ss@[::1]:5,nats://u:p%40ss@b", "nats://[::1]:5,nats://b:4222", credentials{user: "u", password: "p@ss"}, false},
	} {
		s, err := parseURLs(tc.raw)
		if err != nil {
			t.Fatalf("%q: %v", tc.raw, err)
		}
		if s.String() != tc.want || s.login != tc.login || s.tls != tc.tls {
			t.Fatalf("%q: %q %+v tls=%v, want %q %+v tls=%v", tc.raw, s.String(), s.login, s.tls, tc.want, tc.login, tc.tls)
		}
	}
}

func TestParseURLsErrors(t *testing.T) {
	for _, tc := range []struct{ raw, says string }{
		{"", "empty"},
		{"nats://a,,nats://b", "URL 2 of the list: empty"},
		{"127.0.0.1:4222", "no scheme"},
		{"redis://a", `scheme "redis"`},
		{"nats://", "no host"},
		{"nats://a:0", "port"},
		{"nats://a:99999", "port"},
		{"nats://a/path", "path"},
		{"nats://a?x=1", "query"},
		{"nats://a,tls://b", "mix"},
		{"nats://u:pw1@a,nats://u:pw2@b", "different credentials"},
		{"nats://u:s3cret@a:port", "does not parse"},
		{"nats://@a", "empty token"},
	} {
		_, err := parseURLs(tc.raw)
		if err == nil || !strings.Contains(err.Error(), tc.says) {
			t.Fatalf("%q: %v, want an error saying %q", tc.raw, err, tc.says)
		}
		for _, secret := range []string{"pw1", "pw2", "s3cret"} {
			if strings.Contains(err.Error(), secret) {
				t.Fatalf("%q: the error %q shows a secret", tc.raw, err)
			}
		}
	}
}
