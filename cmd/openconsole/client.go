package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/url"
	"os"
	"os/user"
	"strconv"
	"strings"
	"sync"
	"time"

	"openconsole"
	"openconsole/admin"
	"openconsole/sqlstore"
)

// Every admin command is a request to the operator API, made one of three ways, with the same
// answer and so the same output:
//   - to a server named by --server URL (or OPENCONSOLE_SERVER), with an API token from
//     --token-file or OPENCONSOLE_TOKEN;
//   - to the server running on the database, through its local admin socket (a Unix socket next
//     to the SQLite file, mode 0600: whoever may open it may administer, as whoever may open the
//     database file may): the server then makes the change through its own writer, instead of a
//     second process fighting it for SQLite's write lock;
//   - when no server runs on the database, to the operator API in this process, on the database.

// opClient reaches the operator API.
type opClient struct {
	hc    *http.Client
	base  string // scheme and host, without a path
	token string
	via   string // "server", "socket" or "local"
	close func()
	// failures keeps the cause of an internal failure of the in-process operator API ("local").
	failures *failureCapture
}

// apiError is a refusal of the operator API (problem details).
type apiError struct {
	Status int
	Code   string
	Detail string
}

func (e *apiError) Error() string {
	if e.Detail != "" {
		return e.Detail
	}
	return fmt.Sprintf("the server answered %d %s", e.Status, http.StatusText(e.Status))
}

// socketPath is where a server on the SQLite database at dsn listens for the local CLI; "" for
// PostgreSQL (where the CLI and servers share the database without a lock to fight over) and for
// a path too long for a Unix socket.
func socketPath(dsn string) string {
	if isPostgres(dsn) {
		return ""
	}
	p := strings.TrimPrefix(dsn, "sqlite:") + ".sock"
	if len(p) > 100 {
		return ""
	}
	return p
}

// localUser names the operating-system user, for the record of changes made from this machine.
func localUser() string {
	if u, err := user.Current(); err == nil && u.Username != "" {
		return u.Username
	}
	return "uid " + strconv.Itoa(os.Getuid())
}

// client returns the way to the operator API for this command; ttl is the idle timeout to use
// when the command runs on the database itself (a server applies its own).
func (e *cliEnv) client(ttl time.Duration) (*opClient, error) {
	if e.server != "" {
		u, err := url.Parse(e.server)
		if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
			return nil, errors.New("--server must be an http:// or https:// URL")
		}
		token, err := e.apiToken()
		if err != nil {
			return nil, err
		}
		return &opClient{hc: &http.Client{Timeout: 60 * time.Second}, base: u.Scheme + "://" + u.Host, token: token, via: "server", close: func() {}}, nil
	}
	if sock := socketPath(e.dsn()); sock != "" {
		if c, err := net.DialTimeout("unix", sock, time.Second); err == nil {
			c.Close()
			tr := &http.Transport{DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
				var d net.Dialer
				return d.DialContext(ctx, "unix", sock)
			}}
			return &opClient{hc: &http.Client{Transport: tr, Timeout: 60 * time.Second}, base: "http://openconsole", via: "socket",
				close: tr.CloseIdleConnections}, nil
		}
	}
	svc, _, done, err := e.open(sqlstore.Options{}, openconsole.Options{SessionTTL: ttl, OneShot: true, OfflineKey: e.offlineKey})
	if err != nil {
		return nil, err
	}
	name := localUser()
	p := openconsole.Principal{Actor: openconsole.Actor{Kind: openconsole.ActorCLI, Name: name}, Role: openconsole.RoleAdmin, Scope: "cli:" + name}
	// A server answers an internal failure with a fixed message and logs the cause; here the cause
	// is the command's own error message, so it is kept instead of logged.
	failures := newFailureCapture(slog.NewTextHandler(e.stderr, nil))
	h := admin.New(svc, slog.New(failures))
	tr := roundTripper(func(r *http.Request) (*http.Response, error) {
		rec := newRecorder()
		h.ServeHTTP(rec, r.WithContext(admin.WithPrincipal(r.Context(), p)))
		return rec.response(r), nil
	})
	return &opClient{hc: &http.Client{Transport: tr}, base: "http://local", via: "local", close: done, failures: failures}, nil
}

