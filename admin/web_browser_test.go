package admin_test

import (
	"context"
	_ "embed"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"openconsole"
	"openconsole/sqlstore/sqlstoretest"
)

// The web console in a real browser: Debian's chromium, headless, driven by chromedp.

//go:embed testdata/a11y.js
var a11yScript string

// browser starts a headless chromium at 1280x800, or skips the test where there is none (fails it
// where OPENCONSOLE_REQUIRE_TOOLS is set, as CI does).
func browser(t *testing.T) context.Context {
	t.Helper()
	var path string
	for _, name := range []string{"chromium", "chromium-browser", "google-chrome"} {
		if p, err := exec.LookPath(name); err == nil {
			path = p
			break
		}
	}
	if path == "" {
		if os.Getenv("OPENCONSOLE_REQUIRE_TOOLS") != "" {
			t.Fatal("no chromium to run the browser tests (apt-get install chromium)")
		}
		t.Skip("no chromium: the browser tests need it (apt-get install chromium)")
	}
	opts := append(chromedp.DefaultExecAllocatorOptions[:], chromedp.ExecPath(path), chromedp.WindowSize(1280, 800))
	if os.Geteuid() == 0 {
		opts = append(opts, chromedp.NoSandbox)
	}
	actx, cancelAlloc := chromedp.NewExecAllocator(context.Background(), opts...)
	bctx, cancelBrowser := chromedp.NewContext(actx)
	// The first call starts the browser, for as long as bctx lives; the steps after it are bounded.
	if err := chromedp.Do(bctx, chromedp.EmulateViewport(1280, 800)); err != nil {
		cancelBrowser()
		cancelAlloc()
		t.Fatalf("start chromium: %v", err)
	}
	tctx, cancelTimeout := context.WithTimeout(bctx, 2*time.Minute)
	t.Cleanup(func() { cancelTimeout(); cancelBrowser(); cancelAlloc() })
	return tctx
}

// run runs browser steps, failing the test on an error.
func run(t *testing.T, bctx context.Context, what string, steps ...chromedp.Action[chromedp.Void]) {
	t.Helper()
	if err := chromedp.Do(bctx, steps...); err != nil {
		t.Fatalf("%s: %v", what, err)
	}
}

// text is the text of the first element sel (a CSS selector) finds.
func text(t *testing.T, bctx context.Context, sel string) string {
	t.Helper()
	s, err := chromedp.Run(bctx, chromedp.Text(chromedp.CSS(sel)))
	if err != nil {
		t.Fatalf("text of %s: %v", sel, err)
	}
	return s
}

// waitText waits until the first element sel finds shows want (after a click that loads a page, the
// old page may still be there for a moment).
func waitText(t *testing.T, bctx context.Context, sel, want string) string {
	t.Helper()
	var got string
	for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(50 * time.Millisecond) {
		s, err := chromedp.Run(bctx, chromedp.Evaluate[string](`(document.querySelector(`+strconv.Quote(sel)+`) || {}).textContent || ""`))
		if err == nil {
			got = s
			if strings.Contains(got, want) {
				return got
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s shows %q, want %q", sel, got, want)
		}
	}
}

// css is a CSS selector.
func css(sel string) chromedp.CSS { return chromedp.CSS(sel) }

// checkA11y runs the accessibility check of the basics on the page shown: every form control
// labelled, one h1 and no heading level skipped, text contrast of at least 4.5:1 (3:1 large).
func checkA11y(t *testing.T, bctx context.Context, page string) {
	t.Helper()
	problems, err := chromedp.Run(bctx, chromedp.Evaluate[[]string](a11yScript))
	if err != nil {
		t.Fatalf("a11y check of %s: %v", page, err)
	}
	for _, p := range problems {
		t.Errorf("%s: %s", page, p)
	}
}

// screenshot saves the page at 1280x800 as docs/screenshots/NAME.png when
// OPENCONSOLE_SCREENSHOTS=1 (how the README's screenshots are refreshed).
func screenshot(t *testing.T, bctx context.Context, name string) {
	t.Helper()
	if os.Getenv("OPENCONSOLE_SCREENSHOTS") == "" {
		return
	}
	png, err := chromedp.Run(bctx, chromedp.CaptureScreenshot())
	if err != nil {
		t.Fatalf("screenshot: %v", err)
	}
	dir := filepath.Join("..", "docs", "screenshots")
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, name+".png"), png, 0o644); err != nil {
		t.Fatal(err)
	}
}

