package openconsole

import (
	"encoding/base64"
	"strings"
	"testing"
	"time"
)

func TestTokenRoundTripAndRefusals(t *testing.T) {
	now := time.Unix(1_800_000_000, 0)
	k := NewSigningKey(now)
	other := NewSigningKey(now)
	keys := func(kid string) (SigningKey, bool) {
		if kid == k.ID {
			return k, true
		}
		return SigningKey{}, false
	}
	c := Claims{Issuer: TokenIssuer, IssuedAt: now.Unix(), Expires: now.Add(time.Hour).Unix(), ID: "j", UserID: 7}
	tok := signToken(k, c)
	got, err := parseToken(tok, keys, now)
	if err != nil || got != c {
		t.Fatalf("parseToken = %+v, %v; want %+v", got, err, c)
	}
	if parts := strings.Split(tok, "."); len(parts) != 3 {
		t.Fatalf("token has %d parts, want 3", len(parts))
	}

	b64 := base64.RawURLEncoding
	header, payload, _ := strings.Cut(tok, ".")
	payload, sig, _ := strings.Cut(payload, ".")
	noneHeader := b64.EncodeToString([]byte(`{"alg":"none","typ":"JWT","kid":"` + k.ID + `"}`))
	hs512Header := b64.EncodeToString([]byte(`{"alg":"HS512","typ":"JWT","kid":"` + k.ID + `"}`))
	forged := b64.EncodeToString([]byte(`{"iss":"openconsole","iat":1,"exp":9999999999,"jti":"x","userId":1}`))
	tests := []struct {
		name  string
		token string
		now   time.Time
	}{
		{"expired", tok, now.Add(time.Hour)},
		{"alg none", noneHeader + "." + payload + ".", now},
		{"alg none with signature", noneHeader + "." + payload + "." + sig, now},
		{"other algorithm", hs512Header + "." + payload + "." + sig, now},
		{"payload swapped", header + "." + forged + "." + sig, now},
		{"signed by an unknown key", signToken(other, c), now},
		{"wrong issuer", signToken(k, Claims{Issuer: "x", Expires: c.Expires, UserID: 7}), now},
		{"no user", signToken(k, Claims{Issuer: TokenIssuer, Expires: c.Expires}), now},
		{"garbage", "garbage", now},
		{"empty", "", now},
		{"two parts", header + "." + payload, now},
		{"four parts", tok + ".x", now},
		{"bad base64", header + "." + payload + ".!!!", now},
		{"too long", tok + strings.Repeat("A", maxTokenLength), now},
		{"LF appended", tok + "\n", now},
		{"CRLF appended", tok + "\r\n", now},
		{"LF inside the signature", tok[:len(tok)-4] + "\n" + tok[len(tok)-4:], now},
		{"CR inside the header", tok[:3] + "\r" + tok[3:], now},
		{"space appended", tok + " ", now},
		{"padding", tok + "=", now},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if _, err := parseToken(tt.token, keys, tt.now); err != ErrInvalidToken {
				t.Errorf("err = %v, want ErrInvalidToken", err)
			}
		})
	}
}

func TestParseSessionID(t *testing.T) {
	tests := []struct {
		in, want string
		ok       bool
	}{
		{"74c3b620-6048-4bfd-9bf7-c9857a001694", "74c3b620-6048-4bfd-9bf7-c9857a001694", true},
		{"74C3B620-6048-4BFD-9BF7-C9857A001694", "74c3b620-6048-4bfd-9bf7-c9857a001694", true},
		{" 74c3b620-6048-4bfd-9bf7-c9857a001694\t", "74c3b620-6048-4bfd-9bf7-c9857a001694", true},
		{"00000000-0000-4000-8000-000000000000", "00000000-0000-4000-8000-000000000000", true},
		{"", "", false},
		{"not-a-uuid", "", false},
		{"200-active", "", false},
		{"74c3b62060484bfd9bf7c9857a001694", "", false},
		{"74c3b620-6048-4bfd-9bf7-c9857a00169g", "", false},
		{"{74c3b620-6048-4bfd-9bf7-c9857a001694}", "", false},
		{`{"id":"74c3b620-6048-4bfd-9bf7-c9857a001694","timestamp":1}`, "", false},
		{"74c3b620-6048-4bfd-9bf7_c9857a001694", "", false},
	}
	for _, tt := range tests {
		got, ok := ParseSessionID(tt.in)
		if got != tt.want || ok != tt.ok {
			t.Errorf("ParseSessionID(%q) = %q, %v; want %q, %v", tt.in, got, ok, tt.want, tt.ok)
		}
	}
	for i := 0; i < 100; i++ {
		id := NewSessionID()
		if got, ok := ParseSessionID(id); !ok || got != id || id[14] != '4' || !strings.ContainsRune("89ab", rune(id[19])) {
			t.Fatalf("NewSessionID() = %q is not a canonical lower-case v4 UUID", id)
		}
	}
}

func TestNewLicenseKey(t *testing.T) {
	seen := map[string]bool{}
	for i := 0; i < 1000; i++ {
		k := NewLicenseKey()
		if len(k) != 24 || strings.Count(k, "-") != 4 {
			t.Fatalf("key %q is not XXXX-XXXX-XXXX-XXXX-XXXX", k)
		}
		for j, c := range k {
			if j%5 == 4 {
				continue
			}
			if !strings.ContainsRune("0123456789ABCDEF", c) {
				t.Fatalf("key %q has %q, want upper-case hex", k, c)
			}
		}
		if seen[k] {
			t.Fatalf("key %q generated twice", k)
		}
		seen[k] = true
		if err := CheckKey(k); err != nil {
			t.Fatalf("CheckKey(%q) = %v", k, err)
		}
	}
	for _, bad := range []string{"", "a b", strings.Repeat("x", MaxKeyLength+1), "tab\there", "ünï"} {
		if CheckKey(bad) == nil {
			t.Errorf("CheckKey(%q) = nil, want an error", bad)
		}
	}
	if got := RedactKey("AC75-267F-EF82-3731-AA42"); strings.Contains(got, "267F") || !strings.HasPrefix(got, "AC75") {
		t.Errorf("RedactKey = %q", got)
	}
}

func TestPasswords(t *testing.T) {
	h, err := HashPassword("pw1")
	if err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(h, "$argon2id$v=19$m=19456,t=2,p=1$") {
		t.Errorf("hash = %q, want argon2id PHC form", h)
	}
	h2, _ := HashPassword("pw1")
	if h == h2 {
		t.Error("two hashes of one password are equal: the salt is not random")
	}
	if !CheckPassword(h, "pw1") {
		t.Error("right password refused")
	}
	for _, bad := range []string{"pw2", "", "PW1", "pw1 "} {
		if CheckPassword(h, bad) {
			t.Errorf("wrong password %q accepted", bad)
		}
	}
	for _, corrupt := range []string{"", "plain", "$argon2id$v=19$m=99999999,t=2,p=1$AAAA$AAAA", "$argon2i$v=19$m=19456,t=2,p=1$AAAA$AAAA", h[:len(h)-5] + "!!!!!"} {
		if CheckPassword(corrupt, "pw1") {
			t.Errorf("corrupt hash %q matched", corrupt)
		}
	}
}
