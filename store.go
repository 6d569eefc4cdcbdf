package openconsole

import (
	"context"
	"iter"
	"time"

	"golang.org/x/mod/sumdb/tlog"
)

// Store keeps OpenConsole's state. Methods return ErrNotFound (code ENOTFOUND) for a missing row and
// an ECONFLICT error for a duplicate key; any other error is a storage failure.
//
// A Store is safe for concurrent use by many goroutines and by several processes on one database.
type Store interface {
	// Update runs fn in one write transaction and commits it durably when fn returns nil; any error
	// rolls everything back. Write transactions run one after another, on one server and across
	// servers, so what fn reads stays true until it commits. fn may be called more than once when
	// the transaction must be retried, so it must not have side effects outside tx (UpdateValue
	// returns a value from fn without a variable outside it).
	Update(ctx context.Context, fn func(tx Tx) error) error

	// SessionState returns a session and its license. This is the validate hot path: one read.
	SessionState(ctx context.Context, id string) (SessionState, error)
	// TouchSessions moves the last-seen time of each listed session forward to the given time
	// (never back). Unknown ids are skipped. It returns the ids among them that no longer hold a
	// seat (revoked or ended), so that a cache can drop them.
	TouchSessions(ctx context.Context, seen []Touch) (gone []string, err error)

	UserByUsername(ctx context.Context, username string) (User, error)
	UserByID(ctx context.Context, id int64) (User, error)
	LicenseByKey(ctx context.Context, key string) (License, error)
	// ListLicenses yields licenses in id order after q.After, at most q.Limit of them (0: all),
	// reading them from the database as the caller goes: memory does not grow with the result.
	ListLicenses(ctx context.Context, q LicenseQuery) iter.Seq2[License, error]
	// Session returns a session with its license (and the license's owner).
	Session(ctx context.Context, id string) (SessionState, error)
	// ListSessions yields sessions with their licenses after q.After, at most q.Limit (0: all): of
	// one license (q.LicenseID > 0) in issue order (timestamp, then id), or of all, license by
	// license in id order and each in issue order; streaming like ListLicenses.
	ListSessions(ctx context.Context, q SessionQuery) iter.Seq2[SessionState, error]
	// SeatMismatches recounts, in one consistent snapshot, the seats every license's sessions hold
	// and returns the licenses whose bookkeeping (License.Taken) disagrees, with the totals.
	SeatMismatches(ctx context.Context) (SeatCheck, error)
	// SerialByLicense returns the registration of a serial-number license.
	SerialByLicense(ctx context.Context, licenseID int64) (Serial, error)
	// ListSerials yields serial registrations in license id order after q.After, streaming.
	ListSerials(ctx context.Context, q PageQuery) iter.Seq2[Serial, error]
	// ListUsers yields users in id order after q.After, streaming.
	ListUsers(ctx context.Context, q PageQuery) iter.Seq2[User, error]
	// APITokens returns every API token in creation order.
	APITokens(ctx context.Context) ([]APIToken, error)
	// APITokenByHash returns the API token whose secret has the hash.
	APITokenByHash(ctx context.Context, hash string) (APIToken, error)
	// Stats counts what an overview shows (see Stats), reading licenses and activation counts,
	// never every session.
	Stats(ctx context.Context, now time.Time) (Stats, error)
	// ListAudit yields the audit entries q selects in sequence order, streaming.
	ListAudit(ctx context.Context, q AuditQuery) iter.Seq2[AuditEntry, error]
	// AuditSize returns the number of audit entries.
	AuditSize(ctx context.Context) (int64, error)
	// AuditHashes returns the audit tree's stored hashes at the given indexes (tlog's numbering),
	// in that order; ErrNotFound when one is not stored.
	AuditHashes(ctx context.Context, indexes []int64) ([]tlog.Hash, error)
	// AuditCheckpoint returns the signed checkpoint of the given tree size, or the latest when size
	// is negative; ErrNotFound when there is none.
	AuditCheckpoint(ctx context.Context, size int64) (AuditCheckpoint, error)
	// AuditKeys returns every audit key, in the order they were added.
	AuditKeys(ctx context.Context) ([]AuditKey, error)
	// OfflineKeys returns every offline signing key, in the order they were added.
	OfflineKeys(ctx context.Context) ([]OfflineKey, error)
	// ListOfflineCertificates yields the certificate records q selects in id order, each with its
	// license's key, streaming.
	ListOfflineCertificates(ctx context.Context, q OfflineQuery) iter.Seq2[OfflineCertificate, error]
	// WebSession returns the web console session with the hash of its secret.
	WebSession(ctx context.Context, idHash string) (WebSession, error)
	// SigningKeys returns every JWT signing key in the order they were added; the last one signs.
	SigningKeys(ctx context.Context) ([]SigningKey, error)

	// LatestChange returns the sequence number of the latest logged change (0 if none).
	LatestChange(ctx context.Context) (int64, error)
	// Changes returns the changes logged after seq, in order, at most limit of them.
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

// UpdateValue runs fn in st.Update and returns what fn returned in the attempt that committed.
func UpdateValue[T any](ctx context.Context, st Store, fn func(tx Tx) (T, error)) (T, error) {
	var out T
	err := st.Update(ctx, func(tx Tx) error {
		v, err := fn(tx)
		out = v
		return err
	})
	if err != nil {
		var zero T
		return zero, err
	}
	return out, nil
}

// Change is one logged change: a session (SessionID set) or a whole license (SessionID "") may
// have stopped being live.
type Change struct {
	Seq       int64
	LicenseID int64
	SessionID string
}

// Touch is activity of a session to write: it was seen at At.
type Touch struct {
	SessionID string
	At        time.Time
}

// IdleSession is a session that holds a seat and was last seen at LastSeenAt (for the expiry
// sweep: that is due to end).
type IdleSession struct {
	ID         string
	LicenseID  int64
	LastSeenAt time.Time
}

// LicenseQuery selects licenses for ListLicenses.
type LicenseQuery struct {
	After  int64         // only licenses with a larger id
	Limit  int           // at most this many; 0: no bound
	Status LicenseStatus // only those with this status at Now; "" for any
	Now    time.Time
	Owner  string // only those of the user with this username; "" for any
	Search string // only those whose key, note or owner's username contains this (any case)
	// NearLimit keeps only the licenses neither revoked nor suspended whose sessions take at least
	// nine tenths of their seats.
	NearLimit bool
}

// SessionQuery selects sessions for ListSessions.
type SessionQuery struct {
	LicenseID int64 // 0: every license
	After     SessionCursor
	Limit     int // at most this many; 0: no bound
	// Live, when set, keeps only the sessions that are live (true) or not (false) at Now, for an
	// idle timeout that makes sessions last seen before IdleBefore expired (zero: none).
	Live       *bool
	Now        time.Time
	IdleBefore time.Time
}

// PageQuery selects a page of rows in id order.
type PageQuery struct {
	After int64 // only rows with a larger id
	Limit int   // at most this many; 0: no bound
}

// AuditQuery selects audit entries for ListAudit.
type AuditQuery struct {
	From int64 // only entries with this sequence number or a larger one
	// Before, when not 0, keeps only the entries with a smaller sequence number, newest first.
	Before int64
	Limit  int // at most this many; 0: no bound
	Action string
	Target string
	Actor  string // the actor's name
}

// Stats is what the operator API's overview shows.
type Stats struct {
	Licenses map[LicenseStatus]int // licenses by status
	// HeldSeats counts the seats held on active licenses: the live sessions, and idle ones until
	// a sweep ends them (within a twentieth of the idle timeout).
	HeldSeats int
	// Activations counts the sessions issued in the last 24 hours and 7 days (by hour).
	Activations24h, Activations7d int
	// ActivationsByDay counts the sessions issued on each of the last 30 days, oldest first (UTC).
	ActivationsByDay []DayCount
}

// DayCount is a count on one day.
type DayCount struct {
	Day   time.Time
	Count int
}

// SessionCursor is a position in the order of ListSessions: the sessions after it have a larger
// (license id, timestamp, id); within one license's listing the license id is that license's. The
// zero cursor is before the first session.
type SessionCursor struct {
	LicenseID int64
	Timestamp int64
	ID        string
}

// SeatMismatch is a license whose seat bookkeeping disagrees with its sessions.
type SeatMismatch struct {
	LicenseID int64
	Key       string
	Taken     int // what the license row says
	Held      int // how many of its sessions hold a seat (neither revoked nor ended)
}

// SeatCheck is the result of a recount of every license's seats.
type SeatCheck struct {
	Licenses   int // licenses checked
	Held       int // sessions holding a seat, in all
	Mismatches []SeatMismatch
	// Over lists the licenses whose sessions hold more seats than the license has (Taken is then
	// the license's seats). Activation never makes one; lowering a license's seats below its taken
	// ones does, until enough sessions end.
	Over []SeatMismatch
}

// Tx is the view of the store inside Store.Update.
//
// The seat rule depends on two things that every method here keeps:
//   - Seat bookkeeping: License.Taken counts the license's sessions that hold a seat (neither
//     revoked nor ended). Every write that takes or frees a seat (CreateSession, RevokeSession,
//     EndIdleSessions, EndExpiredSessions) changes it in the same transaction; a new write that
//     does either must too.
//   - The change log: every write that can end the life of a session that some server may still
//     consider live (a session revoked; a license revoked, suspended, or its expiry or seats
//     changed; a session's hard expiry changed or reached) logs a Change in the same transaction, so that every server's validate cache drops
//     what it holds within a poll interval (CacheStaleness). A new write of that kind must log one
//     too, or caches will keep answering "valid". Only sessions that every server already
//     considers expired by time may end without one (EndIdleSessions).
type Tx interface {
	// LockLicenseByKey returns the license with the key or serial number and locks it until the
	// end of the transaction.
	LockLicenseByKey(key string) (License, error)
	// LockLicensesByOwner returns the licenses of kind key owned by a user, in id order, locked.
	LockLicensesByOwner(userID int64) ([]License, error)
	// Session returns a session by id.
	Session(id string) (Session, error)
	// NextTimestamp returns max(now in ms, the last timestamp issued + 1) and records it as the last
	// one issued. Every call returns a larger value than any call before it in any process.
	NextTimestamp(now time.Time) (int64, error)
	// CreateSession stores a new session; it takes a seat of its license.
	CreateSession(s Session) error
	// RevokeSession marks a session revoked at the given time and returns it as it was before; it
	// frees the session's seat if it held one and logs a Change. ErrNotFound if it does not exist.
	RevokeSession(id string, at time.Time) (Session, error)
	// IdleSessions returns up to limit sessions that hold a seat and were last seen before the
	// given time, of any license, oldest activity first. The ones already ended are not read, so
	// its cost is that of what it returns.
	IdleSessions(before time.Time, limit int) ([]IdleSession, error)
	// EndIdleSessions ends those of the listed sessions that still hold a seat and were still last
	// seen before the given time, at time at, frees their seats, and returns how many it ended per
	// license. It logs no Change: callers end only sessions every server considers expired.
	EndIdleSessions(ids []string, before, at time.Time) (map[int64]int, error)
	// ExpiredSessions returns up to limit sessions that hold a seat and whose hard expiry is at or
	// before now, of any license, earliest expiry first.
	ExpiredSessions(now time.Time, limit int) ([]IdleSession, error)
	// EndExpiredSessions ends those of the listed sessions that still hold a seat and are past
	// their hard expiry at now, frees their seats, logs a Change for each, and returns how many it
	// ended per license.
	EndExpiredSessions(ids []string, now time.Time) (map[int64]int, error)
	// SetSessionExpiry sets the hard expiry of a session that holds a seat and logs a Change (at
	// time at). ErrNotFound if there is no such session.
	SetSessionExpiry(id string, expires, at time.Time) error
	// LockLicenseByKeyHash returns the license whose key has this SHA-256 (LicenseKeyHash), locked
	// as LockLicenseByKey locks.
	LockLicenseByKeyHash(hash [32]byte) (License, error)
	// OfflineCertificate returns the certificate record of a device key.
	OfflineCertificate(deviceKey []byte) (OfflineCertificate, error)
	// PutOfflineCertificate stores the certificate record of its device key, replacing one stored,
	// and returns the record's id.
	PutOfflineCertificate(c OfflineCertificate) (int64, error)
	// OfflineKeys returns every offline signing key, in the order they were added.
	OfflineKeys() ([]OfflineKey, error)
	// AddOfflineKey stores an offline signing key; one whose verifier is stored already is kept.
	AddOfflineKey(k OfflineKey) error
	// ForgetOfflineSigners erases every offline private key held in the database.
	ForgetOfflineSigners() error
	// SeatMismatches is Store.SeatMismatches inside the transaction.
	SeatMismatches() (SeatCheck, error)
	// SetTakenSeats sets a license's seat bookkeeping (the repair of openconsole check).
	SetTakenSeats(licenseID int64, taken int) error
	// PutLicense stores what an operator can change of a license (owner, seats, expiry,
	// suspension, revocation, note, metadata, updated time, version) and logs a Change.
	// ErrNotFound if it does not exist.
	PutLicense(l License) error

	// UserByID returns a user by id.
	UserByID(id int64) (User, error)
	// LockUserByUsername returns a user by username and locks it until the end of the transaction.
	LockUserByUsername(username string) (User, error)
	// PutUser stores what can change of a user (everything but its id, username and creation).
	PutUser(u User) error
	// CreateAPIToken stores a new API token.
	CreateAPIToken(t APIToken) error
	// APIToken returns an API token by id.
	APIToken(id string) (APIToken, error)
	// RevokeAPIToken marks an API token revoked.
	RevokeAPIToken(id string, at time.Time) error
	// TouchAPIToken records a use of an API token.
	TouchAPIToken(id string, at time.Time) error
	// IdempotencyRecord returns the kept answer of scope's Idempotency-Key, if it was kept since
	// the given time.
	IdempotencyRecord(scope, key string, since time.Time) (IdempotencyRecord, error)
	// PutIdempotency keeps an answer (replacing one kept before the retention).
	PutIdempotency(r IdempotencyRecord) error
	// PruneIdempotency forgets answers kept before the given time.
	PruneIdempotency(before time.Time) error
	// AuditSize returns the number of audit entries: the next entry's sequence number.
	AuditSize() (int64, error)
	// AuditHashes returns the audit tree's stored hashes at the given indexes (tlog's numbering),
	// in that order; ErrNotFound when one is not stored.
	AuditHashes(indexes []int64) ([]tlog.Hash, error)
	// AppendAudit stores an audit entry (its Seq set) and the tree hashes its leaf adds, at the
	// stored hash indexes from start on.
	AppendAudit(e AuditEntry, start int64, hashes []tlog.Hash) error
	// AuditKeys returns every audit key, in the order they were added.
	AuditKeys() ([]AuditKey, error)
	// AddAuditKey stores an audit key; one whose verifier is stored already is kept as it is.
	AddAuditKey(k AuditKey) error
	// ForgetAuditSigners erases every audit private key held in the database.
	ForgetAuditSigners() error
	// PutAuditCheckpoint stores a signed checkpoint; one of a size stored already is kept.
	PutAuditCheckpoint(c AuditCheckpoint) error
	// CreateWebSession stores a web console session.
	CreateWebSession(ws WebSession) error
	// TouchWebSession records a session's use at the given time (never moving it back).
	TouchWebSession(idHash string, at time.Time) error
	// DeleteWebSession ends a session.
	DeleteWebSession(idHash string) error
	// PruneWebSessions deletes the sessions created before createdBefore or last used before
	// idleBefore.
	PruneWebSessions(createdBefore, idleBefore time.Time) error

	// CreateUser stores a new user and returns it with its id; ECONFLICT if the username is taken.
	CreateUser(u User) (User, error)
	// CreateLicense stores a new license and returns it with its id; ECONFLICT if the key is taken.
	CreateLicense(l License) (License, error)
	// CreateSerial stores the registration of a serial-number license.
	CreateSerial(s Serial) error
	// MarkSerialActivated sets the registration status of a serial-number license to activated.
	MarkSerialActivated(licenseID int64) error
	// AddSigningKey stores a JWT signing key.
	AddSigningKey(k SigningKey) error
	// DeleteSigningKeysExcept deletes every JWT signing key but the one with the given id.
	DeleteSigningKeysExcept(id string) error
	// PruneChanges deletes changes logged before the given time.
	PruneChanges(before time.Time) error

	// LockApp returns an app by name and locks it until the end of the transaction.
	LockApp(name string) (App, error)
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
	// RecordToken counts a download-token answer in the TokenIssuance of its session, app, version
	// and kind (ti.IssuedAt is the answer's time), creating it for the first answer.
	RecordToken(ti TokenIssuance) error
	// LockProduct returns a product by id and locks it until the end of the transaction.
	LockProduct(id int64) (Product, error)
	// PutProduct stores a product, replacing the stored one with its id.
	PutProduct(p Product) error
	// AddReview stores a review and returns it with its id.
	AddReview(r Review) (Review, error)
	// ReviewByUser returns the review of a product by a user; ErrNotFound when there is none.
	ReviewByUser(productID, userID int64) (Review, error)
	// UpdateReview replaces the review with r.ID by r.
	UpdateReview(r Review) error
	// OwnsProduct reports whether the user has a subscription of the product in an owning status.
	OwnsProduct(userID, productID int64) (bool, error)
	// CreateSubscription stores a subscription and returns it with its id.
	CreateSubscription(s Subscription) (Subscription, error)
}

// Collect gathers what a listing yields, stopping at the first error. For short listings (tests,
// one page): the point of the iterators is not to hold long ones in memory.
func Collect[T any](seq iter.Seq2[T, error]) ([]T, error) {
	var out []T
	for x, err := range seq {
		if err != nil {
			return out, err
		}
		out = append(out, x)
	}
	return out, nil
}
