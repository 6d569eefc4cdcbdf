package admin

import (
	"context"
	"errors"
	"fmt"
	"io"
	"iter"
	"math"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	"openconsole"
)

// The pages of the web console. Each handler reads the request, makes one call of the service as
// the signed-in user, and renders a page or redirects to one.

// webPageSize is how many rows a list page shows; every list pages with a cursor.
const webPageSize = 50

func (w *Web) routes() {
	const rd, op, ad = openconsole.RoleReader, openconsole.RoleOperator, openconsole.RoleAdmin
	w.mux.HandleFunc("GET "+WebPrefix+"/login", w.loginPage)
	w.mux.HandleFunc("POST "+WebPrefix+"/login", w.login)
	w.mux.HandleFunc("POST "+WebPrefix+"/logout", w.logout)
	w.mux.HandleFunc("GET "+WebPrefix, func(rw http.ResponseWriter, r *http.Request) {
		http.Redirect(rw, r, WebPrefix+"/", http.StatusMovedPermanently)
	})
	w.page("GET "+WebPrefix+"/{$}", rd, w.overview)
	w.page("GET "+WebPrefix+"/licenses", rd, w.licenses)
	w.page("POST "+WebPrefix+"/licenses", op, w.createLicense)
	w.page("GET "+WebPrefix+"/licenses/{key}", rd, w.license)
	w.page("POST "+WebPrefix+"/licenses/{key}", op, w.updateLicense)
	w.page("POST "+WebPrefix+"/licenses/{key}/suspend", op, w.licenseAction("suspend"))
	w.page("POST "+WebPrefix+"/licenses/{key}/resume", op, w.licenseAction("resume"))
	w.page("GET "+WebPrefix+"/licenses/{key}/revoke", op, w.confirmRevokeLicense)
	w.page("POST "+WebPrefix+"/licenses/{key}/revoke", op, w.licenseAction("revoke"))
	w.page("GET "+WebPrefix+"/sessions/{id}/revoke", op, w.confirmRevokeSession)
	w.page("POST "+WebPrefix+"/sessions/{id}/revoke", op, w.revokeSession)
	w.page("GET "+WebPrefix+"/users", rd, w.users)
	w.page("POST "+WebPrefix+"/users", ad, w.createUser)
	w.page("GET "+WebPrefix+"/users/{username}", rd, w.user)
	w.page("POST "+WebPrefix+"/users/{username}", ad, w.updateUser)
	w.page("GET "+WebPrefix+"/serials", rd, w.serials)
	w.page("POST "+WebPrefix+"/serials", op, w.registerSerial)
	w.page("GET "+WebPrefix+"/apps", rd, w.apps)
	w.page("POST "+WebPrefix+"/apps/manifests", op, w.uploadManifest)
	w.page("GET "+WebPrefix+"/apps/manifests/{app}/{version}/remove", op, w.confirmRemoveManifest)
	w.page("POST "+WebPrefix+"/apps/manifests/{app}/{version}/remove", op, w.removeManifest)
	w.page("POST "+WebPrefix+"/apps/credentials", op, w.setCredentials)
	w.page("GET "+WebPrefix+"/tokens", ad, w.tokens)
	w.page("POST "+WebPrefix+"/tokens", ad, w.createToken)
	w.page("GET "+WebPrefix+"/tokens/{id}/revoke", ad, w.confirmRevokeToken)
	w.page("POST "+WebPrefix+"/tokens/{id}/revoke", ad, w.revokeToken)
	w.page("GET "+WebPrefix+"/audit", rd, w.audit)
}

// collect takes up to limit items of seq (which yields up to limit+1) and the cursor of the next
// page ("" on the last).
func collect[T, J any](seq iter.Seq2[T, error], limit int, view func(T) J, cursor func(T) string) ([]J, string, error) {
	var items []J
	var last T
	for x, err := range seq {
		if err != nil {
			return nil, "", err
		}
		if len(items) == limit {
			return items, cursor(last), nil
		}
		items = append(items, view(x))
		last = x
	}
	return items, "", nil
}

// ---- signing in

type loginData struct {
	Username, Next string
}

// safeNext is where to go after signing in: a page of the console, never another site.
func safeNext(next string) string {
	if !strings.HasPrefix(next, WebPrefix+"/") || strings.HasPrefix(next, "//") || strings.ContainsAny(next, "\\\r\n") {
		return WebPrefix + "/"
	}
	return next
}

func (w *Web) loginPage(rw http.ResponseWriter, r *http.Request) {
	if v, err := w.viewer(r); err == nil && v != nil {
		http.Redirect(rw, r, safeNext(r.URL.Query().Get("next")), http.StatusSeeOther)
		return
	}
	d := pageData{Title: "Sign in", Flash: flash(r), Data: loginData{Next: safeNext(r.URL.Query().Get("next"))}}
	if err := w.render(rw, http.StatusOK, "login", d); err != nil {
		w.fail(rw, r, nil, err)
	}
}

