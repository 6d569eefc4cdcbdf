package main

import (
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"golang.org/x/mod/sumdb/note"

	"openconsole/admin"
	"openconsole/client/offline"
	"openconsole/sqlstore/sqlstoretest"
)

// testDevice is an air-gapped device that writes its request and proofs to files.
type testDevice struct {
	signer note.Signer
	pub    ed25519.PublicKey
	cert   *offline.Certificate
	dir    string
}

func newTestDevice(t *testing.T) *testDevice {
	t.Helper()
	signer, skey, err := offline.GenerateDeviceKey()
	if err != nil {
		t.Fatal(err)
	}
	pub, err := offline.DevicePublicKey(skey)
	if err != nil {
		t.Fatal(err)
	}
	return &testDevice{signer: signer, pub: pub, dir: t.TempDir()}
}

func (d *testDevice) requestFile(t *testing.T, key string) string {
	t.Helper()
	r := &offline.Request{DeviceKey: d.pub, License: offline.LicenseHash(key), DeviceTime: time.Now()}
	rand.Read(r.Nonce[:])
	if d.cert != nil {
		r.Counter = d.cert.Counter
	}
	msg, err := offline.NewRequest(r, d.signer)
	if err != nil {
		t.Fatal(err)
	}
	f, _ := os.CreateTemp(d.dir, "req-*.note")
	f.Write(msg)
	f.Close()
	return f.Name()
}

// install reads a certificate file and checks it with the pinned verifier key.
func (d *testDevice) install(t *testing.T, file, vkey string) {
	t.Helper()
	b, err := os.ReadFile(file)
	if err != nil {
		t.Fatal(err)
	}
	v, err := note.NewVerifier(vkey)
	if err != nil {
		t.Fatal(err)
	}
	c, err := offline.ParseCertificate(b, v)
	if err != nil || !c.DeviceKey.Equal(d.pub) {
		t.Fatalf("certificate %s: %v", file, err)
	}
	d.cert = c
}

func (d *testDevice) proofFile(t *testing.T) string {
	t.Helper()
	next := newTestDevice(t)
	msg, err := offline.NewDeactivation(&offline.Deactivation{DeviceKey: d.pub, License: d.cert.License, Nonce: d.cert.Nonce,
		Counter: d.cert.Counter, NextDeviceKey: next.pub, Time: time.Now()}, d.signer)
	if err != nil {
		t.Fatal(err)
	}
	p := filepath.Join(d.dir, "deactivate.note")
	os.WriteFile(p, msg, 0o644)
	d.signer, d.pub, d.cert = next.signer, next.pub, nil
	return p
}

type issuedOut struct {
	File     string                       `json:"file"`
	Replaced bool                         `json:"replaced"`
	Record   admin.OfflineCertificateJSON `json:"record"`
}

// offlineRoundTrip drives the offline commands with the global flags given (a database, or a
// server and its token): issue, re-issue, list, deactivate and its replay, check.
func offlineRoundTrip(t *testing.T, global ...string) {
	t.Helper()
	cli := func(args ...string) []string { return append(append([]string{}, global...), args...) }
	var lic licenseJSONOut
	runJSON(t, &lic, cli("license", "create", "--seats", "1")...)
	var key admin.OfflineKeyJSON
	runJSON(t, &key, cli("offline", "key")...)
	if !strings.HasPrefix(key.Verifier, key.Name+"+") || key.Held != "database" {
		t.Fatalf("offline key: %+v", key)
	}
	d := newTestDevice(t)
	cert := filepath.Join(d.dir, "cert.note")
	var out issuedOut
	runJSON(t, &out, cli("offline", "issue", "--request", d.requestFile(t, lic.Key), "--ttl", "30d", "--out", cert)...)
	d.install(t, cert, key.Verifier)
	if out.Replaced || out.Record.Counter != 1 || d.cert.NotAfter.Sub(d.cert.Issued) != 30*24*time.Hour {
		t.Fatalf("issue: %+v; certificate %+v", out, d.cert)
	}
	// The file exists now: --out never overwrites.
	runFail(t, 1, "exists", cli("offline", "issue", "--request", d.requestFile(t, lic.Key), "--out", cert)...)
	// A second device finds the one seat taken.
	runFail(t, 1, "maximum activations reached", cli("offline", "issue", "--request", newTestDevice(t).requestFile(t, lic.Key))...)

	cert2 := filepath.Join(d.dir, "cert2.note")
	runJSON(t, &out, cli("offline", "issue", "--request", d.requestFile(t, lic.Key), "--out", cert2)...)
	d.install(t, cert2, key.Verifier)
	if !out.Replaced || d.cert.Counter != 2 {
		t.Fatalf("re-issue: %+v", out)
	}
	var certs []admin.OfflineCertificateJSON
	runItems(t, &certs, cli("offline", "list", "--license", lic.Key)...)
	if len(certs) != 1 || certs[0].Counter != 2 || certs[0].Status != "active" {
		t.Fatalf("offline list: %+v", certs)
	}

	proof := d.proofFile(t)
	var deact admin.DeactivatedJSON
	runJSON(t, &deact, cli("offline", "deactivate", "--proof", proof)...)
	if !deact.Freed || deact.Record.Status != "deactivated" {
		t.Fatalf("deactivate: %+v", deact)
	}
	runFail(t, 1, "deactivated already", cli("offline", "deactivate", "--proof", proof)...)
	var check admin.SeatCheckJSON
	runJSON(t, &check, cli("check")...)
	if !check.OK || check.HeldSeats != 0 {
		t.Fatalf("check: %+v", check)
	}
	// The seat is free for the next device; without --out the answer holds the certificate.
	var full admin.IssuedJSON
	runJSON(t, &full, cli("offline", "issue", "--request", newTestDevice(t).requestFile(t, lic.Key))...)
	if !strings.HasPrefix(full.Certificate, offline.CertificateHeader+"\n") {
		t.Fatalf("issue without --out: %+v", full)
	}
}

