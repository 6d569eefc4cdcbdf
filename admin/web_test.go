package admin_test

import (
	"io"
	"log/slog"
	"net/http"
	"net/http/cookiejar"
	"net/http/httptest"
	"net/url"
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

// webEnv is a server with the FLECS Console API, the operator API and the web console, as serve
// wires them on one listener.
type webEnv struct {
	svc *openconsole.Service
	srv *httptest.Server
}

func newWebEnv(t testing.TB, dsn string, opts openconsole.Options) *webEnv {
	t.Helper()
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	if opts.Limits == nil {
		opts.Limits = &openconsole.Limits{}
	}
	opts.Logger = log
	st, err := sqlstore.Open(ctx, dsn, sqlstore.Options{})
	if err != nil {
		t.Fatal(err)
	}
	svc, err := openconsole.NewService(ctx, st, opts)
	if err != nil {
		t.Fatal(err)
	}
	web := admin.NewWeb(svc, log)
	operator := admin.New(svc, log, admin.WithAuthenticator(web.Authenticator()))
	console := api.New(svc, log)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch {
		case strings.HasPrefix(r.URL.Path, admin.Prefix+"/"):
			operator.ServeHTTP(w, r)
		case r.URL.Path == admin.WebPrefix || strings.HasPrefix(r.URL.Path, admin.WebPrefix+"/"):
			web.ServeHTTP(w, r)
		default:
			console.ServeHTTP(w, r)
		}
	}))
	t.Cleanup(func() { srv.Close(); svc.Close(); st.Close() })
	return &webEnv{svc: svc, srv: srv}
}

func (e *webEnv) user(t testing.TB, name string, role openconsole.Role) {
	t.Helper()
	if _, err := e.svc.CreateUser(ctx, openconsole.UserInput{Username: name, Password: name + "-password", Role: role}); err != nil {
		t.Fatal(err)
	}
}

// browserless is an HTTP client of the web console with its own cookies, not following redirects.
type browserless struct {
	t  testing.TB
	e  *webEnv
	hc *http.Client
}

func (e *webEnv) client(t testing.TB) *browserless {
	jar, _ := cookiejar.New(nil)
	return &browserless{t: t, e: e, hc: &http.Client{Jar: jar, Timeout: 10 * time.Second,
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}}
}

func (b *browserless) do(method, path string, form url.Values, header ...string) (*http.Response, string) {
	b.t.Helper()
	var body io.Reader
	if form != nil {
		body = strings.NewReader(form.Encode())
	}
	req, err := http.NewRequest(method, b.e.srv.URL+path, body)
	if err != nil {
		b.t.Fatal(err)
	}
	if form != nil {
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	}
	for i := 0; i+1 < len(header); i += 2 {
		req.Header.Set(header[i], header[i+1])
	}
	resp, err := b.hc.Do(req)
	if err != nil {
		b.t.Fatal(err)
	}
	defer resp.Body.Close()
	page, _ := io.ReadAll(resp.Body)
	return resp, string(page)
}

func (b *browserless) signIn(name string) *http.Response {
	b.t.Helper()
	resp, _ := b.do("POST", "/admin/login", url.Values{"username": {name}, "password": {name + "-password"}, "next": {"/admin/licenses"}})
	return resp
}

