package api_test

// The harness of the wire-contract tests (conformance_test.go, malformed_test.go): a console server
// over a real store that can be restarted on the same database, and one request function, do, that
// checks every response against the cross-cutting rules of the contract (§6 cases 5 and 41-43).

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"mime"
	"net/http"
	"net/http/httptest"
	"net/url"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"openconsole"
	"openconsole/api"
	"openconsole/sqlstore"
)

// The endpoints (wire contract §2.1 to §2.11).
const (
	pathLogin        = "/api/v2/auth/login"
	pathAuthValidate = "/api/v2/auth/validate"
	pathActivate     = "/api/v2/device/license/activate"
	pathValidate     = "/api/v2/device/license/validate"
	pathRegister     = "/api/v2/device/license"

	// §2.6 to §2.11.
	pathManifests      = "/api/v2/manifests" // + /{app}/{version}
	pathTokens         = "/api/v2/tokens"
	pathProducts       = "/api/v2/products"
	pathProductApps    = "/api/v2/products/apps"
	pathReviews        = "/api/v2/products/apps/reviews"
	pathMyProducts     = "/api/v2/my/products"
	pathMyProductApps  = "/api/v2/my/products/apps"
	pathMySubscription = "/api/v2/my/subscriptions"
)

const (
	ctJSON = "application/json"
	ctForm = "application/x-www-form-urlencoded" // what libcurl (CPP2) and axios (TS) send
)

// consoleEnv is the console API served by httptest over a real store. restart closes the server,
// the service and the store and opens them again on the same database.
type consoleEnv struct {
	dsn   string
	opts  openconsole.Options
	store *sqlstore.Store
	svc   *openconsole.Service
	srv   *httptest.Server
	hc    *http.Client

	// apiOpts configure the API server; set them and restart to apply.
	apiOpts []api.Option

	// skew is added to the service clock, to step the wall clock (nanoseconds).
	skew atomic.Int64
	// issued is every session an activate 200 issued, in order (§6 case 24).
	issued []wireSession
	// seen counts the kinds of responses checkWire has checked, so that a test can show that the
	// header rules were exercised and not vacuously true.
	seen map[string]int
}

// newConsole starts a console on the database at dsn; it is stopped when t ends.
func newConsole(t *testing.T, dsn string, opts openconsole.Options) *consoleEnv {
	t.Helper()
	e := &consoleEnv{dsn: dsn, opts: opts, seen: make(map[string]int)}
	if e.opts.Now == nil {
		e.opts.Now = func() time.Time { return time.Now().Add(time.Duration(e.skew.Load())) }
	}
	e.opts.Logger = slog.New(slog.NewTextHandler(testWriter{t}, nil))
	if e.opts.Limits == nil {
		// These suites send many failing requests from one address on purpose; the abuse limits
		// have tests of their own.
		e.opts.Limits = &openconsole.Limits{}
	}
	e.hc = &http.Client{
		Timeout: 30 * time.Second,
		// A redirect is a failure (§1.1): look at it rather than follow it.
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
	}
	e.start(t)
	t.Cleanup(e.stop)
	return e
}

func (e *consoleEnv) start(t *testing.T) {
	t.Helper()
	ctx := context.Background()
	st, err := sqlstore.Open(ctx, e.dsn, sqlstore.Options{})
	if err != nil {
		t.Fatalf("open store: %v", err)
	}
	svc, err := openconsole.NewService(ctx, st, e.opts)
	if err != nil {
		st.Close()
		t.Fatalf("new service: %v", err)
	}
	e.store, e.svc = st, svc
	e.srv = httptest.NewServer(api.New(svc, e.opts.Logger, e.apiOpts...))
}

func (e *consoleEnv) stop() {
	if e.srv == nil {
		return
	}
	e.srv.Close()
	e.svc.Close()
	e.store.Close()
	e.srv, e.svc, e.store = nil, nil, nil
}

