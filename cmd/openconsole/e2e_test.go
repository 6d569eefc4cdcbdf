//go:build unix

package main

import (
	"bufio"
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"runtime/debug"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"openconsole/sqlstore/sqlstoretest"
)

// The binary under test is built once per test run, on first use, into a directory TestMain removes.
var binary struct {
	once sync.Once
	dir  string
	path string
	err  error
}

func TestMain(m *testing.M) {
	code := m.Run()
	if binary.dir != "" {
		os.RemoveAll(binary.dir)
	}
	os.Exit(code)
}

// raceEnabled reports whether this test binary was built with -race; the binary under test is then
// built the same way, so that a data race in the server fails its exit-code check.
func raceEnabled() bool {
	bi, ok := debug.ReadBuildInfo()
	if !ok {
		return false
	}
	for _, s := range bi.Settings {
		if s.Key == "-race" {
			return s.Value == "true"
		}
	}
	return false
}

// buildBinary returns the path of the openconsole binary built from this package.
func buildBinary(t *testing.T) string {
	t.Helper()
	if testing.Short() {
		t.Skip("the end-to-end test builds and runs the binary; skipped with -short")
	}
	binary.once.Do(func() {
		gotool, err := exec.LookPath("go")
		if err != nil {
			binary.err = err
			return
		}
		if binary.dir, binary.err = os.MkdirTemp("", "openconsole-e2e-"); binary.err != nil {
			return
		}
		binary.path = filepath.Join(binary.dir, "openconsole")
		args := []string{"build", "-o", binary.path}
		if raceEnabled() {
			args = append(args, "-race")
		}
		out, err := exec.Command(gotool, append(args, ".")...).CombinedOutput()
		if err != nil {
			binary.err = fmt.Errorf("go %s: %v\n%s", strings.Join(args, " "), err, out)
		}
	})
	if binary.err != nil {
		t.Fatalf("build openconsole: %v", binary.err)
	}
	return binary.path
}

// childEnv is the environment of the child processes: the database is always named by --db, and
// a race-enabled child exits at once rather than after the race runtime's default 1s grace (a
// race still makes it exit non-zero).
func childEnv() []string {
	var env []string
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, "OPENCONSOLE_DB=") && !strings.HasPrefix(kv, "GORACE=") {
			env = append(env, kv)
		}
	}
	return append(env, "GORACE=atexit_sleep_ms=0")
}

// server is a running `openconsole serve` child process.
type server struct {
	cmd  *exec.Cmd
	url  string // http://127.0.0.1:PORT
	done chan struct{}
	err  error // from Wait, valid once done is closed

	mu  sync.Mutex
	log bytes.Buffer // its stderr
	out bytes.Buffer // its stdout
}

func (s *server) logText() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.log.String()
}

// startServer starts `openconsole serve` on a free port over dsn and waits until it logs its address.
// The process is killed when the test ends, should the test not have stopped it.
func startServer(t *testing.T, bin, dsn string) *server {
	t.Helper()
	s := &server{done: make(chan struct{})}
	s.cmd = exec.Command(bin, "serve", "--addr", "127.0.0.1:0", "--db", dsn)
	s.cmd.Env = childEnv()
	s.cmd.Stdout = &lockedWriter{&s.mu, &s.out}
	stderr, err := s.cmd.StderrPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := s.cmd.Start(); err != nil {
		t.Fatalf("start server: %v", err)
	}
	addr := make(chan string, 1)
	go func() {
		sc := bufio.NewScanner(stderr)
		sc.Buffer(make([]byte, 64<<10), 1<<20)
		for sc.Scan() {
			line := sc.Text()
			s.mu.Lock()
			s.log.WriteString(line + "\n")
			s.mu.Unlock()
			if m := listenRE.FindStringSubmatch(line); m != nil {
				select {
				case addr <- m[1]:
				default:
				}
			}
		}
		io.Copy(io.Discard, stderr)
		// Wait only after stderr is drained, as os/exec requires.
		s.err = s.cmd.Wait()
		close(s.done)
	}()
	t.Cleanup(func() {
		select {
		case <-s.done:
		default:
			s.cmd.Process.Kill()
			<-s.done
		}
		if t.Failed() {
			t.Logf("server log:\n%s", s.logText())
		}
	})
	select {
	case a := <-addr:
		s.url = "http://" + a
	case <-s.done:
		t.Fatalf("server exited before listening (%v); log:\n%s", s.err, s.logText())
	case <-time.After(15 * time.Second):
		t.Fatalf("server did not log its address within 15s; log:\n%s", s.logText())
	}
	return s
}

