// Package api serves the FLECS Console wire API (see the wire contract): routing with slash
// normalisation, the {statusCode,statusText,data} and {reason,statusCode,statusText} envelopes,
// the X-Session-Id header rules and CORS for browser clients.
package api

import (
	"log/slog"
	"net/http"
	"net/url"
	"runtime/debug"
	"sort"
	"strings"
	"sync/atomic"

	"openconsole"
)

// MaxBodyBytes bounds every request body. The largest body a FLECS client sends is well under 1 KiB.
const MaxBodyBytes = 64 << 10

// Server is an http.Handler for the console API.
type Server struct {
	svc      *openconsole.Service
	log      *slog.Logger
	static   map[string]map[string]handlerFunc // path -> method -> handler
	patterns []*pattern                        // paths with {param} segments, tried after static

	defaultStore *int64 // see WithDefaultStore

	clientIPHeader string // see WithClientIPHeader
	// The in-flight bounds, one per class of route (see WithMaxInFlight, WithMaxInFlightWeb): the
	// device routes and the rest never take each other's slots.
	inFlight    slots
	inFlightWeb slots
	overloaded  atomic.Uint64 // requests refused for want of an in-flight slot

	catalogue catalogueCache // precomputed catalogue answers

	failures *openconsole.LogLimiter // internal failures, one line per route and interval
}

// deviceRoutes are the routes FLECS devices call. They have their own in-flight slots, so that no
// browser, user or slow reader of the catalogue can make a device's validate wait.
var deviceRoutes = map[string]bool{
	"/api/v2/device/license/activate":   true,
	"/api/v2/device/license/validate":   true,
	"/api/v2/manifests/{app}/{version}": true,
	"/api/v2/tokens":                    true,
}

// RouteRecorder is implemented by a ResponseWriter that wants to know the route that serves a
// request (for metrics and access logs): ServeHTTP calls SetRoute with the route's path pattern,
// one of Routes, before the handler runs. Requests no route claims (404) are not reported.
type RouteRecorder interface {
	SetRoute(pattern string)
}

// Routes returns the path patterns the server routes, such as "/api/v2/device/license/validate"
// and "/api/v2/manifests/{app}/{version}".
func (s *Server) Routes() []string {
	out := make([]string, 0, len(s.static)+len(s.patterns))
	for p := range s.static {
		out = append(out, p)
	}
	for _, p := range s.patterns {
		out = append(out, p.path)
	}
	sort.Strings(out)
	return out
}

// Overloaded returns how many requests were refused with 503 because every in-flight slot was
// taken (WithMaxInFlight).
func (s *Server) Overloaded() uint64 { return s.overloaded.Load() }

type handlerFunc func(w http.ResponseWriter, r *http.Request)

// New returns the console API on svc. A nil logger means slog.Default().
func New(svc *openconsole.Service, log *slog.Logger, opts ...Option) *Server {
	if log == nil {
		log = slog.Default()
	}
	s := &Server{svc: svc, log: log, static: make(map[string]map[string]handlerFunc), failures: openconsole.NewLogLimiter(log)}
	for _, o := range opts {
		o(s)
	}
	s.handle("POST", "/api/v2/auth/login", s.login)
	s.handle("POST", "/api/v2/auth/validate", s.authValidate)
	s.handle("POST", "/api/v2/device/license/activate", s.activate)
	s.handle("POST", "/api/v2/device/license/validate", s.validate)
	s.handle("POST", "/api/v2/device/license", s.registerSerial)
	s.handleApps()
	return s
}

// handle routes method and path to h. A path segment {name} matches any one segment, which the
// handler reads, percent-decoded, with r.PathValue(name).
func (s *Server) handle(method, path string, h handlerFunc) {
	if strings.Contains(path, "{") {
		for _, p := range s.patterns {
			if p.path == path {
				p.methods[method] = h
				return
			}
		}
		s.patterns = append(s.patterns, &pattern{path: path, segs: strings.Split(path[1:], "/"),
			methods: map[string]handlerFunc{method: h}})
		return
	}
	if s.static[path] == nil {
		s.static[path] = make(map[string]handlerFunc)
	}
	s.static[path][method] = h
}

