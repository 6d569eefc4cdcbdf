package api_test

// FuzzHandler feeds the whole console API, over a real SQLite store, requests built from random
// parts: method, path, the headers clients send (X-Session-Id, Authorization, Content-Type, Origin)
// and body. Every response must pass checkWire (wire_test.go): no panic and no 5xx, the envelope
// with statusCode equal to the HTTP status and statusText present, Content-Type application/json on
// every body, a 204 empty, and X-Session-Id only where a live session is known, never on a 403.
//
// The seeds cover every endpoint. So that the fuzzer can reach the paths behind a valid session or
// token, the placeholders {SID}, {JWT} and {VJWT} in a header or the body are replaced by a live
// session id, a user's token and a vendor's token of this run. Committed inputs are under
// testdata/fuzz/FuzzHandler; .ci/fuzz runs the target for a short time.

import (
	"bytes"
	"context"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"openconsole"
	"openconsole/api"
	"openconsole/sqlstore"
)

// Fixtures of the fuzz target: fixed keys, so that seeds can name them.
const (
	fuzzKey     = "FUZZ-KEY-0001"   // 3 seats, owned by the user fuzz-u1
	fuzzRevoked = "FUZZ-KEY-REVOKD" // revoked
	fuzzSerial  = "SN-FUZZ-0001"    // a registered serial number
	fuzzUser    = "fuzz-u1"
	fuzzPass    = "fuzz-pw-1"
	fuzzVendor  = "fuzz-m1"
)

// Bits of the flags argument: send a header even when its value is empty, and send the body
// chunked (without Content-Length).
const (
	sendSID = 1 << iota
	sendAuth
	sendCType
	sendOrigin
	sendChunked
)

// syncBuf is a log sink the fuzz function can read and reset.
type syncBuf struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuf) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuf) take() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := s.b.String()
	s.b.Reset()
	return out
}

// newFuzzConsole starts the console on a fresh SQLite file with the fixtures, and returns it with
// the replacer of the placeholders.
func newFuzzConsole(f *testing.F, logs io.Writer) (*consoleEnv, *strings.Replacer) {
	ctx := context.Background()
	dsn := "sqlite:" + filepath.Join(f.TempDir(), "fuzz.db")
	// The abuse limits would soon refuse every activation and login from the fuzzer's one address
	// unchecked, hiding the handlers behind them; they have tests of their own.
	opts := openconsole.Options{Logger: slog.New(slog.NewTextHandler(logs, nil)), Limits: &openconsole.Limits{}}
	st, err := sqlstore.Open(ctx, dsn, sqlstore.Options{})
	if err != nil {
		f.Fatalf("open store: %v", err)
	}
	svc, err := openconsole.NewService(ctx, st, opts)
	if err != nil {
		st.Close()
		f.Fatalf("new service: %v", err)
	}
	e := &consoleEnv{dsn: dsn, opts: opts, store: st, svc: svc, seen: make(map[string]int),
		srv: httptest.NewServer(api.New(svc, opts.Logger)),
		hc: &http.Client{
			Timeout:       30 * time.Second,
			CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
		}}
	f.Cleanup(e.stop)

	u1, err := svc.CreateUser(ctx, openconsole.UserInput{Username: fuzzUser, Password: fuzzPass})
	if err != nil {
		f.Fatal(err)
	}
	m1, err := svc.CreateUser(ctx, openconsole.UserInput{Username: fuzzVendor, Password: "fuzz-pw-m", Vendor: true})
	if err != nil {
		f.Fatal(err)
	}
	for _, in := range []openconsole.LicenseInput{{Key: fuzzKey, Owner: fuzzUser, Seats: 3}, {Key: fuzzRevoked, Seats: 1}} {
		if _, err := svc.CreateLicense(ctx, in); err != nil {
			f.Fatal(err)
		}
	}
	if _, err := svc.RevokeLicense(ctx, fuzzRevoked, 0); err != nil {
		f.Fatal(err)
	}
	if _, err := svc.RegisterSerial(ctx, m1, openconsole.SerialInput{SerialNumber: fuzzSerial, Model: "IPC-xyz",
		ManufacturerName: "Example Manufacturer", ManufacturerID: 791, ManufactureDate: "2025-01-01"}); err != nil {
		f.Fatal(err)
	}
	act, err := svc.Activate(ctx, openconsole.ActivateInput{LicenseKey: fuzzKey})
	if err != nil {
		f.Fatal(err)
	}
	e.issued = append(e.issued, wireSession{act.Session.ID, act.Session.Timestamp})
	tok, _ := svc.IssueToken(u1.ID)
	vtok, _ := svc.IssueToken(m1.ID)
	return e, strings.NewReplacer("{SID}", act.Session.ID, "{JWT}", tok, "{VJWT}", vtok)
}

