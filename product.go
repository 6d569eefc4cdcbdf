package openconsole

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"
)

// Product is an entry of the store catalogue (wire contract §2.8): a WooCommerce-shaped product
// document, kept as the JSON the API returns (unknown fields included), with the values the console
// filters and updates by pulled out.
type Product struct {
	ID      int64
	StoreID int64
	// App is the product's reverse-domain-name attribute: the app it sells. "" for a product that is
	// no app.
	App         string
	Name        string
	Permalink   string
	RatingCount int
	RatingSum   float64 // average_rating × rating_count, kept so that a new review averages exactly
	Document    json.RawMessage
	UpdatedAt   time.Time
}

// ProductQuery selects products. Results are in id order.
type ProductQuery struct {
	StoreID  *int64 // only this store's products; nil for every store
	AppsOnly bool   // only products that are apps
	OwnerID  int64  // > 0: only products the user owns through an active subscription
	Offset   int
	Limit    int // 0: no limit
}

// MaxProductBytes bounds one product document.
const MaxProductBytes = 1 << 20

// ParseProduct checks a product document in the shape the API returns and completes it: id (a
// positive integer) and name are required; every other field §2.8 requires is filled with an empty
// default when missing (average_rating "0.00", rating_count 0, empty lists, an empty store with id
// 0); a field that is present must have the right type; every meta_data item ends up with both key
// and name (the web app reads key, SPEC names it name). Unknown fields are kept. Errors are
// EINVALID and name the field.
func ParseProduct(doc []byte) (Product, error) {
	if len(doc) > MaxProductBytes {
		return Product{}, Errorf(EINVALID, "product is larger than %d bytes", MaxProductBytes)
	}
	if !utf8.Valid(doc) {
		return Product{}, Errorf(EINVALID, "product is not valid UTF-8")
	}
	var f map[string]json.RawMessage
	if err := json.Unmarshal(doc, &f); err != nil || f == nil {
		return Product{}, Errorf(EINVALID, "product is not a JSON object")
	}
	bad := func(field, msg string) error { return Errorf(EINVALID, "field %q: %s", field, msg) }
	var p Product
	if !jsonInt(f["id"], &p.ID) || p.ID <= 0 {
		return Product{}, bad("id", "is required and must be a positive integer")
	}
	if json.Unmarshal(f["name"], &p.Name) != nil || f["name"] == nil || isNull(f["name"]) {
		return Product{}, bad("name", "is required and must be a string")
	}
	for field, def := range map[string]string{"status": "publish", "description": "", "short_description": "",
		"stock_status": "instock", "permalink": "", "price": ""} {
		if err := defaultString(f, field, def); err != nil {
			return Product{}, bad(field, err.Error())
		}
	}
	json.Unmarshal(f["permalink"], &p.Permalink)

	// Ratings: average_rating is a string such as "4.50"; a number is accepted and converted.
	avg := 0.0
	if raw, ok := f["average_rating"]; ok && !isNull(raw) {
		var s string
		var n float64
		switch {
		case json.Unmarshal(raw, &s) == nil:
			v, err := strconv.ParseFloat(strings.TrimSpace(s), 64)
			if err != nil && s != "" || math.IsNaN(v) || math.IsInf(v, 0) || v < 0 {
				return Product{}, bad("average_rating", "must be a decimal number such as \"4.50\"")
			}
			avg = v
		case json.Unmarshal(raw, &n) == nil && n >= 0:
			avg = n
		default:
			return Product{}, bad("average_rating", "must be a decimal number such as \"4.50\"")
		}
	}
	var count int64
	if raw, ok := f["rating_count"]; ok && !isNull(raw) {
		if !jsonInt(raw, &count) || count < 0 || count > math.MaxInt32 {
			return Product{}, bad("rating_count", "must be a non-negative integer")
		}
	}
	p.RatingCount, p.RatingSum = int(count), avg*float64(count)
	f["average_rating"], f["rating_count"] = ratingJSON(p.RatingCount, p.RatingSum)

	if raw, ok := f["purchasable"]; !ok || isNull(raw) {
		f["purchasable"] = json.RawMessage("false")
	} else if json.Unmarshal(raw, new(bool)) != nil {
		return Product{}, bad("purchasable", "must be a boolean")
	}

	// Lists of objects.
	cats, err := objects(f, "categories")
	if err != nil {
		return Product{}, err
	}
	for i, c := range cats {
		if err := requireInt(c, "id", fmt.Sprintf("categories[%d].id", i)); err != nil {
			return Product{}, err
		}
		for _, k := range []string{"name", "slug"} {
			if err := defaultString(c, k, ""); err != nil {
				return Product{}, bad(fmt.Sprintf("categories[%d].%s", i, k), err.Error())
			}
		}
	}
	if f["categories"], err = json.Marshal(cats); err != nil {
		return Product{}, err
	}
	attrs, err := objects(f, "attributes")
	if err != nil {
		return Product{}, err
	}
	for i, a := range attrs {
		at := fmt.Sprintf("attributes[%d]", i)
		if err := requireInt(a, "id", at+".id"); err != nil {
			return Product{}, err
		}
		var name string
		if json.Unmarshal(a["name"], &name) != nil || isNull(a["name"]) {
			return Product{}, bad(at+".name", "is required and must be a string")
		}
		var opts []string
		if raw, ok := a["options"]; !ok || isNull(raw) {
			a["options"] = json.RawMessage("[]")
		} else if json.Unmarshal(raw, &opts) != nil {
			return Product{}, bad(at+".options", "must be an array of strings")
		}
		if name == "reverse-domain-name" && len(opts) > 0 {
			p.App = opts[0]
		}
	}
	if f["attributes"], err = json.Marshal(attrs); err != nil {
		return Product{}, err
	}
	metas, err := objects(f, "meta_data")
	if err != nil {
		return Product{}, err
	}
	for i, m := range metas {
		at := fmt.Sprintf("meta_data[%d]", i)
		if _, ok := m["id"]; !ok {
			m["id"] = json.RawMessage("0")
		} else if err := requireInt(m, "id", at+".id"); err != nil {
			return Product{}, err
		}
		var key, name string
		_, hasKey := m["key"]
		_, hasName := m["name"]
		if hasKey && json.Unmarshal(m["key"], &key) != nil || hasName && json.Unmarshal(m["name"], &name) != nil {
			return Product{}, bad(at, "key and name must be strings")
		}
		switch {
		case !hasKey && !hasName:
			return Product{}, bad(at+".key", "is required")
		case hasKey && hasName && key != name:
			return Product{}, bad(at, fmt.Sprintf("key %q and name %q differ", key, name))
		case !hasKey:
			m["key"] = m["name"]
		case !hasName:
			m["name"] = m["key"]
		}
		if _, ok := m["value"]; !ok {
			m["value"] = json.RawMessage(`""`)
		}
	}
	if f["meta_data"], err = json.Marshal(metas); err != nil {
		return Product{}, err
	}

	// The store, with its address.
	store := map[string]json.RawMessage{}
	if raw, ok := f["store"]; ok && !isNull(raw) {
		if json.Unmarshal(raw, &store) != nil || store == nil {
			return Product{}, bad("store", "must be an object")
		}
	}
	if _, ok := store["id"]; !ok {
		store["id"] = json.RawMessage("0")
	}
	if !jsonInt(store["id"], &p.StoreID) || p.StoreID < 0 {
		return Product{}, bad("store.id", "must be a non-negative integer")
	}
	for _, k := range []string{"name", "shop_name", "url"} {
		if err := defaultString(store, k, ""); err != nil {
			return Product{}, bad("store."+k, err.Error())
		}
	}
	addr := map[string]json.RawMessage{}
	if raw, ok := store["address"]; ok && !isNull(raw) {
		if json.Unmarshal(raw, &addr) != nil || addr == nil {
			return Product{}, bad("store.address", "must be an object")
		}
	}
	for _, k := range []string{"street_1", "street_2", "city", "zip", "country", "state"} {
		if err := defaultString(addr, k, ""); err != nil {
			return Product{}, bad("store.address."+k, err.Error())
		}
	}
	if store["address"], err = json.Marshal(addr); err != nil {
		return Product{}, err
	}
	if f["store"], err = json.Marshal(store); err != nil {
		return Product{}, err
	}
	if p.Document, err = json.Marshal(f); err != nil {
		return Product{}, err
	}
	return p, nil
}

