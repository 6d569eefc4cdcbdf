package admin_test

import (
	"crypto/ed25519"
	"crypto/rand"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"golang.org/x/mod/sumdb/note"

	"openconsole"
	"openconsole/admin"
	"openconsole/client/offline"
	"openconsole/sqlstore/sqlstoretest"
)

// offlineDevice is an air-gapped device: its key and its installed certificate.
type offlineDevice struct {
	signer note.Signer
	pub    ed25519.PublicKey
	cert   *offline.Certificate
}

func newOfflineDevice(t *testing.T) *offlineDevice {
	t.Helper()
	signer, skey, err := offline.GenerateDeviceKey()
	if err != nil {
		t.Fatal(err)
	}
	pub, err := offline.DevicePublicKey(skey)
	if err != nil {
		t.Fatal(err)
	}
	return &offlineDevice{signer: signer, pub: pub}
}

func (d *offlineDevice) request(t *testing.T, key string) string {
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
	return string(msg)
}

func (d *offlineDevice) deactivation(t *testing.T) string {
	t.Helper()
	next := newOfflineDevice(t)
	msg, err := offline.NewDeactivation(&offline.Deactivation{DeviceKey: d.pub, License: d.cert.License, Nonce: d.cert.Nonce,
		Counter: d.cert.Counter, NextDeviceKey: next.pub, Time: time.Now()}, d.signer)
	if err != nil {
		t.Fatal(err)
	}
	return string(msg)
}

// install checks a certificate note against the server's pinned key and keeps it.
func (d *offlineDevice) install(t *testing.T, e *env, msg string) {
	t.Helper()
	var k admin.OfflineKeyJSON
	a := e.as(t, openconsole.RoleReader, "GET", "/offline/key", nil)
	want(t, a, http.StatusOK)
	a.decode(t, &k)
	v, err := note.NewVerifier(k.Verifier)
	if err != nil {
		t.Fatalf("offline key %q: %v", k.Verifier, err)
	}
	c, err := offline.ParseCertificate([]byte(msg), v)
	if err != nil {
		t.Fatalf("certificate does not verify with the pinned key: %v\n%s", err, msg)
	}
	if !c.DeviceKey.Equal(d.pub) {
		t.Fatal("certificate for another device key")
	}
	d.cert = c
}