func (w *Web) login(rw http.ResponseWriter, r *http.Request) {
	if err := readForm(rw, r); err != nil {
		w.fail(rw, r, nil, err)
		return
	}
	username, next := r.PostFormValue("username"), safeNext(r.PostFormValue("next"))
	secret, _, err := w.svc.SignIn(r.Context(), username, r.PostFormValue("password"), clientAddr(r, w.clientIPHeader))
	if err != nil {
		status, msg := webError(err)
		var te *openconsole.ThrottledError
		if errors.As(err, &te) {
			rw.Header().Set("Retry-After", strconv.Itoa(int(te.RetryAfter.Seconds()+0.999)))
		} else if errors.Is(err, openconsole.ErrBusy) {
			rw.Header().Set("Retry-After", "1")
		} else if status != http.StatusInternalServerError && !errors.Is(err, openconsole.ErrNoConsoleRole) {
			status, msg = http.StatusUnauthorized, "Wrong username or password."
		}
		if status == http.StatusInternalServerError {
			w.failures.record(r, err)
		}
		d := pageData{Title: "Sign in", Error: msg, Data: loginData{Username: username, Next: next}}
		if rerr := w.render(rw, status, "login", d); rerr != nil {
			w.fail(rw, r, nil, rerr)
		}
		return
	}
	http.SetCookie(rw, &http.Cookie{Name: webCookie, Value: secret, Path: "/", HttpOnly: true, Secure: r.TLS != nil,
		SameSite: http.SameSiteStrictMode, MaxAge: int(openconsole.WebMaxAge.Seconds())})
	http.Redirect(rw, r, next, http.StatusSeeOther)
}

func (w *Web) logout(rw http.ResponseWriter, r *http.Request) {
	if c, err := r.Cookie(webCookie); err == nil {
		if err := w.svc.SignOut(r.Context(), c.Value); err != nil {
			w.fail(rw, r, nil, err)
			return
		}
	}
	http.SetCookie(rw, &http.Cookie{Name: webCookie, Value: "", Path: "/", HttpOnly: true, Secure: r.TLS != nil,
		SameSite: http.SameSiteStrictMode, MaxAge: -1})
	http.Redirect(rw, r, WebPrefix+"/login?done=signed-out", http.StatusSeeOther)
}

// ---- overview

type overviewData struct {
	Stats     StatsJSON
	At        time.Time // when Stats and NearLimit were counted
	Chart     chart
	NearLimit []LicenseJSON
	Audit     []AuditJSON
	Status    openconsole.AuditStatus
}

// chart is the activations per day as SVG bars, drawn by the server.
type chart struct {
	Bars          []bar
	Max, Total    int
	Width, Height int
	First, Last   string
}

type bar struct {
	X, Y, W, H int
	Day        string
	Count      int
}

func newChart(days []DayJSON) chart {
	c := chart{Width: 600, Height: 160}
	for _, d := range days {
		c.Max = max(c.Max, d.Count)
		c.Total += d.Count
	}
	if len(days) == 0 {
		return c
	}
	c.First, c.Last = days[0].Day, days[len(days)-1].Day
	slot := c.Width / len(days)
	for i, d := range days {
		h := 0
		if c.Max > 0 {
			h = d.Count * (c.Height - 20) / c.Max
			if d.Count > 0 && h < 2 {
				h = 2
			}
		}
		c.Bars = append(c.Bars, bar{X: i*slot + 2, Y: c.Height - h, W: slot - 4, H: h, Day: d.Day, Count: d.Count})
	}
	return c
}

// overviewEvery is how old the overview's figures may get before they are refreshed.
const overviewEvery = 10 * time.Second

// fleetSnapshot is what the overview shows of the whole fleet: counting it reads every license,
// so it is refreshed in the background when it is older than overviewEvery, not per view.
type fleetSnapshot struct {
	At        time.Time
	Stats     StatsJSON
	NearLimit []LicenseJSON
}

func (w *Web) computeFleet(ctx context.Context) (*fleetSnapshot, error) {
	st, err := w.svc.Stats(ctx)
	if err != nil {
		return nil, err
	}
	now := w.svc.Now()
	near, _, err := collect(w.svc.Licenses(ctx, openconsole.LicenseQuery{NearLimit: true, Limit: 10, Now: now}), 10,
		func(l openconsole.License) LicenseJSON { return License(l, now) }, func(openconsole.License) string { return "" })
	if err != nil {
		return nil, err
	}
	return &fleetSnapshot{At: now, Stats: Stats(st), NearLimit: near}, nil
}

// fleet returns the fleet snapshot: computed now the first time, afterwards the latest one, with
// a refresh started in the background when it is older than overviewEvery.
func (w *Web) fleet(ctx context.Context) (*fleetSnapshot, error) {
	w.fleetMu.Lock()
	snap, busy := w.fleetSnap, w.fleetBusy
	stale := snap != nil && w.svc.Now().Sub(snap.At) > overviewEvery
	if stale && !busy {
		w.fleetBusy = true
	}
	w.fleetMu.Unlock()
	if snap == nil {
		snap, err := w.computeFleet(ctx)
		if err != nil {
			return nil, err
		}
		w.fleetMu.Lock()
		w.fleetSnap = snap
		w.fleetMu.Unlock()
		return snap, nil
	}
	if stale && !busy {
		go func() {
			ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
			defer cancel()
			next, err := w.computeFleet(ctx)
			w.fleetMu.Lock()
			defer w.fleetMu.Unlock()
			w.fleetBusy = false
			if err != nil {
				w.log.Warn("refresh the overview", "err", err)
				return
			}
			w.fleetSnap = next
		}()
	}
	return snap, nil
}

func (w *Web) overview(rw http.ResponseWriter, r *http.Request, v *viewer) error {
	snap, err := w.fleet(r.Context())
	if err != nil {
		return err
	}
	latest, err := w.latestAudit(r, 10)
	if err != nil {
		return err
	}
	return w.render(rw, http.StatusOK, "overview", pageData{Title: "Overview", Nav: "overview", Viewer: v,
		Data: overviewData{Stats: snap.Stats, At: snap.At, Chart: newChart(snap.Stats.ActivationsByDay), NearLimit: snap.NearLimit,
			Audit: latest, Status: w.svc.AuditStatus()}})
}

