//go:build unix

package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"golang.org/x/mod/sumdb/note"

	"openconsole/client/offline"
)

// bins are the binaries under test, built once per test run.
var bins struct {
	once               sync.Once
	dir                string
	openconsole, ocdev string
	err                error
}

func TestMain(m *testing.M) {
	code := m.Run()
	if bins.dir != "" {
		os.RemoveAll(bins.dir)
	}
	os.Exit(code)
}

func buildBinaries(t *testing.T) {
	t.Helper()
	if testing.Short() {
		t.Skip("builds and runs openconsole and ocdev; skipped with -short")
	}
	bins.once.Do(func() {
		if bins.dir, bins.err = os.MkdirTemp("", "ocdev-e2e-"); bins.err != nil {
			return
		}
		bins.openconsole = filepath.Join(bins.dir, "openconsole")
		bins.ocdev = filepath.Join(bins.dir, "ocdev")
		for pkg, out := range map[string]string{"openconsole/cmd/openconsole": bins.openconsole, "openconsole/cmd/ocdev": bins.ocdev} {
			if b, err := exec.Command("go", "build", "-o", out, pkg).CombinedOutput(); err != nil {
				bins.err = fmt.Errorf("go build %s: %v\n%s", pkg, err, b)
				return
			}
		}
	})
	if bins.err != nil {
		t.Fatal(bins.err)
	}
}

var listenRE = regexp.MustCompile(`msg="openconsole listening" addr=(\S+)`)

// server is a running `openconsole serve`.
type server struct {
	cmd  *exec.Cmd
	addr string
	done chan struct{}
	mu   sync.Mutex
	log  bytes.Buffer
}

// startServer starts openconsole serve on addr (127.0.0.1:0 for a free port) over the database.
func startServer(t *testing.T, db, addr string) *server {
	t.Helper()
	s := &server{done: make(chan struct{})}
	s.cmd = exec.Command(bins.openconsole, "serve", "--addr", addr, "--db", db)
	s.cmd.Env = childEnv()
	stderr, err := s.cmd.StderrPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := s.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	got := make(chan string, 1)
	go func() {
		sc := bufio.NewScanner(stderr)
		for sc.Scan() {
			s.mu.Lock()
			s.log.WriteString(sc.Text() + "\n")
			s.mu.Unlock()
			if m := listenRE.FindStringSubmatch(sc.Text()); m != nil {
				select {
				case got <- m[1]:
				default:
				}
			}
		}
		io.Copy(io.Discard, stderr)
		s.cmd.Wait()
		close(s.done)
	}()
	t.Cleanup(func() {
		select {
		case <-s.done:
		default:
			s.cmd.Process.Kill()
			<-s.done
		}
	})
	select {
	case s.addr = <-got:
	case <-s.done:
		t.Fatalf("server exited before listening:\n%s", s.logText())
	case <-time.After(20 * time.Second):
		t.Fatalf("server did not listen within 20s:\n%s", s.logText())
	}
	return s
}

func (s *server) logText() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.log.String()
}

func (s *server) stop(t *testing.T) {
	t.Helper()
	s.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-s.done:
	case <-time.After(20 * time.Second):
		t.Fatalf("server still running 20s after SIGTERM")
	}
}

func childEnv() []string {
	var env []string
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, "OPENCONSOLE_") && !strings.HasPrefix(kv, "OCDEV_") {
			env = append(env, kv)
		}
	}
	return env
}

// admin runs the openconsole CLI on the database and decodes its JSON output into out.
func admin(t *testing.T, db, stdin string, out any, args ...string) {
	t.Helper()
	cmd := exec.Command(bins.openconsole, append([]string{"--db", db}, args...)...)
	cmd.Env = childEnv()
	cmd.Stdin = strings.NewReader(stdin)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		t.Fatalf("openconsole %s: %v\n%s%s", strings.Join(args, " "), err, stdout.String(), stderr.String())
	}
	if out != nil {
		if err := json.Unmarshal(stdout.Bytes(), out); err != nil {
			t.Fatalf("openconsole %s printed %q: %v", strings.Join(args, " "), stdout.String(), err)
		}
	}
}

// ocdev runs the ocdev binary and returns its exit code and output.
func ocdev(t *testing.T, args ...string) (int, string, string) {
	t.Helper()
	cmd := exec.Command(bins.ocdev, args...)
	cmd.Env = childEnv()
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	err := cmd.Run()
	code := 0
	if ee, ok := err.(*exec.ExitError); ok {
		code = ee.ExitCode()
	} else if err != nil {
		t.Fatal(err)
	}
	return code, stdout.String(), stderr.String()
}

