package sqlstore

import (
	"context"
	"database/sql"
	"encoding/hex"
	"errors"
	"fmt"
	"sort"
	"strings"
	"time"

	"openconsole"
)

const licenseCols = `l.id, l.key, l.kind, COALESCE(l.owner_id, 0), l.seats, l.expires_at, l.revoked_at, l.created_at`

func scanLicense(row interface{ Scan(...any) error }, extra ...any) (openconsole.License, error) {
	var l openconsole.License
	var kind string
	var exp, rev sql.NullInt64
	var created int64
	dest := append([]any{&l.ID, &l.Key, &kind, &l.OwnerID, &l.Seats, &exp, &rev, &created}, extra...)
	if err := row.Scan(dest...); err != nil {
		if errors.Is(err, sql.ErrNoRows) {
			return l, openconsole.ErrNotFound
		}
		return l, err
	}
	l.Kind = openconsole.LicenseKind(kind)
	l.ExpiresAt, l.RevokedAt, l.CreatedAt = fromNullMS(exp), fromNullMS(rev), fromMS(created)
	return l, nil
}

const sessionCols = `s.id, s.license_id, s.ts, s.created_at, s.last_seen_at, s.revoked_at`

func scanSession(row interface{ Scan(...any) error }) (openconsole.Session, error) {
	var s openconsole.Session
	var created, seen int64
	var rev sql.NullInt64
	if err := row.Scan(&s.ID, &s.LicenseID, &s.Timestamp, &created, &seen, &rev); err != nil {
		if errors.Is(err, sql.ErrNoRows) {
			return s, openconsole.ErrNotFound
		}
		return s, err
	}
	s.CreatedAt, s.LastSeenAt, s.RevokedAt = fromMS(created), fromMS(seen), fromNullMS(rev)
	return s, nil
}

const userCols = `id, username, email, display_name, password_hash, vendor, whitelabeled, created_at`

func scanUser(row interface{ Scan(...any) error }) (openconsole.User, error) {
	var u openconsole.User
	var created int64
	if err := row.Scan(&u.ID, &u.Username, &u.Email, &u.DisplayName, &u.PasswordHash, &u.Vendor, &u.Whitelabeled, &created); err != nil {
		if errors.Is(err, sql.ErrNoRows) {
			return u, openconsole.ErrNotFound
		}
		return u, err
	}
	u.CreatedAt = fromMS(created)
	return u, nil
}

const sessionStateQuery = `SELECT s.ts, s.last_seen_at, s.revoked_at, s.license_id,
	l.key, l.kind, COALESCE(l.owner_id, 0), l.seats, l.expires_at, l.revoked_at
	FROM sessions s JOIN licenses l ON l.id = s.license_id WHERE s.id = ?`

// SessionState implements openconsole.Store.
func (s *Store) SessionState(ctx context.Context, id string) (openconsole.SessionState, error) {
	var st openconsole.SessionState
	var seen int64
	var srev, exp, lrev sql.NullInt64
	var kind string
	err := s.state.QueryRowContext(ctx, id).Scan(&st.Session.Timestamp, &seen, &srev, &st.License.ID,
		&st.License.Key, &kind, &st.License.OwnerID, &st.License.Seats, &exp, &lrev)
	if errors.Is(err, sql.ErrNoRows) {
		return st, openconsole.ErrNotFound
	} else if err != nil {
		return st, fmt.Errorf("session state: %w", err)
	}
	st.Session.ID, st.Session.LicenseID = id, st.License.ID
	st.Session.LastSeenAt, st.Session.RevokedAt = fromMS(seen), fromNullMS(srev)
	st.License.Kind = openconsole.LicenseKind(kind)
	st.License.ExpiresAt, st.License.RevokedAt = fromNullMS(exp), fromNullMS(lrev)
	return st, nil
}

// TouchSessions implements openconsole.Store. It writes the batch in one transaction, in id order
// so that concurrent batches from several servers cannot deadlock.
func (s *Store) TouchSessions(ctx context.Context, seen map[string]time.Time) error {
	ids := make([]string, 0, len(seen))
	for id := range seen {
		ids = append(ids, id)
	}
	sort.Strings(ids)
	q := s.d.q(`UPDATE sessions SET last_seen_at = ? WHERE id = ? AND last_seen_at < ?`)
	return s.inTx(ctx, func(tx *sql.Tx) error {
		stmt, err := tx.PrepareContext(ctx, q)
		if err != nil {
			return err
		}
		defer stmt.Close()
		for _, id := range ids {
			t := ms(seen[id])
			if _, err := stmt.ExecContext(ctx, t, id, t); err != nil {
				return fmt.Errorf("touch sessions: %w", err)
			}
		}
		return nil
	})
}

