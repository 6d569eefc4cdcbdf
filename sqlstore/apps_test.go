package sqlstore_test

import (
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"openconsole"
	"openconsole/sqlstore/sqlstoretest"
)

func TestAppsAndManifests(t *testing.T) {
	sqlstoretest.Each(t, func(t *testing.T, dsn string) {
		st := open(t, dsn)
		if _, err := st.App(ctx, "tech.flecs.a"); !errors.Is(err, openconsole.ErrNotFound) {
			t.Fatalf("unknown app: err %v; want ErrNotFound", err)
		}
		a := openconsole.App{Name: "tech.flecs.a", Official: true, CreatedAt: t0, UpdatedAt: t0}
		m := func(schema, doc string, at time.Time) openconsole.Manifest {
			return openconsole.Manifest{App: a.Name, Version: "1.0.0", SchemaVersion: schema, Document: json.RawMessage(doc), CreatedAt: at}
		}
		update(t, st, func(tx openconsole.Tx) error {
			if err := tx.PutApp(a); err != nil {
				return err
			}
			for _, mm := range []openconsole.Manifest{m("2.0.0", `{"v":2}`, t0), m("3.0.0", `{"v":3}`, t0.Add(time.Second))} {
				if replaced, err := tx.PutManifest(mm); err != nil || replaced {
					return fmt.Errorf("put manifest: replaced %v, %v", replaced, err)
				}
			}
			// A variant stored again is replaced.
			replaced, err := tx.PutManifest(m("2.0.0", `{"v":"2b"}`, t0.Add(2*time.Second)))
			if err != nil || !replaced {
				return fmt.Errorf("replace manifest: replaced %v, %v", replaced, err)
			}
			return nil
		})
		got, err := st.App(ctx, a.Name)
		if err != nil || got != a {
			t.Errorf("app %+v, %v; want %+v", got, err, a)
		}
		ms, err := st.Manifests(ctx, a.Name, "1.0.0")
		if err != nil || len(ms) != 2 {
			t.Fatalf("manifests %+v, %v; want 2", ms, err)
		}
		if ms[0].SchemaVersion != "3.0.0" || string(ms[1].Document) != `{"v":"2b"}` || !ms[1].CreatedAt.Equal(t0.Add(2*time.Second)) {
			t.Errorf("manifests %+v; want 3.0.0 then the replaced 2.0.0, in creation order", ms)
		}
		for _, q := range [][2]string{{"", ""}, {a.Name, ""}} {
			if ms, err := st.Manifests(ctx, q[0], q[1]); err != nil || len(ms) != 2 {
				t.Errorf("manifests %q: %d, %v; want 2", q, len(ms), err)
			}
		}
		if ms, err := st.Manifests(ctx, a.Name, "9.9.9"); err != nil || len(ms) != 0 {
			t.Errorf("manifests of an unknown version: %d, %v; want none", len(ms), err)
		}
		// A manifest needs its app.
		err = st.Update(ctx, func(tx openconsole.Tx) error {
			_, err := tx.PutManifest(openconsole.Manifest{App: "tech.flecs.none", Version: "1", SchemaVersion: "3.0.0", Document: []byte(`{}`)})
			return err
		})
		if err == nil {
			t.Error("a manifest of an unknown app was stored")
		}
		// Credentials, and updating the flag.
		a.Official, a.Credentials, a.UpdatedAt = false, "v1.k.sealed", t0.Add(time.Hour)
		update(t, st, func(tx openconsole.Tx) error { return tx.PutApp(a) })
		if got, _ := st.App(ctx, a.Name); got != a {
			t.Errorf("app after update %+v; want %+v", got, a)
		}
		var n1, n2 int
		update(t, st, func(tx openconsole.Tx) error {
			var err error
			if n1, err = tx.RemoveManifests(a.Name, "1.0.0", "2.0.0"); err != nil {
				return err
			}
			n2, err = tx.RemoveManifests(a.Name, "1.0.0", "")
			return err
		})
		if n1 != 1 || n2 != 1 {
			t.Errorf("removed %d then %d; want 1 and 1", n1, n2)
		}
	})
}