// TestOcdevAgainstServer drives every online ocdev command against a real openconsole serve.
func TestOcdevAgainstServer(t *testing.T) {
	buildBinaries(t)
	dir := t.TempDir()
	db := "sqlite:" + filepath.Join(dir, "oc.db")
	srv := startServer(t, db, "127.0.0.1:0")
	url := "http://" + srv.addr
	var lic struct {
		Key string `json:"key"`
	}
	admin(t, db, "", &lic, "license", "create", "--seats", "1")
	if lic.Key == "" {
		t.Fatal("license create printed no key")
	}
	manifest := filepath.Join(dir, "m.json")
	os.WriteFile(manifest, []byte(`{"_schemaVersion":"3.0.0","app":"tech.flecs.official","version":"1.0.0","revision":"0",
		"image":"flecs.azurecr.io/tech.flecs.official","multiInstance":false}`), 0o644)
	admin(t, db, "", nil, "app", "manifest", "add", manifest, "--official")
	admin(t, db, "registry-secret\n", nil, "app", "credentials", "set", "tech.flecs.official", "--username", "flecs-user")
	community := filepath.Join(dir, "c.json")
	os.WriteFile(community, []byte(`{"_schemaVersion":"3.0.0","app":"tech.flecs.community","version":"1.0.0","revision":"0",
		"image":"docker.io/x/community","multiInstance":false}`), 0o644)
	admin(t, db, "", nil, "app", "manifest", "add", community, "--official=false")

	state := filepath.Join(dir, "dev1")
	st := func(args ...string) []string { return append(args, "--state", state, "--server", url) }

	if code, _, stderr := ocdev(t, st("validate")...); code != exitNotValid {
		t.Errorf("validate before activation: exit %d (%s), want %d", code, stderr, exitNotValid)
	}
	code, out, stderr := ocdev(t, st("activate", "--key", lic.Key)...)
	if code != 0 || !strings.Contains(out, `"new": true`) {
		t.Fatalf("activate: exit %d\n%s%s", code, out, stderr)
	}
	if strings.Contains(out+stderr, lic.Key) {
		t.Errorf("activate printed the full license key:\n%s", out)
	}
	if code, out, _ := ocdev(t, st("activate")...); code != 0 || !strings.Contains(out, `"new": false`) {
		t.Errorf("second activate: exit %d, %s; want already active", code, out)
	}
	if code, out, _ := ocdev(t, st("validate")...); code != 0 || !strings.Contains(out, `"valid": true`) {
		t.Errorf("validate: exit %d, %s", code, out)
	}
	if code, out, stderr := ocdev(t, st("manifest", "tech.flecs.official", "1.0.0")...); code != 0 || !strings.Contains(out, `"_schemaVersion":"3.0.0"`) {
		t.Errorf("manifest: exit %d\n%s%s", code, out, stderr)
	}
	if code, _, stderr := ocdev(t, st("manifest", "tech.flecs.nope", "1.0.0")...); code != exitRefused {
		t.Errorf("unknown manifest: exit %d (%s), want %d", code, stderr, exitRefused)
	}
	if code, out, stderr := ocdev(t, st("token", "tech.flecs.official", "1.0.0")...); code != 0 || !strings.Contains(out, `"username": "flecs-user"`) {
		t.Errorf("token: exit %d\n%s%s", code, out, stderr)
	}
	if code, out, _ := ocdev(t, st("token", "tech.flecs.community", "1.0.0")...); code != 0 || strings.TrimSpace(out) != "{}" {
		t.Errorf("community token: exit %d, %q; want {} (no credentials needed)", code, out)
	}
	// The license has one seat: a second device is refused with the console's reason.
	code, _, stderr = ocdev(t, "activate", "--key", lic.Key, "--state", filepath.Join(dir, "dev2"), "--server", url)
	if code != exitRefused || !strings.Contains(stderr, "License found but maximum activations reached") {
		t.Errorf("second device: exit %d, %q; want %d and the reason", code, stderr, exitRefused)
	}
	if code, _, _ := ocdev(t, "validate", "--state", state, "--server", "http://127.0.0.1:1"); code != exitUnavailable {
		t.Errorf("validate against nothing: exit %d, want %d", code, exitUnavailable)
	}
	if code, _, _ := ocdev(t, "activate", "--key", "a", "--serial", "b", "--state", state); code != exitUsage {
		t.Errorf("two credentials: exit %d, want %d", code, exitUsage)
	}
	// The files are FLECS Core's: the key alone, and "id\ntimestamp".
	b, _ := os.ReadFile(filepath.Join(state, ".license"))
	if string(b) != lic.Key {
		t.Errorf(".license = %q, want the key alone", b)
	}
	b, _ = os.ReadFile(filepath.Join(state, ".session_id"))
	if !regexp.MustCompile(`^[0-9a-f-]{36}\n[0-9]+$`).Match(b) {
		t.Errorf(".session_id = %q, want Core's two lines", b)
	}
	// Bearer mode: a console login's JWT from a file draws the user's license.
	admin(t, db, "pw-of-alice-1\n", nil, "user", "create", "--username", "alice", "--password-stdin")
	var owned struct {
		Key string `json:"key"`
	}
	admin(t, db, "", &owned, "license", "create", "--seats", "1", "--owner", "alice")
	resp, err := http.Post(url+"/api/v2/auth/login", "application/json", strings.NewReader(`{"username":"alice","password":"pw-of-alice-1"}`))
	if err != nil {
		t.Fatal(err)
	}
	var login struct {
		Data struct {
			JWT struct {
				Token string `json:"token"`
			} `json:"jwt"`
		} `json:"data"`
	}
	json.NewDecoder(resp.Body).Decode(&login)
	resp.Body.Close()
	tokenFile := filepath.Join(dir, "jwt")
	os.WriteFile(tokenFile, []byte(login.Data.JWT.Token+"\n"), 0o600)
	bearerState := filepath.Join(dir, "dev3")
	code, out, stderr = ocdev(t, "activate", "--token-file", tokenFile, "--state", bearerState, "--server", url)
	if code != 0 || !strings.Contains(out, `"new": true`) {
		t.Errorf("bearer activation: exit %d\n%s%s", code, out, stderr)
	}
	if login.Data.JWT.Token == "" {
		t.Fatal("login gave no JWT")
	}
	if b, _ := os.ReadFile(filepath.Join(bearerState, ".license")); string(b) != owned.Key {
		t.Errorf("bearer activation stored %q, want alice's license", b)
	}
	if strings.Contains(out+stderr, login.Data.JWT.Token) {
		t.Error("the JWT was printed")
	}
	// Serial mode.
	admin(t, db, "", nil, "serial", "register", "--serial", "SN-OCDEV-1", "--model", "IPC", "--manufacturer", "Example", "--manufacturer-id", "791", "--date", "2025-01-01")
	serialState := filepath.Join(dir, "dev4")
	if code, _, stderr := ocdev(t, "activate", "--serial", "SN-OCDEV-1", "--state", serialState, "--server", url); code != 0 {
		t.Errorf("serial activation: exit %d %s", code, stderr)
	}
	if code, _, _ := ocdev(t, "validate", "--state", serialState, "--server", url); code != 0 {
		t.Errorf("validate after serial activation: exit %d", code)
	}

	// A revoked license: validate says not valid.
	admin(t, db, "", nil, "license", "revoke", lic.Key)
	if code, _, _ := ocdev(t, st("validate")...); code != exitNotValid {
		t.Errorf("validate after revocation: exit %d, want %d", code, exitNotValid)
	}
	srv.stop(t)
}

