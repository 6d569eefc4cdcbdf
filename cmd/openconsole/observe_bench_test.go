package main

import (
	"context"
	"io"
	"log/slog"
	"net/http"
	"testing"
	"time"

	"openconsole"
	"openconsole/api"
	"openconsole/metrics"
	"openconsole/sqlstore/sqlstoretest"
)

// discardWriter is a ResponseWriter that keeps nothing but reuses its header map, like net/http's
// own response does between requests on a connection.
type discardWriter struct {
	h      http.Header
	status int
}

func (w *discardWriter) Header() http.Header         { return w.h }
func (w *discardWriter) Write(b []byte) (int, error) { return len(b), nil }
func (w *discardWriter) WriteHeader(code int)        { w.status = code }

// BenchmarkValidateObserved is the validate hot path through the console API alone, then through
// the handler stack serve builds (request id, access log off by level, route and status recorded)
// with metrics off and on, from one goroutine and from every core at once. metrics-on must allocate
// no more than metrics-off: the metrics add three atomic adds on the request's shard (the
// status-class counter, the latency bucket and sum), no lookup or allocation.
func BenchmarkValidateObserved(b *testing.B) {
	ctx := context.Background()
	st := sqlstoretest.Open(b, "sqlite")
	svc, err := openconsole.NewService(ctx, st, openconsole.Options{})
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { svc.Close() })
	quiet := slog.New(slog.NewTextHandler(io.Discard, &slog.HandlerOptions{Level: slog.LevelWarn}))
	console := api.New(svc, quiet)
	lic, err := svc.CreateLicense(ctx, openconsole.LicenseInput{Seats: 1})
	if err != nil {
		b.Fatal(err)
	}
	act, err := svc.Activate(ctx, openconsole.ActivateInput{LicenseKey: lic.Key})
	if err != nil {
		b.Fatal(err)
	}
	m := metrics.New(metrics.Sources{Service: svc, Overloaded: console.Overloaded, Store: st}, quiet)
	m.Prepare(console.Routes()...)
	hc := newHealth(st.Ready, time.Second, quiet)
	for _, bc := range []struct {
		name string
		h    http.Handler
	}{
		{"api", console},
		{"observed-metrics-off", newObserver(mainHandler(console, nil, nil, &opsHandlers{health: hc}), quiet, nil, "")},
		{"observed-metrics-on", newObserver(mainHandler(console, nil, nil, &opsHandlers{health: hc, metrics: m}), quiet, m, "")},
	} {
		b.Run(bc.name, func(b *testing.B) {
			req, _ := http.NewRequest("POST", "/api/v2/device/license/validate", http.NoBody)
			req.Header.Set("X-Session-Id", act.Session.ID)
			w := &discardWriter{h: http.Header{}}
			b.ReportAllocs()
			for b.Loop() {
				clear(w.h)
				bc.h.ServeHTTP(w, req)
				if w.status != http.StatusOK || w.h.Get("X-Session-Id") == "" {
					b.Fatalf("status %d, session header %q", w.status, w.h.Get("X-Session-Id"))
				}
			}
		})
		// The same from every core at once: the counters the cores share are where metrics could cost
		// more than they do alone.
		b.Run(bc.name+"-parallel", func(b *testing.B) {
			b.ReportAllocs()
			b.RunParallel(func(pb *testing.PB) {
				req, _ := http.NewRequest("POST", "/api/v2/device/license/validate", http.NoBody)
				req.Header.Set("X-Session-Id", act.Session.ID)
				w := &discardWriter{h: http.Header{}}
				for pb.Next() {
					clear(w.h)
					bc.h.ServeHTTP(w, req)
					if w.status != http.StatusOK {
						b.Errorf("status %d", w.status)
						return
					}
				}
			})
		})
	}
	mfs, err := m.Registry().Gather()
	if err != nil {
		b.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() == "openconsole_validates_total" {
			return
		}
	}
	b.Errorf("no openconsole_validates_total gathered")
}

// TestMetricsAddNoAllocations is the benchmark's claim as a test: observing validate with metrics
// on allocates exactly as much as with metrics off.
func TestMetricsAddNoAllocations(t *testing.T) {
	if testing.Short() {
		t.Skip("measures allocations")
	}
	ctx := context.Background()
	st := sqlstoretest.Open(t, "sqlite")
	svc, err := openconsole.NewService(ctx, st, openconsole.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer svc.Close()
	quiet := slog.New(slog.NewTextHandler(io.Discard, &slog.HandlerOptions{Level: slog.LevelWarn}))
	console := api.New(svc, quiet)
	lic, _ := svc.CreateLicense(ctx, openconsole.LicenseInput{Seats: 1})
	act, err := svc.Activate(ctx, openconsole.ActivateInput{LicenseKey: lic.Key})
	if err != nil {
		t.Fatal(err)
	}
	m := metrics.New(metrics.Sources{Service: svc, Store: st}, quiet)
	m.Prepare(console.Routes()...)
	hc := newHealth(st.Ready, time.Second, quiet)
	allocs := func(h http.Handler) float64 {
		req, _ := http.NewRequest("POST", "/api/v2/device/license/validate", http.NoBody)
		req.Header.Set("X-Session-Id", act.Session.ID)
		w := &discardWriter{h: http.Header{}}
		h.ServeHTTP(w, req) // warm the pools and the cache
		return testing.AllocsPerRun(2000, func() {
			clear(w.h)
			h.ServeHTTP(w, req)
		})
	}
	off := allocs(newObserver(mainHandler(console, nil, nil, &opsHandlers{health: hc}), quiet, nil, ""))
	on := allocs(newObserver(mainHandler(console, nil, nil, &opsHandlers{health: hc, metrics: m}), quiet, m, ""))
	bare := allocs(console)
	t.Logf("allocations per validate: console API %v, observed with metrics off %v, on %v", bare, off, on)
	if on > off {
		t.Errorf("metrics on: %v allocations per validate, metrics off: %v; want no more", on, off)
	}
}
