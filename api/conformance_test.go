package api_test

// The conformance cases of the wire contract (/work/shared/docs/wire-contract.md §6), run against
// the real HTTP server over a real store, on every engine. Cases 44-55 and 61-66 (manifests, tokens,
// products and user routes) are in apps_conformance_test.go. Cases 5 and 40-43 hold for
// every response of every test: consoleEnv.do checks them (see checkWire).

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"math"
	"net/http"
	"regexp"
	"strings"
	"testing"
	"time"

	"openconsole"
	"openconsole/sqlstore/sqlstoretest"
)

// keyL1 is license L1 of the fixtures, as the contract spells it.
const keyL1 = "AC75-267F-EF82-3731-AA42"

// fixtures are the users and licenses of §6.
type fixtures struct {
	u1, u0, m1 openconsole.User
	// License keys. L1 (2 seats) and L3 (1 seat) are owned by u1; L2 (1 seat), LREV (revoked) and
	// LMONO (10 seats, for the timestamp checks of case 24) have no owner.
	l1, l2, lrev, l3, lmono string
}

// seedFixtures creates the fixtures through the Service's admin methods.
//
// Ownership: the contract has u1 own both L1 and L3, and bearer mode draws from the user's
// licenses in id order, the first with a free seat. L1 is created first, so bearer mode would draw
// from L1 while it has a free seat; case 25 still yields L3 because it runs after cases 14 and 17,
// which took both of L1's seats (case 18 checks that L1 is full). Keeping L1 owned by u1, as
// written, also makes case 26 stronger: u1 then has two full licenses and no free one. LMONO, which
// the extra activations of case 24 use, has no owner so that it never takes part in bearer mode.
func seedFixtures(t *testing.T, e *consoleEnv) fixtures {
	t.Helper()
	ctx := context.Background()
	user := func(in openconsole.UserInput) openconsole.User {
		t.Helper()
		u, err := e.svc.CreateUser(ctx, in)
		if err != nil {
			t.Fatalf("create user %s: %v", in.Username, err)
		}
		return u
	}
	license := func(in openconsole.LicenseInput) string {
		t.Helper()
		l, err := e.svc.CreateLicense(ctx, in)
		if err != nil {
			t.Fatalf("create license %+v: %v", in, err)
		}
		return l.Key
	}
	var f fixtures
	f.u1 = user(openconsole.UserInput{Username: "u1", Password: "pw1", Email: "u1@example.com", DisplayName: "User One"})
	f.u0 = user(openconsole.UserInput{Username: "u0", Password: "pw0", Email: "u0@example.com"})
	f.m1 = user(openconsole.UserInput{Username: "m1", Password: "pwm1", Email: "m1@example.com", Vendor: true})
	f.l1 = license(openconsole.LicenseInput{Key: keyL1, Owner: "u1", Seats: 2})
	f.l2 = license(openconsole.LicenseInput{Seats: 1})
	f.lrev = license(openconsole.LicenseInput{Seats: 1})
	if _, err := e.svc.RevokeLicense(ctx, f.lrev, 0); err != nil {
		t.Fatal(err)
	}
	f.l3 = license(openconsole.LicenseInput{Owner: "u1", Seats: 1})
	f.lmono = license(openconsole.LicenseInput{Seats: 10})
	return f
}

// coreSession is a session as FLECS Core models it: both fields optional.
type coreSession struct {
	ID        *string `json:"id"`
	Timestamp *int64  `json:"timestamp"`
}

// coreDevice emulates how FLECS Core stores the session it receives (§3.4): from the X-Session-Id
// header of any response (its middleware, first), then from the body of an activate 200. The
// incoming session replaces the stored one iff the stored one has no timestamp or no id, or
// incoming.timestamp >= stored.timestamp; otherwise it is silently ignored.
type coreDevice struct {
	stored coreSession
}

func (d *coreDevice) offer(in coreSession) {
	s := d.stored
	if s.ID == nil || s.Timestamp == nil || (in.Timestamp != nil && *in.Timestamp >= *s.Timestamp) {
		d.stored = in
	}
}

