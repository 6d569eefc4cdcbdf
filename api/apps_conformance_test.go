package api_test

// Conformance cases 44-55 and 61-66 of the wire contract (§6: manifests, tokens, products and user
// routes), against the real HTTP server over a real store, on every engine. consoleEnv.do checks
// the cross-cutting rules on every response, including the X-Session-Id rules of §1.4 for
// manifests and tokens (checkWire).

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"regexp"
	"strings"
	"testing"
	"time"

	"openconsole"
	"openconsole/api"
	"openconsole/sqlstore/sqlstoretest"
)

const (
	appOfficial  = "tech.flecs.official"
	appCommunity = "tech.flecs.community"
	// The registry credentials of the official app.
	registryUser     = "flecs-pull-official"
	registryPassword = "s3cr3t-Registry-Pa55word"
	// Stores of the product fixtures.
	storeVendor  = 791
	storeDefault = 1
)

// manifestJSON is a small, schema-valid manifest of app at version for a manifest schema version.
func manifestJSON(app, version, schema string) string {
	m := map[string]any{
		"_schemaVersion": schema, "app": app, "version": version, "revision": "0",
		"image":         "flecs.azurecr.io/" + app,
		"multiInstance": false,
		"editors":       []any{map[string]any{"name": "Web UI", "port": 8080, "supportsReverseProxy": true}},
		"env":           []string{"LOG_LEVEL=info"},
		"ports":         []string{"8080:8080", "5001-5008:6001-6008"},
		"volumes":       []string{"app-data:/var/lib/app", "/etc/app:/etc/app"},
		"conffiles":     []string{"app.conf:/etc/app/app.conf:ro"},
		"labels":        []string{"tech.flecs", "tech.flecs.some-label=Some value"},
		"capabilities":  []string{"NET_ADMIN"},
	}
	if schema == "3.0.0" {
		m["_minimumFlecsVersion"] = "4.0.0"
		m["devices"] = []string{"/dev/net/tun"}
	}
	b, _ := json.Marshal(m)
	return string(b)
}

// productFixtures are four products: two apps in store 791, an app and a support plan (no app) in
// the default store. They carry what WooCommerce sends, unknown fields included, and leave out
// some required fields (filled on import) and one of meta_data's key and name.
const productFixtures = `[
 {"id":101,"name":"Official App","slug":"official-app","type":"simple","status":"publish",
  "description":"<p>The official app.</p>","short_description":"Official","average_rating":"4.00","rating_count":1,
  "categories":[{"id":27,"name":"App","slug":"app"}],
  "attributes":[{"id":1,"name":"reverse-domain-name","options":["tech.flecs.official"]},
                {"id":2,"name":"archs","options":["amd64","arm64"]},{"id":3,"name":"versions","options":["1.0.0"]}],
  "meta_data":[{"id":11,"key":"app-icon","value":"https://example.com/icon.png"},{"id":12,"key":"port-version","value":"1.0.0"},
               {"id":13,"key":"app-custom-link","value":[{"title":"Docs","icon":"","download_text":"","url":"https://example.com/docs"}]}],
  "stock_status":"instock",
  "store":{"id":791,"name":"Example Manufacturer","shop_name":"Example Shop","url":"https://example.com",
           "address":{"street_1":"Main St 1","street_2":"","city":"Stuttgart","zip":"70173","country":"DE","state":"BW"}},
  "permalink":"https://console.example/product/official-app","price":"0","purchasable":true,
  "images":[{"id":5,"src":"https://example.com/official.png"}]},
 {"id":102,"name":"Community App","status":"publish","description":"","short_description":"","average_rating":"0.00","rating_count":0,
  "categories":[],"attributes":[{"id":1,"name":"reverse-domain-name","options":["tech.flecs.community"]},{"id":2,"name":"archs","options":["amd64"]}],
  "meta_data":[{"id":21,"name":"port-author-name","value":"Community"}],"stock_status":"instock",
  "store":{"id":1,"name":"FLECS","shop_name":"FLECS Marketplace","url":"https://flecs.tech",
           "address":{"street_1":"","street_2":"","city":"","zip":"","country":"DE","state":""}},
  "permalink":"https://console.example/product/community-app","price":"","purchasable":false},
 {"id":103,"name":"Support Plan","status":"publish","description":"Support","short_description":"Support",
  "average_rating":"0.00","rating_count":0,"categories":[{"id":30,"name":"Service","slug":"service"}],"attributes":[],"meta_data":[],
  "stock_status":"instock","store":{"id":1,"name":"FLECS","shop_name":"FLECS Marketplace","url":"https://flecs.tech"},
  "permalink":"https://console.example/product/support","price":"99.00","purchasable":true},
 {"id":104,"name":"Some App","attributes":[{"id":1,"name":"reverse-domain-name","options":["com.example.some-app"]},
  {"id":2,"name":"archs","options":["arm64"]}],"store":{"id":791}}
]`

