package admin

import (
	"context"
	"encoding/json"
	"iter"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	"openconsole"
)

const (
	reader   = openconsole.RoleReader
	operator = openconsole.RoleOperator
	admin    = openconsole.RoleAdmin
)

func (s *Server) routes() {
	s.mux.HandleFunc("GET "+Prefix+"/openapi.json", func(w http.ResponseWriter, r *http.Request) {
		writeRaw(w, http.StatusOK, openapiDoc)
	})

	s.route("GET /licenses", reader, s.listLicenses)
	s.route("POST /licenses", operator, s.createLicense)
	s.route("GET /licenses/{key}", reader, s.getLicense)
	s.route("PATCH /licenses/{key}", operator, s.patchLicense)
	s.route("POST /licenses/{key}/suspend", operator, s.licenseAction(s.svc.SuspendLicense))
	s.route("POST /licenses/{key}/resume", operator, s.licenseAction(s.svc.ResumeLicense))
	s.route("POST /licenses/{key}/revoke", operator, s.licenseAction(s.svc.RevokeLicense))

	s.route("GET /sessions", reader, s.listSessions)
	s.route("GET /sessions/{id}", reader, s.getSession)
	s.route("DELETE /sessions/{id}", operator, s.revokeSession)

	s.route("GET /users", reader, s.listUsers)
	s.route("POST /users", admin, s.createUser)
	s.route("GET /users/{username}", reader, s.getUser)
	s.route("PATCH /users/{username}", admin, s.patchUser)

	s.route("GET /serials", reader, s.listSerials)
	s.route("POST /serials", operator, s.registerSerial)

	s.route("GET /tokens", admin, s.listTokens)
	s.route("POST /tokens", admin, s.createToken)
	s.route("DELETE /tokens/{id}", admin, s.revokeToken)

	s.route("GET /stats", reader, s.stats)
	s.route("GET /seats/check", reader, s.checkSeats(false))
	s.route("POST /seats/repair", admin, s.checkSeats(true))
	s.route("POST /signing-keys/rotate", admin, s.rotateSigningKey)

	s.catalogueRoutes()
	s.auditRoutes()
	s.offlineRoutes()
}

// Listing parameters: limit (default 100, at most 1000) and an opaque cursor.
const (
	defaultLimit = 100
	maxLimit     = 1000
)

func limitParam(r *http.Request) (int, error) {
	v := r.URL.Query().Get("limit")
	if v == "" {
		return defaultLimit, nil
	}
	n, err := strconv.Atoi(v)
	if err != nil || n < 1 || n > maxLimit {
		return 0, openconsole.Errorf(openconsole.EINVALID, "limit must be an integer from 1 to %d", maxLimit)
	}
	return n, nil
}

// writePage answers the first limit items of seq (which yields up to limit+1) as a Page: the extra
// item only says that there is a next page, whose cursor is that of the last item answered.
func writePage[T, J any](w http.ResponseWriter, seq iter.Seq2[T, error], limit int, view func(T) J, cursor func(T) string) error {
	page := Page[J]{Items: make([]J, 0, min(limit, 64))}
	var last T
	n := 0
	for x, err := range seq {
		if err != nil {
			return err
		}
		if n == limit {
			c := cursor(last)
			page.NextCursor = &c
			break
		}
		page.Items = append(page.Items, view(x))
		last = x
		n++
	}
	return writeJSON(w, http.StatusOK, page)
}

// ---- licenses

func (s *Server) listLicenses(w http.ResponseWriter, r *http.Request, p openconsole.Principal) error {
	limit, err := limitParam(r)
	if err != nil {
		return err
	}
	q := r.URL.Query()
	after, err := openconsole.ParseLicenseCursor(q.Get("cursor"))
	if err != nil {
		return err
	}
	lq := openconsole.LicenseQuery{After: after, Limit: limit + 1, Owner: q.Get("owner"), Search: q.Get("q"), Now: s.svc.Now()}
	switch q.Get("nearLimit") {
	case "", "false":
	case "true":
		lq.NearLimit = true
	default:
		return openconsole.Errorf(openconsole.EINVALID, "nearLimit must be true or false")
	}
	if st := q.Get("status"); st != "" {
		switch openconsole.LicenseStatus(st) {
		case openconsole.StatusActive, openconsole.StatusSuspended, openconsole.StatusRevoked, openconsole.StatusExpired:
			lq.Status = openconsole.LicenseStatus(st)
		default:
			return openconsole.Errorf(openconsole.EINVALID, "status must be active, suspended, revoked or expired")
		}
	}
	now := lq.Now
	return writePage(w, s.svc.Licenses(r.Context(), lq), limit,
		func(l openconsole.License) LicenseJSON { return License(l, now) },
		func(l openconsole.License) string { return openconsole.LicenseCursor(l.ID) })
}