// latestAudit returns the newest n audit entries, newest first.
func (w *Web) latestAudit(r *http.Request, n int) ([]AuditJSON, error) {
	out, _, err := collect(w.svc.Audit(r.Context(), openconsole.AuditQuery{Before: math.MaxInt64, Limit: n}), n, Audit,
		func(openconsole.AuditEntry) string { return "" })
	return out, err
}

// ---- licenses

type licensesData struct {
	Items      []LicenseJSON
	Q, Status  string
	Near       bool
	Next       string
	Statuses   []string
	Form       licenseForm
	NextParams string
}

type licenseForm struct {
	Key, Owner, Seats, Expires, Note string
}

func (w *Web) licenses(rw http.ResponseWriter, r *http.Request, v *viewer) error {
	// A search for a whole key or serial number goes straight to that license.
	if q := strings.TrimSpace(r.URL.Query().Get("q")); q != "" && r.URL.Query().Get("cursor") == "" {
		for _, k := range []string{q, strings.ToUpper(q)} {
			if l, err := w.svc.License(r.Context(), k); err == nil {
				return seeOther(rw, r, WebPrefix+"/licenses/"+url.PathEscape(l.Key), "")
			}
		}
	}
	return w.renderLicenses(rw, r, v, http.StatusOK, licenseForm{Seats: "1"}, "")
}

func (w *Web) renderLicenses(rw http.ResponseWriter, r *http.Request, v *viewer, status int, form licenseForm, errMsg string) error {
	q := r.URL.Query()
	after, err := openconsole.ParseLicenseCursor(q.Get("cursor"))
	if err != nil {
		return err
	}
	now := w.svc.Now()
	lq := openconsole.LicenseQuery{After: after, Limit: webPageSize + 1, Search: strings.TrimSpace(q.Get("q")), Now: now,
		NearLimit: q.Get("near") == "1"}
	switch st := openconsole.LicenseStatus(q.Get("status")); st {
	case "":
	case openconsole.StatusActive, openconsole.StatusSuspended, openconsole.StatusRevoked, openconsole.StatusExpired:
		lq.Status = st
	default:
		return openconsole.Errorf(openconsole.EINVALID, "Unknown status.")
	}
	items, next, err := collect(w.svc.Licenses(r.Context(), lq), webPageSize,
		func(l openconsole.License) LicenseJSON { return License(l, now) },
		func(l openconsole.License) string { return openconsole.LicenseCursor(l.ID) })
	if err != nil {
		return err
	}
	params := url.Values{}
	if lq.Search != "" {
		params.Set("q", lq.Search)
	}
	if lq.Status != "" {
		params.Set("status", string(lq.Status))
	}
	if lq.NearLimit {
		params.Set("near", "1")
	}
	d := licensesData{Items: items, Q: lq.Search, Status: string(lq.Status), Near: lq.NearLimit, Next: next, Form: form,
		Statuses: []string{"active", "suspended", "expired", "revoked"}, NextParams: params.Encode()}
	return w.render(rw, status, "licenses", pageData{Title: "Licenses", Nav: "licenses", Viewer: v, Flash: flash(r), Error: errMsg, Data: d,
		CLI: append([]Equivalent{{"Search", cli("license", "list", "--search", "TEXT"), curl(v, "GET", "/licenses?q=TEXT", "")}},
			only(v.CanOperate(), Equivalent{"Create a license", cli("license", "create", "--seats", "N", "--owner", "USER", "--expires", "2027-12-31", "--note", "TEXT"),
				curl(v, "POST", "/licenses", `{"seats": N, "owner": "USER", "expiresAt": "2027-12-31T00:00:00Z", "note": "TEXT"}`)})...)})
}

// parseExpiry reads an expiry field: empty for none, a date (end of that day is not implied: the
// start, UTC) or an RFC 3339 time.
func parseExpiry(s string) (time.Time, error) {
	s = strings.TrimSpace(s)
	if s == "" {
		return time.Time{}, nil
	}
	for _, layout := range []string{time.RFC3339, "2006-01-02T15:04", time.DateOnly} {
		if t, err := time.Parse(layout, s); err == nil {
			return t.UTC(), nil
		}
	}
	return time.Time{}, openconsole.Errorf(openconsole.EINVALID, "Expiry must be a date (2027-12-31) or a time (2027-12-31T12:00:00Z).")
}

func parseSeats(s string) (int, error) {
	n, err := strconv.Atoi(strings.TrimSpace(s))
	if err != nil || n < 1 || n > openconsole.MaxSeats {
		return 0, openconsole.Errorf(openconsole.EINVALID, "Seats must be a whole number from 1 to %d.", openconsole.MaxSeats)
	}
	return n, nil
}