// appFixtures are the fixtures of §6 for cases 44-66 on top of seedFixtures: the official app with
// manifests at _schemaVersion 2.0.0 and 3.0.0 and registry credentials, the community app, the
// products, and u1's subscriptions (product 101 active, 103 active, 102 cancelled).
type appFixtures struct {
	fixtures
	live wireSession // a live session, on L2
}

func seedApps(t *testing.T, e *consoleEnv) appFixtures {
	t.Helper()
	ctx := context.Background()
	f := appFixtures{fixtures: seedFixtures(t, e)}
	yes, no := true, false
	for _, m := range []struct {
		doc      string
		official *bool
	}{
		{manifestJSON(appOfficial, "1.0.0", "2.0.0"), &yes},
		{manifestJSON(appOfficial, "1.0.0", "3.0.0"), nil},
		{manifestJSON(appCommunity, "1.0.0", "3.0.0"), &no},
		{manifestJSON(appCommunity, "2.0.0+b1", "2.0.0"), nil}, // a version with a literal +
	} {
		if _, _, _, err := e.svc.AddManifest(ctx, []byte(m.doc), m.official); err != nil {
			t.Fatalf("add manifest: %v", err)
		}
	}
	if err := e.svc.SetRegistryCredentials(ctx, appOfficial, openconsole.RegistryCredentials{Username: registryUser, Password: registryPassword}); err != nil {
		t.Fatalf("set credentials: %v", err)
	}
	if _, err := e.svc.ImportProducts(ctx, []byte(productFixtures)); err != nil {
		t.Fatalf("import products: %v", err)
	}
	for _, s := range []struct {
		product int64
		status  string
	}{{101, "active"}, {103, "active"}, {102, "cancelled"}} {
		if _, err := e.svc.AddSubscription(ctx, "u1", s.product, s.status); err != nil {
			t.Fatalf("add subscription: %v", err)
		}
	}
	r := e.do(t, activateKey(f.l2))
	wantStatus(t, r, http.StatusOK)
	f.live = r.session(t)
	return f
}

func manifestPath(app, version, query string) string {
	p := pathManifests + "/" + app + "/" + version
	if query != "" {
		p += "?" + query
	}
	return p
}

// getManifest is a manifest request as CORE sends it, with the session id value sid (sent even when
// empty, as CORE does).
func getManifest(path, sid string) call {
	return call{method: http.MethodGet, path: path, header: []string{sidHdr(sid)}}
}

func tokenCall(sid, body string) call {
	return call{path: pathTokens, ctype: ctJSON, body: body, header: []string{sidHdr(sid)}}
}

func appVersionBody(app, version string) string {
	b, _ := json.Marshal(map[string]string{"app": app, "version": version})
	return string(b)
}

// wantManifest checks a manifest 200 (case 44): data is the manifest of app at version with the
// schema version, and the session header names sid.
func wantManifest(t *testing.T, r reply, app, version, schema, sid string) {
	t.Helper()
	wantStatus(t, r, http.StatusOK)
	if _, ok := r.field(t, "data").(map[string]any); !ok {
		t.Fatalf("data %#v; want an object", r.field(t, "data"))
	}
	for path, want := range map[string]string{"data._schemaVersion": schema, "data.app": app, "data.version": version} {
		if got := r.text(t, path); got != want {
			t.Errorf("%s %q; want %q", path, got, want)
		}
	}
	if got := r.text(t, "data.image"); got != "flecs.azurecr.io/"+app {
		t.Errorf("data.image %q; want the stored manifest's", got)
	}
	wantSID(t, r, sid)
}