// UserByUsername implements openconsole.Store.
func (s *Store) UserByUsername(ctx context.Context, username string) (openconsole.User, error) {
	return scanUser(s.r.QueryRowContext(ctx, s.d.q(`SELECT `+userCols+` FROM users WHERE username = ?`), username))
}

// UserByID implements openconsole.Store.
func (s *Store) UserByID(ctx context.Context, id int64) (openconsole.User, error) {
	return scanUser(s.r.QueryRowContext(ctx, s.d.q(`SELECT `+userCols+` FROM users WHERE id = ?`), id))
}

// LicenseByKey implements openconsole.Store.
func (s *Store) LicenseByKey(ctx context.Context, key string) (openconsole.License, error) {
	return scanLicense(s.r.QueryRowContext(ctx, s.d.q(`SELECT `+licenseCols+` FROM licenses l WHERE l.key = ?`), key))
}

// Licenses implements openconsole.Store, in creation order.
func (s *Store) Licenses(ctx context.Context, liveSince time.Time) ([]openconsole.LicenseUsage, error) {
	rows, err := s.r.QueryContext(ctx, s.d.q(`SELECT `+licenseCols+`,
		(SELECT COUNT(*) FROM sessions s WHERE s.license_id = l.id AND s.revoked_at IS NULL AND s.last_seen_at >= ?)
		FROM licenses l ORDER BY l.id`), ms(liveSince))
	if err != nil {
		return nil, fmt.Errorf("licenses: %w", err)
	}
	defer rows.Close()
	var out []openconsole.LicenseUsage
	for rows.Next() {
		var u openconsole.LicenseUsage
		if u.License, err = scanLicense(rows, &u.LiveSessions); err != nil {
			return nil, fmt.Errorf("licenses: %w", err)
		}
		out = append(out, u)
	}
	return out, rows.Err()
}

// Sessions implements openconsole.Store.
func (s *Store) Sessions(ctx context.Context, licenseID int64) ([]openconsole.SessionState, error) {
	rows, err := s.r.QueryContext(ctx, s.d.q(`SELECT `+licenseCols+`, `+sessionCols+`
		FROM sessions s JOIN licenses l ON l.id = s.license_id
		WHERE ? = 0 OR s.license_id = ? ORDER BY s.ts`), licenseID, licenseID)
	if err != nil {
		return nil, fmt.Errorf("sessions: %w", err)
	}
	defer rows.Close()
	var out []openconsole.SessionState
	for rows.Next() {
		var st openconsole.SessionState
		var created, seen int64
		var rev sql.NullInt64
		sess := &st.Session
		if st.License, err = scanLicense(rows, &sess.ID, &sess.LicenseID, &sess.Timestamp, &created, &seen, &rev); err != nil {
			return nil, fmt.Errorf("sessions: %w", err)
		}
		sess.CreatedAt, sess.LastSeenAt, sess.RevokedAt = fromMS(created), fromMS(seen), fromNullMS(rev)
		out = append(out, st)
	}
	return out, rows.Err()
}

// SerialByLicense implements openconsole.Store.
func (s *Store) SerialByLicense(ctx context.Context, licenseID int64) (openconsole.Serial, error) {
	var sr openconsole.Serial
	var by sql.NullInt64
	var created int64
	err := s.r.QueryRowContext(ctx, s.d.q(`SELECT sr.license_id, l.key, sr.model, sr.manufacturer_name,
		sr.manufacturer_id, sr.manufacture_date, sr.registered_by, sr.status, sr.created_at
		FROM serials sr JOIN licenses l ON l.id = sr.license_id WHERE sr.license_id = ?`), licenseID).
		Scan(&sr.LicenseID, &sr.SerialNumber, &sr.Model, &sr.ManufacturerName, &sr.ManufacturerID,
			&sr.ManufactureDate, &by, &sr.Status, &created)
	if errors.Is(err, sql.ErrNoRows) {
		return sr, openconsole.ErrNotFound
	} else if err != nil {
		return sr, fmt.Errorf("serial: %w", err)
	}
	sr.RegisteredBy, sr.CreatedAt = by.Int64, fromMS(created)
	return sr, nil
}

// SigningKeys implements openconsole.Store.
func (s *Store) SigningKeys(ctx context.Context) ([]openconsole.SigningKey, error) {
	rows, err := s.r.QueryContext(ctx, `SELECT id, secret, created_at FROM signing_keys ORDER BY created_at, id`)
	if err != nil {
		return nil, fmt.Errorf("signing keys: %w", err)
	}
	defer rows.Close()
	var out []openconsole.SigningKey
	for rows.Next() {
		var k openconsole.SigningKey
		var secret string
		var created int64
		if err := rows.Scan(&k.ID, &secret, &created); err != nil {
			return nil, fmt.Errorf("signing keys: %w", err)
		}
		if k.Secret, err = hex.DecodeString(secret); err != nil {
			return nil, fmt.Errorf("signing keys: key %s: %w", k.ID, err)
		}
		k.CreatedAt = fromMS(created)
		out = append(out, k)
	}
	return out, rows.Err()
}