// observe applies a response the way Core does.
func (d *coreDevice) observe(r reply) {
	if v := r.header.Get("X-Session-Id"); v != "" {
		var in coreSession
		if json.Unmarshal([]byte(v), &in) == nil { // Core logs a bad header and ignores it
			d.offer(in)
		}
	}
	if r.status == http.StatusOK {
		if raw, ok := lookup(r.obj, "data.sessionId"); ok {
			b, _ := json.Marshal(raw)
			var in coreSession
			if json.Unmarshal(b, &in) == nil {
				d.offer(in)
			}
		}
	}
}

// is reports whether the stored session is exactly s.
func (d *coreDevice) is(s wireSession) bool {
	return d.stored.ID != nil && d.stored.Timestamp != nil && *d.stored.ID == s.ID && *d.stored.Timestamp == s.Timestamp
}

// TestConformance runs cases 1-38, 40-43 and 67 in the contract's order, on one server whose
// state carries from case to case (S1, S2, ... are the sessions the cases name). Case 24 restarts
// the server in the middle, so cases 25-38 also show that sessions, seats and tokens survive a
// restart. The run stops at the first failing case, since later ones build on it.
func TestConformance(t *testing.T) {
	sqlstoretest.Each(t, func(t *testing.T, dsn string) {
		e := newConsole(t, dsn, openconsole.Options{})
		f := seedFixtures(t, e)
		ctx := context.Background()

		var (
			u1Token, u0Token string
			login6           reply
			s1, s2, s3, s4   wireSession
			core             coreDevice // case 67: the device of steps 14, 15 and 17
		)
		step := func(name string, fn func(t *testing.T)) {
			t.Helper()
			if !t.Run(name, fn) {
				t.FailNow()
			}
		}

		// Cross-cutting.
		step("01_preflight", func(t *testing.T) {
			r := e.do(t, call{method: http.MethodOptions, path: pathLogin, header: []string{
				hdr("Origin", "http://device.local"),
				hdr("Access-Control-Request-Method", "POST"),
				hdr("Access-Control-Request-Headers", "content-type"),
			}})
			if r.status != http.StatusOK && r.status != http.StatusNoContent {
				t.Fatalf("status %d; want 200 or 204", r.status)
			}
			if r.header.Get("Access-Control-Allow-Origin") == "" {
				t.Error("no Access-Control-Allow-Origin")
			}
			for _, h := range []string{"Content-Type", "Authorization", "X-Session-Id"} {
				if !headerListHas(r.header, "Access-Control-Allow-Headers", h) {
					t.Errorf("Access-Control-Allow-Headers %q; want it to list %s", r.header.Values("Access-Control-Allow-Headers"), h)
				}
			}
			for _, m := range []string{"GET", "POST", "OPTIONS"} {
				if !headerListHas(r.header, "Access-Control-Allow-Methods", m) {
					t.Errorf("Access-Control-Allow-Methods %q; want it to list %s", r.header.Values("Access-Control-Allow-Methods"), m)
				}
			}
		})
		step("02_cors_on_normal_responses", func(t *testing.T) {
			// Only the CORS headers are checked here (products/apps itself is case 61); checkWire
			// checks them on every request with an Origin.
			for _, c := range []call{
				{method: http.MethodGet, path: "/api/v2/products/apps"},
				validateCall(),
			} {
				c.header = append(c.header, hdr("Origin", "http://device.local"))
				r := e.do(t, c)
				if got := r.header.Get("Access-Control-Allow-Origin"); got == "" {
					t.Errorf("%s: no Access-Control-Allow-Origin", c.path)
				}
				if !headerListHas(r.header, "Access-Control-Expose-Headers", "X-Session-Id") {
					t.Errorf("%s: Access-Control-Expose-Headers %q; want X-Session-Id", c.path, r.header.Values("Access-Control-Expose-Headers"))
				}
			}
		})
		step("03_unknown_path", func(t *testing.T) {
			wantError(t, e.do(t, call{method: http.MethodGet, path: "/api/v2/nope"}), http.StatusNotFound, "")
		})
		step("04_wrong_method", func(t *testing.T) {
			r := e.do(t, call{method: http.MethodGet, path: pathActivate})
			wantError(t, r, http.StatusMethodNotAllowed, "")
			if !headerListHas(r.header, "Allow", "POST") {
				t.Errorf("Allow %q; want it to list POST", r.header.Values("Allow"))
			}
		})

		// Login and auth validate.
		step("06_login", func(t *testing.T) {
			before := time.Now().Unix()
			r := e.do(t, call{path: pathLogin, ctype: ctJSON, body: `{"username":"u1","password":"pw1","issueJWT":true}`})
			wantStatus(t, r, http.StatusOK)
			if id := r.integer(t, "data.user.ID"); id != f.u1.ID {
				t.Errorf("data.user.ID %d; want %d", id, f.u1.ID)
			}
			for path, want := range map[string]string{
				"data.user.display_name": "User One",
				"data.user.user_email":   "u1@example.com",
				"data.user.user_login":   "u1",
			} {
				if got := r.text(t, path); got != want {
					t.Errorf("%s %q; want %q", path, got, want)
				}
			}
			u1Token = r.text(t, "data.jwt.token")
			checkJWTShape(t, u1Token)
			if exp := r.integer(t, "data.jwt.token_expires"); exp <= before || exp >= 1<<31 {
				t.Errorf("data.jwt.token_expires %d; want now (%d) < t < 2^31", exp, before)
			}
			if r.boolean(t, "data.feature_flags.isVendor") {
				t.Error("data.feature_flags.isVendor true for u1; want false")
			}
			r.boolean(t, "data.feature_flags.isWhitelabeled")
			login6 = r
		})
		step("07_login_without_issueJWT", func(t *testing.T) {
			r := e.do(t, call{path: pathLogin, ctype: ctJSON, body: `{"username":"u1","password":"pw1"}`})
			wantStatus(t, r, http.StatusOK)
			checkJWTShape(t, r.text(t, "data.jwt.token"))
		})
		step("08_login_from_browser_origin", func(t *testing.T) {
			r := e.do(t, call{path: pathLogin, ctype: ctJSON, body: `{"username":"u1","password":"pw1","issueJWT":true}`,
				header: []string{hdr("Origin", "http://device.local")}})
			wantStatus(t, r, http.StatusOK)
			if got := r.header.Get("Access-Control-Allow-Origin"); got != "http://device.local" && got != "*" {
				t.Errorf("Access-Control-Allow-Origin %q; want the origin or *", got)
			}
		})
		step("09_bad_credentials", func(t *testing.T) {
			for _, tc := range []struct{ name, body string }{
				{"wrong_password", `{"username":"u1","password":"pw2","issueJWT":true}`},
				{"unknown_user", `{"username":"nobody","password":"pw1","issueJWT":true}`},
			} {
				t.Run(tc.name, func(t *testing.T) {
					wantError(t, e.do(t, call{path: pathLogin, ctype: ctJSON, body: tc.body}), http.StatusForbidden, "")
				})
			}
		})
		step("10_login_malformed_json", func(t *testing.T) {
			for _, body := range []string{`{"username":"u1","password":`, `username=u1&password=pw1`} {
				wantError(t, e.do(t, call{path: pathLogin, ctype: ctJSON, body: body}), http.StatusBadRequest, "")
			}
		})
		step("11_auth_validate", func(t *testing.T) {
			r := e.do(t, call{path: pathAuthValidate, ctype: ctJSON, body: tokenBody(u1Token)})
			wantStatus(t, r, http.StatusOK)
			if !r.boolean(t, "data.isValid") {
				t.Error("data.isValid false; want true")
			}
			if r.boolean(t, "data.feature_flags.ff.isVendor") {
				t.Error("data.feature_flags.ff.isVendor true for u1; want false")
			}
			r.boolean(t, "data.feature_flags.ff.isWhitelabeled")
			// The compatibility claims of §2.2.
			if got := r.integer(t, "data.userId"); got != f.u1.ID {
				t.Errorf("data.userId %d; want %d", got, f.u1.ID)
			}
			if got, want := r.integer(t, "data.exp"), login6.integer(t, "data.jwt.token_expires"); got != want {
				t.Errorf("data.exp %d; want token_expires %d", got, want)
			}
			// The vendor's token says so.
			m1 := e.login(t, "m1", "pwm1")
			r = e.do(t, call{path: pathAuthValidate, ctype: ctJSON, body: tokenBody(m1)})
			wantStatus(t, r, http.StatusOK)
			if !r.boolean(t, "data.feature_flags.ff.isVendor") {
				t.Error("data.feature_flags.ff.isVendor false for m1; want true")
			}
		})
		step("12_auth_validate_refused", func(t *testing.T) {
			for _, tc := range []struct{ name, token string }{
				{"garbage", "garbage"},
				{"expired", e.expiredToken(t, f.u1.ID)},
				{"forged_signature", tamper(u1Token)},
				{"alg_none", unsignedToken(t, u1Token)},
				{"empty", ""},
			} {
				t.Run(tc.name, func(t *testing.T) {
					r := e.do(t, call{path: pathAuthValidate, ctype: ctJSON, body: tokenBody(tc.token)})
					wantError(t, r, http.StatusForbidden, "Invalid or expired token")
				})
			}
		})
		step("13_login_fits_core_u32", func(t *testing.T) {
			if id := login6.integer(t, "data.user.ID"); id < 0 || id > math.MaxUint32 {
				t.Errorf("data.user.ID %d; want 0 <= ID <= 2^32-1", id)
			}
			if exp := login6.integer(t, "data.jwt.token_expires"); exp < 0 || exp > math.MaxUint32 {
				t.Errorf("data.jwt.token_expires %d; want 0 <= t <= 2^32-1", exp)
			}
		})

		// Activation, key mode.
		step("14_activate_key", func(t *testing.T) {
			r := e.do(t, activateKey(f.l1))
			wantStatus(t, r, http.StatusOK)
			s1 = r.session(t)
			if got := r.text(t, "data.licenseKey"); got != f.l1 {
				t.Errorf("data.licenseKey %q; want %q", got, f.l1)
			}
			core.observe(r)
		})
		step("15_activate_key_with_live_session", func(t *testing.T) {
			r := e.do(t, activateKey(f.l1, sidHdr(s1.ID)))
			wantStatus(t, r, http.StatusNoContent)
			if got := wantSID(t, r, s1.ID); got != s1 {
				t.Errorf("X-Session-Id %+v; want S1 unchanged, %+v", got, s1)
			}
			core.observe(r)
		})
		step("16_activate_key_form_content_type", func(t *testing.T) {
			c := activateKey(f.l1, sidHdr(s1.ID))
			c.ctype = ctForm
			r := e.do(t, c)
			wantStatus(t, r, http.StatusNoContent)
			wantSID(t, r, s1.ID)
		})
		step("17_activate_key_unknown_session", func(t *testing.T) {
			r := e.do(t, activateKey(f.l1, sidHdr("00000000-0000-4000-8000-000000000000")))
			wantStatus(t, r, http.StatusOK)
			s2 = r.session(t)
			if s2.ID == s1.ID {
				t.Errorf("S2 id %s equals S1's; want a new id", s2.ID)
			}
			if s2.Timestamp < s1.Timestamp {
				t.Errorf("T2 %d < T1 %d", s2.Timestamp, s1.Timestamp)
			}
			core.observe(r)
		})
		step("67_core_emulation", func(t *testing.T) {
			if !core.is(s2) {
				t.Fatalf("Core stored %s; want S2 %+v, the latest session issued", fmtCore(core.stored), s2)
			}
			if last := e.issued[len(e.issued)-1]; last != s2 {
				t.Errorf("latest issued %+v; want S2 %+v", last, s2)
			}
			// S1 stays valid beside S2 (§3.3), but the device now holds S2, which validates.
			wantValid(t, e.do(t, validateCall(sidHdr(*core.stored.ID))), true)
		})
		step("18_activate_key_full", func(t *testing.T) {
			r := e.do(t, activateKey(f.l1))
			wantError(t, r, http.StatusForbidden, "License found but maximum activations reached")
		})
		step("19_activate_key_malformed_session", func(t *testing.T) {
			r := e.do(t, activateKey(f.l1, sidHdr("not-a-uuid")))
			wantError(t, r, http.StatusForbidden, "License found but maximum activations reached")
		})
		step("20_activate_unknown_license", func(t *testing.T) {
			r := e.do(t, activateKey("UnknownLicense"))
			wantError(t, r, http.StatusForbidden, "License not found")
		})
		step("21_activate_revoked_license", func(t *testing.T) {
			r := e.do(t, activateKey(f.lrev))
			wantError(t, r, http.StatusForbidden, "License found but invalid")
		})
		step("22_key_mode_beats_bearer", func(t *testing.T) {
			r := e.do(t, activateKey(f.l2, bearerHdr(u1Token)))
			wantStatus(t, r, http.StatusOK)
			if got := r.text(t, "data.licenseKey"); got != f.l2 {
				t.Errorf("data.licenseKey %q; want L2 %q", got, f.l2)
			}
		})
		step("23_double_slash_path", func(t *testing.T) {
			c := activateKey(f.l1, sidHdr(s1.ID))
			c.path = "/" + pathActivate
			r := e.do(t, c)
			wantStatus(t, r, http.StatusNoContent)
			wantSID(t, r, s1.ID)
		})
		step("24_timestamps_survive_restart", func(t *testing.T) {
			r := e.do(t, activateKey(f.lmono))
			wantStatus(t, r, http.StatusOK)
			maxBefore := e.issued[len(e.issued)-1].Timestamp
			for _, s := range e.issued {
				maxBefore = max(maxBefore, s.Timestamp)
			}

			e.restart(t)
			// The wall clock also steps back an hour: the guard is in the database, not the clock.
			e.skew.Store(int64(-time.Hour))
			r = e.do(t, activateKey(f.lmono))
			wantStatus(t, r, http.StatusOK)
			if ts := r.session(t).Timestamp; ts <= maxBefore {
				t.Errorf("timestamp after the restart %d; want more than every one before, max %d", ts, maxBefore)
			}
			e.skew.Store(0)
			r = e.do(t, activateKey(f.lmono))
			wantStatus(t, r, http.StatusOK)

			// Sessions survive the restart unchanged.
			r = e.do(t, activateKey(f.l1, sidHdr(s1.ID)))
			wantStatus(t, r, http.StatusNoContent)
			if got := wantSID(t, r, s1.ID); got != s1 {
				t.Errorf("S1 after the restart %+v; want %+v", got, s1)
			}
		})

		// Activation, bearer mode. The token of case 6 was issued before the restart.
		step("25_activate_bearer_null_body", func(t *testing.T) {
			r := e.do(t, call{path: pathActivate, ctype: ctJSON, body: "null", header: []string{bearerHdr(u1Token)}})
			wantStatus(t, r, http.StatusOK)
			if got := r.text(t, "data.licenseKey"); got != f.l3 {
				t.Errorf("data.licenseKey %q; want L3 %q", got, f.l3)
			}
			s3 = r.session(t)
		})
		step("26_activate_bearer_no_free_seat", func(t *testing.T) {
			r := e.do(t, call{path: pathActivate, ctype: ctJSON, body: "{}", header: []string{bearerHdr(u1Token)}})
			wantError(t, r, http.StatusForbidden, "No remaining activations")
		})
		step("27_activate_bearer_user_without_licenses", func(t *testing.T) {
			u0Token = e.login(t, "u0", "pw0")
			r := e.do(t, call{path: pathActivate, header: []string{bearerHdr(u0Token)}})
			wantError(t, r, http.StatusForbidden, "No remaining activations")
		})
		step("28_activate_without_key_or_authorization", func(t *testing.T) {
			wantError(t, e.do(t, call{path: pathActivate}), http.StatusForbidden, "Missing Header: Authorization")
		})
		step("29_activate_authorization_not_bearer", func(t *testing.T) {
			for _, tc := range []struct{ name, value string }{
				{"empty_bearer", "Bearer "},
				{"basic", "Basic abc"},
			} {
				t.Run(tc.name, func(t *testing.T) {
					r := e.do(t, call{path: pathActivate, header: []string{hdr("Authorization", tc.value)}})
					wantError(t, r, http.StatusForbidden, "Invalid header: Authorization (expected Bearer)")
				})
			}
		})
		step("30_activate_bearer_garbage", func(t *testing.T) {
			for _, tc := range []struct{ name, token string }{
				{"garbage", "garbage"},
				{"expired", e.expiredToken(t, f.u1.ID)},
				{"forged", tamper(u1Token)},
			} {
				t.Run(tc.name, func(t *testing.T) {
					r := e.do(t, call{path: pathActivate, header: []string{bearerHdr(tc.token)}})
					wantError(t, r, http.StatusForbidden, "Invalid or expired token")
				})
			}
		})
		step("31_activate_bearer_with_live_session", func(t *testing.T) {
			r := e.do(t, call{path: pathActivate, ctype: ctJSON, body: "{}", header: []string{bearerHdr(u1Token), sidHdr(s3.ID)}})
			wantStatus(t, r, http.StatusNoContent)
			if got := wantSID(t, r, s3.ID); got != s3 {
				t.Errorf("X-Session-Id %+v; want S3 %+v", got, s3)
			}
		})
		step("32_activate_key_after_bearer", func(t *testing.T) {
			r := e.do(t, activateKey(f.l3, sidHdr(s3.ID)))
			wantStatus(t, r, http.StatusNoContent)
			wantSID(t, r, s3.ID)
		})

		// Device validate.
		step("33_validate", func(t *testing.T) {
			r := e.do(t, validateCall(sidHdr(s1.ID)))
			wantValid(t, r, true)
			if r.sid != nil && *r.sid != s1 {
				t.Errorf("X-Session-Id %+v; want S1 %+v", *r.sid, s1)
			}
		})
		step("34_validate_form_content_type", func(t *testing.T) {
			r := e.do(t, call{path: pathValidate, ctype: ctForm, header: []string{sidHdr(s1.ID)}})
			wantValid(t, r, true)
			if r.sid != nil && *r.sid != s1 {
				t.Errorf("X-Session-Id %+v; want S1 %+v", *r.sid, s1)
			}
		})
		step("35_validate_unknown_session", func(t *testing.T) {
			r := e.do(t, validateCall(sidHdr("00000000-0000-4000-8000-000000000000")))
			wantValid(t, r, false)
		})
		step("36_validate_no_valid_session_id", func(t *testing.T) {
			for _, tc := range []struct {
				name   string
				header []string
			}{
				{"empty", []string{sidHdr("")}},
				{"missing", nil},
				{"not_a_uuid", []string{sidHdr("200-active")}},
			} {
				t.Run(tc.name, func(t *testing.T) {
					wantValid(t, e.do(t, validateCall(tc.header...)), false)
				})
			}
		})
		step("37_revoked_session", func(t *testing.T) {
			if _, err := e.svc.RevokeSession(ctx, s2.ID); err != nil {
				t.Fatal(err)
			}
			wantValid(t, e.do(t, validateCall(sidHdr(s2.ID))), false)
			// S1, the other session of L1, is untouched.
			wantValid(t, e.do(t, validateCall(sidHdr(s1.ID))), true)
			r := e.do(t, activateKey(f.l1, sidHdr(s2.ID)))
			wantStatus(t, r, http.StatusOK)
			s4 = r.session(t)
			if s4.ID == s1.ID || s4.ID == s2.ID {
				t.Errorf("S4 %s; want an id other than S1 and S2", s4.ID)
			}
			wantValid(t, e.do(t, validateCall(sidHdr(s4.ID))), true)
		})
		step("38_revoked_license", func(t *testing.T) {
			if _, err := e.svc.RevokeLicense(ctx, f.l1, 0); err != nil {
				t.Fatal(err)
			}
			wantValid(t, e.do(t, validateCall(sidHdr(s1.ID))), false)
			wantValid(t, e.do(t, validateCall(sidHdr(s4.ID))), false)
			r := e.do(t, activateKey(f.l1, sidHdr(s1.ID)))
			wantError(t, r, http.StatusForbidden, "License found but invalid")
			// S3 on L3 is still live (the session the manifest and token cases will use).
			wantValid(t, e.do(t, validateCall(sidHdr(s3.ID))), true)
		})
		step("40_validate_always_has_a_body", func(t *testing.T) {
			for _, c := range []call{validateCall(sidHdr(s3.ID)), validateCall(sidHdr(s1.ID)), validateCall()} {
				if r := e.do(t, c); len(r.body) == 0 {
					t.Errorf("validate %v: empty body", c.header)
				}
			}
		})
		step("41_43_header_rules_were_exercised", func(t *testing.T) {
			// checkWire applied cases 41-43 to every response above; make sure each kind of
			// response they constrain did occur.
			for _, kind := range []string{"activate 200", "activate 204", "validate true", "validate false", "403"} {
				if e.seen[kind] == 0 {
					t.Errorf("no %q response was checked", kind)
				}
			}
		})
	})
}

