package openconsole_test

import (
	"testing"

	"openconsole"
	"openconsole/sqlstore/sqlstoretest"
)

func BenchmarkParseSessionID(b *testing.B) {
	id := openconsole.NewSessionID()
	b.ReportAllocs()
	for b.Loop() {
		if _, ok := openconsole.ParseSessionID(id); !ok {
			b.Fatal("refused")
		}
	}
}

// BenchmarkValidate measures Service.Validate on SQLite: from the cache (the steady state), and
// with the cache off (every call reads the database).
func BenchmarkValidate(b *testing.B) {
	for _, bc := range []struct {
		name  string
		cache int
	}{{"cached", 0}, {"uncached", -1}} {
		b.Run(bc.name, func(b *testing.B) {
			st := sqlstoretest.Open(b, "sqlite")
			svc, err := openconsole.NewService(ctx, st, openconsole.Options{CacheSize: bc.cache})
			if err != nil {
				b.Fatal(err)
			}
			defer svc.Close()
			lic, err := svc.CreateLicense(ctx, openconsole.LicenseInput{Seats: 1})
			if err != nil {
				b.Fatal(err)
			}
			a, err := svc.Activate(ctx, openconsole.ActivateInput{LicenseKey: lic.Key})
			if err != nil {
				b.Fatal(err)
			}
			for i := 0; i < 1000; i++ { // until the first poll trusts the cache
				if _, ok, _ := svc.Validate(ctx, a.Session.ID); !ok {
					b.Fatal("invalid")
				}
			}
			b.ReportAllocs()
			b.ResetTimer()
			b.RunParallel(func(pb *testing.PB) {
				for pb.Next() {
					if _, ok, err := svc.Validate(ctx, a.Session.ID); !ok || err != nil {
						b.Fatal("invalid", err)
					}
				}
			})
		})
	}
}
