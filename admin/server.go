// Package admin serves the operator API (/api/openconsole/v1/): JSON resources for licenses,
// sessions, users, serials, API tokens, the app catalogue, statistics and the audit log, with
// roles, idempotent creation, optimistic concurrency and RFC 9457 problem details. Every change is
// one call of the domain's operations (package openconsole), made as the authenticated principal.
package admin

import (
	"bytes"
	"context"
	"crypto/sha256"
	_ "embed"
	"encoding/hex"
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	"net"
	"net/http"
	"runtime/debug"
	"strconv"
	"strings"

	"openconsole"
)

// Prefix is where the operator API is served.
const Prefix = "/api/openconsole/v1"

//go:generate python3 openapi.py
//go:embed openapi.json
var openapiDoc []byte

// OpenAPI returns the OpenAPI 3.1 description of the operator API.
func OpenAPI() []byte { return openapiDoc }

// Authenticator finds the principal of a request by means of its own (a web console session, say):
// ok false when the request does not carry its credentials; an error when it carries bad ones.
type Authenticator func(r *http.Request) (p openconsole.Principal, ok bool, err error)

// Server is the operator API as an http.Handler.
type Server struct {
	svc            *openconsole.Service
	log            *slog.Logger
	mux            *http.ServeMux
	authenticators []Authenticator
	clientIPHeader string
	failures       *failureLog
	patterns       []string // "METHOD /path" of every route, for Routes
}

// Routes lists the routes the server serves, as "METHOD /path" under Prefix.
func (s *Server) Routes() []string { return append([]string(nil), s.patterns...) }

// Option configures a Server.
type Option func(*Server)

// WithAuthenticator adds a way to authenticate requests besides API tokens.
func WithAuthenticator(a Authenticator) Option {
	return func(s *Server) { s.authenticators = append(s.authenticators, a) }
}

// WithClientIPHeader takes the client address for the record from the last value of the named
// header (behind a proxy that sets it).
func WithClientIPHeader(name string) Option {
	return func(s *Server) { s.clientIPHeader = http.CanonicalHeaderKey(name) }
}

type principalKey struct{}

// WithPrincipal returns ctx carrying an already authenticated principal: a listener that
// authenticates by its own means (the local admin socket) sets it, and the server takes it as is.
func WithPrincipal(ctx context.Context, p openconsole.Principal) context.Context {
	return context.WithValue(ctx, principalKey{}, p)
}

// New returns the operator API on svc. A nil logger means slog.Default().
func New(svc *openconsole.Service, log *slog.Logger, opts ...Option) *Server {
	if log == nil {
		log = slog.Default()
	}
	s := &Server{svc: svc, log: log, mux: http.NewServeMux()}
	s.failures = newFailureLog(log)
	for _, o := range opts {
		o(s)
	}
	s.routes()
	return s
}

// handler is a handler of an authenticated request.
type handler func(w http.ResponseWriter, r *http.Request, p openconsole.Principal) error

// route serves pattern ("METHOD /path" under Prefix) to principals with at least role need.
func (s *Server) route(pattern string, need openconsole.Role, h handler) {
	method, path, _ := strings.Cut(pattern, " ")
	s.patterns = append(s.patterns, pattern)
	s.mux.HandleFunc(method+" "+Prefix+path, func(w http.ResponseWriter, r *http.Request) {
		p, err := s.authenticate(r)
		if err == nil && !p.Role.Allows(need) {
			err = openconsole.Errorf(openconsole.EFORBIDDEN, "this needs the %s role; the %s role may not", need, p.Role)
		}
		if err == nil {
			r = r.WithContext(openconsole.WithActor(r.Context(), p.Actor))
			err = h(w, r, p)
		}
		if err != nil {
			s.fail(w, r, err)
		}
	})
}

