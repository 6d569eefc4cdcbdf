package sqlstore

import (
	"context"
	"database/sql"
	"encoding/hex"
	"errors"
	"fmt"
	"iter"
	"sort"
	"strconv"
	"strings"
	"time"

	"openconsole"
)

// licenseCols are the columns of a license (alias l), and licenseOwnerJoin the join that gives
// ownerCol, its owner's username.
const (
	licenseCols = `l.id, l.key, l.kind, COALESCE(l.owner_id, 0), l.seats, l.taken, l.expires_at, l.suspended_at,
		l.revoked_at, l.note, l.metadata, l.created_at, l.updated_at, l.version`
	ownerCol         = `COALESCE(ou.username, '')`
	licenseOwnerJoin = ` LEFT JOIN users ou ON ou.id = l.owner_id`
)

// scannedLicense receives the licenseCols of a row (and ownerCol with owner set).
type scannedLicense struct {
	l                  openconsole.License
	kind, meta         string
	exp, susp, rev     sql.NullInt64
	createdMS, updated int64
	owner              bool
}

func (s *scannedLicense) dest() []any {
	d := []any{&s.l.ID, &s.l.Key, &s.kind, &s.l.OwnerID, &s.l.Seats, &s.l.Taken, &s.exp, &s.susp, &s.rev,
		&s.l.Note, &s.meta, &s.createdMS, &s.updated, &s.l.Version}
	if s.owner {
		d = append(d, &s.l.Owner)
	}
	return d
}

func (s *scannedLicense) license() openconsole.License {
	l := s.l
	l.Kind = openconsole.LicenseKind(s.kind)
	l.ExpiresAt, l.SuspendedAt, l.RevokedAt = fromNullMS(s.exp), fromNullMS(s.susp), fromNullMS(s.rev)
	l.CreatedAt, l.UpdatedAt = fromMS(s.createdMS), fromMS(s.updated)
	l.Metadata = []byte(s.meta)
	return l
}

// scanLicense scans a row of licenseCols (then ownerCol, when withOwner), then extra.
func scanLicense(row interface{ Scan(...any) error }, withOwner bool, extra ...any) (openconsole.License, error) {
	sl := scannedLicense{owner: withOwner}
	if err := row.Scan(append(sl.dest(), extra...)...); err != nil {
		if errors.Is(err, sql.ErrNoRows) {
			return openconsole.License{}, openconsole.ErrNotFound
		}
		return openconsole.License{}, err
	}
	return sl.license(), nil
}

const sessionCols = `s.id, s.license_id, s.ts, s.created_at, s.last_seen_at, s.revoked_at, s.ended_at, s.addr, s.expires_at`

func scanSession(row interface{ Scan(...any) error }, extra ...any) (openconsole.Session, error) {
	var s openconsole.Session
	var created, seen int64
	var rev, ended, exp sql.NullInt64
	if err := row.Scan(append([]any{&s.ID, &s.LicenseID, &s.Timestamp, &created, &seen, &rev, &ended, &s.Addr, &exp}, extra...)...); err != nil {
		if errors.Is(err, sql.ErrNoRows) {
			return s, openconsole.ErrNotFound
		}
		return s, err
	}
	s.CreatedAt, s.LastSeenAt, s.RevokedAt, s.EndedAt = fromMS(created), fromMS(seen), fromNullMS(rev), fromNullMS(ended)
	s.ExpiresAt = fromNullMS(exp)
	return s, nil
}

const userCols = `id, username, email, display_name, password_hash, vendor, whitelabeled, disabled, role, created_at, updated_at, version`

func scanUser(row interface{ Scan(...any) error }) (openconsole.User, error) {
	var u openconsole.User
	var created, updated int64
	var role string
	if err := row.Scan(&u.ID, &u.Username, &u.Email, &u.DisplayName, &u.PasswordHash, &u.Vendor, &u.Whitelabeled,
		&u.Disabled, &role, &created, &updated, &u.Version); err != nil {
		if errors.Is(err, sql.ErrNoRows) {
			return u, openconsole.ErrNotFound
		}
		return u, err
	}
	u.Role, u.CreatedAt, u.UpdatedAt = openconsole.Role(role), fromMS(created), fromMS(updated)
	return u, nil
}