// TestConformanceSessionIdleExpiry is case 39, with the idle timeout of decision 7: a session
// expires after SessionTTL without an activation or validate, and its seat is freed. The test moves
// the service's clock instead of waiting.
func TestConformanceSessionIdleExpiry(t *testing.T) {
	const ttl = 10 * time.Minute
	sqlstoretest.Each(t, func(t *testing.T, dsn string) {
		e := newConsole(t, dsn, openconsole.Options{SessionTTL: ttl})
		lic, err := e.svc.CreateLicense(context.Background(), openconsole.LicenseInput{Seats: 1})
		if err != nil {
			t.Fatal(err)
		}
		r := e.do(t, activateKey(lic.Key))
		wantStatus(t, r, http.StatusOK)
		s := r.session(t)
		wantValid(t, e.do(t, validateCall(sidHdr(s.ID))), true)

		// Validating counts as activity: 12 minutes after the activation, but 6 after the last
		// validate, the session is still live.
		e.skew.Add(int64(6 * time.Minute))
		wantValid(t, e.do(t, validateCall(sidHdr(s.ID))), true)
		e.skew.Add(int64(6 * time.Minute))
		wantValid(t, e.do(t, validateCall(sidHdr(s.ID))), true)

		e.skew.Add(int64(ttl + time.Minute))
		wantValid(t, e.do(t, validateCall(sidHdr(s.ID))), false)

		// The expired session holds no seat: presenting it gets a new session on the one seat
		// (§3.3), and then the license is full.
		r = e.do(t, activateKey(lic.Key, sidHdr(s.ID)))
		wantStatus(t, r, http.StatusOK)
		s2 := r.session(t)
		wantValid(t, e.do(t, validateCall(sidHdr(s2.ID))), true)
		wantError(t, e.do(t, activateKey(lic.Key)), http.StatusForbidden, "License found but maximum activations reached")
	})
}