// failureCapture is a slog.Handler that keeps the err of the last error logged and passes every
// other record on.
type failureCapture struct {
	next slog.Handler
	last *capturedFailure // shared by the handlers WithAttrs and WithGroup derive
}

type capturedFailure struct {
	mu  sync.Mutex
	msg string
}

func newFailureCapture(next slog.Handler) *failureCapture {
	return &failureCapture{next: next, last: &capturedFailure{}}
}

func (f *failureCapture) Enabled(ctx context.Context, l slog.Level) bool {
	return f.next.Enabled(ctx, l)
}

func (f *failureCapture) Handle(ctx context.Context, r slog.Record) error {
	if r.Level < slog.LevelError {
		return f.next.Handle(ctx, r)
	}
	msg := r.Message
	r.Attrs(func(a slog.Attr) bool {
		if a.Key == "err" {
			msg = a.Value.String()
			return false
		}
		return true
	})
	f.last.mu.Lock()
	f.last.msg = msg
	f.last.mu.Unlock()
	return nil
}

func (f *failureCapture) WithAttrs(as []slog.Attr) slog.Handler {
	return &failureCapture{next: f.next.WithAttrs(as), last: f.last}
}

func (f *failureCapture) WithGroup(name string) slog.Handler {
	return &failureCapture{next: f.next.WithGroup(name), last: f.last}
}

// take returns the error kept since the last call, if any.
func (f *failureCapture) take() string {
	f.last.mu.Lock()
	defer f.last.mu.Unlock()
	s := f.last.msg
	f.last.msg = ""
	return s
}

// apiToken is the token for --server: from --token-file, else OPENCONSOLE_TOKEN.
func (e *cliEnv) apiToken() (string, error) {
	if e.tokenFile != "" {
		b, err := os.ReadFile(e.tokenFile)
		if err != nil {
			return "", fmt.Errorf("--token-file: %w", err)
		}
		t := strings.TrimSpace(string(b))
		if t == "" {
			return "", errors.New("--token-file: the file is empty")
		}
		return t, nil
	}
	if t := strings.TrimSpace(os.Getenv("OPENCONSOLE_TOKEN")); t != "" {
		return t, nil
	}
	return "", errors.New("--server needs an API token: --token-file FILE or OPENCONSOLE_TOKEN (openconsole token create makes one)")
}

// request is one call of the operator API.
type request struct {
	method, path string
	query        url.Values
	body         []byte
	header       map[string]string
}

