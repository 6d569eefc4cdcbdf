package api

import (
	"encoding/json"
	"net/http"
	"strconv"
	"strings"

	"openconsole"
)

// WithDefaultStore names the store whose products GET /api/v2/products and /products/apps list
// when a request has no store_id (wire contract §2.8). Without it such requests list every store.
func WithDefaultStore(id int64) Option {
	return func(s *Server) { s.defaultStore = &id }
}

// Paging of productResponse: page and per_page as WooCommerce has them.
const (
	defaultPerPage = 100
	maxPerPage     = 100
)

const productsFailure = "Unknown error"

// productPage is productResponse: {page, totalPages, products}.
type productPage struct {
	Page       int               `json:"page"`
	TotalPages int               `json:"totalPages"`
	Products   []json.RawMessage `json:"products"`
}

// appList is appResponse: {totalProducts, products}, totalProducts == len(products).
type appList struct {
	TotalProducts int               `json:"totalProducts"`
	Products      []json.RawMessage `json:"products"`
}

func documents(ps []openconsole.Product) []json.RawMessage {
	out := make([]json.RawMessage, len(ps))
	for i, p := range ps {
		out[i] = p.Document
	}
	return out
}

// intParam reads an optional integer query parameter at least min (and at most max when max > 0).
// A bad value is an EINVALID error naming the parameter.
func intParam(r *http.Request, name string, min, max int64) (*int64, error) {
	vs, ok := r.URL.Query()[name]
	if !ok {
		return nil, nil
	}
	n, err := strconv.ParseInt(strings.TrimSpace(vs[0]), 10, 64)
	if err != nil || n < min {
		return nil, openconsole.Errorf(openconsole.EINVALID, "Invalid query parameter %s", name)
	}
	if max > 0 && n > max {
		return nil, openconsole.Errorf(openconsole.EINVALID, "Invalid query parameter %s (at most %d)", name, max)
	}
	return &n, nil
}

// storeParam reads store_id (wire contract §2.8: a non-integer is 400). With useDefault an absent
// store_id means the default store, if one is configured. On a bad value it answers the request
// itself and returns false.
func (s *Server) storeParam(w http.ResponseWriter, r *http.Request, useDefault bool) (*int64, bool) {
	id, err := intParam(r, "store_id", 0, 0)
	if err != nil {
		s.fail(w, r, err, productsFailure)
		return nil, false
	}
	if id == nil && useDefault {
		id = s.defaultStore
	}
	return id, true
}

// pageParams reads page and per_page into q and returns the page number and size.
func pageParams(r *http.Request, q *openconsole.ProductQuery) (page, perPage int, err error) {
	p, err := intParam(r, "page", 1, 1<<30)
	if err != nil {
		return 0, 0, err
	}
	pp, err := intParam(r, "per_page", 1, maxPerPage)
	if err != nil {
		return 0, 0, err
	}
	page, perPage = 1, defaultPerPage
	if p != nil {
		page = int(*p)
	}
	if pp != nil {
		perPage = int(*pp)
	}
	q.Offset, q.Limit = (page-1)*perPage, perPage
	return page, perPage, nil
}

// productPageOf lists one page of the products q selects.
func (s *Server) productPageOf(w http.ResponseWriter, r *http.Request, q openconsole.ProductQuery) {
	page, perPage, err := pageParams(r, &q)
	if err != nil {
		s.fail(w, r, err, productsFailure)
		return
	}
	if data := s.productPage(w, r, q, page, perPage); data != nil {
		writeData(w, http.StatusOK, data)
	}
}

// productPage reads one page; on failure it answers the request itself and returns nil.
func (s *Server) productPage(w http.ResponseWriter, r *http.Request, q openconsole.ProductQuery, page, perPage int) *productPage {
	ps, total, err := s.svc.Products(r.Context(), q)
	if err != nil {
		s.fail(w, r, err, productsFailure)
		return nil
	}
	return &productPage{Page: page, TotalPages: (total + perPage - 1) / perPage, Products: documents(ps)}
}

// storeKey is a store parameter in a catalogue cache key.
func storeKey(store *int64) string {
	if store == nil {
		return "*"
	}
	return strconv.FormatInt(*store, 10)
}