// TestWebSignIn: only users with a role sign in; the cookie is HttpOnly, SameSite=Strict and
// scoped to the console; pages need a session; sign-out ends it on the server; a next address
// never leads off the console; failed sign-ins are throttled like logins.
func TestWebSignIn(t *testing.T) {
	sqlstoretest.Each(t, func(t *testing.T, dsn string) {
		limits := openconsole.Limits{LoginFailuresPerUser: openconsole.Limit{Burst: 3, PerMinute: 1}}
		e := newWebEnv(t, dsn, openconsole.Options{Limits: &limits})
		e.user(t, "ada", openconsole.RoleAdmin)
		if _, err := e.svc.CreateUser(ctx, openconsole.UserInput{Username: "devuser", Password: "devuser-password"}); err != nil {
			t.Fatal(err)
		}
		b := e.client(t)
		if resp, _ := b.do("GET", "/admin/licenses", nil); resp.StatusCode != http.StatusSeeOther ||
			resp.Header.Get("Location") != "/admin/login?next=%2Fadmin%2Flicenses" {
			t.Fatalf("a page without a session: %d %s, want a redirect to the sign-in", resp.StatusCode, resp.Header.Get("Location"))
		}
		if resp, _ := b.do("POST", "/admin/licenses", url.Values{"seats": {"1"}}); resp.StatusCode != http.StatusUnauthorized {
			t.Errorf("an action without a session: %d, want 401", resp.StatusCode)
		}
		if resp, page := b.do("POST", "/admin/login", url.Values{"username": {"devuser"}, "password": {"devuser-password"}}); resp.StatusCode != http.StatusForbidden ||
			!strings.Contains(page, "may not sign in") {
			t.Errorf("a console user without a role: %d", resp.StatusCode)
		}
		resp := b.signIn("ada")
		if resp.StatusCode != http.StatusSeeOther || resp.Header.Get("Location") != "/admin/licenses" {
			t.Fatalf("sign-in: %d %s", resp.StatusCode, resp.Header.Get("Location"))
		}
		var c *http.Cookie
		for _, k := range resp.Cookies() {
			c = k
		}
		if c == nil || !c.HttpOnly || c.SameSite != http.SameSiteStrictMode || c.Path != "/" || len(c.Value) < 40 {
			t.Fatalf("session cookie %+v", c)
		}
		if resp, page := b.do("GET", "/admin/licenses", nil); resp.StatusCode != 200 || !strings.Contains(page, "<h1>Licenses</h1>") {
			t.Fatalf("licenses page: %d", resp.StatusCode)
		}
		// The cookie authenticates the operator API too, with the user's role.
		if resp, _ := b.do("GET", "/api/openconsole/v1/licenses", nil); resp.StatusCode != 200 {
			t.Errorf("operator API with the session cookie: %d", resp.StatusCode)
		}
		if resp, _ := b.do("POST", "/api/openconsole/v1/licenses", nil, "Origin", "https://evil.example", "Content-Type", "application/json"); resp.StatusCode != http.StatusForbidden {
			t.Errorf("a cross-origin change through the operator API with the cookie: %d, want 403", resp.StatusCode)
		}
		if resp, _ := b.do("POST", "/admin/logout", url.Values{}); resp.StatusCode != http.StatusSeeOther {
			t.Fatalf("sign-out: %d", resp.StatusCode)
		}
		// The old cookie no longer works, even sent again by hand.
		replay := e.client(t)
		u, _ := url.Parse(e.srv.URL + "/admin/")
		replay.hc.Jar.SetCookies(u, []*http.Cookie{{Name: c.Name, Value: c.Value, Path: "/"}})
		if resp, _ := replay.do("GET", "/admin/licenses", nil); resp.StatusCode != http.StatusSeeOther {
			t.Errorf("a signed-out session: %d, want the sign-in redirect", resp.StatusCode)
		}
		for _, next := range []string{"https://evil.example/", "//evil.example/", "/elsewhere", "/admin/\\evil"} {
			resp, _ := e.client(t).do("POST", "/admin/login", url.Values{"username": {"ada"}, "password": {"ada-password"}, "next": {next}})
			if loc := resp.Header.Get("Location"); loc != "/admin/" {
				t.Errorf("next %q led to %q", next, loc)
			}
		}
		for i := 0; i < 3; i++ {
			if resp, _ := e.client(t).do("POST", "/admin/login", url.Values{"username": {"ada"}, "password": {"wrong"}}); resp.StatusCode != http.StatusUnauthorized {
				t.Errorf("wrong password %d: %d, want 401", i, resp.StatusCode)
			}
		}
		if resp, _ := e.client(t).do("POST", "/admin/login", url.Values{"username": {"ada"}, "password": {"ada-password"}}); resp.StatusCode != http.StatusTooManyRequests ||
			resp.Header.Get("Retry-After") == "" {
			t.Errorf("after three failures: %d (Retry-After %q), want 429", resp.StatusCode, resp.Header.Get("Retry-After"))
		}
	})
}

// TestWebIdleTimeout: a session unused for WebIdleTimeout, or older than WebMaxAge, ends.
func TestWebIdleTimeout(t *testing.T) {
	clk := &fakeClock{t: time.Now()}
	e := newWebEnv(t, sqlstoretest.DSN(t, "sqlite"), openconsole.Options{Now: clk.Now})
	e.user(t, "ada", openconsole.RoleAdmin)
	b := e.client(t)
	b.signIn("ada")
	clk.Add(openconsole.WebIdleTimeout - time.Minute)
	if resp, _ := b.do("GET", "/admin/", nil); resp.StatusCode != 200 {
		t.Fatalf("within the idle timeout: %d", resp.StatusCode)
	}
	clk.Add(openconsole.WebIdleTimeout - time.Minute) // used a moment ago: still on
	if resp, _ := b.do("GET", "/admin/", nil); resp.StatusCode != 200 {
		t.Fatalf("used within the idle timeout: %d", resp.StatusCode)
	}
	clk.Add(openconsole.WebIdleTimeout + time.Second)
	if resp, _ := b.do("GET", "/admin/", nil); resp.StatusCode != http.StatusSeeOther {
		t.Errorf("idle past the timeout: %d, want the sign-in redirect", resp.StatusCode)
	}
	b.signIn("ada")
	for used := time.Duration(0); used < openconsole.WebMaxAge; used += openconsole.WebIdleTimeout / 2 {
		clk.Add(openconsole.WebIdleTimeout / 2)
		b.do("GET", "/admin/", nil)
	}
	if resp, _ := b.do("GET", "/admin/", nil); resp.StatusCode != http.StatusSeeOther {
		t.Errorf("a session used all along but older than %v: %d, want the sign-in redirect", openconsole.WebMaxAge, resp.StatusCode)
	}
}

