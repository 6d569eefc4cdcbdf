package offline_test

import (
	"bytes"
	"crypto/ed25519"
	"encoding/base64"
	"errors"
	"fmt"
	"reflect"
	"strings"
	"testing"
	"time"

	"golang.org/x/mod/sumdb/note"

	"openconsole/client/offline"
)

var t0 = time.Date(2026, 12, 2, 10, 0, 0, 0, time.UTC)

func deviceKey(t testing.TB) (note.Signer, ed25519.PublicKey) {
	t.Helper()
	s, skey, err := offline.GenerateDeviceKey()
	if err != nil {
		t.Fatal(err)
	}
	pub, err := offline.DevicePublicKey(skey)
	if err != nil {
		t.Fatal(err)
	}
	return s, pub
}

func signingKey(t testing.TB, name string) (note.Signer, note.Verifier) {
	t.Helper()
	skey, vkey, err := offline.GenerateSigningKey(name)
	if err != nil {
		t.Fatal(err)
	}
	s, err := note.NewSigner(skey)
	if err != nil {
		t.Fatal(err)
	}
	v, err := note.NewVerifier(vkey)
	if err != nil {
		t.Fatal(err)
	}
	return s, v
}

func sampleRequest(pub ed25519.PublicKey) *offline.Request {
	r := &offline.Request{DeviceKey: pub, License: offline.LicenseHash("AC75-267F-EF82-3731-AA42"), Counter: 3, DeviceTime: t0}
	copy(r.Nonce[:], "0123456789abcdef")
	return r
}

func sampleCert(pub ed25519.PublicKey) *offline.Certificate {
	c := &offline.Certificate{
		License: offline.LicenseHash("AC75-267F-EF82-3731-AA42"), LicenseHint: "AA42", DeviceKey: pub,
		Counter: 4, Issued: t0, NotBefore: t0.Add(-time.Hour), NotAfter: t0.Add(90 * 24 * time.Hour),
		SessionID: "74c3b620-6048-4bfd-9bf7-c9857a001694", SessionTimestamp: 1724323729123,
	}
	copy(c.Nonce[:], "0123456789abcdef")
	return c
}

func TestLicenseHashAndHint(t *testing.T) {
	if offline.LicenseHash(" AC75-267F-EF82-3731-AA42\n") != offline.LicenseHash("AC75-267F-EF82-3731-AA42") {
		t.Error("LicenseHash does not trim surrounding space")
	}
	if offline.LicenseHash("a") == offline.LicenseHash("b") {
		t.Error("LicenseHash collides")
	}
	for key, want := range map[string]string{
		"AC75-267F-EF82-3731-AA42": "AA42", " SN123456789 ": "6789", "short": "", "abcdefg h": "", "abcd-efg\u00e9": "",
	} {
		if got := offline.LicenseHint(key); got != want {
			t.Errorf("LicenseHint(%q) = %q, want %q", key, got, want)
		}
	}
}

func TestRequestRoundTrip(t *testing.T) {
	s, pub := deviceKey(t)
	r := sampleRequest(pub)
	r.DeviceTime = t0.Add(500 * time.Millisecond)
	msg, err := offline.NewRequest(r, s)
	if err != nil {
		t.Fatal(err)
	}
	if len(msg) >= 600 {
		t.Errorf("request is %d bytes, want < 600", len(msg))
	}
	got, err := offline.ParseRequest(msg)
	if err != nil {
		t.Fatal(err)
	}
	r.DeviceTime = t0 // truncated to seconds
	if !reflect.DeepEqual(got, r) {
		t.Errorf("got %+v, want %+v", got, r)
	}
	again, _ := offline.NewRequest(got, s)
	if !bytes.Equal(again, msg) {
		t.Error("re-encoding a parsed request changes its bytes")
	}
}

func TestCertificateRoundTrip(t *testing.T) {
	signer, v := signingKey(t, "console.example.com")
	_, pub := deviceKey(t)
	for _, hint := range []string{"AA42", ""} {
		c := sampleCert(pub)
		c.LicenseHint = hint
		msg, err := offline.IssueCertificate(c, signer)
		if err != nil {
			t.Fatal(err)
		}
		if len(msg) >= 600 {
			t.Errorf("certificate is %d bytes, want < 600:\n%s", len(msg), msg)
		}
		got, err := offline.ParseCertificate(msg, v)
		if err != nil {
			t.Fatal(err)
		}
		c.Issuer = "console.example.com"
		if !reflect.DeepEqual(got, c) {
			t.Errorf("got %+v, want %+v", got, c)
		}
		again, err := offline.IssueCertificate(got, signer)
		if err != nil || !bytes.Equal(again, msg) {
			t.Errorf("re-issuing a parsed certificate changes its bytes (%v)", err)
		}
	}
}

