package api_test

// Hostile and odd requests against every implemented endpoint: bad JSON, JSON of the wrong shape,
// oversized bodies, odd X-Session-Id and Authorization headers, unknown paths, wrong methods, and
// path spellings that must route like the plain path. The property: never a 5xx, always the error
// envelope (or, for device validate, 200 with isValid:false as §2.4 demands), the exact status and
// reason where the contract fixes one, and nothing changed in the database.

import (
	"bufio"
	"context"
	"fmt"
	"net"
	"net/http"
	"slices"
	"strings"
	"testing"
	"time"

	"openconsole"
	"openconsole/api"
	"openconsole/sqlstore/sqlstoretest"
)

// outcome is what a malformed request must get, beyond what checkWire checks for every request.
type outcome struct {
	status []int  // the acceptable statuses: one where the answer is fixed
	reason string // the exact reason, when not ""
	valid  *bool  // device validate: the data.isValid wanted, when not nil
	allow  bool   // a 405: the Allow header must list POST
}

func refused(status int, reason string) outcome {
	return outcome{status: []int{status}, reason: reason}
}
func either(statuses ...int) outcome { return outcome{status: statuses} }
func answered(status int) outcome    { return outcome{status: []int{status}} }
func validIs(v bool) outcome         { return outcome{status: []int{http.StatusOK}, valid: &v} }

func (o outcome) check(t *testing.T, r reply) {
	t.Helper()
	ok := false
	for _, s := range o.status {
		ok = ok || r.status == s
	}
	if !ok {
		t.Fatalf("status %d, body %s; want one of %v", r.status, r.body, o.status)
	}
	if o.reason != "" {
		if got := r.text(t, "reason"); got != o.reason {
			t.Errorf("reason %q; want %q", got, o.reason)
		}
	}
	if o.valid != nil {
		wantValid(t, r, *o.valid)
	}
	if o.allow && !headerListHas(r.header, "Allow", "POST") {
		t.Errorf("Allow %q; want it to list POST", r.header.Values("Allow"))
	}
}

type malformedCase struct {
	name string
	call call
	want outcome
}

// runMalformed runs each case as a subtest and checks that it changed nothing in the database.
func runMalformed(t *testing.T, e *consoleEnv, cases []malformedCase) {
	t.Helper()
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			before := e.state(t)
			r := e.do(t, tc.call)
			if after := e.state(t); !before.equal(after) {
				t.Errorf("the database changed:\nbefore %q\nafter  %q", before, after)
			}
			tc.want.check(t, r)
		})
	}
}

// padded returns prefix + fill... + suffix, exactly n bytes long.
func padded(prefix, suffix string, n int) string {
	return prefix + strings.Repeat("A", n-len(prefix)-len(suffix)) + suffix
}

