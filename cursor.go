package openconsole

import (
	"encoding/base64"
	"strconv"
	"strings"
)

// Cursors are positions in a listing, handed to clients as opaque strings: a client passes one
// back to continue after it. Positions are keys of rows (an id, a timestamp), not offsets, so a page
// neither skips nor repeats rows when others are added meanwhile.

var cursorEncoding = base64.RawURLEncoding

// ErrBadCursor is returned for a cursor string that no listing handed out.
var ErrBadCursor = &Error{Code: EINVALID, Message: "invalid cursor"}

// IDCursor is the cursor after the row with the given id in a listing of a kind (a letter: 'l'
// licenses, 'u' users, 's' serials).
func IDCursor(kind byte, id int64) string {
	return cursorEncoding.EncodeToString([]byte(string(kind) + strconv.FormatInt(id, 10)))
}

// ParseIDCursor returns the id of an IDCursor of the kind; "" is the start (0). Other strings give
// ErrBadCursor.
func ParseIDCursor(kind byte, s string) (int64, error) {
	if s == "" {
		return 0, nil
	}
	b, err := cursorEncoding.DecodeString(s)
	if err != nil || len(b) < 2 || b[0] != kind {
		return 0, ErrBadCursor
	}
	id, err := strconv.ParseInt(string(b[1:]), 10, 64)
	if err != nil || id < 0 {
		return 0, ErrBadCursor
	}
	return id, nil
}

// LicenseCursor is the cursor after the license with the given id.
func LicenseCursor(id int64) string { return IDCursor('l', id) }

// ParseLicenseCursor parses a LicenseCursor.
func ParseLicenseCursor(s string) (int64, error) { return ParseIDCursor('l', s) }

// String returns the cursor as a client sees it.
func (c SessionCursor) String() string {
	return cursorEncoding.EncodeToString([]byte("x" + strconv.FormatInt(c.LicenseID, 10) + "." +
		strconv.FormatInt(c.Timestamp, 10) + "." + c.ID))
}

// ParseSessionCursor parses a SessionCursor's String; "" is the start. Other strings give
// ErrBadCursor.
func ParseSessionCursor(s string) (SessionCursor, error) {
	if s == "" {
		return SessionCursor{}, nil
	}
	b, err := cursorEncoding.DecodeString(s)
	if err != nil || len(b) < 2 || b[0] != 'x' {
		return SessionCursor{}, ErrBadCursor
	}
	parts := strings.Split(string(b[1:]), ".")
	if len(parts) != 3 {
		return SessionCursor{}, ErrBadCursor
	}
	lic, err1 := strconv.ParseInt(parts[0], 10, 64)
	ts, err2 := strconv.ParseInt(parts[1], 10, 64)
	id, ok := ParseSessionID(parts[2])
	if err1 != nil || err2 != nil || !ok || lic < 0 || ts < 0 {
		return SessionCursor{}, ErrBadCursor
	}
	return SessionCursor{LicenseID: lic, Timestamp: ts, ID: id}, nil
}

// CursorOf returns the cursor just after the session st.
func CursorOf(st SessionState) SessionCursor {
	return SessionCursor{LicenseID: st.Session.LicenseID, Timestamp: st.Session.Timestamp, ID: st.Session.ID}
}