func isNull(raw json.RawMessage) bool { return bytes.Equal(bytes.TrimSpace(raw), []byte("null")) }

// jsonInt decodes a JSON integer (no fraction) into v.
func jsonInt(raw json.RawMessage, v *int64) bool {
	if raw == nil {
		return false
	}
	return json.Unmarshal(raw, v) == nil
}

func requireInt(obj map[string]json.RawMessage, key, field string) error {
	var n int64
	if !jsonInt(obj[key], &n) {
		return Errorf(EINVALID, "field %q: is required and must be an integer", field)
	}
	return nil
}

// defaultString sets obj[key] to def when it is missing or null and checks that it is a string.
func defaultString(obj map[string]json.RawMessage, key, def string) error {
	raw, ok := obj[key]
	if !ok || isNull(raw) {
		obj[key], _ = json.Marshal(def)
		return nil
	}
	var s string
	if json.Unmarshal(raw, &s) != nil {
		return errors.New("must be a string")
	}
	return nil
}

// objects returns f[key] as a list of objects; missing or null is an empty list.
func objects(f map[string]json.RawMessage, key string) ([]map[string]json.RawMessage, error) {
	raw, ok := f[key]
	if !ok || isNull(raw) {
		return []map[string]json.RawMessage{}, nil
	}
	var out []map[string]json.RawMessage
	if json.Unmarshal(raw, &out) != nil {
		return nil, Errorf(EINVALID, "field %q: must be an array of objects", key)
	}
	for i, o := range out {
		if o == nil {
			return nil, Errorf(EINVALID, "field %q: item %d must be an object", key, i)
		}
	}
	return out, nil
}

