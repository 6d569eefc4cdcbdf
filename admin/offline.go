package admin

import (
	"bytes"
	"encoding/hex"
	"mime"
	"net/http"
	"strconv"
	"time"

	"openconsole"
)

// The offline certificates of air-gapped devices: issuing one for a device's request, taking a
// device's deactivation proof, listing them, and the key devices pin.

func (s *Server) offlineRoutes() {
	s.route("POST /offline/certificates", operator, s.issueOffline)
	s.route("GET /offline/certificates", reader, s.listOffline)
	s.route("POST /offline/deactivations", operator, s.deactivateOffline)
	s.route("GET /offline/key", reader, s.offlineKey)
}

// OfflineCertificateJSON is the server's record of a device key's certificate.
type OfflineCertificateJSON struct {
	ID            int64  `json:"id"`
	License       string `json:"license"`
	DeviceKey     string `json:"deviceKey"` // base64, as the artefacts write it
	Counter       uint64 `json:"counter"`
	Nonce         string `json:"nonce"` // hex
	Session       string `json:"session"`
	Status        string `json:"status"` // active, expired or deactivated
	IssuedAt      Time   `json:"issuedAt"`
	NotBefore     Time   `json:"notBefore"`
	NotAfter      Time   `json:"notAfter"`
	DeactivatedAt Time   `json:"deactivatedAt"`
}

// OfflineCertificate renders a certificate record as of now.
func OfflineCertificate(c openconsole.OfflineCertificate, now time.Time) OfflineCertificateJSON {
	return OfflineCertificateJSON{ID: c.ID, License: c.License, DeviceKey: openconsole.DeviceKeyID(c.DeviceKey), Counter: c.Counter,
		Nonce: hex.EncodeToString(c.Nonce[:]), Session: c.SessionID, Status: c.Status(now), IssuedAt: Time(c.IssuedAt),
		NotBefore: Time(c.NotBefore), NotAfter: Time(c.NotAfter), DeactivatedAt: Time(c.DeactivatedAt)}
}

// IssuedJSON is the answer of POST /offline/certificates to a JSON request: the certificate (the
// signed note, as the device installs it) and the record.
type IssuedJSON struct {
	Certificate string                 `json:"certificate"`
	Replaced    bool                   `json:"replaced"`
	Record      OfflineCertificateJSON `json:"record"`
}

// DeactivatedJSON is the answer of POST /offline/deactivations.
type DeactivatedJSON struct {
	Freed  bool                   `json:"freed"`
	Record OfflineCertificateJSON `json:"record"`
}

// OfflineKeyJSON is the answer of GET /offline/key.
type OfflineKeyJSON struct {
	Name      string   `json:"name"`
	Verifier  string   `json:"verifier"`
	Held      string   `json:"held"`
	Verifiers []string `json:"verifiers"`
}

// noteBody reads a body that is either a signed note as text, or a JSON object with the note in
// field (and, for a certificate, a ttl): JSON when the Content-Type says so or the body is an
// object. asJSON says which it was, so that the answer takes the same form.
func noteBody(w http.ResponseWriter, r *http.Request, field string) (msg []byte, ttl time.Duration, asJSON bool, err error) {
	body, err := readBody(w, r)
	if err != nil {
		return nil, 0, false, err
	}
	ct, _, _ := mime.ParseMediaType(r.Header.Get("Content-Type"))
	if ct == "application/json" || bytes.HasPrefix(bytes.TrimSpace(body), []byte("{")) {
		var req struct {
			Request *string `json:"request"`
			Proof   *string `json:"proof"`
			TTL     *string `json:"ttl"`
		}
		if err := decodeJSON(body, &req); err != nil {
			return nil, 0, true, err
		}
		v := req.Request
		if field == "proof" {
			v = req.Proof
			if req.Request != nil || req.TTL != nil {
				return nil, 0, true, openconsole.Errorf(openconsole.EINVALID, "a deactivation takes only proof")
			}
		} else if req.Proof != nil {
			return nil, 0, true, openconsole.Errorf(openconsole.EINVALID, "a certificate request takes request and ttl")
		}
		if v == nil {
			return nil, 0, true, openconsole.MissingField(field)
		}
		if req.TTL != nil {
			if ttl, err = openconsole.ParseOfflineTTL(*req.TTL); err != nil {
				return nil, 0, true, err
			}
		}
		return []byte(*v), ttl, true, nil
	}
	if v := r.URL.Query().Get("ttl"); v != "" && field == "request" {
		if ttl, err = openconsole.ParseOfflineTTL(v); err != nil {
			return nil, 0, false, err
		}
	}
	if len(bytes.TrimSpace(body)) == 0 {
		return nil, 0, false, openconsole.Errorf(openconsole.EINVALID, "the body must be the %s note, or a JSON object with %s", field, field)
	}
	return body, ttl, false, nil
}

func (s *Server) issueOffline(w http.ResponseWriter, r *http.Request, p openconsole.Principal) error {
	msg, ttl, asJSON, err := noteBody(w, r, "request")
	if err != nil {
		return err
	}
	out, err := s.svc.IssueOfflineCertificate(r.Context(), msg, ttl)
	if err != nil {
		return err
	}
	if !asJSON {
		h := w.Header()
		h.Set("Content-Type", "text/plain; charset=utf-8")
		h.Set("Content-Length", strconv.Itoa(len(out.Note)))
		w.WriteHeader(http.StatusCreated)
		w.Write(out.Note)
		return nil
	}
	return writeJSON(w, http.StatusCreated, IssuedJSON{Certificate: string(out.Note), Replaced: out.Replaced,
		Record: OfflineCertificate(out.Certificate, s.svc.Now())})
}

func (s *Server) deactivateOffline(w http.ResponseWriter, r *http.Request, p openconsole.Principal) error {
	msg, _, _, err := noteBody(w, r, "proof")
	if err != nil {
		return err
	}
	out, err := s.svc.DeactivateOffline(r.Context(), msg)
	if err != nil {
		return err
	}
	return writeJSON(w, http.StatusOK, DeactivatedJSON{Freed: out.Freed, Record: OfflineCertificate(out.Certificate, s.svc.Now())})
}

func (s *Server) listOffline(w http.ResponseWriter, r *http.Request, p openconsole.Principal) error {
	limit, err := limitParam(r)
	if err != nil {
		return err
	}
	after, err := openconsole.ParseIDCursor('o', r.URL.Query().Get("cursor"))
	if err != nil {
		return err
	}
	seq, err := s.svc.OfflineCertificates(r.Context(), r.URL.Query().Get("license"), openconsole.OfflineQuery{After: after, Limit: limit + 1})
	if err != nil {
		return err
	}
	now := s.svc.Now()
	return writePage(w, seq, limit,
		func(c openconsole.OfflineCertificate) OfflineCertificateJSON { return OfflineCertificate(c, now) },
		func(c openconsole.OfflineCertificate) string { return openconsole.IDCursor('o', c.ID) })
}

func (s *Server) offlineKey(w http.ResponseWriter, r *http.Request, p openconsole.Principal) error {
	k, err := s.svc.OfflineKeyInfo(r.Context())
	if err != nil {
		return err
	}
	return writeJSON(w, http.StatusOK, OfflineKeyJSON{Name: k.Name, Verifier: k.Verifier, Held: k.Held, Verifiers: k.Verifiers})
}