// stop sends SIGTERM and checks that the server exits 0, having logged its shutdown.
func (s *server) stop(t *testing.T) {
	t.Helper()
	if err := s.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatalf("SIGTERM: %v", err)
	}
	select {
	case <-s.done:
	case <-time.After(10 * time.Second):
		t.Fatalf("server still running 10s after SIGTERM; log:\n%s", s.logText())
	}
	if s.err != nil {
		t.Errorf("server exit after SIGTERM: %v, want exit code 0", s.err)
	}
	if log := s.logText(); !strings.Contains(log, `msg="shutting down"`) {
		t.Errorf("server did not log its shutdown; log:\n%s", log)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.out.Len() != 0 {
		t.Errorf("server wrote on stdout: %q", s.out.String())
	}
}

type lockedWriter struct {
	mu *sync.Mutex
	w  io.Writer
}

func (l *lockedWriter) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.w.Write(p)
}

// e2e drives one database with the CLI binary and HTTP.
type e2e struct {
	bin, dsn string
	secrets  []string // must never appear in any output
	client   *http.Client
}

// cliRun runs the CLI binary on the test database and returns its exit code and output.
func (e *e2e) cliRun(t *testing.T, stdin string, args ...string) (int, string, string) {
	t.Helper()
	cmd := exec.Command(e.bin, append([]string{"--db", e.dsn}, args...)...)
	cmd.Env = childEnv()
	cmd.Stdin = strings.NewReader(stdin)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	err := cmd.Run()
	code := 0
	if err != nil {
		ee, ok := err.(*exec.ExitError)
		if !ok {
			t.Fatalf("run openconsole %s: %v", strings.Join(args, " "), err)
		}
		code = ee.ExitCode()
	}
	out := stdout.String() + stderr.String()
	for _, s := range append(e.secrets, "$argon2") {
		if strings.Contains(out, s) {
			t.Errorf("openconsole %s printed a secret:\n%s", strings.Join(args, " "), out)
		}
	}
	return code, stdout.String(), stderr.String()
}

// cli runs a CLI command that must succeed and decodes its JSON output into v.
func (e *e2e) cli(t *testing.T, v any, stdin string, args ...string) {
	t.Helper()
	code, stdout, stderr := e.cliRun(t, stdin, args...)
	if code != 0 {
		t.Fatalf("openconsole %s: exit code %d, want 0; stderr:\n%s", strings.Join(args, " "), code, stderr)
	}
	if err := json.Unmarshal([]byte(stdout), v); err != nil {
		t.Fatalf("openconsole %s: bad JSON on stdout: %v\n%s", strings.Join(args, " "), err, stdout)
	}
}

// cliItems runs a listing command and decodes its items into v.
func (e *e2e) cliItems(t *testing.T, v any, args ...string) {
	t.Helper()
	var page struct {
		Items      json.RawMessage `json:"items"`
		NextCursor *string         `json:"nextCursor"`
	}
	e.cli(t, &page, "", args...)
	if err := json.Unmarshal(page.Items, v); err != nil {
		t.Fatalf("openconsole %s: bad items: %v\n%s", strings.Join(args, " "), err, page.Items)
	}
}

type response struct {
	status int
	header http.Header
	body   []byte
}

// envelope is both response envelopes of the wire contract (§1.2).
type envelope struct {
	StatusCode *int            `json:"statusCode"`
	StatusText *string         `json:"statusText"`
	Reason     string          `json:"reason"`
	Data       json.RawMessage `json:"data"`
}

type wireSession struct {
	ID        string `json:"id"`
	Timestamp int64  `json:"timestamp"`
}