func TestDeactivationRoundTrip(t *testing.T) {
	s, pub := deviceKey(t)
	_, next := deviceKey(t)
	d := &offline.Deactivation{DeviceKey: pub, License: offline.LicenseHash("k"), Counter: 7, NextDeviceKey: next, Time: t0}
	copy(d.Nonce[:], "fedcba9876543210")
	msg, err := offline.NewDeactivation(d, s)
	if err != nil {
		t.Fatal(err)
	}
	if len(msg) >= 600 {
		t.Errorf("deactivation is %d bytes, want < 600", len(msg))
	}
	got, err := offline.ParseDeactivation(msg)
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(got, d) {
		t.Errorf("got %+v, want %+v", got, d)
	}
}

func TestNewRefusals(t *testing.T) {
	s, pub := deviceKey(t)
	other, otherPub := deviceKey(t)
	signer, _ := signingKey(t, "console")

	if _, err := offline.NewRequest(sampleRequest(pub), other); !errors.Is(err, offline.ErrSignature) {
		t.Errorf("request signed by another key than it names: %v, want ErrSignature", err)
	}
	if _, err := offline.NewRequest(sampleRequest(pub), signer); !errors.Is(err, offline.ErrSignature) {
		t.Errorf("request signed by a non-device key: %v, want ErrSignature", err)
	}
	r := sampleRequest(pub[:31])
	if _, err := offline.NewRequest(r, s); !errors.Is(err, offline.ErrMalformed) {
		t.Errorf("short device key: %v", err)
	}
	r = sampleRequest(pub)
	r.DeviceTime = time.Time{}
	if _, err := offline.NewRequest(r, s); !errors.Is(err, offline.ErrMalformed) {
		t.Errorf("zero time: %v", err)
	}
	d := &offline.Deactivation{DeviceKey: pub, NextDeviceKey: pub, Time: t0}
	if _, err := offline.NewDeactivation(d, s); !errors.Is(err, offline.ErrMalformed) {
		t.Errorf("next key equal to old: %v", err)
	}
	d.NextDeviceKey = otherPub
	if _, err := offline.NewDeactivation(d, other); !errors.Is(err, offline.ErrSignature) {
		t.Errorf("deactivation signed by the next key: %v", err)
	}

	for name, mod := range map[string]func(*offline.Certificate){
		"issuer mismatch":  func(c *offline.Certificate) { c.Issuer = "someone-else" },
		"bad hint":         func(c *offline.Certificate) { c.LicenseHint = "a b" },
		"dash hint":        func(c *offline.Certificate) { c.LicenseHint = "-" },
		"short key":        func(c *offline.Certificate) { c.DeviceKey = c.DeviceKey[:10] },
		"reversed times":   func(c *offline.Certificate) { c.NotBefore = c.NotAfter.Add(time.Second) },
		"upper-case uuid":  func(c *offline.Certificate) { c.SessionID = strings.ToUpper(c.SessionID) },
		"not a uuid":       func(c *offline.Certificate) { c.SessionID = "200-active" },
		"negative session": func(c *offline.Certificate) { c.SessionTimestamp = -1 },
		"year 1969":        func(c *offline.Certificate) { c.Issued = time.Unix(-1, 0) },
	} {
		c := sampleCert(pub)
		mod(c)
		if _, err := offline.IssueCertificate(c, signer); err == nil {
			t.Errorf("%s: issued", name)
		}
	}
}

// resign replaces the text of a note and signs it again with s, so that a refusal can only come
// from the body rules.
func resign(t *testing.T, msg []byte, s note.Signer, edit func(string) string) []byte {
	t.Helper()
	i := bytes.LastIndex(msg, []byte("\n\n"))
	text := edit(string(msg[:i+1]))
	out, err := note.Sign(&note.Note{Text: text}, s)
	if err != nil {
		t.Fatalf("sign edited text %q: %v", text, err)
	}
	return out
}

