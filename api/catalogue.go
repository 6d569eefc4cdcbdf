package api

import (
	"bytes"
	"compress/gzip"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"time"
)

// The catalogue answers (GET /api/v2/products and /products/apps) can be large (a shop's whole
// catalogue, megabytes) and are the same for everyone who asks with the same query. So each is
// built once and its bytes, plain and gzip-compressed, are shared by every request that asks for
// it: a reader, slow or not, holds a reference to them and no copy. An answer is rebuilt when this
// server changed the catalogue (Service.CatalogueGeneration) and otherwise at most every
// catalogueMaxAge (WithCatalogueMaxAge), which is how long a change made by another server or process takes to show.
const catalogueMaxAge = time.Second

// maxCatalogueEntries bounds the answers kept (one per distinct query); past it they are dropped.
const maxCatalogueEntries = 256

type catalogueCache struct {
	maxAge  time.Duration // 0: catalogueMaxAge
	mu      sync.Mutex
	entries map[string]*catalogueEntry
}

// catalogueEntry is one query's answer. Its mutex is held while it is built, so that concurrent
// requests for it wait for the one build rather than each build their own.
type catalogueEntry struct {
	mu      sync.Mutex
	gen     uint64
	built   time.Time // monotonic reading; zero: not built
	status  int
	plain   []byte
	gzipped []byte // built on the first request that accepts gzip
}

func (c *catalogueCache) entry(key string) *catalogueEntry {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.entries == nil || len(c.entries) >= maxCatalogueEntries {
		c.entries = make(map[string]*catalogueEntry)
	}
	e := c.entries[key]
	if e == nil {
		e = &catalogueEntry{}
		c.entries[key] = e
	}
	return e
}

// serveCatalogue answers r from the cached answer of key, building it with build when it is
// missing or stale. build answers (through w) itself when it fails and then returns nil; a failure
// is not cached.
func (s *Server) serveCatalogue(w http.ResponseWriter, r *http.Request, key string, build func() (status int, body []byte)) {
	e := s.catalogue.entry(key)
	gen := s.svc.CatalogueGeneration()
	maxAge := s.catalogue.maxAge
	if maxAge <= 0 {
		maxAge = catalogueMaxAge
	}
	e.mu.Lock()
	if e.built.IsZero() || e.gen != gen || time.Since(e.built) >= maxAge {
		status, body := build()
		if body == nil {
			e.mu.Unlock()
			return
		}
		e.gen, e.built, e.status, e.plain, e.gzipped = gen, time.Now(), status, body, nil
	}
	status, body, encoded := e.status, e.plain, false
	if acceptsGzip(r) {
		if e.gzipped == nil {
			var buf bytes.Buffer
			zw, _ := gzip.NewWriterLevel(&buf, gzip.BestSpeed)
			zw.Write(e.plain)
			zw.Close()
			e.gzipped = buf.Bytes()
		}
		body, encoded = e.gzipped, true
	}
	e.mu.Unlock()
	h := w.Header()
	h.Add("Vary", "Accept-Encoding")
	if encoded {
		h.Set("Content-Encoding", "gzip")
	}
	writeJSON(w, status, body)
}

// acceptsGzip reports whether the request's Accept-Encoding admits gzip (RFC 9110 §12.5.3: a
// q of 0 refuses it).
func acceptsGzip(r *http.Request) bool {
	for _, v := range r.Header.Values("Accept-Encoding") {
		for _, part := range strings.Split(v, ",") {
			coding, params, _ := strings.Cut(strings.TrimSpace(part), ";")
			if !strings.EqualFold(strings.TrimSpace(coding), "gzip") {
				continue
			}
			name, q, ok := strings.Cut(strings.TrimSpace(params), "=")
			if ok && strings.EqualFold(strings.TrimSpace(name), "q") {
				if f, err := strconv.ParseFloat(strings.TrimSpace(q), 64); err == nil && f == 0 {
					return false
				}
			}
			return true
		}
	}
	return false
}