// licenseRequest is the body of POST /licenses; also of PATCH (where null has a meaning).
type licenseRequest struct {
	Key       *string         `json:"key"`
	Owner     *string         `json:"owner"`
	Seats     *int            `json:"seats"`
	ExpiresAt *Time           `json:"expiresAt"`
	Note      *string         `json:"note"`
	Metadata  json.RawMessage `json:"metadata"`
}

func (s *Server) createLicense(w http.ResponseWriter, r *http.Request, p openconsole.Principal) error {
	body, err := readBody(w, r)
	if err != nil {
		return err
	}
	var req licenseRequest
	if err := decodeJSON(body, &req); err != nil {
		return err
	}
	if req.Seats == nil {
		return openconsole.MissingField("seats")
	}
	in := openconsole.LicenseInput{Seats: *req.Seats}
	set(&in.Key, req.Key)
	set(&in.Owner, req.Owner)
	set(&in.Note, req.Note)
	if req.ExpiresAt != nil {
		in.ExpiresAt = time.Time(*req.ExpiresAt)
	}
	if len(req.Metadata) > 0 && string(req.Metadata) != "null" {
		in.Metadata = req.Metadata
	}
	now := s.svc.Now()
	view := func(l openconsole.License) any { return License(l, now) }
	ctx, err := idempotent(r, p, body, renderer(http.StatusCreated, view))
	if err != nil {
		return err
	}
	l, err := s.svc.CreateLicense(ctx, in)
	if err != nil {
		return err
	}
	w.Header().Set("ETag", etag(l.Version))
	w.Header().Set("Location", Prefix+"/licenses/"+urlSegment(l.Key))
	return writeJSON(w, http.StatusCreated, view(l))
}

func (s *Server) getLicense(w http.ResponseWriter, r *http.Request, p openconsole.Principal) error {
	l, err := s.svc.License(r.Context(), r.PathValue("key"))
	if err != nil {
		return err
	}
	w.Header().Set("ETag", etag(l.Version))
	return writeJSON(w, http.StatusOK, License(l, s.svc.Now()))
}

func (s *Server) patchLicense(w http.ResponseWriter, r *http.Request, p openconsole.Principal) error {
	body, err := readBody(w, r)
	if err != nil {
		return err
	}
	// Which fields were sent matters (expiresAt: null clears the expiry), so read them as raw.
	var raw map[string]json.RawMessage
	if err := decodeJSON(body, &raw); err != nil {
		return err
	}
	var req licenseRequest
	if err := decodeJSON(body, &req); err != nil {
		return err
	}
	if req.Key != nil {
		return openconsole.Errorf(openconsole.EINVALID, "a license's key cannot change")
	}
	patch := openconsole.LicensePatch{Seats: req.Seats, Owner: req.Owner, Note: req.Note, IfVersion: ifMatch(r)}
	if _, ok := raw["seats"]; ok && req.Seats == nil {
		return openconsole.Errorf(openconsole.EINVALID, "seats must be a number")
	}
	if v, ok := raw["owner"]; ok && string(v) == "null" {
		patch.Owner = new(string)
	}
	if _, ok := raw["expiresAt"]; ok {
		t := time.Time{}
		if req.ExpiresAt != nil {
			t = time.Time(*req.ExpiresAt)
		}
		patch.ExpiresAt = &t
	}
	if v, ok := raw["metadata"]; ok {
		if string(v) == "null" {
			patch.Metadata = []byte("{}")
		} else {
			patch.Metadata = v
		}
	}
	if patch.IfVersion < 0 {
		return openconsole.ErrChanged
	}
	l, err := s.svc.UpdateLicense(r.Context(), r.PathValue("key"), patch)
	if err != nil {
		return err
	}
	w.Header().Set("ETag", etag(l.Version))
	return writeJSON(w, http.StatusOK, License(l, s.svc.Now()))
}

