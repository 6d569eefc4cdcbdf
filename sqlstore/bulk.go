package sqlstore

import (
	"context"
	"database/sql"
	"fmt"
	"strings"

	"openconsole"
)

// Bulk loading, for load tests that need a database holding a large fleet (a million sessions).
// It writes rows directly, many per statement, without the activation rules: the caller provides
// consistent data.

const bulkRows = 400 // rows per INSERT statement

// BulkInsertLicenses inserts licenses and returns their ids by key.
func (s *Store) BulkInsertLicenses(ctx context.Context, ls []openconsole.License) (map[string]int64, error) {
	ids := make(map[string]int64, len(ls))
	for start := 0; start < len(ls); start += bulkRows {
		chunk := ls[start:min(start+bulkRows, len(ls))]
		args := make([]any, 0, len(chunk)*7)
		for _, l := range chunk {
			owner := sql.NullInt64{Int64: l.OwnerID, Valid: l.OwnerID != 0}
			hash := openconsole.LicenseKeyHash(l.Key)
			args = append(args, l.Key, string(l.Kind), owner, l.Seats, nullMS(l.ExpiresAt), ms(l.CreatedAt), hash[:])
		}
		q := `INSERT INTO licenses (key, kind, owner_id, seats, expires_at, created_at, key_sha256) VALUES ` +
			placeholders(len(chunk), 7) + ` RETURNING id, key`
		err := s.inTx(ctx, func(tx *sql.Tx) error {
			rows, err := tx.QueryContext(ctx, s.d.q(q), args...)
			if err != nil {
				return err
			}
			defer rows.Close()
			for rows.Next() {
				var id int64
				var key string
				if err := rows.Scan(&id, &key); err != nil {
					return err
				}
				ids[key] = id
			}
			if err := rows.Err(); err != nil {
				return err
			}
			// What the license search looks in (the licenses have no note yet).
			args := make([]any, 0, 2*len(chunk))
			for _, l := range chunk {
				args = append(args, ids[l.Key], strings.ToLower(l.Key)+"  ")
			}
			_, err = tx.ExecContext(ctx, s.d.q(`INSERT INTO license_search (license_id, text) VALUES `+placeholders(len(chunk), 2)), args...)
			return err
		})
		if err != nil {
			return nil, fmt.Errorf("bulk insert licenses: %w", err)
		}
	}
	return ids, nil
}

// BulkInsertSessions inserts sessions that hold seats (neither revoked nor ended), 50 statements
// per transaction, and takes their seats in the same transactions.
func (s *Store) BulkInsertSessions(ctx context.Context, ss []openconsole.Session) error {
	const perTx = 50 * bulkRows
	for txStart := 0; txStart < len(ss); txStart += perTx {
		part := ss[txStart:min(txStart+perTx, len(ss))]
		err := s.inTx(ctx, func(tx *sql.Tx) error {
			taken := make(map[int64]int)
			for start := 0; start < len(part); start += bulkRows {
				chunk := part[start:min(start+bulkRows, len(part))]
				args := make([]any, 0, len(chunk)*5)
				for _, x := range chunk {
					args = append(args, x.ID, x.LicenseID, x.Timestamp, ms(x.CreatedAt), ms(x.LastSeenAt))
					taken[x.LicenseID]++
				}
				q := `INSERT INTO sessions (id, license_id, ts, created_at, last_seen_at) VALUES ` + placeholders(len(chunk), 5)
				if _, err := tx.ExecContext(ctx, s.d.q(q), args...); err != nil {
					return err
				}
			}
			for id, n := range taken {
				if _, err := tx.ExecContext(ctx, s.d.q(addTaken), n, id); err != nil {
					return err
				}
			}
			return nil
		})
		if err != nil {
			return fmt.Errorf("bulk insert sessions: %w", err)
		}
	}
	// Later activations must still get larger timestamps than every stored one.
	var max int64
	for _, x := range ss {
		max = maxInt(max, x.Timestamp)
	}
	return s.inTx(ctx, func(tx *sql.Tx) error {
		_, err := tx.ExecContext(ctx, s.d.q(`UPDATE clock SET last_ms = ? WHERE id = 1 AND last_ms < ?`), max, max)
		return err
	})
}

func maxInt(a, b int64) int64 {
	if a > b {
		return a
	}
	return b
}

// placeholders returns "(?, ?, ...), (...)" for rows of cols values.
func placeholders(rows, cols int) string {
	one := "(" + strings.TrimSuffix(strings.Repeat("?, ", cols), ", ") + ")"
	return strings.TrimSuffix(strings.Repeat(one+", ", rows), ", ")
}