func TestDataKeysAndTokenIssuances(t *testing.T) {
	sqlstoretest.Each(t, func(t *testing.T, dsn string) {
		st := open(t, dsn)
		k1, k2 := openconsole.NewDataKey(t0), openconsole.NewDataKey(t0.Add(time.Second))
		update(t, st, func(tx openconsole.Tx) error {
			if keys, err := tx.DataKeys(); err != nil || len(keys) != 0 {
				return fmt.Errorf("data keys in a new database: %v, %v", keys, err)
			}
			if err := tx.AddDataKey(k2); err != nil {
				return err
			}
			return tx.AddDataKey(k1)
		})
		keys, err := st.DataKeys(ctx)
		if err != nil || len(keys) != 2 || keys[0].ID != k1.ID || string(keys[1].Secret) != string(k2.Secret) {
			t.Fatalf("data keys %+v, %v; want k1 then k2", keys, err)
		}

		// Token issuances reference a session.
		var sid string
		update(t, st, func(tx openconsole.Tx) error {
			l, err := tx.CreateLicense(openconsole.License{Key: "K-1", Kind: openconsole.KindKey, Seats: 1, CreatedAt: t0})
			if err != nil {
				return err
			}
			sid = openconsole.NewSessionID()
			return tx.CreateSession(openconsole.Session{ID: sid, LicenseID: l.ID, Timestamp: 1, CreatedAt: t0, LastSeenAt: t0})
		})
		update(t, st, func(tx openconsole.Tx) error {
			for i, official := range []bool{true, false} {
				ti := openconsole.TokenIssuance{SessionID: sid, App: "tech.flecs.a", Version: fmt.Sprint(i), Credentials: official, IssuedAt: t0}
				if err := tx.RecordToken(ti); err != nil {
					return err
				}
			}
			// A second answer for version 0 counts on its record.
			return tx.RecordToken(openconsole.TokenIssuance{SessionID: sid, App: "tech.flecs.a", Version: "0", Credentials: true, IssuedAt: t0.Add(time.Hour)})
		})
		err = st.Update(ctx, func(tx openconsole.Tx) error {
			return tx.RecordToken(openconsole.TokenIssuance{SessionID: openconsole.NewSessionID(), App: "a", Version: "1", IssuedAt: t0})
		})
		if err == nil {
			t.Error("a token issuance of an unknown session was stored")
		}
		for _, q := range []string{"", sid} {
			tis, err := st.TokenIssuances(ctx, q)
			if err != nil || len(tis) != 2 || !tis[0].Credentials || tis[1].Credentials || tis[0].ID >= tis[1].ID ||
				tis[0].SessionID != sid || !tis[0].IssuedAt.Equal(t0.Truncate(time.Millisecond)) ||
				tis[0].Count != 2 || !tis[0].LastIssuedAt.Equal(t0.Add(time.Hour).Truncate(time.Millisecond)) || tis[1].Count != 1 {
				t.Errorf("token issuances %q: %+v, %v", q, tis, err)
			}
		}
		if tis, err := st.TokenIssuances(ctx, openconsole.NewSessionID()); err != nil || len(tis) != 0 {
			t.Errorf("token issuances of another session: %+v, %v; want none", tis, err)
		}
	})
}

