package openconsole

import (
	"crypto/rand"
	"strings"
	"time"
)

// LicenseKind tells a license bought as a key from a registered device serial number.
type LicenseKind string

// The kinds of license.
const (
	KindKey    LicenseKind = "key"
	KindSerial LicenseKind = "serial"
)

// License is the right to run a number of devices at once. A registered serial number is a license of
// kind serial with one seat whose key is the serial number itself.
type License struct {
	ID          int64
	Key         string
	Kind        LicenseKind
	OwnerID     int64  // 0: no owner
	Owner       string // the owner's username, when the store read it; "" for none
	Seats       int    // the activation limit: how many sessions may hold a seat at once
	Taken       int    // how many of its sessions hold a seat (the store's bookkeeping)
	ExpiresAt   time.Time
	SuspendedAt time.Time // suspended (reversibly) since; zero when not
	RevokedAt   time.Time // revoked (for good) since; zero when not
	Note        string
	Metadata    []byte // a JSON object; nil reads as {}
	CreatedAt   time.Time
	UpdatedAt   time.Time
	// Version counts the changes an operator made to the license (seats taken and freed do not
	// count): the operator API's ETag.
	Version int64
}

// Usable reports whether the license is neither revoked, suspended nor expired at now.
func (l License) Usable(now time.Time) bool {
	return l.RevokedAt.IsZero() && l.SuspendedAt.IsZero() && (l.ExpiresAt.IsZero() || now.Before(l.ExpiresAt))
}

// LicenseStatus is what an operator sees of a license's state.
type LicenseStatus string

// The statuses of a license, in the order they win: a revoked license is revoked whatever else.
const (
	StatusRevoked   LicenseStatus = "revoked"
	StatusSuspended LicenseStatus = "suspended"
	StatusExpired   LicenseStatus = "expired"
	StatusActive    LicenseStatus = "active"
)

// Status returns the license's status at now.
func (l License) Status(now time.Time) LicenseStatus {
	switch {
	case !l.RevokedAt.IsZero():
		return StatusRevoked
	case !l.SuspendedAt.IsZero():
		return StatusSuspended
	case !l.ExpiresAt.IsZero() && !now.Before(l.ExpiresAt):
		return StatusExpired
	}
	return StatusActive
}

// MaxKeyLength bounds license keys and serial numbers alike.
const MaxKeyLength = 128

// NewLicenseKey returns a fresh key of the form XXXX-XXXX-XXXX-XXXX-XXXX: 80 bits from crypto/rand in
// upper-case hex.
func NewLicenseKey() string {
	var b [10]byte
	if _, err := rand.Read(b[:]); err != nil {
		panic("openconsole: crypto/rand failed: " + err.Error()) // never happens on a supported OS
	}
	const hex = "0123456789ABCDEF"
	out := make([]byte, 0, 24)
	for i, c := range b {
		if i > 0 && i%2 == 0 {
			out = append(out, '-')
		}
		out = append(out, hex[c>>4], hex[c&15])
	}
	return string(out)
}

// CheckKey reports whether k can be a license key or serial number: 1 to MaxKeyLength printable ASCII
// characters without spaces. It returns an EUNPROCESSABLE error naming what is wrong.
func CheckKey(k string) error {
	if k == "" {
		return Errorf(EUNPROCESSABLE, "must not be empty")
	}
	if len(k) > MaxKeyLength {
		return Errorf(EUNPROCESSABLE, "must be at most %d characters", MaxKeyLength)
	}
	for i := 0; i < len(k); i++ {
		if k[i] <= ' ' || k[i] >= 0x7f {
			return Errorf(EUNPROCESSABLE, "must be printable ASCII without spaces")
		}
	}
	return nil
}

// RedactKey shortens a license key or serial number for logs: only its first four characters stay.
func RedactKey(k string) string {
	if len(k) <= 4 {
		return strings.Repeat("*", len(k))
	}
	return k[:4] + "…"
}
