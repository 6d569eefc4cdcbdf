package admin_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/url"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"openconsole"
	"openconsole/admin"
	"openconsole/api"
	"openconsole/sqlstore"
	"openconsole/sqlstore/sqlstoretest"
)

var ctx = context.Background()

// server is one OpenConsole server: the operator API and the FLECS Console API on one listener.
type server struct {
	svc *openconsole.Service
	srv *httptest.Server
}

// env is one database with one or more servers on it, and an API token of each role.
type env struct {
	dsn     string
	servers []*server
	tokens  map[openconsole.Role]string
	doc     *apiDoc
	hc      *http.Client
}

func newEnv(t *testing.T, dsn string, servers int, opts openconsole.Options) *env {
	t.Helper()
	e := &env{dsn: dsn, tokens: map[openconsole.Role]string{}, doc: loadDoc(t), hc: &http.Client{Timeout: 30 * time.Second}}
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	if opts.Limits == nil {
		opts.Limits = &openconsole.Limits{}
	}
	opts.Logger = log
	for i := 0; i < servers; i++ {
		st, err := sqlstore.Open(ctx, dsn, sqlstore.Options{})
		if err != nil {
			t.Fatal(err)
		}
		svc, err := openconsole.NewService(ctx, st, opts)
		if err != nil {
			t.Fatal(err)
		}
		console, operator := api.New(svc, log), admin.New(svc, log)
		srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			if strings.HasPrefix(r.URL.Path, admin.Prefix+"/") {
				operator.ServeHTTP(w, r)
				return
			}
			console.ServeHTTP(w, r)
		}))
		t.Cleanup(func() { srv.Close(); svc.Close(); st.Close() })
		e.servers = append(e.servers, &server{svc, srv})
	}
	for _, role := range []openconsole.Role{openconsole.RoleAdmin, openconsole.RoleOperator, openconsole.RoleReader} {
		tok, err := e.servers[0].svc.CreateAPIToken(ctx, openconsole.TokenInput{Name: "test-" + string(role), Role: role})
		if err != nil {
			t.Fatal(err)
		}
		e.tokens[role] = tok.Secret
	}
	t.Cleanup(func() { e.doc.report(t) })
	return e
}

type answer struct {
	status int
	header http.Header
	body   []byte
}

func (a answer) decode(t *testing.T, v any) {
	t.Helper()
	if err := json.Unmarshal(a.body, v); err != nil {
		t.Fatalf("answer %d is not the JSON expected: %v\n%s", a.status, err, a.body)
	}
}

// problem is the code of a problem answer.
func (a answer) problem(t *testing.T) (code, detail string) {
	t.Helper()
	var p struct {
		Code   string `json:"code"`
		Detail string `json:"detail"`
	}
	if ct := a.header.Get("Content-Type"); ct != "application/problem+json" {
		t.Errorf("problem answer %d with Content-Type %q", a.status, ct)
	}
	a.decode(t, &p)
	return p.Code, p.Detail
}

// call sends a request to server i of the operator API with the token (""for none); body is
// marshalled unless it is a []byte or a string. Both sides are checked against the document.
func (e *env) call(t *testing.T, i int, method, path, token string, body any, header ...string) answer {
	t.Helper()
	var b []byte
	switch v := body.(type) {
	case nil:
	case []byte:
		b = v
	case string:
		b = []byte(v)
	default:
		var err error
		if b, err = json.Marshal(v); err != nil {
			t.Fatal(err)
		}
	}
	req, err := http.NewRequest(method, e.servers[i].srv.URL+admin.Prefix+path, bytes.NewReader(b))
	if err != nil {
		t.Fatal(err)
	}
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	for j := 0; j+1 < len(header); j += 2 {
		req.Header.Set(header[j], header[j+1])
	}
	fits := e.doc.checkRequest(method, req.URL.Path, req.Header.Get("Content-Type"), b)
	resp, err := e.hc.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, path, err)
	}
	defer resp.Body.Close()
	rb, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	e.doc.checkResponse(method, req.URL.Path, resp.StatusCode, resp.Header.Get("Content-Type"), rb)
	if !fits && resp.StatusCode < 400 {
		e.doc.fail("%s %s: the server accepted (%d) a body the document does not allow: %s", method, path, resp.StatusCode, b)
	}
	return answer{resp.StatusCode, resp.Header, rb}
}

// as is call on the first server with the token of a role.
func (e *env) as(t *testing.T, role openconsole.Role, method, path string, body any, header ...string) answer {
	t.Helper()
	return e.call(t, 0, method, path, e.tokens[role], body, header...)
}

func want(t *testing.T, a answer, status int) {
	t.Helper()
	if a.status != status {
		t.Fatalf("status %d, want %d: %s", a.status, status, a.body)
	}
}