// TestOcdevAdoptsCoreState: a state directory written by FLECS Core (its exact bytes) is what
// ocdev continues from: it validates Core's session and re-activates with Core's key.
func TestOcdevAdoptsCoreState(t *testing.T) {
	buildBinaries(t)
	dir := t.TempDir()
	db := "sqlite:" + filepath.Join(dir, "oc.db")
	srv := startServer(t, db, "127.0.0.1:0")
	url := "http://" + srv.addr
	var lic struct {
		Key string `json:"key"`
	}
	admin(t, db, "", &lic, "license", "create", "--seats", "1")
	// A first device gets a session; its files are then rewritten in Core's format by hand.
	a := filepath.Join(dir, "a")
	if code, out, stderr := ocdev(t, "activate", "--key", lic.Key, "--state", a, "--server", url); code != 0 {
		t.Fatalf("activate: %d %s %s", code, out, stderr)
	}
	b, _ := os.ReadFile(filepath.Join(a, ".session_id"))
	id, ts, _ := strings.Cut(string(b), "\n")
	core := filepath.Join(dir, "core")
	os.MkdirAll(core, 0o700)
	os.WriteFile(filepath.Join(core, ".license"), []byte(lic.Key), 0o600)                          // format!("{license}")
	os.WriteFile(filepath.Join(core, ".session_id"), []byte(fmt.Sprintf("%s\n%s", id, ts)), 0o600) // format!("{id}\n{timestamp}")
	if code, out, stderr := ocdev(t, "validate", "--state", core, "--server", url); code != 0 {
		t.Errorf("validate on Core's files: exit %d\n%s%s", code, out, stderr)
	}
	// With the stored key and session, activate is the 204 of an already active device, so no
	// second seat is taken (the license has one).
	if code, out, stderr := ocdev(t, "activate", "--state", core, "--server", url); code != 0 || !strings.Contains(out, `"new": false`) {
		t.Errorf("activate on Core's files: exit %d\n%s%s", code, out, stderr)
	}
	srv.stop(t)
}

