package admin_test

import (
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"testing"

	"openconsole"
	"openconsole/admin"
	"openconsole/client/offline"
	"openconsole/sqlstore/sqlstoretest"
)

// entriesAfter returns the audit entries after seq.
func (e *env) entriesAfter(t *testing.T, seq int64) []admin.AuditJSON {
	t.Helper()
	var page admin.Page[admin.AuditJSON]
	e.as(t, openconsole.RoleReader, "GET", "/audit?limit=1000&after="+strconv.FormatInt(seq, 10), nil).decode(t, &page)
	return page.Items
}

func (e *env) lastSeq(t *testing.T) int64 {
	t.Helper()
	all := e.entriesAfter(t, -1)
	if len(all) == 0 {
		return -1
	}
	return all[len(all)-1].Seq
}

// console sends a request to the FLECS Console API of the first server.
func (e *env) console(t *testing.T, method, path, bearer, body string) (int, map[string]any) {
	t.Helper()
	req, _ := http.NewRequest(method, e.servers[0].srv.URL+path, strings.NewReader(body))
	if bearer != "" {
		req.Header.Set("Authorization", "Bearer "+bearer)
	}
	resp, err := e.hc.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var env map[string]any
	json.NewDecoder(resp.Body).Decode(&env)
	return resp.StatusCode, env
}

func (e *env) login(t *testing.T, username, password string) string {
	t.Helper()
	status, env := e.console(t, "POST", "/api/v2/auth/login", "", fmt.Sprintf(`{"username":%q,"password":%q}`, username, password))
	if status != 200 {
		t.Fatalf("login %s: %d %v", username, status, env)
	}
	return env["data"].(map[string]any)["jwt"].(map[string]any)["token"].(string)
}