// device is a FLECS device talking to the console API of a server.
func (e *env) activate(t *testing.T, i int, key, sid string) (int, string) {
	t.Helper()
	req, _ := http.NewRequest("POST", e.servers[i].srv.URL+"/api/v2/device/license/activate", strings.NewReader(`{"licenseKey":"`+key+`"}`))
	if sid != "" {
		req.Header.Set("X-Session-Id", sid)
	}
	resp, err := e.hc.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var env struct {
		Reason string `json:"reason"`
		Data   struct {
			SessionID struct {
				ID string `json:"id"`
			} `json:"sessionId"`
		} `json:"data"`
	}
	json.NewDecoder(resp.Body).Decode(&env)
	if resp.StatusCode == 200 {
		return 200, env.Data.SessionID.ID
	}
	return resp.StatusCode, env.Reason
}

func (e *env) validate(t *testing.T, i int, sid string) bool {
	t.Helper()
	req, _ := http.NewRequest("POST", e.servers[i].srv.URL+"/api/v2/device/license/validate", nil)
	req.Header.Set("X-Session-Id", sid)
	resp, err := e.hc.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var env struct {
		Data struct {
			IsValid bool `json:"isValid"`
		} `json:"data"`
	}
	json.NewDecoder(resp.Body).Decode(&env)
	return env.Data.IsValid
}