// TestWebRolesAndForgery: a reader sees no action and a POST from it is 403; a form posted from
// another origin is refused before anything happens; a user whose role is taken away is refused
// at once.
func TestWebRolesAndForgery(t *testing.T) {
	sqlstoretest.Each(t, func(t *testing.T, dsn string) {
		e := newWebEnv(t, dsn, openconsole.Options{})
		e.user(t, "ada", openconsole.RoleAdmin)
		e.user(t, "rita", openconsole.RoleReader)
		l, err := e.svc.CreateLicense(ctx, openconsole.LicenseInput{Seats: 2, Note: "roles"})
		if err != nil {
			t.Fatal(err)
		}
		reader := e.client(t)
		reader.signIn("rita")
		_, page := reader.do("GET", "/admin/licenses/"+l.Key, nil)
		for _, action := range []string{`action="/admin/licenses/` + l.Key + `/suspend"`, `href="/admin/licenses/` + l.Key + `/revoke"`,
			`name="seats"`, "license suspend", "Revoke…"} {
			if strings.Contains(page, action) {
				t.Errorf("the reader's license page offers %s", action)
			}
		}
		if _, page := reader.do("GET", "/admin/licenses", nil); strings.Contains(page, `method="post" action="/admin/licenses"`) {
			t.Error("the reader's licenses page has the create form")
		}
		if _, page := reader.do("GET", "/admin/", nil); strings.Contains(page, "/admin/tokens") {
			t.Error("the reader's navigation links to the tokens page")
		}
		for _, p := range []string{"/admin/licenses/" + l.Key + "/suspend", "/admin/licenses/" + l.Key + "/revoke", "/admin/licenses"} {
			if resp, _ := reader.do("POST", p, url.Values{"seats": {"5"}}); resp.StatusCode != http.StatusForbidden {
				t.Errorf("reader POST %s: %d, want 403", p, resp.StatusCode)
			}
		}
		if resp, _ := reader.do("GET", "/admin/tokens", nil); resp.StatusCode != http.StatusForbidden {
			t.Errorf("reader GET tokens: %d, want 403", resp.StatusCode)
		}
		if got, _ := e.svc.License(ctx, l.Key); got.Status(time.Now()) != openconsole.StatusActive {
			t.Errorf("after the reader's attempts the license is %s", got.Status(time.Now()))
		}

		admin := e.client(t)
		admin.signIn("ada")
		for _, h := range [][]string{{"Origin", "https://evil.example"}, {"Sec-Fetch-Site", "cross-site"}} {
			if resp, _ := admin.do("POST", "/admin/licenses/"+l.Key+"/suspend", url.Values{}, h...); resp.StatusCode != http.StatusForbidden {
				t.Errorf("a cross-origin form (%s: %s): %d, want 403", h[0], h[1], resp.StatusCode)
			}
		}
		if got, _ := e.svc.License(ctx, l.Key); got.Status(time.Now()) != openconsole.StatusActive {
			t.Fatalf("a cross-origin form changed the license: %s", got.Status(time.Now()))
		}
		if resp, _ := admin.do("POST", "/admin/licenses/"+l.Key+"/suspend", url.Values{}, "Origin", e.srv.URL, "Sec-Fetch-Site", "same-origin"); resp.StatusCode != http.StatusSeeOther {
			t.Errorf("a same-origin suspend: %d, want 303", resp.StatusCode)
		}
		if got, _ := e.svc.License(ctx, l.Key); got.Status(time.Now()) != openconsole.StatusSuspended {
			t.Errorf("after the suspend the license is %s", got.Status(time.Now()))
		}
		none := openconsole.Role("")
		if _, err := e.svc.UpdateUser(ctx, "rita", openconsole.UserPatch{Role: &none}); err != nil {
			t.Fatal(err)
		}
		if resp, _ := reader.do("GET", "/admin/licenses", nil); resp.StatusCode != http.StatusSeeOther {
			t.Errorf("a user whose role was taken away: %d, want the sign-in redirect", resp.StatusCode)
		}
		// Every change above is attributed to the web user.
		for e2, err := range e.svc.Audit(ctx, openconsole.AuditQuery{Action: "license.suspend"}) {
			if err != nil {
				t.Fatal(err)
			}
			if e2.Actor.Kind != openconsole.ActorWeb || e2.Actor.Name != "ada" {
				t.Errorf("license.suspend by %+v, want the web user ada", e2.Actor)
			}
		}
	})
}

