package main

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"golang.org/x/mod/sumdb/tlog"

	"openconsole"
	"openconsole/admin"
	"openconsole/client/offline"
)

// auditEntries returns the log as audit export prints it.
func exportAudit(t *testing.T, dsn string) []admin.AuditJSON {
	t.Helper()
	r := run(t, "", "--db", dsn, "audit", "export")
	if r.code != 0 {
		t.Fatalf("audit export: %d %s", r.code, r.stderr)
	}
	var out []admin.AuditJSON
	for _, line := range strings.Split(strings.TrimSpace(r.stdout), "\n") {
		if line == "" {
			continue
		}
		var j admin.AuditJSON
		if err := json.Unmarshal([]byte(line), &j); err != nil {
			t.Fatalf("audit export line %q: %v", line, err)
		}
		out = append(out, j)
	}
	return out
}

// verifyResult is what audit verify prints.
type verifyResult struct {
	OK          bool   `json:"ok"`
	Entries     int64  `json:"entries"`
	RootHash    string `json:"rootHash"`
	VerifiedTo  int64  `json:"verifiedTo"`
	Checkpoints []struct {
		Name    string `json:"name"`
		Origin  string `json:"origin"`
		Size    int64  `json:"size"`
		OK      bool   `json:"ok"`
		Problem string `json:"problem"`
	} `json:"checkpoints"`
	Problems []struct {
		Seq     int64   `json:"seq"`
		Between []int64 `json:"between"`
		Message string  `json:"message"`
	} `json:"problems"`
	Keys    []string `json:"keys"`
	KeyFrom string   `json:"keyFrom"`
}

func auditVerify(t *testing.T, dsn string, wantCode int, args ...string) (verifyResult, string) {
	t.Helper()
	r := run(t, "", append([]string{"--db", dsn, "audit", "verify"}, args...)...)
	if r.code != wantCode {
		t.Fatalf("audit verify %v: exit %d, want %d\n%s%s", args, r.code, wantCode, r.stdout, r.stderr)
	}
	var v verifyResult
	dec := json.NewDecoder(strings.NewReader(r.stdout))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&v); err != nil {
		t.Fatalf("audit verify output: %v\n%s", err, r.stdout)
	}
	return v, r.stderr
}

// auditedDB is a database with ten audit entries (licenses created, one suspended) and a checkpoint
// of them saved in a file.
func auditedDB(t *testing.T, dsn string) (checkpoint string) {
	t.Helper()
	var keys []string
	for i := 0; i < 9; i++ {
		var l licenseJSONOut
		runJSON(t, &l, "--db", dsn, "license", "create", "--seats", fmt.Sprint(i+1), "--note", fmt.Sprintf("tamper %d", i))
		keys = append(keys, l.Key)
	}
	var l licenseJSONOut
	runJSON(t, &l, "--db", dsn, "license", "suspend", keys[4])
	checkpoint = filepath.Join(t.TempDir(), "checkpoint-10")
	var saved struct {
		File     string     `json:"file"`
		Size     int64      `json:"size"`
		RootHash string     `json:"rootHash"`
		SignedAt admin.Time `json:"signedAt"`
	}
	runJSON(t, &saved, "--db", dsn, "audit", "checkpoint", "--out", checkpoint)
	if saved.Size != 10 || saved.File != checkpoint {
		t.Fatalf("audit checkpoint: %+v, want size 10", saved)
	}
	v, _ := auditVerify(t, dsn, 0, "--checkpoint", checkpoint)
	if !v.OK || v.Entries != 10 || v.VerifiedTo != 10 || len(v.Checkpoints) != 2 || v.KeyFrom != "server" {
		t.Fatalf("verify before tampering: %+v", v)
	}
	return checkpoint
}

