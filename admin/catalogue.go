package admin

import (
	"context"
	"encoding/json"
	"math"
	"net/http"
	"strconv"

	"openconsole"
)

// The app catalogue: manifests, registry credentials, download-token records, products and
// subscriptions.

func (s *Server) catalogueRoutes() {
	s.route("GET /manifests", reader, s.listManifests)
	s.route("POST /manifests", operator, s.addManifest)
	s.route("GET /manifests/{app}/{version}", reader, s.getManifests)
	s.route("DELETE /manifests/{app}/{version}", operator, s.removeManifests)
	s.route("GET /apps/{app}", reader, s.getApp)
	s.route("PUT /apps/{app}/credentials", operator, s.setCredentials)
	s.route("GET /token-issuances", reader, s.listTokenIssuances)
	s.route("GET /products", reader, s.listProducts)
	s.route("POST /products", operator, s.importProducts)
	s.route("GET /subscriptions", reader, s.listSubscriptions)
	s.route("POST /subscriptions", operator, s.addSubscription)
}

// ManifestJSON is a stored manifest variant; Document only where one is asked for.
type ManifestJSON struct {
	App           string          `json:"app"`
	Version       string          `json:"version"`
	SchemaVersion string          `json:"schemaVersion"`
	Official      bool            `json:"official"`
	CreatedAt     Time            `json:"createdAt"`
	Replaced      *bool           `json:"replaced,omitempty"`
	Document      json.RawMessage `json:"document,omitempty"`
}

// manifests renders variants, looking up each app's official flag once.
func (s *Server) manifests(r *http.Request, ms []openconsole.Manifest, withDocument bool) ([]ManifestJSON, error) {
	return manifestViews(r.Context(), s.svc, ms, withDocument)
}

func manifestViews(ctx context.Context, svc *openconsole.Service, ms []openconsole.Manifest, withDocument bool) ([]ManifestJSON, error) {
	official := map[string]bool{}
	out := make([]ManifestJSON, 0, len(ms))
	for _, m := range ms {
		o, known := official[m.App]
		if !known {
			a, err := svc.App(ctx, m.App)
			if err != nil {
				return nil, err
			}
			o, official[m.App] = a.Official, a.Official
		}
		j := ManifestJSON{App: m.App, Version: m.Version, SchemaVersion: m.SchemaVersion, Official: o, CreatedAt: Time(m.CreatedAt)}
		if withDocument {
			j.Document = json.RawMessage(m.Document)
		}
		out = append(out, j)
	}
	return out, nil
}

func (s *Server) listManifests(w http.ResponseWriter, r *http.Request, p openconsole.Principal) error {
	ms, err := s.svc.Manifests(r.Context(), r.URL.Query().Get("app"))
	if err != nil {
		return err
	}
	items, err := s.manifests(r, ms, false)
	if err != nil {
		return err
	}
	return writeJSON(w, http.StatusOK, Page[ManifestJSON]{Items: items})
}

func (s *Server) getManifests(w http.ResponseWriter, r *http.Request, p openconsole.Principal) error {
	ms, err := s.svc.Manifests(r.Context(), r.PathValue("app"))
	if err != nil {
		return err
	}
	var of []openconsole.Manifest
	for _, m := range ms {
		if m.Version == r.PathValue("version") {
			of = append(of, m)
		}
	}
	if len(of) == 0 {
		return openconsole.Errorf(openconsole.ENOTFOUND, "no manifest for %s version %s", r.PathValue("app"), r.PathValue("version"))
	}
	items, err := s.manifests(r, of, true)
	if err != nil {
		return err
	}
	return writeJSON(w, http.StatusOK, Page[ManifestJSON]{Items: items})
}

func (s *Server) addManifest(w http.ResponseWriter, r *http.Request, p openconsole.Principal) error {
	doc, err := readBody(w, r)
	if err != nil {
		return err
	}
	var official *bool
	switch r.URL.Query().Get("official") {
	case "":
	case "true":
		official = new(bool)
		*official = true
	case "false":
		official = new(bool)
	default:
		return openconsole.Errorf(openconsole.EINVALID, "official must be true or false")
	}
	m, app, replaced, err := s.svc.AddManifest(r.Context(), doc, official)
	if err != nil {
		return err
	}
	return writeJSON(w, http.StatusCreated, ManifestJSON{App: m.App, Version: m.Version, SchemaVersion: m.SchemaVersion,
		Official: app.Official, CreatedAt: Time(m.CreatedAt), Replaced: &replaced})
}

