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

// txn is an openconsole.Tx: the functions of one group-commit batch run in it, one after another.
//
// An activation's writes (the new session, its seat, the timestamp clock, a serial's status) are
// not sent one statement at a time: they are kept in the txn and applied together before the commit
// (flush), a few statements per batch instead of four per activation. What a later function in the
// batch reads sees them all the same: reads of licenses add the seats taken in the batch, Session
// looks at the kept sessions first, and every other statement flushes first, so it runs against the
// database as it would be after the earlier functions.
type txn struct {
	ctx context.Context
	tx  *sql.Tx
	s   *Store
	d   *dialect

	// What group commit needs to know of the functions run in it: how many writes they made (kept
	// ones included), and whether any statement failed (on PostgreSQL that aborts the transaction).
	writes int
	failed bool

	stmts map[string]*sql.Stmt // SQLite: prepared statements bound to this transaction

	// Writes kept for flush.
	clock      int64 // the last timestamp issued, once clockKnown
	clockKnown bool
	clockDirty bool
	sessions   []openconsole.Session
	sessionIdx map[string]int // id -> index in sessions
	taken      map[int64]int  // seats taken (+) or freed (-) per license, not yet written
	serials    []int64        // serial licenses to mark activated
	hours      map[int64]int  // sessions created per hour (Unix time / 3600), not yet counted
}

func (s *Store) newTxn(ctx context.Context, tx *sql.Tx) *txn {
	return &txn{ctx: ctx, tx: tx, s: s, d: s.d}
}

// stmt returns q ready to run in the transaction: on SQLite a statement prepared once per store
// (parsing was a quarter of the CPU of activations), on PostgreSQL q itself (pgx caches prepared
// statements per connection).
func (t *txn) run(q string) (*sql.Stmt, string) {
	q = t.d.q(q)
	ps := t.s.prepared[q]
	if ps == nil {
		return nil, q
	}
	st := t.stmts[q]
	if st == nil {
		if t.stmts == nil {
			t.stmts = make(map[string]*sql.Stmt)
		}
		st = t.tx.StmtContext(t.ctx, ps)
		t.stmts[q] = st
	}
	return st, q
}

func (t *txn) note(query string, err error) {
	if err != nil && !errors.Is(err, sql.ErrNoRows) {
		t.failed = true
	}
	if !strings.HasPrefix(strings.TrimSpace(query), "SELECT") {
		t.writes++
	}
}

// The raw statements: each flushes the kept writes first (and so sees them).

func (t *txn) exec(query string, args ...any) (sql.Result, error) {
	if err := t.flush(); err != nil {
		return nil, err
	}
	return t.execNow(query, args...)
}

func (t *txn) query(query string, args ...any) (*sql.Rows, error) {
	if err := t.flush(); err != nil {
		return nil, err
	}
	return t.queryNow(query, args...)
}

func (t *txn) queryRow(query string, args ...any) txRow {
	if err := t.flush(); err != nil {
		return txRow{t: t, query: query, err: err}
	}
	return t.queryRowNow(query, args...)
}

// The statements that do not flush, for the methods that account for kept writes themselves.

func (t *txn) execNow(query string, args ...any) (sql.Result, error) {
	st, q := t.run(query)
	var res sql.Result
	var err error
	if st != nil {
		res, err = st.ExecContext(t.ctx, args...)
	} else {
		res, err = t.tx.ExecContext(t.ctx, q, args...)
	}
	t.note(q, err)
	return res, err
}

func (t *txn) queryNow(query string, args ...any) (*sql.Rows, error) {
	st, q := t.run(query)
	var rows *sql.Rows
	var err error
	if st != nil {
		rows, err = st.QueryContext(t.ctx, args...)
	} else {
		rows, err = t.tx.QueryContext(t.ctx, q, args...)
	}
	t.note(q, err)
	return rows, err
}

func (t *txn) queryRowNow(query string, args ...any) txRow {
	st, q := t.run(query)
	if st != nil {
		return txRow{t: t, query: q, row: st.QueryRowContext(t.ctx, args...)}
	}
	return txRow{t: t, query: q, row: t.tx.QueryRowContext(t.ctx, q, args...)}
}

// txRow is a *sql.Row whose Scan error is noted too.
type txRow struct {
	t     *txn
	query string
	row   *sql.Row
	err   error
}

