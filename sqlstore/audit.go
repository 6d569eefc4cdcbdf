package sqlstore

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"strings"

	"golang.org/x/mod/sumdb/tlog"

	"openconsole"
)

// The audit log's tree hashes, checkpoints and keys (see auditlog.go in package openconsole).

// AuditSize implements openconsole.Tx. Write transactions run one at a time (see Update), so the
// next number is taken by no one else.
func (t *txn) AuditSize() (int64, error) {
	var n int64
	err := t.queryRow(`SELECT COALESCE(MAX(seq), -1) + 1 FROM audit_entries`).Scan(&n)
	return n, err
}

// AuditHashes implements openconsole.Tx.
func (t *txn) AuditHashes(indexes []int64) ([]tlog.Hash, error) {
	if err := t.flush(); err != nil {
		return nil, err
	}
	return auditHashes(t.ctx, t.d, t.tx, indexes)
}

// AppendAudit implements openconsole.Tx.
func (t *txn) AppendAudit(e openconsole.AuditEntry, start int64, hashes []tlog.Hash) error {
	if _, err := t.exec(`INSERT INTO audit_entries (seq, at, actor_kind, actor_name, addr, action, target, before, after)
		VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)`,
		e.Seq, ms(e.At), e.Actor.Kind, e.Actor.Name, e.Actor.Addr, e.Action, e.Target, string(e.Before), string(e.After)); err != nil {
		return err
	}
	if len(hashes) == 0 {
		return nil
	}
	var q strings.Builder
	q.WriteString(`INSERT INTO audit_hashes (idx, hash) VALUES `)
	args := make([]any, 0, 2*len(hashes))
	for i, h := range hashes {
		if i > 0 {
			q.WriteString(", ")
		}
		q.WriteString("(?, ?)")
		args = append(args, start+int64(i), h[:])
	}
	_, err := t.execNow(q.String(), args...)
	return err
}

// AuditKeys implements openconsole.Tx.
func (t *txn) AuditKeys() ([]openconsole.AuditKey, error) { return t.noteKeys("audit_keys") }

// AddAuditKey implements openconsole.Tx.
func (t *txn) AddAuditKey(k openconsole.AuditKey) error { return t.addNoteKey("audit_keys", k) }

// ForgetAuditSigners implements openconsole.Tx.
func (t *txn) ForgetAuditSigners() error { return t.forgetNoteSigners("audit_keys") }

// PutAuditCheckpoint implements openconsole.Tx.
func (t *txn) PutAuditCheckpoint(c openconsole.AuditCheckpoint) error {
	_, err := t.exec(`INSERT INTO audit_checkpoints (size, note, signed_at) VALUES (?, ?, ?)
		ON CONFLICT (size) DO NOTHING`, c.Size, string(c.Note), ms(c.SignedAt))
	return err
}

// AuditSize implements openconsole.Store.
func (s *Store) AuditSize(ctx context.Context) (int64, error) {
	var n int64
	if err := s.r.QueryRowContext(ctx, `SELECT COALESCE(MAX(seq), -1) + 1 FROM audit_entries`).Scan(&n); err != nil {
		return 0, fmt.Errorf("audit log size: %w", err)
	}
	return n, nil
}

// AuditHashes implements openconsole.Store.
func (s *Store) AuditHashes(ctx context.Context, indexes []int64) ([]tlog.Hash, error) {
	return auditHashes(ctx, s.d, s.r, indexes)
}

type querier interface {
	QueryContext(context.Context, string, ...any) (*sql.Rows, error)
}