// TestOfflineAPI: issuance as text and as JSON, re-issue on the same seat, the seats shared with
// online devices, deactivation and its replay, listing, the record, and refusals as problems.
func TestOfflineAPI(t *testing.T) {
	sqlstoretest.Each(t, func(t *testing.T, dsn string) {
		e := newEnv(t, dsn, 1, openconsole.Options{})
		lic := e.createLicense(t, map[string]any{"seats": 2})
		d := newOfflineDevice(t)

		// Only an operator may issue.
		a := e.as(t, openconsole.RoleReader, "POST", "/offline/certificates", d.request(t, lic.Key), "Content-Type", "text/plain")
		want(t, a, http.StatusForbidden)

		a = e.as(t, openconsole.RoleOperator, "POST", "/offline/certificates?ttl=10d", d.request(t, lic.Key), "Content-Type", "text/plain")
		want(t, a, http.StatusCreated)
		if ct := a.header.Get("Content-Type"); !strings.HasPrefix(ct, "text/plain") {
			t.Fatalf("text request answered %q", ct)
		}
		d.install(t, e, string(a.body))
		if got := d.cert.NotAfter.Sub(d.cert.Issued); got != 10*24*time.Hour {
			t.Fatalf("validity %v, want the ttl 240h", got)
		}
		first := d.cert.SessionID

		// JSON in, JSON out; the same device key keeps its seat and session.
		a = e.as(t, openconsole.RoleOperator, "POST", "/offline/certificates", map[string]any{"request": d.request(t, lic.Key), "ttl": "30d"})
		want(t, a, http.StatusCreated)
		var issued admin.IssuedJSON
		a.decode(t, &issued)
		d.install(t, e, issued.Certificate)
		if !issued.Replaced || d.cert.SessionID != first || d.cert.Counter != 2 || issued.Record.Status != "active" {
			t.Fatalf("re-issue: %+v, counter %d, session %s (first %s)", issued.Record, d.cert.Counter, d.cert.SessionID, first)
		}
		if !e.validate(t, 0, d.cert.SessionID) {
			t.Fatal("the certificate's session does not validate online")
		}
		a = e.as(t, openconsole.RoleReader, "GET", "/sessions/"+d.cert.SessionID, nil)
		want(t, a, http.StatusOK)
		var sess admin.SessionJSON
		a.decode(t, &sess)
		if !sess.Live || sess.ActivatedFrom != "offline" || !time.Time(sess.ExpiresAt).Equal(d.cert.NotAfter) {
			t.Fatalf("the certificate's session: %+v, want live until %v", sess, d.cert.NotAfter)
		}

		// One online device and the certificate fill the two seats.
		if code, _ := e.activate(t, 0, lic.Key, ""); code != 200 {
			t.Fatalf("online activation: %d", code)
		}
		if code, reason := e.activate(t, 0, lic.Key, ""); code != 403 || reason != "License found but maximum activations reached" {
			t.Fatalf("third activation: %d %q", code, reason)
		}
		a = e.as(t, openconsole.RoleOperator, "POST", "/offline/certificates", map[string]any{"request": newOfflineDevice(t).request(t, lic.Key)})
		want(t, a, http.StatusConflict)
		if code, detail := a.problem(t); code != openconsole.ECONFLICT || detail != "License found but maximum activations reached" {
			t.Fatalf("certificate on a full license: %s %q", code, detail)
		}

		// Bad input: problem details, nothing changed.
		for name, c := range map[string]struct {
			body   any
			ct     string
			status int
		}{
			"garbage note":  {"hello", "text/plain", 400},
			"empty":         {"", "text/plain", 400},
			"tampered":      {strings.Replace(d.request(t, lic.Key), "counter 2", "counter 3", 1), "text/plain", 400},
			"no request":    {map[string]any{"ttl": "1d"}, "", 400},
			"wrong type":    {map[string]any{"request": 5}, "", 400},
			"unknown field": {map[string]any{"request": "x", "seats": 1}, "", 400},
			"bad ttl":       {map[string]any{"request": d.request(t, lic.Key), "ttl": "soon"}, "", 400},
			"short ttl":     {map[string]any{"request": d.request(t, lic.Key), "ttl": "1m"}, "", 400},
			"unknown key":   {newOfflineDevice(t).request(t, "NO-SUCH-KEY"), "text/plain", 404},
		} {
			var hdr []string
			if c.ct != "" {
				hdr = []string{"Content-Type", c.ct}
			}
			a := e.as(t, openconsole.RoleOperator, "POST", "/offline/certificates", c.body, hdr...)
			if a.status != c.status {
				t.Errorf("%s: %d, want %d: %s", name, a.status, c.status, a.body)
				continue
			}
			a.problem(t)
		}
		a = e.as(t, openconsole.RoleOperator, "POST", "/offline/deactivations", map[string]any{"proof": "nonsense"})
		want(t, a, http.StatusBadRequest)

		// The deactivation frees the seat once; its replay is 409 and frees nothing.
		proof := d.deactivation(t)
		a = e.as(t, openconsole.RoleOperator, "POST", "/offline/deactivations", proof, "Content-Type", "text/plain")
		want(t, a, http.StatusOK)
		var deact admin.DeactivatedJSON
		a.decode(t, &deact)
		if !deact.Freed || deact.Record.Status != "deactivated" || e.validate(t, 0, first) {
			t.Fatalf("deactivation: %+v; session valid %v", deact, e.validate(t, 0, first))
		}
		a = e.as(t, openconsole.RoleOperator, "POST", "/offline/deactivations", map[string]any{"proof": proof})
		want(t, a, http.StatusConflict)
		if code, _ := a.problem(t); code != openconsole.ECONFLICT {
			t.Fatalf("replay: code %s", code)
		}
		if code, _ := e.activate(t, 0, lic.Key, ""); code != 200 {
			t.Fatalf("activation on the freed seat: %d", code)
		}
		if code, _ := e.activate(t, 0, lic.Key, ""); code != 403 {
			t.Fatalf("the replay freed a second seat: %d", code)
		}
		a = e.as(t, openconsole.RoleReader, "GET", "/seats/check", nil)
		want(t, a, http.StatusOK)
		var check admin.SeatCheckJSON
		a.decode(t, &check)
		if !check.OK {
			t.Fatalf("seat check: %+v", check)
		}

		// The listing and the record.
		a = e.as(t, openconsole.RoleReader, "GET", "/offline/certificates?license="+lic.Key, nil)
		want(t, a, http.StatusOK)
		var page admin.Page[admin.OfflineCertificateJSON]
		a.decode(t, &page)
		if len(page.Items) != 1 || page.Items[0].Status != "deactivated" || page.Items[0].Counter != 2 {
			t.Fatalf("listing: %+v", page.Items)
		}
		for action, n := range map[string]int{"offline.issue": 2, "offline.deactivate": 1} {
			a = e.as(t, openconsole.RoleReader, "GET", "/audit?action="+action, nil)
			want(t, a, http.StatusOK)
			var audit admin.Page[admin.AuditJSON]
			a.decode(t, &audit)
			if len(audit.Items) != n {
				t.Errorf("audit %s: %d entries, want %d", action, len(audit.Items), n)
			}
			for _, it := range audit.Items {
				if strings.Contains(string(a.body), lic.Key) || it.Actor.Name != "test-operator" {
					t.Errorf("audit entry %+v names the key or the wrong actor", it)
				}
			}
		}

		// Revoking the license: no re-issue, and its certificates do not validate online.
		other := e.createLicense(t, map[string]any{"seats": 1})
		o := newOfflineDevice(t)
		a = e.as(t, openconsole.RoleOperator, "POST", "/offline/certificates", o.request(t, other.Key), "Content-Type", "text/plain")
		want(t, a, http.StatusCreated)
		o.install(t, e, string(a.body))
		want(t, e.as(t, openconsole.RoleOperator, "POST", "/licenses/"+other.Key+"/revoke", nil), http.StatusOK)
		if e.validate(t, 0, o.cert.SessionID) {
			t.Fatal("a certificate of a revoked license validates")
		}
		a = e.as(t, openconsole.RoleOperator, "POST", "/offline/certificates", o.request(t, other.Key), "Content-Type", "text/plain")
		want(t, a, http.StatusConflict)
	})
}