// restart stops the console and starts it again on the same database.
func (e *consoleEnv) restart(t *testing.T) {
	t.Helper()
	e.stop()
	e.start(t)
}

// testWriter sends the server's log lines to the test log, so that a 500 shows its cause.
type testWriter struct{ t *testing.T }

func (w testWriter) Write(p []byte) (int, error) {
	w.t.Log(strings.TrimSpace(string(p)))
	return len(p), nil
}

// call is one HTTP request as a client puts it on the wire.
type call struct {
	method  string   // "" is POST
	path    string   // sent as is: may hold //, %XX and a query
	body    string   // sent as is; "" sends no body
	ctype   string   // the Content-Type; "" sends none
	header  []string // more request headers as "Name: value", in order; a name may repeat
	chunked bool     // send the body without Content-Length
}

// reply is a response, read in full.
type reply struct {
	status int
	header http.Header
	body   []byte
	obj    map[string]any // the JSON body; nil when there is no body
	sid    *wireSession   // the X-Session-Id response header; nil when absent
}

// wireSession is a session object {id, timestamp} as it goes over the wire.
type wireSession struct {
	ID        string
	Timestamp int64
}

// do sends c and checks the response against the contract's cross-cutting rules (checkWire).
func (e *consoleEnv) do(t *testing.T, c call) reply {
	t.Helper()
	method := c.method
	if method == "" {
		method = http.MethodPost
	}
	var body io.Reader
	if c.body != "" {
		body = strings.NewReader(c.body)
		if c.chunked {
			body = struct{ io.Reader }{body} // hides the length: Transfer-Encoding: chunked
		}
	}
	req, err := http.NewRequest(method, e.srv.URL+c.path, body)
	if err != nil {
		t.Fatalf("%s %s: %v", method, c.path, err)
	}
	if c.ctype != "" {
		req.Header.Set("Content-Type", c.ctype)
	}
	for _, h := range c.header {
		name, value, ok := strings.Cut(h, ":")
		if !ok {
			t.Fatalf("bad test header %q", h)
		}
		req.Header.Add(name, strings.TrimLeft(value, " "))
	}
	resp, err := e.hc.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, c.path, err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatalf("%s %s: read body: %v", method, c.path, err)
	}
	r := reply{status: resp.StatusCode, header: resp.Header, body: b}
	e.checkWire(t, req, c, &r)
	return r
}

