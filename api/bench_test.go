package api_test

import (
	"context"
	"io"
	"log/slog"
	"net/http"
	"strings"
	"testing"

	"openconsole"
	"openconsole/api"
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

func benchServer(b *testing.B) (*openconsole.Service, http.Handler) {
	b.Helper()
	st := sqlstoretest.Open(b, "sqlite")
	svc, err := openconsole.NewService(context.Background(), st, openconsole.Options{})
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { svc.Close() })
	return svc, api.New(svc, slog.New(slog.NewTextHandler(io.Discard, nil)))
}

// BenchmarkValidateHandler is the validate hot path through the handler: routing, header parsing,
// the cached lookup and the response envelope.
func BenchmarkValidateHandler(b *testing.B) {
	svc, h := benchServer(b)
	lic, _ := svc.CreateLicense(context.Background(), openconsole.LicenseInput{Seats: 1})
	act, err := svc.Activate(context.Background(), openconsole.ActivateInput{LicenseKey: lic.Key})
	if err != nil {
		b.Fatal(err)
	}
	req, _ := http.NewRequest("POST", "/api/v2/device/license/validate", http.NoBody)
	req.Header.Set("X-Session-Id", act.Session.ID)
	w := &discardWriter{h: http.Header{}}
	b.ReportAllocs()
	for b.Loop() {
		clear(w.h)
		h.ServeHTTP(w, req)
		if w.status != http.StatusOK || w.h.Get("X-Session-Id") == "" {
			b.Fatalf("status %d, session header %q", w.status, w.h.Get("X-Session-Id"))
		}
	}
}

// BenchmarkActivateRepeat is a device re-activating with its live session (204): body parsing and
// the read-only fast path.
func BenchmarkActivateRepeat(b *testing.B) {
	svc, h := benchServer(b)
	lic, _ := svc.CreateLicense(context.Background(), openconsole.LicenseInput{Seats: 1})
	act, err := svc.Activate(context.Background(), openconsole.ActivateInput{LicenseKey: lic.Key})
	if err != nil {
		b.Fatal(err)
	}
	body := `{"licenseKey":"` + lic.Key + `"}`
	w := &discardWriter{h: http.Header{}}
	b.ReportAllocs()
	for b.Loop() {
		req, _ := http.NewRequest("POST", "/api/v2/device/license/activate", strings.NewReader(body))
		req.Header.Set("X-Session-Id", act.Session.ID)
		clear(w.h)
		h.ServeHTTP(w, req)
		if w.status != http.StatusNoContent {
			b.Fatalf("status %d", w.status)
		}
	}
}

// BenchmarkErrorEnvelope is an unknown route: routing and the error envelope.
func BenchmarkErrorEnvelope(b *testing.B) {
	_, h := benchServer(b)
	req, _ := http.NewRequest("GET", "/api/v2/nope", nil)
	w := &discardWriter{h: http.Header{}}
	b.ReportAllocs()
	for b.Loop() {
		clear(w.h)
		h.ServeHTTP(w, req)
		if w.status != http.StatusNotFound {
			b.Fatalf("status %d", w.status)
		}
	}
}