func (r txRow) Scan(dest ...any) error {
	if r.err != nil {
		return r.err
	}
	err := r.row.Scan(dest...)
	r.t.note(r.query, err)
	return err
}

// flush applies the kept writes.
func (t *txn) flush() error {
	if len(t.sessions) > 0 {
		if err := t.flushSessions(); err != nil {
			return err
		}
		t.sessions, t.sessionIdx = t.sessions[:0], nil
	}
	if len(t.taken) > 0 {
		if err := t.flushTaken(); err != nil {
			return err
		}
		clear(t.taken)
	}
	if len(t.serials) > 0 {
		if err := t.flushSerials(); err != nil {
			return err
		}
		t.serials = t.serials[:0]
	}
	if len(t.hours) > 0 {
		for h, n := range t.hours {
			if _, err := t.execNow(countActivations, h, n); err != nil {
				return err
			}
		}
		clear(t.hours)
	}
	if t.clockDirty {
		if _, err := t.execNow(`UPDATE clock SET last_ms = ? WHERE id = 1`, t.clock); err != nil {
			return err
		}
		t.clockDirty = false
	}
	return nil
}

const countActivations = `INSERT INTO activation_hours (hour, n) VALUES (?, ?)
	ON CONFLICT (hour) DO UPDATE SET n = activation_hours.n + excluded.n`

const insertSession = `INSERT INTO sessions (id, license_id, ts, created_at, last_seen_at, addr, expires_at) VALUES (?, ?, ?, ?, ?, ?, ?)`

func (t *txn) flushSessions() error {
	if t.d.bindDollar {
		// One statement for the whole batch.
		n := len(t.sessions)
		ids, lics, tss, created, seen, addrs := make([]string, n), make([]int64, n), make([]int64, n), make([]int64, n), make([]int64, n), make([]string, n)
		exps := make([]*int64, n) // NULL for online sessions
		for i, s := range t.sessions {
			ids[i], lics[i], tss[i], created[i], seen[i], addrs[i] = s.ID, s.LicenseID, s.Timestamp, ms(s.CreatedAt), ms(s.LastSeenAt), s.Addr
			if !s.ExpiresAt.IsZero() {
				v := ms(s.ExpiresAt)
				exps[i] = &v
			}
		}
		_, err := t.execNow(`INSERT INTO sessions (id, license_id, ts, created_at, last_seen_at, addr, expires_at)
			SELECT * FROM unnest(?::text[], ?::bigint[], ?::bigint[], ?::bigint[], ?::bigint[], ?::text[], ?::bigint[])`,
			ids, lics, tss, created, seen, addrs, exps)
		if isUnique(err) {
			return openconsole.Errorf(openconsole.ECONFLICT, "session exists already")
		}
		return err
	}
	for _, s := range t.sessions {
		_, err := t.execNow(insertSession, s.ID, s.LicenseID, s.Timestamp, ms(s.CreatedAt), ms(s.LastSeenAt), s.Addr, nullMS(s.ExpiresAt))
		if isUnique(err) {
			return openconsole.Errorf(openconsole.ECONFLICT, "session exists already")
		} else if err != nil {
			return err
		}
	}
	return nil
}

const addTaken = `UPDATE licenses SET taken = taken + ? WHERE id = ?`

func (t *txn) flushTaken() error {
	ids := make([]int64, 0, len(t.taken))
	for id, d := range t.taken {
		if d != 0 {
			ids = append(ids, id)
		}
	}
	sort.Slice(ids, func(i, j int) bool { return ids[i] < ids[j] })
	if t.d.bindDollar && len(ids) > 1 {
		deltas := make([]int64, len(ids))
		for i, id := range ids {
			deltas[i] = int64(t.taken[id])
		}
		_, err := t.execNow(`UPDATE licenses l SET taken = l.taken + d.delta
			FROM unnest(?::bigint[], ?::bigint[]) AS d(id, delta) WHERE l.id = d.id`, ids, deltas)
		return err
	}
	for _, id := range ids {
		if _, err := t.execNow(addTaken, t.taken[id], id); err != nil {
			return err
		}
	}
	return nil
}

const markSerial = `UPDATE serials SET status = ? WHERE license_id = ? AND status <> ?`