func bodyCases() map[string]func(string) string {
	rep := func(old, new string) func(string) string {
		return func(s string) string {
			if !strings.Contains(s, old) {
				panic("test case does not apply: " + old)
			}
			return strings.Replace(s, old, new, 1)
		}
	}
	return map[string]func(string) string{
		"unknown line":      func(s string) string { return s + "extra 1\n" },
		"missing last line": func(s string) string { i := strings.LastIndex(strings.TrimSuffix(s, "\n"), "\n"); return s[:i+1] },
		"duplicate line":    func(s string) string { return s + strings.SplitAfter(s, "\n")[1] },
		"swapped lines": func(s string) string {
			l := strings.SplitAfter(s, "\n")
			l[1], l[2] = l[2], l[1]
			return strings.Join(l, "")
		},
		"wrong version":  func(s string) string { return strings.Replace(s, " v1\n", " v2\n", 1) },
		"two spaces":     rep("counter ", "counter  "),
		"trailing space": func(s string) string { return strings.TrimSuffix(s, "\n") + " \n" },
		"leading zero":   rep("counter ", "counter 0"),
		"plus counter":   rep("counter ", "counter +"),
		"upper hex": func(s string) string {
			i := strings.Index(s, "\nlicense ") + len("\nlicense ")
			return s[:i] + strings.ToUpper(s[i:i+64]) + s[i+64:]
		},
		"not hex":         rep("nonce 3031", "nonce 3O31"),
		"short nonce":     rep("nonce 30", "nonce "),
		"bad time":        rep("T10:00:00Z", "T10:00:00+00:00"),
		"fraction time":   rep("T10:00:00Z", "T10:00:00.0Z"),
		"CR":              func(s string) string { return strings.Replace(s, "\n", "\r\n", 1) },
		"tab":             rep("counter ", "counter\t"),
		"empty line":      func(s string) string { return strings.Replace(s, "\n", "\n\n", 1) + "" },
		"header only":     func(s string) string { return strings.SplitAfter(s, "\n")[0] },
		"lower-case key":  rep("device ", "Device "),
		"base64 url form": func(s string) string { return strings.Replace(s, "device ", "device ~", 1) },
	}
}

func TestParseRequestRefusals(t *testing.T) {
	s, pub := deviceKey(t)
	msg, err := offline.NewRequest(sampleRequest(pub), s)
	if err != nil {
		t.Fatal(err)
	}
	for name, edit := range bodyCases() {
		if name == "empty line" { // splits the note elsewhere: the signature no longer matches
			continue
		}
		bad := resign(t, msg, s, edit)
		if _, err := offline.ParseRequest(bad); !errors.Is(err, offline.ErrMalformed) {
			t.Errorf("%s: ParseRequest = %v, want ErrMalformed\n%s", name, err, bad)
		}
	}
	checkSignatureRefusals(t, msg, func(m []byte) error { _, err := offline.ParseRequest(m); return err })

	// Signed by a key other than the one named: proof of possession fails.
	other, _ := deviceKey(t)
	if _, err := offline.ParseRequest(resign(t, msg, other, func(s string) string { return s })); !errors.Is(err, offline.ErrSignature) {
		t.Errorf("request signed by another key: %v, want ErrSignature", err)
	}
}

func TestParseCertificateRefusals(t *testing.T) {
	signer, v := signingKey(t, "console")
	_, pub := deviceKey(t)
	msg, err := offline.IssueCertificate(sampleCert(pub), signer)
	if err != nil {
		t.Fatal(err)
	}
	for name, edit := range bodyCases() {
		if name == "empty line" || name == "lower-case key" || name == "base64 url form" {
			continue
		}
		bad := resign(t, msg, signer, edit)
		if _, err := offline.ParseCertificate(bad, v); !errors.Is(err, offline.ErrMalformed) {
			t.Errorf("%s: ParseCertificate = %v, want ErrMalformed", name, err)
		}
	}
	for name, edit := range map[string]func(string) string{
		"hint empty": func(s string) string { return strings.Replace(s, "license-hint AA42", "license-hint ", 1) },
		"hint too long": func(s string) string {
			return strings.Replace(s, "license-hint AA42", "license-hint AAAAAAAAAAAAAAAAA", 1)
		},
		"upper uuid":       func(s string) string { return strings.Replace(s, "session 74c3b620", "session 74C3B620", 1) },
		"negative session": func(s string) string { return strings.Replace(s, "session-timestamp ", "session-timestamp -", 1) },
		"huge session": func(s string) string {
			return strings.Replace(s, "session-timestamp 1724323729123", "session-timestamp 9223372036854775808", 1)
		},
		"not-before after not-after": func(s string) string {
			return strings.Replace(s, "not-before 2026-12-02T09:00:00Z", "not-before 2027-12-02T09:00:00Z", 1)
		},
		"issuer not pinned": func(s string) string { return strings.Replace(s, "issuer console", "issuer other", 1) },
	} {
		bad := resign(t, msg, signer, edit)
		if _, err := offline.ParseCertificate(bad, v); err == nil {
			t.Errorf("%s: accepted", name)
		}
	}
	checkSignatureRefusals(t, msg, func(m []byte) error { _, err := offline.ParseCertificate(m, v); return err })

	// An unpinned key with the same name, and a key with another name.
	_, v2 := signingKey(t, "console")
	if _, err := offline.ParseCertificate(msg, v2); !errors.Is(err, offline.ErrSignature) {
		t.Errorf("unpinned key of the same name: %v, want ErrSignature", err)
	}
	_, v3 := signingKey(t, "other")
	if _, err := offline.ParseCertificate(msg, v3); !errors.Is(err, offline.ErrSignature) {
		t.Errorf("pinned key of another name: %v, want ErrSignature", err)
	}
	if _, err := offline.ParseCertificate(msg, nil); !errors.Is(err, offline.ErrSignature) {
		t.Errorf("nil verifier: %v, want ErrSignature", err)
	}
}

