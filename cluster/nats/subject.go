package nats

import (
	"crypto/sha256"
	"encoding/hex"
	"strings"
)

// A topic (arbitrary bytes, ':' separating its parts) maps to a NATS subject one to one: ':'
// becomes the token separator '.', bytes of [A-Za-z0-9_-] stay, every other byte becomes %XX
// (upper-case hex), and an empty part becomes the token "%". So no wildcard ('*', '>') and no
// separator comes from a topic's bytes, and no two topics share a subject.
const (
	emptyToken = "%"
	// maxSubjectLen is the longest escaped subject used as is; a longer one is hashed.
	maxSubjectLen = 1024
	// hashedToken marks a hashed subject: "%H" is neither "%" nor a token escaping makes, whose
	// '%' is always followed by two hex digits.
	hashedToken = "%H"
	// maxHashedPrefix is the longest first token a hashed subject keeps (the Node's prefix), so
	// that server permissions by prefix still apply to it.
	maxHashedPrefix = 256
)

const upperHex = "0123456789ABCDEF"

// subjectOf returns topic's subject: escaped, or, when that is over maxSubjectLen bytes, the
// first escaped token, hashedToken and the hex SHA-256 of topic.
func subjectOf(topic string) string {
	var b strings.Builder
	b.Grow(len(topic) + 8)
	tokenEmpty := true
	for i := 0; i < len(topic); i++ {
		c := topic[i]
		switch {
		case c == ':':
			if tokenEmpty {
				b.WriteString(emptyToken)
			}
			b.WriteByte('.')
			tokenEmpty = true
			continue
		case 'a' <= c && c <= 'z', 'A' <= c && c <= 'Z', '0' <= c && c <= '9', c == '_', c == '-':
			b.WriteByte(c)
		default:
			b.WriteByte('%')
			b.WriteByte(upperHex[c>>4])
			b.WriteByte(upperHex[c&0xf])
		}
		tokenEmpty = false
	}
	if tokenEmpty {
		b.WriteString(emptyToken)
	}
	subject := b.String()
	if len(subject) <= maxSubjectLen {
		return subject
	}
	sum := sha256.Sum256([]byte(topic))
	hashed := hashedToken + "." + hex.EncodeToString(sum[:])
	if first, _, _ := strings.Cut(subject, "."); len(first) <= maxHashedPrefix {
		return first + "." + hashed
	}
	return hashed
}