func (t *txn) flushSerials() error {
	for _, id := range t.serials {
		if _, err := t.execNow(markSerial, openconsole.SerialActivated, id, openconsole.SerialActivated); err != nil {
			return err
		}
	}
	return nil
}

// withTaken adds the seats taken or freed in this transaction but not written yet.
func (t *txn) withTaken(l openconsole.License) openconsole.License {
	l.Taken += t.taken[l.ID]
	return l
}

func (t *txn) addTaken(licenseID int64, n int) {
	if t.taken == nil {
		t.taken = make(map[int64]int)
	}
	t.taken[licenseID] += n
	t.writes++
}

const lockLicenseByKey = `SELECT ` + licenseCols + ` FROM licenses l WHERE l.key = ?`

// LockLicenseByKey needs no row lock: every write transaction (Update) takes the one write lock
// first (SQLite's writer; on PostgreSQL the clock row, see lockForBatch), so no other transaction
// can change the license before this one ends. A FOR UPDATE would only add a WAL record per
// activation.
func (t *txn) LockLicenseByKey(key string) (openconsole.License, error) {
	l, err := scanLicense(t.queryRowNow(lockLicenseByKey, key), false)
	return t.withTaken(l), err
}

const lockLicensesByOwner = `SELECT ` + licenseCols + ` FROM licenses l WHERE l.owner_id = ? AND l.kind = 'key' ORDER BY l.id`

// LockLicensesByOwner needs no row lock, for the reason LockLicenseByKey gives.
func (t *txn) LockLicensesByOwner(userID int64) ([]openconsole.License, error) {
	rows, err := t.queryNow(lockLicensesByOwner, userID)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var out []openconsole.License
	for rows.Next() {
		l, err := scanLicense(rows, false)
		if err != nil {
			return nil, err
		}
		out = append(out, t.withTaken(l))
	}
	return out, rows.Err()
}

const sessionByID = `SELECT ` + sessionCols + ` FROM sessions s WHERE s.id = ?`

func (t *txn) Session(id string) (openconsole.Session, error) {
	if i, ok := t.sessionIdx[id]; ok {
		return t.sessions[i], nil
	}
	return scanSession(t.queryRowNow(sessionByID, id))
}

func (t *txn) NextTimestamp(now time.Time) (int64, error) {
	if !t.clockKnown {
		if err := t.queryRowNow(`SELECT last_ms FROM clock WHERE id = 1`).Scan(&t.clock); err != nil {
			return 0, err
		}
		t.clockKnown = true
	}
	t.clock = max(t.clock+1, now.UnixMilli())
	t.clockDirty = true
	t.writes++
	return t.clock, nil
}

func (t *txn) CreateSession(s openconsole.Session) error {
	if _, ok := t.sessionIdx[s.ID]; ok {
		return openconsole.Errorf(openconsole.ECONFLICT, "session exists already")
	}
	if t.sessionIdx == nil {
		t.sessionIdx = make(map[string]int)
	}
	t.sessionIdx[s.ID] = len(t.sessions)
	t.sessions = append(t.sessions, s)
	t.addTaken(s.LicenseID, 1)
	if t.hours == nil {
		t.hours = make(map[int64]int)
	}
	t.hours[s.CreatedAt.Unix()/3600]++
	return nil
}

func (t *txn) MarkSerialActivated(licenseID int64) error {
	t.serials = append(t.serials, licenseID)
	t.writes++
	return nil
}

func (t *txn) RevokeSession(id string, at time.Time) (openconsole.Session, error) {
	sess, err := scanSession(t.queryRow(sessionByID, id))
	if err != nil {
		return sess, err
	}
	if !sess.RevokedAt.IsZero() {
		return sess, nil
	}
	if _, err := t.exec(`UPDATE sessions SET revoked_at = ? WHERE id = ?`, ms(at), id); err != nil {
		return sess, err
	}
	if sess.HoldsSeat() {
		t.addTaken(sess.LicenseID, -1)
	}
	_, err = t.exec(`INSERT INTO changes (license_id, session_id, at) VALUES (?, ?, ?)`, sess.LicenseID, id, ms(at))
	return sess, err
}

