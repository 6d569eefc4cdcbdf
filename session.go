package openconsole

import (
	"crypto/rand"
	"time"
)

// Session is one activation of one device on one license. It holds a seat of its license from its
// creation until it is revoked or ended (swept after an idle timeout); it is live while it holds a
// seat, has been active within the idle timeout (if one is set), and its license is usable. See
// liveness.go for the rules.
type Session struct {
	ID         string // lower-case canonical v4 UUID
	LicenseID  int64
	Timestamp  int64 // Unix milliseconds, never smaller than any timestamp issued before
	CreatedAt  time.Time
	LastSeenAt time.Time
	RevokedAt  time.Time
	EndedAt    time.Time // when a sweep gave its seat back; zero while it holds one or was revoked
	Addr       string    // the client address it was activated from, "" when unknown
	// ExpiresAt is the hard expiry of the session of an offline certificate: it holds its seat and
	// validates until then, however idle (the idle timeout does not apply), and a sweep ends it
	// at that time. Zero for the sessions of online activations.
	ExpiresAt time.Time
}

// HoldsSeat reports whether the session holds a seat of its license: neither revoked nor ended.
func (s Session) HoldsSeat() bool { return s.RevokedAt.IsZero() && s.EndedAt.IsZero() }

// Expired reports whether the session has a hard expiry (ExpiresAt) that has passed at now.
func (s Session) Expired(now time.Time) bool {
	return !s.ExpiresAt.IsZero() && !now.Before(s.ExpiresAt)
}

// SessionState is a session together with the license it is bound to, as validate needs it.
type SessionState struct {
	Session Session
	License License
}

// NewSessionID returns a random version 4 UUID in canonical lower-case form.
func NewSessionID() string {
	var b [16]byte
	if _, err := rand.Read(b[:]); err != nil {
		panic("openconsole: crypto/rand failed: " + err.Error())
	}
	b[6] = b[6]&0x0f | 0x40
	b[8] = b[8]&0x3f | 0x80
	return formatUUID(b[:])
}

func formatUUID(b []byte) string {
	const hex = "0123456789abcdef"
	out := make([]byte, 36)
	j := 0
	for i, c := range b {
		if i == 4 || i == 6 || i == 8 || i == 10 {
			out[j] = '-'
			j++
		}
		out[j], out[j+1] = hex[c>>4], hex[c&15]
		j += 2
	}
	return string(out)
}

// ParseSessionID normalises a session id as a client sends it in X-Session-Id: surrounding spaces
// are dropped and hex digits are lower-cased. It returns "" and false for anything that is not
// a UUID in the 8-4-4-4-12 hex form; callers treat that as "no session".
func ParseSessionID(s string) (string, bool) {
	for len(s) > 0 && (s[0] == ' ' || s[0] == '\t') {
		s = s[1:]
	}
	for len(s) > 0 && (s[len(s)-1] == ' ' || s[len(s)-1] == '\t') {
		s = s[:len(s)-1]
	}
	if len(s) != 36 {
		return "", false
	}
	var buf [36]byte
	lower := true
	for i := 0; i < 36; i++ {
		c := s[i]
		switch i {
		case 8, 13, 18, 23:
			if c != '-' {
				return "", false
			}
		default:
			switch {
			case c >= '0' && c <= '9', c >= 'a' && c <= 'f':
			case c >= 'A' && c <= 'F':
				c += 'a' - 'A'
				lower = false
			default:
				return "", false
			}
		}
		buf[i] = c
	}
	if lower {
		return s, true // the common case: no copy
	}
	return string(buf[:]), true
}
