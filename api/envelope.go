package api

import (
	"bytes"
	"encoding/json"
	"errors"
	"io"
	"math"
	"net/http"
	"strconv"

	"openconsole"
)

type successBody struct {
	StatusCode int    `json:"statusCode"`
	StatusText string `json:"statusText"`
	Data       any    `json:"data"`
}

type errorBody struct {
	Reason     string `json:"reason"`
	StatusCode int    `json:"statusCode"`
	StatusText string `json:"statusText"`
}

// writeData writes the success envelope with data.
func writeData(w http.ResponseWriter, status int, data any) {
	if b := envelope(w, status, data); b != nil {
		writeJSON(w, status, b)
	}
}

// envelope returns the success envelope with data; when data cannot be encoded it answers 500
// itself and returns nil.
func envelope(w http.ResponseWriter, status int, data any) []byte {
	b, err := json.Marshal(successBody{StatusCode: status, StatusText: http.StatusText(status), Data: data})
	if err != nil {
		writeError(w, http.StatusInternalServerError, "Internal server error")
		return nil
	}
	return b
}

// writeError writes the error envelope. statusCode always equals the HTTP status.
func writeError(w http.ResponseWriter, status int, reason string) {
	b, _ := json.Marshal(errorBody{Reason: reason, StatusCode: status, StatusText: http.StatusText(status)})
	writeJSON(w, status, b)
}

// jsonContentType is the Content-Type of every JSON answer. Header values are never changed in
// place (net/http and the handlers replace or clone them), so all answers share this one slice:
// a validate then sets its headers without canonicalizing a key or allocating.
var jsonContentType = []string{"application/json"}

func writeJSON(w http.ResponseWriter, status int, body []byte) {
	h := w.Header()
	h["Content-Type"] = jsonContentType
	h["Content-Length"] = []string{strconv.Itoa(len(body))}
	w.WriteHeader(status)
	w.Write(body)
}

// writeNoContent writes a 204: no body and no Content-Type (wire contract §1.2).
func writeNoContent(w http.ResponseWriter) {
	w.WriteHeader(http.StatusNoContent)
}

// statusOf maps domain error codes to HTTP statuses: the one table for the console API. Every
// refusal of a request reaches the wire through it (fail); only the router's own answers (404 for
// an unknown path, 405 for a wrong method), the overload 503 and a recovered panic are written
// directly.
var statusOf = map[string]int{
	openconsole.EINVALID:       http.StatusBadRequest,
	openconsole.EUNPROCESSABLE: http.StatusUnprocessableEntity,
	openconsole.ECONFLICT:      http.StatusUnprocessableEntity, // a duplicate serial is 422 (§2.5)
	openconsole.ENOTFOUND:      http.StatusNotFound,
	openconsole.EUNAUTHORIZED:  http.StatusUnauthorized,
	openconsole.EFORBIDDEN:     http.StatusForbidden,
	openconsole.ETOOLARGE:      http.StatusRequestEntityTooLarge,
	openconsole.ETHROTTLED:     http.StatusTooManyRequests,
	openconsole.EUNAVAILABLE:   http.StatusServiceUnavailable,
}

// fail answers err in the error envelope. Domain errors carry their own reason (a throttled one
// also its Retry-After); anything else is logged (at most once per route and LogInterval, with a
// count) and answered 500 with the endpoint's fixed reason,
// so no internal detail reaches a client.
func (s *Server) fail(w http.ResponseWriter, r *http.Request, err error, internalReason string) {
	if status, ok := statusOf[openconsole.ErrorCode(err)]; ok {
		var te *openconsole.ThrottledError
		if errors.As(err, &te) {
			w.Header().Set("Retry-After", strconv.Itoa(int(math.Ceil(te.RetryAfter.Seconds()))))
		} else if status == http.StatusServiceUnavailable {
			w.Header().Set("Retry-After", "1")
		}
		writeError(w, status, openconsole.ErrorMessage(err))
		return
	}
	// One line per route and interval with a count: an outage of the database fails every
	// request, and must not write a line for each.
	s.failures.ErrorKind("request failed "+r.Method+" "+r.Pattern, "request failed", err, "method", r.Method, "route", r.Pattern, "path", truncate(r.URL.Path, 200))
	writeError(w, http.StatusInternalServerError, internalReason)
}

// sessionHeader is the request's X-Session-Id. The server has put the header names of every request
// in canonical form (HTTP/1 and HTTP/2 alike), so the map is read directly: Header.Get would
// canonicalize the name again on every validate.
func sessionHeader(r *http.Request) string {
	if v := r.Header["X-Session-Id"]; len(v) > 0 {
		return v[0]
	}
	return ""
}

// setSession sets the X-Session-Id response header to the JSON object {id,timestamp}: both fields
// always (wire contract §1.4).
func setSession(w http.ResponseWriter, ref openconsole.SessionRef) {
	b := make([]byte, 0, 80)
	b = append(b, `{"id":"`...)
	b = append(b, ref.ID...)
	b = append(b, `","timestamp":`...)
	b = strconv.AppendInt(b, ref.Timestamp, 10)
	b = append(b, '}')
	w.Header()["X-Session-Id"] = []string{string(b)}
}

// decode reads the request body as JSON into v whatever the Content-Type says (wire contract §1.3).
// An empty body and the literal null leave v as it is; unknown fields are ignored. On failure it
// answers the request itself (400 or 413, through fail) and returns false.
func (s *Server) decode(w http.ResponseWriter, r *http.Request, v any) bool {
	if err := decodeBody(w, r, v); err != nil {
		s.fail(w, r, err, "Could not read request body")
		return false
	}
	return true
}

func decodeBody(w http.ResponseWriter, r *http.Request, v any) error {
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, MaxBodyBytes))
	var mbe *http.MaxBytesError
	if errors.As(err, &mbe) {
		return openconsole.Errorf(openconsole.ETOOLARGE, "Request body too large (limit %d bytes)", MaxBodyBytes)
	} else if err != nil {
		return openconsole.Errorf(openconsole.EINVALID, "Could not read request body")
	}
	body = bytes.TrimSpace(body)
	if len(body) == 0 || string(body) == "null" {
		return nil
	}
	if err := json.Unmarshal(body, v); err != nil {
		var te *json.UnmarshalTypeError
		if errors.As(err, &te) && te.Field != "" {
			return openconsole.Errorf(openconsole.EINVALID, "Invalid JSON body: field %s has the wrong type", te.Field)
		}
		return openconsole.Errorf(openconsole.EINVALID, "Invalid JSON body")
	}
	return nil
}