// idleSessions reads the index sessions_idle (migration 0009): its predicate word for word.
const idleSessions = `SELECT id, license_id, last_seen_at FROM sessions
	WHERE revoked_at IS NULL AND ended_at IS NULL AND expires_at IS NULL AND last_seen_at < ? ORDER BY last_seen_at LIMIT ?`

func (t *txn) IdleSessions(before time.Time, limit int) ([]openconsole.IdleSession, error) {
	// Sessions created in this transaction were last seen now: only they could be missed without
	// a flush, and only if they were made idle on purpose.
	rows, err := t.queryNow(idleSessions, ms(before), limit)
	if err != nil {
		return nil, err
	}
	out, err := scanIdleSessions(rows)
	if err != nil {
		return nil, err
	}
	for _, s := range t.sessions {
		if s.HoldsSeat() && s.ExpiresAt.IsZero() && s.LastSeenAt.Before(before) && len(out) < limit {
			out = append(out, openconsole.IdleSession{ID: s.ID, LicenseID: s.LicenseID, LastSeenAt: s.LastSeenAt})
		}
	}
	return out, nil
}

// scanIdleSessions reads rows of id, license_id, last_seen_at, and closes them.
func scanIdleSessions(rows *sql.Rows) ([]openconsole.IdleSession, error) {
	defer rows.Close()
	var out []openconsole.IdleSession
	for rows.Next() {
		var s openconsole.IdleSession
		var seen int64
		if err := rows.Scan(&s.ID, &s.LicenseID, &seen); err != nil {
			return nil, err
		}
		s.LastSeenAt = fromMS(seen)
		out = append(out, s)
	}
	return out, rows.Err()
}

const endIdle = `UPDATE sessions SET ended_at = ?
	WHERE id = ? AND revoked_at IS NULL AND ended_at IS NULL AND expires_at IS NULL AND last_seen_at < ? RETURNING license_id`

func (t *txn) EndIdleSessions(ids []string, before, at time.Time) (map[int64]int, error) {
	if err := t.flush(); err != nil {
		return nil, err
	}
	ids = append([]string(nil), ids...)
	sort.Strings(ids) // one lock order for every server
	ended := make(map[int64]int)
	for _, id := range ids {
		var lic int64
		err := t.queryRowNow(endIdle, ms(at), id, ms(before)).Scan(&lic)
		if errors.Is(err, sql.ErrNoRows) {
			continue // revoked, ended or active meanwhile
		} else if err != nil {
			return nil, err
		}
		t.writes++
		ended[lic]++
	}
	for lic, n := range ended {
		t.addTaken(lic, -n)
	}
	return ended, nil
}

func (t *txn) SeatMismatches() (openconsole.SeatCheck, error) {
	if err := t.flush(); err != nil {
		return openconsole.SeatCheck{}, err
	}
	return seatMismatches(t.ctx, t.tx)
}

func (t *txn) SetTakenSeats(licenseID int64, taken int) error {
	return t.expectRow(t.exec(`UPDATE licenses SET taken = ? WHERE id = ?`, taken, licenseID))
}

func (t *txn) CreateUser(u openconsole.User) (openconsole.User, error) {
	if u.UpdatedAt.IsZero() {
		u.UpdatedAt = u.CreatedAt
	}
	u.Version = 1
	err := t.queryRow(`INSERT INTO users
		(username, email, display_name, password_hash, vendor, whitelabeled, disabled, role, created_at, updated_at, version)
		VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?) RETURNING id`,
		u.Username, u.Email, u.DisplayName, u.PasswordHash, u.Vendor, u.Whitelabeled, u.Disabled, string(u.Role),
		ms(u.CreatedAt), ms(u.UpdatedAt), u.Version).Scan(&u.ID)
	if isUnique(err) {
		return u, openconsole.Errorf(openconsole.ECONFLICT, "username exists already")
	}
	return u, err
}