// TestOfflineConcurrentIssuance: 200 requests from 200 devices, sent at once to two servers on
// one database, never take more than the license's seats, and the bookkeeping agrees; one device's
// concurrent re-issues share one seat, and its concurrent deactivations free it once.
func TestOfflineConcurrentIssuance(t *testing.T) {
	const seats, devices = 7, 200
	sqlstoretest.Each(t, func(t *testing.T, dsn string) {
		e := newEnv(t, dsn, 2, openconsole.Options{})
		lic := e.createLicense(t, map[string]any{"seats": seats})
		reqs := make([]string, devices)
		for i := range reqs {
			reqs[i] = newOfflineDevice(t).request(t, lic.Key)
		}
		var created, full atomic.Int64
		var wg sync.WaitGroup
		start := make(chan struct{})
		for i, req := range reqs {
			wg.Add(1)
			go func() {
				defer wg.Done()
				<-start
				a := e.call(t, i%2, "POST", "/offline/certificates", e.tokens[openconsole.RoleOperator], req, "Content-Type", "text/plain")
				switch a.status {
				case http.StatusCreated:
					created.Add(1)
				case http.StatusConflict:
					full.Add(1)
				default:
					t.Errorf("issuance: %d %s", a.status, a.body)
				}
			}()
		}
		close(start)
		wg.Wait()
		if created.Load() != seats || full.Load() != devices-seats {
			t.Fatalf("%d issued, %d refused; want %d and %d", created.Load(), full.Load(), seats, devices-seats)
		}
		a := e.as(t, openconsole.RoleReader, "GET", "/licenses/"+lic.Key, nil)
		var l admin.LicenseJSON
		a.decode(t, &l)
		a = e.as(t, openconsole.RoleReader, "GET", "/seats/check", nil)
		var check admin.SeatCheckJSON
		a.decode(t, &check)
		if l.Seats.Taken != seats || !check.OK {
			t.Fatalf("taken %d, check %+v", l.Seats.Taken, check)
		}
		if code, _ := e.activate(t, 1, lic.Key, ""); code != 403 {
			t.Fatalf("online activation on a license full of certificates: %d", code)
		}

		// One device asking 20 times at once, on both servers: one seat, one session, and each
		// answer a certificate with its own counter.
		one := e.createLicense(t, map[string]any{"seats": 1})
		d := newOfflineDevice(t)
		notes := make([]string, 20)
		for i := range notes {
			wg.Add(1)
			go func() {
				defer wg.Done()
				a := e.call(t, i%2, "POST", "/offline/certificates", e.tokens[openconsole.RoleOperator], d.request(t, one.Key), "Content-Type", "text/plain")
				if a.status != http.StatusCreated {
					t.Errorf("re-issue: %d %s", a.status, a.body)
				}
				notes[i] = string(a.body)
			}()
		}
		wg.Wait()
		counters, sessions := map[uint64]bool{}, map[string]bool{}
		for _, n := range notes {
			d.install(t, e, n)
			counters[d.cert.Counter], sessions[d.cert.SessionID] = true, true
		}
		a = e.as(t, openconsole.RoleReader, "GET", "/licenses/"+one.Key, nil)
		a.decode(t, &l)
		if len(counters) != 20 || len(sessions) != 1 || l.Seats.Taken != 1 {
			t.Fatalf("20 concurrent re-issues: %d counters, %d sessions, %d seats taken; want 20, 1, 1", len(counters), len(sessions), l.Seats.Taken)
		}

		// The device's proof sent 20 times at once: one frees the seat, every other one is 409.
		proof := d.deactivation(t)
		var freed, replays atomic.Int64
		for i := 0; i < 20; i++ {
			wg.Add(1)
			go func() {
				defer wg.Done()
				a := e.call(t, i%2, "POST", "/offline/deactivations", e.tokens[openconsole.RoleOperator], proof, "Content-Type", "text/plain")
				switch a.status {
				case http.StatusOK:
					freed.Add(1)
				case http.StatusConflict:
					replays.Add(1)
				default:
					t.Errorf("deactivation: %d %s", a.status, a.body)
				}
			}()
		}
		wg.Wait()
		a = e.as(t, openconsole.RoleReader, "GET", "/licenses/"+one.Key, nil)
		a.decode(t, &l)
		if freed.Load() != 1 || replays.Load() != 19 || l.Seats.Taken != 0 {
			t.Fatalf("20 concurrent deactivations: %d freed, %d refused, %d taken; want 1, 19, 0", freed.Load(), replays.Load(), l.Seats.Taken)
		}
		a = e.as(t, openconsole.RoleReader, "GET", "/seats/check", nil)
		a.decode(t, &check)
		if !check.OK {
			t.Fatalf("check: %+v", check)
		}
	})
}