func TestConformanceApps(t *testing.T) {
	sqlstoretest.Each(t, func(t *testing.T, dsn string) {
		e := newConsole(t, dsn, openconsole.Options{SessionTTL: time.Hour})
		f := seedApps(t, e)
		ctx := context.Background()
		live := f.live.ID
		u1Token := e.login(t, "u1", "pw1")
		u0Token := e.login(t, "u0", "pw0")

		step := func(name string, fn func(t *testing.T)) {
			t.Helper()
			if !t.Run(name, fn) {
				t.FailNow()
			}
		}

		// Manifests.
		step("44_manifest_max_3", func(t *testing.T) {
			r := e.do(t, getManifest(manifestPath(appOfficial, "1.0.0", "max_manifest_version=3.0.0"), live))
			wantManifest(t, r, appOfficial, "1.0.0", "3.0.0", live)
			if got := r.text(t, "data._minimumFlecsVersion"); got != "4.0.0" {
				t.Errorf("data._minimumFlecsVersion %q; want the 3.0.0 variant's 4.0.0", got)
			}
		})
		step("45_manifest_max_2.5", func(t *testing.T) {
			for _, max := range []string{"2.5.0", "2.0.0", "3.0.0-beta.1", "2.99.99-rc.1+build"} {
				r := e.do(t, getManifest(manifestPath(appOfficial, "1.0.0", "max_manifest_version="+strings.ReplaceAll(max, "+", "%2B")), live))
				wantManifest(t, r, appOfficial, "1.0.0", "2.0.0", live)
			}
			// No parameter (the old C++ daemon): the newest variant below 3.0.0 (§2.6, decision 10).
			wantManifest(t, e.do(t, getManifest(manifestPath(appOfficial, "1.0.0", ""), live)), appOfficial, "1.0.0", "2.0.0", live)
		})
		step("46_manifest_version_exact", func(t *testing.T) {
			wantManifest(t, e.do(t, getManifest(manifestPath(appOfficial, "1.0.0", "manifest_version=2.0.0"), live)),
				appOfficial, "1.0.0", "2.0.0", live)
			// manifest_version beats max_manifest_version (§7.8), whatever their order.
			for _, q := range []string{"manifest_version=2.0.0&max_manifest_version=3.0.0", "max_manifest_version=3.0.0&manifest_version=2.0.0"} {
				wantManifest(t, e.do(t, getManifest(manifestPath(appOfficial, "1.0.0", q), live)), appOfficial, "1.0.0", "2.0.0", live)
			}
			wantManifest(t, e.do(t, getManifest(manifestPath(appOfficial, "1.0.0", "manifest_version=3.0.0&max_manifest_version=2.0.0"), live)),
				appOfficial, "1.0.0", "3.0.0", live)
			r := e.do(t, getManifest(manifestPath(appOfficial, "1.0.0", "manifest_version=9.9.9"), live))
			wantError(t, r, http.StatusNotFound, "")
			wantSID(t, r, live)
		})
		step("47_manifest_bad_semver", func(t *testing.T) {
			for _, tc := range []struct{ query, param string }{
				{"max_manifest_version=abc", "max_manifest_version"},
				{"max_manifest_version=3.0", "max_manifest_version"},
				{"max_manifest_version=", "max_manifest_version"},
				{"max_manifest_version=v3.0.0", "max_manifest_version"},
				{"manifest_version=1.0", "manifest_version"},
				{"manifest_version=01.0.0&max_manifest_version=3.0.0", "manifest_version"},
			} {
				r := e.do(t, getManifest(manifestPath(appOfficial, "1.0.0", tc.query), live))
				wantError(t, r, http.StatusBadRequest, "Invalid query parameter "+tc.param)
				wantSID(t, r, live)
			}
		})
		step("48_manifest_unknown", func(t *testing.T) {
			for _, p := range []string{
				manifestPath("tech.flecs.unknown", "1.0.0", "max_manifest_version=3.0.0"),
				manifestPath(appOfficial, "9.9.9", "max_manifest_version=3.0.0"),
				manifestPath(appOfficial, "1.0.0", "max_manifest_version=1.0.0"), // no variant that old
				manifestPath("Not_An_App", "1.0.0", ""),
			} {
				r := e.do(t, getManifest(p, live))
				wantError(t, r, http.StatusNotFound, "")
				wantSID(t, r, live)
			}
		})
		step("49_manifest_no_live_session", func(t *testing.T) {
			revoked := e.do(t, activateKey(f.lmono))
			wantStatus(t, revoked, http.StatusOK)
			if _, err := e.svc.RevokeSession(ctx, revoked.session(t).ID); err != nil {
				t.Fatal(err)
			}
			p := manifestPath(appOfficial, "1.0.0", "max_manifest_version=3.0.0")
			for name, c := range map[string]call{
				"empty":     getManifest(p, ""),
				"unknown":   getManifest(p, "00000000-0000-4000-8000-000000000000"),
				"malformed": getManifest(p, "200-active"),
				"revoked":   getManifest(p, revoked.session(t).ID),
				"missing":   {method: http.MethodGet, path: p},
				// The session is checked before the parameters and the app.
				"bad_param":   getManifest(manifestPath(appOfficial, "1.0.0", "max_manifest_version=abc"), ""),
				"unknown_app": getManifest(manifestPath("tech.flecs.unknown", "1.0.0", ""), ""),
			} {
				t.Run(name, func(t *testing.T) {
					wantError(t, e.do(t, c), http.StatusForbidden, "Session not found")
				})
			}
			// Expired: two hours idle with a one-hour TTL.
			e.skew.Store(int64(2 * time.Hour))
			wantError(t, e.do(t, getManifest(p, live)), http.StatusForbidden, "Session not found")
			wantError(t, e.do(t, tokenCall(live, appVersionBody(appOfficial, "1.0.0"))), http.StatusForbidden, "Session not found")
			e.skew.Store(0)
			wantManifest(t, e.do(t, getManifest(p, live)), appOfficial, "1.0.0", "3.0.0", live)
		})
		step("50_manifest_double_slash_and_encoding", func(t *testing.T) {
			for _, p := range []string{
				"/" + manifestPath(appOfficial, "1.0.0", "max_manifest_version=3.0.0"),
				"//api//v2/manifests//tech.flecs.official//1.0.0/?max_manifest_version=3.0.0",
				"/api/v2/manifests/tech%2Eflecs%2Eofficial/1%2e0%2e0?max_manifest_version=3.0.0", // RS/TS
				"/api/v2/%6Danifests/tech.flecs.official/1.0.0?max_manifest_version=3.0.0",
			} {
				wantManifest(t, e.do(t, getManifest(p, live)), appOfficial, "1.0.0", "3.0.0", live)
			}
			// + is a literal + whether it comes encoded (RS) or raw (CPP).
			for _, p := range []string{
				manifestPath(appCommunity, "2.0.0%2Bb1", "max_manifest_version=3.0.0"),
				manifestPath(appCommunity, "2.0.0+b1", "max_manifest_version=3.0.0"),
			} {
				wantManifest(t, e.do(t, getManifest(p, live)), appCommunity, "2.0.0+b1", "2.0.0", live)
			}
			// A wrong method on the pattern route is 405 with Allow.
			r := e.do(t, call{path: manifestPath(appOfficial, "1.0.0", ""), header: []string{sidHdr(live)}})
			wantError(t, r, http.StatusMethodNotAllowed, "")
			if !headerListHas(r.header, "Allow", "GET") {
				t.Errorf("Allow %q; want GET", r.header.Values("Allow"))
			}
			// Too few or too many segments match no route.
			for _, p := range []string{pathManifests + "/" + appOfficial, manifestPath(appOfficial, "1.0.0/x", "")} {
				wantError(t, e.do(t, getManifest(p, live)), http.StatusNotFound, "")
			}
		})

		// Tokens.
		wantToken := func(t *testing.T, r reply) {
			t.Helper()
			wantStatus(t, r, http.StatusOK)
			if code := r.integer(t, "statusCode"); code != 200 {
				t.Errorf("statusCode %d; want 200", code)
			}
			if got := r.text(t, "data.token.username"); got != registryUser {
				t.Errorf("data.token.username %q; want %q", got, registryUser)
			}
			if got := r.text(t, "data.token.password"); got != registryPassword {
				t.Errorf("data.token.password %q; want the one set", got)
			}
			wantSID(t, r, live)
		}
		step("51_token_official", func(t *testing.T) {
			wantToken(t, e.do(t, tokenCall(live, appVersionBody(appOfficial, "1.0.0"))))
		})
		step("52_token_unofficial", func(t *testing.T) {
			for _, app := range []string{appCommunity, "tech.flecs.unknown"} {
				r := e.do(t, tokenCall(live, appVersionBody(app, "1.0.0")))
				wantStatus(t, r, http.StatusNoContent)
				wantSID(t, r, live)
			}
		})
		step("53_token_form_content_type", func(t *testing.T) {
			c := tokenCall(live, appVersionBody(appOfficial, "1.0.0"))
			c.ctype = ctForm
			wantToken(t, e.do(t, c))
		})
		step("54_token_no_live_session", func(t *testing.T) {
			before, err := e.svc.TokenIssuances(ctx, "")
			if err != nil {
				t.Fatal(err)
			}
			for name, c := range map[string]call{
				"empty":           tokenCall("", appVersionBody(appOfficial, "1.0.0")),
				"unknown":         tokenCall("00000000-0000-4000-8000-000000000000", appVersionBody(appOfficial, "1.0.0")),
				"unofficial":      tokenCall("", appVersionBody(appCommunity, "1.0.0")),
				"missing_header":  {path: pathTokens, ctype: ctJSON, body: appVersionBody(appCommunity, "1.0.0")},
				"missing_version": tokenCall("", `{"app":"tech.flecs.official"}`),
				"malformed_body":  tokenCall("not-a-uuid", `{"app":`),
			} {
				t.Run(name, func(t *testing.T) {
					wantError(t, e.do(t, c), http.StatusForbidden, "Session not found")
				})
			}
			after, err := e.svc.TokenIssuances(ctx, "")
			if err != nil {
				t.Fatal(err)
			}
			if len(after) != len(before) {
				t.Errorf("%d token issuances recorded for refused requests; want none", len(after)-len(before))
			}
		})
		step("55_token_missing_fields", func(t *testing.T) {
			for _, body := range []string{`{"app":"tech.flecs.official"}`, `{"version":"1.0.0"}`, `{}`, ``, `null`,
				`{"app":"tech.flecs.official","version":""}`} {
				r := e.do(t, tokenCall(live, body))
				wantError(t, r, http.StatusBadRequest, "")
			}
			wantError(t, e.do(t, tokenCall(live, `{"app":"tech.flecs.official","version":1}`)), http.StatusBadRequest, "")
		})
		step("token_issuances_recorded", func(t *testing.T) {
			got, err := e.svc.TokenIssuances(ctx, live)
			if err != nil {
				t.Fatal(err)
			}
			var summary []string
			for _, ti := range got {
				summary = append(summary, fmt.Sprintf("%s %s %v x%d", ti.App, ti.Version, ti.Credentials, ti.Count))
				if ti.SessionID != live || ti.IssuedAt.IsZero() {
					t.Errorf("issuance %+v; want session %s and a time", ti, live)
				}
			}
			// One record per app version and kind, counting its answers (the official app was asked
			// twice: tests 51 and 53).
			want := []string{appOfficial + " 1.0.0 true x2", appCommunity + " 1.0.0 false x1", "tech.flecs.unknown 1.0.0 false x1"}
			if strings.Join(summary, "|") != strings.Join(want, "|") {
				t.Errorf("issuances %q; want %q", summary, want)
			}
		})

		// Products and user routes.
		step("61_product_apps", func(t *testing.T) {
			r := e.do(t, call{method: http.MethodGet, path: pathProductApps})
			wantStatus(t, r, http.StatusOK)
			products := checkProducts(t, r)
			if n := r.integer(t, "data.totalProducts"); n != int64(len(products)) {
				t.Errorf("data.totalProducts %d; want len(products) %d", n, len(products))
			}
			if got := productIDs(products); got != "101 102 104" {
				t.Errorf("app product ids %s; want 101 102 104 (103 is no app)", got)
			}
			// Fields the import left out are filled; unknown ones are kept.
			p104 := products[2]
			if p104["average_rating"] != "0.00" || p104["stock_status"] != "instock" {
				t.Errorf("product 104 defaults: average_rating %v, stock_status %v", p104["average_rating"], p104["stock_status"])
			}
			if products[0]["slug"] != "official-app" || products[0]["images"] == nil {
				t.Errorf("product 101 lost its unknown fields: %v", products[0])
			}
		})
		step("62_product_apps_store_id", func(t *testing.T) {
			r := e.do(t, call{method: http.MethodGet, path: pathProductApps + "?store_id=791"})
			wantStatus(t, r, http.StatusOK)
			products := checkProducts(t, r)
			if got := productIDs(products); got != "101 104" {
				t.Errorf("store 791 product ids %s; want 101 104", got)
			}
			for _, p := range products {
				if id, _ := asInt(p["store"].(map[string]any)["id"]); id != storeVendor {
					t.Errorf("product %v in store %d; want %d", p["id"], id, storeVendor)
				}
			}
			if n := r.integer(t, "data.totalProducts"); n != 2 {
				t.Errorf("data.totalProducts %d; want 2", n)
			}
			for _, q := range []string{"abc", "", "1.5", "-1", "791abc"} {
				wantError(t, e.do(t, call{method: http.MethodGet, path: pathProductApps + "?store_id=" + q}), http.StatusBadRequest, "Invalid query parameter store_id")
				wantError(t, e.do(t, call{method: http.MethodGet, path: pathProducts + "?store_id=" + q}), http.StatusBadRequest, "Invalid query parameter store_id")
			}
			// serve --default-store: no store_id means that store; store_id still wins.
			e.apiOpts = []api.Option{api.WithDefaultStore(storeDefault)}
			e.restart(t)
			defer func() { e.apiOpts = nil; e.restart(t) }()
			for path, want := range map[string]string{
				pathProductApps:                   "102",
				pathProducts:                      "102 103",
				pathProductApps + "?store_id=791": "101 104",
			} {
				r := e.do(t, call{method: http.MethodGet, path: path})
				wantStatus(t, r, http.StatusOK)
				if got := productIDs(checkProducts(t, r)); got != want {
					t.Errorf("%s with default store %d: ids %s; want %s", path, storeDefault, got, want)
				}
			}
		})
		step("63_products_paged", func(t *testing.T) {
			r := e.do(t, call{method: http.MethodGet, path: pathProducts})
			wantStatus(t, r, http.StatusOK)
			if got := productIDs(checkProducts(t, r)); got != "101 102 103 104" {
				t.Errorf("product ids %s; want all four", got)
			}
			if page, pages := r.integer(t, "data.page"), r.integer(t, "data.totalPages"); page != 1 || pages != 1 {
				t.Errorf("page %d of %d; want 1 of 1", page, pages)
			}
			for _, tc := range []struct {
				query       string
				page, pages int64
				ids         string
			}{
				{"per_page=3", 1, 2, "101 102 103"},
				{"per_page=3&page=2", 2, 2, "104"},
				{"per_page=3&page=3", 3, 2, ""},
				{"per_page=1&page=2&store_id=1", 2, 2, "103"},
			} {
				r := e.do(t, call{method: http.MethodGet, path: pathProducts + "?" + tc.query})
				wantStatus(t, r, http.StatusOK)
				if got := productIDs(checkProducts(t, r)); got != tc.ids {
					t.Errorf("%s: ids %q; want %q", tc.query, got, tc.ids)
				}
				if page, pages := r.integer(t, "data.page"), r.integer(t, "data.totalPages"); page != tc.page || pages != tc.pages {
					t.Errorf("%s: page %d of %d; want %d of %d", tc.query, page, pages, tc.page, tc.pages)
				}
			}
			for _, q := range []string{"page=0", "page=x", "per_page=0", "per_page=101", "per_page=-5"} {
				wantError(t, e.do(t, call{method: http.MethodGet, path: pathProducts + "?" + q}), http.StatusBadRequest, "")
			}
		})
		review := func(productID int, rating float64) string {
			b, _ := json.Marshal(map[string]any{"data": map[string]any{"product_id": productID, "review": "x",
				"reviewer": "u1", "reviewer_email": "u1@x", "rating": rating}})
			return string(b)
		}
		step("64_review_bearer", func(t *testing.T) {
			r := e.do(t, call{path: pathReviews, ctype: ctJSON, body: review(101, 5), header: []string{bearerHdr(u1Token)}})
			wantStatus(t, r, http.StatusCreated)
			if ok, _ := r.field(t, "success").(bool); !ok {
				t.Errorf("success %v; want true", r.field(t, "success"))
			}
			r.integer(t, "data.review.id")
			for path, want := range map[string]string{
				"data.review.product_name": "Official App", "data.review.product_permalink": "https://console.example/product/official-app",
				// The reviewer is the account, whatever the body says (decision, §2.10).
				"data.review.status": "approved", "data.review.reviewer": "User One", "data.review.reviewer_email": "u1@example.com", "data.review.review": "x",
			} {
				if got := r.text(t, path); got != want {
					t.Errorf("%s %q; want %q", path, got, want)
				}
			}
			dateRE := regexp.MustCompile(`^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d$`)
			for _, p := range []string{"data.review.date_created", "data.review.date_created_gmt"} {
				if d := r.text(t, p); !dateRE.MatchString(d) {
					t.Errorf("%s %q; want YYYY-MM-DDTHH:MM:SS", p, d)
				}
			}
			if id := r.integer(t, "data.review.product_id"); id != 101 {
				t.Errorf("data.review.product_id %d; want 101", id)
			}
			if n, ok := r.field(t, "data.review.rating").(json.Number); !ok || n.String() != "5" {
				t.Errorf("data.review.rating %v; want 5", r.field(t, "data.review.rating"))
			}
			if !r.boolean(t, "data.review.verified") {
				t.Error("data.review.verified false; want true (u1 has an active subscription of 101)")
			}
			// The product's rating moved from 4.00 over 1 rating to 4.50 over 2.
			wantRating(t, e, 101, "4.50", 2)
		})
		step("65_review_body_jwt", func(t *testing.T) {
			// u1's second review of 101, with the token in the body, replaces the first: u1
			// counts once, now with 3 (4 + 3 over 2).
			first := e.do(t, call{path: pathReviews, ctype: ctJSON, body: review(101, 5), header: []string{bearerHdr(u1Token)}})
			body := strings.TrimSuffix(review(101, 3), "}") + `,"jwt":"` + u1Token + `"}`
			r := e.do(t, call{path: pathReviews, ctype: ctJSON, body: body})
			wantStatus(t, r, http.StatusCreated)
			if id, firstID := r.integer(t, "data.review.id"), first.integer(t, "data.review.id"); id != firstID {
				t.Errorf("second review id %d; want the first's %d (replaced)", id, firstID)
			}
			wantRating(t, e, 101, "3.50", 2)
			// 102's subscription is cancelled: u1 does not own it and may not review it (§2.10).
			wantError(t, e.do(t, call{path: pathReviews, ctype: ctJSON, body: review(102, 1), header: []string{bearerHdr(u1Token)}}),
				http.StatusForbidden, "Only a user who owns this product may review it")
			wantError(t, e.do(t, call{path: pathReviews, ctype: ctJSON, body: review(101, 1), header: []string{bearerHdr(u0Token)}}),
				http.StatusForbidden, "")
			wantRating(t, e, 102, "0.00", 0)
			for name, c := range map[string]call{
				"neither":          {path: pathReviews, ctype: ctJSON, body: review(102, 4)},
				"bad_bearer":       {path: pathReviews, ctype: ctJSON, body: review(102, 4), header: []string{bearerHdr("garbage")}},
				"basic":            {path: pathReviews, ctype: ctJSON, body: review(102, 4), header: []string{hdr("Authorization", "Basic abc")}},
				"bad_body_jwt":     {path: pathReviews, ctype: ctJSON, body: strings.TrimSuffix(review(102, 4), "}") + `,"jwt":"garbage"}`},
				"expired_bearer":   {path: pathReviews, ctype: ctJSON, body: review(102, 4), header: []string{bearerHdr(e.expiredToken(t, f.u1.ID))}},
				"empty_body_jwt":   {path: pathReviews, ctype: ctJSON, body: strings.TrimSuffix(review(102, 4), "}") + `,"jwt":""}`},
				"bearer_beats_jwt": {path: pathReviews, ctype: ctJSON, body: strings.TrimSuffix(review(102, 4), "}") + `,"jwt":"` + u1Token + `"}`, header: []string{bearerHdr(tamper(u1Token))}},
			} {
				t.Run(name, func(t *testing.T) {
					wantError(t, e.do(t, c), http.StatusUnauthorized, "")
				})
			}
			for name, body := range map[string]string{
				"malformed":       `{"data":`,
				"no_data":         `{}`,
				"missing_rating":  `{"data":{"product_id":101,"review":"x","reviewer":"u1","reviewer_email":"u1@x"}}`,
				"rating_too_high": review(101, 7),
				"rating_zero":     review(101, 0),
				"unknown_product": review(999, 5),
				"empty_review":    `{"data":{"product_id":101,"review":"","reviewer":"u1","reviewer_email":"u1@x","rating":5}}`,
				"wrong_type":      `{"data":{"product_id":"101","review":"x","reviewer":"u1","reviewer_email":"u1@x","rating":5}}`,
			} {
				t.Run(name, func(t *testing.T) {
					wantError(t, e.do(t, call{path: pathReviews, ctype: ctJSON, body: body, header: []string{bearerHdr(u1Token)}}), http.StatusBadRequest, "")
				})
			}
			// Refused reviews changed no rating.
			wantRating(t, e, 101, "3.50", 2)
			wantRating(t, e, 102, "0.00", 0)
		})
		step("66_user_routes", func(t *testing.T) {
			for path, want := range map[string]string{
				pathMyProducts:                   "101 103",
				pathMyProductApps:                "101",
				pathMyProducts + "?store_id=1":   "103",
				pathMyProducts + "?store_id=791": "101",
			} {
				r := e.do(t, call{method: http.MethodGet, path: path, header: []string{bearerHdr(u1Token)}})
				wantStatus(t, r, http.StatusOK)
				if got := productIDs(checkProducts(t, r)); got != want {
					t.Errorf("%s: ids %q; want %q", path, got, want)
				}
				if page, pages := r.integer(t, "data.page"), r.integer(t, "data.totalPages"); page != 1 || pages != 1 {
					t.Errorf("%s: page %d of %d; want 1 of 1", path, page, pages)
				}
			}
			r := e.do(t, call{method: http.MethodGet, path: pathMySubscription, header: []string{bearerHdr(u1Token)}})
			wantStatus(t, r, http.StatusOK)
			subs, _ := r.field(t, "data.subscriptions").([]any)
			if n := r.integer(t, "data.totalSubscriptions"); n != 3 || len(subs) != 3 {
				t.Fatalf("totalSubscriptions %d, %d subscriptions; want 3", n, len(subs))
			}
			var got []string
			for _, s := range subs {
				o, _ := s.(map[string]any)
				checkOrder(t, o, f.u1.ID)
				items := o["line_items"].([]any)
				pid, _ := asInt(items[0].(map[string]any)["product_id"])
				got = append(got, fmt.Sprintf("%d:%s", pid, o["status"]))
			}
			if strings.Join(got, " ") != "101:active 103:active 102:cancelled" {
				t.Errorf("subscriptions %q; want 101:active 103:active 102:cancelled", got)
			}
			// u0 owns nothing.
			for _, path := range []string{pathMyProducts, pathMyProductApps} {
				r := e.do(t, call{method: http.MethodGet, path: path, header: []string{bearerHdr(u0Token)}})
				wantStatus(t, r, http.StatusOK)
				if got := productIDs(checkProducts(t, r)); got != "" {
					t.Errorf("%s for u0: ids %q; want none", path, got)
				}
			}
			r = e.do(t, call{method: http.MethodGet, path: pathMySubscription, header: []string{bearerHdr(u0Token)}})
			if n := r.integer(t, "data.totalSubscriptions"); n != 0 {
				t.Errorf("u0 totalSubscriptions %d; want 0", n)
			}
			for _, path := range []string{pathMyProducts, pathMyProductApps, pathMySubscription} {
				for name, headers := range map[string][]string{
					"none": nil, "garbage": {bearerHdr("garbage")}, "basic": {hdr("Authorization", "Basic abc")},
					"expired": {bearerHdr(e.expiredToken(t, f.u1.ID))},
				} {
					wantError(t, e.do(t, call{method: http.MethodGet, path: path, header: headers}), http.StatusUnauthorized, "")
					_ = name
				}
			}
			wantError(t, e.do(t, call{method: http.MethodGet, path: pathMyProducts + "?store_id=x", header: []string{bearerHdr(u1Token)}}),
				http.StatusBadRequest, "Invalid query parameter store_id")
		})
		step("header_rules_exercised", func(t *testing.T) {
			for _, k := range []string{"manifests 200", "manifests 400", "manifests 404", "tokens 200", "tokens 204"} {
				if e.seen[k] == 0 {
					t.Errorf("no %s was checked", k)
				}
			}
		})
	})
}

