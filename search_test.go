package openconsole_test

import (
	"slices"
	"testing"
	"time"

	"openconsole"
	"openconsole/sqlstore/sqlstoretest"
)

// TestLicenseSearch: the search finds a substring of the key, the note or the owner's username in
// any case, follows changes of the note and the owner, and pages like the unfiltered list.
func TestLicenseSearch(t *testing.T) {
	sqlstoretest.Each(t, func(t *testing.T, dsn string) {
		svc := newService(t, dsn, openconsole.Options{})
		if _, err := svc.CreateUser(ctx, openconsole.UserInput{Username: "MuellerGmbH", Password: "password-123"}); err != nil {
			t.Fatal(err)
		}
		a := mustLicense(t, svc, openconsole.LicenseInput{Seats: 1, Key: "ABCD-1234-SEARCH", Note: "Order 4711 for Plant Süd"})
		b := mustLicense(t, svc, openconsole.LicenseInput{Seats: 1, Owner: "MuellerGmbH", Note: "spare"})
		var many []string
		for i := 0; i < 7; i++ {
			many = append(many, mustLicense(t, svc, openconsole.LicenseInput{Seats: 1, Note: "bulk order"}).Key)
		}
		find := func(q string, after int64, limit int) []string {
			t.Helper()
			var keys []string
			for l, err := range svc.Licenses(ctx, openconsole.LicenseQuery{Search: q, After: after, Limit: limit, Now: time.Now()}) {
				if err != nil {
					t.Fatal(err)
				}
				keys = append(keys, l.Key)
			}
			return keys
		}
		for q, want := range map[string][]string{
			"abcd-1234": {a.Key}, "ORDER 4711": {a.Key}, "plant süd": {a.Key}, "muellergmbh": {b.Key}, "gmbh": {b.Key},
			"nothing like it": nil, "bulk": many, "order": append([]string{a.Key}, many...),
		} {
			if got := find(q, 0, 0); !slices.Equal(got, want) {
				t.Errorf("search %q: %v, want %v", q, got, want)
			}
		}
		// Pages of three, by cursor.
		var paged []string
		var after int64
		for {
			var page []openconsole.License
			for l, err := range svc.Licenses(ctx, openconsole.LicenseQuery{Search: "bulk", After: after, Limit: 3, Now: time.Now()}) {
				if err != nil {
					t.Fatal(err)
				}
				page = append(page, l)
			}
			for _, l := range page {
				paged = append(paged, l.Key)
			}
			if len(page) < 3 {
				break
			}
			after = page[len(page)-1].ID
		}
		if !slices.Equal(paged, many) {
			t.Errorf("search in pages of three: %v, want %v", paged, many)
		}
		note, none := "renamed", ""
		if _, err := svc.UpdateLicense(ctx, a.Key, openconsole.LicensePatch{Note: &note}); err != nil {
			t.Fatal(err)
		}
		if _, err := svc.UpdateLicense(ctx, b.Key, openconsole.LicensePatch{Owner: &none}); err != nil {
			t.Fatal(err)
		}
		if got := find("4711", 0, 0); got != nil {
			t.Errorf("the old note still found %v", got)
		}
		if got := find("RENAMED", 0, 0); !slices.Equal(got, []string{a.Key}) {
			t.Errorf("the new note: %v", got)
		}
		if got := find("mueller", 0, 0); got != nil {
			t.Errorf("the former owner still finds %v", got)
		}
	})
}