// ServeHTTP implements http.Handler.
func (s *Server) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	h := w.Header()
	if origin := r.Header.Get("Origin"); origin != "" {
		// Browser clients (the FLECS web app) call the console cross-origin from the device's own
		// origin; no cookies are used, so echoing the origin is safe. Set first, so that every
		// answer carries it, the overload 503 included.
		h.Set("Access-Control-Allow-Origin", origin)
		h.Set("Access-Control-Expose-Headers", "X-Session-Id")
		h.Add("Vary", "Origin")
	}
	if r.Method == http.MethodOptions {
		h.Set("Access-Control-Allow-Methods", "GET, POST, OPTIONS")
		h.Set("Access-Control-Allow-Headers", "Content-Type, Authorization, X-Session-Id")
		h.Set("Access-Control-Max-Age", "600")
		w.WriteHeader(http.StatusNoContent)
		return
	}

	path := cleanPath(r.URL.EscapedPath())
	route := path
	methods, ok := s.static[path]
	if !ok {
		methods, route, ok = s.match(r, path)
	}
	slots := &s.inFlightWeb
	if ok && deviceRoutes[route] {
		slots = &s.inFlight
	}
	if !slots.admit(w) {
		s.overloaded.Add(1)
		return
	}
	defer slots.release()
	defer func() {
		if v := recover(); v != nil {
			if v == http.ErrAbortHandler {
				panic(v)
			}
			s.log.Error("panic serving request", "method", r.Method, "path", r.URL.Path, "panic", v, "stack", string(debug.Stack()))
			writeError(w, http.StatusInternalServerError, "Internal server error")
		}
	}()

	if !ok {
		writeError(w, http.StatusNotFound, "Not found: "+truncate(path, 200))
		return
	}
	if rr, ok := w.(RouteRecorder); ok {
		rr.SetRoute(route)
	}
	handler, ok := methods[r.Method]
	if !ok && r.Method == http.MethodHead {
		handler, ok = methods[http.MethodGet]
	}
	if !ok {
		allow := make([]string, 0, len(methods)+1)
		for _, m := range []string{"GET", "POST", "PUT", "PATCH", "DELETE"} {
			if methods[m] != nil {
				allow = append(allow, m)
			}
		}
		h.Set("Allow", strings.Join(append(allow, "OPTIONS"), ", "))
		writeError(w, http.StatusMethodNotAllowed, "Method "+truncate(r.Method, 20)+" not allowed on "+path)
		return
	}
	r.Pattern = route // names the route, not the path, in failure logs
	handler(w, r)
}

// pattern is a route with {param} segments.
type pattern struct {
	path    string
	segs    []string // literal segments, and {name} for a parameter
	methods map[string]handlerFunc
}

// match finds the pattern route of a cleaned path, returns its methods and pattern, and sets the request's path values from it. A
// parameter is percent-decoded with '+' kept literal (wire contract §1.1): RS sends + as %2B, CPP
// sends it raw, and both mean +.
func (s *Server) match(r *http.Request, path string) (map[string]handlerFunc, string, bool) {
	segs := strings.Split(strings.TrimPrefix(path, "/"), "/")
next:
	for _, p := range s.patterns {
		if len(p.segs) != len(segs) {
			continue
		}
		for i, ps := range p.segs {
			if !strings.HasPrefix(ps, "{") && ps != segs[i] {
				continue next
			}
		}
		for i, ps := range p.segs {
			if strings.HasPrefix(ps, "{") {
				v, err := url.PathUnescape(segs[i])
				if err != nil {
					continue next
				}
				r.SetPathValue(ps[1:len(ps)-1], v)
			}
		}
		return p.methods, p.path, true
	}
	return nil, "", false
}

// cleanPath normalises an escaped request path for routing, without any redirect: runs of '/'
// collapse and a trailing '/' is dropped (FLECS Core sends //api/v2/..., wire contract §1.1), and
// a percent-encoded unreserved character is decoded, since %61 and a are the same path (RFC 3986
// §6.2.2.2). Every other escape stays encoded, upper-cased: an encoded '/' is part of a segment,
// never a separator.
func cleanPath(p string) string {
	if !strings.Contains(p, "//") && !strings.Contains(p, "%") && (len(p) <= 1 || p[len(p)-1] != '/') {
		return p
	}
	var b strings.Builder
	b.Grow(len(p))
	for i := 0; i < len(p); i++ {
		c := p[i]
		switch {
		case c == '/' && i > 0 && p[i-1] == '/':
			continue
		case c == '%' && i+2 < len(p) && isHex(p[i+1]) && isHex(p[i+2]):
			d := unhex(p[i+1])<<4 | unhex(p[i+2])
			if isUnreserved(d) {
				b.WriteByte(d)
			} else {
				b.WriteByte('%')
				b.WriteByte(upperHex(p[i+1]))
				b.WriteByte(upperHex(p[i+2]))
			}
			i += 2
			continue
		}
		b.WriteByte(c)
	}
	out := b.String()
	if len(out) > 1 && out[len(out)-1] == '/' {
		out = out[:len(out)-1]
	}
	return out
}

func isHex(c byte) bool {
	return '0' <= c && c <= '9' || 'a' <= c && c <= 'f' || 'A' <= c && c <= 'F'
}

func unhex(c byte) byte {
	switch {
	case c <= '9':
		return c - '0'
	case c <= 'F':
		return c - 'A' + 10
	default:
		return c - 'a' + 10
	}
}

func upperHex(c byte) byte {
	if 'a' <= c && c <= 'f' {
		return c - 'a' + 'A'
	}
	return c
}

// isUnreserved reports whether c is an unreserved character of RFC 3986: ALPHA, DIGIT, -._~
func isUnreserved(c byte) bool {
	return 'a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' ||
		c == '-' || c == '.' || c == '_' || c == '~'
}

func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n] + "…"
}