// TestOcdevRunSurvivesRestartAndOutage: ocdev run keeps a device licensed across a server
// restart and a 30 s outage: it backs off while the console is down and validates again once it
// is back, on the same session.
func TestOcdevRunSurvivesRestartAndOutage(t *testing.T) {
	buildBinaries(t)
	dir := t.TempDir()
	db := "sqlite:" + filepath.Join(dir, "oc.db")
	srv := startServer(t, db, "127.0.0.1:0")
	addr := srv.addr
	var lic struct {
		Key string `json:"key"`
	}
	admin(t, db, "", &lic, "license", "create", "--seats", "1")

	state := filepath.Join(dir, "dev")
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	run := exec.CommandContext(ctx, bins.ocdev, "run", "--key", lic.Key, "--state", state, "--server", "http://"+addr,
		"--interval", "500ms", "--min-backoff", "250ms", "--max-backoff", "4s")
	run.Env = childEnv()
	stdout, _ := run.StdoutPipe()
	var stderr bytes.Buffer
	run.Stderr = &stderr
	if err := run.Start(); err != nil {
		t.Fatal(err)
	}
	type ev struct {
		Time    time.Time `json:"time"`
		Kind    string    `json:"event"`
		Session string    `json:"session"`
		Delay   int64     `json:"delayNs"`
		Err     string    `json:"error"`
	}
	events := make(chan ev, 1024)
	go func() {
		sc := bufio.NewScanner(stdout)
		for sc.Scan() {
			var e ev
			if err := json.Unmarshal(sc.Bytes(), &e); err != nil {
				// Reported by the test's own goroutine, which sees every event.
				e = ev{Kind: "unparseable", Err: sc.Text()}
			}
			events <- e
		}
		close(events)
	}()
	// waitFor returns the events up to and including the first of kind.
	waitFor := func(kind string, within time.Duration) []ev {
		t.Helper()
		var seen []ev
		deadline := time.After(within)
		for {
			select {
			case e, ok := <-events:
				if !ok {
					t.Fatalf("ocdev run ended while waiting for %q; stderr:\n%s", kind, stderr.String())
				}
				seen = append(seen, e)
				if e.Kind == "unparseable" {
					t.Errorf("ocdev run printed %q", e.Err)
				}
				if e.Kind == kind {
					return seen
				}
			case <-deadline:
				t.Fatalf("no %q event within %v; saw %+v", kind, within, seen)
			}
		}
	}
	first := waitFor("activated", 20*time.Second)
	session := first[len(first)-1].Session
	waitFor("valid", 10*time.Second)

	// A restart: stop, start again on the same address.
	srv.stop(t)
	waitFor("backoff", 10*time.Second)
	srv = startServer(t, db, addr)
	seen := waitFor("valid", 20*time.Second)
	if last := seen[len(seen)-1]; last.Session != session {
		t.Errorf("after the restart: session %s, want the same %s", last.Session, session)
	}

	// A 30 s outage.
	srv.stop(t)
	down := time.Now()
	var backoffs []ev
	for time.Since(down) < 30*time.Second {
		select {
		case e := <-events:
			if e.Kind == "valid" || e.Kind == "activated" || e.Kind == "unparseable" {
				t.Fatalf("%s while the console is down", e.Kind)
			}
			if e.Kind == "backoff" {
				backoffs = append(backoffs, e)
			}
		case <-time.After(time.Until(down.Add(30 * time.Second))):
		}
	}
	srv = startServer(t, db, addr)
	seen = waitFor("valid", 20*time.Second)
	if last := seen[len(seen)-1]; last.Session != session {
		t.Errorf("after the outage: session %s, want the same %s", last.Session, session)
	}
	// The waits grew from the minimum to the cap, jittered into [d/2, d], and no faster: over 30 s
	// with a 4 s cap there are at least 5 and far fewer than the 120 a fixed 250 ms would make.
	if len(backoffs) < 5 || len(backoffs) > 40 {
		t.Errorf("%d backoffs in a 30 s outage, want between 5 and 40", len(backoffs))
	}
	capped := 0
	t.Logf("%d backoffs during the 30 s outage", len(backoffs))
	for i, b := range backoffs {
		d := time.Duration(b.Delay)
		if d < 125*time.Millisecond || d > 4*time.Second {
			t.Errorf("backoff %d: %v outside [125ms, 4s]", i, d)
		}
		if d >= 2*time.Second {
			capped++
		}
	}
	if capped == 0 {
		t.Errorf("no backoff reached the cap's range: %+v", backoffs)
	}

	// SIGTERM ends run cleanly.
	run.Process.Signal(syscall.SIGTERM)
	if err := run.Wait(); err != nil {
		t.Errorf("ocdev run after SIGTERM: %v; stderr:\n%s", err, stderr.String())
	}
	srv.stop(t)
}

