package sqlstore

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"iter"
	"time"

	"openconsole"
)

// The SQL of the operator API: license and user changes, API tokens, idempotency keys, the audit
// log, listings and statistics.

func (t *txn) PutLicense(l openconsole.License) error {
	owner := sql.NullInt64{Int64: l.OwnerID, Valid: l.OwnerID != 0}
	meta := string(l.Metadata)
	if meta == "" {
		meta = "{}"
	}
	err := t.expectRow(t.exec(`UPDATE licenses SET owner_id = ?, seats = ?, expires_at = ?, suspended_at = ?, revoked_at = ?,
		note = ?, metadata = ?, updated_at = ?, version = ? WHERE id = ?`,
		owner, l.Seats, nullMS(l.ExpiresAt), nullMS(l.SuspendedAt), nullMS(l.RevokedAt), l.Note, meta, ms(l.UpdatedAt), l.Version, l.ID))
	if err != nil {
		return err
	}
	if err := t.putSearch(l); err != nil {
		return err
	}
	_, err = t.exec(`INSERT INTO changes (license_id, at) VALUES (?, ?)`, l.ID, ms(l.UpdatedAt))
	return err
}

func (t *txn) UserByID(id int64) (openconsole.User, error) {
	return scanUser(t.queryRow(`SELECT `+userCols+` FROM users WHERE id = ?`, id))
}

func (t *txn) LockUserByUsername(username string) (openconsole.User, error) {
	return scanUser(t.queryRow(`SELECT `+userCols+` FROM users WHERE username = ?`+t.d.forUpdate, username))
}

func (t *txn) PutUser(u openconsole.User) error {
	return t.expectRow(t.exec(`UPDATE users SET email = ?, display_name = ?, password_hash = ?, vendor = ?, whitelabeled = ?,
		disabled = ?, role = ?, updated_at = ?, version = ? WHERE id = ?`,
		u.Email, u.DisplayName, u.PasswordHash, u.Vendor, u.Whitelabeled, u.Disabled, string(u.Role), ms(u.UpdatedAt), u.Version, u.ID))
}

const apiTokenCols = `id, name, role, secret_hash, created_at, expires_at, revoked_at, last_used_at`

func scanAPIToken(row interface{ Scan(...any) error }) (openconsole.APIToken, error) {
	var tk openconsole.APIToken
	var role string
	var created int64
	var exp, rev, used sql.NullInt64
	if err := row.Scan(&tk.ID, &tk.Name, &role, &tk.SecretHash, &created, &exp, &rev, &used); err != nil {
		if errors.Is(err, sql.ErrNoRows) {
			return tk, openconsole.ErrNotFound
		}
		return tk, err
	}
	tk.Role, tk.CreatedAt = openconsole.Role(role), fromMS(created)
	tk.ExpiresAt, tk.RevokedAt, tk.LastUsedAt = fromNullMS(exp), fromNullMS(rev), fromNullMS(used)
	return tk, nil
}

func (t *txn) CreateAPIToken(tk openconsole.APIToken) error {
	_, err := t.exec(`INSERT INTO api_tokens (id, name, role, secret_hash, created_at, expires_at) VALUES (?, ?, ?, ?, ?, ?)`,
		tk.ID, tk.Name, string(tk.Role), tk.SecretHash, ms(tk.CreatedAt), nullMS(tk.ExpiresAt))
	if isUnique(err) {
		return openconsole.Errorf(openconsole.ECONFLICT, "token exists already")
	}
	return err
}

func (t *txn) APIToken(id string) (openconsole.APIToken, error) {
	return scanAPIToken(t.queryRow(`SELECT `+apiTokenCols+` FROM api_tokens WHERE id = ?`, id))
}

func (t *txn) RevokeAPIToken(id string, at time.Time) error {
	return t.expectRow(t.exec(`UPDATE api_tokens SET revoked_at = COALESCE(revoked_at, ?) WHERE id = ?`, ms(at), id))
}

func (t *txn) TouchAPIToken(id string, at time.Time) error {
	_, err := t.exec(`UPDATE api_tokens SET last_used_at = ? WHERE id = ?`, ms(at), id)
	return err
}

// APITokens implements openconsole.Store.
func (s *Store) APITokens(ctx context.Context) ([]openconsole.APIToken, error) {
	rows, err := s.r.QueryContext(ctx, `SELECT `+apiTokenCols+` FROM api_tokens ORDER BY created_at, id`)
	if err != nil {
		return nil, fmt.Errorf("api tokens: %w", err)
	}
	defer rows.Close()
	var out []openconsole.APIToken
	for rows.Next() {
		tk, err := scanAPIToken(rows)
		if err != nil {
			return nil, fmt.Errorf("api tokens: %w", err)
		}
		out = append(out, tk)
	}
	return out, rows.Err()
}