func TestMalformedRequests(t *testing.T) {
	sqlstoretest.Each(t, func(t *testing.T, dsn string) {
		e := newConsole(t, dsn, openconsole.Options{})
		ctx := context.Background()
		var users []openconsole.User
		for _, in := range []openconsole.UserInput{
			{Username: "u1", Password: "pw1"},
			{Username: "u0", Password: "pw0"},
			{Username: "m1", Password: "pwm1", Vendor: true},
		} {
			u, err := e.svc.CreateUser(ctx, in)
			if err != nil {
				t.Fatal(err)
			}
			users = append(users, u)
		}
		u1, u0, m1 := users[0], users[1], users[2]
		// LFULL is u1's only license; its one seat is taken by the live session SF. So no request
		// below can legitimately create a session: every activation is refused or answered 204.
		full, err := e.svc.CreateLicense(ctx, openconsole.LicenseInput{Owner: "u1", Seats: 1})
		if err != nil {
			t.Fatal(err)
		}
		lfull := full.Key
		r := e.do(t, activateKey(lfull))
		wantStatus(t, r, http.StatusOK)
		sf := r.session(t).ID
		u0Tok, _ := e.svc.IssueToken(u0.ID)
		u1Tok, _ := e.svc.IssueToken(u1.ID)
		m1Tok, _ := e.svc.IssueToken(m1.ID)

		const (
			maxActivations = "License found but maximum activations reached"
			notFound       = "License not found"
			missingAuth    = "Missing Header: Authorization"
			notBearer      = "Invalid header: Authorization (expected Bearer)"
			badToken       = "Invalid or expired token"
			noSeats        = "No remaining activations"
		)

		// Where a body goes, with the answer a body that is not an acceptable JSON object gets.
		type endpoint struct {
			name      string
			path      string
			header    []string
			onBadBody outcome
		}
		endpoints := []endpoint{
			{"login", pathLogin, nil, answered(http.StatusBadRequest)},
			{"auth_validate", pathAuthValidate, nil, answered(http.StatusBadRequest)},
			{"activate", pathActivate, nil, answered(http.StatusBadRequest)},
			{"activate_session_bearer", pathActivate, []string{sidHdr(sf), bearerHdr(u1Tok)}, answered(http.StatusBadRequest)},
			// Device validate never reads the body (§2.4).
			{"validate", pathValidate, nil, validIs(false)},
			{"validate_live", pathValidate, []string{sidHdr(sf)}, validIs(true)},
			{"register", pathRegister, []string{bearerHdr(m1Tok)}, answered(http.StatusBadRequest)},
			// The bearer is checked before the body.
			{"register_anonymous", pathRegister, nil, answered(http.StatusUnauthorized)},
		}

		t.Run("bad_json", func(t *testing.T) {
			bodies := []struct{ name, body string }{
				{"truncated", `{"licenseKey":"`},
				{"open_brace", `{`},
				{"close_brace", `}`},
				{"text", `not json`},
				{"form_encoded", `licenseKey=AC75-267F&username=u1`},
				{"trailing_garbage", `{} x`},
				{"two_objects", `{}{}`},
				{"trailing_comma", `{"a":1,}`},
				{"single_quotes", `{'licenseKey':'x'}`},
				{"bare_word", `nul`},
				{"upper_null", `NULL`},
				{"bom", "\xef\xbb\xbf{}"},
				{"nul_byte", "{\x00}"},
				{"deep_nesting", strings.Repeat("[", 20000)},
				{"array", `[]`},
				{"array_of_object", `[{"licenseKey":"` + lfull + `"}]`},
				{"number", `42`},
				{"negative", `-1`},
				{"huge_number", `1e999`},
				{"string", `"` + lfull + `"`},
				{"true", `true`},
				{"false", `false`},
			}
			var cases []malformedCase
			for _, ep := range endpoints {
				for _, b := range bodies {
					cases = append(cases, malformedCase{ep.name + "/" + b.name,
						call{path: ep.path, ctype: ctJSON, body: b.body, header: ep.header}, ep.onBadBody})
				}
				// What the Content-Type says does not matter (§1.3).
				for _, ct := range []string{ctForm, "text/plain", "application/xml", "multipart/form-data; boundary=x"} {
					cases = append(cases, malformedCase{ep.name + "/content_type_" + strings.Fields(ct)[0],
						call{path: ep.path, ctype: ct, body: `{"x":`, header: ep.header}, ep.onBadBody})
				}
			}
			runMalformed(t, e, cases)
		})

		t.Run("wrong_shape", func(t *testing.T) {
			jsonCall := func(path, body string, headers ...string) call {
				return call{path: path, ctype: ctJSON, body: body, header: headers}
			}
			bad := answered(http.StatusBadRequest)
			unprocessable := answered(http.StatusUnprocessableEntity)
			reg := func(body string) call { return jsonCall(pathRegister, body, bearerHdr(m1Tok)) }
			serial := func(field, value string) string {
				m := map[string]string{
					"manufacturer": `{"name":"Example Manufacturer","id":791}`, "model": `"IPC-xyz"`,
					"serial_number": `"SN-SHAPE"`, "manufacture_date": `"2025-01-01"`,
				}
				if value == "" {
					delete(m, field)
				} else {
					m[field] = value
				}
				var parts []string
				for _, k := range []string{"manufacturer", "model", "serial_number", "manufacture_date"} {
					if v, ok := m[k]; ok {
						parts = append(parts, fmt.Sprintf("%q:%s", k, v))
					}
				}
				return "{" + strings.Join(parts, ",") + "}"
			}
			runMalformed(t, e, []malformedCase{
				{"login/username_number", jsonCall(pathLogin, `{"username":1,"password":"pw1"}`), bad},
				{"login/password_number", jsonCall(pathLogin, `{"username":"u1","password":1}`), bad},
				{"login/username_array", jsonCall(pathLogin, `{"username":["u1"],"password":"pw1"}`), bad},
				{"login/username_object", jsonCall(pathLogin, `{"username":{"$ne":null},"password":"x"}`), bad},
				{"login/issueJWT_string", jsonCall(pathLogin, `{"username":"u1","password":"pw1","issueJWT":"true"}`), bad},
				{"login/issueJWT_number", jsonCall(pathLogin, `{"username":"u1","password":"pw1","issueJWT":1}`), bad},
				{"login/no_password", jsonCall(pathLogin, `{"username":"u1"}`), bad},
				{"login/no_username", jsonCall(pathLogin, `{"password":"pw1"}`), bad},
				{"login/null_username", jsonCall(pathLogin, `{"username":null,"password":"pw1"}`), bad},
				{"login/empty_username", jsonCall(pathLogin, `{"username":"","password":"pw1"}`), bad},
				{"login/empty_object", jsonCall(pathLogin, `{}`), bad},
				{"login/null", jsonCall(pathLogin, `null`), bad},
				{"login/no_body", call{path: pathLogin}, bad},
				{"login/empty_password", jsonCall(pathLogin, `{"username":"u1","password":""}`), answered(http.StatusForbidden)},
				{"login/nul_in_username", jsonCall(pathLogin, `{"username":"u\u00001","password":"pw1"}`), answered(http.StatusForbidden)},
				{"login/long_username", jsonCall(pathLogin, `{"username":"`+strings.Repeat("u", 5000)+`","password":"pw1"}`), answered(http.StatusForbidden)},
				{"login/lone_surrogate", jsonCall(pathLogin, `{"username":"\ud800","password":"pw1"}`), answered(http.StatusForbidden)},
				{"login/invalid_utf8", jsonCall(pathLogin, "{\"username\":\"u1\xff\",\"password\":\"pw1\"}"), answered(http.StatusForbidden)},

				{"auth_validate/jwt_string", jsonCall(pathAuthValidate, `{"jwt":"`+u1Tok+`"}`), bad},
				{"auth_validate/token_number", jsonCall(pathAuthValidate, `{"jwt":{"token":1}}`), bad},
				{"auth_validate/token_array", jsonCall(pathAuthValidate, `{"jwt":{"token":["`+u1Tok+`"]}}`), bad},
				{"auth_validate/jwt_array", jsonCall(pathAuthValidate, `{"jwt":[]}`), bad},
				{"auth_validate/jwt_empty", jsonCall(pathAuthValidate, `{"jwt":{}}`), bad},
				{"auth_validate/jwt_null", jsonCall(pathAuthValidate, `{"jwt":null}`), bad},
				{"auth_validate/token_at_top", jsonCall(pathAuthValidate, `{"token":"`+u1Tok+`"}`), bad},
				{"auth_validate/empty_object", jsonCall(pathAuthValidate, `{}`), bad},
				{"auth_validate/null", jsonCall(pathAuthValidate, `null`), bad},
				{"auth_validate/no_body", call{path: pathAuthValidate}, bad},
				{"auth_validate/token_empty", jsonCall(pathAuthValidate, `{"jwt":{"token":""}}`), refused(http.StatusForbidden, badToken)},
				{"auth_validate/token_nul", jsonCall(pathAuthValidate, `{"jwt":{"token":"a\u0000b"}}`), refused(http.StatusForbidden, badToken)},
				{"auth_validate/token_huge", jsonCall(pathAuthValidate, tokenBody(strings.Repeat("x.", 30000))), refused(http.StatusForbidden, badToken)},
				{"auth_validate/unknown_fields_ignored", jsonCall(pathAuthValidate, `{"jwt":{"token":"`+u1Tok+`","x":1},"extra":[1,{}]}`), answered(http.StatusOK)},

				{"activate/key_number", jsonCall(pathActivate, `{"licenseKey":42}`), bad},
				{"activate/key_float", jsonCall(pathActivate, `{"licenseKey":1.5}`), bad},
				{"activate/key_array", jsonCall(pathActivate, `{"licenseKey":["`+lfull+`"]}`), bad},
				{"activate/key_object", jsonCall(pathActivate, `{"licenseKey":{"key":"`+lfull+`"}}`), bad},
				{"activate/key_bool", jsonCall(pathActivate, `{"licenseKey":true}`), bad},
				{"activate/key_number_with_session", jsonCall(pathActivate, `{"licenseKey":42}`, sidHdr(sf)), bad},
				{"activate/key_null", jsonCall(pathActivate, `{"licenseKey":null}`), refused(http.StatusForbidden, missingAuth)},
				{"activate/key_empty", jsonCall(pathActivate, `{"licenseKey":""}`), refused(http.StatusForbidden, missingAuth)},
				{"activate/key_blank", jsonCall(pathActivate, `{"licenseKey":"  \t "}`), refused(http.StatusForbidden, missingAuth)},
				{"activate/key_nul", jsonCall(pathActivate, `{"licenseKey":"`+lfull+`\u0000"}`), refused(http.StatusForbidden, notFound)},
				{"activate/key_control", jsonCall(pathActivate, `{"licenseKey":"a\u0007\u001bb"}`), refused(http.StatusForbidden, notFound)},
				{"activate/key_invalid_utf8", jsonCall(pathActivate, "{\"licenseKey\":\"\xff\xfe\"}"), refused(http.StatusForbidden, notFound)},
				{"activate/key_long", jsonCall(pathActivate, keyBody(strings.Repeat("K", 5000))), refused(http.StatusForbidden, notFound)},
				{"activate/key_sql", jsonCall(pathActivate, keyBody(`' OR '1'='1`)), refused(http.StatusForbidden, notFound)},
				{"activate/unknown_fields_ignored", jsonCall(pathActivate, `{"licenseKey":"`+lfull+`","x":{"y":[1]}}`), refused(http.StatusForbidden, maxActivations)},
				{"activate/body_at_limit", jsonCall(pathActivate, `{"licenseKey":"`+lfull+`"`+strings.Repeat(" ", api.MaxBodyBytes-len(keyBody(lfull)))+`}`),
					refused(http.StatusForbidden, maxActivations)},

				{"register/manufacturer_string", reg(serial("manufacturer", `"Example"`)), bad},
				{"register/manufacturer_id_string", reg(serial("manufacturer", `{"name":"Example","id":"791"}`)), bad},
				{"register/manufacturer_id_float", reg(serial("manufacturer", `{"name":"Example","id":1.5}`)), bad},
				{"register/manufacturer_id_null", reg(serial("manufacturer", `{"name":"Example","id":null}`)), bad},
				{"register/manufacturer_no_name", reg(serial("manufacturer", `{"id":791}`)), bad},
				{"register/serial_number_number", reg(serial("serial_number", `123`)), bad},
				{"register/model_array", reg(serial("model", `["IPC"]`)), bad},
				{"register/no_manufacturer", reg(serial("manufacturer", "")), bad},
				{"register/no_model", reg(serial("model", "")), bad},
				{"register/no_serial_number", reg(serial("serial_number", "")), bad},
				{"register/no_manufacture_date", reg(serial("manufacture_date", "")), bad},
				{"register/empty_object", reg(`{}`), bad},
				{"register/null", reg(`null`), bad},
				{"register/no_body", call{path: pathRegister, header: []string{bearerHdr(m1Tok)}}, bad},
				{"register/serial_empty", reg(serial("serial_number", `""`)), unprocessable},
				{"register/serial_space", reg(serial("serial_number", `"SN 1"`)), unprocessable},
				{"register/serial_nul", reg(serial("serial_number", `"SN\u00001"`)), unprocessable},
				{"register/serial_non_ascii", reg(serial("serial_number", `"SN\u00e91"`)), unprocessable},
				{"register/serial_long", reg(serial("serial_number", `"`+strings.Repeat("S", 129)+`"`)), unprocessable},
				{"register/date_invalid_day", reg(serial("manufacture_date", `"2025-02-30"`)), unprocessable},
				{"register/date_empty", reg(serial("manufacture_date", `""`)), unprocessable},
				{"register/date_time", reg(serial("manufacture_date", `"2025-01-01T00:00:00Z"`)), unprocessable},
				{"register/date_german", reg(serial("manufacture_date", `"01.01.2025"`)), unprocessable},
				{"register/model_empty", reg(serial("model", `""`)), unprocessable},
				{"register/model_nul", reg(serial("model", `"IPC\u0000xyz"`)), unprocessable},
				{"register/model_long", reg(serial("model", `"`+strings.Repeat("m", 257)+`"`)), unprocessable},
				{"register/manufacturer_name_empty", reg(serial("manufacturer", `{"name":"","id":791}`)), unprocessable},
				{"register/manufacturer_name_nul", reg(serial("manufacturer", `{"name":"Ex\u0000ample","id":791}`)), unprocessable},
				{"register/manufacturer_id_negative", reg(serial("manufacturer", `{"name":"Example","id":-1}`)), unprocessable},
				{"register/not_a_vendor", jsonCall(pathRegister, serial("", ""), bearerHdr(u1Tok)), answered(http.StatusForbidden)},
			})
		})

		t.Run("oversize", func(t *testing.T) {
			tooLarge := answered(http.StatusRequestEntityTooLarge)
			bodies := map[string]string{
				pathLogin:        `{"username":"u1","password":"`,
				pathAuthValidate: `{"jwt":{"token":"`,
				pathActivate:     `{"licenseKey":"`,
				pathRegister:     `{"model":"`,
				pathValidate:     `{"x":"`,
			}
			var cases []malformedCase
			for _, ep := range endpoints {
				want := tooLarge
				if ep.onBadBody.valid != nil || ep.onBadBody.status[0] == http.StatusUnauthorized {
					want = ep.onBadBody // validate ignores bodies; register checks the bearer first
				}
				for _, size := range []struct {
					name string
					n    int
				}{{"limit_plus_1", api.MaxBodyBytes + 1}, {"twice_limit", 2 * api.MaxBodyBytes}} {
					body := padded(bodies[ep.path], `"}`, size.n)
					if ep.path == pathAuthValidate {
						body = padded(bodies[ep.path], `"}}`, size.n)
					}
					cases = append(cases,
						malformedCase{ep.name + "/" + size.name, call{path: ep.path, ctype: ctJSON, body: body, header: ep.header}, want},
						malformedCase{ep.name + "/" + size.name + "_chunked", call{path: ep.path, ctype: ctJSON, body: body, header: ep.header, chunked: true}, want})
				}
			}
			runMalformed(t, e, cases)
		})

		t.Run("session_header", func(t *testing.T) {
			odd := []struct {
				name   string
				values []string
				live   bool // names SF, so the session is presented
			}{
				{"empty", []string{""}, false},
				{"huge", []string{strings.Repeat("a", 16<<10)}, false},
				{"binary", []string{"\x80\xff\xfe"}, false},
				{"object_form", []string{`{"id":"` + sf + `","timestamp":1}`}, false},
				{"uuid_with_suffix", []string{sf + "x"}, false},
				{"uuid_in_braces", []string{"{" + sf + "}"}, false},
				{"uuid_without_dashes", []string{strings.ReplaceAll(sf, "-", "")}, false},
				{"urn", []string{"urn:uuid:" + sf}, false},
				{"unknown_uuid", []string{"ffffffff-ffff-4fff-bfff-ffffffffffff"}, false},
				{"upper_case", []string{strings.ToUpper(sf)}, true},
			}
			var cases []malformedCase
			for _, o := range odd {
				var hs []string
				for _, v := range o.values {
					hs = append(hs, sidHdr(v))
				}
				activate, validate := refused(http.StatusForbidden, maxActivations), validIs(false)
				bearer := refused(http.StatusForbidden, noSeats)
				if o.live {
					activate, validate, bearer = answered(http.StatusNoContent), validIs(true), answered(http.StatusNoContent)
				}
				cases = append(cases,
					malformedCase{"activate/" + o.name, activateKey(lfull, hs...), activate},
					malformedCase{"activate_bearer/" + o.name, call{path: pathActivate, header: slices.Concat(hs, []string{bearerHdr(u1Tok)})}, bearer},
					malformedCase{"validate/" + o.name, validateCall(hs...), validate})
			}
			// Two values: which one counts is not fixed, but nothing may break.
			for _, pair := range [][]string{{"garbage", sf}, {sf, "garbage"}, {sf, sf}} {
				name := "two_headers_" + strings.Join(pair, "_")
				hs := []string{sidHdr(pair[0]), sidHdr(pair[1])}
				cases = append(cases,
					malformedCase{"activate/" + name, activateKey(lfull, hs...), either(http.StatusNoContent, http.StatusForbidden)},
					malformedCase{"validate/" + name, validateCall(hs...), answered(http.StatusOK)})
			}
			runMalformed(t, e, cases)
		})

		t.Run("authorization", func(t *testing.T) {
			auth := func(values ...string) []string {
				var hs []string
				for _, v := range values {
					hs = append(hs, hdr("Authorization", v))
				}
				return hs
			}
			bearerMode := func(values ...string) call { return call{path: pathActivate, header: auth(values...)} }
			register := func(values ...string) call {
				// A body that misses a field, so that even an accepted bearer registers nothing.
				return call{path: pathRegister, ctype: ctJSON, body: `{"model":"IPC"}`, header: auth(values...)}
			}
			expiredU1, expiredM1 := e.expiredToken(t, u1.ID), e.expiredToken(t, m1.ID)
			runMalformed(t, e, []malformedCase{
				{"activate/empty", bearerMode(""), answered(http.StatusForbidden)},
				{"activate/basic", bearerMode("Basic abc"), refused(http.StatusForbidden, notBearer)},
				{"activate/basic_alone", bearerMode("Basic"), refused(http.StatusForbidden, notBearer)},
				{"activate/bearer_alone", bearerMode("Bearer"), refused(http.StatusForbidden, notBearer)},
				{"activate/token_scheme", bearerMode("Token " + u0Tok), refused(http.StatusForbidden, notBearer)},
				{"activate/jwt_without_scheme", bearerMode(u0Tok), refused(http.StatusForbidden, notBearer)},
				{"activate/lower_case_scheme", bearerMode("bearer " + u0Tok), refused(http.StatusForbidden, noSeats)},
				{"activate/upper_case_scheme", bearerMode("BEARER " + u0Tok), refused(http.StatusForbidden, noSeats)},
				{"activate/token_with_suffix", bearerMode("Bearer " + u0Tok + " extra"), refused(http.StatusForbidden, badToken)},
				{"activate/token_huge", bearerMode("Bearer " + strings.Repeat("x", 64<<10)), refused(http.StatusForbidden, badToken)},
				{"activate/token_forged", bearerMode("Bearer " + tamper(u1Tok)), refused(http.StatusForbidden, badToken)},
				{"activate/token_alg_none", bearerMode("Bearer " + unsignedToken(t, u1Tok)), refused(http.StatusForbidden, badToken)},
				{"activate/token_expired", bearerMode("Bearer " + expiredU1), refused(http.StatusForbidden, badToken)},
				{"activate/two_basic_first", bearerMode("Basic abc", "Bearer "+u0Tok), answered(http.StatusForbidden)},
				{"activate/two_bearer_first", bearerMode("Bearer "+u0Tok, "Basic abc"), answered(http.StatusForbidden)},
				{"activate/two_bearers", bearerMode("Bearer "+u1Tok, "Bearer "+u0Tok), refused(http.StatusForbidden, noSeats)},
				// Key mode ignores Authorization (§2.3); validate and login ignore it too (§1.5).
				{"activate_key/basic", activateKey(lfull, auth("Basic abc")...), refused(http.StatusForbidden, maxActivations)},
				{"activate_key/basic_live", activateKey(lfull, append(auth("Basic abc"), sidHdr(sf))...), answered(http.StatusNoContent)},
				{"activate_key/forged_live", activateKey(lfull, append(auth("Bearer "+tamper(u1Tok)), sidHdr(sf))...), answered(http.StatusNoContent)},
				{"validate/basic_live", validateCall(append(auth("Basic abc"), sidHdr(sf))...), validIs(true)},
				{"validate/garbage_bearer_live", validateCall(append(auth("Bearer garbage"), sidHdr(sf))...), validIs(true)},
				{"validate/bearer_no_session", validateCall(auth("Bearer " + u1Tok)...), validIs(false)},
				{"login/basic_ignored", call{path: pathLogin, ctype: ctJSON, body: loginBody("u1", "pw1"), header: auth("Basic dTE6cHcx")}, answered(http.StatusOK)},
				{"login/basic_not_credentials", call{path: pathLogin, ctype: ctJSON, body: loginBody("u1", "wrong"), header: auth("Basic dTE6cHcx")}, answered(http.StatusForbidden)},
				{"register/none", register(), answered(http.StatusUnauthorized)},
				{"register/empty", register(""), answered(http.StatusUnauthorized)},
				{"register/basic", register("Basic abc"), answered(http.StatusUnauthorized)},
				{"register/bearer_alone", register("Bearer"), answered(http.StatusUnauthorized)},
				{"register/garbage", register("Bearer garbage"), answered(http.StatusUnauthorized)},
				{"register/forged", register("Bearer " + tamper(m1Tok)), answered(http.StatusUnauthorized)},
				{"register/alg_none", register("Bearer " + unsignedToken(t, m1Tok)), answered(http.StatusUnauthorized)},
				{"register/expired", register("Bearer " + expiredM1), answered(http.StatusUnauthorized)},
				{"register/not_a_vendor", register("Bearer " + u1Tok), answered(http.StatusForbidden)},
				{"register/vendor_bad_body", register("Bearer " + m1Tok), answered(http.StatusBadRequest)},
				{"register/two_basic_first", register("Basic abc", "Bearer "+m1Tok), either(http.StatusBadRequest, http.StatusUnauthorized)},
				{"register/two_bearer_first", register("Bearer "+m1Tok, "Basic abc"), either(http.StatusBadRequest, http.StatusUnauthorized)},
			})
		})

		t.Run("unknown_paths", func(t *testing.T) {
			paths := []string{
				"/", "/api", "/api/v2", "/api/v2/", "/api/v2/auth", "/api/v2/device", "/api/v2/device/license/x",
				"/api/v2/device/license/activate/extra", "/api/v2/auth/login/x", "/API/v2/auth/login", "/api/v2/Auth/Login",
				"/api/v3/device/license/validate", "/api/v1/device/license/validate", "/api/v2/device/license/activate.json",
				"/api/v2/auth/login;x=1", "/api/v2/auth/login+", "/api/v2/auth/log%20in", "/api/v2/auth/login%00",
				"/api/v2/auth/login%3F", "/api/v2/auth/login%2F", "/api/v2/device%2Flicense/activate", "/%2Fapi/v2/auth/login",
				"/api/v2/device/license/%2E%2E/license/validate", "/" + strings.Repeat("x/", 2000),
			}
			var cases []malformedCase
			for _, p := range paths {
				name := p
				if len(name) > 60 {
					name = name[:60] + "..."
				}
				for _, m := range []string{"GET", "POST", "PUT", "DELETE"} {
					cases = append(cases, malformedCase{m + " " + name, call{method: m, path: p, ctype: ctJSON, body: "{}"}, answered(http.StatusNotFound)})
				}
			}
			runMalformed(t, e, cases)
		})

		t.Run("wrong_methods", func(t *testing.T) {
			notAllowed := outcome{status: []int{http.StatusMethodNotAllowed}, allow: true}
			var cases []malformedCase
			for _, p := range []string{pathLogin, pathAuthValidate, pathActivate, pathValidate, pathRegister} {
				for _, m := range []string{"GET", "HEAD", "PUT", "DELETE", "PATCH", "TRACE", "PROPFIND", "post"} {
					for _, path := range []string{p, "/" + p + "/"} {
						cases = append(cases, malformedCase{m + " " + path,
							call{method: m, path: path, ctype: ctJSON, body: keyBody(lfull), header: []string{sidHdr(sf)}},
							notAllowed})
					}
				}
			}
			runMalformed(t, e, cases)
		})

		t.Run("path_spellings", func(t *testing.T) {
			// Each reference request changes nothing; every spelling of its path must get the
			// same answer as the plain path (§1.1).
			refs := []struct {
				name string
				call call
				want outcome
			}{
				{"login_wrong_password", call{path: pathLogin, ctype: ctJSON, body: loginBody("u1", "nope")}, answered(http.StatusForbidden)},
				{"login", call{path: pathLogin, ctype: ctJSON, body: loginBody("u1", "pw1")}, answered(http.StatusOK)},
				{"login_bad_json", call{path: pathLogin, ctype: ctJSON, body: "{"}, answered(http.StatusBadRequest)},
				{"auth_validate", call{path: pathAuthValidate, ctype: ctJSON, body: tokenBody(u1Tok)}, answered(http.StatusOK)},
				{"activate_full", activateKey(lfull), refused(http.StatusForbidden, maxActivations)},
				{"activate_live", activateKey(lfull, sidHdr(sf)), answered(http.StatusNoContent)},
				{"activate_no_auth", call{path: pathActivate}, refused(http.StatusForbidden, missingAuth)},
				{"validate_live", validateCall(sidHdr(sf)), validIs(true)},
				{"validate_none", validateCall(), validIs(false)},
				{"register_anonymous", call{path: pathRegister, ctype: ctJSON, body: "{}"}, answered(http.StatusUnauthorized)},
				{"register_not_vendor", call{path: pathRegister, ctype: ctJSON, body: "{}", header: []string{bearerHdr(u1Tok)}}, answered(http.StatusForbidden)},
			}
			var cases []malformedCase
			for _, ref := range refs {
				for _, p := range pathSpellings(ref.call.path) {
					c := ref.call
					c.path = p
					cases = append(cases, malformedCase{ref.name + " " + p, c, ref.want})
				}
			}
			runMalformed(t, e, cases)
		})

		t.Run("session_still_live", func(t *testing.T) {
			wantValid(t, e.do(t, validateCall(sidHdr(sf))), true)
		})
	})
}

