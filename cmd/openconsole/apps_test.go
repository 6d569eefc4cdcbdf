package main

import (
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"openconsole"
	"openconsole/admin"
)

// manifestDoc is a schema-valid manifest with the given fields replaced (a nil value deletes one).
func manifestDoc(t *testing.T, changes map[string]any) string {
	t.Helper()
	m := map[string]any{
		"_schemaVersion": "3.0.0", "app": "tech.flecs.official", "version": "1.0.0", "revision": "0",
		"image": "flecs.azurecr.io/tech.flecs.official", "multiInstance": false,
		"editors": []any{map[string]any{"name": "Web UI", "port": 8080}},
		"env":     []string{"LOG_LEVEL=info"}, "ports": []string{"8080:8080"}, "volumes": []string{"data:/var/lib/app"},
	}
	for k, v := range changes {
		if v == nil {
			delete(m, k)
		} else {
			m[k] = v
		}
	}
	b, err := json.Marshal(m)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

func writeFile(t *testing.T, name, content string) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), name)
	if err := os.WriteFile(p, []byte(content), 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

type manifestCLIJSON = admin.ManifestJSON

func TestAppManifestAddRefusesInvalidManifests(t *testing.T) {
	eachDB(t, func(t *testing.T, dsn string) {
		for _, tc := range []struct {
			name, doc, field string
		}{
			{"not_json", `{"app":`, "not a JSON object"},
			{"array", `[]`, "not a JSON object"},
			{"missing_app", manifestDoc(t, map[string]any{"app": nil}), `"app": is required`},
			{"missing_schema_version", manifestDoc(t, map[string]any{"_schemaVersion": nil}), `"_schemaVersion": is required`},
			{"missing_version", manifestDoc(t, map[string]any{"version": nil}), `"version": is required`},
			{"missing_image", manifestDoc(t, map[string]any{"image": nil}), `"image": is required`},
			{"app_pattern_upper", manifestDoc(t, map[string]any{"app": "Tech.Flecs.App"}), `"app"`},
			{"app_pattern_short", manifestDoc(t, map[string]any{"app": "ab"}), `"app"`},
			{"app_pattern_trailing_dot", manifestDoc(t, map[string]any{"app": "tech.flecs."}), `"app"`},
			{"app_not_string", manifestDoc(t, map[string]any{"app": 5}), `"app": must be a string`},
			{"schema_version_pattern", manifestDoc(t, map[string]any{"_schemaVersion": "3.0"}), `"_schemaVersion"`},
			{"schema_version_leading_zero", manifestDoc(t, map[string]any{"_schemaVersion": "03.0.0"}), `"_schemaVersion"`},
			{"minimum_flecs_version", manifestDoc(t, map[string]any{"_minimumFlecsVersion": "latest"}), `"_minimumFlecsVersion"`},
			{"image_pattern", manifestDoc(t, map[string]any{"image": "Not An Image"}), `"image"`},
			{"env_item", manifestDoc(t, map[string]any{"env": []string{"NOVALUE"}}), `"env": item 0`},
			{"port_range", manifestDoc(t, map[string]any{"ports": []string{"70000:80"}}), `"ports": item 0`},
			{"editor_port", manifestDoc(t, map[string]any{"editors": []any{map[string]any{"name": "x", "port": 0}}}), `"editors": item 0`},
			{"capability", manifestDoc(t, map[string]any{"capabilities": []string{"ROOT"}}), `"capabilities"`},
			{"multi_instance_type", manifestDoc(t, map[string]any{"multiInstance": "yes"}), `"multiInstance"`},
		} {
			t.Run(tc.name, func(t *testing.T) {
				f := writeFile(t, "manifest.json", tc.doc)
				runFail(t, 1, tc.field, "--db", dsn, "app", "manifest", "add", f, "--official")
			})
		}
		// Nothing was stored: no manifest, no app.
		st := openStore(t, dsn)
		ms, err := st.Manifests(context.Background(), "", "")
		if err != nil || len(ms) != 0 {
			t.Errorf("manifests after refused adds: %v, %v; want none", ms, err)
		}
		if _, err := st.App(context.Background(), "tech.flecs.official"); err != openconsole.ErrNotFound {
			t.Errorf("app after refused adds: err %v; want not found", err)
		}
		var list []manifestCLIJSON
		runItems(t, &list, "--db", dsn, "app", "manifest", "list")
		if len(list) != 0 {
			t.Errorf("manifest list %+v; want []", list)
		}
		runFail(t, 1, "no such file", "--db", dsn, "app", "manifest", "add", filepath.Join(t.TempDir(), "missing.json"))
		runFail(t, 2, "needs a subcommand", "--db", dsn, "app", "manifest")
		runFail(t, 2, "unknown command", "--db", dsn, "app", "manifest", "frobnicate")
	})
}

func TestAppManifestCommands(t *testing.T) {
	eachDB(t, func(t *testing.T, dsn string) {
		v3 := writeFile(t, "v3.json", manifestDoc(t, nil))
		v2 := writeFile(t, "v2.json", manifestDoc(t, map[string]any{"_schemaVersion": "2.0.0"}))
		other := writeFile(t, "other.json", manifestDoc(t, map[string]any{"app": "tech.flecs.community", "image": "flecs/tech.flecs.community"}))

		var m manifestCLIJSON
		runJSON(t, &m, "--db", dsn, "app", "manifest", "add", v3, "--official")
		if m.App != "tech.flecs.official" || m.Version != "1.0.0" || m.SchemaVersion != "3.0.0" || !m.Official || m.Replaced == nil || *m.Replaced {
			t.Errorf("manifest add printed %+v", m)
		}
		// Adding the same variant again replaces it; the app stays official without the flag.
		runJSON(t, &m, "--db", dsn, "app", "manifest", "add", v3)
		if !m.Official || m.Replaced == nil || !*m.Replaced {
			t.Errorf("second manifest add printed %+v; want official and replaced", m)
		}
		runJSON(t, &m, "--db", dsn, "app", "manifest", "add", v2)
		runJSON(t, &m, "--db", dsn, "app", "manifest", "add", other)
		if m.Official {
			t.Errorf("a new app without --official is official: %+v", m)
		}

		var list []manifestCLIJSON
		runItems(t, &list, "--db", dsn, "app", "manifest", "list", "--app", "tech.flecs.official")
		if len(list) != 2 || list[0].SchemaVersion == list[1].SchemaVersion || !list[0].Official || list[0].Replaced != nil {
			t.Errorf("manifest list --app: %+v; want the two official variants", list)
		}
		runItems(t, &list, "--db", dsn, "app", "manifest", "list")
		if len(list) != 3 {
			t.Errorf("manifest list: %d entries; want 3", len(list))
		}

		var removed struct {
			App           string  `json:"app"`
			Version       string  `json:"version"`
			SchemaVersion *string `json:"schemaVersion"`
			Removed       int     `json:"removed"`
		}
		runJSON(t, &removed, "--db", dsn, "app", "manifest", "remove", "tech.flecs.official", "1.0.0", "--schema-version", "2.0.0")
		if removed.Removed != 1 || removed.SchemaVersion == nil || *removed.SchemaVersion != "2.0.0" {
			t.Errorf("manifest remove printed %+v", removed)
		}
		runFail(t, 1, "no manifest", "--db", dsn, "app", "manifest", "remove", "tech.flecs.official", "1.0.0", "--schema-version", "2.0.0")
		runJSON(t, &removed, "--db", dsn, "app", "manifest", "remove", "tech.flecs.community", "1.0.0")
		if removed.Removed != 1 || removed.SchemaVersion != nil {
			t.Errorf("manifest remove printed %+v", removed)
		}
		runItems(t, &list, "--db", dsn, "app", "manifest", "list")
		if len(list) != 1 || list[0].SchemaVersion != "3.0.0" {
			t.Errorf("manifest list after removes: %+v; want the 3.0.0 variant only", list)
		}
		runFail(t, 2, "takes 2 argument", "--db", dsn, "app", "manifest", "remove", "tech.flecs.official")
	})
}

func TestAppCredentialsAndTokens(t *testing.T) {
	eachDB(t, func(t *testing.T, dsn string) {
		ctx := context.Background()
		const password = "Registry-Pa55word-7f3a"
		runFail(t, 1, "not found", "--db", dsn, "app", "credentials", "set", "tech.flecs.official", "--username", "pull", "--password-file", writeFile(t, "pw", password))
		var m manifestCLIJSON
		runJSON(t, &m, "--db", dsn, "app", "manifest", "add", writeFile(t, "m.json", manifestDoc(t, nil)), "--official")

		type credsOut struct {
			Name           string     `json:"name"`
			Official       bool       `json:"official"`
			CredentialsSet bool       `json:"credentialsSet"`
			CreatedAt      admin.Time `json:"createdAt"`
			UpdatedAt      admin.Time `json:"updatedAt"`
		}
		// From a file (with a trailing newline), then from standard input.
		for _, args := range [][]string{
			{"--password-file", writeFile(t, "pw", password+"\n")},
			{},
		} {
			r := run(t, password+"\n", append([]string{"--db", dsn, "app", "credentials", "set", "tech.flecs.official", "--username", "pull-user"}, args...)...)
			if r.code != 0 {
				t.Fatalf("credentials set %v: exit %d: %s", args, r.code, r.stderr)
			}
			if strings.Contains(r.stdout+r.stderr, password) {
				t.Errorf("credentials set printed the password: %s%s", r.stdout, r.stderr)
			}
			var out credsOut
			if err := json.Unmarshal([]byte(r.stdout), &out); err != nil || out.Name != "tech.flecs.official" || !out.CredentialsSet || !out.Official {
				t.Errorf("credentials set printed %s (%v)", r.stdout, err)
			}
		}
		runFail(t, 2, "--username", "--db", dsn, "app", "credentials", "set", "tech.flecs.official")
		runFail(t, 1, "no registry password", "--db", dsn, "app", "credentials", "set", "tech.flecs.official", "--username", "u", "--password-file", writeFile(t, "empty", "\n"))

		// Stored sealed: neither the password nor the username in the clear, and it opens.
		st := openStore(t, dsn)
		app, err := st.App(ctx, "tech.flecs.official")
		if err != nil {
			t.Fatal(err)
		}
		if app.Credentials == "" || strings.Contains(app.Credentials, password) || strings.Contains(app.Credentials, "pull-user") {
			t.Errorf("stored credentials %q; want them sealed", app.Credentials)
		}
		keys, err := st.DataKeys(ctx)
		if err != nil || len(keys) != 1 {
			t.Fatalf("data keys %v, %v; want one", keys, err)
		}
		if c, err := openconsole.OpenCredentials(keys, app.Name, app.Credentials); err != nil || c.Password != password || c.Username != "pull-user" {
			t.Errorf("opened credentials %+v, %v", c, err)
		}

		// A device takes a token; the admin lists it.
		svc, err := openconsole.NewService(ctx, st, openconsole.Options{})
		if err != nil {
			t.Fatal(err)
		}
		defer svc.Close()
		lic, err := svc.CreateLicense(ctx, openconsole.LicenseInput{Seats: 1})
		if err != nil {
			t.Fatal(err)
		}
		act, err := svc.Activate(ctx, openconsole.ActivateInput{LicenseKey: lic.Key})
		if err != nil {
			t.Fatal(err)
		}
		if c, err := svc.DownloadToken(ctx, act.Session, "tech.flecs.official", "1.0.0"); err != nil || c == nil || c.Password != password {
			t.Fatalf("download token: %+v, %v", c, err)
		}
		var tokens []admin.TokenIssuanceJSON
		runItems(t, &tokens, "--db", dsn, "app", "tokens", "list", "--session", strings.ToUpper(act.Session.ID))
		if len(tokens) != 1 || tokens[0].Session != act.Session.ID || tokens[0].App != "tech.flecs.official" || !tokens[0].Credentials {
			t.Errorf("tokens list %+v", tokens)
		}
		runItems(t, &tokens, "--db", dsn, "app", "tokens", "list", "--session", "00000000-0000-4000-8000-000000000000")
		if len(tokens) != 0 {
			t.Errorf("tokens list of an unknown session: %+v; want []", tokens)
		}
		runFail(t, 1, "UUID", "--db", dsn, "app", "tokens", "list", "--session", "nope")
	})
}

func TestProductAndSubscriptionCommands(t *testing.T) {
	eachDB(t, func(t *testing.T, dsn string) {
		type productOutJSON struct {
			ID            int64   `json:"id"`
			Name          string  `json:"name"`
			StoreID       int64   `json:"storeId"`
			App           *string `json:"app"`
			RatingCount   int     `json:"ratingCount"`
			AverageRating float64 `json:"averageRating"`
		}
		// An invalid product refuses the whole import.
		bad := writeFile(t, "bad.json", `[{"id":1,"name":"A"},{"name":"no id"}]`)
		runFail(t, 1, `product 1: field "id"`, "--db", dsn, "product", "import", bad)
		var ps []productOutJSON
		runItems(t, &ps, "--db", dsn, "product", "list")
		if len(ps) != 0 {
			t.Errorf("products after a refused import: %+v; want none", ps)
		}
		runFail(t, 1, `"meta_data[0]"`, "--db", dsn, "product", "import", writeFile(t, "meta.json",
			`[{"id":1,"name":"A","meta_data":[{"id":1,"key":"a","name":"b","value":""}]}]`))

		good := writeFile(t, "products.json", `[
			{"id":7,"name":"App","average_rating":"4.25","rating_count":4,"store":{"id":791},
			 "attributes":[{"id":1,"name":"reverse-domain-name","options":["tech.flecs.app"]}]},
			{"id":8,"name":"Plan","store":{"id":1}}]`)
		runItems(t, &ps, "--db", dsn, "product", "import", good)
		if len(ps) != 2 || ps[0].App == nil || *ps[0].App != "tech.flecs.app" || ps[0].AverageRating != 4.25 || ps[0].RatingCount != 4 || ps[1].App != nil {
			t.Errorf("product import printed %+v", ps)
		}
		runItems(t, &ps, "--db", dsn, "product", "list", "--store", "791")
		if len(ps) != 1 || ps[0].ID != 7 || ps[0].StoreID != 791 {
			t.Errorf("product list --store 791: %+v", ps)
		}
		// Import from standard input replaces by id.
		r := run(t, `[{"id":8,"name":"Plan 2","store":{"id":1}}]`, "--db", dsn, "product", "import", "-")
		if r.code != 0 {
			t.Fatalf("product import -: %d %s", r.code, r.stderr)
		}
		runItems(t, &ps, "--db", dsn, "product", "list")
		if len(ps) != 2 || ps[1].Name != "Plan 2" {
			t.Errorf("product list after re-import: %+v", ps)
		}

		var u userJSON
		runJSON(t, &u, "--db", dsn, "user", "create", "--username", "u1", "--password", "pw1")
		type subOut = admin.SubscriptionJSON
		var sub subOut
		runJSON(t, &sub, "--db", dsn, "subscription", "add", "--user", "u1", "--product", "7")
		if sub.ID <= 0 || sub.User != "u1" || sub.ProductID != 7 || sub.Status != "active" {
			t.Errorf("subscription add printed %+v", sub)
		}
		runJSON(t, &sub, "--db", dsn, "subscription", "add", "--user", "u1", "--product", "8", "--status", "cancelled")
		runFail(t, 1, "user \"nobody\" not found", "--db", dsn, "subscription", "add", "--user", "nobody", "--product", "7")
		runFail(t, 1, "product 99 not found", "--db", dsn, "subscription", "add", "--user", "u1", "--product", "99")
		runFail(t, 1, "status must be one of", "--db", dsn, "subscription", "add", "--user", "u1", "--product", "7", "--status", "gone")
		runFail(t, 2, "--user and --product", "--db", dsn, "subscription", "add", "--user", "u1")
		var subs []subOut
		runItems(t, &subs, "--db", dsn, "subscription", "list", "--user", "u1")
		if len(subs) != 2 || subs[0].ProductID != 7 || subs[1].Status != "cancelled" {
			t.Errorf("subscription list: %+v", subs)
		}
	})
}