// ratingJSON is the average_rating ("4.50") and rating_count of count ratings summing to sum.
func ratingJSON(count int, sum float64) (avg, n json.RawMessage) {
	a := 0.0
	if count > 0 {
		a = sum / float64(count)
	}
	avg, _ = json.Marshal(strconv.FormatFloat(a, 'f', 2, 64))
	return avg, json.RawMessage(strconv.Itoa(count))
}

// withRating returns the product with its rating set to count ratings summing to sum, in its
// fields and in its document.
func (p Product) withRating(count int, sum float64) (Product, error) {
	var f map[string]json.RawMessage
	if err := json.Unmarshal(p.Document, &f); err != nil {
		return p, fmt.Errorf("product %d: stored document: %w", p.ID, err)
	}
	f["average_rating"], f["rating_count"] = ratingJSON(count, sum)
	doc, err := json.Marshal(f)
	if err != nil {
		return p, err
	}
	p.RatingCount, p.RatingSum, p.Document = count, sum, doc
	return p, nil
}

// ImportProducts validates every product of a JSON array (ParseProduct) and stores them all, or
// none when one is invalid (EINVALID naming its position and field). A product whose id is stored
// already is replaced, rating included: the imported document is the truth.
func (s *Service) ImportProducts(ctx context.Context, array []byte) ([]Product, error) {
	var docs []json.RawMessage
	if err := json.Unmarshal(array, &docs); err != nil {
		return nil, Errorf(EINVALID, "products must be a JSON array of product objects")
	}
	now := s.clock.Now().UTC().Truncate(time.Millisecond)
	products := make([]Product, 0, len(docs))
	seen := make(map[int64]int, len(docs))
	for i, d := range docs {
		p, err := ParseProduct(d)
		if err != nil {
			return nil, Errorf(EINVALID, "product %d: %s", i, ErrorMessage(err))
		}
		if j, dup := seen[p.ID]; dup {
			return nil, Errorf(EINVALID, "product %d: id %d repeats product %d", i, p.ID, j)
		}
		seen[p.ID] = i
		p.UpdatedAt = now
		products = append(products, p)
	}
	_, err := mutate(s, ctx, func(tx Tx, now time.Time) (struct{}, AuditRecord, error) {
		ids := make([]int64, 0, len(products))
		for _, p := range products {
			if err := tx.PutProduct(p); err != nil {
				return struct{}{}, AuditRecord{}, err
			}
			ids = append(ids, p.ID)
		}
		return struct{}{}, AuditRecord{Action: "product.import", Target: "products", After: map[string]any{"ids": ids}}, nil
	})
	s.catalogueGen.Add(1) // also after a failure: the transaction may have committed
	if err != nil {
		return nil, wrap("import products", err)
	}
	return products, nil
}

