package api

import (
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"testing"

	"openconsole"
)

// TestBusyLoginAnswers503: a login refused because too many password checks are under way
// (issue 10, finding 1) is answered 503 in the envelope with Retry-After, not 500.
func TestBusyLoginAnswers503(t *testing.T) {
	s := &Server{log: slog.New(slog.NewTextHandler(io.Discard, nil)), failures: openconsole.NewLogLimiter(slog.New(slog.NewTextHandler(io.Discard, nil)))}
	rec := httptest.NewRecorder()
	s.fail(rec, httptest.NewRequest("POST", "/api/v2/auth/login", nil), openconsole.ErrBusy, "Could not log in")
	var env errorBody
	if rec.Code != http.StatusServiceUnavailable || rec.Header().Get("Retry-After") != "1" ||
		json.Unmarshal(rec.Body.Bytes(), &env) != nil || env.StatusCode != 503 || env.Reason != openconsole.ErrBusy.Message {
		t.Errorf("ErrBusy answered %d, Retry-After %q, body %s; want 503, 1 and the envelope", rec.Code, rec.Header().Get("Retry-After"), rec.Body)
	}
}