func (w *Web) createLicense(rw http.ResponseWriter, r *http.Request, v *viewer) error {
	if err := readForm(rw, r); err != nil {
		return err
	}
	f := licenseForm{Key: strings.TrimSpace(r.PostFormValue("key")), Owner: strings.TrimSpace(r.PostFormValue("owner")),
		Seats: r.PostFormValue("seats"), Expires: r.PostFormValue("expires"), Note: r.PostFormValue("note")}
	in := openconsole.LicenseInput{Key: f.Key, Owner: f.Owner, Note: f.Note}
	var err error
	if in.Seats, err = parseSeats(f.Seats); err == nil {
		in.ExpiresAt, err = parseExpiry(f.Expires)
	}
	if err == nil && !in.ExpiresAt.IsZero() && !in.ExpiresAt.After(w.svc.Now()) {
		err = openconsole.Errorf(openconsole.EINVALID, "The expiry lies in the past.")
	}
	var l openconsole.License
	if err == nil {
		l, err = w.svc.CreateLicense(r.Context(), in)
	}
	if err != nil {
		status, msg := webError(err)
		if status == http.StatusInternalServerError {
			return err
		}
		return w.renderLicenses(rw, r, v, status, f, msg)
	}
	return seeOther(rw, r, WebPrefix+"/licenses/"+url.PathEscape(l.Key), "created")
}

type licenseData struct {
	License  LicenseJSON
	Sessions []SessionJSON
	Next     string
	Expires  string // the expiry as the edit form shows it
	Active   bool
}

func (w *Web) license(rw http.ResponseWriter, r *http.Request, v *viewer) error {
	return w.renderLicense(rw, r, v, http.StatusOK, "")
}

func (w *Web) renderLicense(rw http.ResponseWriter, r *http.Request, v *viewer, status int, errMsg string) error {
	key := r.PathValue("key")
	l, err := w.svc.License(r.Context(), key)
	if err != nil {
		return err
	}
	after, err := openconsole.ParseSessionCursor(r.URL.Query().Get("cursor"))
	if err != nil {
		return err
	}
	seq, err := w.svc.Sessions(r.Context(), openconsole.SessionFilter{License: l.Key, After: after, Limit: webPageSize + 1})
	if err != nil {
		return err
	}
	sessions, next, err := collect(seq, webPageSize,
		func(st openconsole.SessionState) SessionJSON { return Session(st, w.svc.SessionLive(st)) },
		func(st openconsole.SessionState) string { return openconsole.CursorOf(st).String() })
	if err != nil {
		return err
	}
	lj := License(l, w.svc.Now())
	d := licenseData{License: lj, Sessions: sessions, Next: next, Active: lj.Status == "active"}
	if !l.ExpiresAt.IsZero() {
		d.Expires = l.ExpiresAt.UTC().Format(time.RFC3339)
	}
	k, p := l.Key, "/licenses/"+url.PathEscape(l.Key)
	eq := []Equivalent{
		{"Show", cli("license", "show", k), curl(v, "GET", p, "")},
		{"List its sessions", cli("session", "list", "--license", k), curl(v, "GET", "/sessions?license="+url.QueryEscape(k), "")},
	}
	if v.CanOperate() {
		eq = append(eq, []Equivalent{{"Change seats and expiry", cli("license", "update", k, "--seats", strconv.Itoa(l.Seats), "--expires", "2027-12-31"),
			curl(v, "PATCH", p, fmt.Sprintf(`{"seats": %d, "expiresAt": "2027-12-31T00:00:00Z"}`, l.Seats))},
			{"Suspend", cli("license", "suspend", k), curl(v, "POST", p+"/suspend", "")},
			{"Resume", cli("license", "resume", k), curl(v, "POST", p+"/resume", "")},
			{"Revoke", cli("license", "revoke", k), curl(v, "POST", p+"/revoke", "")},
			{"Revoke a session", cli("session", "revoke", "SESSION-ID"), curl(v, "DELETE", "/sessions/SESSION-ID", "")},
		}...)
	}
	return w.render(rw, status, "license", pageData{Title: "License " + l.Key, Nav: "licenses", Viewer: v, Flash: flash(r), Error: errMsg,
		Data: d, CLI: eq})
}

func (w *Web) updateLicense(rw http.ResponseWriter, r *http.Request, v *viewer) error {
	if err := readForm(rw, r); err != nil {
		return err
	}
	var p openconsole.LicensePatch
	seats, err := parseSeats(r.PostFormValue("seats"))
	if err == nil {
		p.Seats = &seats
		var exp time.Time
		if exp, err = parseExpiry(r.PostFormValue("expires")); err == nil {
			p.ExpiresAt = &exp
		}
	}
	note := r.PostFormValue("note")
	p.Note = &note
	if v, perr := strconv.ParseInt(r.PostFormValue("version"), 10, 64); perr == nil {
		p.IfVersion = v
	}
	if err == nil {
		_, err = w.svc.UpdateLicense(r.Context(), r.PathValue("key"), p)
	}
	if err != nil {
		if status, msg := webError(err); status != http.StatusInternalServerError && status != http.StatusNotFound {
			return w.renderLicense(rw, r, v, status, msg)
		}
		return err
	}
	return seeOther(rw, r, WebPrefix+"/licenses/"+url.PathEscape(r.PathValue("key")), "updated")
}

func (w *Web) licenseAction(action string) webHandler {
	return func(rw http.ResponseWriter, r *http.Request, v *viewer) error {
		if err := readForm(rw, r); err != nil {
			return err
		}
		key := r.PathValue("key")
		version, _ := strconv.ParseInt(r.PostFormValue("version"), 10, 64)
		var err error
		done := action + "ed"
		switch action {
		case "suspend":
			_, err = w.svc.SuspendLicense(r.Context(), key, version)
			done = "suspended"
		case "resume":
			_, err = w.svc.ResumeLicense(r.Context(), key, version)
			done = "resumed"
		case "revoke":
			_, err = w.svc.RevokeLicense(r.Context(), key, version)
			done = "revoked"
		}
		if err != nil {
			if status, msg := webError(err); status == http.StatusConflict || status == http.StatusPreconditionFailed {
				return w.renderLicense(rw, r, v, status, msg)
			}
			return err
		}
		return seeOther(rw, r, WebPrefix+"/licenses/"+url.PathEscape(key), done)
	}
}

