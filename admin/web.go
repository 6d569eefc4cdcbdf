package admin

import (
	"bytes"
	"crypto/sha256"
	"embed"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"html/template"
	"io/fs"
	"log/slog"
	"mime"
	"net/http"
	"net/url"
	"path"
	"runtime/debug"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"openconsole"
)

// The admin web console: server-rendered pages under /admin/ for the people who run the fleet.
// Every action is one call of the same service operation that the operator API and the CLI make,
// as the signed-in user, so roles and the audit log are the same. The pages work without
// JavaScript; app.js only adds copy buttons. Templates and assets are embedded; assets are served
// under a content hash with a year's cache lifetime, and nothing is loaded from elsewhere.

// WebPrefix is where the web console is served.
const WebPrefix = "/admin"

// webCookie holds a signed-in session's secret.
const webCookie = "openconsole_session"

//go:embed web
var webFS embed.FS

// Web is the admin web console as an http.Handler.
type Web struct {
	svc            *openconsole.Service
	log            *slog.Logger
	mux            *http.ServeMux
	pages          map[string]*template.Template
	assets         map[string]webAsset // by hashed name
	assetURL       map[string]string   // logical name -> URL
	cop            *http.CrossOriginProtection
	clientIPHeader string
	failures       *failureLog

	fleetMu   sync.Mutex
	fleetSnap *fleetSnapshot
	fleetBusy bool
}

type webAsset struct {
	body        []byte
	contentType string
}

// WebOption configures a Web.
type WebOption func(*Web)

// WebClientIPHeader takes the client address from the last value of the named header.
func WebClientIPHeader(name string) WebOption {
	return func(w *Web) { w.clientIPHeader = http.CanonicalHeaderKey(name) }
}

// NewWeb returns the web console on svc. A nil logger means slog.Default().
func NewWeb(svc *openconsole.Service, log *slog.Logger, opts ...WebOption) *Web {
	if log == nil {
		log = slog.Default()
	}
	w := &Web{svc: svc, log: log, mux: http.NewServeMux(), pages: map[string]*template.Template{},
		assets: map[string]webAsset{}, assetURL: map[string]string{}, cop: http.NewCrossOriginProtection()}
	w.failures = newFailureLog(log)
	for _, o := range opts {
		o(w)
	}
	w.loadAssets()
	w.loadTemplates()
	w.routes()
	return w
}

func (w *Web) loadAssets() {
	entries, err := fs.ReadDir(webFS, "web/static")
	if err != nil {
		panic("admin: web assets: " + err.Error())
	}
	for _, e := range entries {
		b, err := webFS.ReadFile("web/static/" + e.Name())
		if err != nil {
			panic("admin: web assets: " + err.Error())
		}
		sum := sha256.Sum256(b)
		ext := path.Ext(e.Name())
		hashed := strings.TrimSuffix(e.Name(), ext) + "." + hex.EncodeToString(sum[:6]) + ext
		w.assets[hashed] = webAsset{body: b, contentType: mime.TypeByExtension(ext)}
		w.assetURL[e.Name()] = WebPrefix + "/static/" + hashed
	}
}

func (w *Web) loadTemplates() {
	funcs := template.FuncMap{
		"asset": func(name string) string {
			u, ok := w.assetURL[name]
			if !ok {
				panic("admin: no asset " + name)
			}
			return u
		},
		"time":    formatTime,
		"ago":     ago,
		"pathseg": url.PathEscape,
		"query":   url.QueryEscape,
		"percent": percent,
		"pretty":  prettyJSON,
		"deref":   func(s *string) string { return derefOr(s, "") },
		"add":     func(a, b int) int { return a + b },
		"changes": changes,
	}
	layout := template.Must(template.New("layout.html").Funcs(funcs).ParseFS(webFS, "web/layout.html", "web/partials/*.html"))
	pages, err := fs.Glob(webFS, "web/pages/*.html")
	if err != nil {
		panic(err)
	}
	for _, p := range pages {
		t := template.Must(template.Must(layout.Clone()).ParseFS(webFS, p))
		w.pages[strings.TrimSuffix(path.Base(p), ".html")] = t
	}
}

func derefOr(s *string, def string) string {
	if s == nil || *s == "" {
		return def
	}
	return *s
}