// ServeHTTP implements http.Handler.
func (s *Server) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	defer func() {
		if v := recover(); v != nil {
			if v == http.ErrAbortHandler {
				panic(v)
			}
			s.log.Error("panic serving request", "method", r.Method, "path", r.URL.Path, "panic", v, "stack", string(debug.Stack()))
			writeProblem(w, http.StatusInternalServerError, "internal", "Internal server error", "")
		}
	}()
	w.Header().Set("Cache-Control", "no-store")
	if _, pattern := s.mux.Handler(r); pattern != "" {
		s.mux.ServeHTTP(w, r)
		return
	}
	// No route: 405 when the path has routes for other methods, else 404.
	var allow []string
	for _, m := range []string{"GET", "POST", "PUT", "PATCH", "DELETE"} {
		probe := r.Clone(r.Context())
		probe.Method = m
		if _, pattern := s.mux.Handler(probe); pattern != "" {
			allow = append(allow, m)
		}
	}
	if len(allow) > 0 {
		w.Header().Set("Allow", strings.Join(allow, ", "))
		writeProblem(w, http.StatusMethodNotAllowed, "method_not_allowed", "Method not allowed",
			"method "+r.Method+" is not allowed here; allowed: "+strings.Join(allow, ", "))
		return
	}
	writeProblem(w, http.StatusNotFound, openconsole.ENOTFOUND, "Not found", "no such resource")
}

// authenticate finds the request's principal: one its listener set, an API token in
// Authorization: Bearer, or one of the extra authenticators. No credentials at all is 401.
func (s *Server) authenticate(r *http.Request) (openconsole.Principal, error) {
	if p, ok := r.Context().Value(principalKey{}).(openconsole.Principal); ok {
		return p, nil
	}
	addr := s.clientAddr(r)
	if h, ok := r.Header["Authorization"]; ok {
		token, err := openconsole.BearerToken(strings.Join(h, ","), true)
		if err != nil {
			return openconsole.Principal{}, openconsole.Errorf(openconsole.EUNAUTHORIZED, "Authorization must be Bearer and an API token")
		}
		p, err := s.svc.AuthenticateAPIToken(r.Context(), token)
		p.Actor.Addr = addr
		return p, err
	}
	for _, a := range s.authenticators {
		p, ok, err := a(r)
		if err != nil {
			return openconsole.Principal{}, err
		}
		if ok {
			p.Actor.Addr = addr
			return p, nil
		}
	}
	return openconsole.Principal{}, openconsole.Errorf(openconsole.EUNAUTHORIZED, "authentication required: send Authorization: Bearer and an API token")
}

// clientAddr is the address the record names for a request.
func (s *Server) clientAddr(r *http.Request) string { return clientAddr(r, s.clientIPHeader) }

// clientAddr is the address of a request's client: the last value of header when set (behind a
// proxy that sets it), else the peer's address.
func clientAddr(r *http.Request, header string) string {
	if header != "" {
		if vs := r.Header.Values(header); len(vs) > 0 {
			last := vs[len(vs)-1]
			if i := strings.LastIndexByte(last, ','); i >= 0 {
				last = last[i+1:]
			}
			if a := strings.TrimSpace(last); a != "" {
				return a
			}
		}
	}
	host, _, err := net.SplitHostPort(r.RemoteAddr)
	if err != nil {
		return r.RemoteAddr
	}
	return host
}

// problems maps domain error codes to the operator API's statuses and titles: the one table.
var problems = map[string]struct {
	status int
	title  string
}{
	openconsole.EINVALID:       {http.StatusBadRequest, "Bad request"},
	openconsole.EUNPROCESSABLE: {http.StatusUnprocessableEntity, "Unprocessable request"},
	openconsole.ECONFLICT:      {http.StatusConflict, "Conflict"},
	openconsole.ENOTFOUND:      {http.StatusNotFound, "Not found"},
	openconsole.EUNAUTHORIZED:  {http.StatusUnauthorized, "Unauthorized"},
	openconsole.EFORBIDDEN:     {http.StatusForbidden, "Forbidden"},
	openconsole.EPRECONDITION:  {http.StatusPreconditionFailed, "Precondition failed"},
	openconsole.ETOOLARGE:      {http.StatusRequestEntityTooLarge, "Request too large"},
	openconsole.ETHROTTLED:     {http.StatusTooManyRequests, "Too many requests"},
	openconsole.EUNAVAILABLE:   {http.StatusServiceUnavailable, "Service unavailable"},
}