// only returns eqs when cond holds: the actions a viewer may take.
func only(cond bool, eqs ...Equivalent) []Equivalent {
	if !cond {
		return nil
	}
	return eqs
}

// confirmData is a question before a destructive action.
type confirmData struct {
	Question, Detail, Action, Button, Back string
	Version                                int64
}

func (w *Web) confirm(rw http.ResponseWriter, v *viewer, nav string, d confirmData, eq []Equivalent) error {
	return w.render(rw, http.StatusOK, "confirm", pageData{Title: d.Question, Nav: nav, Viewer: v, Data: d, CLI: eq})
}

func (w *Web) confirmRevokeLicense(rw http.ResponseWriter, r *http.Request, v *viewer) error {
	l, err := w.svc.License(r.Context(), r.PathValue("key"))
	if err != nil {
		return err
	}
	p := WebPrefix + "/licenses/" + url.PathEscape(l.Key)
	return w.confirm(rw, v, "licenses", confirmData{Question: "Revoke license " + l.Key + "?",
		Detail: fmt.Sprintf("Its %d sessions stop validating within a second and it cannot be activated again. This cannot be undone; suspend it instead to stop it for a while.", l.Taken),
		Action: p + "/revoke", Button: "Revoke the license", Back: p, Version: l.Version},
		[]Equivalent{{"Revoke", cli("license", "revoke", l.Key), curl(v, "POST", "/licenses/"+url.PathEscape(l.Key)+"/revoke", "")}})
}

func (w *Web) confirmRevokeSession(rw http.ResponseWriter, r *http.Request, v *viewer) error {
	st, err := w.svc.Session(r.Context(), r.PathValue("id"))
	if err != nil {
		return err
	}
	back := WebPrefix + "/licenses/" + url.PathEscape(st.License.Key)
	return w.confirm(rw, v, "licenses", confirmData{Question: "Revoke session " + st.Session.ID + "?",
		Detail: "The device stops validating within a second and its seat is free; it can activate again if a seat is free then.",
		Action: WebPrefix + "/sessions/" + url.PathEscape(st.Session.ID) + "/revoke", Button: "Revoke the session", Back: back},
		[]Equivalent{{"Revoke", cli("session", "revoke", st.Session.ID), curl(v, "DELETE", "/sessions/"+st.Session.ID, "")}})
}

func (w *Web) revokeSession(rw http.ResponseWriter, r *http.Request, v *viewer) error {
	st, err := w.svc.RevokeSession(r.Context(), r.PathValue("id"))
	if err != nil {
		return err
	}
	return seeOther(rw, r, WebPrefix+"/licenses/"+url.PathEscape(st.License.Key), "session-revoked")
}

// ---- users

type usersData struct {
	Items []UserJSON
	Next  string
	Form  userForm
}

type userForm struct {
	Username, Email, DisplayName, Role string
	Vendor                             bool
}

func (w *Web) users(rw http.ResponseWriter, r *http.Request, v *viewer) error {
	return w.renderUsers(rw, r, v, http.StatusOK, userForm{}, "")
}

func (w *Web) renderUsers(rw http.ResponseWriter, r *http.Request, v *viewer, status int, f userForm, errMsg string) error {
	after, err := openconsole.ParseIDCursor('u', r.URL.Query().Get("cursor"))
	if err != nil {
		return err
	}
	items, next, err := collect(w.svc.Users(r.Context(), openconsole.PageQuery{After: after, Limit: webPageSize + 1}), webPageSize, User,
		func(u openconsole.User) string { return openconsole.IDCursor('u', u.ID) })
	if err != nil {
		return err
	}
	return w.render(rw, status, "users", pageData{Title: "Users", Nav: "users", Viewer: v, Flash: flash(r), Error: errMsg,
		Data: usersData{Items: items, Next: next, Form: f},
		CLI: append([]Equivalent{{"List", cli("user", "list"), curl(v, "GET", "/users", "")}},
			only(v.CanAdmin(), Equivalent{"Create a user", cli("user", "create", "--username", "NAME", "--password-stdin", "--role", "operator"),
				curl(v, "POST", "/users", `{"username": "NAME", "password": "…", "role": "operator"}`)})...)})
}

// roleValue reads a role field: "" is none.
func roleValue(s string) (openconsole.Role, error) {
	if s == "" {
		return "", nil
	}
	return openconsole.ParseRole(s)
}

func (w *Web) createUser(rw http.ResponseWriter, r *http.Request, v *viewer) error {
	if err := readForm(rw, r); err != nil {
		return err
	}
	f := userForm{Username: strings.TrimSpace(r.PostFormValue("username")), Email: strings.TrimSpace(r.PostFormValue("email")),
		DisplayName: strings.TrimSpace(r.PostFormValue("displayName")), Role: r.PostFormValue("role"), Vendor: r.PostFormValue("vendor") == "on"}
	role, err := roleValue(f.Role)
	var u openconsole.User
	if err == nil {
		u, err = w.svc.CreateUser(r.Context(), openconsole.UserInput{Username: f.Username, Password: r.PostFormValue("password"),
			Email: f.Email, DisplayName: f.DisplayName, Vendor: f.Vendor, Role: role})
	}
	if err != nil {
		if status, msg := webError(err); status != http.StatusInternalServerError {
			return w.renderUsers(rw, r, v, status, f, msg)
		}
		return err
	}
	return seeOther(rw, r, WebPrefix+"/users/"+url.PathEscape(u.Username), "created")
}