// Products returns the products q selects and how many it selects without Offset and Limit.
func (s *Service) Products(ctx context.Context, q ProductQuery) ([]Product, int, error) {
	ps, total, err := s.store.Products(ctx, q)
	if err != nil {
		return nil, 0, fmt.Errorf("products: %w", err)
	}
	return ps, total, nil
}

// Review is a user's review of a product (wire contract §2.10). A user has at most one review of
// a product; reviewing it again replaces it.
type Review struct {
	ID               int64
	ProductID        int64
	ProductName      string
	ProductPermalink string
	UserID           int64
	Reviewer         string // the account's display name (its username when it has none)
	ReviewerEmail    string // the account's e-mail address
	Text             string
	Rating           float64
	Status           string // "approved"
	Verified         bool   // the reviewer owns the product through an active subscription
	CreatedAt        time.Time
}

// ErrReviewTokenRequired refuses a review that carries no token, neither in an Authorization header
// nor in the body's jwt (wire contract §2.10 accepts either).
var ErrReviewTokenRequired = &Error{Code: EUNAUTHORIZED, Message: "Missing token: send Authorization: Bearer or jwt"}

// ErrReviewNotOwner refuses a review by a user who does not own the product (wire contract §2.10).
var ErrReviewNotOwner = &Error{Code: EFORBIDDEN, Message: "Only a user who owns this product may review it"}

// ReviewInput is a review as a user posts it. The reviewer's name and e-mail address are not part
// of it: they come from the account.
type ReviewInput struct {
	ProductID int64
	Review    string
	Rating    float64
}

// PostReview stores the review of a product by user, who must own it (an active or pending-cancel
// subscription), and updates the product's average_rating and rating_count in the same
// transaction. A user's second review of a product replaces the first: each user counts once in
// the rating. The reviewer's name and e-mail address are the account's. Errors: EINVALID for a bad
// field or an unknown product, ErrReviewNotOwner (EFORBIDDEN) for a user who does not own it.
func (s *Service) PostReview(ctx context.Context, user User, in ReviewInput) (Review, error) {
	switch {
	case in.ProductID <= 0:
		return Review{}, Errorf(EINVALID, "Invalid payload: product_id must be a positive integer")
	case strings.TrimSpace(in.Review) == "" || len(in.Review) > 10000 || !utf8.ValidString(in.Review):
		return Review{}, Errorf(EINVALID, "Invalid payload: review must be 1 to 10000 characters")
	case math.IsNaN(in.Rating) || in.Rating < 1 || in.Rating > 5:
		return Review{}, Errorf(EINVALID, "Invalid payload: rating must be from 1 to 5")
	}
	if ActorFrom(ctx).Kind == ActorSystem {
		ctx = WithActor(ctx, Actor{Kind: ActorConsole, Name: user.Username})
	}
	reviewer := user.DisplayName
	if strings.TrimSpace(reviewer) == "" {
		reviewer = user.Username
	}
	out, err := mutate(s, ctx, func(tx Tx, now time.Time) (Review, AuditRecord, error) {
		now = now.Truncate(time.Second)
		// The product's row lock orders every review of it: one user's concurrent reviews find
		// each other, and the rating adds up.
		p, err := tx.LockProduct(in.ProductID)
		if errors.Is(err, ErrNotFound) {
			return Review{}, AuditRecord{}, Errorf(EINVALID, "Invalid payload: no product with product_id %d", in.ProductID)
		} else if err != nil {
			return Review{}, AuditRecord{}, err
		}
		owns, err := tx.OwnsProduct(user.ID, p.ID)
		if err != nil {
			return Review{}, AuditRecord{}, err
		}
		if !owns {
			return Review{}, AuditRecord{}, ErrReviewNotOwner
		}
		r := Review{ProductID: p.ID, ProductName: p.Name, ProductPermalink: p.Permalink, UserID: user.ID,
			Reviewer: reviewer, ReviewerEmail: user.Email, Text: in.Review, Rating: in.Rating,
			Status: "approved", Verified: true, CreatedAt: now}
		count, sum := p.RatingCount+1, p.RatingSum+in.Rating
		old, err := tx.ReviewByUser(p.ID, user.ID)
		switch {
		case err == nil:
			r.ID = old.ID
			count, sum = p.RatingCount, max(0, p.RatingSum-old.Rating+in.Rating)
			if count < 1 { // the product's rating was replaced by an import since
				count, sum = 1, in.Rating
			}
			err = tx.UpdateReview(r)
		case errors.Is(err, ErrNotFound):
			r, err = tx.AddReview(r)
		}
		if err != nil {
			return Review{}, AuditRecord{}, err
		}
		before := map[string]any{"ratingCount": p.RatingCount}
		if old.ID != 0 {
			before["rating"] = old.Rating
		}
		if p, err = p.withRating(count, sum); err != nil {
			return Review{}, AuditRecord{}, err
		}
		p.UpdatedAt = now
		if err := tx.PutProduct(p); err != nil {
			return Review{}, AuditRecord{}, err
		}
		return r, AuditRecord{Action: "review.create", Target: "product:" + strconv.FormatInt(p.ID, 10),
			Before: before, After: map[string]any{"ratingCount": p.RatingCount, "rating": in.Rating, "review": r.ID, "replaced": old.ID != 0}}, nil
	})
	s.catalogueGen.Add(1)
	if err != nil {
		return Review{}, wrap("post review", err)
	}
	return out, nil
}