// checkProducts checks every product of data.products (case 61): every field §2.8 requires, with
// its type; meta_data items with key == name; attribute options string arrays. It returns them.
func checkProducts(t *testing.T, r reply) []map[string]any {
	t.Helper()
	raw, ok := r.field(t, "data.products").([]any)
	if !ok {
		t.Fatalf("data.products %#v; want an array", r.field(t, "data.products"))
	}
	isInt := func(v any) bool { _, ok := asInt(v); return ok }
	isStr := func(v any) bool { _, ok := v.(string); return ok }
	isBool := func(v any) bool { _, ok := v.(bool); return ok }
	ratingRE := regexp.MustCompile(`^\d+\.\d\d$`)
	var out []map[string]any
	for i, v := range raw {
		p, ok := v.(map[string]any)
		if !ok {
			t.Fatalf("product %d %#v; want an object", i, v)
		}
		out = append(out, p)
		bad := func(field string) { t.Errorf("product %d (id %v): %s %#v", i, p["id"], field, p[field]) }
		for _, f := range []string{"id", "rating_count"} {
			if !isInt(p[f]) {
				bad(f)
			}
		}
		for _, f := range []string{"name", "status", "description", "short_description", "average_rating", "stock_status", "permalink", "price"} {
			if !isStr(p[f]) {
				bad(f)
			}
		}
		if s, _ := p["average_rating"].(string); !ratingRE.MatchString(s) {
			bad("average_rating")
		}
		if !isBool(p["purchasable"]) {
			bad("purchasable")
		}
		items := func(f string, check func(map[string]any) bool) {
			list, ok := p[f].([]any)
			if !ok {
				bad(f)
				return
			}
			for _, it := range list {
				if m, ok := it.(map[string]any); !ok || !check(m) {
					t.Errorf("product %d (id %v): %s item %#v", i, p["id"], f, it)
				}
			}
		}
		items("categories", func(c map[string]any) bool { return isInt(c["id"]) && isStr(c["name"]) && isStr(c["slug"]) })
		items("attributes", func(a map[string]any) bool {
			opts, ok := a["options"].([]any)
			for _, o := range opts {
				ok = ok && isStr(o)
			}
			return ok && isInt(a["id"]) && isStr(a["name"])
		})
		items("meta_data", func(m map[string]any) bool {
			_, hasValue := m["value"]
			return isInt(m["id"]) && isStr(m["key"]) && m["key"] == m["name"] && hasValue
		})
		store, ok := p["store"].(map[string]any)
		if !ok || !isInt(store["id"]) || !isStr(store["name"]) || !isStr(store["shop_name"]) || !isStr(store["url"]) {
			bad("store")
			continue
		}
		addr, ok := store["address"].(map[string]any)
		for _, f := range []string{"street_1", "street_2", "city", "zip", "country", "state"} {
			ok = ok && isStr(addr[f])
		}
		if !ok {
			bad("store")
		}
	}
	return out
}

