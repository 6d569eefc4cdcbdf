package openconsole

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"time"

	"golang.org/x/mod/sumdb/tlog"
)

// Every administrative change goes through mutate: it runs the change in one write transaction
// and, in that same transaction, appends the record of who made it (AuditEntry) and, for a request
// with an Idempotency-Key, what the request was answered. A change whose transaction fails leaves
// neither; neither exists without its change.

// AuditEntry is the record of one administrative change.
type AuditEntry struct {
	Seq    int64 // 0, 1, 2, ... in commit order, without gaps
	At     time.Time
	Actor  Actor
	Action string // such as "license.create", "license.suspend", "session.revoke", "token.create"
	Target string // such as "license:<hash>", "session:<id>", "user:<name>", "token:<id>"
	// Before and After hold the fields the change changed, as JSON objects. Never a secret: no
	// password, no token secret, no full license key.
	Before []byte
	After  []byte
	// LeafHash is the hash of the entry's leaf stored in the audit tree when it was appended (read
	// back with the entry; zero if none is stored).
	LeafHash tlog.Hash
}

// AuditRecord is what a change says about itself for its AuditEntry; an empty Action records
// nothing (the change changed nothing).
type AuditRecord struct {
	Action, Target string
	Before, After  map[string]any
}

// LicenseTarget names a license in the record by a hash of its key, never the key itself: the
// first 16 hex digits of its SHA-256.
func LicenseTarget(key string) string {
	sum := sha256.Sum256([]byte(key))
	return "license:" + hex.EncodeToString(sum[:8])
}

// KeyHint shows a license key in the record without giving it away: its last four characters.
func KeyHint(key string) string {
	if len(key) <= 4 {
		return "…"
	}
	return "…" + key[len(key)-4:]
}

func auditTime(t time.Time) any {
	if t.IsZero() {
		return nil
	}
	// The form of every time the operator API and the CLI print (RFC 3339, UTC, milliseconds).
	return t.UTC().Format("2006-01-02T15:04:05.000Z")
}

// Idempotency asks mutate to answer a repeated request (same scope and key within
// IdempotencyRetention) with what the first one was answered, instead of changing anything again.
type Idempotency struct {
	Scope string // who sent it (Principal.Scope)
	Key   string // the Idempotency-Key
	Hash  string // the request's method, path and body, hashed: the same key with another request is refused
	// Render turns the change's result into the answer to keep (status and body).
	Render func(result any) (status int, body []byte, err error)
}

// IdempotencyRetention is how long an Idempotency-Key is remembered.
const IdempotencyRetention = 24 * time.Hour

// IdempotencyRecord is a kept answer.
type IdempotencyRecord struct {
	Scope, Key, Hash string
	Status           int
	Body             []byte
	CreatedAt        time.Time
}

// Replayed is returned (as an error) for a request whose Idempotency-Key was seen with the same
// request before: it carries the first answer, and nothing was changed.
type Replayed struct {
	Status int
	Body   []byte
}

func (r *Replayed) Error() string { return "replayed" }

// ErrIdempotencyMismatch refuses a request whose Idempotency-Key was used for another request.
var ErrIdempotencyMismatch = &Error{Code: EUNPROCESSABLE, Message: "Idempotency-Key was used before with a different request"}

type idempotencyKey struct{}

// WithIdempotency returns ctx asking the change made with it to be idempotent.
func WithIdempotency(ctx context.Context, i Idempotency) context.Context {
	return context.WithValue(ctx, idempotencyKey{}, &i)
}

// mutate runs fn, an administrative change, in one write transaction with its record (see above).
// now is the time of the change, the same for every retry of the transaction.
func mutate[T any](s *Service, ctx context.Context, fn func(tx Tx, now time.Time) (T, AuditRecord, error)) (T, error) {
	actor := ActorFrom(ctx)
	idem, _ := ctx.Value(idempotencyKey{}).(*Idempotency)
	now := s.clock.Now().UTC().Truncate(time.Millisecond)
	var replay *Replayed
	out, err := UpdateValue(ctx, s.store, func(tx Tx) (T, error) {
		var zero T
		replay = nil
		if idem != nil {
			rec, err := tx.IdempotencyRecord(idem.Scope, idem.Key, now.Add(-IdempotencyRetention))
			if err == nil {
				if rec.Hash != idem.Hash {
					return zero, ErrIdempotencyMismatch
				}
				replay = &Replayed{Status: rec.Status, Body: rec.Body}
				return zero, nil
			} else if !errors.Is(err, ErrNotFound) {
				return zero, err
			}
		}
		v, rec, err := fn(tx, now)
		if err != nil {
			return zero, err
		}
		if rec.Action != "" {
			e := AuditEntry{At: now, Actor: actor, Action: rec.Action, Target: rec.Target,
				Before: jsonObject(rec.Before), After: jsonObject(rec.After)}
			if _, err := appendAudit(tx, e); err != nil {
				return zero, err
			}
		}
		if idem != nil {
			status, body, err := idem.Render(v)
			if err != nil {
				return zero, err
			}
			if err := tx.PutIdempotency(IdempotencyRecord{Scope: idem.Scope, Key: idem.Key, Hash: idem.Hash,
				Status: status, Body: body, CreatedAt: now}); err != nil {
				return zero, err
			}
		}
		return v, nil
	})
	if err == nil && replay != nil {
		var zero T
		return zero, replay
	}
	return out, err
}

// jsonObject encodes the fields of a record; none is {}.
func jsonObject(m map[string]any) []byte {
	if len(m) == 0 {
		return []byte("{}")
	}
	b, err := json.Marshal(m)
	if err != nil {
		return []byte("{}")
	}
	return b
}
