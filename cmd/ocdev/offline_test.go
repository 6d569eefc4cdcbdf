package main

import (
	"bytes"
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"golang.org/x/mod/sumdb/note"

	"openconsole/client/offline"
)

type fakeClock struct {
	wall time.Time
	up   time.Duration
	boot string
}

func (c *fakeClock) Now() time.Time                 { return c.wall }
func (c *fakeClock) Uptime() (time.Duration, error) { return c.up, nil }
func (c *fakeClock) BootID() string                 { return c.boot }

// runIn runs ocdev in this process with the clock.
func runIn(t *testing.T, clk *fakeClock, args ...string) (int, string, string) {
	t.Helper()
	var stdout, stderr bytes.Buffer
	e := &env{ctx: context.Background(), stdin: strings.NewReader(""), stdout: &stdout, stderr: &stderr}
	if clk != nil {
		e.clock = clk
	}
	code := e.run(args)
	return code, stdout.String(), stderr.String()
}

// issueFor plays the console: it answers the request file with a certificate.
func issueFor(t *testing.T, signer note.Signer, reqPath, certPath string, counter uint64, issued time.Time, ttl time.Duration) {
	t.Helper()
	b, err := os.ReadFile(reqPath)
	if err != nil {
		t.Fatal(err)
	}
	r, err := offline.ParseRequest(b)
	if err != nil {
		t.Fatal(err)
	}
	cert, err := offline.IssueCertificate(&offline.Certificate{License: r.License, LicenseHint: "AA42", DeviceKey: r.DeviceKey,
		Nonce: r.Nonce, Counter: counter, Issued: issued, NotBefore: issued, NotAfter: issued.Add(ttl),
		SessionID: "74c3b620-6048-4bfd-9bf7-c9857a001694", SessionTimestamp: 1}, signer)
	if err != nil {
		t.Fatal(err)
	}
	os.WriteFile(certPath, cert, 0o644)
}

type statusJSON struct {
	Valid       bool       `json:"valid"`
	Mode        string     `json:"mode"`
	License     string     `json:"license"`
	NotAfter    *time.Time `json:"notAfter"`
	TrustedTime time.Time  `json:"trustedTime"`
}

