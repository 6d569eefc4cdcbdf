package openconsole

import "time"

// OfflineCertificate is the server's record of the offline certificate a device key holds: the
// latest one issued to it. Its seat is held by its session (SessionID, with the hard expiry
// NotAfter) until then or until the device proves it deactivated the certificate.
type OfflineCertificate struct {
	ID        int64
	DeviceKey []byte // the device's Ed25519 public key
	LicenseID int64
	License   string // the license key, when read for a listing
	Counter   uint64 // increases with every certificate issued to the device key
	Nonce     [16]byte
	SessionID string
	IssuedAt  time.Time
	NotBefore time.Time
	NotAfter  time.Time
	// DeactivatedAt is when the device's signed deactivation freed the seat; zero while it has not.
	DeactivatedAt time.Time
}

// OfflineKey is a key that signs (or signed) offline certificates.
type OfflineKey = NoteKey

// OfflineQuery selects offline certificates for a listing.
type OfflineQuery struct {
	LicenseID int64 // 0: of every license
	After     int64 // only certificates with a larger id
	Limit     int   // 0: no bound
}
