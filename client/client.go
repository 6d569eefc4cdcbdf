// Package client is a device client of the FLECS Console API as OpenConsole serves it: it
// activates and validates a license, fetches app manifests and registry tokens, and keeps its
// state in FLECS Core's files, with FLECS Core's rule for adopting sessions. It also installs
// and checks offline certificates (package offline holds their formats).
//
// The package imports nothing of the server: only the standard library and
// golang.org/x/mod/sumdb/note.
package client

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
	"time"
	"unicode"
)

// DefaultMaxManifestVersion is what FLECS Core sends as max_manifest_version.
const DefaultMaxManifestVersion = "3.0.0"

// maxBody bounds every response body read.
const maxBody = 8 << 20

// Client talks to one console for one device state.
type Client struct {
	// BaseURL is the console, e.g. https://console.flecs.tech; a trailing slash is ignored.
	BaseURL string
	// HTTP is the transport; nil means a client with a 30 s timeout.
	HTTP *http.Client
	// State holds the license key and session.
	State *State
	// Warn receives warnings (a session older than the stored one); nil drops them.
	Warn func(msg string)
}

// Credentials choose the activation mode. At most one field is set; none means the stored license
// key (FLECS Core's first mode).
type Credentials struct {
	Key    string // a license key: key mode
	Serial string // a registered serial number: key mode with the serial
	Bearer string // a console JWT: bearer mode (no session sent, body null)
}

// Activation is the outcome of Activate.
type Activation struct {
	// New is true for a 200 (a new session), false for a 204 (already active).
	New bool
	// License is the license key now stored.
	License string
	// Session is the session now stored (after FLECS Core's rule).
	Session Session
}

// Token is a registry credential for an official app.
type Token struct {
	Username string `json:"username"`
	Password string `json:"password"`
}

func (c *Client) httpClient() *http.Client {
	if c.HTTP != nil {
		return c.HTTP
	}
	return defaultHTTP
}

var defaultHTTP = &http.Client{Timeout: 30 * time.Second}

func (c *Client) warn(format string, args ...any) {
	if c.Warn != nil {
		c.Warn(fmt.Sprintf(format, args...))
	}
}

// response is a console answer read in full.
type response struct {
	status int
	header http.Header
	body   []byte
}