func TestOcdevOffline(t *testing.T) {
	dir := t.TempDir()
	state := filepath.Join(dir, "state")
	skey, pin, _ := offline.GenerateSigningKey("console.example")
	signer, _ := note.NewSigner(skey)
	issued := time.Date(2026, 12, 1, 0, 0, 0, 0, time.UTC)
	clk := &fakeClock{wall: issued.Add(time.Minute), up: time.Hour, boot: "b1"}
	req, cert := filepath.Join(dir, "req.note"), filepath.Join(dir, "cert.note")
	key := "AC75-267F-EF82-3731-AA42"

	if code, _, _ := runIn(t, clk, "offline", "request", "--state", state); code != exitUsage {
		t.Errorf("request without --key: exit %d, want %d", code, exitUsage)
	}
	if code, _, stderr := runIn(t, clk, "offline", "request", "--key", key, "--out", req, "--state", state); code != 0 {
		t.Fatalf("request: %d %s", code, stderr)
	}
	if b, _ := os.ReadFile(req); bytes.Contains(b, []byte(key)) {
		t.Error("the request carries the license key")
	}
	if code, _, _ := runIn(t, clk, "offline", "status", "--state", state); code != exitNotValid {
		t.Errorf("status before install: exit %d, want %d", code, exitNotValid)
	}
	issueFor(t, signer, req, cert, 1, issued, 30*24*time.Hour)
	_, otherPin, _ := offline.GenerateSigningKey("console.example")
	if code, _, stderr := runIn(t, clk, "offline", "install", cert, "--pin", otherPin, "--state", state); code != exitOffline || !strings.Contains(stderr, "signature") {
		t.Errorf("install with an unpinned key: exit %d %q, want %d", code, stderr, exitOffline)
	}
	if code, _, _ := runIn(t, clk, "offline", "install", cert, "--state", state); code != exitUsage {
		t.Errorf("install without a pin: exit %d, want %d", code, exitUsage)
	}
	pinFile := filepath.Join(dir, "pin")
	os.WriteFile(pinFile, []byte(pin+"\n"), 0o644)
	if code, out, stderr := runIn(t, clk, "offline", "install", "--pin-file", pinFile, "--state", state, cert); code != 0 {
		t.Fatalf("install: %d %s %s", code, out, stderr)
	}
	code, out, _ := runIn(t, clk, "status", "--json", "--state", state)
	var s statusJSON
	if err := json.Unmarshal([]byte(out), &s); err != nil || code != 0 {
		t.Fatalf("status --json: %d %q %v", code, out, err)
	}
	if !s.Valid || s.Mode != "offline" || s.License != "AA42" || s.NotAfter == nil || !s.NotAfter.Equal(issued.Add(30*24*time.Hour)) ||
		!s.TrustedTime.Equal(clk.wall) {
		t.Errorf("status %+v", s)
	}
	if strings.Contains(out, key) {
		t.Error("status printed the full license key")
	}
	// Past not-after: exit 3; the wall clock set back a year does not help.
	clk.wall, clk.up = clk.wall.Add(31*24*time.Hour), clk.up+31*24*time.Hour
	if code, _, _ := runIn(t, clk, "offline", "status", "--state", state); code != exitNotValid {
		t.Errorf("status after not-after: exit %d, want %d", code, exitNotValid)
	}
	clk.wall = clk.wall.AddDate(-1, 0, 0)
	if code, out, _ := runIn(t, clk, "offline", "status", "--json", "--state", state); code != exitNotValid || !strings.Contains(out, `"valid": false`) {
		t.Errorf("status with the clock set back: exit %d %s", code, out)
	}
	// A fresh request, a re-issue with a higher counter, deactivation.
	clk.wall = clk.wall.AddDate(1, 0, 0)
	runIn(t, clk, "offline", "request", "--key", key, "--out", req, "--state", state)
	issueFor(t, signer, req, cert, 2, clk.wall, 30*24*time.Hour)
	if code, _, stderr := runIn(t, clk, "offline", "install", cert, "--pin", pin, "--state", state); code != 0 {
		t.Fatalf("re-install: %d %s", code, stderr)
	}
	proof := filepath.Join(dir, "d.note")
	if code, _, stderr := runIn(t, clk, "offline", "deactivate", "--out", proof, "--state", state); code != 0 {
		t.Fatalf("deactivate: %d %s", code, stderr)
	}
	b, _ := os.ReadFile(proof)
	if d, err := offline.ParseDeactivation(b); err != nil || d.Counter != 2 {
		t.Errorf("proof: %+v, %v", d, err)
	}
	if code, _, _ := runIn(t, clk, "offline", "status", "--state", state); code != exitNotValid {
		t.Errorf("status after deactivation: exit %d, want %d", code, exitNotValid)
	}
	if code, _, _ := runIn(t, clk, "offline", "deactivate", "--out", proof, "--state", state); code != exitOffline {
		t.Errorf("second deactivation: exit %d, want %d", code, exitOffline)
	}
	if code, _, stderr := runIn(t, clk, "offline", "install", cert, "--pin", pin, "--state", state); code != exitOffline || !strings.Contains(stderr, "device") {
		t.Errorf("re-installing the given-up certificate: exit %d %q", code, stderr)
	}
}

func TestOcdevUsage(t *testing.T) {
	for _, args := range [][]string{{}, {"nope"}, {"offline"}, {"offline", "nope"}, {"manifest", "one"}, {"run", "--interval", "0"}, {"status", "--bogus"}} {
		if code, _, _ := runIn(t, nil, args...); code != exitUsage {
			t.Errorf("ocdev %q: exit %d, want %d", args, code, exitUsage)
		}
	}
	if code, out, _ := runIn(t, nil, "help"); code != 0 || !strings.Contains(out, "Exit codes") {
		t.Errorf("help: %d", code)
	}
}