// licenseAction serves POST /licenses/{key}/suspend, /resume and /revoke.
func (s *Server) licenseAction(op func(ctx context.Context, key string, ifVersion int64) (openconsole.License, error)) handler {
	return func(w http.ResponseWriter, r *http.Request, p openconsole.Principal) error {
		body, err := readBody(w, r)
		if err != nil {
			return err
		}
		if len(strings.TrimSpace(string(body))) > 0 && strings.TrimSpace(string(body)) != "{}" {
			return openconsole.Errorf(openconsole.EINVALID, "this request takes no body")
		}
		v := ifMatch(r)
		if v < 0 {
			return openconsole.ErrChanged
		}
		now := s.svc.Now()
		view := func(l openconsole.License) any { return License(l, now) }
		ctx, err := idempotent(r, p, body, renderer(http.StatusOK, view))
		if err != nil {
			return err
		}
		l, err := op(ctx, r.PathValue("key"), v)
		if err != nil {
			return err
		}
		w.Header().Set("ETag", etag(l.Version))
		return writeJSON(w, http.StatusOK, view(l))
	}
}

// ---- sessions

func (s *Server) listSessions(w http.ResponseWriter, r *http.Request, p openconsole.Principal) error {
	limit, err := limitParam(r)
	if err != nil {
		return err
	}
	q := r.URL.Query()
	after, err := openconsole.ParseSessionCursor(q.Get("cursor"))
	if err != nil {
		return err
	}
	f := openconsole.SessionFilter{License: q.Get("license"), After: after, Limit: limit + 1}
	switch q.Get("live") {
	case "":
	case "true":
		f.Live = new(bool)
		*f.Live = true
	case "false":
		f.Live = new(bool)
	default:
		return openconsole.Errorf(openconsole.EINVALID, "live must be true or false")
	}
	seq, err := s.svc.Sessions(r.Context(), f)
	if err != nil {
		return err
	}
	return writePage(w, seq, limit,
		func(st openconsole.SessionState) SessionJSON { return Session(st, s.svc.SessionLive(st)) },
		func(st openconsole.SessionState) string { return openconsole.CursorOf(st).String() })
}

func (s *Server) getSession(w http.ResponseWriter, r *http.Request, p openconsole.Principal) error {
	st, err := s.svc.Session(r.Context(), r.PathValue("id"))
	if err != nil {
		return err
	}
	return writeJSON(w, http.StatusOK, Session(st, s.svc.SessionLive(st)))
}

func (s *Server) revokeSession(w http.ResponseWriter, r *http.Request, p openconsole.Principal) error {
	st, err := s.svc.RevokeSession(r.Context(), r.PathValue("id"))
	if err != nil {
		return err
	}
	return writeJSON(w, http.StatusOK, Session(st, s.svc.SessionLive(st)))
}

// ---- users

func (s *Server) listUsers(w http.ResponseWriter, r *http.Request, p openconsole.Principal) error {
	limit, err := limitParam(r)
	if err != nil {
		return err
	}
	after, err := openconsole.ParseIDCursor('u', r.URL.Query().Get("cursor"))
	if err != nil {
		return err
	}
	return writePage(w, s.svc.Users(r.Context(), openconsole.PageQuery{After: after, Limit: limit + 1}), limit, User,
		func(u openconsole.User) string { return openconsole.IDCursor('u', u.ID) })
}

type userRequest struct {
	Username     *string `json:"username"`
	Password     *string `json:"password"`
	Email        *string `json:"email"`
	DisplayName  *string `json:"displayName"`
	Vendor       *bool   `json:"vendor"`
	Whitelabeled *bool   `json:"whitelabeled"`
	Disabled     *bool   `json:"disabled"`
	Role         *string `json:"role"`
}

func (s *Server) createUser(w http.ResponseWriter, r *http.Request, p openconsole.Principal) error {
	body, err := readBody(w, r)
	if err != nil {
		return err
	}
	var req userRequest
	if err := decodeJSON(body, &req); err != nil {
		return err
	}
	switch {
	case req.Username == nil:
		return openconsole.MissingField("username")
	case req.Password == nil:
		return openconsole.MissingField("password")
	case req.Disabled != nil:
		return openconsole.Errorf(openconsole.EINVALID, "a new user cannot be disabled")
	}
	in := openconsole.UserInput{Username: *req.Username, Password: *req.Password}
	set(&in.Email, req.Email)
	set(&in.DisplayName, req.DisplayName)
	set(&in.Vendor, req.Vendor)
	set(&in.Whitelabeled, req.Whitelabeled)
	if req.Role != nil {
		in.Role = openconsole.Role(*req.Role)
	}
	ctx, err := idempotent(r, p, body, renderer(http.StatusCreated, func(u openconsole.User) any { return User(u) }), "password")
	if err != nil {
		return err
	}
	u, err := s.svc.CreateUser(ctx, in)
	if err != nil {
		return err
	}
	w.Header().Set("ETag", etag(u.Version))
	w.Header().Set("Location", Prefix+"/users/"+urlSegment(u.Username))
	return writeJSON(w, http.StatusCreated, User(u))
}