// Subscription is a user's order of a product, recorded by an admin. A user owns the product
// while the subscription's status is active or pending-cancel (paid up to the end of its term).
type Subscription struct {
	ID        int64
	UserID    int64
	ProductID int64
	Status    string
	CreatedAt time.Time
}

// SubscriptionStatuses are the statuses a subscription may have (WooCommerce Subscriptions').
var SubscriptionStatuses = []string{"active", "pending-cancel", "on-hold", "pending", "cancelled", "expired"}

// OwningStatuses are the subscription statuses under which the user owns the product.
var OwningStatuses = []string{"active", "pending-cancel"}

// AddSubscription records that a user ordered a product. Errors: EINVALID for an unknown status,
// ENOTFOUND for an unknown user or product.
func (s *Service) AddSubscription(ctx context.Context, username string, productID int64, status string) (Subscription, error) {
	known := false
	for _, st := range SubscriptionStatuses {
		known = known || st == status
	}
	if !known {
		return Subscription{}, Errorf(EINVALID, "status must be one of %s", strings.Join(SubscriptionStatuses, ", "))
	}
	u, err := s.store.UserByUsername(ctx, username)
	if errors.Is(err, ErrNotFound) {
		return Subscription{}, Errorf(ENOTFOUND, "user %q not found", username)
	} else if err != nil {
		return Subscription{}, fmt.Errorf("add subscription: %w", err)
	}
	sub, err := mutate(s, ctx, func(tx Tx, now time.Time) (Subscription, AuditRecord, error) {
		if _, err := tx.LockProduct(productID); errors.Is(err, ErrNotFound) {
			return Subscription{}, AuditRecord{}, Errorf(ENOTFOUND, "product %d not found", productID)
		} else if err != nil {
			return Subscription{}, AuditRecord{}, err
		}
		sub, err := tx.CreateSubscription(Subscription{UserID: u.ID, ProductID: productID, Status: status, CreatedAt: now})
		if err != nil {
			return Subscription{}, AuditRecord{}, err
		}
		return sub, AuditRecord{Action: "subscription.create", Target: "subscription:" + strconv.FormatInt(sub.ID, 10),
			After: map[string]any{"user": username, "product": productID, "status": status}}, nil
	})
	if err != nil {
		return Subscription{}, wrap("add subscription", err)
	}
	return sub, nil
}

// Subscriptions lists the subscriptions of a user (userID > 0) or of everyone, in id order; with
// storeID only those of products in that store.
func (s *Service) Subscriptions(ctx context.Context, userID int64, storeID *int64) ([]Subscription, error) {
	subs, err := s.store.Subscriptions(ctx, userID, storeID)
	if err != nil {
		return nil, fmt.Errorf("subscriptions: %w", err)
	}
	return subs, nil
}
