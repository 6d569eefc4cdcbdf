package openconsole

import (
	"crypto/rand"
	"crypto/subtle"
	"encoding/base64"
	"fmt"
	"strings"
	"time"
	"unicode/utf8"

	"golang.org/x/crypto/argon2"
)

// User is a console account. Vendors (manufacturers) may register device serial numbers.
type User struct {
	ID           int64
	Username     string
	Email        string
	DisplayName  string
	PasswordHash string // argon2id in PHC string form
	Vendor       bool
	Whitelabeled bool
	// Disabled users cannot log in, and their tokens stop working.
	Disabled bool
	// Role is the role with which the user may sign in to the admin web console; "" for none.
	Role      Role
	CreatedAt time.Time
	UpdatedAt time.Time
	Version   int64 // counts the changes made to the user: the operator API's ETag
}

// validUsername reports whether s can be a username: 1 to 128 bytes of valid UTF-8 without control
// characters.
func validUsername(s string) bool {
	return s != "" && len(s) <= 128 && printable(s)
}

// printable reports whether s is valid UTF-8 without ASCII control characters. Such text can be
// stored by every engine (PostgreSQL text cannot hold a NUL byte) and shown safely.
func printable(s string) bool {
	for _, r := range s {
		if r < ' ' || r == 0x7f || r == utf8.RuneError {
			return false
		}
	}
	return true
}

// Argon2id parameters: the OWASP minimum (19 MiB, 2 passes, 1 lane). They are stored with every hash,
// so raising them later keeps old hashes verifiable.
const (
	argonMemory  = 19 * 1024
	argonTime    = 2
	argonThreads = 1
	argonKeyLen  = 32
)

// HashPassword returns an argon2id hash of password with a fresh random salt, in PHC string form.
func HashPassword(password string) (string, error) {
	salt := make([]byte, 16)
	if _, err := rand.Read(salt); err != nil {
		return "", fmt.Errorf("hash password: %w", err)
	}
	hashStarted()
	key := argon2.IDKey([]byte(password), salt, argonTime, argonMemory, argonThreads, argonKeyLen)
	hashDone()
	b64 := base64.RawStdEncoding
	return fmt.Sprintf("$argon2id$v=%d$m=%d,t=%d,p=%d$%s$%s",
		argon2.Version, argonMemory, argonTime, argonThreads, b64.EncodeToString(salt), b64.EncodeToString(key)), nil
}

// CheckPassword reports whether password matches hash, in constant time with respect to the
// password. A malformed hash never matches.
func CheckPassword(hash, password string) bool {
	parts := strings.Split(hash, "$")
	if len(parts) != 6 || parts[1] != "argon2id" {
		return false
	}
	var version int
	var mem, passes uint32
	var threads uint8
	if _, err := fmt.Sscanf(parts[2], "v=%d", &version); err != nil || version != argon2.Version {
		return false
	}
	if _, err := fmt.Sscanf(parts[3], "m=%d,t=%d,p=%d", &mem, &passes, &threads); err != nil {
		return false
	}
	// Bound what a corrupt or hostile row could make us spend.
	if mem == 0 || mem > 1<<20 || passes == 0 || passes > 16 || threads == 0 {
		return false
	}
	b64 := base64.RawStdEncoding
	salt, err := b64.DecodeString(parts[4])
	if err != nil {
		return false
	}
	want, err := b64.DecodeString(parts[5])
	if err != nil || len(want) == 0 || len(want) > 128 {
		return false
	}
	hashStarted()
	got := argon2.IDKey([]byte(password), salt, passes, mem, threads, uint32(len(want)))
	hashDone()
	return subtle.ConstantTimeCompare(got, want) == 1
}

// dummyHash is checked against when a login names an unknown user, so that the answer takes as
// long as for a known one and does not tell which usernames exist.
var dummyHash, _ = HashPassword("openconsole-dummy-password")
