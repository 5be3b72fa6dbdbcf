package redis

import (
	"crypto/tls"
	"strings"
	"testing"
)

func TestURLs(t *testing.T) {
	for _, tc := range []struct {
		url, str, network, addr, username, password string
		db                                          int
	}{
		{"redis://127.0.0.1:6380", "redis://127.0.0.1:6380/0", "tcp", "127.0.0.1:6380", "", "", 0},
		{"redis://:hunter2@10.0.0.5/4", "redis://10.0.0.5:6379/4", "tcp", "10.0.0.5:6379", "", "hunter2", 4},
		{"redis://app:p%40ss@[::1]:7000/", "redis://[::1]:7000/0", "tcp", "[::1]:7000", "app", "p@ss", 0},
		{"rediss://:hunter2@redis.example:6390/1", "rediss://redis.example:6390/1", "tcp", "redis.example:6390", "", "hunter2", 1},
		{"unix:///run/redis.sock", "unix:///run/redis.sock?db=0", "unix", "/run/redis.sock", "", "", 0},
		{"unix://:hunter2@/run/redis.sock?db=2", "unix:///run/redis.sock?db=2", "unix", "/run/redis.sock", "", "hunter2", 2},
	} {
		e, err := New(tc.url, Options{})
		if err != nil {
			t.Errorf("%s: %v", tc.url, err)
			continue
		}
		a := e.addr
		if e.String() != tc.str || a.network != tc.network || a.addr != tc.addr || a.username != tc.username || a.password != tc.password || a.db != tc.db {
			t.Errorf("%s: got %s %+v", tc.url, e.String(), a)
		}
	}
}

func TestBadURLs(t *testing.T) {
	for _, tc := range []struct{ url, says string }{
		{"http://127.0.0.1:6379", `scheme "http"`},
		{"127.0.0.1:6379", "scheme"},
		{"", "no scheme"},
		{"redis://", "no host"},
		{"redis://:hunter2@", "no host"},
		{"redis://host:0", "port"},
		{"redis://host:99999", "port"},
		{"redis://host/x", `database "x"`},
		{"redis://host/-1", "database"},
		{"redis://host/1/2", "database"},
		{"redis://host?db=1", "query"},
		{"redis://host#frag", "fragment"},
		{"redis://:hunter2@host:port", "port"},
		{"redis://:hunter2%zz@host", "does not parse"},
		{"redis://ho st", "does not parse"},
		{"unix://host/run/redis.sock", "host"},
		{"unix://:hunter2@", "no socket path"},
		{"unix:///run/redis.sock?db=x", "database"},
		{"unix:///run/redis.sock?timeout=1", `parameter "timeout"`},
	} {
		_, err := New(tc.url, Options{})
		if err == nil {
			t.Errorf("%q: no error", tc.url)
			continue
		}
		if !strings.Contains(err.Error(), tc.says) || strings.Contains(err.Error(), "hunter2") {
			t.Errorf("%q: error %q should say %q, without the password", tc.url, err, tc.says)
		}
	}
}

func TestBadOptions(t *testing.T) {
	if _, err := New("redis://host", Options{TLS: &tls.Config{}}); err == nil || !strings.Contains(err.Error(), "rediss://") {
		t.Errorf("TLS options for redis://: %v", err)
	}
	if _, err := New("redis://host", Options{ProbeAfter: -1}); err == nil {
		t.Error("a negative ProbeAfter was accepted")
	}
}