func TestParseDeactivationRefusals(t *testing.T) {
	s, pub := deviceKey(t)
	_, next := deviceKey(t)
	d := &offline.Deactivation{DeviceKey: pub, License: offline.LicenseHash("k"), Counter: 7, NextDeviceKey: next, Time: t0}
	copy(d.Nonce[:], "0123456789abcdef")
	msg, err := offline.NewDeactivation(d, s)
	if err != nil {
		t.Fatal(err)
	}
	for name, edit := range bodyCases() {
		if name == "empty line" {
			continue
		}
		bad := resign(t, msg, s, edit)
		if _, err := offline.ParseDeactivation(bad); !errors.Is(err, offline.ErrMalformed) {
			t.Errorf("%s: ParseDeactivation = %v, want ErrMalformed", name, err)
		}
	}
	same := resign(t, msg, s, func(txt string) string {
		return strings.Replace(txt, "next-device "+base64.StdEncoding.EncodeToString(next), "next-device "+base64.StdEncoding.EncodeToString(pub), 1)
	})
	if _, err := offline.ParseDeactivation(same); !errors.Is(err, offline.ErrMalformed) {
		t.Errorf("next device equal to device: %v, want ErrMalformed", err)
	}
	checkSignatureRefusals(t, msg, func(m []byte) error { _, err := offline.ParseDeactivation(m); return err })
	// Signed by the next key rather than the key being given up.
	nextSigner, _ := deviceKey(t)
	if _, err := offline.ParseDeactivation(resign(t, msg, nextSigner, func(s string) string { return s })); !errors.Is(err, offline.ErrSignature) {
		t.Errorf("deactivation signed by another key: %v, want ErrSignature", err)
	}
}

// checkSignatureRefusals changes msg outside the body rules: every single byte, the signature's
// spelling, an extra signature, the size bound.
func checkSignatureRefusals(t *testing.T, msg []byte, parse func([]byte) error) {
	t.Helper()
	for i := range msg {
		for _, x := range []byte{0x01, 0x20} {
			bad := bytes.Clone(msg)
			bad[i] ^= x
			if err := parse(bad); err == nil {
				t.Fatalf("byte %d xor %#x accepted:\n%s", i, x, bad)
			}
		}
	}
	if err := parse(append(bytes.Clone(msg), msg[bytes.LastIndex(msg, []byte("\n\n"))+2:]...)); !errors.Is(err, offline.ErrSignature) {
		t.Errorf("doubled signature line: %v, want ErrSignature", err)
	}
	other, _ := signingKey(t, "extra")
	n := &note.Note{Text: string(msg[:bytes.LastIndex(msg, []byte("\n\n"))+1])}
	two, _ := note.Sign(n, other)
	two = append(two[:len(two)-0], msg[bytes.LastIndex(msg, []byte("\n\n"))+2:]...)
	if err := parse(two); err == nil {
		t.Error("extra signature by an unknown key accepted")
	}
	// The last base64 character of a 68-byte signature carries 2 unused bits: a non-canonical
	// spelling decodes to the same signature and must still be refused.
	end := len(msg) - 3 // "...X=\n"
	if msg[end+1] != '=' {
		t.Fatalf("signature does not end in one '=': %q", msg[end-2:])
	}
	alt := bytes.Clone(msg)
	const b64 = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/"
	alt[end] = b64[strings.IndexByte(b64, msg[end])^1]
	if err := parse(alt); err == nil {
		t.Error("non-canonical base64 signature accepted")
	}
	if err := parse(append(bytes.Repeat([]byte("x"), offline.MaxSize), msg...)); !errors.Is(err, offline.ErrMalformed) {
		t.Errorf("oversized: %v, want ErrMalformed", err)
	}
	if err := parse(nil); err == nil {
		t.Error("empty input accepted")
	}
}

