package client

import (
	"errors"
	"fmt"
)

// Errors a caller branches on. Every error of this package wraps exactly one of them (errors.Is).
var (
	// ErrNotActivated: the state holds no license key or no session, so there is nothing to send.
	ErrNotActivated = errors.New("not activated")
	// ErrRefused: the console answered with a 4xx; APIError carries its status and reason.
	ErrRefused = errors.New("refused by the console")
	// ErrUnavailable: the console could not be reached, or answered with a 5xx. Worth a retry.
	ErrUnavailable = errors.New("console unavailable")
	// ErrProtocol: the console's answer does not follow the wire contract (status, body, header).
	ErrProtocol = errors.New("unexpected answer from the console")
	// ErrOffline: an offline artefact was refused (signature, device, nonce, counter, time) or
	// no offline certificate is installed. OfflineError says which rule.
	ErrOffline = errors.New("offline certificate refused")
	// ErrState: the state directory could not be read or written.
	ErrState = errors.New("device state")
)

// APIError is an error answer of the console: its HTTP status and the envelope's reason.
// It wraps ErrRefused for a 4xx and ErrUnavailable for a 5xx.
type APIError struct {
	Op     string // "activate", "validate", "manifest", "token"
	Status int
	Reason string
}

func (e *APIError) Error() string {
	if e.Reason == "" {
		return fmt.Sprintf("%s: console answered %d", e.Op, e.Status)
	}
	return fmt.Sprintf("%s: console answered %d: %s", e.Op, e.Status, e.Reason)
}

// Unwrap classifies the answer.
func (e *APIError) Unwrap() error {
	if e.Status >= 500 {
		return ErrUnavailable
	}
	return ErrRefused
}

// OfflineError names the rule an offline certificate broke. It wraps ErrOffline.
type OfflineError struct {
	Rule string // "signature", "device", "nonce", "license", "counter", "not-yet-valid", "expired", "none"
	Msg  string
}

func (e *OfflineError) Error() string { return "offline: " + e.Rule + ": " + e.Msg }

// Unwrap returns ErrOffline.
func (e *OfflineError) Unwrap() error { return ErrOffline }

func protocolErr(op, format string, args ...any) error {
	return fmt.Errorf("%s: %w: %s", op, ErrProtocol, fmt.Sprintf(format, args...))
}

func stateErr(op string, err error) error {
	return fmt.Errorf("%s: %w: %v", op, ErrState, err)
}