// TestOfflineCommandsOnTheDatabase: the offline commands on the database itself (no server).
func TestOfflineCommandsOnTheDatabase(t *testing.T) {
	eachDB(t, func(t *testing.T, dsn string) {
		offlineRoundTrip(t, "--db", dsn)
		runFail(t, 2, "needs --request", "--db", dsn, "offline", "issue")
		runFail(t, 2, "needs --proof", "--db", dsn, "offline", "deactivate")
		runFail(t, 1, "no such file", "--db", dsn, "offline", "issue", "--request", filepath.Join(t.TempDir(), "none"))
		bad := filepath.Join(t.TempDir(), "bad.note")
		os.WriteFile(bad, []byte("not a note\n"), 0o644)
		runFail(t, 1, "offline request", "--db", dsn, "offline", "issue", "--request", bad)
	})
}

// TestOfflineCommandsThroughServer: the same commands sent to a running server, through its
// local socket and over HTTP with an API token; and a key kept in a file.
func TestOfflineCommandsThroughServer(t *testing.T) {
	dsn := sqlstoretest.DSN(t, "sqlite")
	keyFile := filepath.Join(t.TempDir(), "offline.key")
	var kg struct {
		File, Name, Verifier string
	}
	runJSON(t, &kg, "offline", "keygen", "--out", keyFile)
	if fi, err := os.Stat(keyFile); err != nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf("key file: %v %v", fi, err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	var stderr syncBuffer
	done := make(chan int, 1)
	go func() {
		done <- Run(ctx, []string{"serve", "--addr", "127.0.0.1:0", "--db", dsn, "--offline-key-file", keyFile},
			strings.NewReader(""), &syncBuffer{}, &stderr)
	}()
	var addr string
	for deadline := time.Now().Add(10 * time.Second); addr == ""; time.Sleep(20 * time.Millisecond) {
		if m := listenRE.FindStringSubmatch(stderr.String()); m != nil {
			addr = m[1]
		}
		if time.Now().After(deadline) {
			t.Fatalf("serve did not start:\n%s", stderr.String())
		}
	}
	var once sync.Once
	stop := func() { once.Do(func() { cancel(); <-done }) }
	defer stop()

	// Through the socket: the server signs with the key from its file.
	var lic licenseJSONOut
	runJSON(t, &lic, "--db", dsn, "license", "create", "--seats", "2")
	var key admin.OfflineKeyJSON
	runJSON(t, &key, "--db", dsn, "offline", "key")
	if key.Verifier != kg.Verifier || key.Held != "file" {
		t.Fatalf("offline key %+v, want the file's %s", key, kg.Verifier)
	}
	d := newTestDevice(t)
	cert := filepath.Join(d.dir, "cert.note")
	var out issuedOut
	runJSON(t, &out, "--db", dsn, "offline", "issue", "--request", d.requestFile(t, lic.Key), "--out", cert)
	d.install(t, cert, kg.Verifier)

	// Over HTTP with an operator token.
	var tok struct {
		Token string `json:"token"`
	}
	r := run(t, "", "--db", dsn, "token", "create", "--name", "vendor", "--role", "operator")
	if err := json.Unmarshal([]byte(r.stdout), &tok); err != nil || tok.Token == "" {
		t.Fatalf("token create: %v %s %s", err, r.stdout, r.stderr)
	}
	tf := filepath.Join(t.TempDir(), "token")
	os.WriteFile(tf, []byte(tok.Token), 0o600)
	e := newTestDevice(t)
	cert2 := filepath.Join(e.dir, "cert.note")
	runJSON(t, &out, "--server", "http://"+addr, "--token-file", tf, "offline", "issue", "--request", e.requestFile(t, lic.Key), "--out", cert2)
	e.install(t, cert2, kg.Verifier)
	var deact admin.DeactivatedJSON
	runJSON(t, &deact, "--server", "http://"+addr, "--token-file", tf, "offline", "deactivate", "--proof", e.proofFile(t))
	if !deact.Freed {
		t.Fatalf("deactivate over HTTP: %+v", deact)
	}
	var entries []admin.AuditJSON
	runItems(t, &entries, "--db", dsn, "audit", "list", "--action", "offline.issue")
	if len(entries) != 2 || entries[0].Actor.Kind != "socket" || entries[1].Actor.Name != "vendor" {
		t.Fatalf("audit of the issuances: %+v", entries)
	}

	// With the server stopped, the CLI on the database can sign only with the key file.
	stop()
	f := newTestDevice(t)
	runFail(t, 1, "no certificate signing key", "--db", dsn, "offline", "issue", "--request", f.requestFile(t, lic.Key))
	cert3 := filepath.Join(f.dir, "cert.note")
	runJSON(t, &out, "--db", dsn, "offline", "issue", "--request", f.requestFile(t, lic.Key), "--key-file", keyFile, "--out", cert3)
	f.install(t, cert3, kg.Verifier)
	runJSON(t, &deact, "--db", dsn, "offline", "deactivate", "--proof", d.proofFile(t))
	if !deact.Freed {
		t.Fatalf("deactivate on the database: %+v", deact)
	}
}
