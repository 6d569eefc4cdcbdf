package sqlstore

import (
	"context"
	"database/sql"
	"encoding/hex"
	"errors"
	"fmt"
	"strings"

	"openconsole"
)

// The SQL of apps, manifests, registry credentials, download tokens, products, reviews and
// subscriptions (wire contract §2.6 to §2.11). Documents (manifests, products) are stored as the
// JSON text the API serves, byte for byte.

// conds collects the conditions and arguments of a WHERE clause.
type conds struct {
	where []string
	args  []any
}

func (c *conds) add(cond string, args ...any) {
	c.where = append(c.where, cond)
	c.args = append(c.args, args...)
}

func (c *conds) String() string {
	if len(c.where) == 0 {
		return ""
	}
	return " WHERE " + strings.Join(c.where, " AND ")
}

// App implements openconsole.Store.
func (s *Store) App(ctx context.Context, name string) (openconsole.App, error) {
	return scanApp(s.r.QueryRowContext(ctx, s.d.q(`SELECT `+appCols+` FROM apps WHERE name = ?`), name))
}

const appCols = `name, official, COALESCE(credentials, ''), created_at, updated_at`

func scanApp(row interface{ Scan(...any) error }) (openconsole.App, error) {
	var a openconsole.App
	var created, updated int64
	if err := row.Scan(&a.Name, &a.Official, &a.Credentials, &created, &updated); err != nil {
		if errors.Is(err, sql.ErrNoRows) {
			return a, openconsole.ErrNotFound
		}
		return a, fmt.Errorf("app: %w", err)
	}
	a.CreatedAt, a.UpdatedAt = fromMS(created), fromMS(updated)
	return a, nil
}

// Manifests implements openconsole.Store.
func (s *Store) Manifests(ctx context.Context, app, version string) ([]openconsole.Manifest, error) {
	var c conds
	if app != "" {
		c.add(`app = ?`, app)
	}
	if version != "" {
		c.add(`version = ?`, version)
	}
	rows, err := s.r.QueryContext(ctx, s.d.q(`SELECT app, version, schema_version, document, created_at FROM manifests`+
		c.String()+` ORDER BY app, version, created_at, schema_version`), c.args...)
	if err != nil {
		return nil, fmt.Errorf("manifests: %w", err)
	}
	defer rows.Close()
	var out []openconsole.Manifest
	for rows.Next() {
		var m openconsole.Manifest
		var doc string
		var created int64
		if err := rows.Scan(&m.App, &m.Version, &m.SchemaVersion, &doc, &created); err != nil {
			return nil, fmt.Errorf("manifests: %w", err)
		}
		m.Document, m.CreatedAt = []byte(doc), fromMS(created)
		out = append(out, m)
	}
	return out, rows.Err()
}

// DataKeys implements openconsole.Store.
func (s *Store) DataKeys(ctx context.Context) ([]openconsole.DataKey, error) {
	return dataKeys(ctx, s.r)
}

func dataKeys(ctx context.Context, q interface {
	QueryContext(context.Context, string, ...any) (*sql.Rows, error)
}) ([]openconsole.DataKey, error) {
	rows, err := q.QueryContext(ctx, `SELECT id, secret, created_at FROM data_keys ORDER BY created_at, id`)
	if err != nil {
		return nil, fmt.Errorf("data keys: %w", err)
	}
	defer rows.Close()
	var out []openconsole.DataKey
	for rows.Next() {
		var k openconsole.DataKey
		var secret string
		var created int64
		if err := rows.Scan(&k.ID, &secret, &created); err != nil {
			return nil, fmt.Errorf("data keys: %w", err)
		}
		if k.Secret, err = hex.DecodeString(secret); err != nil {
			return nil, fmt.Errorf("data keys: key %s: %w", k.ID, err)
		}
		k.CreatedAt = fromMS(created)
		out = append(out, k)
	}
	return out, rows.Err()
}