// checkWire checks the rules every response must follow, whatever the request:
//   - no 5xx and no redirect (§1.1; nothing in these suites may fail internally);
//   - case 5 and §1.2: a 204 has an empty body and no Content-Type; any other response has a
//     body, Content-Type application/json, a JSON object with statusCode equal to the HTTP status
//     and statusText equal to http.StatusText; an error carries a non-empty reason and no data,
//     a success carries data;
//   - cases 40-43 and §1.4: X-Session-Id, when sent, is one JSON object with both a lower-case
//     UUID id and an integer timestamp >= 0. It is sent only on an activate 200/204, a validate
//     that answers isValid:true, or a manifests or tokens answer after the session was found live,
//     never on a 403; a 204 always has it, with the id the request presented; on an activate 200
//     it equals data.sessionId; manifests 200/400/404 and tokens 200/204 always have it, naming
//     the presented session (§1.4, §2.6, §2.7);
//   - device validate always answers 200 with a body holding a boolean data.isValid (§2.4);
//   - an activate 200 issues a new id with a timestamp above every one issued before (§3.4);
//   - §1.6: with an Origin, Access-Control-Allow-Origin and Expose-Headers: X-Session-Id;
//   - §1.8: a 405 has an Allow header.
//
// It records what it decoded in r.
func (e *consoleEnv) checkWire(t *testing.T, req *http.Request, c call, r *reply) {
	t.Helper()
	what := req.Method + " " + c.path
	route := routeOf(req.URL.EscapedPath())

	if r.status >= 500 {
		t.Errorf("%s: status %d, body %s; want no 5xx", what, r.status, r.body)
	}
	if r.status >= 300 && r.status < 400 {
		t.Errorf("%s: status %d (Location %q); want no redirect", what, r.status, r.header.Get("Location"))
	}
	if r.status == http.StatusMethodNotAllowed && r.header.Get("Allow") == "" {
		t.Errorf("%s: 405 without an Allow header", what)
	}

	// Case 5: the envelope.
	ct := r.header.Get("Content-Type")
	switch {
	case r.status == http.StatusNoContent:
		if len(r.body) != 0 {
			t.Errorf("%s: 204 with body %q; want none", what, r.body)
		}
		if ct != "" {
			t.Errorf("%s: 204 with Content-Type %q; want none", what, ct)
		}
	case req.Method == http.MethodHead:
		if mt, _, _ := mime.ParseMediaType(ct); mt != ctJSON {
			t.Errorf("%s: Content-Type %q; want %s", what, ct, ctJSON)
		}
	default:
		if mt, _, _ := mime.ParseMediaType(ct); mt != ctJSON {
			t.Errorf("%s: Content-Type %q; want %s", what, ct, ctJSON)
		}
		if len(r.body) == 0 {
			t.Errorf("%s: status %d with an empty body; want a JSON envelope", what, r.status)
			break
		}
		v, err := decodeJSON(r.body)
		obj, ok := v.(map[string]any)
		if err != nil || !ok {
			t.Errorf("%s: body %s is not a JSON object (%v)", what, r.body, err)
			break
		}
		r.obj = obj
		if code, ok := asInt(obj["statusCode"]); !ok || code != int64(r.status) {
			t.Errorf("%s: body statusCode %v; want the integer %d (the HTTP status)", what, obj["statusCode"], r.status)
		}
		if text, ok := obj["statusText"].(string); !ok || text != http.StatusText(r.status) {
			t.Errorf("%s: body statusText %#v; want %q", what, obj["statusText"], http.StatusText(r.status))
		}
		_, hasData := obj["data"]
		if r.status >= 400 {
			if reason, ok := obj["reason"].(string); !ok || reason == "" {
				t.Errorf("%s: error body %s without a non-empty reason", what, r.body)
			}
			if hasData {
				t.Errorf("%s: error body %s has data; want none", what, r.body)
			}
		} else if !hasData {
			t.Errorf("%s: success body %s without data", what, r.body)
		}
	}

	// Cases 41-43: the X-Session-Id response header.
	reqSID, reqSIDok := normSessionID(req.Header.Get("X-Session-Id"))
	presented := func(id string) bool { // when several were sent, which one counts is not fixed
		for _, v := range req.Header.Values("X-Session-Id") {
			if n, ok := normSessionID(v); ok && n == id {
				return true
			}
		}
		return false
	}
	if vals := r.header.Values("X-Session-Id"); len(vals) > 1 {
		t.Errorf("%s: %d X-Session-Id headers %q; want at most one", what, len(vals), vals)
	} else if len(vals) == 1 {
		s, err := parseWireSession(vals[0])
		if err != nil {
			t.Errorf("%s: X-Session-Id %q: %v", what, vals[0], err)
		} else {
			r.sid = &s
		}
	}
	isActivate := route == pathActivate && req.Method == http.MethodPost
	isValidate := route == pathValidate && req.Method == http.MethodPost
	isManifest := isManifestRoute(route) && (req.Method == http.MethodGet || req.Method == http.MethodHead)
	isToken := route == pathTokens && req.Method == http.MethodPost
	valid := false
	if isValidate {
		if r.status != http.StatusOK {
			t.Errorf("%s: device validate answered %d; want 200 for any session state", what, r.status)
		} else if b, ok := lookup(r.obj, "data.isValid"); !ok {
			t.Errorf("%s: body %s without data.isValid", what, r.body)
		} else if valid, ok = b.(bool); !ok {
			t.Errorf("%s: data.isValid %#v; want a boolean", what, b)
		}
	}
	hasSID := len(r.header.Values("X-Session-Id")) > 0
	switch {
	case !hasSID:
	case r.status == http.StatusForbidden:
		t.Errorf("%s: X-Session-Id %q on a 403; want none (case 42)", what, r.header.Get("X-Session-Id"))
	case isValidate && !valid:
		t.Errorf("%s: X-Session-Id %q with isValid:false; want none (case 42)", what, r.header.Get("X-Session-Id"))
	case !(isActivate && (r.status == http.StatusOK || r.status == http.StatusNoContent)) && !isValidate && !isManifest && !isToken:
		t.Errorf("%s: X-Session-Id %q on a %d; want it only where a live session is known (§1.4)", what, r.header.Get("X-Session-Id"), r.status)
	}
	// Manifests and tokens check the session first: any answer but 403 (and 5xx) is for a live
	// session, and these carry it (§1.4).
	if isManifest && (r.status == http.StatusOK || r.status == http.StatusBadRequest || r.status == http.StatusNotFound) ||
		isToken && (r.status == http.StatusOK || r.status == http.StatusNoContent) {
		kind := "tokens"
		if isManifest {
			kind = "manifests"
		}
		e.seen[kind+" "+strconv.Itoa(r.status)]++
		if r.sid == nil {
			t.Errorf("%s: %d without a valid X-Session-Id header; want {id,timestamp} (§1.4)", what, r.status)
		}
	}
	// A session the request presented keeps its id: 204, a valid validate, manifests and tokens
	// name it.
	if r.sid != nil && (isActivate && r.status == http.StatusNoContent || isValidate && valid || isManifest || isToken) {
		if !presented(r.sid.ID) {
			t.Errorf("%s: X-Session-Id id %q; want the presented session %q", what, r.sid.ID, req.Header.Get("X-Session-Id"))
		}
	}
	if isActivate && r.status == http.StatusNoContent {
		e.seen["activate 204"]++
		if r.sid == nil {
			t.Errorf("%s: 204 without a valid X-Session-Id header; want {id,timestamp} (§2.3)", what)
		}
		if !reqSIDok && len(req.Header.Values("X-Session-Id")) < 2 {
			t.Errorf("%s: 204 to a request without a session id; want 204 only for a live session (§3.2)", what)
		}
	}
	if isValidate && r.status == http.StatusOK {
		if valid {
			e.seen["validate true"]++
		} else {
			e.seen["validate false"]++
		}
	}
	if r.status == http.StatusForbidden {
		e.seen["403"]++
	}
	if isActivate && r.status == http.StatusOK && r.obj != nil {
		e.seen["activate 200"]++
		e.checkIssued(t, what, r, reqSID)
	}

	// §1.6: CORS on every response to a request with an Origin.
	if origin := req.Header.Get("Origin"); origin != "" {
		if got := r.header.Get("Access-Control-Allow-Origin"); got != origin && got != "*" {
			t.Errorf("%s: Access-Control-Allow-Origin %q; want %q or *", what, got, origin)
		}
		if !headerListHas(r.header, "Access-Control-Expose-Headers", "X-Session-Id") {
			t.Errorf("%s: Access-Control-Expose-Headers %q; want it to list X-Session-Id", what, r.header.Values("Access-Control-Expose-Headers"))
		}
	}
}