// do sends one request. sessionHeader: nil sends no X-Session-Id, else its value (possibly empty,
// as FLECS Core sends on manifests and tokens without a session). Every response's X-Session-Id is
// applied to the state first, as FLECS Core's middleware does.
func (c *Client) do(ctx context.Context, op, method, path string, sessionHeader *string, auth string, body []byte) (*response, error) {
	u := strings.TrimRight(c.BaseURL, "/") + path
	var rd io.Reader
	if body != nil {
		rd = bytes.NewReader(body)
	}
	req, err := http.NewRequestWithContext(ctx, method, u, rd)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", op, err)
	}
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	if sessionHeader != nil {
		req.Header["X-Session-Id"] = []string{*sessionHeader}
	}
	if auth != "" {
		req.Header.Set("Authorization", "Bearer "+auth)
	}
	req.Header.Set("User-Agent", "ocdev/1 (OpenConsole device client)")
	resp, err := c.httpClient().Do(req)
	if err != nil {
		if ctx.Err() != nil {
			return nil, fmt.Errorf("%s: %w", op, ctx.Err())
		}
		return nil, fmt.Errorf("%s: %w: %v", op, ErrUnavailable, err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(io.LimitReader(resp.Body, maxBody+1))
	if err != nil {
		return nil, fmt.Errorf("%s: %w: reading the answer: %v", op, ErrUnavailable, err)
	}
	if len(b) > maxBody {
		return nil, protocolErr(op, "answer longer than %d bytes", maxBody)
	}
	r := &response{status: resp.StatusCode, header: resp.Header, body: b}
	if h := resp.Header.Get("X-Session-Id"); h != "" {
		if err := c.applySessionHeader(op, h); err != nil {
			return nil, err
		}
	}
	return r, nil
}

// wireSession is the session object of the wire; both fields optional, as FLECS Core reads it.
type wireSession struct {
	ID        *string `json:"id"`
	Timestamp *uint64 `json:"timestamp"`
}

func (w wireSession) session() Session {
	var s Session
	if w.ID != nil {
		s.ID, s.HasID = *w.ID, true
	}
	if w.Timestamp != nil {
		s.Timestamp, s.HasTimestamp = *w.Timestamp, true
	}
	return s
}

// applySessionHeader parses an X-Session-Id response header as FLECS Core does (a JSON object with
// optional id and timestamp) and adopts it. A header that is not such an object is ignored, as
// Core ignores it (Core logs it; we warn).
func (c *Client) applySessionHeader(op, h string) error {
	var w wireSession
	if err := json.Unmarshal([]byte(h), &w); err != nil {
		c.warn("%s: ignoring an X-Session-Id header that is not a JSON session object", op)
		return nil
	}
	return c.adopt(op, w.session())
}

// adopt stores incoming by FLECS Core's rule and warns when the console handed back an older one.
func (c *Client) adopt(op string, incoming Session) error {
	stored, err := c.State.Session()
	if err != nil {
		return err
	}
	next, adopted, older := Adopt(stored, incoming)
	if older {
		c.warn("%s: the console handed back session %s with timestamp %d, older than the stored %s (%d); keeping the stored one",
			op, incoming.ID, incoming.Timestamp, stored.ID, stored.Timestamp)
	}
	if adopted && next != stored {
		return c.State.SetSession(next)
	}
	return nil
}

// envelope is the console's success or error body.
type envelope struct {
	StatusCode *int            `json:"statusCode"`
	StatusText string          `json:"statusText"`
	Reason     string          `json:"reason"`
	Data       json.RawMessage `json:"data"`
}

// apiError turns a non-success answer into an APIError, with the envelope's reason if any.
func apiError(op string, r *response) error {
	var e envelope
	_ = json.Unmarshal(r.body, &e)
	// The reason is shown to people: no control characters (a hostile server could send terminal
	// escapes), at most 200 runes.
	reason := strings.Map(func(r rune) rune {
		if unicode.IsControl(r) {
			return -1
		}
		return r
	}, strings.ToValidUTF8(e.Reason, ""))
	if rs := []rune(reason); len(rs) > 200 {
		reason = string(rs[:200])
	}
	return &APIError{Op: op, Status: r.status, Reason: reason}
}

// data parses a success envelope and returns its data, which must be present.
func data(op string, r *response) (json.RawMessage, error) {
	var e envelope
	if err := json.Unmarshal(r.body, &e); err != nil {
		return nil, protocolErr(op, "body is not a JSON envelope")
	}
	if e.StatusCode != nil && *e.StatusCode != r.status {
		return nil, protocolErr(op, "envelope statusCode %d differs from HTTP status %d", *e.StatusCode, r.status)
	}
	if len(e.Data) == 0 || string(e.Data) == "null" {
		return nil, protocolErr(op, "no data in the answer")
	}
	return e.Data, nil
}

// Activate activates the device (wire contract §2.3, as FLECS Core drives it). Key and serial
// modes send the stored session, if any; bearer mode sends none and the body null. On 200 the
// license key from the answer is stored and its session adopted; on 204 the state must already
// hold a license and a session id.
func (c *Client) Activate(ctx context.Context, cred Credentials) (*Activation, error) {
	const op = "activate"
	n := 0
	for _, s := range []string{cred.Key, cred.Serial, cred.Bearer} {
		if s != "" {
			n++
		}
	}
	if n > 1 {
		return nil, fmt.Errorf("%s: give one of key, serial and bearer token", op)
	}
	stored, err := c.State.Session()
	if err != nil {
		return nil, err
	}
	storedKey, err := c.State.License()
	if err != nil {
		return nil, err
	}
	var body []byte
	var session *string
	key := strings.TrimSpace(cred.Key + cred.Serial)
	switch {
	case key != "":
	case cred.Bearer != "":
	case storedKey != "":
		key = storedKey
	default:
		return nil, fmt.Errorf("%s: %w: no license key stored and none given", op, ErrNotActivated)
	}
	if key != "" {
		body, _ = json.Marshal(map[string]string{"licenseKey": key})
		if stored.HasID && stored.ID != "" {
			session = &stored.ID
		}
	} else {
		body = []byte("null")
	}
	r, err := c.do(ctx, op, http.MethodPost, "/api/v2/device/license/activate", session, strings.TrimSpace(cred.Bearer), body)
	if err != nil {
		return nil, err
	}
	switch r.status {
	case http.StatusOK:
		raw, err := data(op, r)
		if err != nil {
			return nil, err
		}
		var d struct {
			SessionID  *wireSession `json:"sessionId"`
			LicenseKey string       `json:"licenseKey"`
		}
		if err := json.Unmarshal(raw, &d); err != nil || d.SessionID == nil || d.LicenseKey == "" {
			return nil, protocolErr(op, "200 without data.sessionId object and data.licenseKey")
		}
		if err := c.State.SetLicense(d.LicenseKey); err != nil {
			return nil, err
		}
		if err := c.adopt(op, d.SessionID.session()); err != nil {
			return nil, err
		}
		now, err := c.State.Session()
		if err != nil {
			return nil, err
		}
		return &Activation{New: true, License: d.LicenseKey, Session: now}, nil
	case http.StatusNoContent:
		// FLECS Core's rule: "already active" is only meaningful with a license and session held.
		now, err := c.State.Session()
		if err != nil {
			return nil, err
		}
		lic, err := c.State.License()
		if err != nil {
			return nil, err
		}
		if lic == "" || !now.HasID {
			return nil, protocolErr(op, "console answered already active, but no license and session are stored")
		}
		return &Activation{New: false, License: lic, Session: now}, nil
	default:
		return nil, apiError(op, r)
	}
}

// Validate asks the console whether the stored session is valid (§2.4). Without a stored session
// id it returns ErrNotActivated without calling the console, as FLECS Core does.
func (c *Client) Validate(ctx context.Context) (bool, error) {
	const op = "validate"
	sess, err := c.State.Session()
	if err != nil {
		return false, err
	}
	if !sess.HasID || sess.ID == "" {
		return false, fmt.Errorf("%s: %w: no session stored", op, ErrNotActivated)
	}
	r, err := c.do(ctx, op, http.MethodPost, "/api/v2/device/license/validate", &sess.ID, "", nil)
	if err != nil {
		return false, err
	}
	if r.status != http.StatusOK {
		return false, apiError(op, r)
	}
	raw, err := data(op, r)
	if err != nil {
		return false, err
	}
	var d struct {
		IsValid *bool `json:"isValid"`
	}
	if err := json.Unmarshal(raw, &d); err != nil || d.IsValid == nil {
		return false, protocolErr(op, "200 without data.isValid")
	}
	return *d.IsValid, nil
}

// sessionValue is the X-Session-Id FLECS Core sends on manifests and tokens: the id, or empty.
func (c *Client) sessionValue() (string, error) {
	sess, err := c.State.Session()
	if err != nil {
		return "", err
	}
	return sess.ID, nil
}

// Manifest fetches the manifest of app at version (§2.6) with max_manifest_version 3.0.0, as FLECS
// Core does, and returns the data object.
func (c *Client) Manifest(ctx context.Context, app, version string) (json.RawMessage, error) {
	const op = "manifest"
	if app == "" || version == "" {
		return nil, fmt.Errorf("%s: app and version are required", op)
	}
	sid, err := c.sessionValue()
	if err != nil {
		return nil, err
	}
	path := "/api/v2/manifests/" + url.PathEscape(app) + "/" + url.PathEscape(version) +
		"?max_manifest_version=" + DefaultMaxManifestVersion
	r, err := c.do(ctx, op, http.MethodGet, path, &sid, "", nil)
	if err != nil {
		return nil, err
	}
	if r.status != http.StatusOK {
		return nil, apiError(op, r)
	}
	raw, err := data(op, r)
	if err != nil {
		return nil, err
	}
	if !bytes.HasPrefix(bytes.TrimSpace(raw), []byte("{")) {
		return nil, protocolErr(op, "data is not an object")
	}
	return raw, nil
}

// Token fetches registry credentials for app at version (§2.7). It returns nil, nil for a 204:
// an app that needs no credentials.
func (c *Client) Token(ctx context.Context, app, version string) (*Token, error) {
	const op = "token"
	if app == "" || version == "" {
		return nil, fmt.Errorf("%s: app and version are required", op)
	}
	sid, err := c.sessionValue()
	if err != nil {
		return nil, err
	}
	body, _ := json.Marshal(map[string]string{"app": app, "version": version})
	r, err := c.do(ctx, op, http.MethodPost, "/api/v2/tokens", &sid, "", body)
	if err != nil {
		return nil, err
	}
	switch r.status {
	case http.StatusNoContent:
		return nil, nil
	case http.StatusOK:
		raw, err := data(op, r)
		if err != nil {
			return nil, err
		}
		var d struct {
			Token *Token `json:"token"`
		}
		if err := json.Unmarshal(raw, &d); err != nil || d.Token == nil || d.Token.Username == "" || d.Token.Password == "" {
			return nil, protocolErr(op, "200 without data.token.username and password")
		}
		return d.Token, nil
	default:
		return nil, apiError(op, r)
	}
}

// Retryable reports whether err is worth retrying later: the console was unreachable or failing.
func Retryable(err error) bool {
	return errors.Is(err, ErrUnavailable)
}
