package openconsole

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"time"
)

// WebSession is a user signed in to the admin web console. The browser holds its secret in a
// cookie; the store keeps a SHA-256 of it, so a copy of the database signs no one in.
type WebSession struct {
	IDHash     string
	UserID     int64
	CreatedAt  time.Time
	LastSeenAt time.Time
}

// The web console's session lifetimes.
const (
	// WebIdleTimeout ends a session not used for this long.
	WebIdleTimeout = 30 * time.Minute
	// WebMaxAge ends every session this long after sign-in, used or not.
	WebMaxAge = 12 * time.Hour
	// webTouchEvery is how often at most a session's last use is written.
	webTouchEvery = time.Minute
)

// ErrNoConsoleRole refuses the sign-in of a user without a role: a console user (of the FLECS
// Console API) is not an operator.
var ErrNoConsoleRole = &Error{Code: EFORBIDDEN, Message: "This account may not sign in to the admin console"}

// ErrWebSessionEnded is the answer to a request with an unknown, ended or expired session.
var ErrWebSessionEnded = &Error{Code: EUNAUTHORIZED, Message: "Not signed in, or the session ended"}

// HashWebSessionSecret is the hash the store keeps of a web session's secret.
func HashWebSessionSecret(secret string) string {
	sum := sha256.Sum256([]byte(secret))
	return hex.EncodeToString(sum[:])
}

// SignIn checks a user's password (with the login abuse limits) and starts a web console session
// for a user with a role. It returns the session's secret (for the cookie) and the user.
// ETHROTTLED, EUNAUTHORIZED for bad credentials, EFORBIDDEN for a disabled user or one without a
// role.
func (s *Service) SignIn(ctx context.Context, username, password, clientAddr string) (string, User, error) {
	res, err := s.Login(ctx, LoginInput{Username: username, Password: password, ClientAddr: clientAddr})
	if err != nil {
		return "", User{}, err
	}
	u := res.User
	if u.Role == "" {
		return "", User{}, ErrNoConsoleRole
	}
	var b [32]byte
	if _, err := rand.Read(b[:]); err != nil {
		return "", User{}, fmt.Errorf("sign in: %w", err)
	}
	secret := base64.RawURLEncoding.EncodeToString(b[:])
	now := s.clock.Now().UTC().Truncate(time.Millisecond)
	ws := WebSession{IDHash: HashWebSessionSecret(secret), UserID: u.ID, CreatedAt: now, LastSeenAt: now}
	if err := s.store.Update(ctx, func(tx Tx) error {
		if err := tx.PruneWebSessions(now.Add(-WebMaxAge), now.Add(-WebIdleTimeout)); err != nil {
			return err
		}
		return tx.CreateWebSession(ws)
	}); err != nil {
		return "", User{}, fmt.Errorf("sign in: %w", err)
	}
	return secret, u, nil
}

// WebPrincipal returns the principal of a web session's secret: the user, with the role the user
// has now (a role taken away or a user disabled ends what the session may do at once).
// EUNAUTHORIZED when the session is unknown, ended, idle past WebIdleTimeout or older than
// WebMaxAge, or its user may no longer sign in.
func (s *Service) WebPrincipal(ctx context.Context, secret string) (Principal, User, error) {
	if secret == "" || len(secret) > 128 {
		return Principal{}, User{}, ErrWebSessionEnded
	}
	ws, err := s.store.WebSession(ctx, HashWebSessionSecret(secret))
	if errors.Is(err, ErrNotFound) {
		return Principal{}, User{}, ErrWebSessionEnded
	} else if err != nil {
		return Principal{}, User{}, fmt.Errorf("web session: %w", err)
	}
	now := s.clock.Now()
	if now.Sub(ws.CreatedAt) > WebMaxAge || now.Sub(ws.LastSeenAt) > WebIdleTimeout {
		return Principal{}, User{}, ErrWebSessionEnded
	}
	u, err := s.store.UserByID(ctx, ws.UserID)
	if errors.Is(err, ErrNotFound) {
		return Principal{}, User{}, ErrWebSessionEnded
	} else if err != nil {
		return Principal{}, User{}, fmt.Errorf("web session: %w", err)
	}
	if u.Disabled || u.Role == "" {
		return Principal{}, User{}, ErrWebSessionEnded
	}
	if now.Sub(ws.LastSeenAt) > webTouchEvery {
		// Bookkeeping for the idle timeout; a failure here must not refuse the request.
		_ = s.store.Update(ctx, func(tx Tx) error { return tx.TouchWebSession(ws.IDHash, now.UTC().Truncate(time.Millisecond)) })
	}
	return Principal{Actor: Actor{Kind: ActorWeb, Name: u.Username}, Role: u.Role, Scope: "web:" + u.Username}, u, nil
}

// SignOut ends a web session (an unknown one is no error).
func (s *Service) SignOut(ctx context.Context, secret string) error {
	if secret == "" {
		return nil
	}
	return s.store.Update(ctx, func(tx Tx) error { return tx.DeleteWebSession(HashWebSessionSecret(secret)) })
}