// checkIssued checks the session an activate 200 issued (§2.3, §3.3, §3.4, cases 14, 24, 43) and
// records it.
func (e *consoleEnv) checkIssued(t *testing.T, what string, r *reply, reqSID string) {
	t.Helper()
	raw, ok := lookup(r.obj, "data.sessionId")
	if !ok {
		t.Errorf("%s: 200 without data.sessionId: %s", what, r.body)
		return
	}
	b, _ := json.Marshal(raw)
	s, err := parseWireSession(string(b))
	if err != nil {
		t.Errorf("%s: data.sessionId %s: %v", what, b, err)
		return
	}
	if key, _ := lookup(r.obj, "data.licenseKey"); key == nil || key == "" {
		t.Errorf("%s: data.licenseKey %#v; want a non-empty string", what, key)
	} else if _, ok := key.(string); !ok {
		t.Errorf("%s: data.licenseKey %#v; want a non-empty string", what, key)
	}
	if r.sid != nil && *r.sid != s {
		t.Errorf("%s: X-Session-Id header %+v differs from data.sessionId %+v (case 43)", what, *r.sid, s)
	}
	if s.ID == reqSID {
		t.Errorf("%s: 200 re-issued the presented session id %s; want a new one", what, s.ID)
	}
	for _, old := range e.issued {
		if old.ID == s.ID {
			t.Errorf("%s: 200 issued id %s a second time", what, s.ID)
		}
	}
	// The contract fixes the guard max(now_ms, last_issued+1) (§3.4), so each timestamp is above
	// every one issued before it, across restarts and clock steps.
	if n := len(e.issued); n > 0 && s.Timestamp <= e.issued[n-1].Timestamp {
		t.Errorf("%s: timestamp %d; want more than the previous one issued, %d (case 24)", what, s.Timestamp, e.issued[n-1].Timestamp)
	}
	e.issued = append(e.issued, s)
}