// formatTime shows a time (a Time or a time.Time) to the minute, UTC; a dash when unset.
func formatTime(v any) string {
	var t time.Time
	switch v := v.(type) {
	case Time:
		t = time.Time(v)
	case time.Time:
		t = v
	}
	if t.IsZero() {
		return "—"
	}
	return t.UTC().Format("2006-01-02 15:04 UTC")
}

// ago says how long ago a time was, roughly.
func ago(t Time) string {
	tt := time.Time(t)
	if tt.IsZero() {
		return "never"
	}
	d := time.Since(tt)
	switch {
	case d < time.Minute:
		return "just now"
	case d < time.Hour:
		return fmt.Sprintf("%d min ago", int(d.Minutes()))
	case d < 48*time.Hour:
		return fmt.Sprintf("%d h ago", int(d.Hours()))
	}
	return fmt.Sprintf("%d days ago", int(d.Hours()/24))
}

func percent(taken, total int) int {
	if total <= 0 {
		return 0
	}
	return min(100, taken*100/total)
}

func prettyJSON(b []byte) string {
	var out bytes.Buffer
	if err := json.Indent(&out, b, "", "  "); err != nil {
		return string(b)
	}
	return out.String()
}

// fieldChange is one field an audit entry records, as a page shows it.
type fieldChange struct {
	Field, Before, After string
}

// changes lists the fields an audit entry records, in name order, each value as compact JSON;
// Before is empty for a field the change set for the first time.
func changes(e AuditJSON) []fieldChange {
	var before, after map[string]json.RawMessage
	json.Unmarshal(e.Before, &before)
	json.Unmarshal(e.After, &after)
	names := make([]string, 0, len(after)+len(before))
	for k := range after {
		names = append(names, k)
	}
	for k := range before {
		if _, ok := after[k]; !ok {
			names = append(names, k)
		}
	}
	slices.Sort(names)
	out := make([]fieldChange, 0, len(names))
	for _, k := range names {
		out = append(out, fieldChange{Field: k, Before: string(before[k]), After: string(after[k])})
	}
	return out
}

// webHandler is a page handler of a signed-in user.
type webHandler func(rw http.ResponseWriter, r *http.Request, v *viewer) error

// viewer is the signed-in user a page is rendered for.
type viewer struct {
	User      UserJSON
	Principal openconsole.Principal
	// Host is the scheme and host the browser used, for the curl equivalents.
	Host string
}

// CanOperate reports whether the viewer may change licenses, sessions, serials and apps.
func (v *viewer) CanOperate() bool { return v.Principal.Role.Allows(openconsole.RoleOperator) }

// CanAdmin reports whether the viewer may manage users and tokens.
func (v *viewer) CanAdmin() bool { return v.Principal.Role.Allows(openconsole.RoleAdmin) }

// page serves a page (GET) or an action (POST) to signed-in users with at least role need.
func (w *Web) page(pattern string, need openconsole.Role, h webHandler) {
	w.mux.HandleFunc(pattern, func(rw http.ResponseWriter, r *http.Request) {
		v, err := w.viewer(r)
		if err != nil {
			if r.Method == http.MethodGet {
				http.Redirect(rw, r, WebPrefix+"/login?next="+url.QueryEscape(r.URL.RequestURI()), http.StatusSeeOther)
				return
			}
			w.fail(rw, r, nil, err)
			return
		}
		if !v.Principal.Role.Allows(need) {
			w.fail(rw, r, v, openconsole.Errorf(openconsole.EFORBIDDEN, "This needs the %s role; you have the %s role.", need, v.Principal.Role))
			return
		}
		r = r.WithContext(openconsole.WithActor(r.Context(), v.Principal.Actor))
		if err := h(rw, r, v); err != nil {
			w.fail(rw, r, v, err)
		}
	})
}

// viewer finds the signed-in user of a request.
func (w *Web) viewer(r *http.Request) (*viewer, error) {
	c, err := r.Cookie(webCookie)
	if err != nil {
		return nil, openconsole.ErrWebSessionEnded
	}
	p, u, err := w.svc.WebPrincipal(r.Context(), c.Value)
	if err != nil {
		return nil, err
	}
	p.Actor.Addr = clientAddr(r, w.clientIPHeader)
	scheme := "http"
	if r.TLS != nil {
		scheme = "https"
	}
	return &viewer{User: User(u), Principal: p, Host: scheme + "://" + r.Host}, nil
}

