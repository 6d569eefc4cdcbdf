package main

import (
	"bufio"
	"errors"
	"io"
	"strings"
	"time"

	"openconsole"
	"openconsole/sqlstore"
)

type userOut struct {
	ID           int64     `json:"id"`
	Username     string    `json:"username"`
	Email        string    `json:"email"`
	DisplayName  string    `json:"displayName"`
	Vendor       bool      `json:"vendor"`
	Whitelabeled bool      `json:"whitelabeled"`
	CreatedAt    time.Time `json:"createdAt"`
}

func cmdUserCreate(e *cliEnv, args []string) int {
	fs := e.flags("user create")
	var in openconsole.UserInput
	fs.StringVar(&in.Username, "username", "", "login name (required)")
	fs.StringVar(&in.Password, "password", "", "password")
	stdinPw := fs.Bool("password-stdin", false, "read the password from the first line of standard input")
	fs.StringVar(&in.Email, "email", "", "e-mail address")
	fs.StringVar(&in.DisplayName, "display-name", "", "display name (default: the username)")
	fs.BoolVar(&in.Vendor, "vendor", false, "a manufacturer account that may register serial numbers")
	fs.BoolVar(&in.Whitelabeled, "whitelabeled", false, "the isWhitelabeled feature flag")
	if _, code, ok := e.parse(fs, args, 0); !ok {
		return code
	}
	if *stdinPw {
		if in.Password != "" {
			return e.usageErr("user create takes --password or --password-stdin, not both")
		}
		var line string
		var err error = io.EOF
		if e.stdin != nil {
			line, err = bufio.NewReader(e.stdin).ReadString('\n')
		}
		if err != nil && line == "" {
			return e.fail(errors.New("--password-stdin: no password on standard input"))
		}
		in.Password = strings.TrimRight(line, "\r\n")
	}
	if in.Username == "" || in.Password == "" {
		return e.usageErr("user create needs --username and --password (or --password-stdin)")
	}
	return e.withService(openconsole.Options{}, func(svc *openconsole.Service) (any, error) {
		u, err := svc.CreateUser(e.ctx, in)
		if err != nil {
			return nil, err
		}
		return userOut{u.ID, u.Username, u.Email, u.DisplayName, u.Vendor, u.Whitelabeled, u.CreatedAt}, nil
	})
}

type licenseOut struct {
	ID           int64      `json:"id"`
	Key          string     `json:"key"`
	Kind         string     `json:"kind"`
	Owner        *string    `json:"owner"`
	Activations  int        `json:"activations"`
	LiveSessions *int       `json:"liveSessions,omitempty"`
	ExpiresAt    *time.Time `json:"expiresAt"`
	Revoked      bool       `json:"revoked"`
	RevokedAt    *time.Time `json:"revokedAt"`
	CreatedAt    time.Time  `json:"createdAt"`
}

func timePtr(t time.Time) *time.Time {
	if t.IsZero() {
		return nil
	}
	return &t
}

// ownerNames resolves owner ids to usernames, caching them.
type ownerNames struct {
	e     *cliEnv
	svc   *openconsole.Service
	names map[int64]*string
}

func (o *ownerNames) name(id int64) *string {
	if id == 0 {
		return nil
	}
	if n, ok := o.names[id]; ok {
		return n
	}
	var n *string
	if u, err := o.svc.UserByID(o.e.ctx, id); err == nil {
		n = &u.Username
	}
	if o.names == nil {
		o.names = make(map[int64]*string)
	}
	o.names[id] = n
	return n
}

func licenseJSON(l openconsole.License, owner *string) licenseOut {
	return licenseOut{
		ID: l.ID, Key: l.Key, Kind: string(l.Kind), Owner: owner, Activations: l.Seats,
		ExpiresAt: timePtr(l.ExpiresAt), Revoked: !l.RevokedAt.IsZero(), RevokedAt: timePtr(l.RevokedAt), CreatedAt: l.CreatedAt,
	}
}