// TestConformanceSerialNumbers is cases 56-60: registering device serial numbers and activating
// with them.
func TestConformanceSerialNumbers(t *testing.T) {
	sqlstoretest.Each(t, func(t *testing.T, dsn string) {
		e := newConsole(t, dsn, openconsole.Options{})
		seedFixtures(t, e)
		m1 := e.login(t, "m1", "pwm1")
		u1 := e.login(t, "u1", "pw1")
		const body56 = `{"manufacturer":{"name":"Example Manufacturer","id":791},"model":"IPC-xyz","serial_number":"SN123456789","manufacture_date":"2025-01-01"}`
		register := func(body string, headers ...string) call {
			return call{path: pathRegister, ctype: ctJSON, body: body, header: headers}
		}
		step := func(name string, fn func(t *testing.T)) {
			t.Helper()
			if !t.Run(name, fn) {
				t.FailNow()
			}
		}

		step("56_register", func(t *testing.T) {
			r := e.do(t, register(body56, bearerHdr(m1)))
			wantStatus(t, r, http.StatusCreated)
			for path, want := range map[string]any{
				"data.manufacturer.name": "Example Manufacturer",
				"data.model":             "IPC-xyz",
				"data.serial_number":     "SN123456789",
				"data.manufacture_date":  "2025-01-01",
			} {
				if got := r.text(t, path); got != want {
					t.Errorf("%s %q; want %q", path, got, want)
				}
			}
			if got := r.integer(t, "data.manufacturer.id"); got != 791 {
				t.Errorf("data.manufacturer.id %d; want 791", got)
			}
			if got := r.integer(t, "data.status"); got != 0 {
				t.Errorf("data.status %d; want 0", got)
			}
			created := r.text(t, "data.created_at")
			if !regexp.MustCompile(`^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$`).MatchString(created) {
				t.Errorf("data.created_at %q; want RFC 3339 with milliseconds and Z", created)
			}
			if at, err := time.Parse(time.RFC3339, created); err != nil {
				t.Errorf("data.created_at %q: %v", created, err)
			} else if d := time.Since(at); d < -time.Minute || d > time.Minute {
				t.Errorf("data.created_at %q is %v away from now", created, d)
			}
		})
		step("57_register_duplicate", func(t *testing.T) {
			wantError(t, e.do(t, register(body56, bearerHdr(m1))), http.StatusUnprocessableEntity, "")
		})
		step("58_register_invalid", func(t *testing.T) {
			r := e.do(t, register(`{"manufacturer":{"name":"Example Manufacturer","id":791},"model":"IPC-xyz","manufacture_date":"2025-01-01"}`, bearerHdr(m1)))
			wantError(t, r, http.StatusBadRequest, "")
			if reason := r.text(t, "reason"); !strings.Contains(reason, "serial_number") {
				t.Errorf("reason %q; want it to name serial_number", reason)
			}
			r = e.do(t, register(`{"manufacturer":{"name":"Example Manufacturer","id":791},"model":"IPC-xyz","serial_number":"SN-DATE","manufacture_date":"01.01.2025"}`, bearerHdr(m1)))
			wantError(t, r, http.StatusUnprocessableEntity, "")
			// Nothing was registered.
			wantError(t, e.do(t, activateKey("SN-DATE")), http.StatusForbidden, "License not found")
		})
		step("59_register_unauthorized", func(t *testing.T) {
			body := strings.Replace(body56, "SN123456789", "SN-AUTH", 1)
			wantError(t, e.do(t, register(body)), http.StatusUnauthorized, "")
			wantError(t, e.do(t, register(body, bearerHdr(u1))), http.StatusForbidden, "")
			wantError(t, e.do(t, activateKey("SN-AUTH")), http.StatusForbidden, "License not found")
		})
		step("60_activate_serial", func(t *testing.T) {
			r := e.do(t, activateKey("SN123456789"))
			wantStatus(t, r, http.StatusOK)
			if got := r.text(t, "data.licenseKey"); got != "SN123456789" {
				t.Errorf("data.licenseKey %q; want SN123456789", got)
			}
			s := r.session(t)
			r = e.do(t, activateKey("SN123456789", sidHdr(s.ID)))
			wantStatus(t, r, http.StatusNoContent)
			wantSID(t, r, s.ID)
			wantValid(t, e.do(t, validateCall(sidHdr(s.ID))), true)
			// Decision 9: a serial has exactly one activation slot.
			wantError(t, e.do(t, activateKey("SN123456789")), http.StatusForbidden, "License found but maximum activations reached")
			wantError(t, e.do(t, activateKey("SN-unknown")), http.StatusForbidden, "License not found")
		})
	})
}

// checkJWTShape checks a compact JWT: three dot-separated, non-empty base64url parts.
func checkJWTShape(t *testing.T, tok string) {
	t.Helper()
	parts := strings.Split(tok, ".")
	if len(parts) != 3 {
		t.Fatalf("token %q has %d parts; want 3", tok, len(parts))
	}
	for i, p := range parts {
		if _, err := base64.RawURLEncoding.DecodeString(p); p == "" || err != nil {
			t.Errorf("token part %d %q is not base64url (%v)", i, p, err)
		}
	}
}

// unsignedToken returns tok's claims under the header {"alg":"none"} and no signature.
func unsignedToken(t *testing.T, tok string) string {
	t.Helper()
	parts := strings.Split(tok, ".")
	if len(parts) != 3 {
		t.Fatalf("token %q has %d parts; want 3", tok, len(parts))
	}
	h := base64.RawURLEncoding.EncodeToString([]byte(`{"alg":"none","typ":"JWT"}`))
	return h + "." + parts[1] + "."
}

func fmtCore(s coreSession) string {
	b, _ := json.Marshal(s)
	return string(b)
}