// TestAuditTampering: audit verify finds each way of rewriting history in the database, exits 1 and
// names the entry (or, for a tail rewritten and re-signed with the key from the database, the
// saved checkpoint it no longer extends and where the change lies).
func TestAuditTampering(t *testing.T) {
	cases := []struct {
		name   string
		tamper func(t *testing.T, dsn string)
		saved  bool   // verify against the saved checkpoint
		want   string // in the first problem
		seq    int64  // the entry the first problem names (-1: a range)
		at     int64  // the first entry changed
	}{
		{"an entry's details edited", func(t *testing.T, dsn string) {
			execSQL(t, dsn, `UPDATE audit_entries SET after = REPLACE(after, '"seats":4', '"seats":40') WHERE seq = 3`)
		}, false, "entry 3 does not match", 3, 3},
		{"an entry's actor edited", func(t *testing.T, dsn string) {
			execSQL(t, dsn, `UPDATE audit_entries SET actor_name = 'somebody-else' WHERE seq = 7`)
		}, false, "entry 7 does not match", 7, 7},
		{"an entry deleted", func(t *testing.T, dsn string) {
			execSQL(t, dsn, `DELETE FROM audit_entries WHERE seq = 2`)
		}, false, "entry 2 is missing", 2, 2},
		{"the last entries deleted", func(t *testing.T, dsn string) {
			execSQL(t, dsn, `DELETE FROM audit_entries WHERE seq >= 8`)
		}, false, "entries from 8 on are missing", 8, 8},
		{"two entries swapped", func(t *testing.T, dsn string) {
			execSQL(t, dsn, `UPDATE audit_entries SET seq = -1 WHERE seq = 1`)
			execSQL(t, dsn, `UPDATE audit_entries SET seq = 1 WHERE seq = 4`)
			execSQL(t, dsn, `UPDATE audit_entries SET seq = 4 WHERE seq = -1`)
		}, false, "entry 1 does not match", 1, 1},
		{"an entry and its leaf hash rewritten", func(t *testing.T, dsn string) {
			// The attacker recomputes the leaf's hash but cannot redo the signed root.
			st := openStore(t, dsn)
			var e openconsole.AuditEntry
			for got, err := range st.ListAudit(context.Background(), openconsole.AuditQuery{From: 5, Limit: 1}) {
				if err != nil {
					t.Fatal(err)
				}
				e = got
			}
			e.Target = "license:0000000000000000"
			h := tlog.RecordHash(openconsole.AuditLeaf(e))
			execSQL(t, dsn, `UPDATE audit_entries SET target = 'license:0000000000000000' WHERE seq = 5`)
			execSQL(t, dsn, fmt.Sprintf(`UPDATE audit_hashes SET hash = %s WHERE idx = %d`, hexLiteral(dsn, h[:]), tlog.StoredHashIndex(0, 5)))
		}, false, "does not extend checkpoint latest", -1, 5},
		{"the tail rewritten, re-hashed and re-signed", func(t *testing.T, dsn string) {
			// With the key from the database, an attacker can rewrite the log from entry 4 on and
			// sign a new checkpoint: only a checkpoint saved before shows it.
			execSQL(t, dsn, `DELETE FROM audit_entries WHERE seq >= 4`)
			execSQL(t, dsn, fmt.Sprintf(`DELETE FROM audit_hashes WHERE idx >= %d`, tlog.StoredHashIndex(0, 4)))
			execSQL(t, dsn, `DELETE FROM audit_checkpoints`)
			for i := 0; i < 8; i++ {
				var l licenseJSONOut
				runJSON(t, &l, "--db", dsn, "license", "create", "--seats", "1", "--note", "rewritten")
			}
			v, _ := auditVerify(t, dsn, 0)
			if !v.OK || v.Entries != 12 {
				t.Fatalf("the rewritten log without the saved checkpoint: %+v", v)
			}
		}, true, "does not extend checkpoint", -1, 4},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			eachDB(t, func(t *testing.T, dsn string) {
				saved := auditedDB(t, dsn)
				c.tamper(t, dsn)
				var args []string
				if c.saved {
					args = []string{"--checkpoint", saved}
				}
				v, stderr := auditVerify(t, dsn, 1, args...)
				if v.OK || len(v.Problems) == 0 {
					t.Fatalf("verify after tampering: %+v", v)
				}
				first := v.Problems[0]
				if !strings.Contains(first.Message, c.want) || first.Seq != c.seq || !strings.Contains(stderr, first.Message) {
					t.Errorf("first problem %+v (stderr %q), want %q at entry %d", first, stderr, c.want, c.seq)
				}
				if c.seq < 0 && (len(first.Between) != 2 || first.Between[0] > c.at || first.Between[1] < c.at) {
					t.Errorf("the range %v does not hold the changed entry", first.Between)
				}
			})
		})
	}
}

// hexLiteral is a byte string literal for the engine of dsn.
func hexLiteral(dsn string, b []byte) string {
	if strings.HasPrefix(dsn, "sqlite:") {
		return fmt.Sprintf("X'%x'", b)
	}
	return fmt.Sprintf(`'\x%x'::bytea`, b)
}

