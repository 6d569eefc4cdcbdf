package api

import (
	"net"
	"net/http"
	"strings"
)

// Option configures a Server.
type Option func(*Server)

// WithClientIPHeader makes the server take the client address from the last value of the named
// header (such as X-Forwarded-For, as appended by the load balancer in front of it) rather than
// from the connection. Use it only behind a proxy that sets the header: a client could forge it.
func WithClientIPHeader(name string) Option {
	return func(s *Server) { s.clientIPHeader = http.CanonicalHeaderKey(name) }
}

// WithMaxInFlight bounds the requests served at once. Past the bound a request is answered 503 in
// the error envelope with Retry-After at once, rather than queueing until everything times out.
// 0 means no bound.
func WithMaxInFlight(n int) Option {
	return func(s *Server) {
		if n > 0 {
			s.inFlight = make(chan struct{}, n)
		}
	}
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

// admit takes an in-flight slot; it reports false (after answering 503) when none is free.
func (s *Server) admit(w http.ResponseWriter) bool {
	if s.inFlight == nil {
		return true
	}
	select {
	case s.inFlight <- struct{}{}:
		return true
	default:
		s.overloaded.Add(1)
		w.Header().Set("Retry-After", "1")
		writeError(w, http.StatusServiceUnavailable, "Server overloaded; try again shortly")
		return false
	}
}

func (s *Server) release() {
	if s.inFlight != nil {
		<-s.inFlight
	}
}