// Authenticator authenticates operator API requests by the web console's session cookie, so that
// a signed-in user may use the API from the browser with the same role. A change through it must
// come from the console's own origin.
func (w *Web) Authenticator() Authenticator {
	return func(r *http.Request) (openconsole.Principal, bool, error) {
		c, err := r.Cookie(webCookie)
		if err != nil {
			return openconsole.Principal{}, false, nil
		}
		p, _, err := w.svc.WebPrincipal(r.Context(), c.Value)
		if err != nil {
			return openconsole.Principal{}, false, err
		}
		if err := w.cop.Check(r); err != nil {
			return openconsole.Principal{}, false, openconsole.Errorf(openconsole.EFORBIDDEN, "cross-origin request refused")
		}
		return p, true, nil
	}
}

// ServeHTTP implements http.Handler.
func (w *Web) ServeHTTP(rw http.ResponseWriter, r *http.Request) {
	defer func() {
		if v := recover(); v != nil {
			if v == http.ErrAbortHandler {
				panic(v)
			}
			w.log.Error("panic serving request", "method", r.Method, "path", r.URL.Path, "panic", v, "stack", string(debug.Stack()))
			http.Error(rw, "Internal server error", http.StatusInternalServerError)
		}
	}()
	h := rw.Header()
	if strings.HasPrefix(r.URL.Path, WebPrefix+"/static/") {
		w.serveAsset(rw, r)
		return
	}
	h.Set("Cache-Control", "no-store")
	h.Set("X-Frame-Options", "DENY")
	h.Set("X-Content-Type-Options", "nosniff")
	h.Set("Referrer-Policy", "same-origin")
	h.Set("Content-Security-Policy", "default-src 'none'; style-src 'self'; script-src 'self'; img-src 'self' data:; "+
		"form-action 'self'; frame-ancestors 'none'; base-uri 'none'")
	// Every form posts to this origin only: a cross-origin POST (a forged form) is refused.
	if err := w.cop.Check(r); err != nil {
		w.fail(rw, r, nil, openconsole.Errorf(openconsole.EFORBIDDEN, "Cross-origin request refused."))
		return
	}
	if _, pattern := w.mux.Handler(r); pattern == "" {
		w.fail(rw, r, nil, openconsole.Errorf(openconsole.ENOTFOUND, "No such page."))
		return
	}
	w.mux.ServeHTTP(rw, r)
}

func (w *Web) serveAsset(rw http.ResponseWriter, r *http.Request) {
	a, ok := w.assets[strings.TrimPrefix(r.URL.Path, WebPrefix+"/static/")]
	if !ok || (r.Method != http.MethodGet && r.Method != http.MethodHead) {
		http.NotFound(rw, r)
		return
	}
	h := rw.Header()
	h.Set("Content-Type", a.contentType)
	h.Set("Cache-Control", "public, max-age=31536000, immutable")
	h.Set("X-Content-Type-Options", "nosniff")
	h.Set("Content-Length", strconv.Itoa(len(a.body)))
	if r.Method == http.MethodGet {
		rw.Write(a.body)
	}
}

// pageData is what every page template gets.
type pageData struct {
	Title  string
	Nav    string // the navigation entry to mark current
	Viewer *viewer
	Flash  string
	Error  string
	Data   any
	// CLI and Curl are the command-line equivalents of the page's actions.
	CLI []Equivalent
}

// Equivalent is an action done once in the browser as a command, to script it.
type Equivalent struct {
	What, CLI, Curl string
}

// render writes a page.
func (w *Web) render(rw http.ResponseWriter, status int, name string, d pageData) error {
	t, ok := w.pages[name]
	if !ok {
		return fmt.Errorf("no page template %q", name)
	}
	var buf bytes.Buffer
	if err := t.ExecuteTemplate(&buf, "layout", d); err != nil {
		return fmt.Errorf("render %s: %w", name, err)
	}
	rw.Header().Set("Content-Type", "text/html; charset=utf-8")
	rw.Header().Set("Content-Length", strconv.Itoa(buf.Len()))
	rw.WriteHeader(status)
	_, err := rw.Write(buf.Bytes())
	return err
}