// products is GET /api/v2/products (wire contract §2.8), answered from the catalogue cache.
func (s *Server) products(w http.ResponseWriter, r *http.Request) {
	store, ok := s.storeParam(w, r, true)
	if !ok {
		return
	}
	q := openconsole.ProductQuery{StoreID: store}
	page, perPage, err := pageParams(r, &q)
	if err != nil {
		s.fail(w, r, err, productsFailure)
		return
	}
	key := "products " + storeKey(store) + " " + strconv.Itoa(page) + " " + strconv.Itoa(perPage)
	s.serveCatalogue(w, r, key, func() (int, []byte) {
		data := s.productPage(w, r, q, page, perPage)
		if data == nil {
			return 0, nil
		}
		return http.StatusOK, envelope(w, http.StatusOK, data)
	})
}

// productApps is GET /api/v2/products/apps (wire contract §2.9): every app product, unpaged,
// answered from the catalogue cache.
func (s *Server) productApps(w http.ResponseWriter, r *http.Request) {
	store, ok := s.storeParam(w, r, true)
	if !ok {
		return
	}
	s.serveCatalogue(w, r, "apps "+storeKey(store), func() (int, []byte) {
		ps, _, err := s.svc.Products(r.Context(), openconsole.ProductQuery{StoreID: store, AppsOnly: true})
		if err != nil {
			s.fail(w, r, err, productsFailure)
			return 0, nil
		}
		return http.StatusOK, envelope(w, http.StatusOK, appList{TotalProducts: len(ps), Products: documents(ps)})
	})
}

// myProducts is GET /api/v2/my/products (wire contract §2.11): the bearer's products, which are
// those of their active subscriptions, from every store unless store_id names one.
func (s *Server) myProducts(w http.ResponseWriter, r *http.Request) {
	s.myProductsOf(w, r, false)
}

// myProductApps is GET /api/v2/my/products/apps: like myProducts, apps only.
func (s *Server) myProductApps(w http.ResponseWriter, r *http.Request) {
	s.myProductsOf(w, r, true)
}

func (s *Server) myProductsOf(w http.ResponseWriter, r *http.Request, apps bool) {
	user, ok := s.bearer(w, r)
	if !ok {
		return
	}
	store, ok := s.storeParam(w, r, false)
	if !ok {
		return
	}
	s.productPageOf(w, r, openconsole.ProductQuery{StoreID: store, AppsOnly: apps, OwnerID: user.ID})
}

type billingJSON struct {
	FirstName string `json:"first_name"`
	LastName  string `json:"last_name"`
	Company   string `json:"company"`
	Email     string `json:"email"`
}

type lineItemJSON struct {
	ID          int64    `json:"id"`
	Status      string   `json:"status"`
	ProductID   int64    `json:"product_id"`
	VariationID int64    `json:"variation_id"`
	Quantity    int      `json:"quantity"`
	Image       struct{} `json:"image"`
}

// orderJSON is an order (wire contract §2.11): one subscription, with one line item.
type orderJSON struct {
	ID         int64          `json:"id"`
	Status     string         `json:"status"`
	CustomerID int64          `json:"customer_id"`
	LineItems  []lineItemJSON `json:"line_items"`
	Billing    billingJSON    `json:"billing"`
}

// mySubscriptions is GET /api/v2/my/subscriptions (wire contract §2.11).
func (s *Server) mySubscriptions(w http.ResponseWriter, r *http.Request) {
	user, ok := s.bearer(w, r)
	if !ok {
		return
	}
	store, ok := s.storeParam(w, r, false)
	if !ok {
		return
	}
	subs, err := s.svc.Subscriptions(r.Context(), user.ID, store)
	if err != nil {
		s.fail(w, r, err, productsFailure)
		return
	}
	first, last, _ := strings.Cut(user.DisplayName, " ")
	billing := billingJSON{FirstName: first, LastName: last, Email: user.Email}
	orders := make([]orderJSON, len(subs))
	for i, sub := range subs {
		orders[i] = orderJSON{
			ID: sub.ID, Status: sub.Status, CustomerID: user.ID, Billing: billing,
			LineItems: []lineItemJSON{{ID: sub.ID, Status: sub.Status, ProductID: sub.ProductID, Quantity: 1}},
		}
	}
	writeData(w, http.StatusOK, struct {
		TotalSubscriptions int         `json:"totalSubscriptions"`
		Subscriptions      []orderJSON `json:"subscriptions"`
	}{len(orders), orders})
}

