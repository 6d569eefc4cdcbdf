package api

import (
	"net/http"
	"strings"

	"openconsole"
)

// The validate answers never change: keep their bytes.
var (
	validTrue  = []byte(`{"statusCode":200,"statusText":"OK","data":{"isValid":true}}`)
	validFalse = []byte(`{"statusCode":200,"statusText":"OK","data":{"isValid":false}}`)
)

const deviceFailure = "Could not validate device activation"

// validate is POST /api/v2/device/license/validate (wire contract §2.4): always 200 with
// data.isValid, and the X-Session-Id header only for a live session. The body is never read.
func (s *Server) validate(w http.ResponseWriter, r *http.Request) {
	ref, ok, err := s.svc.Validate(r.Context(), sessionHeader(r))
	if err != nil {
		s.fail(w, r, err, deviceFailure)
		return
	}
	if !ok {
		writeJSON(w, http.StatusOK, validFalse)
		return
	}
	setSession(w, ref)
	writeJSON(w, http.StatusOK, validTrue)
}

type activateRequest struct {
	LicenseKey *string `json:"licenseKey"`
}

type sessionJSON struct {
	ID        string `json:"id"`
	Timestamp int64  `json:"timestamp"`
}

// activate is POST /api/v2/device/license/activate (wire contract §2.3, §3.3).
func (s *Server) activate(w http.ResponseWriter, r *http.Request) {
	var req activateRequest
	if !s.decode(w, r, &req) {
		return
	}
	in := openconsole.ActivateInput{SessionID: sessionHeader(r), ClientAddr: s.clientAddr(r)}
	if req.LicenseKey != nil {
		in.LicenseKey = strings.TrimSpace(*req.LicenseKey)
	}
	if v, ok := r.Header["Authorization"]; ok && len(v) > 0 {
		in.Authorization, in.HasAuth = v[0], true
	}
	act, err := s.svc.Activate(r.Context(), in)
	if err != nil {
		s.fail(w, r, err, deviceFailure)
		return
	}
	setSession(w, act.Session)
	if !act.Created {
		writeNoContent(w)
		return
	}
	writeData(w, http.StatusOK, struct {
		SessionID  sessionJSON `json:"sessionId"`
		LicenseKey string      `json:"licenseKey"`
	}{sessionJSON{act.Session.ID, act.Session.Timestamp}, act.LicenseKey})
}

type registerRequest struct {
	Manufacturer *struct {
		Name *string `json:"name"`
		ID   *int64  `json:"id"`
	} `json:"manufacturer"`
	Model           *string `json:"model"`
	SerialNumber    *string `json:"serial_number"`
	ManufactureDate *string `json:"manufacture_date"`
}

// missing names the first required field the request lacks, or "".
func (req *registerRequest) missing() string {
	switch {
	case req.Manufacturer == nil:
		return "manufacturer"
	case req.Manufacturer.Name == nil:
		return "manufacturer.name"
	case req.Manufacturer.ID == nil:
		return "manufacturer.id"
	case req.Model == nil:
		return "model"
	case req.SerialNumber == nil:
		return "serial_number"
	case req.ManufactureDate == nil:
		return "manufacture_date"
	}
	return ""
}

const registerFailure = "Could not register device license"

// registerSerial is POST /api/v2/device/license (wire contract §2.5): a vendor registers a serial.
func (s *Server) registerSerial(w http.ResponseWriter, r *http.Request) {
	user, ok := s.bearer(w, r)
	if !ok {
		return
	}
	if err := openconsole.RequireVendor(user); err != nil {
		s.fail(w, r, err, registerFailure)
		return
	}
	var req registerRequest
	if !s.decode(w, r, &req) {
		return
	}
	if f := req.missing(); f != "" {
		s.fail(w, r, openconsole.MissingField(f), registerFailure)
		return
	}
	sr, err := s.svc.RegisterSerial(r.Context(), user, openconsole.SerialInput{
		SerialNumber: *req.SerialNumber, Model: *req.Model, ManufacturerName: *req.Manufacturer.Name,
		ManufacturerID: *req.Manufacturer.ID, ManufactureDate: *req.ManufactureDate,
	})
	if err != nil {
		s.fail(w, r, err, registerFailure)
		return
	}
	writeData(w, http.StatusCreated, serialJSON(sr))
}

type manufacturerJSON struct {
	Name string `json:"name"`
	ID   int64  `json:"id"`
}

type serialData struct {
	Manufacturer    manufacturerJSON `json:"manufacturer"`
	Model           string           `json:"model"`
	SerialNumber    string           `json:"serial_number"`
	ManufactureDate string           `json:"manufacture_date"`
	CreatedAt       string           `json:"created_at"`
	Status          int              `json:"status"`
}

// rfc3339Milli is created_at's form: RFC 3339 with milliseconds and Z.
const rfc3339Milli = "2006-01-02T15:04:05.000Z07:00"

func serialJSON(sr openconsole.Serial) serialData {
	return serialData{
		Manufacturer: manufacturerJSON{sr.ManufacturerName, sr.ManufacturerID},
		Model:        sr.Model, SerialNumber: sr.SerialNumber, ManufactureDate: sr.ManufactureDate,
		CreatedAt: sr.CreatedAt.UTC().Format(rfc3339Milli), Status: sr.Status,
	}
}

// bearer authenticates the request's Authorization: Bearer token. On failure it answers 401 itself
// and returns false.
func (s *Server) bearer(w http.ResponseWriter, r *http.Request) (openconsole.User, bool) {
	v, present := r.Header["Authorization"]
	header := ""
	if present && len(v) > 0 {
		header = v[0]
	}
	u, _, err := s.svc.AuthenticateBearer(r.Context(), header, present && len(v) > 0)
	if err != nil {
		s.fail(w, r, err, "Could not authenticate")
		return openconsole.User{}, false
	}
	return u, true
}