func keysOf(raw json.RawMessage) []string {
	var m map[string]any
	json.Unmarshal(raw, &m)
	var out []string
	for k := range m {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}

// TestEveryChangeIsAudited: every mutating operation of the operator API, and the changes made
// through the FLECS Console API, append exactly one entry, with the actor, the action, the target
// and the fields changed before and after, and never a secret. A refused change and a replay
// append none. The table must name every mutating operation of the document.
func TestEveryChangeIsAudited(t *testing.T) {
	sqlstoretest.Each(t, func(t *testing.T, dsn string) {
		e := newEnv(t, dsn, 1, openconsole.Options{})
		const key = "AUDIT-KEY-0001-ABCD"
		var sid, tokenID, tokenSecret string
		secrets := []string{key, "user-secret-pw-1", "user-secret-pw-2", "registry-secret-pw", "vendor-secret-pw"}
		type change struct {
			op            string // METHOD template, as the document names it
			role          openconsole.Role
			path          string
			body          any
			setup         func()
			action        string
			target        string
			before, after []string // the fields recorded
			check         func(en admin.AuditJSON)
		}
		manifest := `{"_schemaVersion":"3.0.0","app":"tech.flecs.audit","version":"1.0.0","revision":"0","image":"flecs.azurecr.io/tech.flecs.audit"}`
		licenseFields := []string{"expiresAt", "key", "metadata", "note", "owner", "revokedAt", "seats", "suspendedAt"}
		// A device's request, and the proof it will make of giving up the certificate (counter 1).
		dev := newOfflineDevice(t)
		offlineReq := dev.request(t, key)
		parsed, err := offline.ParseRequest([]byte(offlineReq))
		if err != nil {
			t.Fatal(err)
		}
		dev.cert = &offline.Certificate{License: parsed.License, Nonce: parsed.Nonce, Counter: 1}
		offlineProof := dev.deactivation(t)
		cases := []change{
			{op: "POST /licenses", role: openconsole.RoleOperator, path: "/licenses", body: map[string]any{"key": key, "seats": 2, "note": "order 9"},
				action: "license.create", target: openconsole.LicenseTarget(key), after: licenseFields,
				check: func(en admin.AuditJSON) {
					if !strings.Contains(string(en.After), openconsole.KeyHint(key)) {
						t.Errorf("license.create shows the key as %s, want its last four characters", en.After)
					}
				}},
			{op: "PATCH /licenses/{key}", role: openconsole.RoleOperator, path: "/licenses/" + key, body: map[string]any{"seats": 3},
				action: "license.update", target: openconsole.LicenseTarget(key), before: []string{"seats"}, after: []string{"seats"},
				check: func(en admin.AuditJSON) {
					if string(en.Before) != `{"seats":2}` || string(en.After) != `{"seats":3}` {
						t.Errorf("license.update recorded %s -> %s, want seats 2 -> 3", en.Before, en.After)
					}
				}},
			{op: "POST /licenses/{key}/suspend", role: openconsole.RoleOperator, path: "/licenses/" + key + "/suspend",
				action: "license.suspend", target: openconsole.LicenseTarget(key), before: []string{"suspendedAt"}, after: []string{"suspendedAt"}},
			{op: "POST /licenses/{key}/resume", role: openconsole.RoleOperator, path: "/licenses/" + key + "/resume",
				action: "license.resume", target: openconsole.LicenseTarget(key), before: []string{"suspendedAt"}, after: []string{"suspendedAt"}},
			{op: "DELETE /sessions/{id}", role: openconsole.RoleOperator,
				setup: func() {
					var status int
					if status, sid = e.activate(t, 0, key, ""); status != 200 {
						t.Fatalf("activate: %d %s", status, sid)
					}
				},
				action: "session.revoke", before: []string{"revokedAt"}, after: []string{"revokedAt"}},
			{op: "POST /users", role: openconsole.RoleAdmin, path: "/users", body: map[string]any{"username": "aud", "password": "user-secret-pw-1"},
				action: "user.create", target: "user:aud", after: []string{"disabled", "displayName", "email", "role", "vendor", "whitelabeled"}},
			{op: "PATCH /users/{username}", role: openconsole.RoleAdmin, path: "/users/aud", body: map[string]any{"email": "aud@example.com", "password": "user-secret-pw-2"},
				action: "user.update", target: "user:aud", before: []string{"email", "password"}, after: []string{"email", "password"}},
			{op: "POST /serials", role: openconsole.RoleOperator, path: "/serials",
				body:   map[string]any{"serialNumber": "SN-AUDIT-1", "model": "IPC", "manufacturer": map[string]any{"name": "ACME", "id": 7}, "manufactureDate": "2025-02-03"},
				action: "serial.register", target: openconsole.LicenseTarget("SN-AUDIT-1"), after: []string{"manufactureDate", "manufacturer", "manufacturerId", "model", "serial"}},
			{op: "POST /tokens", role: openconsole.RoleAdmin, path: "/tokens", body: map[string]any{"name": "erp", "role": "reader"},
				action: "token.create", after: []string{"expiresAt", "name", "role"}},
			{op: "DELETE /tokens/{id}", role: openconsole.RoleAdmin, action: "token.revoke", after: []string{"revokedAt"}},
			{op: "POST /seats/repair", role: openconsole.RoleAdmin, path: "/seats/repair",
				setup:  func() { sqlstoretest.Exec(t, dsn, `UPDATE licenses SET taken = taken + 1 WHERE key = '`+key+`'`) },
				action: "seats.repair", target: "seats", before: []string{openconsole.LicenseTarget(key)}, after: []string{openconsole.LicenseTarget(key)}},
			{op: "POST /signing-keys/rotate", role: openconsole.RoleAdmin, path: "/signing-keys/rotate", body: map[string]any{"dropOld": false},
				action: "signing-key.rotate", after: []string{"dropOld"}},
			{op: "POST /manifests", role: openconsole.RoleOperator, path: "/manifests?official=true", body: manifest,
				action: "manifest.add", target: "app:tech.flecs.audit"},
			{op: "PUT /apps/{app}/credentials", role: openconsole.RoleOperator, path: "/apps/tech.flecs.audit/credentials",
				body: map[string]any{"username": "pull", "password": "registry-secret-pw"}, action: "app.credentials", target: "app:tech.flecs.audit"},
			{op: "DELETE /manifests/{app}/{version}", role: openconsole.RoleOperator, path: "/manifests/tech.flecs.audit/1.0.0",
				action: "manifest.remove", target: "app:tech.flecs.audit"},
			{op: "POST /products", role: openconsole.RoleOperator, path: "/products", body: `[{"id":70,"name":"Audit app","store":{"id":791}}]`,
				action: "product.import", target: "products", after: []string{"ids"}},
			{op: "POST /subscriptions", role: openconsole.RoleOperator, path: "/subscriptions", body: map[string]any{"user": "aud", "productId": 70},
				action: "subscription.create"},
			{op: "POST /offline/certificates", role: openconsole.RoleOperator, path: "/offline/certificates",
				body: map[string]any{"request": offlineReq, "ttl": "7d"}, action: "offline.issue", target: openconsole.LicenseTarget(key),
				after: []string{"counter", "device", "issuer", "notAfter", "replaced", "session"}},
			{op: "POST /offline/deactivations", role: openconsole.RoleOperator, path: "/offline/deactivations",
				body: map[string]any{"proof": offlineProof}, action: "offline.deactivate", target: openconsole.LicenseTarget(key),
				before: []string{"counter", "deactivatedAt", "device"}, after: []string{"counter", "deactivatedAt", "device", "freed", "nextDevice"}},
			{op: "POST /licenses/{key}/revoke", role: openconsole.RoleOperator, path: "/licenses/" + key + "/revoke",
				action: "license.revoke", target: openconsole.LicenseTarget(key), before: []string{"revokedAt"}, after: []string{"revokedAt"}},
		}
		covered := map[string]bool{}
		for _, c := range cases {
			covered[c.op] = true
			if c.setup != nil {
				c.setup()
			}
			method, _, _ := strings.Cut(c.op, " ")
			path := c.path
			switch c.op {
			case "DELETE /sessions/{id}":
				path = "/sessions/" + sid
				c.target = "session:" + sid
			case "DELETE /tokens/{id}":
				path = "/tokens/" + tokenID
				c.target = "token:" + tokenID
			}
			last := e.lastSeq(t)
			a := e.as(t, c.role, method, path, c.body)
			if a.status >= 300 {
				t.Fatalf("%s: %d %s", c.op, a.status, a.body)
			}
			if c.op == "POST /tokens" {
				var tok admin.TokenJSON
				a.decode(t, &tok)
				tokenID, tokenSecret = tok.ID, *tok.Token
				c.target = "token:" + tokenID
				secrets = append(secrets, tokenSecret)
			}
			got := e.entriesAfter(t, last)
			if len(got) != 1 {
				t.Errorf("%s made %d audit entries, want 1: %+v", c.op, len(got), got)
				continue
			}
			en := got[0]
			wantActor := admin.ActorJSON{Kind: openconsole.ActorToken, Name: "test-" + string(c.role), Addr: "127.0.0.1"}
			if en.Action != c.action || en.Actor != wantActor || (c.target != "" && en.Target != c.target) {
				t.Errorf("%s: entry %s by %+v on %s; want %s by %+v on %s", c.op, en.Action, en.Actor, en.Target, c.action, wantActor, c.target)
			}
			if c.target == "" && en.Target == "" {
				t.Errorf("%s: entry without a target", c.op)
			}
			if c.before != nil && !slicesEqual(keysOf(en.Before), c.before) {
				t.Errorf("%s: before has %v, want %v (%s)", c.op, keysOf(en.Before), c.before, en.Before)
			}
			if c.after != nil && !slicesEqual(keysOf(en.After), c.after) {
				t.Errorf("%s: after has %v, want %v (%s)", c.op, keysOf(en.After), c.after, en.After)
			}
			if en.LeafHash == nil {
				t.Errorf("%s: the entry has no leaf hash", c.op)
			}
			if c.check != nil {
				c.check(en)
			}
		}
		for tmpl, ops := range e.doc.doc["paths"].(map[string]any) {
			for m := range ops.(map[string]any) {
				if op := strings.ToUpper(m) + " " + tmpl; m != "get" && m != "parameters" && !covered[op] {
					t.Errorf("%s changes something but is not in the table", op)
				}
			}
		}

		// The FLECS Console API's changes: a vendor registers a serial, an owner reviews a product.
		want(t, e.as(t, openconsole.RoleAdmin, "POST", "/users", map[string]any{"username": "vendor", "password": "vendor-secret-pw", "vendor": true}), 201)
		jwt := e.login(t, "vendor", "vendor-secret-pw")
		want(t, e.as(t, openconsole.RoleOperator, "POST", "/subscriptions", map[string]any{"user": "vendor", "productId": 70}), 201)
		for _, c := range []struct{ path, body, action string }{
			{"/api/v2/device/license", `{"serial_number":"SN-CONSOLE-1","model":"IPC","manufacturer":{"name":"ACME","id":7},"manufacture_date":"2025-02-03"}`, "serial.register"},
			{"/api/v2/products/apps/reviews", `{"data":{"product_id":70,"review":"fine","reviewer":"v","reviewer_email":"v@example.com","rating":4}}`, "review.create"},
		} {
			last := e.lastSeq(t)
			if status, env := e.console(t, "POST", c.path, jwt, c.body); status != 201 {
				t.Fatalf("%s: %d %v", c.path, status, env)
			}
			got := e.entriesAfter(t, last)
			if len(got) != 1 || got[0].Action != c.action || got[0].Actor.Kind != openconsole.ActorConsole || got[0].Actor.Name != "vendor" {
				t.Errorf("%s: entries %+v, want one %s by the console user vendor", c.path, got, c.action)
			}
		}

		// A refused change, a replay and a read append nothing.
		last := e.lastSeq(t)
		want(t, e.as(t, openconsole.RoleOperator, "POST", "/licenses", map[string]any{"key": key, "seats": 1}), 409)
		want(t, e.as(t, openconsole.RoleOperator, "PATCH", "/licenses/"+key, map[string]any{"seats": 9}, "If-Match", `"1"`), 412)
		body := map[string]any{"seats": 1, "note": "replayed"}
		want(t, e.as(t, openconsole.RoleOperator, "POST", "/licenses", body, "Idempotency-Key", "k1"), 201)
		want(t, e.as(t, openconsole.RoleOperator, "POST", "/licenses", body, "Idempotency-Key", "k1"), 201)
		want(t, e.as(t, openconsole.RoleReader, "GET", "/licenses", nil), 200)
		if got := e.entriesAfter(t, last); len(got) != 1 || got[0].Action != "license.create" {
			t.Errorf("after a refusal, a create and its replay: %+v, want the create only", got)
		}

		// No secret anywhere in the log.
		all := e.as(t, openconsole.RoleReader, "GET", "/audit?limit=1000", nil)
		for _, s := range secrets {
			if s != "" && strings.Contains(string(all.body), s) {
				t.Errorf("the audit log holds the secret %q", s)
			}
		}
	})
}

func slicesEqual(a, b []string) bool {
	sort.Strings(b)
	return strings.Join(a, ",") == strings.Join(b, ",")
}

// TestAuditProofsOverHTTP: the checkpoint, inclusion and consistency answers (each checked against
// the document), and an independent verifier (testdata/audit/verify.py, Python and the
// cryptography package, sharing no code with the server) accepts them, and refuses them changed.
func TestAuditProofsOverHTTP(t *testing.T) {
	sqlstoretest.Each(t, func(t *testing.T, dsn string) {
		e := newEnv(t, dsn, 1, openconsole.Options{})
		for i := 0; i < 12; i++ {
			e.createLicense(t, map[string]any{"seats": i + 1, "note": fmt.Sprintf("proof %d <&> \u2028 ü", i)})
		}
		const n = 15 // the three API tokens of the environment, then twelve licenses
		var cp admin.CheckpointJSON
		within(t, 5*openconsole.AuditSigningInterval, "a checkpoint of the whole log", func() bool {
			e.as(t, openconsole.RoleReader, "GET", "/audit/checkpoint", nil).decode(t, &cp)
			return cp.Size == n
		})
		var key admin.AuditKeyJSON
		e.as(t, openconsole.RoleReader, "GET", "/audit/key", nil).decode(t, &key)
		if key.Held != "database" || len(key.Verifiers) != 1 || !strings.HasPrefix(cp.Note, key.Origin+"\n") {
			t.Fatalf("audit key %+v, checkpoint %q", key, cp.Note)
		}
		dir := t.TempDir()
		save := func(name string, a answer) string {
			want(t, a, 200)
			p := filepath.Join(dir, name)
			if err := os.WriteFile(p, a.body, 0o644); err != nil {
				t.Fatal(err)
			}
			return p
		}
		proofs := []string{
			save("proof0.json", e.as(t, openconsole.RoleReader, "GET", "/audit/proof/0", nil)),
			save("proof9.json", e.as(t, openconsole.RoleReader, "GET", "/audit/proof/9", nil)),
			save("proof14.json", e.as(t, openconsole.RoleReader, "GET", "/audit/proof/14", nil)),
		}
		// A proof in a tree of a size no checkpoint was signed for: nothing vouches for its root.
		unsigned := save("proof5of8.json", e.as(t, openconsole.RoleReader, "GET", "/audit/proof/5?size=8", nil))
		cons := []string{
			save("cons1.json", e.as(t, openconsole.RoleReader, "GET", "/audit/consistency?from=1", nil)),
			save("cons7.json", e.as(t, openconsole.RoleReader, "GET", "/audit/consistency?from=7&to=13", nil)),
			save("cons15.json", e.as(t, openconsole.RoleReader, "GET", "/audit/consistency?from=15", nil)),
		}
		want(t, e.as(t, openconsole.RoleReader, "GET", "/audit/proof/15", nil), 400)
		want(t, e.as(t, openconsole.RoleReader, "GET", "/audit/proof/x", nil), 400)
		want(t, e.as(t, openconsole.RoleReader, "GET", "/audit/proof/1?size=99", nil), 400)
		want(t, e.as(t, openconsole.RoleReader, "GET", "/audit/consistency", nil), 400)
		want(t, e.as(t, openconsole.RoleReader, "GET", "/audit/consistency?from=16", nil), 400)

		py := requirePython(t)
		script := filepath.Join("..", "testdata", "audit", "verify.py")
		verify := func(args ...string) (string, error) {
			out, err := exec.Command(py, append([]string{script, "--key", key.Verifier}, args...)...).CombinedOutput()
			return string(out), err
		}
		for _, p := range proofs {
			if out, err := verify("inclusion", p); err != nil {
				t.Errorf("verify.py inclusion %s: %v\n%s", filepath.Base(p), err, out)
			}
		}
		for _, p := range cons {
			if out, err := verify("consistency", p); err != nil {
				t.Errorf("verify.py consistency %s: %v\n%s", filepath.Base(p), err, out)
			}
		}
		// Changed answers are refused: another entry's field, a proof hash, the signature's key.
		tamper := func(src, name string, edit func(m map[string]any)) string {
			b, _ := os.ReadFile(src)
			var m map[string]any
			json.Unmarshal(b, &m)
			edit(m)
			b, _ = json.Marshal(m)
			p := filepath.Join(dir, name)
			os.WriteFile(p, b, 0o644)
			return p
		}
		flip := func(s string) string {
			h, _ := openconsole.ParseHash(s)
			h[0] ^= 1
			return openconsole.HashString(h)
		}
		for _, c := range []struct{ kind, file string }{
			{"inclusion", unsigned},
			{"inclusion", tamper(proofs[1], "bad-leaf.json", func(m map[string]any) {
				m["leaf"] = strings.Replace(m["leaf"].(string), `"seats":7`, `"seats":70`, 1)
			})},
			{"inclusion", tamper(proofs[1], "bad-entry.json", func(m map[string]any) { m["entry"].(map[string]any)["action"] = "license.revoke" })},
			{"inclusion", tamper(proofs[1], "bad-path.json", func(m map[string]any) {
				p := m["proof"].([]any)
				p[1] = flip(p[1].(string))
			})},
			{"inclusion", tamper(proofs[1], "bad-sig.json", func(m map[string]any) {
				m["checkpoint"] = strings.Replace(m["checkpoint"].(string), "\n15\n", "\n16\n", 1)
			})},
			{"consistency", tamper(cons[1], "bad-cons.json", func(m map[string]any) {
				p := m["proof"].([]any)
				p[0] = flip(p[0].(string))
			})},
		} {
			if out, err := verify(c.kind, c.file); err == nil {
				t.Errorf("verify.py accepted %s:\n%s", filepath.Base(c.file), out)
			}
		}
		_, other, _ := openconsole.NewAuditKey("")
		if out, err := exec.Command(py, script, "--key", other, "inclusion", proofs[0]).CombinedOutput(); err == nil {
			t.Errorf("verify.py accepted a checkpoint with another key:\n%s", out)
		}
	})
}

// requirePython returns python3 with the cryptography package, or skips the test (fails it where
// OPENCONSOLE_REQUIRE_TOOLS is set, as CI does).
func requirePython(t *testing.T) string {
	t.Helper()
	py, err := exec.LookPath("python3")
	if err == nil {
		err = exec.Command(py, "-c", "import cryptography.hazmat.primitives.asymmetric.ed25519").Run()
	}
	if err != nil {
		if os.Getenv("OPENCONSOLE_REQUIRE_TOOLS") != "" {
			t.Fatalf("python3 with the cryptography package is needed: %v", err)
		}
		t.Skipf("no python3 with the cryptography package: %v", err)
	}
	return py
}