// do sends req and returns the answer's body; a refusal is an *apiError.
func (c *opClient) do(ctx context.Context, req request) ([]byte, http.Header, error) {
	u := c.base + admin.Prefix + req.path
	if len(req.query) > 0 {
		u += "?" + req.query.Encode()
	}
	var body io.Reader = http.NoBody
	if req.body != nil {
		body = bytes.NewReader(req.body)
	}
	r, err := http.NewRequestWithContext(ctx, req.method, u, body)
	if err != nil {
		return nil, nil, err
	}
	if req.body != nil {
		r.Header.Set("Content-Type", "application/json")
	}
	if c.token != "" {
		r.Header.Set("Authorization", "Bearer "+c.token)
	}
	for k, v := range req.header {
		r.Header.Set(k, v)
	}
	resp, err := c.hc.Do(r)
	if err != nil {
		return nil, nil, err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(io.LimitReader(resp.Body, 256<<20))
	if err != nil {
		return nil, nil, err
	}
	if resp.StatusCode >= 500 && c.failures != nil {
		if cause := c.failures.take(); cause != "" {
			return nil, nil, errors.New(cause)
		}
	}
	if resp.StatusCode >= 300 {
		var p struct {
			Code   string `json:"code"`
			Detail string `json:"detail"`
			Title  string `json:"title"`
		}
		if json.Unmarshal(b, &p) != nil || p.Code == "" {
			return nil, nil, &apiError{Status: resp.StatusCode}
		}
		if p.Detail == "" {
			p.Detail = p.Title
		}
		return nil, nil, &apiError{Status: resp.StatusCode, Code: p.Code, Detail: p.Detail}
	}
	return b, resp.Header, nil
}

// call runs one request and prints its answer as indented JSON: the shape of most admin commands.
func (e *cliEnv) call(ttl time.Duration, req request) int {
	c, err := e.client(ttl)
	if err != nil {
		return e.fail(err)
	}
	defer c.close()
	b, _, err := c.do(e.ctx, req)
	if err != nil {
		return e.fail(err)
	}
	return e.printRaw(b)
}

// printRaw writes a JSON answer indented.
func (e *cliEnv) printRaw(b []byte) int {
	var out bytes.Buffer
	if err := json.Indent(&out, b, "", "  "); err != nil {
		return e.fail(fmt.Errorf("unexpected answer: %w", err))
	}
	out.WriteByte('\n')
	if _, err := e.stdout.Write(out.Bytes()); err != nil {
		return e.fail(err)
	}
	return 0
}

// list runs a listing: page after page of at most 1000 items, written as one
// {"items": [...], "nextCursor": ...} while they arrive, so memory stays bounded whatever the
// listing's length. limit > 0 stops after that many items; nextCursor then continues from there.
func (e *cliEnv) list(ttl time.Duration, path string, query url.Values, limit int, after string) int {
	c, err := e.client(ttl)
	if err != nil {
		return e.fail(err)
	}
	defer c.close()
	if query == nil {
		query = url.Values{}
	}
	w := bufio.NewWriterSize(e.stdout, 64<<10)
	n := 0
	var next *string
	cursor := after
	for {
		page := 1000
		if limit > 0 {
			page = min(page, limit-n)
		}
		q := url.Values{}
		for k, v := range query {
			q[k] = v
		}
		q.Set("limit", strconv.Itoa(page))
		if cursor != "" {
			q.Set("cursor", cursor)
		}
		b, _, err := c.do(e.ctx, request{method: "GET", path: path, query: q})
		if err != nil {
			w.Flush()
			return e.fail(err)
		}
		var p struct {
			Items      []json.RawMessage `json:"items"`
			NextCursor *string           `json:"nextCursor"`
		}
		if err := json.Unmarshal(b, &p); err != nil {
			return e.fail(fmt.Errorf("unexpected answer: %w", err))
		}
		for _, it := range p.Items {
			var ind bytes.Buffer
			if err := json.Indent(&ind, it, "    ", "  "); err != nil {
				return e.fail(err)
			}
			if n == 0 {
				w.WriteString("{\n  \"items\": [\n    ")
			} else {
				w.WriteString(",\n    ")
			}
			w.Write(ind.Bytes())
			n++
		}
		next = p.NextCursor
		if next == nil || (limit > 0 && n >= limit) {
			break
		}
		cursor = *next
	}
	if n == 0 {
		w.WriteString("{\n  \"items\": [")
	} else {
		w.WriteString("\n  ")
	}
	nc := []byte("null")
	if next != nil {
		nc, _ = json.Marshal(*next)
	}
	fmt.Fprintf(w, "],\n  \"nextCursor\": %s\n}\n", nc)
	if err := w.Flush(); err != nil {
		return e.fail(err)
	}
	return 0
}

// bodyOf encodes a request body, leaving out nil fields.
func bodyOf(fields map[string]any) []byte {
	for k, v := range fields {
		if v == nil {
			delete(fields, k)
		}
	}
	b, _ := json.Marshal(fields)
	return b
}

type roundTripper func(*http.Request) (*http.Response, error)

func (f roundTripper) RoundTrip(r *http.Request) (*http.Response, error) { return f(r) }

// recorder is an http.ResponseWriter that keeps the answer, for the in-process operator API.
type recorder struct {
	h      http.Header
	status int
	body   bytes.Buffer
}

func newRecorder() *recorder { return &recorder{h: http.Header{}} }

func (r *recorder) Header() http.Header { return r.h }

func (r *recorder) Write(b []byte) (int, error) {
	if r.status == 0 {
		r.status = http.StatusOK
	}
	return r.body.Write(b)
}

func (r *recorder) WriteHeader(code int) {
	if r.status == 0 {
		r.status = code
	}
}

func (r *recorder) response(req *http.Request) *http.Response {
	if r.status == 0 {
		r.status = http.StatusOK
	}
	return &http.Response{StatusCode: r.status, Status: strconv.Itoa(r.status) + " " + http.StatusText(r.status),
		Header: r.h, Body: io.NopCloser(bytes.NewReader(r.body.Bytes())), ContentLength: int64(r.body.Len()),
		Proto: "HTTP/1.1", ProtoMajor: 1, ProtoMinor: 1, Request: req}
}