type txn struct {
	ctx context.Context
	tx  *sql.Tx
	d   *dialect

	// What group commit needs to know of the functions run in it: how many writing statements ran,
	// and whether any statement failed (on PostgreSQL that aborts the whole transaction).
	writes int
	failed bool
}

func (t *txn) note(query string, err error) {
	if err != nil && !errors.Is(err, sql.ErrNoRows) {
		t.failed = true
	}
	if !strings.HasPrefix(strings.TrimSpace(query), "SELECT") {
		t.writes++
	}
}

func (t *txn) exec(query string, args ...any) (sql.Result, error) {
	res, err := t.tx.ExecContext(t.ctx, query, args...)
	t.note(query, err)
	return res, err
}

func (t *txn) query(query string, args ...any) (*sql.Rows, error) {
	rows, err := t.tx.QueryContext(t.ctx, query, args...)
	t.note(query, err)
	return rows, err
}

// queryRow is QueryRow whose Scan error is noted too.
func (t *txn) queryRow(query string, args ...any) txRow {
	return txRow{t, query, t.tx.QueryRowContext(t.ctx, query, args...)}
}

type txRow struct {
	t     *txn
	query string
	row   *sql.Row
}

func (r txRow) Scan(dest ...any) error {
	err := r.row.Scan(dest...)
	r.t.note(r.query, err)
	return err
}

func (t *txn) LicenseByKey(key string) (openconsole.License, error) {
	return scanLicense(t.queryRow(t.d.q(`SELECT `+licenseCols+` FROM licenses l WHERE l.key = ?`+t.d.forUpdate), key))
}

func (t *txn) LicensesByOwner(userID int64) ([]openconsole.License, error) {
	rows, err := t.query(t.d.q(`SELECT `+licenseCols+` FROM licenses l
		WHERE l.owner_id = ? AND l.kind = 'key' ORDER BY l.id`+t.d.forUpdate), userID)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var out []openconsole.License
	for rows.Next() {
		l, err := scanLicense(rows)
		if err != nil {
			return nil, err
		}
		out = append(out, l)
	}
	return out, rows.Err()
}

func (t *txn) Session(id string) (openconsole.Session, error) {
	return scanSession(t.queryRow(t.d.q(`SELECT `+sessionCols+` FROM sessions s WHERE s.id = ?`), id))
}

func (t *txn) CountLiveSessions(licenseID int64, liveSince time.Time) (int, error) {
	var n int
	err := t.queryRow(t.d.q(`SELECT COUNT(*) FROM sessions
		WHERE license_id = ? AND revoked_at IS NULL AND last_seen_at >= ?`), licenseID, ms(liveSince)).Scan(&n)
	return n, err
}

func (t *txn) NextTimestamp(now time.Time) (int64, error) {
	var ts int64
	err := t.queryRow(t.d.q(t.d.nextClock), now.UnixMilli()).Scan(&ts)
	return ts, err
}

func (t *txn) CreateSession(s openconsole.Session) error {
	_, err := t.exec(t.d.q(`INSERT INTO sessions (id, license_id, ts, created_at, last_seen_at)
		VALUES (?, ?, ?, ?, ?)`), s.ID, s.LicenseID, s.Timestamp, ms(s.CreatedAt), ms(s.LastSeenAt))
	if isUnique(err) {
		return openconsole.Errorf(openconsole.ECONFLICT, "session exists already")
	}
	return err
}

func (t *txn) RevokeSession(id string, at time.Time) error {
	if err := t.expectRow(t.exec(t.d.q(`UPDATE sessions SET revoked_at = COALESCE(revoked_at, ?) WHERE id = ?`), ms(at), id)); err != nil {
		return err
	}
	_, err := t.exec(t.d.q(`INSERT INTO changes (license_id, session_id, at)
		SELECT license_id, id, ? FROM sessions WHERE id = ?`), ms(at), id)
	return err
}

func (t *txn) CreateUser(u openconsole.User) (openconsole.User, error) {
	err := t.queryRow(t.d.q(`INSERT INTO users
		(username, email, display_name, password_hash, vendor, whitelabeled, created_at)
		VALUES (?, ?, ?, ?, ?, ?, ?) RETURNING id`),
		u.Username, u.Email, u.DisplayName, u.PasswordHash, u.Vendor, u.Whitelabeled, ms(u.CreatedAt)).Scan(&u.ID)
	if isUnique(err) {
		return u, openconsole.Errorf(openconsole.ECONFLICT, "username exists already")
	}
	return u, err
}