// consoleCall sends a FLECS Console API request as a device would.
func consoleCall(t *testing.T, base, path, sid, body string) (int, map[string]any) {
	t.Helper()
	req, _ := http.NewRequest("POST", base+path, strings.NewReader(body))
	if sid != "" {
		req.Header.Set("X-Session-Id", sid)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var env map[string]any
	json.NewDecoder(resp.Body).Decode(&env)
	return resp.StatusCode, env
}

func deviceValidates(t *testing.T, base, sid string) bool {
	t.Helper()
	_, env := consoleCall(t, base, "/api/v2/device/license/validate", sid, "")
	data, _ := env["data"].(map[string]any)
	return data["isValid"] == true
}

// TestWebConsoleInBrowser walks through what support does in a day: sign in, create a license,
// find it, see a device's session on it, suspend and resume it (the device's validate follows),
// revoke the session, find every step in the audit log, sign out. Every page passes the
// accessibility check.
func TestWebConsoleInBrowser(t *testing.T) {
	bctx := browser(t)
	e := newWebEnv(t, sqlstoretest.DSN(t, "sqlite"), openconsole.Options{})
	e.user(t, "ada", openconsole.RoleAdmin)
	base := e.srv.URL
	for i := 0; i < 40; i++ { // a fleet to look at
		l, err := e.svc.CreateLicense(ctx, openconsole.LicenseInput{Seats: 10, Note: fmt.Sprintf("order %d", 1000+i)})
		if err != nil {
			t.Fatal(err)
		}
		for j := 0; j < i%12; j++ {
			consoleCall(t, base, "/api/v2/device/license/activate", "", `{"licenseKey":"`+l.Key+`"}`)
		}
	}

	var h1 string
	run(t, bctx, "sign in",
		chromedp.Navigate(base+"/admin/"),
		chromedp.WaitVisible(css(`#username`)),
	)
	checkA11y(t, bctx, "sign-in")
	run(t, bctx, "sign in",
		chromedp.SendKeys(css(`#username`), "ada"),
		chromedp.SendKeys(css(`#password`), "ada-password"),
		chromedp.Submit(css(`#password`)),
		chromedp.WaitVisible(css(`#fleet`)),
	)
	h1 = text(t, bctx, `h1`)
	if h1 != "Overview" {
		t.Fatalf("after signing in: %q", h1)
	}
	checkA11y(t, bctx, "overview")
	screenshot(t, bctx, "overview")

	var key string
	run(t, bctx, "create a license",
		chromedp.Navigate(base+"/admin/licenses"),
		chromedp.WaitVisible(css(`#n-seats`)),
		chromedp.SetValue(css(`#n-seats`), "3"),
		chromedp.SendKeys(css(`#n-note`), "browser order 77"),
		chromedp.Submit(css(`#n-note`)),
		chromedp.WaitVisible(css(`#sessions`)),
	)
	key = text(t, bctx, `h1 code`)
	checkA11y(t, bctx, "licenses")
	if key == "" {
		t.Fatal("no key on the new license's page")
	}
	var results string
	run(t, bctx, "search",
		chromedp.Navigate(base+"/admin/licenses"),
		chromedp.WaitVisible(css(`#q`)),
		chromedp.SendKeys(css(`#q`), "browser order"),
		chromedp.Submit(css(`#q`)),
	)
	for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(50 * time.Millisecond) {
		loc, _ := chromedp.Run(bctx, chromedp.Evaluate[string](`location.search`))
		if strings.Contains(loc, "q=browser") {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the search did not load: %q", loc)
		}
	}
	run(t, bctx, "search results", chromedp.WaitVisible(css(`table`)))
	results = text(t, bctx, `table`)
	if !strings.Contains(results, key) || strings.Contains(results, "order 1000") {
		t.Fatalf("search for the note: %q, want only %s", results, key)
	}

	status, env := consoleCall(t, base, "/api/v2/device/license/activate", "", `{"licenseKey":"`+key+`"}`)
	if status != 200 {
		t.Fatalf("activate: %d %v", status, env)
	}
	sid := env["data"].(map[string]any)["sessionId"].(map[string]any)["id"].(string)
	var sessions string
	run(t, bctx, "the session on the license page",
		chromedp.Navigate(base+"/admin/licenses/"+key),
		chromedp.WaitVisible(css(`#sessions`)),
	)
	sessions = text(t, bctx, `#sessions + table`)
	if !strings.Contains(sessions, sid) || !strings.Contains(sessions, "live") {
		t.Fatalf("the license page's sessions: %q, want %s live", sessions, sid)
	}
	checkA11y(t, bctx, "license")
	screenshot(t, bctx, "license")

	var flash string
	run(t, bctx, "suspend", chromedp.Click(css(`form[action$="/suspend"] button`)))
	flash = waitText(t, bctx, `.flash`, "suspended")
	if deviceValidates(t, base, sid) {
		t.Fatalf("after suspending (%q) the device still validates", flash)
	}
	run(t, bctx, "resume", chromedp.Click(css(`form[action$="/resume"] button`)))
	flash = waitText(t, bctx, `.flash`, "active again")
	if !deviceValidates(t, base, sid) {
		t.Fatalf("after resuming (%q) the device does not validate", flash)
	}
	run(t, bctx, "revoke the session",
		chromedp.Click(css(`a[href$="/sessions/`+sid+`/revoke"]`)),
		chromedp.WaitVisible(css(`button.danger`)),
	)
	checkA11y(t, bctx, "confirmation")
	run(t, bctx, "confirm", chromedp.Click(css(`button.danger`)))
	flash = waitText(t, bctx, `.flash`, "session is revoked")
	if deviceValidates(t, base, sid) {
		t.Fatalf("after revoking the session (%q) the device still validates", flash)
	}

	var log string
	run(t, bctx, "audit log",
		chromedp.Navigate(base+"/admin/audit"),
		chromedp.WaitVisible(css(`table.audit`)),
	)
	log = text(t, bctx, `table.audit`)
	for _, action := range []string{"license.create", "license.suspend", "license.resume", "session.revoke"} {
		if !strings.Contains(log, action) {
			t.Errorf("the audit page has no %s", action)
		}
	}
	if !strings.Contains(log, "ada") {
		t.Error("the audit page does not name the web user")
	}
	// The server's own check reaches the latest checkpoint within a few seconds.
	var verified string
	deadline := time.Now().Add(15 * time.Second)
	for {
		run(t, bctx, "audit status", chromedp.Navigate(base+"/admin/audit"))
		verified = text(t, bctx, `p.status`)
		if strings.Contains(verified, "Verified up to checkpoint") || time.Now().After(deadline) {
			break
		}
		time.Sleep(500 * time.Millisecond)
	}
	if !strings.Contains(verified, "Verified up to checkpoint") {
		t.Errorf("audit status: %q", verified)
	}
	checkA11y(t, bctx, "audit")
	screenshot(t, bctx, "audit")
	for _, p := range []string{"/admin/users", "/admin/users/ada", "/admin/serials", "/admin/apps", "/admin/tokens"} {
		run(t, bctx, p, chromedp.Navigate(base+p), chromedp.WaitVisible(css(`h1`)))
		checkA11y(t, bctx, p)
	}

	run(t, bctx, "sign out",
		chromedp.Click(css(`form[action="/admin/logout"] button`)),
		chromedp.WaitVisible(css(`#username`)),
		chromedp.Navigate(base+"/admin/licenses/"+key),
		chromedp.WaitVisible(css(`#username`)),
	)
	h1 = text(t, bctx, `h1`)
	if h1 != "Sign in to OpenConsole" {
		t.Errorf("a page after signing out shows %q, want the sign-in", h1)
	}
}

// TestWebForgedFormInBrowser: a page on another origin that posts a form to the console while
// the user is signed in changes nothing (the browser sends no cookie, and the console refuses
// the cross-origin request).
func TestWebForgedFormInBrowser(t *testing.T) {
	bctx := browser(t)
	e := newWebEnv(t, sqlstoretest.DSN(t, "sqlite"), openconsole.Options{})
	e.user(t, "ada", openconsole.RoleAdmin)
	l, err := e.svc.CreateLicense(ctx, openconsole.LicenseInput{Seats: 1, Note: "target"})
	if err != nil {
		t.Fatal(err)
	}
	evil := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/html")
		fmt.Fprintf(w, `<!doctype html><title>prize</title><form id="f" method="post" action="%s/admin/licenses/%s/revoke">
<input type="hidden" name="version" value="0"></form><script>document.getElementById("f").submit()</script>`, e.srv.URL, l.Key)
	}))
	defer evil.Close()
	// The same host under another name is another origin (localhost vs 127.0.0.1).
	evilURL := strings.Replace(evil.URL, "127.0.0.1", "localhost", 1)
	var body string
	run(t, bctx, "sign in, then visit the other site",
		chromedp.Navigate(e.srv.URL+"/admin/login"),
		chromedp.WaitVisible(css(`#username`)),
		chromedp.SendKeys(css(`#username`), "ada"),
		chromedp.SendKeys(css(`#password`), "ada-password"),
		chromedp.Submit(css(`#password`)),
		chromedp.WaitVisible(css(`#fleet`)),
		chromedp.Navigate(evilURL),
		chromedp.Sleep(time.Second),
		chromedp.WaitReady(css(`body`)),
	)
	body = text(t, bctx, `body`)
	got, err := e.svc.License(ctx, l.Key)
	if err != nil {
		t.Fatal(err)
	}
	if got.Status(time.Now()) != openconsole.StatusActive {
		t.Fatalf("a forged form from another origin revoked the license (page: %q)", body)
	}
	for en, err := range e.svc.Audit(ctx, openconsole.AuditQuery{Action: "license.revoke"}) {
		if err == nil {
			t.Errorf("an audit entry for a forged request: %+v", en)
		}
	}
}

// TestA11yCheckFindsProblems: the accessibility check itself fails a page that breaks each rule.
func TestA11yCheckFindsProblems(t *testing.T) {
	bctx := browser(t)
	page := `<!doctype html><html><head><title>bad</title></head><body><h1>One</h1><h3>Skipped</h3><h1>Two</h1>` +
		`<input name="unlabelled"><p style="color:#aaa;background:#fff">faint</p><svg role="img"></svg></body></html>`
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/html")
		fmt.Fprint(w, page)
	}))
	defer srv.Close()
	run(t, bctx, "bad page", chromedp.Navigate(srv.URL))
	problems, err := chromedp.Run(bctx, chromedp.Evaluate[[]string](a11yScript))
	if err != nil {
		t.Fatal(err)
	}
	all := strings.Join(problems, "\n")
	for _, want := range []string{"without a label: unlabelled", "h3 right after h1", "2 h1 headings", "no lang", "contrast", "without a text alternative"} {
		if !strings.Contains(all, want) {
			t.Errorf("the check did not find %q in a page that has it; it found:\n%s", want, all)
		}
	}
}
