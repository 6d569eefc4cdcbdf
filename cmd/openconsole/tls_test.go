package main

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/json"
	"encoding/pem"
	"log/slog"
	"math/big"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"openconsole/sqlstore/sqlstoretest"
)

// testCA is a certificate authority for tests.
type testCA struct {
	cert *x509.Certificate
	key  *ecdsa.PrivateKey
	pool *x509.CertPool
}

func newTestCA(t *testing.T) *testCA {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "OpenConsole test CA"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(24 * time.Hour),
		IsCA: true, BasicConstraintsValid: true, KeyUsage: x509.KeyUsageCertSign}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	cert, _ := x509.ParseCertificate(der)
	pool := x509.NewCertPool()
	pool.AddCert(cert)
	return &testCA{cert, key, pool}
}

// issue writes a server certificate for 127.0.0.1 with the serial number to certFile and its key
// to keyFile, each replaced atomically (written aside, then renamed), as a rotation tool does.
func (ca *testCA) issue(t *testing.T, serial int64, certFile, keyFile string) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(serial), Subject: pkix.Name{CommonName: "127.0.0.1"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(24 * time.Hour),
		IPAddresses: []net.IP{net.ParseIP("127.0.0.1")}, KeyUsage: x509.KeyUsageDigitalSignature,
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca.cert, &key.PublicKey, ca.key)
	if err != nil {
		t.Fatal(err)
	}
	kder, err := x509.MarshalECPrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	write := func(name string, block *pem.Block) {
		tmp := name + ".new"
		if err := os.WriteFile(tmp, pem.EncodeToMemory(block), 0o600); err != nil {
			t.Fatal(err)
		}
		// A later modification time than the file it replaces, even on a coarse clock.
		later := time.Now().Add(time.Duration(serial) * time.Second)
		os.Chtimes(tmp, later, later)
		if err := os.Rename(tmp, name); err != nil {
			t.Fatal(err)
		}
	}
	write(keyFile, &pem.Block{Type: "EC PRIVATE KEY", Bytes: kder})
	write(certFile, &pem.Block{Type: "CERTIFICATE", Bytes: der})
}

// TestTLS: a client that trusts the test CA activates and validates over HTTPS with HTTP/2; the
// certificate files are replaced, and the next connection gets the new certificate from the same
// server, and activates and validates again.
func TestTLS(t *testing.T) {
	certCheckInterval = 0 // look at the files on every handshake
	defer func() { certCheckInterval = time.Second }()
	dir := t.TempDir()
	certFile, keyFile := filepath.Join(dir, "cert.pem"), filepath.Join(dir, "key.pem")
	ca := newTestCA(t)
	ca.issue(t, 101, certFile, keyFile)
	dsn := sqlstoretest.DSN(t, "sqlite")
	p := startInProcess(t, "--addr", "127.0.0.1:0", "--db", dsn, "--tls-cert", certFile, "--tls-key", keyFile)
	if !strings.Contains(p.stderr.String(), "scheme=https") {
		t.Errorf("the listening line does not say https:\n%s", p.stderr.String())
	}
	var lic licenseJSONOut
	runJSON(t, &lic, "--db", dsn, "license", "create", "--seats", "2")

	tr := &http.Transport{TLSClientConfig: &tls.Config{RootCAs: ca.pool}, ForceAttemptHTTP2: true}
	defer tr.CloseIdleConnections()
	c := &http.Client{Transport: tr, Timeout: 10 * time.Second}
	base := "https://" + p.addr
	round := func(wantSerial int64) {
		t.Helper()
		tr.CloseIdleConnections() // a new connection, a new handshake
		resp, err := c.Post(base+"/api/v2/device/license/activate", "application/json", strings.NewReader(`{"licenseKey":"`+lic.Key+`"}`))
		if err != nil {
			t.Fatalf("activate over HTTPS: %v", err)
		}
		resp.Body.Close()
		if resp.StatusCode != 200 || resp.ProtoMajor != 2 {
			t.Fatalf("activate over HTTPS: %d over %s, want 200 over HTTP/2", resp.StatusCode, resp.Proto)
		}
		if got := resp.TLS.PeerCertificates[0].SerialNumber.Int64(); got != wantSerial {
			t.Errorf("server certificate serial %d, want %d", got, wantSerial)
		}
		if resp.TLS.Version < tls.VersionTLS12 {
			t.Errorf("TLS version %x, want 1.2 or later", resp.TLS.Version)
		}
		var sess struct{ ID string }
		json.Unmarshal([]byte(resp.Header.Get("X-Session-Id")), &sess)
		req, _ := http.NewRequest("POST", base+"/api/v2/device/license/validate", nil)
		req.Header.Set("X-Session-Id", sess.ID)
		resp, err = c.Do(req)
		if err != nil {
			t.Fatalf("validate over HTTPS: %v", err)
		}
		var body struct {
			Data struct{ IsValid bool }
		}
		json.NewDecoder(resp.Body).Decode(&body)
		resp.Body.Close()
		if resp.StatusCode != 200 || resp.ProtoMajor != 2 || !body.Data.IsValid {
			t.Errorf("validate over HTTPS: %d over %s, isValid %v; want 200 over HTTP/2, true", resp.StatusCode, resp.Proto, body.Data.IsValid)
		}
	}
	round(101)
	ca.issue(t, 202, certFile, keyFile)
	round(202)

	// Plain HTTP on the TLS listener is refused, not served.
	if resp, err := http.Post("http://"+p.addr+"/api/v2/device/license/validate", "", nil); err == nil {
		resp.Body.Close()
		if resp.StatusCode != http.StatusBadRequest {
			t.Errorf("plain HTTP to the TLS listener: %d, want 400", resp.StatusCode)
		}
	}
	p.stop(t)
	if !strings.Contains(p.stderr.String(), "TLS certificate reloaded") {
		t.Errorf("no reload logged:\n%s", p.stderr.String())
	}
}

// TestTLSBadFiles: serve refuses to start without a loadable pair, and a pair that stops loading
// keeps the previous certificate in service.
func TestTLSBadFiles(t *testing.T) {
	dir := t.TempDir()
	certFile, keyFile := filepath.Join(dir, "cert.pem"), filepath.Join(dir, "key.pem")
	dsn := sqlstoretest.DSN(t, "sqlite")
	runFail(t, 1, "tls:", "serve", "--addr", "127.0.0.1:0", "--db", dsn, "--tls-cert", certFile, "--tls-key", keyFile)
	runFail(t, 2, "--tls-cert and --tls-key go together", "serve", "--db", dsn, "--tls-cert", certFile)

	ca := newTestCA(t)
	ca.issue(t, 7, certFile, keyFile)
	r, err := newCertReloader(certFile, keyFile, discardLogger())
	if err != nil {
		t.Fatal(err)
	}
	r.interval = 0
	os.WriteFile(certFile, []byte("not a certificate"), 0o600)
	later := time.Now().Add(time.Minute)
	os.Chtimes(certFile, later, later)
	c, err := r.GetCertificate(nil)
	if err != nil || c == nil || c.Leaf.SerialNumber.Int64() != 7 {
		t.Errorf("after a broken rotation: %v, %v; want the previous certificate (serial 7)", c, err)
	}
	ca.issue(t, 8, certFile, keyFile)
	if c, _ := r.GetCertificate(nil); c.Leaf.SerialNumber.Int64() != 8 {
		t.Errorf("after a good rotation: serial %d, want 8", c.Leaf.SerialNumber.Int64())
	}
}

func discardLogger() *slog.Logger { return slog.New(slog.DiscardHandler) }