// isManifestRoute reports whether a routed path is GET /api/v2/manifests/{app}/{version}.
func isManifestRoute(route string) bool {
	rest, ok := strings.CutPrefix(route, pathManifests+"/")
	return ok && strings.Count(rest, "/") == 1 && !strings.HasPrefix(rest, "/") && !strings.HasSuffix(rest, "/")
}

// routeOf is the path a request must be routed as (§1.1): runs of / collapsed, no trailing /,
// percent-decoded segments. A segment holding an encoded / is kept encoded, so it matches nothing.
func routeOf(escaped string) string {
	var segs []string
	for _, seg := range strings.Split(escaped, "/") {
		if seg == "" {
			continue
		}
		if dec, err := url.PathUnescape(seg); err == nil && !strings.Contains(dec, "/") {
			seg = dec
		}
		segs = append(segs, seg)
	}
	return "/" + strings.Join(segs, "/")
}

var uuidRE = regexp.MustCompile(`^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$`)

// normSessionID is a request X-Session-Id as the server should read it: a UUID compared
// case-insensitively (§1.4). ok is false for anything else.
func normSessionID(v string) (string, bool) {
	v = strings.ToLower(strings.TrimSpace(v))
	return v, uuidRE.MatchString(v)
}

// parseWireSession parses a session object strictly: a JSON object with both id (a lower-case
// UUID) and timestamp (an integer >= 0 that fits int64).
func parseWireSession(raw string) (wireSession, error) {
	v, err := decodeJSON([]byte(raw))
	if err != nil {
		return wireSession{}, fmt.Errorf("not JSON: %v", err)
	}
	m, ok := v.(map[string]any)
	if !ok {
		return wireSession{}, fmt.Errorf("not a JSON object")
	}
	id, ok := m["id"].(string)
	if !ok || !uuidRE.MatchString(id) {
		return wireSession{}, fmt.Errorf("id %#v is not a lower-case UUID", m["id"])
	}
	ts, ok := asInt(m["timestamp"])
	if !ok || ts < 0 {
		return wireSession{}, fmt.Errorf("timestamp %#v is not an integer >= 0", m["timestamp"])
	}
	return wireSession{ID: id, Timestamp: ts}, nil
}

// decodeJSON decodes exactly one JSON value, keeping numbers as json.Number.
func decodeJSON(b []byte) (any, error) {
	d := json.NewDecoder(bytes.NewReader(b))
	d.UseNumber()
	var v any
	if err := d.Decode(&v); err != nil {
		return nil, err
	}
	if _, err := d.Token(); !errors.Is(err, io.EOF) {
		return nil, errors.New("data after the JSON value")
	}
	return v, nil
}