// post sends a POST to the server with body (nil: none) and the given headers.
func (e *e2e) post(t *testing.T, srv *server, path string, body *string, header map[string]string) response {
	t.Helper()
	var rd io.Reader
	if body != nil {
		rd = strings.NewReader(*body)
	}
	req, err := http.NewRequest("POST", srv.url+path, rd)
	if err != nil {
		t.Fatal(err)
	}
	for k, v := range header {
		req.Header.Set(k, v)
	}
	resp, err := e.client.Do(req)
	if err != nil {
		t.Fatalf("POST %s: %v", path, err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatalf("POST %s: read body: %v", path, err)
	}
	r := response{resp.StatusCode, resp.Header, b}
	// Every body is an envelope whose statusCode is the HTTP status (§1.2); a 204 has none.
	if r.status == http.StatusNoContent {
		if len(b) != 0 {
			t.Errorf("POST %s: 204 with body %q", path, b)
		}
		return r
	}
	var env envelope
	if err := json.Unmarshal(b, &env); err != nil || env.StatusCode == nil || *env.StatusCode != r.status ||
		env.StatusText == nil || *env.StatusText == "" || !strings.Contains(resp.Header.Get("Content-Type"), "application/json") {
		t.Errorf("POST %s: %d %s (Content-Type %q) is not a well-formed envelope", path, r.status, b, resp.Header.Get("Content-Type"))
	}
	return r
}

func jsonBody(s string) *string { return &s }

// sessionHeader parses the X-Session-Id response header, which must hold both id and timestamp.
func sessionHeader(t *testing.T, r response) wireSession {
	t.Helper()
	h := r.header.Get("X-Session-Id")
	var m map[string]json.RawMessage
	var s wireSession
	if err := json.Unmarshal([]byte(h), &m); err != nil || m["id"] == nil || m["timestamp"] == nil || json.Unmarshal([]byte(h), &s) != nil {
		t.Fatalf("X-Session-Id header %q: want a JSON object with id and timestamp", h)
	}
	return s
}

// activate posts an activation and checks the answer has the wanted status. On 200 it checks the
// body and header agree and returns the new session; on 204 it returns the header's session.
func (e *e2e) activate(t *testing.T, srv *server, body *string, header map[string]string, want int) (wireSession, string) {
	t.Helper()
	r := e.post(t, srv, "/api/v2/device/license/activate", body, header)
	if r.status != want {
		t.Fatalf("activate %v %v: %d %s, want %d", deref(body), header, r.status, r.body, want)
	}
	switch want {
	case http.StatusOK:
		var data struct {
			SessionID  *wireSession `json:"sessionId"`
			LicenseKey string       `json:"licenseKey"`
		}
		var env envelope
		if err := json.Unmarshal(r.body, &env); err != nil || json.Unmarshal(env.Data, &data) != nil || data.SessionID == nil {
			t.Fatalf("activate 200 body %s: want data.sessionId and data.licenseKey", r.body)
		}
		if h := sessionHeader(t, r); h != *data.SessionID {
			t.Errorf("activate 200: header session %+v, body session %+v; want them equal", h, *data.SessionID)
		}
		if !isLowerUUID(data.SessionID.ID) {
			t.Errorf("activate 200: session id %q is not a lower-case UUID", data.SessionID.ID)
		}
		return *data.SessionID, data.LicenseKey
	case http.StatusNoContent:
		return sessionHeader(t, r), ""
	default:
		if r.header.Get("X-Session-Id") != "" {
			t.Errorf("activate %d carries X-Session-Id %q", r.status, r.header.Get("X-Session-Id"))
		}
		var env envelope
		json.Unmarshal(r.body, &env)
		return wireSession{}, env.Reason
	}
}

func deref(s *string) string {
	if s == nil {
		return "<no body>"
	}
	return *s
}

// validate reports the isValid answer for session id.
func (e *e2e) validate(t *testing.T, srv *server, id string) bool {
	t.Helper()
	r := e.post(t, srv, "/api/v2/device/license/validate", nil, map[string]string{"X-Session-Id": id})
	var data struct {
		IsValid *bool `json:"isValid"`
	}
	var env envelope
	if r.status != http.StatusOK || json.Unmarshal(r.body, &env) != nil || json.Unmarshal(env.Data, &data) != nil || data.IsValid == nil {
		t.Fatalf("validate %s: %d %s, want 200 with data.isValid", id, r.status, r.body)
	}
	if *data.IsValid {
		if h := sessionHeader(t, r); h.ID != id {
			t.Errorf("validate %s: header session id %s", id, h.ID)
		}
	} else if h := r.header.Get("X-Session-Id"); h != "" {
		t.Errorf("validate %s: isValid false with X-Session-Id %q", id, h)
	}
	return *data.IsValid
}

// waitInvalid polls validate until id is no longer valid. The server may answer from a cache for
// up to a second, so it allows two.
func (e *e2e) waitInvalid(t *testing.T, srv *server, id string) {
	t.Helper()
	deadline := time.Now().Add(2 * time.Second)
	for e.validate(t, srv, id) {
		if time.Now().After(deadline) {
			t.Errorf("session %s still valid 2s after its revocation", id)
			return
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// isLowerUUID reports whether id is a UUID in canonical lower-case form, as CPP2 requires.
func isLowerUUID(id string) bool {
	if len(id) != 36 {
		return false
	}
	for i, c := range id {
		switch {
		case i == 8 || i == 13 || i == 18 || i == 23:
			if c != '-' {
				return false
			}
		case (c < '0' || c > '9') && (c < 'a' || c > 'f'):
			return false
		}
	}
	return true
}

// TestEndToEnd runs the built binary: the server as one process, the admin CLI as others on the
// same database while it runs, devices over HTTP; then a SIGTERM and a restart on the same data.
func TestEndToEnd(t *testing.T) {
	bin := buildBinary(t)
	for _, engine := range sqlstoretest.Engines() {
		t.Run(engine, func(t *testing.T) {
			const password = "e2e-Pass-w0rd!"
			e := &e2e{bin: bin, dsn: sqlstoretest.DSN(t, engine), secrets: []string{password},
				client: &http.Client{Timeout: 10 * time.Second}}
			srv := startServer(t, bin, e.dsn)
			var issued []int64 // timestamps of every session issued, in order
			issue := func(s wireSession) {
				t.Helper()
				if n := len(issued); n > 0 && s.Timestamp <= issued[n-1] {
					t.Errorf("session %s issued with timestamp %d, not after the previous %d", s.ID, s.Timestamp, issued[n-1])
				}
				issued = append(issued, s.Timestamp)
			}

			// Admin setup through the CLI while the server runs.
			var u userJSON
			e.cli(t, &u, password+"\n", "user", "create", "--username", "u1", "--password-stdin", "--email", "u1@example.com")
			var lic licenseJSONOut
			e.cli(t, &lic, "", "license", "create", "--owner", "u1", "--activations", "2")
			if lic.Owner == nil || *lic.Owner != "u1" || lic.Seats.Total != 2 {
				t.Fatalf("license create printed %+v", lic)
			}
			var serial serialJSONOut
			e.cli(t, &serial, "", "serial", "register", "--serial", "SN-E2E-0001", "--model", "IPC-xyz",
				"--manufacturer", "Example Manufacturer", "--manufacturer-id", "791", "--date", "2025-01-01")
			key, sn := lic.Key, serial.SerialNumber
			keyBody := jsonBody(`{"licenseKey":"` + key + `"}`)
			snBody := jsonBody(`{"licenseKey":"` + sn + `"}`)
			jsonCT := map[string]string{"Content-Type": "application/json"}

			// Key mode: 200 with a new session, then 204 with the same one.
			s1, got := e.activate(t, srv, keyBody, jsonCT, http.StatusOK)
			if got != key {
				t.Errorf("activate by key: licenseKey %q, want %q", got, key)
			}
			issue(s1)
			again, _ := e.activate(t, srv, keyBody, map[string]string{"Content-Type": "application/json", "X-Session-Id": s1.ID}, http.StatusNoContent)
			if again != s1 {
				t.Errorf("re-activation with the session: header %+v, want %+v", again, s1)
			}

			// Bearer mode: log in, activate with body null (as FLECS Core does).
			r := e.post(t, srv, "/api/v2/auth/login", jsonBody(`{"username":"u1","password":"`+password+`"}`), jsonCT)
			var login struct {
				JWT struct {
					Token string `json:"token"`
				} `json:"jwt"`
			}
			var env envelope
			if r.status != http.StatusOK || json.Unmarshal(r.body, &env) != nil || json.Unmarshal(env.Data, &login) != nil || login.JWT.Token == "" {
				t.Fatalf("login: %d %s, want 200 with data.jwt.token", r.status, r.body)
			}
			token := login.JWT.Token
			bearer := map[string]string{"Content-Type": "application/json", "Authorization": "Bearer " + token}
			s2, got := e.activate(t, srv, jsonBody("null"), bearer, http.StatusOK)
			if got != key {
				t.Errorf("bearer activation: licenseKey %q, want the user's license %q", got, key)
			}
			if s2.ID == s1.ID {
				t.Errorf("bearer activation reused session %s", s1.ID)
			}
			issue(s2)
			if _, reason := e.activate(t, srv, keyBody, jsonCT, http.StatusForbidden); reason != "License found but maximum activations reached" {
				t.Errorf("third activation of a 2-seat license: reason %q", reason)
			}

			// Serial number as licenseKey.
			s3, got := e.activate(t, srv, snBody, jsonCT, http.StatusOK)
			if got != sn {
				t.Errorf("activate by serial: licenseKey %q, want %q", got, sn)
			}
			issue(s3)
			if again, _ := e.activate(t, srv, snBody, map[string]string{"X-Session-Id": s3.ID}, http.StatusNoContent); again != s3 {
				t.Errorf("re-activation by serial: header %+v, want %+v", again, s3)
			}

			for _, s := range []wireSession{s1, s2, s3} {
				if !e.validate(t, srv, s.ID) {
					t.Errorf("validate %s: false right after activation", s.ID)
				}
			}

			// The CLI sees what happened.
			var licenses []licenseJSONOut
			e.cliItems(t, &licenses, "license", "list")
			if l := findLicense(t, licenses, key); liveSessions(t, l) != 2 || l.Status != "active" || l.Owner == nil || *l.Owner != "u1" {
				t.Errorf("license list entry for %s: %+v (liveSessions %d), want 2 live sessions, not revoked, owner u1", key, l, liveSessions(t, l))
			}
			if l := findLicense(t, licenses, sn); liveSessions(t, l) != 1 || l.Kind != "serial" {
				t.Errorf("license list entry for %s: %+v, want a serial with 1 live session", sn, l)
			}
			var sessions []sessionJSONOut
			e.cliItems(t, &sessions, "session", "list")
			if len(sessions) != 3 {
				t.Errorf("session list: %d sessions, want 3", len(sessions))
			}
			for _, want := range []struct {
				s   wireSession
				key string
			}{{s1, key}, {s2, key}, {s3, sn}} {
				if got := findSession(t, sessions, want.s.ID); got.License != want.key || got.Timestamp != want.s.Timestamp || !got.Live || !tm(got.RevokedAt).IsZero() {
					t.Errorf("session list entry %+v, want live session %+v of %s", got, want.s, want.key)
				}
			}

			// Revoke one session through the CLI: it stops validating, the other stays.
			var rs sessionJSONOut
			e.cli(t, &rs, "", "session", "revoke", s1.ID)
			if rs.ID != s1.ID || tm(rs.RevokedAt).IsZero() {
				t.Errorf("session revoke printed %+v", rs)
			}
			e.waitInvalid(t, srv, s1.ID)
			if !e.validate(t, srv, s2.ID) {
				t.Errorf("validate %s: false after revoking another session", s2.ID)
			}
			e.cliItems(t, &licenses, "license", "list")
			if n := liveSessions(t, findLicense(t, licenses, key)); n != 1 {
				t.Errorf("license list: %s has %d live sessions after a session revoke, want 1", key, n)
			}
			e.cliItems(t, &sessions, "session", "list", "--license", key)
			if got := findSession(t, sessions, s1.ID); got.Live || tm(got.RevokedAt).IsZero() {
				t.Errorf("session list shows the revoked session as %+v", got)
			}

			// Revoke the license: its other session stops validating and it cannot be activated.
			var rl licenseJSONOut
			e.cli(t, &rl, "", "license", "revoke", key)
			if rl.Status != "revoked" || tm(rl.RevokedAt).IsZero() || rl.Key != key {
				t.Errorf("license revoke printed %+v", rl)
			}
			e.waitInvalid(t, srv, s2.ID)
			if _, reason := e.activate(t, srv, keyBody, map[string]string{"X-Session-Id": s2.ID}, http.StatusForbidden); reason != "License found but invalid" {
				t.Errorf("activation of a revoked license: reason %q", reason)
			}
			if !e.validate(t, srv, s3.ID) {
				t.Errorf("validate %s (serial): false after revoking another license", s3.ID)
			}
			e.cliItems(t, &licenses, "license", "list")
			if l := findLicense(t, licenses, key); l.Status != "revoked" || tm(l.RevokedAt).IsZero() {
				t.Errorf("license list shows the revoked license as %+v", l)
			}
			e.cliItems(t, &sessions, "session", "list")
			if got := findSession(t, sessions, s2.ID); got.Live {
				t.Errorf("session list shows %s of the revoked license as live", s2.ID)
			}
			if got := findSession(t, sessions, s3.ID); !got.Live {
				t.Errorf("session list shows %s as not live", s3.ID)
			}

			// SIGTERM, then a restart on the same database.
			srv.stop(t)
			firstLog := srv.logText()
			srv = startServer(t, bin, e.dsn)
			if !e.validate(t, srv, s3.ID) {
				t.Errorf("validate %s after a restart: false", s3.ID)
			}
			if e.validate(t, srv, s1.ID) || e.validate(t, srv, s2.ID) {
				t.Errorf("a revoked session validates after a restart")
			}
			if again, _ := e.activate(t, srv, snBody, map[string]string{"X-Session-Id": s3.ID}, http.StatusNoContent); again != s3 {
				t.Errorf("re-activation by serial after a restart: header %+v, want %+v", again, s3)
			}
			// A license created while the new server runs, drawn by the token issued before the
			// restart: the new session's timestamp is larger than every one issued before.
			var lic2 licenseJSONOut
			e.cli(t, &lic2, "", "license", "create", "--owner", "u1")
			s4, got := e.activate(t, srv, jsonBody("{}"), bearer, http.StatusOK)
			if got != lic2.Key {
				t.Errorf("bearer activation after a restart: licenseKey %q, want %q", got, lic2.Key)
			}
			issue(s4)
			if again, _ := e.activate(t, srv, jsonBody(`{"licenseKey":"`+lic2.Key+`"}`), map[string]string{"X-Session-Id": s4.ID}, http.StatusNoContent); again != s4 {
				t.Errorf("re-activation after a restart: header %+v, want %+v", again, s4)
			}
			srv.stop(t)
			// The servers' logs, access lines included, hold no key, serial, session id, token or
			// password this run used, in the clear or as part of anything else.
			log := firstLog + srv.logText()
			secrets := map[string]string{"password": password, "token": token, "license key": key, "serial": sn,
				"second license key": lic2.Key, "session s1": s1.ID, "session s2": s2.ID, "session s3": s3.ID, "session s4": s4.ID}
			for what, v := range secrets {
				if v == "" {
					t.Fatalf("no %s to look for", what)
				}
				if strings.Contains(log, v) {
					t.Errorf("server log shows the %s %q", what, v)
				}
			}
			// JWT parts are checked one by one: a log would not need the whole token to leak it.
			for _, part := range strings.Split(token, ".") {
				if len(part) > 8 && strings.Contains(log, part) {
					t.Errorf("server log shows part of the token: %q", part)
				}
			}
			access := strings.Count(log, "msg=request ")
			routes := []string{"route=/api/v2/device/license/activate", "route=/api/v2/device/license/validate", "route=/api/v2/auth/login"}
			if engine == "sqlite" {
				// The CLI's commands went to the server through its admin socket (on PostgreSQL they
				// run in the CLI's own process).
				routes = append(routes, "route=/api/openconsole/v1/sessions/{id}", "route=/api/openconsole/v1/licenses/{key}/revoke")
			}
			for _, route := range routes {
				if !strings.Contains(log, route) {
					t.Errorf("no access line with %s", route)
				}
			}
			if access < 20 {
				t.Errorf("%d access-log lines, want one per request (at least 20)", access)
			}
			if t.Failed() {
				t.Logf("server log:\n%s", log)
			}
		})
	}
}
