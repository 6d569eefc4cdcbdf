// Package openconsole is the domain of OpenConsole, a self-hostable FLECS Console: users, licenses,
// registered serial numbers and device sessions, and the rules that bind them (activation, seats,
// expiry, revocation, monotonic session timestamps). Storage is behind the Store interface; the wire
// format lives in package api.
package openconsole

import (
	"errors"
	"fmt"
)

// Error codes. A caller branches on the code; the message is safe to show to a client.
const (
	EINVALID       = "invalid"       // malformed input: a missing field, bad JSON
	EUNPROCESSABLE = "unprocessable" // well-formed input that fails validation: a bad date or format
	ECONFLICT      = "conflict"      // the thing exists already
	ENOTFOUND      = "not_found"     // the thing does not exist (admin operations)
	EUNAUTHORIZED  = "unauthorized"  // no credentials or bad ones
	EFORBIDDEN     = "forbidden"     // credentials are fine, or not needed, but the answer is no
	ETOOLARGE      = "too_large"     // a request body over its limit
	EUNAVAILABLE   = "unavailable"   // too much work under way; try again shortly (503, Retry-After)
	EINTERNAL      = "internal"      // anything else; its message is never shown to a client
)

// Error is a domain error: a code to branch on and a message for the client.
type Error struct {
	Code    string
	Message string
}

func (e *Error) Error() string { return e.Message }

// Errorf returns an *Error with the given code and a formatted message.
func Errorf(code, format string, args ...any) *Error {
	return &Error{Code: code, Message: fmt.Sprintf(format, args...)}
}

// ErrorCode returns the code of the first *Error in err's chain, EINTERNAL for any other error, and
// "" for nil.
func ErrorCode(err error) string {
	var e *Error
	var te *ThrottledError
	switch {
	case err == nil:
		return ""
	case errors.As(err, &e):
		return e.Code
	case errors.As(err, &te):
		return ETHROTTLED
	default:
		return EINTERNAL
	}
}

// ErrorMessage returns the client-safe message of err, or "Internal error" when err is not an *Error.
func ErrorMessage(err error) string {
	var e *Error
	if errors.As(err, &e) {
		return e.Message
	}
	var te *ThrottledError
	if errors.As(err, &te) {
		return te.Error()
	}
	return "Internal error"
}

// The refusals of activation, with the reasons the FLECS clients know (wire contract §2.3, §3.3).
var (
	ErrLicenseNotFound      = &Error{Code: EFORBIDDEN, Message: "License not found"}
	ErrLicenseInvalid       = &Error{Code: EFORBIDDEN, Message: "License found but invalid"}
	ErrMaxActivations       = &Error{Code: EFORBIDDEN, Message: "License found but maximum activations reached"}
	ErrMissingAuthorization = &Error{Code: EFORBIDDEN, Message: "Missing Header: Authorization"}
	ErrInvalidAuthorization = &Error{Code: EFORBIDDEN, Message: "Invalid header: Authorization (expected Bearer)"}
	ErrNoRemainingSeats     = &Error{Code: EFORBIDDEN, Message: "No remaining activations"}
	ErrTokenRefused         = &Error{Code: EFORBIDDEN, Message: "Invalid or expired token"}
)

// MissingField is the refusal of a request that lacks a required field, named as the client
// spells it (a JSON path such as "manufacturer.name").
func MissingField(name string) error {
	return Errorf(EINVALID, "Invalid payload: missing required field '%s'", name)
}

// ErrBearerRequired refuses a request to a route that needs a user's token and has none: no
// Authorization header, another scheme, or an empty token.
var ErrBearerRequired = &Error{Code: EUNAUTHORIZED, Message: "Missing or invalid header: Authorization (expected Bearer)"}

// ErrNotVendor refuses a serial registration by a user who is not a vendor.
var ErrNotVendor = &Error{Code: EFORBIDDEN, Message: "Only vendor accounts may register serial numbers"}

// RequireVendor returns ErrNotVendor unless u is a vendor account.
func RequireVendor(u User) error {
	if !u.Vendor {
		return ErrNotVendor
	}
	return nil
}

// Other errors callers compare against.
var (
	// ErrInvalidToken is returned for a JWT that is malformed, badly signed or expired.
	ErrInvalidToken = &Error{Code: EUNAUTHORIZED, Message: "Invalid or expired token"}
	// ErrBadCredentials is returned by Login for an unknown user or a wrong password alike.
	ErrBadCredentials = &Error{Code: EFORBIDDEN, Message: "Invalid username or password"}
	// ErrNotFound is what a Store returns when a looked-up row does not exist.
	ErrNotFound = &Error{Code: ENOTFOUND, Message: "Not found"}
)