type userData struct {
	User  UserJSON
	Roles []string
}

func (w *Web) user(rw http.ResponseWriter, r *http.Request, v *viewer) error {
	return w.renderUser(rw, r, v, http.StatusOK, "")
}

func (w *Web) renderUser(rw http.ResponseWriter, r *http.Request, v *viewer, status int, errMsg string) error {
	u, err := w.svc.User(r.Context(), r.PathValue("username"))
	if err != nil {
		return err
	}
	p := "/users/" + url.PathEscape(u.Username)
	return w.render(rw, status, "user", pageData{Title: "User " + u.Username, Nav: "users", Viewer: v, Flash: flash(r), Error: errMsg,
		Data: userData{User: User(u), Roles: []string{"admin", "operator", "reader"}},
		CLI: append([]Equivalent{{"Show", cli("user", "show", u.Username), curl(v, "GET", p, "")}},
			only(v.CanAdmin(),
				Equivalent{"Change", cli("user", "update", u.Username, "--email", "EMAIL", "--role", "reader"), curl(v, "PATCH", p, `{"email": "EMAIL", "role": "reader"}`)},
				Equivalent{"Disable", cli("user", "update", u.Username, "--disabled=true"), curl(v, "PATCH", p, `{"disabled": true}`)})...)})
}

func (w *Web) updateUser(rw http.ResponseWriter, r *http.Request, v *viewer) error {
	if err := readForm(rw, r); err != nil {
		return err
	}
	email, display := strings.TrimSpace(r.PostFormValue("email")), strings.TrimSpace(r.PostFormValue("displayName"))
	vendor, disabled := r.PostFormValue("vendor") == "on", r.PostFormValue("disabled") == "on"
	p := openconsole.UserPatch{Email: &email, DisplayName: &display, Vendor: &vendor, Disabled: &disabled}
	role, err := roleValue(r.PostFormValue("role"))
	if err == nil {
		p.Role = &role
		if pw := r.PostFormValue("password"); pw != "" {
			p.Password = &pw
		}
		if ver, perr := strconv.ParseInt(r.PostFormValue("version"), 10, 64); perr == nil {
			p.IfVersion = ver
		}
		_, err = w.svc.UpdateUser(r.Context(), r.PathValue("username"), p)
	}
	if err != nil {
		if status, msg := webError(err); status != http.StatusInternalServerError && status != http.StatusNotFound {
			return w.renderUser(rw, r, v, status, msg)
		}
		return err
	}
	return seeOther(rw, r, WebPrefix+"/users/"+url.PathEscape(r.PathValue("username")), "updated")
}

// ---- serials

type serialsData struct {
	Items []SerialJSON
	Next  string
	Form  openconsole.SerialInput
}

func (w *Web) serials(rw http.ResponseWriter, r *http.Request, v *viewer) error {
	return w.renderSerials(rw, r, v, http.StatusOK, openconsole.SerialInput{}, "")
}

func (w *Web) renderSerials(rw http.ResponseWriter, r *http.Request, v *viewer, status int, f openconsole.SerialInput, errMsg string) error {
	after, err := openconsole.ParseIDCursor('s', r.URL.Query().Get("cursor"))
	if err != nil {
		return err
	}
	items, next, err := collect(w.svc.Serials(r.Context(), openconsole.PageQuery{After: after, Limit: webPageSize + 1}), webPageSize, Serial,
		func(sr openconsole.Serial) string { return openconsole.IDCursor('s', sr.LicenseID) })
	if err != nil {
		return err
	}
	return w.render(rw, status, "serials", pageData{Title: "Serial numbers", Nav: "serials", Viewer: v, Flash: flash(r), Error: errMsg,
		Data: serialsData{Items: items, Next: next, Form: f},
		CLI: append([]Equivalent{{"List", cli("serial", "list"), curl(v, "GET", "/serials", "")}},
			only(v.CanOperate(), Equivalent{"Register", cli("serial", "register", "--serial", "SN", "--model", "MODEL", "--manufacturer", "NAME", "--manufacturer-id", "ID", "--date", "2025-01-31"),
				curl(v, "POST", "/serials", `{"serialNumber": "SN", "model": "MODEL", "manufacturer": {"name": "NAME", "id": ID}, "manufactureDate": "2025-01-31"}`)})...)})
}

func (w *Web) registerSerial(rw http.ResponseWriter, r *http.Request, v *viewer) error {
	if err := readForm(rw, r); err != nil {
		return err
	}
	in := openconsole.SerialInput{SerialNumber: strings.TrimSpace(r.PostFormValue("serial")), Model: strings.TrimSpace(r.PostFormValue("model")),
		ManufacturerName: strings.TrimSpace(r.PostFormValue("manufacturer")), ManufactureDate: strings.TrimSpace(r.PostFormValue("date"))}
	var err error
	if id := strings.TrimSpace(r.PostFormValue("manufacturerId")); id != "" {
		if in.ManufacturerID, err = strconv.ParseInt(id, 10, 64); err != nil {
			err = openconsole.Errorf(openconsole.EINVALID, "The manufacturer id must be a number.")
		}
	}
	if err == nil {
		_, err = w.svc.RegisterSerialAdmin(r.Context(), in)
	}
	if err != nil {
		if status, msg := webError(err); status != http.StatusInternalServerError {
			return w.renderSerials(rw, r, v, status, in, msg)
		}
		return err
	}
	return seeOther(rw, r, WebPrefix+"/serials", "registered")
}