func (t *txn) CreateLicense(l openconsole.License) (openconsole.License, error) {
	owner := sql.NullInt64{Int64: l.OwnerID, Valid: l.OwnerID != 0}
	if len(l.Metadata) == 0 {
		l.Metadata = []byte("{}")
	}
	if l.UpdatedAt.IsZero() {
		l.UpdatedAt = l.CreatedAt
	}
	l.Version = 1
	hash := openconsole.LicenseKeyHash(l.Key)
	err := t.queryRow(`INSERT INTO licenses (key, kind, owner_id, seats, expires_at, note, metadata, created_at, updated_at, version, key_sha256)
		VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?) RETURNING id`,
		l.Key, string(l.Kind), owner, l.Seats, nullMS(l.ExpiresAt), l.Note, string(l.Metadata), ms(l.CreatedAt), ms(l.UpdatedAt), l.Version,
		hash[:]).Scan(&l.ID)
	if isUnique(err) {
		return l, openconsole.Errorf(openconsole.ECONFLICT, "license key exists already")
	}
	if err != nil {
		return l, err
	}
	l.Taken = 0
	return l, t.putSearch(l)
}

// putSearch writes what the license search looks in for l: its key, note and owner's username in
// lower case (Go's Unicode lower case; the username is looked up by id).
func (t *txn) putSearch(l openconsole.License) error {
	_, err := t.exec(`INSERT INTO license_search (license_id, text)
		VALUES (?, ? || COALESCE((SELECT lower(username) FROM users WHERE id = ?), ''))
		ON CONFLICT (license_id) DO UPDATE SET text = excluded.text`,
		l.ID, strings.ToLower(l.Key)+" "+strings.ToLower(l.Note)+" ", l.OwnerID)
	return err
}

func (t *txn) CreateSerial(s openconsole.Serial) error {
	by := sql.NullInt64{Int64: s.RegisteredBy, Valid: s.RegisteredBy != 0}
	_, err := t.exec(`INSERT INTO serials
		(license_id, model, manufacturer_name, manufacturer_id, manufacture_date, registered_by, status, created_at)
		VALUES (?, ?, ?, ?, ?, ?, ?, ?)`,
		s.LicenseID, s.Model, s.ManufacturerName, s.ManufacturerID, s.ManufactureDate, by, s.Status, ms(s.CreatedAt))
	return err
}

func (t *txn) DeleteSigningKeysExcept(id string) error {
	_, err := t.exec(`DELETE FROM signing_keys WHERE id <> ?`, id)
	return err
}

func (t *txn) AddSigningKey(k openconsole.SigningKey) error {
	// seq orders the keys by insertion, whatever the adding host's clock says. Write transactions
	// run one at a time (SQLite's one writer; PostgreSQL's batches lock the clock row first), so
	// MAX + 1 is never taken twice; the unique index would refuse it if it were.
	_, err := t.exec(`INSERT INTO signing_keys (id, secret, created_at, seq)
		SELECT ?, ?, ?, COALESCE(MAX(seq), 0) + 1 FROM signing_keys`,
		k.ID, hex.EncodeToString(k.Secret), ms(k.CreatedAt))
	return err
}

func (t *txn) PruneChanges(before time.Time) error {
	_, err := t.exec(`DELETE FROM changes WHERE at < ?`, ms(before))
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

// seatMismatches recounts the seats held by every license's sessions on q, in one snapshot: one
// statement, or the caller's transaction.
func seatMismatches(ctx context.Context, q interface {
	QueryContext(context.Context, string, ...any) (*sql.Rows, error)
}) (openconsole.SeatCheck, error) {
	var c openconsole.SeatCheck
	rows, err := q.QueryContext(ctx, `SELECT l.id, l.key, l.taken, COALESCE(h.n, 0), l.seats
		FROM licenses l LEFT JOIN (SELECT license_id, COUNT(*) AS n FROM sessions
			WHERE revoked_at IS NULL AND ended_at IS NULL GROUP BY license_id) h ON h.license_id = l.id
		ORDER BY l.id`)
	if err != nil {
		return c, fmt.Errorf("recount seats: %w", err)
	}
	defer rows.Close()
	for rows.Next() {
		var m openconsole.SeatMismatch
		var seats int
		if err := rows.Scan(&m.LicenseID, &m.Key, &m.Taken, &m.Held, &seats); err != nil {
			return c, fmt.Errorf("recount seats: %w", err)
		}
		c.Licenses++
		c.Held += m.Held
		if m.Taken != m.Held {
			c.Mismatches = append(c.Mismatches, m)
		}
		if m.Held > seats {
			c.Over = append(c.Over, openconsole.SeatMismatch{LicenseID: m.LicenseID, Key: m.Key, Taken: seats, Held: m.Held})
		}
	}
	return c, rows.Err()
}