func cmdLicenseCreate(e *cliEnv, args []string) int {
	fs := e.flags("license create")
	var in openconsole.LicenseInput
	fs.StringVar(&in.Owner, "owner", "", "username of the owner (bearer activations draw from it)")
	fs.IntVar(&in.Seats, "activations", 1, "how many devices may be active at once")
	expires := fs.String("expires", "", "expiry time, RFC 3339 (default: never)")
	fs.StringVar(&in.Key, "key", "", "the key (default: a fresh random XXXX-XXXX-XXXX-XXXX-XXXX)")
	if _, code, ok := e.parse(fs, args, 0); !ok {
		return code
	}
	if *expires != "" {
		t, err := time.Parse(time.RFC3339, *expires)
		if err != nil {
			return e.usageErr("--expires: %v", err)
		}
		in.ExpiresAt = t
	}
	return e.withService(openconsole.Options{}, func(svc *openconsole.Service) (any, error) {
		l, err := svc.CreateLicense(e.ctx, in)
		if err != nil {
			return nil, err
		}
		owners := &ownerNames{e: e, svc: svc}
		return licenseJSON(l, owners.name(l.OwnerID)), nil
	})
}

func cmdLicenseList(e *cliEnv, args []string) int {
	fs := e.flags("license list")
	limit := fs.Int("limit", 0, "print at most this many licenses (0: all); the output's nextCursor continues")
	after := fs.String("after", "", "continue after this cursor (nextCursor of an earlier page)")
	if _, code, ok := e.parse(fs, args, 0); !ok {
		return code
	}
	if *limit < 0 {
		return e.usageErr("--limit must not be negative")
	}
	from, err := openconsole.ParseLicenseCursor(*after)
	if err != nil {
		return e.usageErr("--after: not a cursor printed by license list")
	}
	opts := openconsole.Options{OneShot: true}
	svc, _, done, err := e.open(sqlstore.Options{}, opts)
	if err != nil {
		return e.fail(err)
	}
	defer done()
	owners := &ownerNames{e: e, svc: svc}
	q := openconsole.LicenseQuery{After: from}
	if *limit > 0 {
		q.Limit = *limit + 1
	}
	now := time.Now()
	return printList(e, svc.Licenses(e.ctx, q), *limit, func(l openconsole.License) any {
		o := licenseJSON(l, owners.name(l.OwnerID))
		n := 0
		if l.Usable(now) {
			n = l.Taken
		}
		o.LiveSessions = &n
		return o
	}, func(l openconsole.License) string { return openconsole.LicenseCursor(l.ID) })
}

func cmdLicenseRevoke(e *cliEnv, args []string) int {
	fs := e.flags("license revoke")
	pos, code, ok := e.parse(fs, args, 1)
	if !ok {
		return code
	}
	return e.withService(openconsole.Options{}, func(svc *openconsole.Service) (any, error) {
		if err := svc.RevokeLicense(e.ctx, pos[0]); err != nil {
			return nil, err
		}
		l, err := svc.LicenseByKey(e.ctx, pos[0])
		if err != nil {
			return nil, err
		}
		owners := &ownerNames{e: e, svc: svc}
		return licenseJSON(l, owners.name(l.OwnerID)), nil
	})
}

type serialOut struct {
	LicenseKey   string `json:"licenseKey"`
	SerialNumber string `json:"serial_number"`
	Model        string `json:"model"`
	Manufacturer struct {
		Name string `json:"name"`
		ID   int64  `json:"id"`
	} `json:"manufacturer"`
	ManufactureDate string    `json:"manufacture_date"`
	Status          int       `json:"status"`
	CreatedAt       time.Time `json:"created_at"`
}

