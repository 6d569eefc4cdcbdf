package api_test

import (
	"bytes"
	"compress/gzip"
	"context"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"openconsole"
	"openconsole/api"
	"openconsole/sqlstore/sqlstoretest"
)

// countingStore counts the catalogue reads.
type countingStore struct {
	openconsole.Store
	products atomic.Int32
}

func (c *countingStore) Products(ctx context.Context, q openconsole.ProductQuery) ([]openconsole.Product, int, error) {
	c.products.Add(1)
	return c.Store.Products(ctx, q)
}

// stuckWriter is a client that never reads: its first Write blocks until release is closed.
type stuckWriter struct {
	*httptest.ResponseRecorder
	writing chan<- struct{}
	release <-chan struct{}
	once    sync.Once
}

func (s *stuckWriter) Write(p []byte) (int, error) {
	s.once.Do(func() { s.writing <- struct{}{}; <-s.release })
	return s.ResponseRecorder.Write(p)
}

// TestSlowCatalogueReadersLeaveDeviceSlots (issue 10, finding 5): clients that never read the
// catalogue take all the slots of their class but none of the device routes', so validate keeps
// answering; they share one build of the answer instead of each holding their own; and the answer
// is compressed for clients that accept gzip.
func TestSlowCatalogueReadersLeaveDeviceSlots(t *testing.T) {
	st := &countingStore{Store: sqlstoretest.Open(t, "sqlite")}
	svc, err := openconsole.NewService(context.Background(), st, openconsole.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer svc.Close()
	var docs []string
	for i := 1; i <= 40; i++ {
		docs = append(docs, fmt.Sprintf(`{"id":%d,"name":"App %d","description":%q,
			"attributes":[{"id":1,"name":"reverse-domain-name","options":["tech.flecs.app%d"]}]}`, i, i, strings.Repeat("words ", 500), i))
	}
	if _, err := svc.ImportProducts(context.Background(), []byte("["+strings.Join(docs, ",")+"]")); err != nil {
		t.Fatal(err)
	}
	const deviceSlots, webSlots = 2, 16
	h := api.New(svc, slog.New(slog.NewTextHandler(io.Discard, nil)),
		api.WithMaxInFlight(deviceSlots), api.WithMaxInFlightWeb(webSlots), api.WithCatalogueMaxAge(time.Hour))

	writing := make(chan struct{})
	release := make(chan struct{})
	var readers sync.WaitGroup
	stuck := make([]*stuckWriter, webSlots)
	for i := range stuck {
		stuck[i] = &stuckWriter{ResponseRecorder: httptest.NewRecorder(), writing: writing, release: release}
		readers.Add(1)
		go func() {
			defer readers.Done()
			h.ServeHTTP(stuck[i], httptest.NewRequest("GET", "/api/v2/products/apps", nil))
		}()
	}
	for range stuck {
		<-writing // every reader holds its slot, blocked in writing the answer
	}
	if n := st.products.Load(); n != 1 {
		t.Errorf("%d slow readers read the catalogue %d times, want once (one shared answer)", webSlots, n)
	}
	// Their class is full ...
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, httptest.NewRequest("GET", "/api/v2/products/apps", nil))
	if rec.Code != http.StatusServiceUnavailable {
		t.Errorf("one more catalogue request: status %d, want 503", rec.Code)
	}
	// ... and the device routes answer as if nothing happened, deviceSlots at once.
	var devices sync.WaitGroup
	codes := make([]int, deviceSlots)
	for i := range codes {
		devices.Add(1)
		go func() {
			defer devices.Done()
			rec := httptest.NewRecorder()
			h.ServeHTTP(rec, httptest.NewRequest("POST", "/api/v2/device/license/validate", nil))
			codes[i] = rec.Code
		}()
	}
	devices.Wait()
	for i, c := range codes {
		if c != http.StatusOK {
			t.Errorf("validate %d while the catalogue readers stall: status %d, want 200", i, c)
		}
	}
	close(release)
	readers.Wait()
	plain := stuck[0].Body.Bytes()
	for i, s := range stuck {
		if s.Code != http.StatusOK || !bytes.Equal(s.Body.Bytes(), plain) {
			t.Fatalf("reader %d: status %d, body differs from reader 0's", i, s.Code)
		}
	}

	// gzip for a client that accepts it, the same JSON inside; plain for one that refuses it.
	for _, tc := range []struct {
		accept string
		gzip   bool
	}{{"gzip, deflate, br", true}, {"br;q=1.0, gzip;q=0.5", true}, {"gzip;q=0", false}, {"", false}, {"identity", false}} {
		rec := httptest.NewRecorder()
		req := httptest.NewRequest("GET", "/api/v2/products/apps", nil)
		if tc.accept != "" {
			req.Header.Set("Accept-Encoding", tc.accept)
		}
		h.ServeHTTP(rec, req)
		body := rec.Body.Bytes()
		if got := rec.Header().Get("Content-Encoding") == "gzip"; got != tc.gzip {
			t.Errorf("Accept-Encoding %q: gzip %v, want %v", tc.accept, got, tc.gzip)
		}
		if tc.gzip {
			zr, err := gzip.NewReader(bytes.NewReader(body))
			if err != nil {
				t.Fatal(err)
			}
			if body, err = io.ReadAll(zr); err != nil {
				t.Fatal(err)
			}
			if rec.Body.Len()*4 > len(body) {
				t.Errorf("compressed answer %d bytes for %d: not compressed", rec.Body.Len(), len(body))
			}
		}
		if !bytes.Equal(body, plain) || rec.Header().Get("Content-Type") != "application/json" {
			t.Errorf("Accept-Encoding %q: a different answer (Content-Type %q)", tc.accept, rec.Header().Get("Content-Type"))
		}
	}
	if n := st.products.Load(); n != 1 {
		t.Errorf("catalogue read %d times for unchanged products, want once", n)
	}
	// A change through this server shows at once.
	if _, err := svc.ImportProducts(context.Background(), []byte(`[{"id":99,"name":"New",
		"attributes":[{"id":1,"name":"reverse-domain-name","options":["tech.flecs.new"]}]}]`)); err != nil {
		t.Fatal(err)
	}
	rec = httptest.NewRecorder()
	h.ServeHTTP(rec, httptest.NewRequest("GET", "/api/v2/products/apps", nil))
	if !strings.Contains(rec.Body.String(), `"totalProducts":41`) {
		t.Errorf("after an import the answer is stale: %.100s", rec.Body.String())
	}
}