var vkeyRE = regexp.MustCompile(`[^\s"+]+\+[0-9a-f]{8}\+[A-Za-z0-9+/]{44}`)

// TestOcdevOfflineRoundTripBinaries: request, issue, install, status valid, with the binaries, and
// the same from a new process. The certificate is issued by `openconsole offline issue` when the
// server binary has it, else by the client/offline package playing the console.
func TestOcdevOfflineRoundTripBinaries(t *testing.T) {
	buildBinaries(t)
	dir := t.TempDir()
	db := "sqlite:" + filepath.Join(dir, "oc.db")
	var lic struct {
		Key string `json:"key"`
	}
	admin(t, db, "", nil, "init")
	admin(t, db, "", &lic, "license", "create", "--seats", "2")
	state := filepath.Join(dir, "dev")
	req, cert := filepath.Join(dir, "req.note"), filepath.Join(dir, "cert.note")
	if code, _, stderr := ocdev(t, "offline", "request", "--key", lic.Key, "--out", req, "--state", state); code != 0 {
		t.Fatalf("offline request: %d %s", code, stderr)
	}

	var pin string
	keyCmd := exec.Command(bins.openconsole, "--db", db, "offline", "key")
	keyCmd.Env = childEnv()
	if out, err := keyCmd.Output(); err == nil {
		pin = vkeyRE.FindString(string(out))
		if pin == "" {
			t.Fatalf("openconsole offline key printed no verifier key: %q", out)
		}
		admin(t, db, "", nil, "offline", "issue", "--request", req, "--ttl", "90d", "--out", cert)
		t.Log("issued by openconsole offline issue")
	} else {
		skey, vkey, err := offline.GenerateSigningKey("openconsole-test")
		if err != nil {
			t.Fatal(err)
		}
		signer, _ := note.NewSigner(skey)
		b, _ := os.ReadFile(req)
		r, err := offline.ParseRequest(b)
		if err != nil {
			t.Fatal(err)
		}
		now := time.Now().UTC()
		c, err := offline.IssueCertificate(&offline.Certificate{License: r.License, LicenseHint: offline.LicenseHint(lic.Key),
			DeviceKey: r.DeviceKey, Nonce: r.Nonce, Counter: 1, Issued: now, NotBefore: now.Add(-time.Minute),
			NotAfter: now.Add(90 * 24 * time.Hour), SessionID: "74c3b620-6048-4bfd-9bf7-c9857a001694", SessionTimestamp: 1}, signer)
		if err != nil {
			t.Fatal(err)
		}
		os.WriteFile(cert, c, 0o644)
		pin = vkey
		t.Log("this openconsole has no offline issue yet: the certificate is issued by client/offline")
	}
	if code, out, stderr := ocdev(t, "offline", "install", cert, "--pin", pin, "--state", state); code != 0 {
		t.Fatalf("offline install: %d %s %s", code, out, stderr)
	}
	for i := 0; i < 2; i++ { // the second run is a new process on the same state: a restart
		code, out, stderr := ocdev(t, "status", "--json", "--state", state)
		var s struct {
			Valid       bool      `json:"valid"`
			License     string    `json:"license"`
			NotAfter    time.Time `json:"notAfter"`
			TrustedTime time.Time `json:"trustedTime"`
		}
		if err := json.Unmarshal([]byte(out), &s); err != nil || code != 0 {
			t.Fatalf("status --json: %d %q %s", code, out, stderr)
		}
		if !s.Valid || s.License != offline.LicenseHint(lic.Key) || s.NotAfter.Before(time.Now()) || s.TrustedTime.IsZero() {
			t.Errorf("status %+v", s)
		}
		if code, _, _ := ocdev(t, "offline", "status", "--state", state); code != 0 {
			t.Errorf("offline status: exit %d", code)
		}
	}
}
