package nats

import (
	"strings"
	"testing"
)

// validSubject reports whether s is a NATS subject that a client may subscribe to literally:
// no whitespace, no empty token, no wildcard token.
func validSubject(s string) bool {
	if s == "" || strings.ContainsAny(s, " \t\r\n\x00") {
		return false
	}
	for _, token := range strings.Split(s, ".") {
		if token == "" || token == "*" || token == ">" {
			return false
		}
	}
	return true
}

func TestSubjectOf(t *testing.T) {
	for topic, want := range map[string]string{
		"wsb:c:room-1_a": "wsb.c.room-1_a",
		"wsb:c:a.b":      "wsb.c.a%2Eb",
		"wsb:c:a%2Eb":    "wsb.c.a%252Eb",
		"wsb:c:*":        "wsb.c.%2A",
		"wsb:c:>":        "wsb.c.%3E",
		"wsb:c: \x00":    "wsb.c.%20%00",
		"wsb:c:":         "wsb.c.%",
		"":               "%",
		"::":             "%.%.%",
	} {
		if got := subjectOf(topic); got != want {
			t.Errorf("subjectOf(%q) = %q, want %q", topic, got, want)
		}
	}
	long := "wsb:c:" + strings.Repeat("y", 2000)
	if got := subjectOf(long); !strings.HasPrefix(got, "wsb.%H.") || len(got) != len("wsb.%H.")+64 {
		t.Errorf("subjectOf of a long topic = %q", got)
	}
	if got := subjectOf(strings.Repeat("z", 2000)); !strings.HasPrefix(got, "%H.") || len(got) != 3+64 {
		t.Errorf("subjectOf of a long topic without parts = %q", got)
	}
}

func FuzzSubjectOf(f *testing.F) {
	for _, seed := range []string{"", ":", "wsb:c:a.b", "wsb:c:%H", "wsb:c:" + strings.Repeat("x", 1100)} {
		f.Add(seed, seed+"x")
	}
	f.Fuzz(func(t *testing.T, a, b string) {
		sa, sb := subjectOf(a), subjectOf(b)
		if !validSubject(sa) {
			t.Fatalf("subjectOf(%q) = %q is not a valid literal subject", a, sa)
		}
		if a != b && sa == sb {
			t.Fatalf("%q and %q share the subject %q", a, b, sa)
		}
	})
}