// lookup follows a dotted path of object keys.
func lookup(v any, path string) (any, bool) {
	for _, k := range strings.Split(path, ".") {
		m, ok := v.(map[string]any)
		if !ok {
			return nil, false
		}
		if v, ok = m[k]; !ok {
			return nil, false
		}
	}
	return v, true
}

// asInt returns v as an int64 if it is a JSON integer literal (no fraction, no exponent).
func asInt(v any) (int64, bool) {
	n, ok := v.(json.Number)
	if !ok || strings.ContainsAny(string(n), ".eE") {
		return 0, false
	}
	i, err := n.Int64()
	return i, err == nil
}

// headerListHas reports whether a comma-separated header lists want, case-insensitively.
func headerListHas(h http.Header, name, want string) bool {
	for _, v := range h.Values(name) {
		for _, item := range strings.Split(v, ",") {
			if strings.EqualFold(strings.TrimSpace(item), want) {
				return true
			}
		}
	}
	return false
}

// field returns the value at a dotted path of the JSON body, failing the test if it is absent.
func (r reply) field(t *testing.T, path string) any {
	t.Helper()
	v, ok := lookup(r.obj, path)
	if !ok {
		t.Fatalf("body %s has no %s", r.body, path)
	}
	return v
}

// text returns the string at path.
func (r reply) text(t *testing.T, path string) string {
	t.Helper()
	s, ok := r.field(t, path).(string)
	if !ok {
		t.Fatalf("%s = %#v; want a string", path, r.field(t, path))
	}
	return s
}

// integer returns the JSON integer at path.
func (r reply) integer(t *testing.T, path string) int64 {
	t.Helper()
	n, ok := asInt(r.field(t, path))
	if !ok {
		t.Fatalf("%s = %#v; want an integer", path, r.field(t, path))
	}
	return n
}

// boolean returns the JSON boolean at path.
func (r reply) boolean(t *testing.T, path string) bool {
	t.Helper()
	b, ok := r.field(t, path).(bool)
	if !ok {
		t.Fatalf("%s = %#v; want a boolean", path, r.field(t, path))
	}
	return b
}

// session returns data.sessionId of an activate 200.
func (r reply) session(t *testing.T) wireSession {
	t.Helper()
	b, _ := json.Marshal(r.field(t, "data.sessionId"))
	s, err := parseWireSession(string(b))
	if err != nil {
		t.Fatalf("data.sessionId %s: %v", b, err)
	}
	return s
}

// wantStatus fails the test unless r has the status.
func wantStatus(t *testing.T, r reply, status int) {
	t.Helper()
	if r.status != status {
		t.Fatalf("status %d, body %s; want %d", r.status, r.body, status)
	}
}

// wantError checks the error envelope E(status, reason); reason "" accepts any non-empty reason.
func wantError(t *testing.T, r reply, status int, reason string) {
	t.Helper()
	wantStatus(t, r, status)
	if got := r.text(t, "reason"); reason != "" && got != reason {
		t.Errorf("reason %q; want %q", got, reason)
	}
}

// wantSID checks SID(id): the X-Session-Id response header is a full session object naming id.
func wantSID(t *testing.T, r reply, id string) wireSession {
	t.Helper()
	if r.sid == nil {
		t.Fatalf("X-Session-Id %q; want a session object with id %s", r.header.Get("X-Session-Id"), id)
	}
	if r.sid.ID != id {
		t.Errorf("X-Session-Id id %s; want %s", r.sid.ID, id)
	}
	return *r.sid
}

// wantValid checks a device validate answer: 200 with data.isValid == want.
func wantValid(t *testing.T, r reply, want bool) {
	t.Helper()
	wantStatus(t, r, http.StatusOK)
	if got := r.boolean(t, "data.isValid"); got != want {
		t.Errorf("data.isValid %v; want %v", got, want)
	}
}