// RemovedJSON is the answer of DELETE /manifests/{app}/{version}.
type RemovedJSON struct {
	App           string  `json:"app"`
	Version       string  `json:"version"`
	SchemaVersion *string `json:"schemaVersion"`
	Removed       int     `json:"removed"`
}

func (s *Server) removeManifests(w http.ResponseWriter, r *http.Request, p openconsole.Principal) error {
	app, version, schema := r.PathValue("app"), r.PathValue("version"), r.URL.Query().Get("schemaVersion")
	n, err := s.svc.RemoveManifest(r.Context(), app, version, schema)
	if err != nil {
		return err
	}
	out := RemovedJSON{App: app, Version: version, Removed: n}
	if schema != "" {
		out.SchemaVersion = &schema
	}
	return writeJSON(w, http.StatusOK, out)
}

// AppJSON is an app: whether it is official and has registry credentials (never the credentials).
type AppJSON struct {
	Name           string `json:"name"`
	Official       bool   `json:"official"`
	CredentialsSet bool   `json:"credentialsSet"`
	CreatedAt      Time   `json:"createdAt"`
	UpdatedAt      Time   `json:"updatedAt"`
}

func (s *Server) getApp(w http.ResponseWriter, r *http.Request, p openconsole.Principal) error {
	a, err := s.svc.App(r.Context(), r.PathValue("app"))
	if err != nil {
		return err
	}
	return writeJSON(w, http.StatusOK, AppJSON{a.Name, a.Official, a.Credentials != "", Time(a.CreatedAt), Time(a.UpdatedAt)})
}

type credentialsRequest struct {
	Username *string `json:"username"`
	Password *string `json:"password"`
}

func (s *Server) setCredentials(w http.ResponseWriter, r *http.Request, p openconsole.Principal) error {
	body, err := readBody(w, r)
	if err != nil {
		return err
	}
	var req credentialsRequest
	if err := decodeJSON(body, &req); err != nil {
		return err
	}
	if req.Username == nil {
		return openconsole.MissingField("username")
	}
	if req.Password == nil {
		return openconsole.MissingField("password")
	}
	name := r.PathValue("app")
	if err := s.svc.SetRegistryCredentials(r.Context(), name, openconsole.RegistryCredentials{Username: *req.Username, Password: *req.Password}); err != nil {
		return err
	}
	a, err := s.svc.App(r.Context(), name)
	if err != nil {
		return err
	}
	return writeJSON(w, http.StatusOK, AppJSON{a.Name, a.Official, a.Credentials != "", Time(a.CreatedAt), Time(a.UpdatedAt)})
}

// TokenIssuanceJSON is the record of a session's download-token answers for one app version and
// kind: the first (issuedAt), the latest (lastIssuedAt) and how many (count).
type TokenIssuanceJSON struct {
	ID           int64  `json:"id"`
	Session      string `json:"session"`
	App          string `json:"app"`
	Version      string `json:"version"`
	Credentials  bool   `json:"credentials"`
	IssuedAt     Time   `json:"issuedAt"`
	LastIssuedAt Time   `json:"lastIssuedAt"`
	Count        int64  `json:"count"`
}

func (s *Server) listTokenIssuances(w http.ResponseWriter, r *http.Request, p openconsole.Principal) error {
	tis, err := s.svc.TokenIssuances(r.Context(), r.URL.Query().Get("session"))
	if err != nil {
		return err
	}
	page := Page[TokenIssuanceJSON]{Items: make([]TokenIssuanceJSON, 0, len(tis))}
	for _, ti := range tis {
		page.Items = append(page.Items, TokenIssuanceJSON{ti.ID, ti.SessionID, ti.App, ti.Version, ti.Credentials,
			Time(ti.IssuedAt), Time(ti.LastIssuedAt), ti.Count})
	}
	return writeJSON(w, http.StatusOK, page)
}

// ProductJSON is a product of the catalogue, in brief.
type ProductJSON struct {
	ID            int64   `json:"id"`
	Name          string  `json:"name"`
	StoreID       int64   `json:"storeId"`
	App           *string `json:"app"`
	RatingCount   int     `json:"ratingCount"`
	AverageRating float64 `json:"averageRating"`
}