// fail answers err as an error page (for a page or an action that has no form to show it on).
func (w *Web) fail(rw http.ResponseWriter, r *http.Request, v *viewer, err error) {
	status, msg := webError(err)
	if status == http.StatusInternalServerError {
		w.failures.record(r, err)
	}
	if status == http.StatusUnauthorized {
		v = nil
	}
	var te *openconsole.ThrottledError
	if errors.As(err, &te) {
		rw.Header().Set("Retry-After", strconv.Itoa(int(te.RetryAfter.Seconds()+0.999)))
	}
	if rerr := w.render(rw, status, "error", pageData{Title: http.StatusText(status), Viewer: v, Error: msg}); rerr != nil {
		w.failures.record(r, rerr)
		http.Error(rw, msg, status)
	}
}

// webError is the status and the message shown for an error; internal errors show no detail.
func webError(err error) (int, string) {
	code := openconsole.ErrorCode(err)
	if p, ok := problems[code]; ok {
		return p.status, openconsole.ErrorMessage(err)
	}
	return http.StatusInternalServerError, "Something went wrong on the server; it was logged."
}

// readForm parses a posted form (at most maxBody, a manifest upload included).
func readForm(rw http.ResponseWriter, r *http.Request) error {
	r.Body = http.MaxBytesReader(rw, r.Body, maxBody)
	var err error
	if strings.HasPrefix(r.Header.Get("Content-Type"), "multipart/form-data") {
		err = r.ParseMultipartForm(2 << 20)
	} else {
		err = r.ParseForm()
	}
	var mbe *http.MaxBytesError
	if errors.As(err, &mbe) {
		return openconsole.Errorf(openconsole.ETOOLARGE, "The form is too large (limit %d bytes).", maxBody)
	} else if err != nil {
		return openconsole.Errorf(openconsole.EINVALID, "The form could not be read.")
	}
	return nil
}

// seeOther redirects after a successful action to a page, with a message from the fixed set.
func seeOther(rw http.ResponseWriter, r *http.Request, to, done string) error {
	if done != "" {
		sep := "?"
		if strings.Contains(to, "?") {
			sep = "&"
		}
		to += sep + "done=" + url.QueryEscape(done)
	}
	http.Redirect(rw, r, to, http.StatusSeeOther)
	return nil
}

// flashes are the messages an action's redirect may name (no text from the request is shown).
var flashes = map[string]string{
	"created": "Created.", "updated": "Saved.", "suspended": "The license is suspended: its devices no longer validate.",
	"resumed": "The license is active again: its devices validate without doing anything.", "revoked": "Revoked.",
	"session-revoked": "The session is revoked; its seat is free.", "registered": "Registered.", "uploaded": "The manifest is stored.",
	"removed": "Removed.", "credentials": "The registry credentials are stored, encrypted.", "signed-out": "You are signed out.",
}

func flash(r *http.Request) string { return flashes[r.URL.Query().Get("done")] }

// shellQuote quotes s for a POSIX shell when it needs it.
func shellQuote(s string) string {
	if s != "" && strings.IndexFunc(s, func(c rune) bool {
		return !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || strings.ContainsRune("-_./:@=+,", c))
	}) < 0 {
		return s
	}
	return "'" + strings.ReplaceAll(s, "'", `'\''`) + "'"
}

// cli is an openconsole command line.
func cli(args ...string) string {
	q := make([]string, len(args))
	for i, a := range args {
		q[i] = shellQuote(a)
	}
	return "openconsole " + strings.Join(q, " ")
}

// curl is the operator API call of an action, with the token in $OPENCONSOLE_TOKEN.
func curl(v *viewer, method, apiPath, body string) string {
	var b strings.Builder
	b.WriteString("curl -sS")
	if method != "GET" {
		b.WriteString(" -X " + method)
	}
	b.WriteString(` -H "Authorization: Bearer $OPENCONSOLE_TOKEN"`)
	if body != "" {
		b.WriteString(" -H 'Content-Type: application/json' -d " + shellQuote(body))
	}
	b.WriteString(" " + shellQuote(v.Host+Prefix+apiPath))
	return b.String()
}