// APITokenByHash implements openconsole.Store.
func (s *Store) APITokenByHash(ctx context.Context, hash string) (openconsole.APIToken, error) {
	return scanAPIToken(s.r.QueryRowContext(ctx, s.d.q(`SELECT `+apiTokenCols+` FROM api_tokens WHERE secret_hash = ?`), hash))
}

func (t *txn) IdempotencyRecord(scope, key string, since time.Time) (openconsole.IdempotencyRecord, error) {
	r := openconsole.IdempotencyRecord{Scope: scope, Key: key}
	var body string
	var created int64
	err := t.queryRow(`SELECT request_hash, status, body, created_at FROM idempotency_keys
		WHERE scope = ? AND key = ? AND created_at >= ?`, scope, key, ms(since)).Scan(&r.Hash, &r.Status, &body, &created)
	if errors.Is(err, sql.ErrNoRows) {
		return r, openconsole.ErrNotFound
	}
	r.Body, r.CreatedAt = []byte(body), fromMS(created)
	return r, err
}

func (t *txn) PutIdempotency(r openconsole.IdempotencyRecord) error {
	_, err := t.exec(`INSERT INTO idempotency_keys (scope, key, request_hash, status, body, created_at) VALUES (?, ?, ?, ?, ?, ?)
		ON CONFLICT (scope, key) DO UPDATE SET request_hash = excluded.request_hash, status = excluded.status,
			body = excluded.body, created_at = excluded.created_at`,
		r.Scope, r.Key, r.Hash, r.Status, string(r.Body), ms(r.CreatedAt))
	return err
}

func (t *txn) PruneIdempotency(before time.Time) error {
	_, err := t.exec(`DELETE FROM idempotency_keys WHERE created_at < ?`, ms(before))
	return err
}

const auditCols = `seq, at, actor_kind, actor_name, addr, action, target, before, after`

func scanAudit(row interface{ Scan(...any) error }) (openconsole.AuditEntry, error) {
	var e openconsole.AuditEntry
	var at int64
	var before, after string
	if err := row.Scan(&e.Seq, &at, &e.Actor.Kind, &e.Actor.Name, &e.Actor.Addr, &e.Action, &e.Target, &before, &after); err != nil {
		if errors.Is(err, sql.ErrNoRows) {
			return e, openconsole.ErrNotFound
		}
		return e, err
	}
	e.At, e.Before, e.After = fromMS(at), []byte(before), []byte(after)
	return e, nil
}

// ListAudit implements openconsole.Store.
func (s *Store) ListAudit(ctx context.Context, q openconsole.AuditQuery) iter.Seq2[openconsole.AuditEntry, error] {
	var c conds
	c.add(`seq >= ?`, q.From)
	if q.Action != "" {
		c.add(`action = ?`, q.Action)
	}
	if q.Target != "" {
		c.add(`target = ?`, q.Target)
	}
	if q.Actor != "" {
		c.add(`actor_name = ?`, q.Actor)
	}
	order := ` ORDER BY seq`
	if q.Before > 0 {
		c.add(`seq < ?`, q.Before)
		order = ` ORDER BY seq DESC`
	}
	return streamRows(ctx, s, `SELECT `+auditCols+` FROM audit_entries`+c.String()+order+limitClause(q.Limit), c.args,
		"audit", scanAudit)
}

const userListCols = userCols

// ListUsers implements openconsole.Store.
func (s *Store) ListUsers(ctx context.Context, q openconsole.PageQuery) iter.Seq2[openconsole.User, error] {
	return streamRows(ctx, s, `SELECT `+userListCols+` FROM users WHERE id > ? ORDER BY id`+limitClause(q.Limit), []any{q.After},
		"users", scanUser)
}

const serialCols = `sr.license_id, l.key, sr.model, sr.manufacturer_name, sr.manufacturer_id, sr.manufacture_date,
	sr.registered_by, sr.status, sr.created_at`

