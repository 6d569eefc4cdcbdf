package openconsole

// Fuzz targets for the parsers of untrusted input in the domain: the X-Session-Id value, console
// JWTs and license keys. Seeds are added here and committed under testdata/fuzz/; .ci/fuzz runs
// every target for a short time.

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"regexp"
	"strings"
	"testing"
	"time"
)

var fuzzUUID = regexp.MustCompile(`^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$`)

// FuzzParseSessionID checks ParseSessionID against a regular expression: it accepts exactly the
// 8-4-4-4-12 hex UUIDs (surrounding spaces and tabs allowed), returns them in lower case, and its
// output parses to itself.
func FuzzParseSessionID(f *testing.F) {
	for _, s := range []string{
		"74c3b620-6048-4bfd-9bf7-c9857a001694",
		"74C3B620-6048-4BFD-9BF7-C9857A001694",
		" \t74c3b620-6048-4bfd-9bf7-c9857a001694 ",
		"", " ", "not-a-uuid", "200-active",
		"74c3b62060484bfd9bf7c9857a001694",
		"{74c3b620-6048-4bfd-9bf7-c9857a001694}",
		`{"id":"74c3b620-6048-4bfd-9bf7-c9857a001694","timestamp":1}`,
		"74c3b620-6048-4bfd-9bf7_c9857a001694",
		"74c3b620-6048-4bfd-9bf7-c9857a00169\u00e9",
		"74c3b620-6048-4bfd-9bf7-c9857a001694\x00",
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, in string) {
		got, ok := ParseSessionID(in)
		trimmed := strings.Trim(in, " \t")
		want := fuzzUUID.MatchString(trimmed)
		if ok != want {
			t.Fatalf("ParseSessionID(%q) ok = %v; want %v", in, ok, want)
		}
		if !ok {
			if got != "" {
				t.Fatalf("ParseSessionID(%q) = %q, false; want \"\" with false", in, got)
			}
			return
		}
		if got != strings.ToLower(trimmed) {
			t.Fatalf("ParseSessionID(%q) = %q; want %q", in, got, strings.ToLower(trimmed))
		}
		if again, ok := ParseSessionID(got); !ok || again != got {
			t.Fatalf("ParseSessionID(%q) = %q, %v; want it unchanged", got, again, ok)
		}
	})
}

// fuzzClaims are the claims of the one genuine token the JWT fuzz target knows.
var fuzzClaims = Claims{Issuer: TokenIssuer, IssuedAt: 1_800_000_000, Expires: 1_800_003_600, ID: "jti-1", UserID: 7}

// FuzzParseToken feeds arbitrary strings to the JWT parser. It must never panic, and a token it
// accepts must carry a signing input (header.payload) that the key holder actually signed: the
// genuine token's, with its claims. Anything else verifying would be a forgery. (The signature
// segment is compared after base64 decoding, so only its encoding may differ from the genuine one.)
func FuzzParseToken(f *testing.F) {
	now := time.Unix(1_800_000_100, 0)
	k := SigningKey{ID: "k1", Secret: []byte("0123456789abcdef0123456789abcdef"), CreatedAt: now}
	old := SigningKey{ID: "k0", Secret: []byte("another-secret-another-secret-xx"), CreatedAt: now}
	keys := func(kid string) (SigningKey, bool) {
		switch kid {
		case k.ID:
			return k, true
		case old.ID:
			return old, true
		}
		return SigningKey{}, false
	}
	genuine := signToken(k, fuzzClaims)
	oldTok := signToken(old, fuzzClaims)
	for _, tok := range []string{genuine, oldTok} {
		if c, err := parseToken(tok, keys, now); err != nil || c != fuzzClaims {
			f.Fatalf("parseToken(genuine token) = %+v, %v; want %+v", c, err, fuzzClaims)
		}
	}

	b64 := base64.RawURLEncoding.EncodeToString
	forge := func(header, payload string) string {
		s := b64([]byte(header)) + "." + b64([]byte(payload))
		m := hmac.New(sha256.New, []byte("not-the-key"))
		m.Write([]byte(s))
		return s + "." + b64(m.Sum(nil))
	}
	payload := `{"iss":"openconsole","iat":1800000000,"exp":1800003600,"jti":"x","userId":1}`
	for _, s := range []string{
		genuine,
		oldTok,
		genuine + ".",
		"." + genuine,
		strings.Replace(genuine, ".", "..", 1),
		genuine[:len(genuine)-1],
		b64([]byte(`{"alg":"none","typ":"JWT"}`)) + "." + b64([]byte(payload)) + ".",
		b64([]byte(`{"alg":"none","typ":"JWT","kid":"k1"}`)) + "." + b64([]byte(payload)) + ".",
		b64([]byte(`{"alg":"HS512","typ":"JWT","kid":"k1"}`)) + "." + b64([]byte(payload)) + ".AAAA",
		b64([]byte(`{"alg":"RS256","typ":"JWT","kid":"k1"}`)) + "." + b64([]byte(payload)) + ".AAAA",
		forge(`{"alg":"HS256","typ":"JWT","kid":"k1"}`, payload),
		forge(`{"alg":"HS256","typ":"JWT"}`, payload),
		forge(`{"alg":"HS256","kid":"k1","kid":"zz"}`, payload),
		"", ".", "..", "a.b.c", "Bearer " + genuine, strings.Repeat("A", maxTokenLength+1),
		"eyJ.eyJ.sig", "\x00.\x00.\x00",
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, tok string) {
		c, err := parseToken(tok, keys, now)
		if err != nil {
			if err != ErrInvalidToken {
				t.Fatalf("parseToken(%q) error %v; want ErrInvalidToken", tok, err)
			}
			return
		}
		// Only the two tokens signed here verify, each in exactly one spelling.
		if (tok != genuine && tok != oldTok) || c != fuzzClaims {
			t.Fatalf("parseToken(%q) verified claims %+v: a token nobody signed, or another spelling of one", tok, c)
		}
	})
}

// FuzzCheckKey checks CheckKey against its definition (1 to MaxKeyLength printable ASCII bytes
// without spaces), and that RedactKey never shows more than four characters of a key.
func FuzzCheckKey(f *testing.F) {
	for _, s := range []string{
		"AC75-267F-EF82-3731-AA42", "SN123456789", "a", "", " ", "a b", "tab\there", "ünï", "\x00",
		"\x7f", "~!@#$%^&*()_+{}|:<>?", strings.Repeat("x", MaxKeyLength), strings.Repeat("x", MaxKeyLength+1),
		"AC75-267F-EF82-3731-AA42\n", `{"licenseKey":"x"}`,
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, k string) {
		want := k != "" && len(k) <= MaxKeyLength
		for i := 0; i < len(k); i++ {
			if k[i] < 0x21 || k[i] > 0x7e {
				want = false
			}
		}
		err := CheckKey(k)
		if (err == nil) != want {
			t.Fatalf("CheckKey(%q) = %v; want ok=%v", k, err, want)
		}
		if err != nil && ErrorCode(err) != EUNPROCESSABLE {
			t.Fatalf("CheckKey(%q) error code %q; want %q", k, ErrorCode(err), EUNPROCESSABLE)
		}
		want4 := strings.Repeat("*", len(k))
		if len(k) > 4 {
			want4 = k[:4] + "…"
		}
		if r := RedactKey(k); r != want4 {
			t.Fatalf("RedactKey(%q) = %q; want %q", k, r, want4)
		}
	})
}