// reviewRequest is a reviewRequest (wire contract §2.10). Its reviewer and reviewer_email are not
// read: the reviewer is the account the token names.
type reviewRequest struct {
	Data *struct {
		ProductID *int64   `json:"product_id"`
		Review    *string  `json:"review"`
		Rating    *float64 `json:"rating"`
	} `json:"data"`
	JWT *string `json:"jwt"`
}

// missing names the first required field the request lacks, or "".
func (req *reviewRequest) missing() string {
	d := req.Data
	switch {
	case d == nil:
		return "data"
	case d.ProductID == nil:
		return "data.product_id"
	case d.Review == nil:
		return "data.review"
	case d.Rating == nil:
		return "data.rating"
	}
	return ""
}

type reviewJSON struct {
	ID               int64   `json:"id"`
	DateCreated      string  `json:"date_created"`
	DateCreatedGMT   string  `json:"date_created_gmt"`
	ProductID        int64   `json:"product_id"`
	ProductName      string  `json:"product_name"`
	ProductPermalink string  `json:"product_permalink"`
	Status           string  `json:"status"`
	Reviewer         string  `json:"reviewer"`
	ReviewerEmail    string  `json:"reviewer_email"`
	Review           string  `json:"review"`
	Rating           float64 `json:"rating"`
	Verified         bool    `json:"verified"`
}

// wooTime is WooCommerce's date form; the console's site time is UTC, so both dates are equal.
const wooTime = "2006-01-02T15:04:05"

// review is POST /api/v2/products/apps/reviews (wire contract §2.10). The token comes from
// Authorization: Bearer (the web app) or, without that header, from the body's jwt (SPEC). 401
// without a valid token, 400 for a bad payload, 403 when the user does not own the product, else
// 201 with data.review (the user's one review of the product, replaced by a second) and
// success:true.
func (s *Server) review(w http.ResponseWriter, r *http.Request) {
	var user openconsole.User
	fromHeader := strings.TrimSpace(r.Header.Get("Authorization")) != ""
	if fromHeader {
		var ok bool
		if user, ok = s.bearer(w, r); !ok {
			return
		}
	}
	var req reviewRequest
	if !s.decode(w, r, &req) {
		return
	}
	if !fromHeader {
		if req.JWT == nil || strings.TrimSpace(*req.JWT) == "" {
			s.fail(w, r, openconsole.ErrReviewTokenRequired, productsFailure)
			return
		}
		u, _, err := s.svc.Authenticate(r.Context(), strings.TrimSpace(*req.JWT))
		if err != nil {
			s.fail(w, r, err, "Could not authenticate")
			return
		}
		user = u
	}
	if f := req.missing(); f != "" {
		s.fail(w, r, openconsole.MissingField(f), productsFailure)
		return
	}
	d := req.Data
	rv, err := s.svc.PostReview(r.Context(), user, openconsole.ReviewInput{
		ProductID: *d.ProductID, Review: *d.Review, Rating: *d.Rating,
	})
	if err != nil {
		s.fail(w, r, err, productsFailure)
		return
	}
	created := rv.CreatedAt.UTC().Format(wooTime)
	body := struct {
		StatusCode int    `json:"statusCode"`
		StatusText string `json:"statusText"`
		Data       struct {
			Review reviewJSON `json:"review"`
		} `json:"data"`
		Success bool `json:"success"` // old web apps return the body only when success is truthy
	}{StatusCode: http.StatusCreated, StatusText: http.StatusText(http.StatusCreated), Success: true}
	body.Data.Review = reviewJSON{
		ID: rv.ID, DateCreated: created, DateCreatedGMT: created, ProductID: rv.ProductID,
		ProductName: rv.ProductName, ProductPermalink: rv.ProductPermalink, Status: rv.Status,
		Reviewer: rv.Reviewer, ReviewerEmail: rv.ReviewerEmail, Review: rv.Text, Rating: rv.Rating, Verified: rv.Verified,
	}
	b, err := json.Marshal(body)
	if err != nil {
		s.fail(w, r, err, productsFailure)
		return
	}
	writeJSON(w, http.StatusCreated, b)
}