// ProblemType is the type URI of a problem with a code.
func ProblemType(code string) string { return "urn:openconsole:problem:" + code }

// problemJSON is an RFC 9457 problem details object, with a stable code.
type problemJSON struct {
	Type   string `json:"type"`
	Title  string `json:"title"`
	Status int    `json:"status"`
	Detail string `json:"detail,omitempty"`
	Code   string `json:"code"`
}

func writeProblem(w http.ResponseWriter, status int, code, title, detail string) {
	b, _ := json.Marshal(problemJSON{Type: ProblemType(code), Title: title, Status: status, Detail: detail, Code: code})
	h := w.Header()
	h.Set("Content-Type", "application/problem+json")
	h.Set("Content-Length", strconv.Itoa(len(b)))
	w.WriteHeader(status)
	w.Write(b)
}

// fail answers err as problem details. Domain errors carry their own detail; anything else is
// logged and answered 500 without detail.
func (s *Server) fail(w http.ResponseWriter, r *http.Request, err error) {
	var replay *openconsole.Replayed
	if errors.As(err, &replay) {
		replayHeaders(w, r, replay)
		writeRaw(w, replay.Status, replay.Body)
		return
	}
	code := openconsole.ErrorCode(err)
	if p, ok := problems[code]; ok {
		var te *openconsole.ThrottledError
		if errors.As(err, &te) {
			w.Header().Set("Retry-After", strconv.Itoa(int(te.RetryAfter.Seconds()+0.999)))
		} else if p.status == http.StatusServiceUnavailable {
			w.Header().Set("Retry-After", "1")
		}
		writeProblem(w, p.status, code, p.title, openconsole.ErrorMessage(err))
		return
	}
	s.failures.record(r, err)
	writeProblem(w, http.StatusInternalServerError, openconsole.EINTERNAL, "Internal server error", "")
}

// replayHeaders sets on a replayed answer the headers the first answer had besides its body: the
// ETag of the resource's version, and for a creation its Location.
func replayHeaders(w http.ResponseWriter, r *http.Request, replay *openconsole.Replayed) {
	h := w.Header()
	h.Set("Idempotent-Replayed", "true")
	var res struct {
		Version  *int64
		Key      string
		Username string
	}
	if json.Unmarshal(replay.Body, &res) != nil {
		return
	}
	if res.Version != nil {
		h.Set("ETag", etag(*res.Version))
	}
	if replay.Status != http.StatusCreated {
		return
	}
	switch {
	case r.URL.Path == Prefix+"/licenses" && res.Key != "":
		h.Set("Location", Prefix+"/licenses/"+urlSegment(res.Key))
	case r.URL.Path == Prefix+"/users" && res.Username != "":
		h.Set("Location", Prefix+"/users/"+urlSegment(res.Username))
	}
}

// writeJSON answers v as JSON.
func writeJSON(w http.ResponseWriter, status int, v any) error {
	b, err := json.Marshal(v)
	if err != nil {
		return err
	}
	writeRaw(w, status, b)
	return nil
}

func writeRaw(w http.ResponseWriter, status int, b []byte) {
	h := w.Header()
	h.Set("Content-Type", "application/json")
	h.Set("Content-Length", strconv.Itoa(len(b)))
	w.WriteHeader(status)
	w.Write(b)
}

// maxBody bounds request bodies; a product import may be large.
const maxBody = 16 << 20

// readBody reads the request body (at most maxBody).
func readBody(w http.ResponseWriter, r *http.Request) ([]byte, error) {
	b, err := io.ReadAll(http.MaxBytesReader(w, r.Body, maxBody))
	var mbe *http.MaxBytesError
	if errors.As(err, &mbe) {
		return nil, openconsole.Errorf(openconsole.ETOOLARGE, "request body too large (limit %d bytes)", maxBody)
	} else if err != nil {
		return nil, openconsole.Errorf(openconsole.EINVALID, "could not read the request body")
	}
	return b, nil
}