func (s *Server) getUser(w http.ResponseWriter, r *http.Request, p openconsole.Principal) error {
	u, err := s.svc.User(r.Context(), r.PathValue("username"))
	if err != nil {
		return err
	}
	w.Header().Set("ETag", etag(u.Version))
	return writeJSON(w, http.StatusOK, User(u))
}

func (s *Server) patchUser(w http.ResponseWriter, r *http.Request, p openconsole.Principal) error {
	body, err := readBody(w, r)
	if err != nil {
		return err
	}
	var raw map[string]json.RawMessage
	if err := decodeJSON(body, &raw); err != nil {
		return err
	}
	var req userRequest
	if err := decodeJSON(body, &req); err != nil {
		return err
	}
	if req.Username != nil {
		return openconsole.Errorf(openconsole.EINVALID, "a user's username cannot change")
	}
	patch := openconsole.UserPatch{Password: req.Password, Email: req.Email, DisplayName: req.DisplayName, Vendor: req.Vendor,
		Whitelabeled: req.Whitelabeled, Disabled: req.Disabled, IfVersion: ifMatch(r)}
	if v, ok := raw["role"]; ok {
		role := openconsole.Role("")
		if string(v) != "null" && req.Role != nil {
			role = openconsole.Role(*req.Role)
		}
		patch.Role = &role
	}
	if patch.IfVersion < 0 {
		return openconsole.ErrChanged
	}
	u, err := s.svc.UpdateUser(r.Context(), r.PathValue("username"), patch)
	if err != nil {
		return err
	}
	w.Header().Set("ETag", etag(u.Version))
	return writeJSON(w, http.StatusOK, User(u))
}

// ---- serials

func (s *Server) listSerials(w http.ResponseWriter, r *http.Request, p openconsole.Principal) error {
	limit, err := limitParam(r)
	if err != nil {
		return err
	}
	after, err := openconsole.ParseIDCursor('s', r.URL.Query().Get("cursor"))
	if err != nil {
		return err
	}
	return writePage(w, s.svc.Serials(r.Context(), openconsole.PageQuery{After: after, Limit: limit + 1}), limit, Serial,
		func(sr openconsole.Serial) string { return openconsole.IDCursor('s', sr.LicenseID) })
}

type serialRequest struct {
	SerialNumber *string `json:"serialNumber"`
	Model        *string `json:"model"`
	Manufacturer *struct {
		Name *string `json:"name"`
		ID   *int64  `json:"id"`
	} `json:"manufacturer"`
	ManufactureDate *string `json:"manufactureDate"`
}

func (s *Server) registerSerial(w http.ResponseWriter, r *http.Request, p openconsole.Principal) error {
	body, err := readBody(w, r)
	if err != nil {
		return err
	}
	var req serialRequest
	if err := decodeJSON(body, &req); err != nil {
		return err
	}
	switch {
	case req.SerialNumber == nil:
		return openconsole.MissingField("serialNumber")
	case req.Model == nil:
		return openconsole.MissingField("model")
	case req.Manufacturer == nil || req.Manufacturer.Name == nil:
		return openconsole.MissingField("manufacturer.name")
	case req.ManufactureDate == nil:
		return openconsole.MissingField("manufactureDate")
	}
	in := openconsole.SerialInput{SerialNumber: *req.SerialNumber, Model: *req.Model, ManufacturerName: *req.Manufacturer.Name,
		ManufactureDate: *req.ManufactureDate}
	set(&in.ManufacturerID, req.Manufacturer.ID)
	ctx, err := idempotent(r, p, body, renderer(http.StatusCreated, func(sr openconsole.Serial) any { return Serial(sr) }))
	if err != nil {
		return err
	}
	sr, err := s.svc.RegisterSerialAdmin(ctx, in)
	if err != nil {
		return err
	}
	return writeJSON(w, http.StatusCreated, Serial(sr))
}

// ---- API tokens

func (s *Server) listTokens(w http.ResponseWriter, r *http.Request, p openconsole.Principal) error {
	ts, err := s.svc.APITokens(r.Context())
	if err != nil {
		return err
	}
	page := Page[TokenJSON]{Items: make([]TokenJSON, 0, len(ts))}
	for _, t := range ts {
		page.Items = append(page.Items, Token(t))
	}
	return writeJSON(w, http.StatusOK, page)
}

type tokenRequest struct {
	Name      *string `json:"name"`
	Role      *string `json:"role"`
	ExpiresAt *Time   `json:"expiresAt"`
}