// TestAuditKeyCommands: keygen writes a key file only its owner may read; serve refuses a key file
// that others may read; audit key prints the verifier of a file and of the log; verify with the
// wrong key fails.
func TestAuditKeyCommands(t *testing.T) {
	dir := t.TempDir()
	file := filepath.Join(dir, "audit.key")
	var gen struct {
		File, Origin, Verifier string
	}
	runJSON(t, &gen, "audit", "keygen", "--out", file, "--name", "audit.example.com")
	fi, err := os.Stat(file)
	if err != nil || fi.Mode().Perm() != 0o600 || gen.Origin != "audit.example.com" || !strings.HasPrefix(gen.Verifier, "audit.example.com+") {
		t.Fatalf("keygen: %+v, mode %v, %v", gen, fi.Mode(), err)
	}
	runFail(t, 1, "file exists", "audit", "keygen", "--out", file)
	var fromFile struct {
		Origin, Verifier, File string
	}
	runJSON(t, &fromFile, "audit", "key", "--key-file", file)
	if fromFile.Verifier != gen.Verifier {
		t.Errorf("audit key --key-file: %+v, want %s", fromFile, gen.Verifier)
	}
	loose := filepath.Join(dir, "loose.key")
	b, _ := os.ReadFile(file)
	os.WriteFile(loose, b, 0o644)
	dsn := "sqlite:" + filepath.Join(dir, "oc.db")
	runFail(t, 1, "may be read by others", "--db", dsn, "serve", "--addr", "127.0.0.1:0", "--audit-key-file", loose)

	eachDB(t, func(t *testing.T, dsn string) {
		auditedDB(t, dsn)
		var k admin.AuditKeyJSON
		runJSON(t, &k, "--db", dsn, "audit", "key")
		if k.Held != "database" || len(k.Verifiers) != 1 || k.Verifier != k.Verifiers[0] {
			t.Fatalf("audit key: %+v", k)
		}
		v, _ := auditVerify(t, dsn, 0, "--key", k.Verifier)
		if !v.OK || v.KeyFrom != "flag" {
			t.Errorf("verify with the key: %+v", v)
		}
		v, stderr := auditVerify(t, dsn, 1, "--key", gen.Verifier)
		if v.OK || !strings.Contains(stderr, "checkpoint latest") {
			t.Errorf("verify with another key: %+v %s", v, stderr)
		}
	})
}

// lastReq names the one request file a test device wrote in dir.
func lastReq(t *testing.T, dir string) string {
	t.Helper()
	m, _ := filepath.Glob(filepath.Join(dir, "req-*.note"))
	if len(m) != 1 {
		t.Fatalf("request files: %v", m)
	}
	return filepath.Base(m[0])
}

