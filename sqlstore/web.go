package sqlstore

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"time"

	"openconsole"
)

// The admin web console's sessions.

// CreateWebSession implements openconsole.Tx.
func (t *txn) CreateWebSession(ws openconsole.WebSession) error {
	_, err := t.exec(`INSERT INTO web_sessions (id_hash, user_id, created_at, last_seen_at) VALUES (?, ?, ?, ?)`,
		ws.IDHash, ws.UserID, ms(ws.CreatedAt), ms(ws.LastSeenAt))
	return err
}

// TouchWebSession implements openconsole.Tx.
func (t *txn) TouchWebSession(idHash string, at time.Time) error {
	_, err := t.exec(`UPDATE web_sessions SET last_seen_at = ? WHERE id_hash = ? AND last_seen_at < ?`, ms(at), idHash, ms(at))
	return err
}

// DeleteWebSession implements openconsole.Tx.
func (t *txn) DeleteWebSession(idHash string) error {
	_, err := t.exec(`DELETE FROM web_sessions WHERE id_hash = ?`, idHash)
	return err
}

// PruneWebSessions implements openconsole.Tx.
func (t *txn) PruneWebSessions(createdBefore, idleBefore time.Time) error {
	_, err := t.exec(`DELETE FROM web_sessions WHERE last_seen_at < ? OR created_at < ?`, ms(idleBefore), ms(createdBefore))
	return err
}

// WebSession implements openconsole.Store.
func (s *Store) WebSession(ctx context.Context, idHash string) (openconsole.WebSession, error) {
	ws := openconsole.WebSession{IDHash: idHash}
	var created, seen int64
	err := s.r.QueryRowContext(ctx, s.d.q(`SELECT user_id, created_at, last_seen_at FROM web_sessions WHERE id_hash = ?`), idHash).
		Scan(&ws.UserID, &created, &seen)
	if errors.Is(err, sql.ErrNoRows) {
		return ws, openconsole.ErrNotFound
	} else if err != nil {
		return ws, fmt.Errorf("web session: %w", err)
	}
	ws.CreatedAt, ws.LastSeenAt = fromMS(created), fromMS(seen)
	return ws, nil
}