func TestProductsReviewsSubscriptions(t *testing.T) {
	sqlstoretest.Each(t, func(t *testing.T, dsn string) {
		st := open(t, dsn)
		product := func(id, store int64, app string) openconsole.Product {
			return openconsole.Product{ID: id, StoreID: store, App: app, Name: fmt.Sprint("P", id), Permalink: "https://x/" + fmt.Sprint(id),
				RatingCount: 2, RatingSum: 9, Document: json.RawMessage(fmt.Sprintf(`{"id":%d}`, id)), UpdatedAt: t0}
		}
		var u1, u2 openconsole.User
		update(t, st, func(tx openconsole.Tx) error {
			var err error
			if u1, err = tx.CreateUser(openconsole.User{Username: "u1", PasswordHash: "h", CreatedAt: t0}); err != nil {
				return err
			}
			if u2, err = tx.CreateUser(openconsole.User{Username: "u2", PasswordHash: "h", CreatedAt: t0}); err != nil {
				return err
			}
			for _, p := range []openconsole.Product{product(3, 791, "tech.flecs.c"), product(1, 1, "tech.flecs.a"), product(2, 1, ""), product(4, 791, "")} {
				if err := tx.PutProduct(p); err != nil {
					return err
				}
			}
			for _, s := range []openconsole.Subscription{{UserID: u1.ID, ProductID: 1, Status: "active"}, {UserID: u1.ID, ProductID: 2, Status: "pending-cancel"},
				{UserID: u1.ID, ProductID: 3, Status: "cancelled"}, {UserID: u2.ID, ProductID: 3, Status: "active"}} {
				s.CreatedAt = t0
				if got, err := tx.CreateSubscription(s); err != nil || got.ID <= 0 {
					return fmt.Errorf("create subscription: %+v, %v", got, err)
				}
			}
			return nil
		})
		ids := func(ps []openconsole.Product) string {
			var s []string
			for _, p := range ps {
				s = append(s, fmt.Sprint(p.ID))
			}
			return strings.Join(s, ",")
		}
		store791 := int64(791)
		for _, tc := range []struct {
			name  string
			q     openconsole.ProductQuery
			ids   string
			total int
		}{
			{"all", openconsole.ProductQuery{}, "1,2,3,4", 4},
			{"store", openconsole.ProductQuery{StoreID: &store791}, "3,4", 2},
			{"apps", openconsole.ProductQuery{AppsOnly: true}, "1,3", 2},
			{"store_apps", openconsole.ProductQuery{StoreID: &store791, AppsOnly: true}, "3", 1},
			{"owned", openconsole.ProductQuery{OwnerID: u1.ID}, "1,2", 2},
			{"owned_apps", openconsole.ProductQuery{OwnerID: u1.ID, AppsOnly: true}, "1", 1},
			{"owned_u2", openconsole.ProductQuery{OwnerID: u2.ID}, "3", 1},
			{"page", openconsole.ProductQuery{Offset: 1, Limit: 2}, "2,3", 4},
			{"past_end", openconsole.ProductQuery{Offset: 10, Limit: 2}, "", 4},
		} {
			ps, total, err := st.Products(ctx, tc.q)
			if err != nil || ids(ps) != tc.ids || total != tc.total {
				t.Errorf("%s: ids %q, total %d, %v; want %q, %d", tc.name, ids(ps), total, err, tc.ids, tc.total)
			}
		}
		ps, _, _ := st.Products(ctx, openconsole.ProductQuery{StoreID: &store791, AppsOnly: true})
		if want := product(3, 791, "tech.flecs.c"); len(ps) != 1 || ps[0].Name != want.Name || ps[0].App != want.App ||
			ps[0].Permalink != want.Permalink || ps[0].RatingSum != 9 || string(ps[0].Document) != string(want.Document) {
			t.Errorf("product 3 read back as %+v", ps)
		}

		var owns1, owns2, owns3 bool
		var rv openconsole.Review
		update(t, st, func(tx openconsole.Tx) error {
			var err error
			if owns1, err = tx.OwnsProduct(u1.ID, 1); err != nil {
				return err
			}
			if owns2, err = tx.OwnsProduct(u1.ID, 2); err != nil {
				return err
			}
			if owns3, err = tx.OwnsProduct(u1.ID, 3); err != nil {
				return err
			}
			if _, err := tx.LockProduct(99); !errors.Is(err, openconsole.ErrNotFound) {
				return fmt.Errorf("unknown product: %v; want ErrNotFound", err)
			}
			rv, err = tx.AddReview(openconsole.Review{ProductID: 1, UserID: u1.ID, Reviewer: "u1", ReviewerEmail: "u1@x",
				Text: "x", Rating: 4.5, Status: "approved", CreatedAt: t0})
			return err
		})
		if !owns1 || !owns2 || owns3 {
			t.Errorf("u1 owns 1, 2, 3: %v %v %v; want true true false", owns1, owns2, owns3)
		}
		if rv.ID <= 0 {
			t.Errorf("review id %d; want > 0", rv.ID)
		}

		subs, err := st.Subscriptions(ctx, u1.ID, nil)
		if err != nil || len(subs) != 3 || subs[0].ProductID != 1 || subs[2].Status != "cancelled" || !subs[0].CreatedAt.Equal(t0.Truncate(time.Millisecond)) {
			t.Errorf("u1's subscriptions %+v, %v", subs, err)
		}
		if subs, err := st.Subscriptions(ctx, 0, &store791); err != nil || len(subs) != 2 {
			t.Errorf("store 791 subscriptions %+v, %v; want 2", subs, err)
		}
	})
}