// TestEveryCLIChangeIsAudited: every command that changes something appends exactly one entry,
// made by the operating-system user on the command line ("cli"), with the action of its
// operation; the table must name every command that is not read-only.
func TestEveryCLIChangeIsAudited(t *testing.T) {
	readOnly := map[string]bool{"serve": true, "init": true, "version": true, "user list": true, "user show": true, "license list": true,
		"license show": true, "serial list": true, "session list": true, "session show": true, "token list": true,
		"stats": true, "backup": true, "app manifest list": true, "app tokens list": true, "product list": true,
		"subscription list": true, "audit list": true, "audit export": true, "audit checkpoint": true,
		"audit verify": true, "audit key": true, "audit keygen": true, "offline list": true, "offline key": true,
		"offline keygen": true}
	eachDB(t, func(t *testing.T, dsn string) {
		dir := t.TempDir()
		manifest := filepath.Join(dir, "manifest.json")
		os.WriteFile(manifest, []byte(`{"_schemaVersion":"3.0.0","app":"tech.flecs.cli","version":"1.0.0","revision":"0","image":"flecs.azurecr.io/tech.flecs.cli"}`), 0o644)
		products := filepath.Join(dir, "products.json")
		os.WriteFile(products, []byte(`[{"id":71,"name":"CLI app","store":{"id":791}}]`), 0o644)
		const key = "CLI-AUDIT-KEY-0001"
		dev := newTestDevice(t)
		var sid, tokenID string
		cases := []struct {
			cmd    string
			args   func() []string
			stdin  string
			action string
		}{
			{"license create", func() []string { return []string{"--key", key, "--seats", "2"} }, "", "license.create"},
			{"license update", func() []string { return []string{key, "--seats", "3"} }, "", "license.update"},
			{"license suspend", func() []string { return []string{key} }, "", "license.suspend"},
			{"license resume", func() []string { return []string{key} }, "", "license.resume"},
			{"session revoke", func() []string { sid = activate(t, dsn, key).ID; return []string{sid} }, "", "session.revoke"},
			{"user create", func() []string { return []string{"--username", "cli", "--password-stdin"} }, "cli-secret-pw\n", "user.create"},
			{"user update", func() []string { return []string{"cli", "--email", "cli@example.com"} }, "", "user.update"},
			{"serial register", func() []string {
				return []string{"--serial", "SN-CLI-1", "--model", "IPC", "--manufacturer", "ACME", "--manufacturer-id", "7", "--date", "2025-02-03"}
			}, "", "serial.register"},
			{"token create", func() []string { return []string{"--name", "cli-token", "--role", "reader"} }, "", "token.create"},
			{"token revoke", func() []string { return []string{tokenID} }, "", "token.revoke"},
			{"check", func() []string {
				execSQL(t, dsn, `UPDATE licenses SET taken = taken + 1 WHERE key = '`+key+`'`)
				return []string{"--repair"}
			}, "", "seats.repair"},
			{"jwt rotate", func() []string { return nil }, "", "signing-key.rotate"},
			{"app manifest add", func() []string { return []string{manifest, "--official"} }, "", "manifest.add"},
			{"app credentials set", func() []string { return []string{"tech.flecs.cli", "--username", "pull"} }, "registry-secret-pw\n", "app.credentials"},
			{"app manifest remove", func() []string { return []string{"tech.flecs.cli", "1.0.0"} }, "", "manifest.remove"},
			{"product import", func() []string { return []string{products} }, "", "product.import"},
			{"subscription add", func() []string { return []string{"--user", "cli", "--product", "71"} }, "", "subscription.create"},
			{"offline issue", func() []string { return []string{"--request", dev.requestFile(t, key)} }, "", "offline.issue"},
			{"offline deactivate", func() []string {
				// The proof of the certificate just issued: the request's nonce, counter 1.
				b, _ := os.ReadFile(filepath.Join(dev.dir, lastReq(t, dev.dir)))
				r, err := offline.ParseRequest(b)
				if err != nil {
					t.Fatal(err)
				}
				dev.cert = &offline.Certificate{License: r.License, Nonce: r.Nonce, Counter: 1}
				return []string{"--proof", dev.proofFile(t)}
			}, "", "offline.deactivate"},
			{"license revoke", func() []string { return []string{key} }, "", "license.revoke"},
		}
		covered := map[string]bool{}
		for _, c := range cases {
			covered[c.cmd] = true
			before := len(exportAudit(t, dsn))
			args := append(append([]string{"--db", dsn}, strings.Fields(c.cmd)...), c.args()...)
			r := run(t, c.stdin, args...)
			if r.code != 0 {
				t.Fatalf("%s: exit %d: %s", c.cmd, r.code, r.stderr)
			}
			if c.cmd == "token create" {
				var tok tokenJSONOut
				json.Unmarshal([]byte(r.stdout), &tok)
				tokenID = tok.ID
			}
			log := exportAudit(t, dsn)
			if len(log) != before+1 {
				t.Errorf("%s made %d entries, want 1", c.cmd, len(log)-before)
				continue
			}
			en := log[len(log)-1]
			if en.Action != c.action || en.Actor.Kind != openconsole.ActorCLI || en.Actor.Name != localUser() {
				t.Errorf("%s: entry %s by %+v, want %s by the local user %s", c.cmd, en.Action, en.Actor, c.action, localUser())
			}
		}
		for cmd := range commands {
			if cmd == "check" {
				continue // check changes something only with --repair, which the table runs
			}
			if !readOnly[cmd] && !covered[cmd] {
				t.Errorf("%s is neither read-only nor in the table", cmd)
			}
		}
		if r := run(t, "", "--db", dsn, "audit", "export"); strings.Contains(r.stdout, "cli-secret-pw") ||
			strings.Contains(r.stdout, "registry-secret-pw") || strings.Contains(r.stdout, key) {
			t.Errorf("the audit log holds a secret or a full license key:\n%s", r.stdout)
		}
		v, _ := auditVerify(t, dsn, 0)
		if !v.OK || v.Entries != int64(len(cases)) {
			t.Errorf("verify after every change: %+v", v)
		}
	})
}