// TestWebPages: every page renders for an admin, with an error page for what is not found, and
// the assets are served under their content hash with a long cache lifetime.
func TestWebPages(t *testing.T) {
	sqlstoretest.Each(t, func(t *testing.T, dsn string) {
		e := newWebEnv(t, dsn, openconsole.Options{})
		e.user(t, "ada", openconsole.RoleAdmin)
		l, _ := e.svc.CreateLicense(ctx, openconsole.LicenseInput{Seats: 1, Note: "pages <b>&</b>"})
		b := e.client(t)
		b.signIn("ada")
		for _, p := range []string{"/admin/", "/admin/licenses", "/admin/licenses?q=pages&status=active", "/admin/licenses/" + l.Key,
			"/admin/users", "/admin/users/ada", "/admin/serials", "/admin/apps", "/admin/tokens", "/admin/audit?action=license.create",
			"/admin/licenses/" + l.Key + "/revoke"} {
			resp, page := b.do("GET", p, nil)
			if resp.StatusCode != 200 || !strings.Contains(page, "</html>") || resp.Header.Get("Content-Security-Policy") == "" {
				t.Errorf("GET %s: %d", p, resp.StatusCode)
			}
			if strings.Contains(page, "<b>&</b>") {
				t.Errorf("GET %s shows a note unescaped", p)
			}
		}
		for p, want := range map[string]int{"/admin/licenses/NO-SUCH": 404, "/admin/nothing": 404, "/admin/licenses?status=odd": 400,
			"/admin/licenses?cursor=zz": 400} {
			if resp, page := b.do("GET", p, nil); resp.StatusCode != want || !strings.Contains(page, "</html>") {
				t.Errorf("GET %s: %d, want %d", p, resp.StatusCode, want)
			}
		}
		_, page := b.do("GET", "/admin/", nil)
		i := strings.Index(page, `/admin/static/style.`)
		if i < 0 {
			t.Fatal("no stylesheet link")
		}
		css := page[i : i+strings.IndexByte(page[i:], '"')]
		resp, body := b.do("GET", css, nil)
		if resp.StatusCode != 200 || !strings.Contains(resp.Header.Get("Cache-Control"), "immutable") || !strings.Contains(body, "--accent") {
			t.Errorf("GET %s: %d %q", css, resp.StatusCode, resp.Header.Get("Cache-Control"))
		}
		if resp, _ := b.do("GET", "/admin/static/style.css", nil); resp.StatusCode != 404 {
			t.Errorf("an asset without its hash: %d, want 404", resp.StatusCode)
		}
		// Forms: a bad value re-renders the form with the message and changes nothing.
		resp, page = b.do("POST", "/admin/licenses", url.Values{"seats": {"0"}, "note": {"kept in the form"}})
		if resp.StatusCode != 400 || !strings.Contains(page, "Seats must be") || !strings.Contains(page, `value="kept in the form"`) {
			t.Errorf("a bad form: %d", resp.StatusCode)
		}
		resp, _ = b.do("POST", "/admin/licenses", url.Values{"seats": {"4"}, "note": {"from the form"}})
		if resp.StatusCode != http.StatusSeeOther || !strings.HasPrefix(resp.Header.Get("Location"), "/admin/licenses/") {
			t.Fatalf("create: %d %s", resp.StatusCode, resp.Header.Get("Location"))
		}
		// A token's secret is shown once, in the answer to its creation.
		resp, page = b.do("POST", "/admin/tokens", url.Values{"name": {"erp"}, "role": {"reader"}})
		if resp.StatusCode != http.StatusCreated || !strings.Contains(page, "ocp_") {
			t.Errorf("token create: %d", resp.StatusCode)
		}
		if _, page := b.do("GET", "/admin/tokens", nil); strings.Contains(page, "ocp_") {
			t.Error("the tokens page shows a secret again")
		}
	})
}

// fakeClock is a settable clock for the service.
type fakeClock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *fakeClock) Now() time.Time { c.mu.Lock(); defer c.mu.Unlock(); return c.t }
func (c *fakeClock) Add(d time.Duration) {
	c.mu.Lock()
	c.t = c.t.Add(d)
	c.mu.Unlock()
}
