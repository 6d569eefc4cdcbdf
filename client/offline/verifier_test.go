package offline_test

import (
	"bytes"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"golang.org/x/mod/sumdb/note"

	"openconsole/client/offline"
)

// python3WithCryptography returns the interpreter, or skips (fails when OPENCONSOLE_REQUIRE_TOOLS
// is set) when python3 or its cryptography package is missing.
func python3WithCryptography(t *testing.T) string {
	t.Helper()
	missing := func(why string) {
		if os.Getenv("OPENCONSOLE_REQUIRE_TOOLS") != "" {
			t.Fatalf("independent verifier: %s (OPENCONSOLE_REQUIRE_TOOLS is set)", why)
		}
		t.Skipf("independent verifier: %s", why)
	}
	py, err := exec.LookPath("python3")
	if err != nil {
		missing("python3 not found")
	}
	if out, err := exec.Command(py, "-c", "import cryptography").CombinedOutput(); err != nil {
		missing("python3 has no cryptography package: " + strings.TrimSpace(string(out)))
	}
	return py
}

// runVerifier runs testdata/offline/verify_cert.py on the named certificates and returns its
// verdict per file ("ok" or "refused: reason").
func runVerifier(t *testing.T, py, pin string, certs map[string][]byte) map[string]string {
	t.Helper()
	dir := t.TempDir()
	args := []string{filepath.Join("..", "..", "testdata", "offline", "verify_cert.py"), "--pin", pin}
	for name, b := range certs {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, b, 0o644); err != nil {
			t.Fatal(err)
		}
		args = append(args, p)
	}
	out, err := exec.Command(py, args...).Output()
	if err != nil {
		if ee, ok := err.(*exec.ExitError); !ok || ee.ExitCode() != 1 {
			t.Fatalf("verify_cert.py: %v\n%s", err, out)
		}
	}
	got := map[string]string{}
	for _, line := range strings.Split(strings.TrimSpace(string(out)), "\n") {
		verdict, rest, _ := strings.Cut(line, " ")
		file, reason, _ := strings.Cut(rest, ": ")
		got[filepath.Base(file)] = strings.TrimSpace(verdict + " " + reason)
	}
	if len(got) != len(certs) {
		t.Fatalf("verifier answered for %d files, want %d:\n%s", len(got), len(certs), out)
	}
	return got
}

func TestIndependentVerifier(t *testing.T) {
	py := python3WithCryptography(t)
	skey, pin, err := offline.GenerateSigningKey("console.example.com")
	if err != nil {
		t.Fatal(err)
	}
	signer, _ := note.NewSigner(skey)
	_, otherPin, _ := offline.GenerateSigningKey("console.example.com")
	_, pub := deviceKey(t)

	// Certificates the Go code issues, over the range of their values.
	good := map[string][]byte{}
	for i, mod := range []func(*offline.Certificate){
		func(c *offline.Certificate) {},
		func(c *offline.Certificate) { c.LicenseHint = "" },
		func(c *offline.Certificate) { c.LicenseHint = "a.b_c-D" },
		func(c *offline.Certificate) { c.Counter = 1<<64 - 1; c.SessionTimestamp = 1<<63 - 1 },
		func(c *offline.Certificate) { c.Counter = 0; c.SessionTimestamp = 0 },
		func(c *offline.Certificate) { c.NotBefore = c.NotAfter },
		func(c *offline.Certificate) { c.Issued = time.Unix(0, 0); c.NotBefore = time.Unix(0, 0) },
		func(c *offline.Certificate) { c.NotAfter = time.Date(9999, 12, 31, 23, 59, 59, 0, time.UTC) },
	} {
		c := sampleCert(pub)
		mod(c)
		b, err := offline.IssueCertificate(c, signer)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := offline.ParseCertificate(b, mustVerifier(t, pin)); err != nil {
			t.Fatal(err)
		}
		good[fmt.Sprintf("good%d.note", i)] = b
	}
	for name, verdict := range runVerifier(t, py, pin, good) {
		if verdict != "ok" {
			t.Errorf("%s: the independent verifier says %q\n%s", name, verdict, good[name])
		}
	}

	// Tampered ones: every one is refused by Go, and must be by the verifier.
	base := good["good0.note"]
	bad := map[string][]byte{}
	for i := 0; i < len(base); i += 7 {
		b := bytes.Clone(base)
		b[i] ^= 0x01
		bad[fmt.Sprintf("byte%d.note", i)] = b
	}
	split := bytes.LastIndex(base, []byte("\n\n"))
	text := string(base[:split+1])
	resigned := func(edit func(string) string) []byte {
		b, err := note.Sign(&note.Note{Text: edit(text)}, signer)
		if err != nil {
			t.Fatal(err)
		}
		return b
	}
	rep := func(old, new string) func(string) string {
		return func(s string) string {
			if !strings.Contains(s, old) {
				t.Fatalf("case does not apply: %q", old)
			}
			return strings.Replace(s, old, new, 1)
		}
	}
	bad["leadingzero.note"] = resigned(rep("counter ", "counter 0"))
	bad["extraline.note"] = resigned(func(s string) string { return s + "extra x\n" })
	bad["swapped.note"] = resigned(func(s string) string {
		l := strings.SplitAfter(s, "\n")
		l[2], l[3] = l[3], l[2]
		return strings.Join(l, "")
	})
	bad["uppercase.note"] = resigned(rep("session 74c3b620", "session 74C3B620"))
	bad["offsettime.note"] = resigned(rep("issued 2026-12-02T10:00:00Z", "issued 2026-12-02T10:00:00+00:00"))
	bad["reversed.note"] = resigned(rep("not-before 2026-12-02T09:00:00Z", "not-before 2099-12-02T09:00:00Z"))
	bad["issuer.note"] = resigned(rep("issuer console.example.com", "issuer other"))
	bad["doublesig.note"] = append(bytes.Clone(base), base[split+2:]...)
	alt := bytes.Clone(base) // non-canonical base64: the unused bits of the last character set
	const b64 = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/"
	alt[len(alt)-3] = b64[strings.IndexByte(b64, alt[len(alt)-3])^1]
	bad["noncanonical.note"] = alt
	v := mustVerifier(t, pin)
	for name, b := range bad {
		if _, err := offline.ParseCertificate(b, v); err == nil {
			t.Fatalf("%s: Go accepts it; the case is wrong", name)
		}
	}
	for name, verdict := range runVerifier(t, py, pin, bad) {
		t.Logf("%s: %s", name, verdict)
		if !strings.HasPrefix(verdict, "refused") {
			t.Errorf("%s: the independent verifier accepted a tampered certificate\n%s", name, bad[name])
		}
	}
	// A good certificate under another pinned key of the same name.
	for name, verdict := range runVerifier(t, py, otherPin, map[string][]byte{"unpinned.note": base}) {
		if !strings.HasPrefix(verdict, "refused") {
			t.Errorf("%s: accepted under an unpinned key", name)
		}
	}
}

func mustVerifier(t *testing.T, vkey string) note.Verifier {
	t.Helper()
	v, err := note.NewVerifier(vkey)
	if err != nil {
		t.Fatal(err)
	}
	return v
}