// validHeaderValue reports whether net/http will send v as a header value (RFC 7230 field-value:
// no control characters but tab); a server never sees anything else.
func validHeaderValue(v string) bool {
	for i := 0; i < len(v); i++ {
		if c := v[i]; c < ' ' && c != '\t' || c == 0x7f {
			return false
		}
	}
	return true
}

// FuzzHandler is the whole-handler fuzz target described at the top of this file.
func FuzzHandler(f *testing.F) {
	type seed struct {
		method, path, sid, auth, ctype, origin, body string
		flags                                        uint8
	}
	reg := `{"manufacturer":{"name":"Example Manufacturer","id":791},"model":"IPC-xyz","serial_number":"SN-FUZZ-9","manufacture_date":"2025-01-01"}`
	for _, s := range []seed{
		// Device activation in every mode and spelling the clients use (§1.3, §2.3).
		{"POST", pathActivate, "", "", ctJSON, "", `{"licenseKey":"` + fuzzKey + `"}`, 0},
		{"POST", pathActivate, "{SID}", "", ctJSON, "", `{"licenseKey":"` + fuzzKey + `"}`, 0},
		{"POST", "//api/v2/device/license/activate", "{SID}", "", ctForm, "", `{"licenseKey":"` + fuzzKey + `"}`, 0},
		{"POST", pathActivate, "{SID}", "Bearer {JWT}", ctJSON, "", "null", 0},
		{"POST", pathActivate, "", "Bearer {JWT}", ctJSON, "", "{}", 0},
		{"POST", pathActivate, "", "Bearer", "", "", "", sendAuth},
		{"POST", pathActivate, "", "", "", "", "", sendSID},
		{"POST", pathActivate, "", "", ctJSON, "", `{"licenseKey":"` + fuzzRevoked + `"}`, 0},
		{"POST", pathActivate, "", "", ctJSON, "", `{"licenseKey":"` + fuzzSerial + `"}`, 0},
		{"POST", pathActivate, "not-a-uuid", "Basic Zm9vOmJhcg==", ctJSON, "", `{"licenseKey":42}`, 0},
		{"POST", pathActivate, "{SID}", "Bearer {VJWT}", ctJSON, "", `{"licenseKey":" ` + fuzzKey + ` ","x":[1,2]}`, sendChunked},
		// Device validate (§2.4).
		{"POST", pathValidate, "{SID}", "", "", "", "", 0},
		{"POST", pathValidate, "{SID}", "Bearer {JWT}", ctForm, "https://device.local", "", 0},
		{"POST", pathValidate, "", "", "", "", "", sendSID},
		{"POST", pathValidate, "74C3B620-6048-4BFD-9BF7-C9857A001694", "", "", "", "garbage", 0},
		{"POST", "/api/v2/device/license/validate/", " {SID} ", "", "", "", "", 0},
		// Login and token validation (§2.1, §2.2).
		{"POST", pathLogin, "", "", ctJSON, "https://device.local", `{"username":"` + fuzzUser + `","password":"` + fuzzPass + `"}`, 0},
		{"POST", pathLogin, "", "", ctJSON, "", `{"username":"` + fuzzUser + `","password":"wrong","issueJWT":false}`, 0},
		{"POST", pathLogin, "", "", ctJSON, "", `{"username":"","password":1}`, 0},
		{"POST", pathAuthValidate, "", "", ctJSON, "", `{"jwt":{"token":"{JWT}"}}`, 0},
		{"POST", pathAuthValidate, "", "", ctJSON, "", `{"jwt":{"token":"a.b.c"}}`, 0},
		{"POST", pathAuthValidate, "", "", ctJSON, "", `{"jwt":"{JWT}"}`, 0},
		// Serial registration (§2.5).
		{"POST", pathRegister, "", "Bearer {VJWT}", ctJSON, "", reg, 0},
		{"POST", pathRegister, "", "Bearer {JWT}", ctJSON, "", reg, 0},
		{"POST", pathRegister, "", "Bearer {VJWT}", ctJSON, "", `{"manufacturer":{"name":"x","id":-1},"model":"","serial_number":"a b","manufacture_date":"2025-02-30"}`, 0},
		{"POST", pathRegister, "", "", ctJSON, "", reg, 0},
		// Routing: CORS preflight, unknown paths, wrong methods, odd spellings (§1.1, §1.6, §1.8).
		{"OPTIONS", pathActivate, "", "", "", "https://device.local", "", 0},
		{"GET", pathActivate, "{SID}", "", "", "", "", 0},
		{"HEAD", pathValidate, "", "", "", "", "", 0},
		{"DELETE", "/api/v2/device/license", "", "Bearer {VJWT}", "", "", "", 0},
		// Apps and products (§2.6 to §2.9), whichever of them the server has.
		{"GET", "/api/v2/manifests/tech.flecs.flunder/3.0.0?max_manifest_version=3.0.0", "", "", "", "", "", sendSID},
		{"GET", "/api/v2/manifests/tech.flecs.flunder/3.0.0?manifest_version=x.y", "{SID}", "", "", "", "", 0},
		{"POST", "/api/v2/tokens", "{SID}", "", ctForm, "", `{"app":"tech.flecs.flunder","version":"3.0.0"}`, 0},
		{"POST", "/api/v2/tokens", "", "", ctJSON, "", `{"app":1}`, sendSID},
		{"GET", "/api/v2/products?store_id=abc", "", "", "", "https://device.local", "", 0},
		{"GET", "/api/v2/products/apps?store_id=1", "", "Bearer {JWT}", "", "", "", 0},
		{"POST", "/api/v2/%64evice/license/%2Factivate", "", "", "", "", "", 0},
		{"POST", "/../api/v2/./device/license/activate", "", "", "", "", "", 0},
		{"PATCH", "/", "", "", "", "null", "", sendOrigin},
	} {
		f.Add(s.method, s.path, s.sid, s.auth, s.ctype, s.origin, []byte(s.body), s.flags)
	}

	logs := &syncBuf{}
	e, subst := newFuzzConsole(f, logs)
	f.Fuzz(func(t *testing.T, method, path, sid, auth, ctype, origin string, body []byte, flags uint8) {
		logs.take()
		defer func() {
			if t.Failed() {
				t.Logf("server log:\n%s", logs.take())
			}
		}()
		sid, auth = subst.Replace(sid), subst.Replace(auth)
		body = []byte(subst.Replace(string(body)))
		if !strings.HasPrefix(path, "/") {
			path = "/" + path // never let the path change the host the request goes to
		}
		var rd io.Reader
		if len(body) > 0 {
			rd = bytes.NewReader(body)
			if flags&sendChunked != 0 {
				rd = struct{ io.Reader }{rd}
			}
		}
		req, err := http.NewRequest(method, e.srv.URL+path, rd)
		if err != nil || req.URL.Host != strings.TrimPrefix(e.srv.URL, "http://") || method == http.MethodConnect {
			return // no client can send this
		}
		if strings.IndexFunc(req.URL.RequestURI(), func(r rune) bool { return r <= ' ' || r == 0x7f }) >= 0 {
			// net/http's client puts a raw query on the request line unescaped; with a space or a
			// control character in it the line is not HTTP, and net/http's server refuses it with
			// its own plain-text 400 before any handler runs.
			return
		}
		c := call{method: method, path: path, body: string(body), chunked: flags&sendChunked != 0}
		for i, h := range []struct{ name, value string }{
			{"X-Session-Id", sid}, {"Authorization", auth}, {"Content-Type", ctype}, {"Origin", origin},
		} {
			if h.value == "" && flags&(1<<i) == 0 {
				continue
			}
			if !validHeaderValue(h.value) {
				return // net/http refuses to send it; a server never sees it
			}
			// Whitespace around a field value is not part of it (RFC 9110 §5.5): the server sees
			// the trimmed value, and so must checkWire.
			h.value = strings.Trim(h.value, " \t")
			req.Header[h.name] = []string{h.value}
			c.header = append(c.header, h.name+": "+h.value)
		}
		resp, err := e.hc.Do(req)
		if err != nil {
			t.Fatalf("%s %q: %v", method, path, err)
		}
		b, err := io.ReadAll(resp.Body)
		resp.Body.Close()
		if err != nil {
			t.Fatalf("%s %q: read body: %v", method, path, err)
		}
		r := reply{status: resp.StatusCode, header: resp.Header, body: b}
		e.checkWire(t, req, c, &r)
	})
}
