package openconsole

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"strings"
	"time"
)

// Role is what an operator may do. Each role may do everything the ones below it may.
type Role string

// The roles, strongest first.
const (
	RoleAdmin    Role = "admin"    // also users, API tokens, signing keys, seat repair
	RoleOperator Role = "operator" // also change licenses, sessions, serials and the app catalogue
	RoleReader   Role = "reader"   // only read
)

// ParseRole returns the role named s; EINVALID for anything else.
func ParseRole(s string) (Role, error) {
	switch r := Role(s); r {
	case RoleAdmin, RoleOperator, RoleReader:
		return r, nil
	}
	return "", Errorf(EINVALID, "role must be admin, operator or reader")
}

func (r Role) rank() int {
	switch r {
	case RoleAdmin:
		return 3
	case RoleOperator:
		return 2
	case RoleReader:
		return 1
	}
	return 0
}

// Allows reports whether r may do what needs the role need.
func (r Role) Allows(need Role) bool { return r.rank() >= need.rank() && r.rank() > 0 }

// Actor is who makes a change, for the record: a kind (ActorToken, ActorSocket, ActorCLI,
// ActorWeb, ActorConsole, ActorSystem), a name (the token's name, the local user, the web user)
// and the client address it came from ("" when local).
type Actor struct {
	Kind string
	Name string
	Addr string
}

// The kinds of actor.
const (
	ActorToken   = "token"   // an operator API token
	ActorSocket  = "socket"  // the CLI through a server's local admin socket (Name: the OS user)
	ActorCLI     = "cli"     // the CLI on the database itself (Name: the OS user)
	ActorWeb     = "web"     // a user signed in to the admin web console
	ActorConsole = "console" // a console user through the FLECS Console API (serial registration, reviews)
	ActorSystem  = "system"  // OpenConsole itself, or a caller that named no actor
)

type actorKey struct{}

// WithActor returns ctx carrying the actor of the changes made with it.
func WithActor(ctx context.Context, a Actor) context.Context {
	return context.WithValue(ctx, actorKey{}, a)
}

// ActorFrom returns the actor ctx carries; without one, the system.
func ActorFrom(ctx context.Context) Actor {
	if a, ok := ctx.Value(actorKey{}).(Actor); ok && a.Kind != "" {
		return a
	}
	return Actor{Kind: ActorSystem, Name: "openconsole"}
}

// APIToken is a token of the operator API. Its secret is shown once, when it is created; the store
// keeps a SHA-256 hash of it (the secret carries 256 random bits, so a plain hash cannot be
// reversed by guessing).
type APIToken struct {
	ID         string // public, as "tok_" and 16 hex digits
	Name       string
	Role       Role
	SecretHash string
	CreatedAt  time.Time
	ExpiresAt  time.Time // zero: never
	RevokedAt  time.Time
	LastUsedAt time.Time
}

// Active reports whether the token may be used at now.
func (t APIToken) Active(now time.Time) bool {
	return t.RevokedAt.IsZero() && (t.ExpiresAt.IsZero() || now.Before(t.ExpiresAt))
}

// apiTokenPrefix starts every API token secret, so that secret scanners and people recognise one.
const apiTokenPrefix = "ocp_"

// newAPITokenSecret returns a fresh token secret: the prefix and 32 bytes from crypto/rand.
func newAPITokenSecret() string {
	var b [32]byte
	if _, err := rand.Read(b[:]); err != nil {
		panic("openconsole: crypto/rand failed: " + err.Error())
	}
	return apiTokenPrefix + base64.RawURLEncoding.EncodeToString(b[:])
}

// HashAPITokenSecret is the hash the store keeps of a token secret.
func HashAPITokenSecret(secret string) string {
	sum := sha256.Sum256([]byte(secret))
	return hex.EncodeToString(sum[:])
}

func newAPITokenID() string {
	var b [8]byte
	if _, err := rand.Read(b[:]); err != nil {
		panic("openconsole: crypto/rand failed: " + err.Error())
	}
	return "tok_" + hex.EncodeToString(b[:])
}

// ErrAPITokenRefused is the answer to a request with an unknown, revoked or expired API token.
var ErrAPITokenRefused = &Error{Code: EUNAUTHORIZED, Message: "Invalid, revoked or expired API token"}

// Principal is an authenticated caller of the operator API: who it is (for the record) and what
// it may do.
type Principal struct {
	Actor Actor
	Role  Role
	// Scope names the principal for idempotency keys: two principals never share a key.
	Scope string
}

// TokenInput describes an API token to create.
type TokenInput struct {
	Name      string
	Role      Role
	ExpiresAt time.Time // zero: never
}

// CreatedToken is a new API token with its secret, which is not kept and cannot be shown again.
type CreatedToken struct {
	APIToken
	Secret string
}