func (s *Server) createToken(w http.ResponseWriter, r *http.Request, p openconsole.Principal) error {
	body, err := readBody(w, r)
	if err != nil {
		return err
	}
	var req tokenRequest
	if err := decodeJSON(body, &req); err != nil {
		return err
	}
	if req.Name == nil {
		return openconsole.MissingField("name")
	}
	if req.Role == nil {
		return openconsole.MissingField("role")
	}
	role, err := openconsole.ParseRole(*req.Role)
	if err != nil {
		return err
	}
	in := openconsole.TokenInput{Name: *req.Name, Role: role}
	if req.ExpiresAt != nil {
		in.ExpiresAt = time.Time(*req.ExpiresAt)
	}
	// A replay does not show the secret again: it is not kept anywhere.
	ctx, err := idempotent(r, p, body, renderer(http.StatusCreated, func(t openconsole.CreatedToken) any { return Token(t.APIToken) }))
	if err != nil {
		return err
	}
	t, err := s.svc.CreateAPIToken(ctx, in)
	if err != nil {
		return err
	}
	out := Token(t.APIToken)
	out.Token = &t.Secret
	return writeJSON(w, http.StatusCreated, out)
}

func (s *Server) revokeToken(w http.ResponseWriter, r *http.Request, p openconsole.Principal) error {
	t, err := s.svc.RevokeAPIToken(r.Context(), r.PathValue("id"))
	if err != nil {
		return err
	}
	return writeJSON(w, http.StatusOK, Token(t))
}

// ---- overview and maintenance

func (s *Server) stats(w http.ResponseWriter, r *http.Request, p openconsole.Principal) error {
	st, err := s.svc.Stats(r.Context())
	if err != nil {
		return err
	}
	return writeJSON(w, http.StatusOK, Stats(st))
}

// SeatCheckJSON is the answer of GET /seats/check and POST /seats/repair (and openconsole check).
type SeatCheckJSON struct {
	OK         bool               `json:"ok"`
	Licenses   int                `json:"licenses"`
	HeldSeats  int                `json:"heldSeats"`
	Mismatches []SeatMismatchJSON `json:"mismatches"`
	Repaired   bool               `json:"repaired"`
}

// SeatMismatchJSON is a license whose seat bookkeeping disagrees with its sessions.
type SeatMismatchJSON struct {
	LicenseID int64  `json:"licenseId"`
	License   string `json:"license"` // the key's last four characters only
	Taken     int    `json:"taken"`
	Held      int    `json:"held"`
}

// SeatCheck renders a recount.
func SeatCheck(c openconsole.SeatCheck, repaired bool) SeatCheckJSON {
	out := SeatCheckJSON{OK: len(c.Mismatches) == 0, Licenses: c.Licenses, HeldSeats: c.Held,
		Mismatches: make([]SeatMismatchJSON, 0, len(c.Mismatches)), Repaired: repaired && len(c.Mismatches) > 0}
	for _, m := range c.Mismatches {
		out.Mismatches = append(out.Mismatches, SeatMismatchJSON{m.LicenseID, openconsole.KeyHint(m.Key), m.Taken, m.Held})
	}
	return out
}

func (s *Server) checkSeats(repair bool) handler {
	return func(w http.ResponseWriter, r *http.Request, p openconsole.Principal) error {
		c, err := s.svc.CheckSeats(r.Context(), repair)
		if err != nil {
			return err
		}
		return writeJSON(w, http.StatusOK, SeatCheck(c, repair))
	}
}

type rotateRequest struct {
	DropOld bool `json:"dropOld"`
}

// RotatedJSON is the answer of POST /signing-keys/rotate.
type RotatedJSON struct {
	ID      string `json:"id"`
	DropOld bool   `json:"dropOld"`
}

func (s *Server) rotateSigningKey(w http.ResponseWriter, r *http.Request, p openconsole.Principal) error {
	body, err := readBody(w, r)
	if err != nil {
		return err
	}
	var req rotateRequest
	if len(strings.TrimSpace(string(body))) > 0 {
		if err := decodeJSON(body, &req); err != nil {
			return err
		}
	}
	id, err := s.svc.RotateSigningKey(r.Context(), req.DropOld)
	if err != nil {
		return err
	}
	return writeJSON(w, http.StatusOK, RotatedJSON{id, req.DropOld})
}

// set sets *dst to *v when v is not nil.
func set[T any](dst *T, v *T) {
	if v != nil {
		*dst = *v
	}
}

// urlSegment escapes a path segment.
func urlSegment(s string) string {
	return strings.ReplaceAll(url.PathEscape(s), "+", "%2B")
}
