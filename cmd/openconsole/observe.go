package main

import (
	"bufio"
	crand "crypto/rand"
	"encoding/hex"
	"errors"
	"log/slog"
	"math/rand/v2"
	"net"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"openconsole/metrics"
)

// observer is the outermost handler of every listener: it gives each request an id (taken from
// X-Request-Id when a trusted proxy sent one, else generated) and echoes it, counts the request in
// the metrics by route pattern and status, and writes one access-log line at info level. The line
// names the route pattern, never the path, so no license key, session id or token in a path or
// header reaches the log.
type observer struct {
	next    http.Handler
	log     *slog.Logger
	metrics *metrics.Metrics // nil: metrics off
	// trustProxy: the server runs behind a proxy (--client-ip-header), whose X-Request-Id is kept
	// and whose client-address header names the client.
	trustProxy     bool
	clientIPHeader string

	prefix string // random per process, so ids of two servers do not collide
	pool   sync.Pool
	shards atomic.Uint32 // hands each new recorder its metrics shard
}

func newObserver(next http.Handler, log *slog.Logger, m *metrics.Metrics, clientIPHeader string) *observer {
	var b [4]byte
	crand.Read(b[:])
	o := &observer{next: next, log: log, metrics: m, trustProxy: clientIPHeader != "",
		clientIPHeader: http.CanonicalHeaderKey(clientIPHeader), prefix: hex.EncodeToString(b[:])}
	// sync.Pool keeps recorders with the core that last used them, so the recorders of one core
	// mostly carry the same few shards and the cores seldom add to the same counters.
	o.pool.New = func() any { return &statusRecorder{shard: o.shards.Add(1)} }
	return o
}

// requestIDHeader is X-Request-Id in canonical form.
const requestIDHeader = "X-Request-Id"

func (o *observer) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	start := time.Now()
	id := ""
	if o.trustProxy {
		if v := r.Header.Get(requestIDHeader); validRequestID(v) {
			id = v
		}
	}
	if id == "" {
		id = o.newID()
	}
	w.Header()[requestIDHeader] = []string{id}
	rec := o.pool.Get().(*statusRecorder)
	rec.ResponseWriter, rec.status, rec.route, rec.written = w, 0, "", false
	defer func() {
		// Also after a panic (http.ErrAbortHandler): the request was answered, or cut off, either way.
		d := time.Since(start)
		status, route := rec.status, rec.route
		if status == 0 {
			status = http.StatusOK
		}
		if route == "" && r.Pattern != "" {
			_, route, _ = strings.Cut(r.Pattern, " ") // ServeMux's "METHOD /path"
		}
		if o.metrics != nil {
			o.metrics.Route(route).Observe(rec.shard, status, d)
		}
		if o.log.Enabled(r.Context(), slog.LevelInfo) {
			o.access(r, id, route, status, d)
		}
		rec.ResponseWriter = nil
		o.pool.Put(rec)
	}()
	o.next.ServeHTTP(rec, r)
}

// access writes the access-log line of a request.
func (o *observer) access(r *http.Request, id, route string, status int, d time.Duration) {
	if route == "" {
		route = "unmatched"
	}
	o.log.LogAttrs(r.Context(), slog.LevelInfo, "request",
		slog.String("method", r.Method), slog.String("route", route), slog.Int("status", status),
		slog.Duration("duration", d), slog.String("client", o.clientAddr(r)), slog.String("request_id", id))
}

// clientAddr is the client's address: the last value of the proxy's header when trusted, else the
// connection's peer.
func (o *observer) clientAddr(r *http.Request) string {
	if o.clientIPHeader != "" {
		if vs := r.Header.Values(o.clientIPHeader); len(vs) > 0 {
			last := vs[len(vs)-1]
			if i := strings.LastIndexByte(last, ','); i >= 0 {
				last = last[i+1:]
			}
			if a := strings.TrimSpace(last); a != "" && len(a) <= 64 {
				return a
			}
		}
	}
	if host, _, err := net.SplitHostPort(r.RemoteAddr); err == nil {
		return host
	}
	return r.RemoteAddr
}

// newID returns a request id: this process's prefix and 64 random bits in hex. The bits come
// from the runtime's per-core generator (math/rand/v2), so that requests on different cores share
// no counter; ids need to be unique, not secret.
func (o *observer) newID() string {
	var b [32]byte
	buf := append(b[:0], o.prefix...)
	buf = append(buf, '-')
	buf = strconv.AppendUint(buf, rand.Uint64(), 16) // a power of two: shifts, not divisions
	return string(buf)
}

// validRequestID reports whether a proxy's request id may be kept: 1 to 128 characters of letters,
// digits and -_.:/+= (UUIDs, trace ids, base64), nothing a log line would need to escape.
func validRequestID(v string) bool {
	if v == "" || len(v) > 128 {
		return false
	}
	for i := 0; i < len(v); i++ {
		c := v[i]
		if !('a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' || strings.IndexByte("-_.:/+=", c) >= 0) {
			return false
		}
	}
	return true
}

// statusRecorder is the ResponseWriter the handlers see: it keeps the status and the route the console
// API reports (api.RouteRecorder). Pooled: a request allocates none.
type statusRecorder struct {
	http.ResponseWriter
	status  int
	route   string
	written bool
	shard   uint32 // the metrics shard its requests count in
}

func (r *statusRecorder) SetRoute(pattern string) { r.route = pattern }

func (r *statusRecorder) WriteHeader(code int) {
	if !r.written {
		r.status, r.written = code, code >= 200 // 1xx answers are not the final status
	}
	r.ResponseWriter.WriteHeader(code)
}

func (r *statusRecorder) Write(b []byte) (int, error) {
	if !r.written {
		r.status, r.written = http.StatusOK, true
	}
	return r.ResponseWriter.Write(b)
}

// Unwrap lets http.ResponseController reach the connection's writer (deadlines, flushing).
func (r *statusRecorder) Unwrap() http.ResponseWriter { return r.ResponseWriter }

// Flush implements http.Flusher for handlers that stream.
func (r *statusRecorder) Flush() {
	if !r.written {
		r.status, r.written = http.StatusOK, true
	}
	http.NewResponseController(r.ResponseWriter).Flush()
}

// Hijack implements http.Hijacker when the connection's writer does.
func (r *statusRecorder) Hijack() (net.Conn, *bufio.ReadWriter, error) {
	h, ok := r.ResponseWriter.(http.Hijacker)
	if !ok {
		return nil, nil, errors.New("hijack not supported")
	}
	return h.Hijack()
}

// setRoute tells the observer the route of a request served outside the routers (health, metrics).
func setRoute(w http.ResponseWriter, pattern string) {
	if rr, ok := w.(interface{ SetRoute(string) }); ok {
		rr.SetRoute(pattern)
	}
}
