package main

import (
	"context"
	"errors"
	"log/slog"
	"net/http"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"openconsole"
	"openconsole/sqlstore"
)

// health answers the health checks of a load balancer or an orchestrator, without authentication
// and without naming anything but a fixed reason:
//
//   - GET /healthz: 200 while the process serves, 503 once it is shutting down.
//   - GET /readyz: 200 when the database answers within the deadline and its schema is the one
//     this build knows; 503 with the reason otherwise, and during shutdown.
//
// A readiness answer is reused for a second, so that a flood of checks costs the database at most
// one query a second.
type health struct {
	ready    func(context.Context) error // sqlstore.Store.Ready
	deadline time.Duration
	logs     *openconsole.LogLimiter

	stopping atomic.Bool

	mu      sync.Mutex
	checked time.Time
	reason  string // "" when ready
}

func newHealth(ready func(context.Context) error, deadline time.Duration, log *slog.Logger) *health {
	return &health{ready: ready, deadline: deadline, logs: openconsole.NewLogLimiter(log)}
}

// shutdown makes both checks answer 503 from now on.
func (h *health) shutdown() { h.stopping.Store(true) }

var (
	healthOK       = []byte(`{"status":"ok"}` + "\n")
	healthReady    = []byte(`{"status":"ready"}` + "\n")
	healthStopping = []byte(`{"status":"unavailable","reason":"shutting down"}` + "\n")
)

func (h *health) healthz(w http.ResponseWriter, r *http.Request) {
	setRoute(w, "/healthz")
	if !healthMethod(w, r) {
		return
	}
	if h.stopping.Load() {
		writeHealth(w, http.StatusServiceUnavailable, healthStopping)
		return
	}
	writeHealth(w, http.StatusOK, healthOK)
}

func (h *health) readyz(w http.ResponseWriter, r *http.Request) {
	setRoute(w, "/readyz")
	if !healthMethod(w, r) {
		return
	}
	if h.stopping.Load() {
		writeHealth(w, http.StatusServiceUnavailable, healthStopping)
		return
	}
	if reason := h.check(r.Context()); reason != "" {
		writeHealth(w, http.StatusServiceUnavailable, []byte(`{"status":"unavailable","reason":`+strconv.Quote(reason)+"}\n"))
		return
	}
	writeHealth(w, http.StatusOK, healthReady)
}

// check returns why the server is not ready, or "".
func (h *health) check(ctx context.Context) string {
	h.mu.Lock()
	defer h.mu.Unlock()
	if !h.checked.IsZero() && time.Since(h.checked) < time.Second {
		return h.reason
	}
	ctx, cancel := context.WithTimeout(ctx, h.deadline)
	defer cancel()
	err := h.ready(ctx)
	h.checked, h.reason = time.Now(), ""
	switch {
	case err == nil:
	case errors.Is(err, sqlstore.ErrSchemaNotCurrent):
		h.reason = "database schema not current"
	default:
		h.reason = "database unreachable"
	}
	if err != nil {
		h.logs.Warn("readiness check failed", err)
	}
	return h.reason
}

func healthMethod(w http.ResponseWriter, r *http.Request) bool {
	if r.Method == http.MethodGet || r.Method == http.MethodHead {
		return true
	}
	w.Header().Set("Allow", "GET, HEAD")
	writeHealth(w, http.StatusMethodNotAllowed, []byte(`{"status":"error","reason":"method not allowed"}`+"\n"))
	return false
}

func writeHealth(w http.ResponseWriter, status int, body []byte) {
	h := w.Header()
	h.Set("Content-Type", "application/json")
	h.Set("Cache-Control", "no-store")
	h.Set("Content-Length", strconv.Itoa(len(body)))
	w.WriteHeader(status)
	w.Write(body)
}