// TokenIssuances implements openconsole.Store.
func (s *Store) TokenIssuances(ctx context.Context, sessionID string) ([]openconsole.TokenIssuance, error) {
	var c conds
	if sessionID != "" {
		c.add(`session_id = ?`, sessionID)
	}
	rows, err := s.r.QueryContext(ctx, s.d.q(`SELECT id, session_id, app, version, credentials, issued_at, last_issued_at, issue_count
		FROM token_issuances`+c.String()+` ORDER BY id`), c.args...)
	if err != nil {
		return nil, fmt.Errorf("token issuances: %w", err)
	}
	defer rows.Close()
	var out []openconsole.TokenIssuance
	for rows.Next() {
		var ti openconsole.TokenIssuance
		var at, last int64
		if err := rows.Scan(&ti.ID, &ti.SessionID, &ti.App, &ti.Version, &ti.Credentials, &at, &last, &ti.Count); err != nil {
			return nil, fmt.Errorf("token issuances: %w", err)
		}
		ti.IssuedAt, ti.LastIssuedAt = fromMS(at), fromMS(last)
		out = append(out, ti)
	}
	return out, rows.Err()
}

const productCols = `p.id, p.store_id, COALESCE(p.app, ''), p.name, p.permalink, p.rating_count, p.rating_sum, p.document, p.updated_at`

func scanProduct(row interface{ Scan(...any) error }) (openconsole.Product, error) {
	var p openconsole.Product
	var doc string
	var updated int64
	if err := row.Scan(&p.ID, &p.StoreID, &p.App, &p.Name, &p.Permalink, &p.RatingCount, &p.RatingSum, &doc, &updated); err != nil {
		if errors.Is(err, sql.ErrNoRows) {
			return p, openconsole.ErrNotFound
		}
		return p, err
	}
	p.Document, p.UpdatedAt = []byte(doc), fromMS(updated)
	return p, nil
}

// owning is the SQL condition that subscription s owns its product.
func owning() (string, []any) {
	args := make([]any, len(openconsole.OwningStatuses))
	for i, st := range openconsole.OwningStatuses {
		args[i] = st
	}
	return `s.status IN (` + strings.TrimSuffix(strings.Repeat("?, ", len(args)), ", ") + `)`, args
}

// Products implements openconsole.Store.
func (s *Store) Products(ctx context.Context, q openconsole.ProductQuery) ([]openconsole.Product, int, error) {
	var c conds
	if q.StoreID != nil {
		c.add(`p.store_id = ?`, *q.StoreID)
	}
	if q.AppsOnly {
		c.add(`p.app IS NOT NULL`)
	}
	if q.OwnerID > 0 {
		cond, args := owning()
		c.add(`EXISTS (SELECT 1 FROM subscriptions s WHERE s.user_id = ? AND s.product_id = p.id AND `+cond+`)`,
			append([]any{q.OwnerID}, args...)...)
	}
	var total int
	if err := s.r.QueryRowContext(ctx, s.d.q(`SELECT COUNT(*) FROM products p`+c.String()), c.args...).Scan(&total); err != nil {
		return nil, 0, fmt.Errorf("products: %w", err)
	}
	limit := int64(q.Limit)
	if limit <= 0 {
		limit = 1 << 62
	}
	rows, err := s.r.QueryContext(ctx, s.d.q(`SELECT `+productCols+` FROM products p`+c.String()+
		` ORDER BY p.id LIMIT ? OFFSET ?`), append(c.args, limit, max(q.Offset, 0))...)
	if err != nil {
		return nil, 0, fmt.Errorf("products: %w", err)
	}
	defer rows.Close()
	out := []openconsole.Product{}
	for rows.Next() {
		p, err := scanProduct(rows)
		if err != nil {
			return nil, 0, fmt.Errorf("products: %w", err)
		}
		out = append(out, p)
	}
	return out, total, rows.Err()
}