// TestConcurrentReviewsCountExactly posts reviews from many goroutines at once, on one server and
// across two stores on one database: every owner counts exactly once in rating_count and
// average_rating, however many reviews they post at once (issue 10, finding 8: one review per
// user and product), and a user who does not own the product is refused.
func TestConcurrentReviewsCountExactly(t *testing.T) {
	sqlstoretest.Each(t, func(t *testing.T, dsn string) {
		st1, st2 := open(t, dsn), open(t, dsn)
		svc1, err := openconsole.NewService(ctx, st1, openconsole.Options{})
		if err != nil {
			t.Fatal(err)
		}
		defer svc1.Close()
		svc2, err := openconsole.NewService(ctx, st2, openconsole.Options{})
		if err != nil {
			t.Fatal(err)
		}
		defer svc2.Close()
		if _, err := svc1.ImportProducts(ctx, []byte(`[{"id":1,"name":"A","average_rating":"5.00","rating_count":1}]`)); err != nil {
			t.Fatal(err)
		}
		const owners, each = 10, 6
		var users []openconsole.User
		for i := range owners + 1 {
			u, err := svc1.CreateUser(ctx, openconsole.UserInput{Username: fmt.Sprintf("u%d", i), Password: "pw", DisplayName: fmt.Sprintf("User %d", i)})
			if err != nil {
				t.Fatal(err)
			}
			if i < owners {
				if _, err := svc1.AddSubscription(ctx, u.Username, 1, "active"); err != nil {
					t.Fatal(err)
				}
			}
			users = append(users, u)
		}
		var wg sync.WaitGroup
		errs := make(chan error, (owners+1)*each)
		for i, u := range users {
			for j := range each {
				svc := svc1
				if j%2 == 1 {
					svc = svc2
				}
				wg.Add(1)
				go func() {
					defer wg.Done()
					// Each owner's reviews carry one rating (1 or 3), so the outcome is known
					// whichever of them comes last.
					_, err := svc.PostReview(ctx, u, openconsole.ReviewInput{ProductID: 1, Review: "ok", Rating: float64(1 + i%2*2)})
					if i == owners {
						if err != openconsole.ErrReviewNotOwner {
							errs <- fmt.Errorf("review by a user who does not own the product: %v, want ErrReviewNotOwner", err)
						}
						return
					}
					errs <- err
				}()
			}
		}
		wg.Wait()
		close(errs)
		for err := range errs {
			if err != nil {
				t.Fatal(err)
			}
		}
		ps, _, err := st1.Products(ctx, openconsole.ProductQuery{})
		if err != nil || len(ps) != 1 {
			t.Fatalf("products %+v, %v", ps, err)
		}
		var doc struct {
			Avg   string `json:"average_rating"`
			Count int    `json:"rating_count"`
		}
		if err := json.Unmarshal(ps[0].Document, &doc); err != nil {
			t.Fatal(err)
		}
		// 1 rating of 5 plus 5 owners' 1 and 5 owners' 3: 25 / 11 = 2.27
		if ps[0].RatingCount != owners+1 || doc.Count != owners+1 || doc.Avg != "2.27" {
			t.Errorf("%d owners posting %d reviews each: rating_count %d (document %d), average_rating %q; want %d and \"2.27\"",
				owners, each, ps[0].RatingCount, doc.Count, doc.Avg, owners+1)
		}
		var reviews int
		if err := st1.Update(ctx, func(tx openconsole.Tx) error {
			for _, u := range users {
				if _, err := tx.ReviewByUser(1, u.ID); err == nil {
					reviews++
				} else if !errors.Is(err, openconsole.ErrNotFound) {
					return err
				}
			}
			return nil
		}); err != nil {
			t.Fatal(err)
		}
		if reviews != owners {
			t.Errorf("%d reviews stored, want one per owner (%d)", reviews, owners)
		}
	})
}