// decodeJSON parses a JSON object body into v, strictly: unknown fields are refused, so that a
// misspelt field is an error and not a silent no-op.
func decodeJSON(body []byte, v any) error {
	dec := json.NewDecoder(bytes.NewReader(body))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		var te *json.UnmarshalTypeError
		switch {
		case errors.Is(err, io.EOF):
			return openconsole.Errorf(openconsole.EINVALID, "the request body must be a JSON object")
		case errors.As(err, &te) && te.Field != "":
			return openconsole.Errorf(openconsole.EINVALID, "field %s has the wrong type", te.Field)
		case strings.HasPrefix(err.Error(), "json: unknown field"):
			return openconsole.Errorf(openconsole.EINVALID, "%s", strings.TrimPrefix(err.Error(), "json: "))
		}
		return openconsole.Errorf(openconsole.EINVALID, "the request body is not valid JSON: %v", err)
	}
	if dec.More() {
		return openconsole.Errorf(openconsole.EINVALID, "the request body must hold one JSON object")
	}
	return nil
}

// etag is a resource version as an entity tag.
func etag(version int64) string { return `"` + strconv.FormatInt(version, 10) + `"` }

// ifMatch returns the version an If-Match header names: 0 when there is none or it is "*". A weak
// tag or one that is not ours never matches (-1).
func ifMatch(r *http.Request) int64 {
	v := strings.TrimSpace(r.Header.Get("If-Match"))
	if v == "" || v == "*" {
		return 0
	}
	for _, tag := range strings.Split(v, ",") {
		tag = strings.TrimSpace(tag)
		if strings.HasPrefix(tag, `"`) && strings.HasSuffix(tag, `"`) && len(tag) > 2 {
			if n, err := strconv.ParseInt(tag[1:len(tag)-1], 10, 64); err == nil && n > 0 {
				return n
			}
		}
	}
	return -1
}

// idempotent returns ctx asking the change to be idempotent when the request has an
// Idempotency-Key, with render giving the answer to keep for replays. The request's identity
// excludes secret fields of the body (secretFields), so that no hash of a password is kept.
func idempotent(r *http.Request, p openconsole.Principal, body []byte, render func(any) (int, []byte, error),
	secretFields ...string) (context.Context, error) {
	key := r.Header.Get("Idempotency-Key")
	if key == "" {
		return r.Context(), nil
	}
	if len(key) > 255 || strings.ContainsFunc(key, func(c rune) bool { return c < 0x21 || c > 0x7e }) {
		return nil, openconsole.Errorf(openconsole.EINVALID, "Idempotency-Key must be 1 to 255 visible ASCII characters")
	}
	h := sha256.New()
	io.WriteString(h, r.Method+" "+r.URL.EscapedPath()+"?"+r.URL.RawQuery+"\n")
	h.Write(withoutFields(body, secretFields))
	return openconsole.WithIdempotency(r.Context(), openconsole.Idempotency{Scope: p.Scope, Key: key,
		Hash: hex.EncodeToString(h.Sum(nil)), Render: render}), nil
}

// withoutFields returns a JSON object body without the named top-level fields, re-encoded
// canonically (sorted keys); other bodies as they are.
func withoutFields(body []byte, fields []string) []byte {
	var obj map[string]json.RawMessage
	if json.Unmarshal(body, &obj) != nil || obj == nil {
		return body
	}
	for _, f := range fields {
		delete(obj, f)
	}
	b, err := json.Marshal(obj)
	if err != nil {
		return body
	}
	return b
}

// renderer keeps, for a replay, the answer status and what to marshal of the result.
func renderer[T any](status int, view func(T) any) func(any) (int, []byte, error) {
	return func(v any) (int, []byte, error) {
		t, _ := v.(T)
		b, err := json.Marshal(view(t))
		return status, b, err
	}
}

// failureLog logs internal failures, at most one line per second per kind with a count.
type failureLog struct {
	log *slog.Logger
	lim *openconsole.LogLimiter
}

func newFailureLog(log *slog.Logger) *failureLog {
	return &failureLog{log: log, lim: openconsole.NewLogLimiter(log)}
}

func (f *failureLog) record(r *http.Request, err error) {
	f.lim.Error("operator API request failed", err, "method", r.Method, "path", r.URL.Path)
}