func productIDs(ps []map[string]any) string {
	var ids []string
	for _, p := range ps {
		ids = append(ids, fmt.Sprint(p["id"]))
	}
	return strings.Join(ids, " ")
}

// wantRating checks a product's average_rating and rating_count as GET /api/v2/products shows them.
func wantRating(t *testing.T, e *consoleEnv, id int64, avg string, count int64) {
	t.Helper()
	r := e.do(t, call{method: http.MethodGet, path: pathProducts})
	for _, p := range checkProducts(t, r) {
		if pid, _ := asInt(p["id"]); pid == id {
			n, _ := asInt(p["rating_count"])
			if p["average_rating"] != avg || n != count {
				t.Errorf("product %d: average_rating %v, rating_count %v; want %q, %d", id, p["average_rating"], p["rating_count"], avg, count)
			}
			return
		}
	}
	t.Errorf("product %d not listed", id)
}

// checkOrder checks an order of my/subscriptions (§2.11).
func checkOrder(t *testing.T, o map[string]any, customer int64) {
	t.Helper()
	if _, ok := asInt(o["id"]); !ok {
		t.Errorf("order id %#v; want an integer", o["id"])
	}
	if _, ok := o["status"].(string); !ok {
		t.Errorf("order status %#v; want a string", o["status"])
	}
	if c, ok := asInt(o["customer_id"]); !ok || c != customer {
		t.Errorf("order customer_id %#v; want %d", o["customer_id"], customer)
	}
	items, ok := o["line_items"].([]any)
	if !ok || len(items) == 0 {
		t.Fatalf("order line_items %#v; want a non-empty array", o["line_items"])
	}
	for _, it := range items {
		li, _ := it.(map[string]any)
		for _, f := range []string{"id", "product_id", "variation_id", "quantity"} {
			if _, ok := asInt(li[f]); !ok {
				t.Errorf("line item %s %#v; want an integer", f, li[f])
			}
		}
		if _, ok := li["status"].(string); !ok {
			t.Errorf("line item status %#v; want a string", li["status"])
		}
		if _, ok := li["image"].(map[string]any); !ok {
			t.Errorf("line item image %#v; want an object", li["image"])
		}
	}
	b, ok := o["billing"].(map[string]any)
	if !ok {
		t.Fatalf("order billing %#v; want an object", o["billing"])
	}
	for _, f := range []string{"first_name", "last_name", "company", "email"} {
		if _, ok := b[f].(string); !ok {
			t.Errorf("billing %s %#v; want a string", f, b[f])
		}
	}
}