// auditHashes reads stored tree hashes, at most 500 indexes per statement.
func auditHashes(ctx context.Context, d *dialect, q querier, indexes []int64) ([]tlog.Hash, error) {
	out := make([]tlog.Hash, len(indexes))
	pos := make(map[int64][]int, len(indexes))
	for i, x := range indexes {
		pos[x] = append(pos[x], i)
	}
	found := 0
	for lo := 0; lo < len(indexes); lo += 500 {
		part := indexes[lo:min(lo+500, len(indexes))]
		args := make([]any, len(part))
		for i, x := range part {
			args[i] = x
		}
		rows, err := q.QueryContext(ctx, d.q(`SELECT idx, hash FROM audit_hashes WHERE idx IN (?`+
			strings.Repeat(", ?", len(part)-1)+`)`), args...)
		if err != nil {
			return nil, fmt.Errorf("audit hashes: %w", err)
		}
		for rows.Next() {
			var idx int64
			var h []byte
			if err := rows.Scan(&idx, &h); err != nil {
				rows.Close()
				return nil, fmt.Errorf("audit hashes: %w", err)
			}
			if len(h) != len(tlog.Hash{}) {
				rows.Close()
				return nil, fmt.Errorf("audit hashes: the hash at %d has %d bytes", idx, len(h))
			}
			for _, i := range pos[idx] {
				copy(out[i][:], h)
				found++
			}
			delete(pos, idx)
		}
		if err := rows.Close(); err != nil {
			return nil, fmt.Errorf("audit hashes: %w", err)
		}
	}
	if found != len(indexes) {
		return out, fmt.Errorf("audit hashes: %d of %d not stored: %w", len(indexes)-found, len(indexes), openconsole.ErrNotFound)
	}
	return out, nil
}

// AuditCheckpoint implements openconsole.Store.
func (s *Store) AuditCheckpoint(ctx context.Context, size int64) (openconsole.AuditCheckpoint, error) {
	q, args := `SELECT size, note, signed_at FROM audit_checkpoints ORDER BY size DESC LIMIT 1`, []any(nil)
	if size >= 0 {
		q, args = s.d.q(`SELECT size, note, signed_at FROM audit_checkpoints WHERE size = ?`), []any{size}
	}
	var c openconsole.AuditCheckpoint
	var text string
	var signed int64
	if err := s.r.QueryRowContext(ctx, q, args...).Scan(&c.Size, &text, &signed); err != nil {
		if errors.Is(err, sql.ErrNoRows) {
			return c, openconsole.ErrNotFound
		}
		return c, fmt.Errorf("audit checkpoint: %w", err)
	}
	c.Note, c.SignedAt = []byte(text), fromMS(signed)
	// The root as the note states it; whoever relies on it verifies the signature first.
	body, _, _ := strings.Cut(text, "\n\n")
	if _, _, root, err := openconsole.ParseAuditCheckpoint(body + "\n"); err == nil {
		c.Root = root
	}
	return c, nil
}

// AuditKeys implements openconsole.Store.
func (s *Store) AuditKeys(ctx context.Context) ([]openconsole.AuditKey, error) {
	return noteKeys(ctx, s.r, "audit_keys")
}

// The signing keys of notes (audit checkpoints, offline certificates) are kept alike, one table
// per use: audit_keys or offline_keys, a name from this package's code, never from input.

func noteKeys(ctx context.Context, q querier, table string) ([]openconsole.NoteKey, error) {
	rows, err := q.QueryContext(ctx, `SELECT verifier, signer, created_at FROM `+table+` ORDER BY id`)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", table, err)
	}
	defer rows.Close()
	var out []openconsole.NoteKey
	for rows.Next() {
		var k openconsole.NoteKey
		var signer sql.NullString
		var created int64
		if err := rows.Scan(&k.Verifier, &signer, &created); err != nil {
			return nil, fmt.Errorf("%s: %w", table, err)
		}
		k.Signer, k.CreatedAt = signer.String, fromMS(created)
		out = append(out, k)
	}
	return out, rows.Err()
}

func (t *txn) noteKeys(table string) ([]openconsole.NoteKey, error) {
	if err := t.flush(); err != nil {
		return nil, err
	}
	return noteKeys(t.ctx, t.tx, table)
}

func (t *txn) addNoteKey(table string, k openconsole.NoteKey) error {
	signer := sql.NullString{String: k.Signer, Valid: k.Signer != ""}
	_, err := t.exec(`INSERT INTO `+table+` (verifier, signer, created_at) VALUES (?, ?, ?)
		ON CONFLICT (verifier) DO NOTHING`, k.Verifier, signer, ms(k.CreatedAt))
	return err
}

func (t *txn) forgetNoteSigners(table string) error {
	_, err := t.exec(`UPDATE ` + table + ` SET signer = NULL WHERE signer IS NOT NULL`)
	return err
}