// The fuzz targets try each input twice: as a whole artefact (which exercises the form and
// signature checks), and as a body signed by the right key (so that every body rule is reached).
// Whatever is accepted must be the one encoding of what was parsed.

// fixedKey is an Ed25519 note key made from a fixed seed. Fuzz targets need the same keys in every
// worker process, since the seed corpus is built in the coordinating one.
func fixedKey(t testing.TB, name string, seed byte) (note.Signer, note.Verifier, ed25519.PublicKey) {
	t.Helper()
	priv := ed25519.NewKeyFromSeed(bytes.Repeat([]byte{seed}, ed25519.SeedSize))
	pub := priv.Public().(ed25519.PublicKey)
	vkey, err := note.NewEd25519VerifierKey(name, pub)
	if err != nil {
		t.Fatal(err)
	}
	v, err := note.NewVerifier(vkey)
	if err != nil {
		t.Fatal(err)
	}
	// A signer key is "PRIVATE+KEY+name+hash+base64(1 || seed)", the hash being the verifier's.
	skey := "PRIVATE+KEY+" + name + "+" + fmt.Sprintf("%08x", v.KeyHash()) + "+" +
		base64.StdEncoding.EncodeToString(append([]byte{1}, priv.Seed()...))
	s, err := note.NewSigner(skey)
	if err != nil {
		t.Fatal(err)
	}
	return s, v, pub
}

func signedBody(s note.Signer, b []byte) []byte {
	msg, err := note.Sign(&note.Note{Text: string(b)}, s)
	if err != nil {
		return nil
	}
	return msg
}

func FuzzParseRequest(f *testing.F) {
	s, _, pub := fixedKey(f, offline.DeviceKeyName, 1)
	msg, _ := offline.NewRequest(sampleRequest(pub), s)
	f.Add(msg)
	f.Add(msg[:bytes.LastIndex(msg, []byte("\n\n"))+1])
	f.Add([]byte("openconsole offline request v1\n\n— x y\n"))
	f.Fuzz(func(t *testing.T, b []byte) {
		for _, in := range [][]byte{b, signedBody(s, b)} {
			r, err := offline.ParseRequest(in)
			if err != nil {
				continue
			}
			again, err := offline.NewRequest(r, s)
			if err != nil || !bytes.Equal(again, in) {
				t.Fatalf("accepted request %q re-encodes as %q (%v)", in, again, err)
			}
		}
	})
}

func FuzzParseCertificate(f *testing.F) {
	signer, v, _ := fixedKey(f, "console", 2)
	_, _, pub := fixedKey(f, offline.DeviceKeyName, 1)
	msg, _ := offline.IssueCertificate(sampleCert(pub), signer)
	f.Add(msg)
	f.Add(msg[:bytes.LastIndex(msg, []byte("\n\n"))+1])
	f.Fuzz(func(t *testing.T, b []byte) {
		for _, in := range [][]byte{b, signedBody(signer, b)} {
			c, err := offline.ParseCertificate(in, v)
			if err != nil {
				continue
			}
			again, err := offline.IssueCertificate(c, signer)
			if err != nil || !bytes.Equal(again, in) {
				t.Fatalf("accepted certificate %q re-issues as %q (%v)", in, again, err)
			}
		}
	})
}

func FuzzParseDeactivation(f *testing.F) {
	s, _, pub := fixedKey(f, offline.DeviceKeyName, 1)
	_, _, next := fixedKey(f, offline.DeviceKeyName, 3)
	d := &offline.Deactivation{DeviceKey: pub, License: offline.LicenseHash("k"), Counter: 7, NextDeviceKey: next, Time: t0}
	msg, _ := offline.NewDeactivation(d, s)
	f.Add(msg)
	f.Add(msg[:bytes.LastIndex(msg, []byte("\n\n"))+1])
	f.Fuzz(func(t *testing.T, b []byte) {
		for _, in := range [][]byte{b, signedBody(s, b)} {
			d, err := offline.ParseDeactivation(in)
			if err != nil {
				continue
			}
			again, err := offline.NewDeactivation(d, s)
			if err != nil || !bytes.Equal(again, in) {
				t.Fatalf("accepted deactivation %q re-encodes as %q (%v)", in, again, err)
			}
		}
	})
}