const sessionStateQuery = `SELECT s.ts, s.last_seen_at, s.revoked_at, s.ended_at, s.expires_at, s.license_id,
	l.key, l.kind, COALESCE(l.owner_id, 0), l.seats, l.expires_at, l.suspended_at, l.revoked_at
	FROM sessions s JOIN licenses l ON l.id = s.license_id WHERE s.id = ?`

// SessionState implements openconsole.Store.
func (s *Store) SessionState(ctx context.Context, id string) (openconsole.SessionState, error) {
	var st openconsole.SessionState
	var seen int64
	var srev, ended, sexp, exp, susp, lrev sql.NullInt64
	var kind string
	err := s.state.QueryRowContext(ctx, id).Scan(&st.Session.Timestamp, &seen, &srev, &ended, &sexp, &st.License.ID,
		&st.License.Key, &kind, &st.License.OwnerID, &st.License.Seats, &exp, &susp, &lrev)
	if errors.Is(err, sql.ErrNoRows) {
		return st, openconsole.ErrNotFound
	} else if err != nil {
		return st, fmt.Errorf("session state: %w", err)
	}
	st.Session.ID, st.Session.LicenseID = id, st.License.ID
	st.Session.LastSeenAt, st.Session.RevokedAt, st.Session.EndedAt = fromMS(seen), fromNullMS(srev), fromNullMS(ended)
	st.Session.ExpiresAt = fromNullMS(sexp)
	st.License.Kind = openconsole.LicenseKind(kind)
	st.License.ExpiresAt, st.License.SuspendedAt, st.License.RevokedAt = fromNullMS(exp), fromNullMS(susp), fromNullMS(lrev)
	return st, nil
}

const touchSession = `UPDATE sessions SET last_seen_at = max(last_seen_at, ?) WHERE id = ?
	RETURNING revoked_at IS NOT NULL OR ended_at IS NOT NULL`

