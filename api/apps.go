package api

import (
	"encoding/json"
	"net/http"

	"openconsole"
)

// handleApps routes the app, product and user endpoints (wire contract §2.6 to §2.11).
func (s *Server) handleApps() {
	s.handle("GET", "/api/v2/manifests/{app}/{version}", s.manifest)
	s.handle("POST", "/api/v2/tokens", s.token)
	s.handle("GET", "/api/v2/products", s.products)
	s.handle("GET", "/api/v2/products/apps", s.productApps)
	s.handle("POST", "/api/v2/products/apps/reviews", s.review)
	s.handle("GET", "/api/v2/my/products", s.myProducts)
	s.handle("GET", "/api/v2/my/products/apps", s.myProductApps)
	s.handle("GET", "/api/v2/my/subscriptions", s.mySubscriptions)
}

// The 500 reasons of the device endpoints, as SPEC gives them.
const (
	manifestFailure = "Could not validate device activation"
	tokenFailure    = "Could not validate device activation"
)

// manifest is GET /api/v2/manifests/{app}/{version} (wire contract §2.6). The session is checked
// before anything else (403 Session not found); from then on every answer carries X-Session-Id.
func (s *Server) manifest(w http.ResponseWriter, r *http.Request) {
	ref, err := s.svc.LiveSession(r.Context(), sessionHeader(r))
	if err != nil {
		s.fail(w, r, err, manifestFailure)
		return
	}
	setSession(w, ref)
	q := openconsole.ManifestQuery{App: r.PathValue("app"), Version: r.PathValue("version")}
	query := r.URL.Query()
	if v, ok := query["manifest_version"]; ok {
		q.ManifestVersion = &v[0]
	}
	if v, ok := query["max_manifest_version"]; ok {
		q.MaxManifestVersion = &v[0]
	}
	m, err := s.svc.Manifest(r.Context(), q)
	if err != nil {
		s.fail(w, r, err, manifestFailure)
		return
	}
	writeData(w, http.StatusOK, json.RawMessage(m.Document))
}

type tokenRequest struct {
	App     *string `json:"app"`
	Version *string `json:"version"`
}

type tokenData struct {
	Token struct {
		Username string `json:"username"`
		Password string `json:"password"`
	} `json:"token"`
}

// token is POST /api/v2/tokens (wire contract §2.7): 403 before anything else for a session that
// is not live, then 200 with registry credentials for an official app or 204 for any other, both
// with X-Session-Id. The credentials are never logged.
func (s *Server) token(w http.ResponseWriter, r *http.Request) {
	ref, err := s.svc.LiveSession(r.Context(), sessionHeader(r))
	if err != nil {
		s.fail(w, r, err, tokenFailure)
		return
	}
	setSession(w, ref)
	var req tokenRequest
	if !s.decode(w, r, &req) {
		return
	}
	var app, version string
	if req.App != nil {
		app = *req.App
	}
	if req.Version != nil {
		version = *req.Version
	}
	creds, err := s.svc.DownloadToken(r.Context(), ref, app, version)
	if err != nil {
		s.fail(w, r, err, tokenFailure)
		return
	}
	if creds == nil {
		writeNoContent(w)
		return
	}
	var d tokenData
	d.Token.Username, d.Token.Password = creds.Username, creds.Password
	writeData(w, http.StatusOK, d)
}
