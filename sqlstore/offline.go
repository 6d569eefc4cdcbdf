package sqlstore

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"iter"
	"sort"
	"time"

	"openconsole"
)

// The SQL of offline certificates: the sessions with a hard expiry that hold their seats, the
// licenses by the SHA-256 of their key, the certificates by device key, and the signing keys.

// expiredSessions reads the index sessions_expiring (migration 0009): its predicate word for word.
const expiredSessions = `SELECT id, license_id, last_seen_at FROM sessions
	WHERE revoked_at IS NULL AND ended_at IS NULL AND expires_at IS NOT NULL AND expires_at <= ?
	ORDER BY expires_at LIMIT ?`

func (t *txn) ExpiredSessions(now time.Time, limit int) ([]openconsole.IdleSession, error) {
	// Sessions created in this transaction expire in the future: no flush is needed to see them.
	rows, err := t.queryNow(expiredSessions, ms(now), limit)
	if err != nil {
		return nil, err
	}
	return scanIdleSessions(rows)
}

const endExpired = `UPDATE sessions SET ended_at = ?
	WHERE id = ? AND revoked_at IS NULL AND ended_at IS NULL AND expires_at IS NOT NULL AND expires_at <= ?
	RETURNING license_id`

func (t *txn) EndExpiredSessions(ids []string, now time.Time) (map[int64]int, error) {
	if err := t.flush(); err != nil {
		return nil, err
	}
	ids = append([]string(nil), ids...)
	sort.Strings(ids) // one lock order for every server
	ended := make(map[int64]int)
	for _, id := range ids {
		var lic int64
		err := t.queryRowNow(endExpired, ms(now), id, ms(now)).Scan(&lic)
		if errors.Is(err, sql.ErrNoRows) {
			continue // revoked, ended or extended meanwhile
		} else if err != nil {
			return nil, err
		}
		ended[lic]++
		// A cache holds no session with a hard expiry, but a server may answer from one it read a
		// moment ago: the change tells every server that this session's life ended.
		if _, err := t.execNow(`INSERT INTO changes (license_id, session_id, at) VALUES (?, ?, ?)`, lic, id, ms(now)); err != nil {
			return nil, err
		}
	}
	for lic, n := range ended {
		t.addTaken(lic, -n)
	}
	return ended, nil
}

func (t *txn) SetSessionExpiry(id string, expires, at time.Time) error {
	var lic int64
	err := t.queryRow(`UPDATE sessions SET expires_at = ? WHERE id = ? AND revoked_at IS NULL AND ended_at IS NULL
		RETURNING license_id`, nullMS(expires), id).Scan(&lic)
	if errors.Is(err, sql.ErrNoRows) {
		return openconsole.ErrNotFound
	} else if err != nil {
		return err
	}
	_, err = t.exec(`INSERT INTO changes (license_id, session_id, at) VALUES (?, ?, ?)`, lic, id, ms(at))
	return err
}

const lockLicenseByHash = `SELECT ` + licenseCols + ` FROM licenses l WHERE l.key_sha256 = ?`

// LockLicenseByKeyHash needs no row lock, for the reason LockLicenseByKey gives.
func (t *txn) LockLicenseByKeyHash(hash [32]byte) (openconsole.License, error) {
	l, err := scanLicense(t.queryRow(lockLicenseByHash, hash[:]), false)
	return t.withTaken(l), err
}

const offlineCols = `c.id, c.device_key, c.license_id, c.counter, c.nonce, c.session_id, c.issued_at, c.not_before,
	c.not_after, c.deactivated_at`

func scanOffline(row interface{ Scan(...any) error }, extra ...any) (openconsole.OfflineCertificate, error) {
	var c openconsole.OfflineCertificate
	var nonce []byte
	var counter, issued, nb, na int64
	var deact sql.NullInt64
	if err := row.Scan(append([]any{&c.ID, &c.DeviceKey, &c.LicenseID, &counter, &nonce, &c.SessionID, &issued, &nb, &na, &deact}, extra...)...); err != nil {
		if errors.Is(err, sql.ErrNoRows) {
			return c, openconsole.ErrNotFound
		}
		return c, err
	}
	if len(nonce) != len(c.Nonce) {
		return c, fmt.Errorf("offline certificate %d: stored nonce has %d bytes", c.ID, len(nonce))
	}
	copy(c.Nonce[:], nonce)
	c.Counter = uint64(counter)
	c.IssuedAt, c.NotBefore, c.NotAfter, c.DeactivatedAt = fromMS(issued), fromMS(nb), fromMS(na), fromNullMS(deact)
	return c, nil
}

