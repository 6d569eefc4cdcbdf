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

	// App returns an app by name, with its sealed registry credentials.
	App(ctx context.Context, name string) (App, error)
	// Manifests lists manifest variants ordered by app, version and creation: those of one app
	// version, of one app (version ""), or all (app "").
	Manifests(ctx context.Context, app, version string) ([]Manifest, error)
	// DataKeys returns every key that encrypts secrets at rest, oldest first.
	DataKeys(ctx context.Context) ([]DataKey, error)
	// TokenIssuances lists recorded download-token answers in order, of one session or (sessionID
	// "") all.
	TokenIssuances(ctx context.Context, sessionID string) ([]TokenIssuance, error)
	// Products returns the products q selects, in id order, and their number without paging.
	Products(ctx context.Context, q ProductQuery) ([]Product, int, error)
	// Subscriptions lists subscriptions in id order, of one user (userID > 0) or all, and with
	// storeID only those of products in that store.
	Subscriptions(ctx context.Context, userID int64, storeID *int64) ([]Subscription, error)

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

	// App returns an app by name.
	App(name string) (App, error)
	// PutApp stores an app, replacing the stored one of that name.
	PutApp(a App) error
	// PutManifest stores a manifest variant, replacing one with the same app, version and
	// _schemaVersion (replaced is then true). The app must exist.
	PutManifest(m Manifest) (replaced bool, err error)
	// RemoveManifests removes the variants of an app version, or the one with schemaVersion when it
	// is not "", and returns how many it removed.
	RemoveManifests(app, version, schemaVersion string) (int, error)
	// DataKeys returns every data key, oldest first.
	DataKeys() ([]DataKey, error)
	// AddDataKey stores a data key.
	AddDataKey(k DataKey) error
	// RecordToken stores a download-token answer.
	RecordToken(ti TokenIssuance) error
	// Product returns a product by id and locks it until the end of the transaction.
	Product(id int64) (Product, error)
	// PutProduct stores a product, replacing the stored one with its id.
	PutProduct(p Product) error
	// AddReview stores a review and returns it with its id.
	AddReview(r Review) (Review, error)
	// OwnsProduct reports whether the user has a subscription of the product in an owning status.
	OwnsProduct(userID, productID int64) (bool, error)
	// CreateSubscription stores a subscription and returns it with its id.
	CreateSubscription(s Subscription) (Subscription, error)
}