// Subscriptions implements openconsole.Store.
func (s *Store) Subscriptions(ctx context.Context, userID int64, storeID *int64) ([]openconsole.Subscription, error) {
	var c conds
	if userID > 0 {
		c.add(`s.user_id = ?`, userID)
	}
	if storeID != nil {
		c.add(`p.store_id = ?`, *storeID)
	}
	rows, err := s.r.QueryContext(ctx, s.d.q(`SELECT s.id, s.user_id, s.product_id, s.status, s.created_at
		FROM subscriptions s JOIN products p ON p.id = s.product_id`+c.String()+` ORDER BY s.id`), c.args...)
	if err != nil {
		return nil, fmt.Errorf("subscriptions: %w", err)
	}
	defer rows.Close()
	out := []openconsole.Subscription{}
	for rows.Next() {
		var sub openconsole.Subscription
		var created int64
		if err := rows.Scan(&sub.ID, &sub.UserID, &sub.ProductID, &sub.Status, &created); err != nil {
			return nil, fmt.Errorf("subscriptions: %w", err)
		}
		sub.CreatedAt = fromMS(created)
		out = append(out, sub)
	}
	return out, rows.Err()
}

// The transaction side.

func (t *txn) LockApp(name string) (openconsole.App, error) {
	return scanApp(t.queryRow(t.d.q(`SELECT `+appCols+` FROM apps WHERE name = ?`+t.d.forUpdate), name))
}

func (t *txn) PutApp(a openconsole.App) error {
	creds := sql.NullString{String: a.Credentials, Valid: a.Credentials != ""}
	_, err := t.exec(t.d.q(`INSERT INTO apps (name, official, credentials, created_at, updated_at)
		VALUES (?, ?, ?, ?, ?)
		ON CONFLICT (name) DO UPDATE SET official = excluded.official, credentials = excluded.credentials,
			updated_at = excluded.updated_at`), a.Name, a.Official, creds, ms(a.CreatedAt), ms(a.UpdatedAt))
	return err
}

func (t *txn) PutManifest(m openconsole.Manifest) (bool, error) {
	var n int
	err := t.queryRow(t.d.q(`SELECT COUNT(*) FROM manifests WHERE app = ? AND version = ? AND schema_version = ?`),
		m.App, m.Version, m.SchemaVersion).Scan(&n)
	if err != nil {
		return false, err
	}
	_, err = t.exec(t.d.q(`INSERT INTO manifests (app, version, schema_version, document, created_at)
		VALUES (?, ?, ?, ?, ?)
		ON CONFLICT (app, version, schema_version) DO UPDATE SET document = excluded.document, created_at = excluded.created_at`),
		m.App, m.Version, m.SchemaVersion, string(m.Document), ms(m.CreatedAt))
	return n > 0, err
}

func (t *txn) RemoveManifests(app, version, schemaVersion string) (int, error) {
	c := conds{}
	c.add(`app = ?`, app)
	c.add(`version = ?`, version)
	if schemaVersion != "" {
		c.add(`schema_version = ?`, schemaVersion)
	}
	res, err := t.exec(t.d.q(`DELETE FROM manifests`+c.String()), c.args...)
	if err != nil {
		return 0, err
	}
	n, err := res.RowsAffected()
	return int(n), err
}

func (t *txn) DataKeys() ([]openconsole.DataKey, error) {
	return dataKeys(t.ctx, t.tx)
}

func (t *txn) AddDataKey(k openconsole.DataKey) error {
	_, err := t.exec(t.d.q(`INSERT INTO data_keys (id, secret, created_at) VALUES (?, ?, ?)`),
		k.ID, hex.EncodeToString(k.Secret), ms(k.CreatedAt))
	return err
}