func (t *txn) CreateLicense(l openconsole.License) (openconsole.License, error) {
	owner := sql.NullInt64{Int64: l.OwnerID, Valid: l.OwnerID != 0}
	err := t.queryRow(t.d.q(`INSERT INTO licenses (key, kind, owner_id, seats, expires_at, created_at)
		VALUES (?, ?, ?, ?, ?, ?) RETURNING id`),
		l.Key, string(l.Kind), owner, l.Seats, nullMS(l.ExpiresAt), ms(l.CreatedAt)).Scan(&l.ID)
	if isUnique(err) {
		return l, openconsole.Errorf(openconsole.ECONFLICT, "license key exists already")
	}
	return l, err
}

func (t *txn) RevokeLicense(key string, at time.Time) error {
	if err := t.expectRow(t.exec(t.d.q(`UPDATE licenses SET revoked_at = COALESCE(revoked_at, ?) WHERE key = ?`), ms(at), key)); err != nil {
		return err
	}
	_, err := t.exec(t.d.q(`INSERT INTO changes (license_id, at) SELECT id, ? FROM licenses WHERE key = ?`), ms(at), key)
	return err
}

func (t *txn) CreateSerial(s openconsole.Serial) error {
	by := sql.NullInt64{Int64: s.RegisteredBy, Valid: s.RegisteredBy != 0}
	_, err := t.exec(t.d.q(`INSERT INTO serials
		(license_id, model, manufacturer_name, manufacturer_id, manufacture_date, registered_by, status, created_at)
		VALUES (?, ?, ?, ?, ?, ?, ?, ?)`),
		s.LicenseID, s.Model, s.ManufacturerName, s.ManufacturerID, s.ManufactureDate, by, s.Status, ms(s.CreatedAt))
	return err
}

func (t *txn) MarkSerialActivated(licenseID int64) error {
	_, err := t.exec(t.d.q(`UPDATE serials SET status = ? WHERE license_id = ? AND status <> ?`),
		openconsole.SerialActivated, licenseID, openconsole.SerialActivated)
	return err
}

func (t *txn) DeleteSigningKeysExcept(id string) error {
	_, err := t.exec(t.d.q(`DELETE FROM signing_keys WHERE id <> ?`), id)
	return err
}

func (t *txn) AddSigningKey(k openconsole.SigningKey) error {
	_, err := t.exec(t.d.q(`INSERT INTO signing_keys (id, secret, created_at) VALUES (?, ?, ?)`),
		k.ID, hex.EncodeToString(k.Secret), ms(k.CreatedAt))
	return err
}

func (t *txn) expectRow(res sql.Result, err error) error {
	if err != nil {
		return err
	}
	n, err := res.RowsAffected()
	if err != nil {
		return err
	}
	if n == 0 {
		return openconsole.ErrNotFound
	}
	return nil
}

// Changes implements openconsole.Store. Sequence numbers become visible in order: changes are only
// written through Update, whose transactions run one at a time (SQLite's one writer; on PostgreSQL
// every batch holds the clock row lock before it draws a sequence number), so a poller that has
// seen seq n will never later find a smaller one committed.
func (s *Store) Changes(ctx context.Context, after int64, limit int) ([]openconsole.Change, error) {
	if after < 0 {
		var seq int64
		if err := s.r.QueryRowContext(ctx, `SELECT COALESCE(MAX(seq), 0) FROM changes`).Scan(&seq); err != nil {
			return nil, fmt.Errorf("changes: %w", err)
		}
		return []openconsole.Change{{Seq: seq}}, nil
	}
	rows, err := s.r.QueryContext(ctx, s.d.q(`SELECT seq, COALESCE(license_id, 0), COALESCE(session_id, '')
		FROM changes WHERE seq > ? ORDER BY seq LIMIT ?`), after, limit)
	if err != nil {
		return nil, fmt.Errorf("changes: %w", err)
	}
	defer rows.Close()
	var out []openconsole.Change
	for rows.Next() {
		var c openconsole.Change
		if err := rows.Scan(&c.Seq, &c.LicenseID, &c.SessionID); err != nil {
			return nil, fmt.Errorf("changes: %w", err)
		}
		out = append(out, c)
	}
	return out, rows.Err()
}

// PruneChanges implements openconsole.Store.
func (s *Store) PruneChanges(ctx context.Context, before time.Time) error {
	return s.Update(ctx, func(tx openconsole.Tx) error {
		_, err := tx.(*txn).exec(s.d.q(`DELETE FROM changes WHERE at < ?`), ms(before))
		return err
	})
}