// within polls cond until it holds, failing after d.
func within(t *testing.T, d time.Duration, what string, cond func() bool) {
	t.Helper()
	start := time.Now()
	for !cond() {
		if time.Since(start) > d {
			t.Fatalf("%s: not within %v", what, d)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func (e *env) createLicense(t *testing.T, body map[string]any) admin.LicenseJSON {
	t.Helper()
	a := e.as(t, openconsole.RoleOperator, "POST", "/licenses", body)
	want(t, a, http.StatusCreated)
	var l admin.LicenseJSON
	a.decode(t, &l)
	return l
}

// TestRoles: the 401/403 matrix over every documented operation: no token is 401, an unknown or
// revoked token 401, a role below the operation's 403, the operation's role and above anything
// but 401 and 403.
func TestRoles(t *testing.T) {
	sqlstoretest.Each(t, func(t *testing.T, dsn string) {
		e := newEnv(t, dsn, 1, openconsole.Options{})
		need := map[string]openconsole.Role{}
		for tmpl, ops := range e.doc.doc["paths"].(map[string]any) {
			for m, op := range ops.(map[string]any) {
				if m == "parameters" {
					continue
				}
				desc, _ := op.(map[string]any)["description"].(string)
				for _, r := range []openconsole.Role{openconsole.RoleAdmin, openconsole.RoleOperator, openconsole.RoleReader} {
					if strings.Contains(desc, "Needs the "+string(r)+" role") {
						need[strings.ToUpper(m)+" "+tmpl] = r
					}
				}
			}
		}
		if len(need) < 30 {
			t.Fatalf("only %d operations with a role in the document", len(need))
		}
		revoked, err := e.servers[0].svc.CreateAPIToken(ctx, openconsole.TokenInput{Name: "gone", Role: openconsole.RoleAdmin})
		if err != nil {
			t.Fatal(err)
		}
		if _, err := e.servers[0].svc.RevokeAPIToken(ctx, revoked.ID); err != nil {
			t.Fatal(err)
		}
		for op, role := range need {
			method, tmpl, _ := strings.Cut(op, " ")
			path := strings.NewReplacer("{key}", "NO-SUCH-KEY", "{id}", "00000000-0000-4000-8000-000000000000",
				"{username}", "nobody", "{app}", "tech.flecs.none", "{version}", "1.0.0").Replace(tmpl)
			for name, tok := range map[string]string{"no token": "", "unknown token": "ocp_unknown", "revoked token": revoked.Secret,
				"not bearer": ""} {
				var a answer
				if name == "not bearer" {
					a = e.call(t, 0, method, path, "", nil, "Authorization", "Basic dTpw")
				} else {
					a = e.call(t, 0, method, path, tok, nil)
				}
				if a.status != http.StatusUnauthorized {
					t.Errorf("%s with %s: %d, want 401", op, name, a.status)
				}
			}
			for _, r := range []openconsole.Role{openconsole.RoleReader, openconsole.RoleOperator, openconsole.RoleAdmin} {
				a := e.as(t, r, method, path, nil)
				allowed := r.Allows(role)
				if !allowed && a.status != http.StatusForbidden {
					t.Errorf("%s as %s: %d, want 403", op, r, a.status)
				}
				if allowed && (a.status == http.StatusForbidden || a.status == http.StatusUnauthorized) {
					t.Errorf("%s as %s: %d %s, want it let through", op, r, a.status, a.body)
				}
			}
		}
		// The document itself needs nothing.
		if a := e.call(t, 0, "GET", "/openapi.json", "", nil); a.status != 200 || !json.Valid(a.body) {
			t.Errorf("GET /openapi.json: %d", a.status)
		}
	})
}

// TestLicenseLifecycle: create, read with an ETag, change with If-Match, suspend (validate false
// within a second on both servers, activation refused), resume (valid again without the device
// doing anything), revoke (final).
func TestLicenseLifecycle(t *testing.T) {
	sqlstoretest.Each(t, func(t *testing.T, dsn string) {
		e := newEnv(t, dsn, 2, openconsole.Options{})
		const op = openconsole.RoleOperator
		l := e.createLicense(t, map[string]any{"seats": 2, "note": "order 4711", "metadata": map[string]any{"order": 4711}})
		if l.Status != "active" || l.Seats != (admin.Seats{Total: 2}) || l.Version != 1 || l.Note != "order 4711" {
			t.Fatalf("created %+v", l)
		}
		a := e.as(t, openconsole.RoleReader, "GET", "/licenses/"+url.PathEscape(l.Key), nil)
		want(t, a, 200)
		if a.header.Get("ETag") != `"1"` {
			t.Errorf("ETag %q, want \"1\"", a.header.Get("ETag"))
		}
		status, sid := e.activate(t, 1, l.Key, "")
		if status != 200 {
			t.Fatalf("activate: %d %s", status, sid)
		}
		for i := range e.servers {
			if !e.validate(t, i, sid) {
				t.Fatalf("server %d: a new session does not validate", i)
			}
		}

		// If-Match: the current version passes, a stale one is 412 and changes nothing.
		a = e.as(t, op, "PATCH", "/licenses/"+l.Key, map[string]any{"expiresAt": "2030-01-01T00:00:00Z"}, "If-Match", `"1"`)
		want(t, a, 200)
		a.decode(t, &l)
		if l.Version != 2 || a.header.Get("ETag") != `"2"` {
			t.Errorf("after PATCH: version %d, ETag %q", l.Version, a.header.Get("ETag"))
		}
		a = e.as(t, op, "PATCH", "/licenses/"+l.Key, map[string]any{"seats": 9}, "If-Match", `"1"`)
		want(t, a, http.StatusPreconditionFailed)
		if code, _ := a.problem(t); code != openconsole.EPRECONDITION {
			t.Errorf("stale If-Match: code %q", code)
		}
		want(t, e.as(t, op, "POST", "/licenses/"+l.Key+"/suspend", nil, "If-Match", `"1"`), http.StatusPreconditionFailed)
		want(t, e.as(t, op, "POST", "/licenses/"+l.Key+"/suspend", nil, "If-Match", `W/"2"`), http.StatusPreconditionFailed)
		var cur admin.LicenseJSON
		e.as(t, op, "GET", "/licenses/"+l.Key, nil).decode(t, &cur)
		if cur.Seats.Total != 2 || cur.Status != "active" {
			t.Errorf("a refused change changed the license: %+v", cur)
		}

		// Suspension: no server answers valid a second later; activation is refused as invalid.
		a = e.as(t, op, "POST", "/licenses/"+l.Key+"/suspend", nil, "If-Match", `"2"`)
		want(t, a, 200)
		a.decode(t, &cur)
		if cur.Status != "suspended" || time.Time(cur.SuspendedAt).IsZero() {
			t.Errorf("suspend answered %+v", cur)
		}
		for i := range e.servers {
			within(t, openconsole.CacheStaleness, fmt.Sprintf("server %d sees the suspension", i), func() bool { return !e.validate(t, i, sid) })
		}
		if status, reason := e.activate(t, 0, l.Key, sid); status != 403 || reason != "License found but invalid" {
			t.Errorf("activation of a suspended license: %d %q", status, reason)
		}
		// Resumption: the same session is valid again on every server.
		want(t, e.as(t, op, "POST", "/licenses/"+l.Key+"/resume", nil), 200)
		for i := range e.servers {
			within(t, openconsole.CacheStaleness, fmt.Sprintf("server %d sees the resumption", i), func() bool { return e.validate(t, i, sid) })
		}
		if status, _ := e.activate(t, 1, l.Key, sid); status != 204 {
			t.Errorf("re-activation after the resumption: %d, want 204", status)
		}
		// Revocation is final.
		a = e.as(t, op, "POST", "/licenses/"+l.Key+"/revoke", nil)
		want(t, a, 200)
		a.decode(t, &cur)
		if cur.Status != "revoked" {
			t.Errorf("revoke answered %+v", cur)
		}
		for i := range e.servers {
			within(t, openconsole.CacheStaleness, fmt.Sprintf("server %d sees the revocation", i), func() bool { return !e.validate(t, i, sid) })
		}
		want(t, e.as(t, op, "POST", "/licenses/"+l.Key+"/resume", nil), http.StatusConflict)
		want(t, e.as(t, op, "PATCH", "/licenses/"+l.Key, map[string]any{"seats": 5}), http.StatusConflict)

		// Listing filters.
		other := e.createLicense(t, map[string]any{"seats": 1, "note": "spare"})
		var page admin.Page[admin.LicenseJSON]
		e.as(t, openconsole.RoleReader, "GET", "/licenses?status=revoked", nil).decode(t, &page)
		if len(page.Items) != 1 || page.Items[0].Key != l.Key {
			t.Errorf("?status=revoked: %+v", page.Items)
		}
		e.as(t, openconsole.RoleReader, "GET", "/licenses?q=SPARE", nil).decode(t, &page)
		if len(page.Items) != 1 || page.Items[0].Key != other.Key {
			t.Errorf("?q=SPARE: %+v", page.Items)
		}
		// A one-seat license with its device is at its limit; the empty spare and the revoked one are not.
		full := e.createLicense(t, map[string]any{"seats": 1, "note": "full"})
		if status, _ := e.activate(t, 0, full.Key, ""); status != 200 {
			t.Fatalf("activation of the one-seat license: %d", status)
		}
		e.as(t, openconsole.RoleReader, "GET", "/licenses?nearLimit=true", nil).decode(t, &page)
		if len(page.Items) != 1 || page.Items[0].Key != full.Key {
			t.Errorf("?nearLimit=true: %+v", page.Items)
		}
		e.as(t, openconsole.RoleReader, "GET", "/licenses?nearLimit=false", nil).decode(t, &page)
		if len(page.Items) != 3 {
			t.Errorf("?nearLimit=false lists %d licenses, want all 3", len(page.Items))
		}
		want(t, e.as(t, openconsole.RoleReader, "GET", "/licenses?nearLimit=maybe", nil), 400)
	})
}

// TestIdempotency: a repeated create with the same key and body gets the first answer and creates
// nothing; another body with the key is 422; ten identical requests racing create one license.
func TestIdempotency(t *testing.T) {
	sqlstoretest.Each(t, func(t *testing.T, dsn string) {
		e := newEnv(t, dsn, 2, openconsole.Options{})
		const op = openconsole.RoleOperator
		body := map[string]any{"seats": 3, "note": "shop order 1001"}
		first := e.as(t, op, "POST", "/licenses", body, "Idempotency-Key", "order-1001")
		want(t, first, 201)
		for i := 0; i < 5; i++ { // a shop's webhook retried five times
			again := e.call(t, i%2, "POST", "/licenses", e.tokens[op], body, "Idempotency-Key", "order-1001")
			if again.status != 201 || !bytes.Equal(again.body, first.body) || again.header.Get("Idempotent-Replayed") != "true" {
				t.Errorf("replay %d: %d %s (replayed %q), want the first answer", i, again.status, again.body, again.header.Get("Idempotent-Replayed"))
			}
			for _, h := range []string{"ETag", "Location"} {
				if again.header.Get(h) != first.header.Get(h) || first.header.Get(h) == "" {
					t.Errorf("replay %d: %s %q, the first answer had %q", i, h, again.header.Get(h), first.header.Get(h))
				}
			}
		}
		a := e.as(t, op, "POST", "/licenses", map[string]any{"seats": 4}, "Idempotency-Key", "order-1001")
		want(t, a, http.StatusUnprocessableEntity)
		// Keys are per token: the same key from another token is another request.
		want(t, e.as(t, openconsole.RoleAdmin, "POST", "/licenses", body, "Idempotency-Key", "order-1001"), 201)

		// Ten identical requests at once, on two servers: one license.
		var wg sync.WaitGroup
		answers := make([]answer, 10)
		for i := range answers {
			wg.Add(1)
			go func(i int) {
				defer wg.Done()
				answers[i] = e.call(t, i%2, "POST", "/licenses", e.tokens[op], map[string]any{"seats": 1, "note": "race"}, "Idempotency-Key", "race-1")
			}(i)
		}
		wg.Wait()
		keys := map[string]bool{}
		for _, a := range answers {
			if a.status != 201 {
				t.Errorf("a racing request got %d: %s", a.status, a.body)
				continue
			}
			var l admin.LicenseJSON
			a.decode(t, &l)
			keys[l.Key] = true
		}
		var page admin.Page[admin.LicenseJSON]
		e.as(t, op, "GET", "/licenses?q=race", nil).decode(t, &page)
		if len(page.Items) != 1 || len(keys) != 1 {
			t.Errorf("ten racing requests made %d licenses and %d distinct answers, want 1 and 1", len(page.Items), len(keys))
		}
		want(t, e.as(t, op, "POST", "/licenses", body, "Idempotency-Key", strings.Repeat("k", 300)), 400)
	})
}

// TestPaginationUnderInserts: paging through licenses and sessions while others are added skips
// and repeats none of those that were there from the start.
func TestPaginationUnderInserts(t *testing.T) {
	sqlstoretest.Each(t, func(t *testing.T, dsn string) {
		e := newEnv(t, dsn, 1, openconsole.Options{})
		svc := e.servers[0].svc
		var before []string
		big, err := svc.CreateLicense(ctx, openconsole.LicenseInput{Seats: 1000})
		if err != nil {
			t.Fatal(err)
		}
		before = append(before, big.Key)
		for i := 0; i < 120; i++ {
			l, err := svc.CreateLicense(ctx, openconsole.LicenseInput{Seats: 1})
			if err != nil {
				t.Fatal(err)
			}
			before = append(before, l.Key)
		}
		var sessionsBefore []string
		for i := 0; i < 60; i++ {
			a, err := svc.Activate(ctx, openconsole.ActivateInput{LicenseKey: big.Key})
			if err != nil {
				t.Fatal(err)
			}
			sessionsBefore = append(sessionsBefore, a.Session.ID)
		}
		stop := make(chan struct{})
		var wg sync.WaitGroup
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				select {
				case <-stop:
					return
				default:
				}
				svc.CreateLicense(ctx, openconsole.LicenseInput{Seats: 1})
				svc.Activate(ctx, openconsole.ActivateInput{LicenseKey: big.Key})
			}
		}()
		collect := func(path string, key func(json.RawMessage) string) []string {
			var out []string
			cursor := ""
			for {
				p := path + "&limit=7"
				if cursor != "" {
					p += "&cursor=" + url.QueryEscape(cursor)
				}
				a := e.as(t, openconsole.RoleReader, "GET", p, nil)
				want(t, a, 200)
				var page admin.Page[json.RawMessage]
				a.decode(t, &page)
				for _, it := range page.Items {
					out = append(out, key(it))
				}
				if page.NextCursor == nil {
					return out
				}
				cursor = *page.NextCursor
			}
		}
		lics := collect("/licenses?x=1", func(m json.RawMessage) string {
			var l admin.LicenseJSON
			json.Unmarshal(m, &l)
			return l.Key
		})
		sess := collect("/sessions?license="+url.QueryEscape(big.Key), func(m json.RawMessage) string {
			var s admin.SessionJSON
			json.Unmarshal(m, &s)
			return s.ID
		})
		close(stop)
		wg.Wait()
		for name, c := range map[string]struct{ got, before []string }{"licenses": {lics, before}, "sessions": {sess, sessionsBefore}} {
			seen := map[string]int{}
			for _, k := range c.got {
				seen[k]++
			}
			for k, n := range seen {
				if n > 1 {
					t.Errorf("%s: %s listed %d times", name, k, n)
				}
			}
			for _, k := range c.before {
				if seen[k] != 1 {
					t.Errorf("%s: %s, there from the start, listed %d times", name, k, seen[k])
				}
			}
			if len(c.got) <= len(c.before) {
				t.Logf("%s: nothing added during the listing was listed (%d)", name, len(c.got))
			}
		}
		want(t, e.as(t, openconsole.RoleReader, "GET", "/licenses?limit=0", nil), 400)
		want(t, e.as(t, openconsole.RoleReader, "GET", "/licenses?limit=1001", nil), 400)
		want(t, e.as(t, openconsole.RoleReader, "GET", "/licenses?cursor=bogus", nil), 400)
	})
}

// TestSeatLowering: lowering a license's seats below the seats taken keeps its live devices
// working, refuses new activations until enough seats are free, and says so in the answer.
func TestSeatLowering(t *testing.T) {
	sqlstoretest.Each(t, func(t *testing.T, dsn string) {
		e := newEnv(t, dsn, 1, openconsole.Options{})
		l := e.createLicense(t, map[string]any{"seats": 3})
		var sids []string
		for i := 0; i < 3; i++ {
			status, sid := e.activate(t, 0, l.Key, "")
			if status != 200 {
				t.Fatal(sid)
			}
			sids = append(sids, sid)
		}
		a := e.as(t, openconsole.RoleOperator, "PATCH", "/licenses/"+l.Key, map[string]any{"seats": 1})
		want(t, a, 200)
		a.decode(t, &l)
		if l.Seats != (admin.Seats{Total: 1, Taken: 3}) || !strings.Contains(l.Warning, "live devices keep working") {
			t.Errorf("lowered seats: %+v", l)
		}
		for _, sid := range sids {
			if !e.validate(t, 0, sid) {
				t.Errorf("session %s stopped validating when the seats were lowered", sid)
			}
		}
		if status, reason := e.activate(t, 0, l.Key, ""); status != 403 || reason != "License found but maximum activations reached" {
			t.Errorf("activation over the lowered seats: %d %q", status, reason)
		}
		for _, sid := range sids[:2] {
			want(t, e.as(t, openconsole.RoleOperator, "DELETE", "/sessions/"+sid, nil), 200)
		}
		if status, _ := e.activate(t, 0, l.Key, ""); status != 403 {
			t.Errorf("activation with 1 of 1 seats taken: %d, want 403", status)
		}
		want(t, e.as(t, openconsole.RoleOperator, "DELETE", "/sessions/"+sids[2], nil), 200)
		if status, _ := e.activate(t, 0, l.Key, ""); status != 200 {
			t.Errorf("activation with a free seat: %d, want 200", status)
		}
		var after admin.LicenseJSON
		e.as(t, openconsole.RoleReader, "GET", "/licenses/"+l.Key, nil).decode(t, &after)
		if after.Seats != (admin.Seats{Total: 1, Taken: 1}) || after.Warning != "" {
			t.Errorf("after freeing seats: %+v", after)
		}
	})
}

// TestDisabledUser: a disabled user cannot log in, and its bearer tokens stop working at once, for
// bearer activation too; enabled again, both work.
func TestDisabledUser(t *testing.T) {
	sqlstoretest.Each(t, func(t *testing.T, dsn string) {
		e := newEnv(t, dsn, 1, openconsole.Options{})
		want(t, e.as(t, openconsole.RoleAdmin, "POST", "/users", map[string]any{"username": "dora", "password": "pw-dora"}), 201)
		e.createLicense(t, map[string]any{"seats": 5, "owner": "dora"})
		login := func() (int, string) {
			resp, err := e.hc.Post(e.servers[0].srv.URL+"/api/v2/auth/login", "application/json", strings.NewReader(`{"username":"dora","password":"pw-dora"}`))
			if err != nil {
				t.Fatal(err)
			}
			defer resp.Body.Close()
			var env struct {
				Reason string `json:"reason"`
				Data   struct {
					JWT struct {
						Token string `json:"token"`
					} `json:"jwt"`
				} `json:"data"`
			}
			json.NewDecoder(resp.Body).Decode(&env)
			if resp.StatusCode == 200 {
				return 200, env.Data.JWT.Token
			}
			return resp.StatusCode, env.Reason
		}
		bearer := func(token string) (int, string) {
			req, _ := http.NewRequest("POST", e.servers[0].srv.URL+"/api/v2/device/license/activate", strings.NewReader("null"))
			req.Header.Set("Authorization", "Bearer "+token)
			resp, err := e.hc.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			defer resp.Body.Close()
			var env struct {
				Reason string `json:"reason"`
			}
			json.NewDecoder(resp.Body).Decode(&env)
			return resp.StatusCode, env.Reason
		}
		status, token := login()
		if status != 200 {
			t.Fatalf("login: %d %s", status, token)
		}
		if status, reason := bearer(token); status != 200 {
			t.Fatalf("bearer activation: %d %s", status, reason)
		}
		a := e.as(t, openconsole.RoleAdmin, "PATCH", "/users/dora", map[string]any{"disabled": true})
		want(t, a, 200)
		if status, reason := login(); status != 403 || reason != "This account is disabled" {
			t.Errorf("login of a disabled user: %d %q", status, reason)
		}
		if status, reason := bearer(token); status != 403 || reason != "Invalid or expired token" {
			t.Errorf("bearer activation with a disabled user's token: %d %q", status, reason)
		}
		want(t, e.as(t, openconsole.RoleAdmin, "PATCH", "/users/dora", map[string]any{"disabled": false}), 200)
		if status, _ := bearer(token); status != 200 {
			t.Errorf("bearer activation after enabling: %d", status)
		}
		// An operator may not manage users.
		want(t, e.as(t, openconsole.RoleOperator, "PATCH", "/users/dora", map[string]any{"disabled": true}), 403)
	})
}

// TestUsersAndTokens: users and API tokens through the API; passwords and token secrets are never
// answered, except a new token's secret in the answer that created it.
func TestUsersAndTokens(t *testing.T) {
	sqlstoretest.Each(t, func(t *testing.T, dsn string) {
		e := newEnv(t, dsn, 1, openconsole.Options{})
		const ad = openconsole.RoleAdmin
		a := e.as(t, ad, "POST", "/users", map[string]any{"username": "ed", "password": "ed-secret-pw", "email": "ed@x", "role": "reader", "vendor": true})
		want(t, a, 201)
		var u admin.UserJSON
		a.decode(t, &u)
		if u.Username != "ed" || u.Role == nil || *u.Role != "reader" || !u.Vendor || a.header.Get("ETag") != `"1"` {
			t.Errorf("created user %+v", u)
		}
		for _, b := range [][]byte{a.body, e.as(t, ad, "GET", "/users/ed", nil).body, e.as(t, ad, "GET", "/users", nil).body} {
			if bytes.Contains(b, []byte("ed-secret-pw")) || bytes.Contains(b, []byte("argon2")) {
				t.Errorf("a user answer holds the password or its hash: %s", b)
			}
		}
		a = e.as(t, ad, "PATCH", "/users/ed", map[string]any{"role": nil, "displayName": "Ed"}, "If-Match", `"1"`)
		want(t, a, 200)
		a.decode(t, &u)
		if u.Role != nil || u.DisplayName != "Ed" || u.Version != 2 {
			t.Errorf("patched user %+v", u)
		}
		want(t, e.as(t, ad, "PATCH", "/users/ed", map[string]any{"email": "x"}, "If-Match", `"1"`), 412)
		want(t, e.as(t, ad, "PATCH", "/users/ed", map[string]any{"username": "eddie"}), 400)
		want(t, e.as(t, ad, "PATCH", "/users/ed", map[string]any{"colour": "red"}), 400)
		want(t, e.as(t, ad, "POST", "/users", map[string]any{"username": "ed", "password": "x"}), 409)
		want(t, e.as(t, ad, "POST", "/users", map[string]any{"username": "no-password"}), 400)
		want(t, e.as(t, ad, "GET", "/users/nobody", nil), 404)

		a = e.as(t, ad, "POST", "/tokens", map[string]any{"name": "erp", "role": "reader"})
		want(t, a, 201)
		var tok admin.TokenJSON
		a.decode(t, &tok)
		if tok.Token == nil || !strings.HasPrefix(*tok.Token, "ocp_") {
			t.Fatalf("created token %+v", tok)
		}
		if list := e.as(t, ad, "GET", "/tokens", nil); bytes.Contains(list.body, []byte(*tok.Token)) {
			t.Errorf("token list shows a secret")
		}
		want(t, e.call(t, 0, "GET", "/stats", *tok.Token, nil), 200)
		want(t, e.as(t, ad, "DELETE", "/tokens/"+tok.ID, nil), 200)
		want(t, e.call(t, 0, "GET", "/stats", *tok.Token, nil), 401)
		want(t, e.as(t, ad, "POST", "/tokens", map[string]any{"name": "x", "role": "superuser"}), 400)
		want(t, e.as(t, ad, "POST", "/tokens", map[string]any{"name": "x", "role": "reader", "expiresAt": "2001-01-01T00:00:00Z"}), 400)
	})
}

// TestSessionsSerialsAndCatalogue: the other resources, each answer checked against the document.
func TestSessionsSerialsAndCatalogue(t *testing.T) {
	sqlstoretest.Each(t, func(t *testing.T, dsn string) {
		e := newEnv(t, dsn, 1, openconsole.Options{})
		const op, rd = openconsole.RoleOperator, openconsole.RoleReader
		l := e.createLicense(t, map[string]any{"seats": 2})
		_, s1 := e.activate(t, 0, l.Key, "")
		_, s2 := e.activate(t, 0, l.Key, "")
		var page admin.Page[admin.SessionJSON]
		e.as(t, rd, "GET", "/sessions?license="+l.Key, nil).decode(t, &page)
		if len(page.Items) != 2 || page.Items[0].ID != s1 || !page.Items[0].Live {
			t.Errorf("sessions of %s: %+v", l.Key, page.Items)
		}
		want(t, e.as(t, op, "DELETE", "/sessions/"+s1, nil), 200)
		e.as(t, rd, "GET", "/sessions?live=true", nil).decode(t, &page)
		if len(page.Items) != 1 || page.Items[0].ID != s2 {
			t.Errorf("live sessions: %+v", page.Items)
		}
		var one admin.SessionJSON
		e.as(t, rd, "GET", "/sessions/"+strings.ToUpper(s1), nil).decode(t, &one)
		if one.ID != s1 || one.Live || time.Time(one.RevokedAt).IsZero() {
			t.Errorf("revoked session: %+v", one)
		}
		want(t, e.as(t, rd, "GET", "/sessions/not-a-uuid", nil), 400)
		want(t, e.as(t, rd, "GET", "/sessions/00000000-0000-4000-8000-000000000000", nil), 404)
		want(t, e.as(t, rd, "GET", "/sessions?license=NOPE", nil), 404)
		want(t, e.as(t, rd, "GET", "/sessions?live=maybe", nil), 400)

		serial := map[string]any{"serialNumber": "SN-API-1", "model": "IPC", "manufacturer": map[string]any{"name": "ACME", "id": 7}, "manufactureDate": "2025-02-03"}
		want(t, e.as(t, op, "POST", "/serials", serial), 201)
		want(t, e.as(t, op, "POST", "/serials", serial), 409)
		delete(serial, "model")
		want(t, e.as(t, op, "POST", "/serials", serial), 400)
		var serials admin.Page[admin.SerialJSON]
		e.as(t, rd, "GET", "/serials", nil).decode(t, &serials)
		if len(serials.Items) != 1 || serials.Items[0].SerialNumber != "SN-API-1" || serials.Items[0].Status != "registered" {
			t.Errorf("serials: %+v", serials.Items)
		}

		manifest := `{"_schemaVersion":"3.0.0","app":"tech.flecs.api","version":"1.0.0","revision":"0","image":"flecs.azurecr.io/tech.flecs.api"}`
		want(t, e.as(t, op, "POST", "/manifests?official=true", manifest), 201)
		want(t, e.as(t, op, "POST", "/manifests", `{"app":"x"}`), 400)
		want(t, e.as(t, rd, "GET", "/manifests", nil), 200)
		want(t, e.as(t, rd, "GET", "/manifests/tech.flecs.api/1.0.0", nil), 200)
		a := e.as(t, op, "PUT", "/apps/tech.flecs.api/credentials", map[string]any{"username": "pull", "password": "registry-pw-9"})
		want(t, a, 200)
		if bytes.Contains(a.body, []byte("registry-pw-9")) {
			t.Errorf("credentials answer holds the password: %s", a.body)
		}
		want(t, e.as(t, rd, "GET", "/apps/tech.flecs.api", nil), 200)
		want(t, e.as(t, op, "PUT", "/apps/tech.flecs.none/credentials", map[string]any{"username": "u", "password": "p"}), 404)
		want(t, e.as(t, rd, "GET", "/token-issuances?session="+s2, nil), 200)
		want(t, e.as(t, op, "POST", "/products", `[{"id":7,"name":"App","store":{"id":791}}]`), 200)
		want(t, e.as(t, rd, "GET", "/products?store=791", nil), 200)
		want(t, e.as(t, rd, "GET", "/products?store=x", nil), 400)
		want(t, e.as(t, openconsole.RoleAdmin, "POST", "/users", map[string]any{"username": "sub", "password": "p"}), 201)
		want(t, e.as(t, op, "POST", "/subscriptions", map[string]any{"user": "sub", "productId": 7}), 201)
		want(t, e.as(t, op, "POST", "/subscriptions", map[string]any{"user": "sub", "productId": 99}), 404)
		want(t, e.as(t, rd, "GET", "/subscriptions?user=sub", nil), 200)
		want(t, e.as(t, op, "DELETE", "/manifests/tech.flecs.api/1.0.0?schemaVersion=3.0.0", nil), 200)
		want(t, e.as(t, op, "DELETE", "/manifests/tech.flecs.api/1.0.0", nil), 404)

		var st admin.StatsJSON
		e.as(t, rd, "GET", "/stats", nil).decode(t, &st)
		if st.Licenses["active"] != 2 || st.Activations24h != 2 || st.LiveSessions != 1 {
			t.Errorf("stats: %+v", st)
		}
		var check admin.SeatCheckJSON
		e.as(t, rd, "GET", "/seats/check", nil).decode(t, &check)
		if !check.OK || check.Licenses != 2 {
			t.Errorf("seat check: %+v", check)
		}
		want(t, e.as(t, openconsole.RoleAdmin, "POST", "/seats/repair", nil), 200)
		want(t, e.as(t, openconsole.RoleAdmin, "POST", "/signing-keys/rotate", map[string]any{"dropOld": false}), 200)
	})
}

// TestProblems: the refusals that are not about a resource, all as problem details.
func TestProblems(t *testing.T) {
	e := newEnv(t, sqlstoretest.DSN(t, "sqlite"), 1, openconsole.Options{})
	const op = openconsole.RoleOperator
	for _, tc := range []struct {
		name         string
		method, path string
		body         any
		status       int
		code         string
	}{
		{"unknown path", "GET", "/nothing-here", nil, 404, "not_found"},
		{"wrong method", "PUT", "/licenses", nil, 405, "method_not_allowed"},
		{"not JSON", "POST", "/licenses", "{", 400, "invalid"},
		{"unknown field", "POST", "/licenses", map[string]any{"seats": 1, "seat": 2}, 400, "invalid"},
		{"wrong type", "POST", "/licenses", map[string]any{"seats": "two"}, 400, "invalid"},
		{"missing seats", "POST", "/licenses", map[string]any{"note": "x"}, 400, "invalid"},
		{"too many seats", "POST", "/licenses", map[string]any{"seats": openconsole.MaxSeats + 1}, 400, "invalid"},
		{"metadata not an object", "POST", "/licenses", map[string]any{"seats": 1, "metadata": []int{1}}, 400, "invalid"},
		{"unknown owner", "POST", "/licenses", map[string]any{"seats": 1, "owner": "nobody"}, 404, "not_found"},
		{"bad status filter", "GET", "/licenses?status=sleeping", nil, 400, "invalid"},
		{"too large", "POST", "/products", strings.Repeat(" ", 17<<20), 413, "too_large"},
		{"body on an action", "POST", "/licenses/X/suspend", map[string]any{"why": "because"}, 400, "invalid"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			a := e.as(t, op, tc.method, tc.path, tc.body)
			if a.status != tc.status {
				t.Fatalf("%d %s, want %d", a.status, a.body, tc.status)
			}
			if code, _ := a.problem(t); code != tc.code {
				t.Errorf("code %q, want %q", code, tc.code)
			}
		})
	}
	if a := e.as(t, op, "PUT", "/licenses", nil); !slices.Contains(strings.Split(a.header.Get("Allow"), ", "), "POST") {
		t.Errorf("405 Allow = %q", a.header.Get("Allow"))
	}
}