// RecordToken counts a download-token answer on the row of its session, app version and kind,
// creating it for the first one: one atomic statement, so concurrent answers each count once.
func (t *txn) RecordToken(ti openconsole.TokenIssuance) error {
	_, err := t.exec(t.d.q(`INSERT INTO token_issuances (session_id, app, version, credentials, issued_at, last_issued_at, issue_count)
		VALUES (?, ?, ?, ?, ?, ?, 1)
		ON CONFLICT (session_id, app, version, credentials) DO UPDATE
			SET issue_count = token_issuances.issue_count + 1, last_issued_at = excluded.last_issued_at`),
		ti.SessionID, ti.App, ti.Version, ti.Credentials, ms(ti.IssuedAt), ms(ti.IssuedAt))
	return err
}

func (t *txn) LockProduct(id int64) (openconsole.Product, error) {
	return scanProduct(t.queryRow(t.d.q(`SELECT `+productCols+` FROM products p WHERE p.id = ?`+t.d.forUpdate), id))
}

func (t *txn) PutProduct(p openconsole.Product) error {
	app := sql.NullString{String: p.App, Valid: p.App != ""}
	_, err := t.exec(t.d.q(`INSERT INTO products
		(id, store_id, app, name, permalink, rating_count, rating_sum, document, updated_at)
		VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)
		ON CONFLICT (id) DO UPDATE SET store_id = excluded.store_id, app = excluded.app, name = excluded.name,
			permalink = excluded.permalink, rating_count = excluded.rating_count, rating_sum = excluded.rating_sum,
			document = excluded.document, updated_at = excluded.updated_at`),
		p.ID, p.StoreID, app, p.Name, p.Permalink, p.RatingCount, p.RatingSum, string(p.Document), ms(p.UpdatedAt))
	return err
}

func (t *txn) AddReview(r openconsole.Review) (openconsole.Review, error) {
	err := t.queryRow(t.d.q(`INSERT INTO reviews
		(product_id, user_id, reviewer, reviewer_email, review, rating, status, verified, created_at)
		VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?) RETURNING id`),
		r.ProductID, r.UserID, r.Reviewer, r.ReviewerEmail, r.Text, r.Rating, r.Status, r.Verified, ms(r.CreatedAt)).Scan(&r.ID)
	return r, err
}

func (t *txn) ReviewByUser(productID, userID int64) (openconsole.Review, error) {
	var r openconsole.Review
	var created int64
	err := t.queryRow(t.d.q(`SELECT id, product_id, user_id, reviewer, reviewer_email, review, rating, status, verified, created_at
		FROM reviews WHERE product_id = ? AND user_id = ?`), productID, userID).Scan(&r.ID, &r.ProductID, &r.UserID,
		&r.Reviewer, &r.ReviewerEmail, &r.Text, &r.Rating, &r.Status, &r.Verified, &created)
	if errors.Is(err, sql.ErrNoRows) {
		return openconsole.Review{}, openconsole.ErrNotFound
	}
	r.CreatedAt = fromMS(created)
	return r, err
}

func (t *txn) UpdateReview(r openconsole.Review) error {
	_, err := t.exec(t.d.q(`UPDATE reviews SET reviewer = ?, reviewer_email = ?, review = ?, rating = ?, status = ?,
		verified = ?, created_at = ? WHERE id = ?`),
		r.Reviewer, r.ReviewerEmail, r.Text, r.Rating, r.Status, r.Verified, ms(r.CreatedAt), r.ID)
	return err
}

func (t *txn) OwnsProduct(userID, productID int64) (bool, error) {
	cond, args := owning()
	var n int
	err := t.queryRow(t.d.q(`SELECT COUNT(*) FROM subscriptions s WHERE s.user_id = ? AND s.product_id = ? AND `+cond),
		append([]any{userID, productID}, args...)...).Scan(&n)
	return n > 0, err
}

func (t *txn) CreateSubscription(sub openconsole.Subscription) (openconsole.Subscription, error) {
	err := t.queryRow(t.d.q(`INSERT INTO subscriptions (user_id, product_id, status, created_at)
		VALUES (?, ?, ?, ?) RETURNING id`), sub.UserID, sub.ProductID, sub.Status, ms(sub.CreatedAt)).Scan(&sub.ID)
	return sub, err
}