func cmdSerialRegister(e *cliEnv, args []string) int {
	fs := e.flags("serial register")
	var in openconsole.SerialInput
	fs.StringVar(&in.SerialNumber, "serial", "", "the device serial number (required)")
	fs.StringVar(&in.Model, "model", "", "device model (required)")
	fs.StringVar(&in.ManufacturerName, "manufacturer", "", "manufacturer name (required)")
	fs.Int64Var(&in.ManufacturerID, "manufacturer-id", 0, "manufacturer id (its store id)")
	fs.StringVar(&in.ManufactureDate, "date", "", "manufacture date, YYYY-MM-DD (required)")
	if _, code, ok := e.parse(fs, args, 0); !ok {
		return code
	}
	if in.SerialNumber == "" || in.Model == "" || in.ManufacturerName == "" || in.ManufactureDate == "" {
		return e.usageErr("serial register needs --serial, --model, --manufacturer and --date")
	}
	return e.withService(openconsole.Options{}, func(svc *openconsole.Service) (any, error) {
		sr, err := svc.RegisterSerialAdmin(e.ctx, in)
		if err != nil {
			return nil, err
		}
		var out serialOut
		out.LicenseKey, out.SerialNumber, out.Model = sr.SerialNumber, sr.SerialNumber, sr.Model
		out.Manufacturer.Name, out.Manufacturer.ID = sr.ManufacturerName, sr.ManufacturerID
		out.ManufactureDate, out.Status, out.CreatedAt = sr.ManufactureDate, sr.Status, sr.CreatedAt
		return out, nil
	})
}

type sessionOut struct {
	ID         string     `json:"id"`
	License    string     `json:"license"`
	Timestamp  int64      `json:"timestamp"`
	Live       bool       `json:"live"`
	CreatedAt  time.Time  `json:"createdAt"`
	LastSeenAt time.Time  `json:"lastSeenAt"`
	Revoked    bool       `json:"revoked"`
	RevokedAt  *time.Time `json:"revokedAt"`
}

func cmdSessionList(e *cliEnv, args []string) int {
	fs := e.flags("session list")
	key := fs.String("license", "", "only the sessions of this license key or serial")
	ttl := fs.Duration("session-ttl", 0, "count sessions idle for longer than this as expired, as serve does")
	limit := fs.Int("limit", 0, "print at most this many sessions (0: all); the output's nextCursor continues")
	after := fs.String("after", "", "continue after this cursor (nextCursor of an earlier page)")
	if _, code, ok := e.parse(fs, args, 0); !ok {
		return code
	}
	if *limit < 0 {
		return e.usageErr("--limit must not be negative")
	}
	from, err := openconsole.ParseSessionCursor(*after)
	if err != nil {
		return e.usageErr("--after: not a cursor printed by session list")
	}
	svc, _, done, err := e.open(sqlstore.Options{}, openconsole.Options{SessionTTL: *ttl, OneShot: true})
	if err != nil {
		return e.fail(err)
	}
	defer done()
	n := 0
	if *limit > 0 {
		n = *limit + 1
	}
	ss, err := svc.Sessions(e.ctx, *key, from, n)
	if err != nil {
		return e.fail(err)
	}
	return printList(e, ss, *limit, func(st openconsole.SessionState) any {
		s := st.Session
		return sessionOut{
			ID: s.ID, License: st.License.Key, Timestamp: s.Timestamp, Live: svc.SessionLive(st),
			CreatedAt: s.CreatedAt, LastSeenAt: s.LastSeenAt, Revoked: !s.RevokedAt.IsZero(), RevokedAt: timePtr(s.RevokedAt),
		}
	}, func(st openconsole.SessionState) string { return openconsole.CursorOf(st).String() })
}

func cmdSessionRevoke(e *cliEnv, args []string) int {
	fs := e.flags("session revoke")
	pos, code, ok := e.parse(fs, args, 1)
	if !ok {
		return code
	}
	return e.withService(openconsole.Options{}, func(svc *openconsole.Service) (any, error) {
		if err := svc.RevokeSession(e.ctx, pos[0]); err != nil {
			return nil, err
		}
		id, _ := openconsole.ParseSessionID(pos[0])
		return struct {
			ID      string `json:"id"`
			Revoked bool   `json:"revoked"`
		}{id, true}, nil
	})
}
