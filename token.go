package openconsole

import (
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"strings"
	"time"
)

// SigningKey is one HS256 key for console JWTs. The newest key signs; every stored key verifies, so a
// new key can be introduced without invalidating the tokens already issued.
type SigningKey struct {
	ID        string // the JWT "kid"
	Secret    []byte
	CreatedAt time.Time
}

// NewSigningKey returns a key with a 256-bit secret from crypto/rand.
func NewSigningKey(now time.Time) SigningKey {
	secret := make([]byte, 32)
	id := make([]byte, 8)
	if _, err := rand.Read(secret); err != nil {
		panic("openconsole: crypto/rand failed: " + err.Error())
	}
	if _, err := rand.Read(id); err != nil {
		panic("openconsole: crypto/rand failed: " + err.Error())
	}
	return SigningKey{ID: hex.EncodeToString(id), Secret: secret, CreatedAt: now}
}

// Claims are the claims of a console JWT (wire contract §4): exp is token_expires, in Unix seconds.
type Claims struct {
	Issuer   string `json:"iss"`
	IssuedAt int64  `json:"iat"`
	Expires  int64  `json:"exp"`
	ID       string `json:"jti"`
	UserID   int64  `json:"userId"`
}

// TokenIssuer is the "iss" claim of every token OpenConsole signs.
const TokenIssuer = "openconsole"

type jwtHeader struct {
	Alg string `json:"alg"`
	Typ string `json:"typ"`
	Kid string `json:"kid,omitempty"`
}

// b64url decodes strictly: a segment has exactly one spelling, so a token has exactly one string.
var b64url = base64.RawURLEncoding.Strict()

// signToken returns the compact HS256 JWT for c, signed with k.
func signToken(k SigningKey, c Claims) string {
	h, _ := json.Marshal(jwtHeader{Alg: "HS256", Typ: "JWT", Kid: k.ID})
	p, _ := json.Marshal(c)
	s := b64url.EncodeToString(h) + "." + b64url.EncodeToString(p)
	mac := hmac.New(sha256.New, k.Secret)
	mac.Write([]byte(s))
	return s + "." + b64url.EncodeToString(mac.Sum(nil))
}

// maxTokenLength bounds the work spent on a token before its signature is checked.
const maxTokenLength = 4096

// tokenAlphabet reports whether every byte of token is of the base64url alphabet or a dot. Go's
// base64 decoders skip CR and LF even in strict mode, so without this check a token with a newline
// inside or appended would verify: a second spelling of the same token.
func tokenAlphabet(token string) bool {
	for i := 0; i < len(token); i++ {
		c := token[i]
		if !('A' <= c && c <= 'Z' || 'a' <= c && c <= 'z' || '0' <= c && c <= '9' || c == '-' || c == '_' || c == '.') {
			return false
		}
	}
	return true
}

// parseToken verifies a compact JWT: nothing but base64url characters and the two dots, HS256 only
// (no "none", no other algorithm), a signature by the key its kid names (looked up with key), an
// issuer of ours and an expiry after now. Every failure is ErrInvalidToken.
func parseToken(token string, key func(kid string) (SigningKey, bool), now time.Time) (Claims, error) {
	if len(token) > maxTokenLength || !tokenAlphabet(token) {
		return Claims{}, ErrInvalidToken
	}
	h64, rest, ok := strings.Cut(token, ".")
	if !ok {
		return Claims{}, ErrInvalidToken
	}
	p64, s64, ok := strings.Cut(rest, ".")
	if !ok || strings.Contains(s64, ".") {
		return Claims{}, ErrInvalidToken
	}
	hb, err := b64url.DecodeString(h64)
	if err != nil {
		return Claims{}, ErrInvalidToken
	}
	var h jwtHeader
	if json.Unmarshal(hb, &h) != nil || h.Alg != "HS256" {
		return Claims{}, ErrInvalidToken
	}
	k, ok := key(h.Kid)
	if !ok {
		return Claims{}, ErrInvalidToken
	}
	sig, err := b64url.DecodeString(s64)
	if err != nil {
		return Claims{}, ErrInvalidToken
	}
	mac := hmac.New(sha256.New, k.Secret)
	mac.Write([]byte(token[:len(h64)+1+len(p64)]))
	if !hmac.Equal(sig, mac.Sum(nil)) {
		return Claims{}, ErrInvalidToken
	}
	pb, err := b64url.DecodeString(p64)
	if err != nil {
		return Claims{}, ErrInvalidToken
	}
	var c Claims
	if json.Unmarshal(pb, &c) != nil || c.Issuer != TokenIssuer || c.UserID <= 0 || now.Unix() >= c.Expires {
		return Claims{}, ErrInvalidToken
	}
	return c, nil
}