// TouchSessions implements openconsole.Store. It writes the batch in one transaction, in id order
// so that concurrent batches from several servers cannot deadlock.
func (s *Store) TouchSessions(ctx context.Context, seen []openconsole.Touch) ([]string, error) {
	seen = append([]openconsole.Touch(nil), seen...)
	sort.Slice(seen, func(i, j int) bool { return seen[i].SessionID < seen[j].SessionID })
	var gone []string
	err := s.inTx(ctx, func(tx *sql.Tx) error {
		gone = gone[:0]
		if s.d.bindDollar {
			ids, ats := make([]string, len(seen)), make([]int64, len(seen))
			for i, t := range seen {
				ids[i], ats[i] = t.SessionID, ms(t.At)
			}
			rows, err := tx.QueryContext(ctx, `UPDATE sessions s SET last_seen_at = GREATEST(s.last_seen_at, t.at)
				FROM unnest($1::text[], $2::bigint[]) AS t(id, at) WHERE s.id = t.id
				RETURNING s.id, s.revoked_at IS NOT NULL OR s.ended_at IS NOT NULL`, ids, ats)
			if err != nil {
				return err
			}
			defer rows.Close()
			for rows.Next() {
				var id string
				var g bool
				if err := rows.Scan(&id, &g); err != nil {
					return err
				}
				if g {
					gone = append(gone, id)
				}
			}
			return rows.Err()
		}
		stmt := tx.StmtContext(ctx, s.prepared[touchSession])
		for _, t := range seen {
			var g bool
			err := stmt.QueryRowContext(ctx, ms(t.At), t.SessionID).Scan(&g)
			if errors.Is(err, sql.ErrNoRows) {
				continue
			} else if err != nil {
				return err
			}
			if g {
				gone = append(gone, t.SessionID)
			}
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("touch sessions: %w", err)
	}
	return gone, nil
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
	return scanLicense(s.r.QueryRowContext(ctx, s.d.q(`SELECT `+licenseCols+`, `+ownerCol+` FROM licenses l`+licenseOwnerJoin+
		` WHERE l.key = ?`), key), true)
}

// ListLicenses implements openconsole.Store.
func (s *Store) ListLicenses(ctx context.Context, q openconsole.LicenseQuery) iter.Seq2[openconsole.License, error] {
	var c conds
	c.add(`l.id > ?`, q.After)
	now := ms(q.Now)
	// The predicates of the status indexes (migration 0007), word for word.
	switch q.Status {
	case openconsole.StatusRevoked:
		c.add(`l.revoked_at IS NOT NULL`)
	case openconsole.StatusSuspended:
		c.add(`l.revoked_at IS NULL AND l.suspended_at IS NOT NULL`)
	case openconsole.StatusExpired:
		c.add(`l.revoked_at IS NULL AND l.suspended_at IS NULL AND l.expires_at IS NOT NULL AND l.expires_at <= ?`, now)
	case openconsole.StatusActive:
		c.add(`l.revoked_at IS NULL AND l.suspended_at IS NULL AND (l.expires_at IS NULL OR l.expires_at > ?)`, now)
	}
	if q.Owner != "" {
		c.add(`ou.username = ?`, q.Owner)
	}
	if q.NearLimit {
		// No index: one on taken would cost every activation (on PostgreSQL it ends HOT updates).
		c.add(`l.revoked_at IS NULL AND l.suspended_at IS NULL AND l.taken * 10 >= l.seats * 9`)
	}
	if q.Search != "" {
		// A substring of the key, the note or the owner's username, in any case: the matching ids
		// come from a scan of the narrow license_search in id order, which stops at the page's end
		// when nothing else filters (SQLite: GLOB on the lower-case text, the cheapest match it has).
		find, arg := `text GLOB ?`, "*"+globEscape(strings.ToLower(q.Search))+"*"
		if s.d != sqliteDialect {
			find, arg = `strpos(text, ?) > 0`, strings.ToLower(q.Search)
		}
		sub := `l.id IN (SELECT license_id FROM license_search WHERE license_id > ? AND ` + find
		if len(c.where) == 1 && q.Limit > 0 { // only the cursor so far: the page's end is the search's
			sub += ` ORDER BY license_id` + limitClause(q.Limit)
		}
		c.add(sub+`)`, q.After, arg)
	}
	query := `SELECT ` + licenseCols + `, ` + ownerCol + ` FROM licenses l` + licenseOwnerJoin + c.String() + ` ORDER BY l.id` + limitClause(q.Limit)
	return func(yield func(openconsole.License, error) bool) {
		rows, err := s.r.QueryContext(ctx, s.d.q(query), c.args...)
		if err != nil {
			yield(openconsole.License{}, fmt.Errorf("licenses: %w", err))
			return
		}
		defer rows.Close()
		for rows.Next() {
			l, err := scanLicense(rows, true)
			if err != nil {
				yield(openconsole.License{}, fmt.Errorf("licenses: %w", err))
				return
			}
			if !yield(l, nil) {
				return
			}
		}
		if err := rows.Err(); err != nil {
			yield(openconsole.License{}, fmt.Errorf("licenses: %w", err))
		}
	}
}

// ListSessions implements openconsole.Store. The (license_id, ts, id) index serves both orders, so
// a page costs the same at the start of a million sessions as at the end.
func (s *Store) ListSessions(ctx context.Context, q openconsole.SessionQuery) iter.Seq2[openconsole.SessionState, error] {
	var c conds
	order := ` ORDER BY s.license_id, s.ts, s.id`
	if q.LicenseID > 0 {
		c.add(`s.license_id = ? AND (s.ts, s.id) > (?, ?)`, q.LicenseID, q.After.Timestamp, q.After.ID)
		order = ` ORDER BY s.ts, s.id`
	} else {
		c.add(`(s.license_id, s.ts, s.id) > (?, ?, ?)`, q.After.LicenseID, q.After.Timestamp, q.After.ID)
	}
	if q.Live != nil {
		// A session with a hard expiry (an offline certificate's) is live until then, however idle.
		live := `(s.revoked_at IS NULL AND s.ended_at IS NULL AND
			(s.expires_at IS NULL AND s.last_seen_at >= ? OR s.expires_at > ?) AND l.revoked_at IS NULL AND
			l.suspended_at IS NULL AND (l.expires_at IS NULL OR l.expires_at > ?))`
		if !*q.Live {
			live = `NOT ` + live
		}
		c.add(live, ms(q.IdleBefore), ms(q.Now), ms(q.Now))
	}
	query := `SELECT ` + sessionCols + `, ` + licenseCols + `, ` + ownerCol + ` FROM sessions s JOIN licenses l ON l.id = s.license_id` +
		licenseOwnerJoin + c.String() + order + limitClause(q.Limit)
	return func(yield func(openconsole.SessionState, error) bool) {
		rows, err := s.r.QueryContext(ctx, s.d.q(query), c.args...)
		if err != nil {
			yield(openconsole.SessionState{}, fmt.Errorf("sessions: %w", err))
			return
		}
		defer rows.Close()
		for rows.Next() {
			var st openconsole.SessionState
			lic := scannedLicense{owner: true}
			st.Session, err = scanSession(rows, lic.dest()...)
			if err != nil {
				yield(openconsole.SessionState{}, fmt.Errorf("sessions: %w", err))
				return
			}
			st.License = lic.license()
			if !yield(st, nil) {
				return
			}
		}
		if err := rows.Err(); err != nil {
			yield(openconsole.SessionState{}, fmt.Errorf("sessions: %w", err))
		}
	}
}

// Session implements openconsole.Store.
func (s *Store) Session(ctx context.Context, id string) (openconsole.SessionState, error) {
	var st openconsole.SessionState
	lic := scannedLicense{owner: true}
	sess, err := scanSession(s.r.QueryRowContext(ctx, s.d.q(`SELECT `+sessionCols+`, `+licenseCols+`, `+ownerCol+
		` FROM sessions s JOIN licenses l ON l.id = s.license_id`+licenseOwnerJoin+` WHERE s.id = ?`), id), lic.dest()...)
	if err != nil {
		return st, err
	}
	st.Session, st.License = sess, lic.license()
	return st, nil
}

// limitClause is the LIMIT clause for n rows, none for 0.
func limitClause(n int) string {
	if n <= 0 {
		return ""
	}
	return " LIMIT " + strconv.Itoa(n)
}

// SeatMismatches implements openconsole.Store: one statement, so one snapshot.
func (s *Store) SeatMismatches(ctx context.Context) (openconsole.SeatCheck, error) {
	return seatMismatches(ctx, s.r)
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

// SigningKeys implements openconsole.Store: the keys in the order they were added.
func (s *Store) SigningKeys(ctx context.Context) ([]openconsole.SigningKey, error) {
	rows, err := s.r.QueryContext(ctx, `SELECT id, secret, created_at FROM signing_keys ORDER BY seq`)
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

// LatestChange implements openconsole.Store.
func (s *Store) LatestChange(ctx context.Context) (int64, error) {
	var seq int64
	if err := s.r.QueryRowContext(ctx, `SELECT COALESCE(MAX(seq), 0) FROM changes`).Scan(&seq); err != nil {
		return 0, fmt.Errorf("changes: %w", err)
	}
	return seq, nil
}

// Changes implements openconsole.Store. Sequence numbers become visible in order: changes are only
// written through Update, whose transactions run one at a time (SQLite's one writer; on PostgreSQL
// every batch holds the clock row lock before it draws a sequence number), so a poller that has
// seen seq n will never later find a smaller one committed.
func (s *Store) Changes(ctx context.Context, after int64, limit int) ([]openconsole.Change, error) {
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
	return s.Update(ctx, func(tx openconsole.Tx) error { return tx.PruneChanges(before) })
}

// globEscape makes s match itself in a GLOB pattern.
func globEscape(s string) string {
	return strings.NewReplacer("[", "[[]", "*", "[*]", "?", "[?]").Replace(s)
}
