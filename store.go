package openconsole

import (
	"context"
	"time"
)

// Store keeps OpenConsole's state. Methods return ErrNotFound (code ENOTFOUND) for a missing row and
// an ECONFLICT error for a duplicate key; any other error is a storage failure.
//
// A Store is safe for concurrent use by many goroutines and by several processes on one database.
type Store interface {
	// Update runs fn in one write transaction and commits it durably when fn returns nil; any error
	// rolls everything back. Transactions that lock the same license (Tx.LicenseByKey,
	// Tx.LicensesByOwner) run one after another. fn may be called more than once when the
	// transaction must be retried, so it must not have side effects outside tx.
	Update(ctx context.Context, fn func(tx Tx) error) error

	// SessionState returns a session and its license. This is the validate hot path: one read.
	SessionState(ctx context.Context, id string) (SessionState, error)
	// TouchSessions sets last_seen_at of each listed session to the given time unless it is later
	// already. Unknown ids are skipped.
	TouchSessions(ctx context.Context, seen map[string]time.Time) error

	UserByUsername(ctx context.Context, username string) (User, error)
	UserByID(ctx context.Context, id int64) (User, error)
	LicenseByKey(ctx context.Context, key string) (License, error)
	// Licenses lists every license in creation order, with its number of live sessions per liveSince.
	Licenses(ctx context.Context, liveSince time.Time) ([]LicenseUsage, error)
	// Sessions lists sessions with their licenses in issue order, all of them (licenseID 0) or
	// those of one license.
	Sessions(ctx context.Context, licenseID int64) ([]SessionState, error)
	// SerialByLicense returns the registration of a serial-number license.
	SerialByLicense(ctx context.Context, licenseID int64) (Serial, error)
	// SigningKeys returns every JWT signing key, oldest first.
	SigningKeys(ctx context.Context) ([]SigningKey, error)

	// Changes returns the changes logged after seq, in order, at most limit of them. The
	// transactions that revoke a session or a license log one in the same transaction. With seq < 0
	// it returns no changes, only the latest sequence number in the last element's Seq (0 if none).
	Changes(ctx context.Context, after int64, limit int) ([]Change, error)
	// PruneChanges deletes changes logged before the given time.
	PruneChanges(ctx context.Context, before time.Time) error

	Close() error
}

// Change is one logged change: a session (SessionID set) or a whole license (SessionID "") may
// have stopped being live.
type Change struct {
	Seq       int64
	LicenseID int64
	SessionID string
}

// LicenseUsage is a license with the number of its live sessions (its taken seats).
type LicenseUsage struct {
	License
	LiveSessions int
}

// Tx is the view of the store inside Store.Update.
type Tx interface {
	// LicenseByKey returns the license with the key or serial number and locks it until the end of
	// the transaction.
	LicenseByKey(key string) (License, error)
	// LicensesByOwner returns the licenses of kind key owned by a user, in id order, locked.
	LicensesByOwner(userID int64) ([]License, error)
	// Session returns a session by id.
	Session(id string) (Session, error)
	// CountLiveSessions counts the license's sessions that are not revoked and were last seen at or
	// after liveSince.
	CountLiveSessions(licenseID int64, liveSince time.Time) (int, error)
	// NextTimestamp returns max(now in ms, the last timestamp issued + 1) and records it as the last
	// one issued. Every call returns a larger value than any call before it in any process.
	NextTimestamp(now time.Time) (int64, error)
	// CreateSession stores a new session.
	CreateSession(s Session) error
	// RevokeSession marks a session revoked at the given time; ErrNotFound if it does not exist.
	RevokeSession(id string, at time.Time) error

	// CreateUser stores a new user and returns it with its id; ECONFLICT if the username is taken.
	CreateUser(u User) (User, error)
	// CreateLicense stores a new license and returns it with its id; ECONFLICT if the key is taken.
	CreateLicense(l License) (License, error)
	// RevokeLicense marks a license revoked at the given time; ErrNotFound if the key is unknown.
	RevokeLicense(key string, at time.Time) error
	// CreateSerial stores the registration of a serial-number license.
	CreateSerial(s Serial) error
	// MarkSerialActivated sets the registration status of a serial-number license to activated.
	MarkSerialActivated(licenseID int64) error
	// AddSigningKey stores a JWT signing key.
	AddSigningKey(k SigningKey) error
	// DeleteSigningKeysExcept deletes every JWT signing key but the one with the given id.
	DeleteSigningKeysExcept(id string) error
}