func scanSerial(row interface{ Scan(...any) error }) (openconsole.Serial, error) {
	var sr openconsole.Serial
	var by sql.NullInt64
	var created int64
	if err := row.Scan(&sr.LicenseID, &sr.SerialNumber, &sr.Model, &sr.ManufacturerName, &sr.ManufacturerID,
		&sr.ManufactureDate, &by, &sr.Status, &created); err != nil {
		if errors.Is(err, sql.ErrNoRows) {
			return sr, openconsole.ErrNotFound
		}
		return sr, err
	}
	sr.RegisteredBy, sr.CreatedAt = by.Int64, fromMS(created)
	return sr, nil
}

// ListSerials implements openconsole.Store.
func (s *Store) ListSerials(ctx context.Context, q openconsole.PageQuery) iter.Seq2[openconsole.Serial, error] {
	return streamRows(ctx, s, `SELECT `+serialCols+` FROM serials sr JOIN licenses l ON l.id = sr.license_id
		WHERE sr.license_id > ? ORDER BY sr.license_id`+limitClause(q.Limit), []any{q.After}, "serials", scanSerial)
}

// streamRows yields the rows of a query on the read pool as scan reads them.
func streamRows[T any](ctx context.Context, s *Store, query string, args []any, what string,
	scan func(interface{ Scan(...any) error }) (T, error)) iter.Seq2[T, error] {
	return func(yield func(T, error) bool) {
		var zero T
		rows, err := s.r.QueryContext(ctx, s.d.q(query), args...)
		if err != nil {
			yield(zero, fmt.Errorf("%s: %w", what, err))
			return
		}
		defer rows.Close()
		for rows.Next() {
			v, err := scan(rows)
			if err != nil {
				yield(zero, fmt.Errorf("%s: %w", what, err))
				return
			}
			if !yield(v, nil) {
				return
			}
		}
		if err := rows.Err(); err != nil {
			yield(zero, fmt.Errorf("%s: %w", what, err))
		}
	}
}

// Stats implements openconsole.Store.
func (s *Store) Stats(ctx context.Context, now time.Time) (openconsole.Stats, error) {
	st := openconsole.Stats{Licenses: map[openconsole.LicenseStatus]int{}}
	for _, status := range []openconsole.LicenseStatus{openconsole.StatusActive, openconsole.StatusSuspended,
		openconsole.StatusExpired, openconsole.StatusRevoked} {
		st.Licenses[status] = 0
	}
	// The counts of the statuses other than active each read a small partial index (migration
	// 0007); only the total and the seats held read every license.
	var total, held int64
	if err := s.r.QueryRowContext(ctx, `SELECT COUNT(*), COALESCE(SUM(taken), 0) FROM licenses`).Scan(&total, &held); err != nil {
		return st, fmt.Errorf("stats: %w", err)
	}
	active := total
	for _, c := range []struct {
		status openconsole.LicenseStatus
		where  string
		args   []any
	}{
		{openconsole.StatusRevoked, `revoked_at IS NOT NULL`, nil},
		{openconsole.StatusSuspended, `revoked_at IS NULL AND suspended_at IS NOT NULL`, nil},
		{openconsole.StatusExpired, `revoked_at IS NULL AND suspended_at IS NULL AND expires_at IS NOT NULL AND expires_at <= ?`, []any{ms(now)}},
	} {
		var n, taken int64
		if err := s.r.QueryRowContext(ctx, s.d.q(`SELECT COUNT(*), COALESCE(SUM(taken), 0) FROM licenses WHERE `+c.where), c.args...).
			Scan(&n, &taken); err != nil {
			return st, fmt.Errorf("stats: %w", err)
		}
		st.Licenses[c.status] = int(n)
		active -= n
		held -= taken
	}
	st.Licenses[openconsole.StatusActive] = int(active)
	st.HeldSeats = int(held)
	hour := now.Unix() / 3600
	days := make(map[int64]int)
	rows, err := s.r.QueryContext(ctx, s.d.q(`SELECT hour, n FROM activation_hours WHERE hour > ? ORDER BY hour`), hour-30*24)
	if err != nil {
		return st, fmt.Errorf("stats: %w", err)
	}
	defer rows.Close()
	for rows.Next() {
		var h, n int64
		if err := rows.Scan(&h, &n); err != nil {
			return st, fmt.Errorf("stats: %w", err)
		}
		if h > hour-24 {
			st.Activations24h += int(n)
		}
		if h > hour-7*24 {
			st.Activations7d += int(n)
		}
		days[h/24] += int(n)
	}
	today := hour / 24
	for d := today - 29; d <= today; d++ {
		st.ActivationsByDay = append(st.ActivationsByDay, openconsole.DayCount{Day: time.Unix(d*86400, 0).UTC(), Count: days[d]})
	}
	return st, rows.Err()
}