// Product renders a product in brief.
func Product(pr openconsole.Product) ProductJSON {
	o := ProductJSON{ID: pr.ID, Name: pr.Name, StoreID: pr.StoreID, RatingCount: pr.RatingCount}
	if pr.App != "" {
		app := pr.App
		o.App = &app
	}
	if pr.RatingCount > 0 {
		o.AverageRating = math.Round(pr.RatingSum/float64(pr.RatingCount)*100) / 100
	}
	return o
}

func (s *Server) listProducts(w http.ResponseWriter, r *http.Request, p openconsole.Principal) error {
	var q openconsole.ProductQuery
	if v := r.URL.Query().Get("store"); v != "" {
		n, err := strconv.ParseInt(v, 10, 64)
		if err != nil || n < 0 {
			return openconsole.Errorf(openconsole.EINVALID, "store must be a store id")
		}
		q.StoreID = &n
	}
	ps, _, err := s.svc.Products(r.Context(), q)
	if err != nil {
		return err
	}
	page := Page[ProductJSON]{Items: make([]ProductJSON, 0, len(ps))}
	for _, pr := range ps {
		page.Items = append(page.Items, Product(pr))
	}
	return writeJSON(w, http.StatusOK, page)
}

func (s *Server) importProducts(w http.ResponseWriter, r *http.Request, p openconsole.Principal) error {
	body, err := readBody(w, r)
	if err != nil {
		return err
	}
	ps, err := s.svc.ImportProducts(r.Context(), body)
	if err != nil {
		return err
	}
	page := Page[ProductJSON]{Items: make([]ProductJSON, 0, len(ps))}
	for _, pr := range ps {
		page.Items = append(page.Items, Product(pr))
	}
	return writeJSON(w, http.StatusOK, page)
}

// SubscriptionJSON is a user's subscription of a product.
type SubscriptionJSON struct {
	ID        int64  `json:"id"`
	User      string `json:"user"`
	ProductID int64  `json:"productId"`
	Status    string `json:"status"`
	CreatedAt Time   `json:"createdAt"`
}

func (s *Server) listSubscriptions(w http.ResponseWriter, r *http.Request, p openconsole.Principal) error {
	var userID int64
	if name := r.URL.Query().Get("user"); name != "" {
		u, err := s.svc.User(r.Context(), name)
		if err != nil {
			return err
		}
		userID = u.ID
	}
	subs, err := s.svc.Subscriptions(r.Context(), userID, nil)
	if err != nil {
		return err
	}
	names := map[int64]string{}
	page := Page[SubscriptionJSON]{Items: make([]SubscriptionJSON, 0, len(subs))}
	for _, sub := range subs {
		name, ok := names[sub.UserID]
		if !ok {
			if u, err := s.svc.UserByID(r.Context(), sub.UserID); err == nil {
				name = u.Username
			}
			names[sub.UserID] = name
		}
		page.Items = append(page.Items, SubscriptionJSON{sub.ID, name, sub.ProductID, sub.Status, Time(sub.CreatedAt)})
	}
	return writeJSON(w, http.StatusOK, page)
}

type subscriptionRequest struct {
	User      *string `json:"user"`
	ProductID *int64  `json:"productId"`
	Status    *string `json:"status"`
}

func (s *Server) addSubscription(w http.ResponseWriter, r *http.Request, p openconsole.Principal) error {
	body, err := readBody(w, r)
	if err != nil {
		return err
	}
	var req subscriptionRequest
	if err := decodeJSON(body, &req); err != nil {
		return err
	}
	if req.User == nil {
		return openconsole.MissingField("user")
	}
	if req.ProductID == nil {
		return openconsole.MissingField("productId")
	}
	status := "active"
	set(&status, req.Status)
	view := func(sub openconsole.Subscription) any {
		return SubscriptionJSON{sub.ID, *req.User, sub.ProductID, sub.Status, Time(sub.CreatedAt)}
	}
	ctx, err := idempotent(r, p, body, renderer(http.StatusCreated, view))
	if err != nil {
		return err
	}
	sub, err := s.svc.AddSubscription(ctx, *req.User, *req.ProductID, status)
	if err != nil {
		return err
	}
	return writeJSON(w, http.StatusCreated, view(sub))
}
