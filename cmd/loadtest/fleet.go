package main

import (
	"context"
	"crypto/sha256"
	"encoding/binary"
	"encoding/json"
	"flag"
	"fmt"
	"os"
	"time"

	"openconsole"
	"openconsole/sqlstore"
)

// fleet describes what populate put in the database, for run to use.
type fleet struct {
	Keys    []string    `json:"keys"`    // licenses for key-mode devices, 10 seats each
	Users   []fleetUser `json:"users"`   // users whose licenses bearer-mode devices draw from
	Serials []string    `json:"serials"` // registered serials, one device each
	// Stored sessions, live, whose ids storedSessionID(Seed, i) gives for i < Stored.
	Seed   string `json:"seed"`
	Stored int    `json:"stored"`
}

type fleetUser struct {
	Username string `json:"username"`
	Password string `json:"password"`
	Seats    int    `json:"seats"`
}

const seatsPerLicense = 10

// storedSessionID derives the id of stored session i: a well-formed v4 UUID, the same in populate
// and run. (Real sessions get random ids from crypto/rand; these only fill a test database.)
func storedSessionID(seed string, i int) string {
	var in [8]byte
	binary.BigEndian.PutUint64(in[:], uint64(i))
	sum := sha256.Sum256(append([]byte(seed), in[:]...))
	b := sum[:16]
	b[6] = b[6]&0x0f | 0x40
	b[8] = b[8]&0x3f | 0x80
	return fmt.Sprintf("%x-%x-%x-%x-%x", b[0:4], b[4:6], b[6:8], b[8:10], b[10:16])
}

func cmdPopulate(args []string) error {
	fs := flag.NewFlagSet("populate", flag.ContinueOnError)
	db := fs.String("db", os.Getenv("OPENCONSOLE_DB"), "database DSN (as openconsole --db)")
	devices := fs.Int("devices", 10000, "devices that run will activate")
	bearerShare := fs.Float64("bearer-share", 0.1, "share of devices that activate with a user's bearer token")
	serialShare := fs.Float64("serial-share", 0.1, "share of devices that activate with a serial number")
	stored := fs.Int("stored", 0, "live sessions to store besides (for validate with a large fleet)")
	out := fs.String("fleet", "fleet.json", "where to write the fleet description for run")
	seed := fs.String("seed", fmt.Sprint(time.Now().UnixNano()), "names and stored session ids derive from it")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if *db == "" {
		*db = "sqlite:openconsole.db"
	}
	ctx := context.Background()
	st, err := sqlstore.Open(ctx, *db, sqlstore.Options{})
	if err != nil {
		return err
	}
	defer st.Close()
	svc, err := openconsole.NewService(ctx, st, openconsole.Options{CacheSize: -1})
	if err != nil {
		return err
	}
	defer svc.Close()

	start := time.Now()
	f := fleet{Seed: *seed, Stored: *stored}
	nBearer := int(float64(*devices) * *bearerShare)
	nSerial := int(float64(*devices) * *serialShare)
	nKey := *devices - nBearer - nSerial
	now := time.Now().UTC()
	var lics []openconsole.License
	for i := 0; i < (nKey+seatsPerLicense-1)/seatsPerLicense; i++ {
		k := fmt.Sprintf("LT-%s-K%d", *seed, i)
		f.Keys = append(f.Keys, k)
		lics = append(lics, openconsole.License{Key: k, Kind: openconsole.KindKey, Seats: seatsPerLicense, CreatedAt: now})
	}
	// Bearer devices: users of 100 devices each, owning licenses of 10 seats.
	for u := 0; u*100 < nBearer; u++ {
		fu := fleetUser{Username: fmt.Sprintf("lt-%s-u%d", *seed, u), Password: "load-" + *seed, Seats: min(100, nBearer-u*100)}
		usr, err := svc.CreateUser(ctx, openconsole.UserInput{Username: fu.Username, Password: fu.Password})
		if err != nil {
			return err
		}
		for l := 0; l*seatsPerLicense < fu.Seats; l++ {
			lics = append(lics, openconsole.License{Key: fmt.Sprintf("LT-%s-U%d-%d", *seed, u, l), Kind: openconsole.KindKey,
				OwnerID: usr.ID, Seats: seatsPerLicense, CreatedAt: now})
		}
		f.Users = append(f.Users, fu)
	}
	if _, err := st.BulkInsertLicenses(ctx, lics); err != nil {
		return err
	}
	for i := 0; i < nSerial; i++ {
		sn := fmt.Sprintf("LT-%s-SN%d", *seed, i)
		if _, err := svc.RegisterSerialAdmin(ctx, openconsole.SerialInput{SerialNumber: sn, Model: "load", ManufacturerName: "load",
			ManufactureDate: "2026-01-01"}); err != nil {
			return err
		}
		f.Serials = append(f.Serials, sn)
	}
	fmt.Fprintf(os.Stderr, "fleet: %d key licenses, %d users, %d serials (%v)\n", len(f.Keys), len(f.Users), len(f.Serials), time.Since(start).Round(time.Millisecond))

	if *stored > 0 {
		start := time.Now()
		var storedLics []openconsole.License
		for i := 0; i < (*stored+seatsPerLicense-1)/seatsPerLicense; i++ {
			storedLics = append(storedLics, openconsole.License{Key: fmt.Sprintf("LT-%s-S%d", *seed, i), Kind: openconsole.KindKey,
				Seats: seatsPerLicense, CreatedAt: now})
		}
		ids, err := st.BulkInsertLicenses(ctx, storedLics)
		if err != nil {
			return err
		}
		base := now.UnixMilli()
		const chunk = 100_000
		for from := 0; from < *stored; from += chunk {
			ss := make([]openconsole.Session, 0, chunk)
			for i := from; i < min(from+chunk, *stored); i++ {
				ss = append(ss, openconsole.Session{ID: storedSessionID(*seed, i), LicenseID: ids[storedLics[i/seatsPerLicense].Key],
					Timestamp: base + int64(i), CreatedAt: now, LastSeenAt: now})
			}
			if err := st.BulkInsertSessions(ctx, ss); err != nil {
				return err
			}
			fmt.Fprintf(os.Stderr, "stored %d/%d sessions (%v)\n", min(from+chunk, *stored), *stored, time.Since(start).Round(time.Millisecond))
		}
	}
	b, _ := json.MarshalIndent(f, "", "  ")
	return os.WriteFile(*out, b, 0o644)
}