// Request builders.

func hdr(name, value string) string { return name + ": " + value }
func sidHdr(id string) string       { return hdr("X-Session-Id", id) }
func bearerHdr(tok string) string   { return hdr("Authorization", "Bearer "+tok) }

// activateKey is a key-mode activation as RS/CORE sends it, with extra headers.
func activateKey(key string, headers ...string) call {
	return call{path: pathActivate, ctype: ctJSON, body: keyBody(key), header: headers}
}

// validateCall is a device validate as RS/CORE sends it: no body, no Content-Type.
func validateCall(headers ...string) call {
	return call{path: pathValidate, header: headers}
}

func keyBody(key string) string {
	b, _ := json.Marshal(map[string]string{"licenseKey": key})
	return string(b)
}

func loginBody(user, password string) string {
	b, _ := json.Marshal(map[string]any{"username": user, "password": password, "issueJWT": true})
	return string(b)
}

func tokenBody(tok string) string {
	b, _ := json.Marshal(map[string]any{"jwt": map[string]string{"token": tok}})
	return string(b)
}

// login logs a user in through the API and returns the JWT.
func (e *consoleEnv) login(t *testing.T, user, password string) string {
	t.Helper()
	r := e.do(t, call{path: pathLogin, ctype: ctJSON, body: loginBody(user, password)})
	wantStatus(t, r, http.StatusOK)
	return r.text(t, "data.jwt.token")
}

// expiredToken returns a well-signed token for userID whose expiry has passed: it is issued by a
// second service on the same store whose clock runs two days behind.
func (e *consoleEnv) expiredToken(t *testing.T, userID int64) string {
	t.Helper()
	old, err := openconsole.NewService(context.Background(), e.store, openconsole.Options{
		Now:    func() time.Time { return time.Now().Add(-48 * time.Hour) },
		Logger: e.opts.Logger,
	})
	if err != nil {
		t.Fatal(err)
	}
	defer old.Close()
	tok, exp := old.IssueToken(userID)
	if exp >= time.Now().Unix() {
		t.Fatalf("token expiry %d is not in the past", exp)
	}
	return tok
}

// tamper returns tok with its signature changed, so that it is well-formed but forged.
func tamper(tok string) string {
	i := strings.LastIndexByte(tok, '.')
	sig := []byte(tok[i+1:])
	if sig[0] == 'A' {
		sig[0] = 'B'
	} else {
		sig[0] = 'A'
	}
	return tok[:i+1] + string(sig)
}

// dbState is what a request must not change when it is refused: licenses with their taken seats,
// and sessions (last-seen times excluded: a valid validate may touch them).
type dbState struct {
	Licenses []string
	Sessions []string
}

func (e *consoleEnv) state(t *testing.T) dbState {
	t.Helper()
	ctx := context.Background()
	lics, err := openconsole.Collect(e.svc.Licenses(ctx, openconsole.LicenseQuery{}))
	if err != nil {
		t.Fatal(err)
	}
	sessions, err := allSessions(e.svc, "")
	if err != nil {
		t.Fatal(err)
	}
	var st dbState
	for _, l := range lics {
		st.Licenses = append(st.Licenses, fmt.Sprintf("%s kind=%s seats=%d taken=%d revoked=%v",
			l.Key, l.Kind, l.Seats, l.Taken, !l.RevokedAt.IsZero()))
	}
	for _, s := range sessions {
		st.Sessions = append(st.Sessions, fmt.Sprintf("%s license=%s ts=%d revoked=%v",
			s.Session.ID, s.License.Key, s.Session.Timestamp, !s.Session.RevokedAt.IsZero()))
	}
	return st
}

func (a dbState) equal(b dbState) bool {
	return slices.Equal(a.Licenses, b.Licenses) && slices.Equal(a.Sessions, b.Sessions)
}