func (t *txn) OfflineCertificate(deviceKey []byte) (openconsole.OfflineCertificate, error) {
	return scanOffline(t.queryRow(`SELECT `+offlineCols+` FROM offline_certificates c WHERE c.device_key = ?`, deviceKey))
}

func (t *txn) PutOfflineCertificate(c openconsole.OfflineCertificate) (int64, error) {
	var id int64
	err := t.queryRow(`INSERT INTO offline_certificates
		(device_key, license_id, counter, nonce, session_id, issued_at, not_before, not_after, deactivated_at)
		VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)
		ON CONFLICT (device_key) DO UPDATE SET license_id = excluded.license_id, counter = excluded.counter,
			nonce = excluded.nonce, session_id = excluded.session_id, issued_at = excluded.issued_at,
			not_before = excluded.not_before, not_after = excluded.not_after, deactivated_at = excluded.deactivated_at
		RETURNING id`,
		c.DeviceKey, c.LicenseID, int64(c.Counter), c.Nonce[:], c.SessionID, ms(c.IssuedAt), ms(c.NotBefore), ms(c.NotAfter),
		nullMS(c.DeactivatedAt)).Scan(&id)
	return id, err
}

// OfflineKeys implements openconsole.Tx.
func (t *txn) OfflineKeys() ([]openconsole.OfflineKey, error) { return t.noteKeys("offline_keys") }

// AddOfflineKey implements openconsole.Tx.
func (t *txn) AddOfflineKey(k openconsole.OfflineKey) error { return t.addNoteKey("offline_keys", k) }

// ForgetOfflineSigners implements openconsole.Tx.
func (t *txn) ForgetOfflineSigners() error { return t.forgetNoteSigners("offline_keys") }

// OfflineKeys implements openconsole.Store.
func (s *Store) OfflineKeys(ctx context.Context) ([]openconsole.OfflineKey, error) {
	return noteKeys(ctx, s.r, "offline_keys")
}

// ListOfflineCertificates implements openconsole.Store.
func (s *Store) ListOfflineCertificates(ctx context.Context, q openconsole.OfflineQuery) iter.Seq2[openconsole.OfflineCertificate, error] {
	var c conds
	c.add(`c.id > ?`, q.After)
	if q.LicenseID > 0 {
		c.add(`c.license_id = ?`, q.LicenseID)
	}
	return streamRows(ctx, s, `SELECT `+offlineCols+`, l.key FROM offline_certificates c JOIN licenses l ON l.id = c.license_id`+
		c.String()+` ORDER BY c.id`+limitClause(q.Limit), c.args, "offline certificates",
		func(row interface{ Scan(...any) error }) (openconsole.OfflineCertificate, error) {
			var key string
			oc, err := scanOffline(row, &key)
			oc.License = key
			return oc, err
		})
}

// backfillKeyHashes fills the key SHA-256 of every license that has none (migration 0009), in
// the migration's transaction.
func backfillKeyHashes(ctx context.Context, d *dialect, tx *sql.Tx) error {
	type row struct {
		id  int64
		key string
	}
	var todo []row
	rows, err := tx.QueryContext(ctx, `SELECT id, key FROM licenses WHERE key_sha256 IS NULL`)
	if err != nil {
		return err
	}
	for rows.Next() {
		var r row
		if err := rows.Scan(&r.id, &r.key); err != nil {
			rows.Close()
			return err
		}
		todo = append(todo, r)
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return err
	}
	for _, r := range todo {
		h := openconsole.LicenseKeyHash(r.key)
		if _, err := tx.ExecContext(ctx, d.q(`UPDATE licenses SET key_sha256 = ? WHERE id = ?`), h[:], r.id); err != nil {
			return err
		}
	}
	return nil
}