// pathSpellings returns spellings of the path p that must be routed as p (§1.1): the plain path,
// doubled and trailing slashes (CORE sends //api/v2/...), a query, and percent-encoded
// characters (a path is percent-decoded, and %XX of an unreserved character is that character).
func pathSpellings(p string) []string {
	last := strings.LastIndexByte(p, '/') + 1
	enc := func(c byte, upper bool) string {
		if upper {
			return fmt.Sprintf("%%%02X", c)
		}
		return fmt.Sprintf("%%%02x", c)
	}
	var all strings.Builder
	for i := 0; i < len(p); i++ {
		if p[i] == '/' {
			all.WriteByte('/')
		} else {
			all.WriteString(enc(p[i], true))
		}
	}
	return []string{
		p,
		"/" + p,
		"//" + p,
		p + "/",
		p + "//",
		"/" + p + "/",
		strings.ReplaceAll(p, "/", "//"),
		p + "?x=1&licenseKey=ignored",
		"/" + p + "/?x=1",
		p[:last] + enc(p[last], true) + p[last+1:],
		p[:last] + enc(p[last], false) + p[last+1:],
		"/" + enc('a', true) + p[2:],
		all.String(),
	}
}

// TestMalformedRequestLine covers requests that net/http itself refuses before any handler runs,
// such as an invalid percent-encoding in the path. net/http answers them 400 with a plain-text
// body, so the error envelope cannot be sent there; what holds is that the answer is a 4xx, never
// a 5xx, and that nothing reaches the service.
func TestMalformedRequestLine(t *testing.T) {
	sqlstoretest.Each(t, func(t *testing.T, dsn string) {
		e := newConsole(t, dsn, openconsole.Options{})
		lic, err := e.svc.CreateLicense(context.Background(), openconsole.LicenseInput{Seats: 5})
		if err != nil {
			t.Fatal(err)
		}
		body := keyBody(lic.Key)
		for _, tc := range []struct{ name, requestLine string }{
			{"bad_escape", "POST /api/v2/device/license/%zzctivate HTTP/1.1"},
			{"truncated_escape", "POST /api/v2/device/license/activate% HTTP/1.1"},
			{"space_in_path", "POST /api/v2/device/license/ activate HTTP/1.1"},
			{"no_leading_slash", "POST api/v2/device/license/activate HTTP/1.1"},
		} {
			t.Run(tc.name, func(t *testing.T) {
				before := e.state(t)
				conn, err := net.DialTimeout("tcp", e.srv.Listener.Addr().String(), 5*time.Second)
				if err != nil {
					t.Fatal(err)
				}
				defer conn.Close()
				conn.SetDeadline(time.Now().Add(10 * time.Second))
				fmt.Fprintf(conn, "%s\r\nHost: console\r\nContent-Type: application/json\r\nContent-Length: %d\r\nConnection: close\r\n\r\n%s",
					tc.requestLine, len(body), body)
				resp, err := http.ReadResponse(bufio.NewReader(conn), nil)
				if err != nil {
					t.Fatal(err)
				}
				resp.Body.Close()
				if resp.StatusCode < 400 || resp.StatusCode >= 500 {
					t.Errorf("status %d; want a 4xx", resp.StatusCode)
				}
				if after := e.state(t); !before.equal(after) {
					t.Errorf("the database changed:\nbefore %q\nafter  %q", before, after)
				}
			})
		}
	})
}