// CreateAPIToken creates an API token. EINVALID for a missing or too long name, an unknown role or
// an expiry in the past.
func (s *Service) CreateAPIToken(ctx context.Context, in TokenInput) (CreatedToken, error) {
	in.Name = strings.TrimSpace(in.Name)
	if in.Name == "" || len(in.Name) > 128 || !printable(in.Name) {
		return CreatedToken{}, Errorf(EINVALID, "name must be 1 to 128 printable characters")
	}
	if _, err := ParseRole(string(in.Role)); err != nil {
		return CreatedToken{}, err
	}
	now := s.clock.Now().UTC().Truncate(time.Millisecond)
	if !in.ExpiresAt.IsZero() && !in.ExpiresAt.After(now) {
		return CreatedToken{}, Errorf(EINVALID, "expiresAt must lie in the future")
	}
	secret := newAPITokenSecret()
	t := APIToken{ID: newAPITokenID(), Name: in.Name, Role: in.Role, SecretHash: HashAPITokenSecret(secret),
		CreatedAt: now, ExpiresAt: in.ExpiresAt.UTC().Truncate(time.Millisecond)}
	out, err := mutate(s, ctx, func(tx Tx, now time.Time) (CreatedToken, AuditRecord, error) {
		if err := tx.CreateAPIToken(t); err != nil {
			return CreatedToken{}, AuditRecord{}, err
		}
		return CreatedToken{APIToken: t, Secret: secret}, AuditRecord{Action: "token.create", Target: "token:" + t.ID,
			After: map[string]any{"name": t.Name, "role": t.Role, "expiresAt": auditTime(t.ExpiresAt)}}, nil
	})
	return out, wrap("create token", err)
}

// RevokeAPIToken revokes an API token: requests with it are refused from then on. ENOTFOUND for an
// unknown id; revoking a revoked token changes nothing.
func (s *Service) RevokeAPIToken(ctx context.Context, id string) (APIToken, error) {
	out, err := mutate(s, ctx, func(tx Tx, now time.Time) (APIToken, AuditRecord, error) {
		t, err := tx.APIToken(id)
		if err != nil {
			return APIToken{}, AuditRecord{}, notFound(err, "token")
		}
		if !t.RevokedAt.IsZero() {
			return t, AuditRecord{}, nil
		}
		t.RevokedAt = now.UTC().Truncate(time.Millisecond)
		if err := tx.RevokeAPIToken(id, t.RevokedAt); err != nil {
			return APIToken{}, AuditRecord{}, err
		}
		return t, AuditRecord{Action: "token.revoke", Target: "token:" + id,
			Before: map[string]any{"revokedAt": nil}, After: map[string]any{"revokedAt": auditTime(t.RevokedAt)}}, nil
	})
	return out, wrap("revoke token", err)
}

// APITokens lists the API tokens in creation order (never their secrets).
func (s *Service) APITokens(ctx context.Context) ([]APIToken, error) {
	ts, err := s.store.APITokens(ctx)
	return ts, wrap("list tokens", err)
}

// AuthenticateAPIToken returns the principal of an API token secret. Unknown, revoked and expired
// tokens are ErrAPITokenRefused. A use is recorded at most once a minute per token.
func (s *Service) AuthenticateAPIToken(ctx context.Context, secret string) (Principal, error) {
	if !strings.HasPrefix(secret, apiTokenPrefix) || len(secret) > 128 {
		return Principal{}, ErrAPITokenRefused
	}
	hash := HashAPITokenSecret(secret)
	t, err := s.store.APITokenByHash(ctx, hash)
	if errors.Is(err, ErrNotFound) {
		return Principal{}, ErrAPITokenRefused
	} else if err != nil {
		return Principal{}, fmt.Errorf("authenticate token: %w", err)
	}
	now := s.clock.Now()
	// The lookup was by hash; compare it again in constant time all the same.
	if subtle.ConstantTimeCompare([]byte(t.SecretHash), []byte(hash)) != 1 || !t.Active(now) {
		return Principal{}, ErrAPITokenRefused
	}
	if now.Sub(t.LastUsedAt) > time.Minute {
		// Bookkeeping for the token list; a failure here must not refuse the request.
		_ = s.store.Update(ctx, func(tx Tx) error { return tx.TouchAPIToken(t.ID, now) })
	}
	return Principal{Actor: Actor{Kind: ActorToken, Name: t.Name}, Role: t.Role, Scope: "token:" + t.ID}, nil
}

// notFound turns a store's ErrNotFound into an ENOTFOUND error naming what was not found.
func notFound(err error, what string) error {
	if errors.Is(err, ErrNotFound) {
		return Errorf(ENOTFOUND, "%s not found", what)
	}
	return err
}
