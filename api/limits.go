package api

import (
	"net"
	"net/http"
	"strings"
	"sync/atomic"
	"time"
)

// Option configures a Server.
type Option func(*Server)

// WithClientIPHeader makes the server take the client address from the last value of the named
// header (such as X-Forwarded-For, as appended by the load balancer in front of it) rather than
// from the connection. Use it only behind a proxy that sets the header: a client could forge it.
func WithClientIPHeader(name string) Option {
	return func(s *Server) { s.clientIPHeader = http.CanonicalHeaderKey(name) }
}

// WithMaxInFlight bounds the requests to the device routes (activate, validate, manifests, tokens)
// served at once. Past the bound a request is answered 503 in the error envelope with Retry-After
// at once, rather than queueing until everything times out. 0 means no bound.
func WithMaxInFlight(n int) Option {
	return func(s *Server) { s.inFlight = newSlots(n) }
}

// WithMaxInFlightWeb bounds, in the same way, the requests to every other route (login, the
// catalogue, reviews, the user routes, serial registration, unknown paths). The two bounds are
// separate: slow readers of the catalogue take none of the device routes' slots. 0 means no bound.
func WithMaxInFlightWeb(n int) Option {
	return func(s *Server) { s.inFlightWeb = newSlots(n) }
}

// WithCatalogueMaxAge sets how long a catalogue answer is served before it is rebuilt, when this
// server did not change the catalogue meanwhile (default one second). Tests use it to keep one
// build for a whole test.
func WithCatalogueMaxAge(d time.Duration) Option {
	return func(s *Server) { s.catalogue.maxAge = d }
}

// slots bound the requests of one class of routes served at once; the zero value is unbounded.
// The count is one atomic value that every request adds to and takes from again: the cheapest
// operation on state the cores share (a channel would lock and unlock its mutex twice).
type slots struct {
	max int64 // 0: unbounded
	n   *atomic.Int64
}

func newSlots(n int) slots {
	if n <= 0 {
		return slots{}
	}
	return slots{max: int64(n), n: new(atomic.Int64)}
}

// clientAddr is the address the abuse limits count a request against.
func (s *Server) clientAddr(r *http.Request) string {
	if s.clientIPHeader != "" {
		if vs := r.Header.Values(s.clientIPHeader); len(vs) > 0 {
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

// admit takes a slot; it reports false (after answering 503) when none is free.
func (sl *slots) admit(w http.ResponseWriter) bool {
	if sl.n == nil {
		return true
	}
	if sl.n.Add(1) <= sl.max {
		return true
	}
	sl.n.Add(-1)
	w.Header().Set("Retry-After", "1")
	writeError(w, http.StatusServiceUnavailable, "Server overloaded; try again shortly")
	return false
}

func (sl *slots) release() {
	if sl.n != nil {
		sl.n.Add(-1)
	}
}