// ---- apps

// maxManifestRows bounds the manifests the apps page lists.
const maxManifestRows = 200

type appsData struct {
	Manifests []ManifestJSON
	More      bool
	App       string
}

func (w *Web) apps(rw http.ResponseWriter, r *http.Request, v *viewer) error {
	return w.renderApps(rw, r, v, http.StatusOK, "")
}

func (w *Web) renderApps(rw http.ResponseWriter, r *http.Request, v *viewer, status int, errMsg string) error {
	app := strings.TrimSpace(r.URL.Query().Get("app"))
	ms, err := w.svc.Manifests(r.Context(), app)
	if err != nil {
		return err
	}
	d := appsData{App: app, More: len(ms) > maxManifestRows}
	if d.Manifests, err = manifestViews(r.Context(), w.svc, ms[:min(len(ms), maxManifestRows)], false); err != nil {
		return err
	}
	return w.render(rw, status, "apps", pageData{Title: "Apps", Nav: "apps", Viewer: v, Flash: flash(r), Error: errMsg, Data: d,
		CLI: append([]Equivalent{{"List", cli("app", "manifest", "list"), curl(v, "GET", "/manifests", "")}},
			only(v.CanOperate(),
				Equivalent{"Add a manifest", cli("app", "manifest", "add", "manifest.json", "--official"), curl(v, "POST", "/manifests?official=true", "@manifest.json")},
				Equivalent{"Set registry credentials", cli("app", "credentials", "set", "APP", "--username", "USER"), curl(v, "PUT", "/apps/APP/credentials", `{"username": "USER", "password": "…"}`)})...)})
}

func (w *Web) uploadManifest(rw http.ResponseWriter, r *http.Request, v *viewer) error {
	if err := readForm(rw, r); err != nil {
		return err
	}
	var doc []byte
	if f, _, err := r.FormFile("manifest"); err == nil {
		doc, err = io.ReadAll(io.LimitReader(f, openconsole.MaxManifestBytes+1))
		f.Close()
		if err != nil {
			return err
		}
	} else {
		doc = []byte(r.PostFormValue("document"))
	}
	if len(strings.TrimSpace(string(doc))) == 0 {
		return w.renderApps(rw, r, v, http.StatusBadRequest, "Choose a manifest file.")
	}
	var official *bool
	if r.PostFormValue("official") == "on" {
		t := true
		official = &t
	}
	if _, _, _, err := w.svc.AddManifest(r.Context(), doc, official); err != nil {
		if status, msg := webError(err); status != http.StatusInternalServerError {
			return w.renderApps(rw, r, v, status, msg)
		}
		return err
	}
	return seeOther(rw, r, WebPrefix+"/apps", "uploaded")
}

func (w *Web) confirmRemoveManifest(rw http.ResponseWriter, r *http.Request, v *viewer) error {
	app, version := r.PathValue("app"), r.PathValue("version")
	return w.confirm(rw, v, "apps", confirmData{Question: "Remove the manifests of " + app + " " + version + "?",
		Detail: "Devices can no longer fetch this version's manifest.",
		Action: WebPrefix + "/apps/manifests/" + url.PathEscape(app) + "/" + url.PathEscape(version) + "/remove",
		Button: "Remove", Back: WebPrefix + "/apps"},
		[]Equivalent{{"Remove", cli("app", "manifest", "remove", app, version),
			curl(v, "DELETE", "/manifests/"+url.PathEscape(app)+"/"+url.PathEscape(version), "")}})
}

func (w *Web) removeManifest(rw http.ResponseWriter, r *http.Request, v *viewer) error {
	if _, err := w.svc.RemoveManifest(r.Context(), r.PathValue("app"), r.PathValue("version"), ""); err != nil {
		return err
	}
	return seeOther(rw, r, WebPrefix+"/apps", "removed")
}

func (w *Web) setCredentials(rw http.ResponseWriter, r *http.Request, v *viewer) error {
	if err := readForm(rw, r); err != nil {
		return err
	}
	err := w.svc.SetRegistryCredentials(r.Context(), strings.TrimSpace(r.PostFormValue("app")),
		openconsole.RegistryCredentials{Username: strings.TrimSpace(r.PostFormValue("username")), Password: r.PostFormValue("password")})
	if err != nil {
		if status, msg := webError(err); status != http.StatusInternalServerError {
			return w.renderApps(rw, r, v, status, msg)
		}
		return err
	}
	return seeOther(rw, r, WebPrefix+"/apps", "credentials")
}

// ---- tokens

type tokensData struct {
	Items   []TokenJSON
	Created *TokenJSON // the token just created, with its secret, shown once
	More    bool
}

// maxTokenRows bounds the tokens the tokens page lists.
const maxTokenRows = 500

func (w *Web) tokens(rw http.ResponseWriter, r *http.Request, v *viewer) error {
	return w.renderTokens(rw, r, v, http.StatusOK, nil, "")
}

func (w *Web) renderTokens(rw http.ResponseWriter, r *http.Request, v *viewer, status int, created *TokenJSON, errMsg string) error {
	ts, err := w.svc.APITokens(r.Context())
	if err != nil {
		return err
	}
	d := tokensData{Created: created, More: len(ts) > maxTokenRows}
	for _, t := range ts[:min(len(ts), maxTokenRows)] {
		d.Items = append(d.Items, Token(t))
	}
	return w.render(rw, status, "tokens", pageData{Title: "API tokens", Nav: "tokens", Viewer: v, Flash: flash(r), Error: errMsg, Data: d,
		CLI: []Equivalent{
			{"Create a token", cli("token", "create", "--name", "NAME", "--role", "operator", "--expires", "365d"),
				curl(v, "POST", "/tokens", `{"name": "NAME", "role": "operator"}`)},
			{"Revoke a token", cli("token", "revoke", "TOKEN-ID"), curl(v, "DELETE", "/tokens/TOKEN-ID", "")},
		}})
}

func (w *Web) createToken(rw http.ResponseWriter, r *http.Request, v *viewer) error {
	if err := readForm(rw, r); err != nil {
		return err
	}
	in := openconsole.TokenInput{Name: r.PostFormValue("name"), Role: openconsole.Role(r.PostFormValue("role"))}
	var err error
	if days := strings.TrimSpace(r.PostFormValue("days")); days != "" {
		n, perr := strconv.Atoi(days)
		if perr != nil || n < 1 || n > 3650 {
			err = openconsole.Errorf(openconsole.EINVALID, "The lifetime must be 1 to 3650 days, or empty for no expiry.")
		}
		in.ExpiresAt = w.svc.Now().Add(time.Duration(n) * 24 * time.Hour)
	}
	var t openconsole.CreatedToken
	if err == nil {
		t, err = w.svc.CreateAPIToken(r.Context(), in)
	}
	if err != nil {
		if status, msg := webError(err); status != http.StatusInternalServerError {
			return w.renderTokens(rw, r, v, status, nil, msg)
		}
		return err
	}
	// The secret is shown on this answer only (no redirect that could be reloaded to show it).
	tj := Token(t.APIToken)
	tj.Token = &t.Secret
	return w.renderTokens(rw, r, v, http.StatusCreated, &tj, "")
}

func (w *Web) confirmRevokeToken(rw http.ResponseWriter, r *http.Request, v *viewer) error {
	id := r.PathValue("id")
	return w.confirm(rw, v, "tokens", confirmData{Question: "Revoke API token " + id + "?",
		Detail: "Whatever uses it is refused from the next request on.", Action: WebPrefix + "/tokens/" + url.PathEscape(id) + "/revoke",
		Button: "Revoke the token", Back: WebPrefix + "/tokens"},
		[]Equivalent{{"Revoke", cli("token", "revoke", id), curl(v, "DELETE", "/tokens/"+url.PathEscape(id), "")}})
}

func (w *Web) revokeToken(rw http.ResponseWriter, r *http.Request, v *viewer) error {
	if _, err := w.svc.RevokeAPIToken(r.Context(), r.PathValue("id")); err != nil {
		return err
	}
	return seeOther(rw, r, WebPrefix+"/tokens", "revoked")
}

// ---- audit

type auditData struct {
	Items                 []AuditJSON
	Next                  string
	Action, Actor, Target string
	NextParams            string
	Status                openconsole.AuditStatus
	VerifyCommand         string
}

func (w *Web) audit(rw http.ResponseWriter, r *http.Request, v *viewer) error {
	q := r.URL.Query()
	// Newest first: the cursor names the last entry shown, the next page the ones before it.
	aq := openconsole.AuditQuery{Before: math.MaxInt64, Limit: webPageSize + 1, Action: strings.TrimSpace(q.Get("action")),
		Actor: strings.TrimSpace(q.Get("actor")), Target: strings.TrimSpace(q.Get("target"))}
	if c := q.Get("cursor"); c != "" {
		n, err := openconsole.ParseIDCursor('a', c)
		if err != nil {
			return err
		}
		aq.Before = n
		if n <= 0 {
			aq.Before, aq.From = 1, 1 // nothing is older than the first entry
		}
	}
	if key, ok := cutPrefix(aq.Target, "license:"); ok && len(key) != 16 {
		aq.Target = openconsole.LicenseTarget(key)
	}
	items, next, err := collect(w.svc.Audit(r.Context(), aq), webPageSize, Audit,
		func(e openconsole.AuditEntry) string { return openconsole.IDCursor('a', e.Seq) })
	if err != nil {
		return err
	}
	params := url.Values{}
	for k, val := range map[string]string{"action": aq.Action, "actor": aq.Actor, "target": q.Get("target")} {
		if val != "" {
			params.Set(k, val)
		}
	}
	d := auditData{Items: items, Next: next, Action: aq.Action, Actor: aq.Actor, Target: strings.TrimSpace(q.Get("target")),
		NextParams: params.Encode(), Status: w.svc.AuditStatus(),
		VerifyCommand: "openconsole --server " + shellQuote(v.Host) + " --token-file TOKEN-FILE audit verify --checkpoint SAVED-CHECKPOINT"}
	eq := []Equivalent{
		{"List", cli("audit", "list", "--action", "license.suspend"), curl(v, "GET", "/audit?action=license.suspend", "")},
		{"Save a checkpoint", cli("audit", "checkpoint", "--out", "checkpoint-FILE"), curl(v, "GET", "/audit/checkpoint", "")},
		{"Verify the log", cli("audit", "verify", "--checkpoint", "checkpoint-FILE"), curl(v, "GET", "/audit/proof/SEQ", "")},
	}
	return w.render(rw, http.StatusOK, "audit", pageData{Title: "Audit log", Nav: "audit", Viewer: v, Data: d, CLI: eq})
}
