package main

import (
	"bufio"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net/url"
	"strconv"
	"strings"
	"time"

	"openconsole"
	"openconsole/admin"
)

// The admin commands of users, licenses, serials, sessions, API tokens and the overview: each one
// request of the operator API (client.go).

// readPassword reads a password from the first line of standard input.
func (e *cliEnv) readPassword() (string, error) {
	var line string
	var err error = io.EOF
	if e.stdin != nil {
		line, err = bufio.NewReader(e.stdin).ReadString('\n')
	}
	if err != nil && line == "" {
		return "", errors.New("--password-stdin: no password on standard input")
	}
	return strings.TrimRight(line, "\r\n"), nil
}

// visited reports whether the flag was given on the command line.
func visited(fs *flag.FlagSet, name string) bool {
	found := false
	fs.Visit(func(f *flag.Flag) { found = found || f.Name == name })
	return found
}

func cmdUserCreate(e *cliEnv, args []string) int {
	fs := e.flags("user create")
	username := fs.String("username", "", "login name (required)")
	password := fs.String("password", "", "password (prefer --password-stdin: a flag shows in the process list)")
	stdinPw := fs.Bool("password-stdin", false, "read the password from the first line of standard input")
	email := fs.String("email", "", "e-mail address")
	display := fs.String("display-name", "", "display name (default: the username)")
	vendor := fs.Bool("vendor", false, "a manufacturer account that may register serial numbers")
	white := fs.Bool("whitelabeled", false, "the isWhitelabeled feature flag")
	role := fs.String("role", "", "admin, operator or reader: the user may sign in to the admin web console with that role")
	if _, code, ok := e.parse(fs, args, 0); !ok {
		return code
	}
	if *stdinPw {
		if *password != "" {
			return e.usageErr("user create takes --password or --password-stdin, not both")
		}
		pw, err := e.readPassword()
		if err != nil {
			return e.fail(err)
		}
		*password = pw
	}
	if *username == "" || *password == "" {
		return e.usageErr("user create needs --username and --password (or --password-stdin)")
	}
	body := map[string]any{"username": *username, "password": *password, "email": *email, "vendor": *vendor, "whitelabeled": *white}
	if *display != "" {
		body["displayName"] = *display
	}
	if *role != "" {
		body["role"] = *role
	}
	return e.call(0, request{method: "POST", path: "/users", body: bodyOf(body)})
}

func cmdUserUpdate(e *cliEnv, args []string) int {
	fs := e.flags("user update")
	stdinPw := fs.Bool("password-stdin", false, "set the password to the first line of standard input")
	email := fs.String("email", "", "e-mail address")
	display := fs.String("display-name", "", "display name")
	vendor := fs.Bool("vendor", false, "a manufacturer account (--vendor=false: not)")
	white := fs.Bool("whitelabeled", false, "the isWhitelabeled feature flag (--whitelabeled=false: off)")
	disabled := fs.Bool("disabled", false, "disable the user: no login, its tokens stop working (--disabled=false: enable)")
	role := fs.String("role", "", "admin, operator or reader for the admin web console; none: no sign-in")
	ifVersion := fs.Int64("if-version", 0, "change only if the user is still at this version (its ETag)")
	pos, code, ok := e.parse(fs, args, 1)
	if !ok {
		return code
	}
	body := map[string]any{}
	if *stdinPw {
		pw, err := e.readPassword()
		if err != nil {
			return e.fail(err)
		}
		body["password"] = pw
	}
	for name, v := range map[string]any{"email": *email, "display-name": *display, "vendor": *vendor, "whitelabeled": *white, "disabled": *disabled} {
		if visited(fs, name) {
			key := name
			if name == "display-name" {
				key = "displayName"
			}
			body[key] = v
		}
	}
	if visited(fs, "role") {
		if *role == "none" || *role == "" {
			body["role"] = json.RawMessage("null")
		} else {
			body["role"] = *role
		}
	}
	if len(body) == 0 {
		return e.usageErr("user update needs something to change")
	}
	return e.call(0, request{method: "PATCH", path: "/users/" + pathSegment(pos[0]), body: bodyOf(body), header: ifMatchHeader(*ifVersion)})
}

func cmdUserList(e *cliEnv, args []string) int {
	fs := e.flags("user list")
	limit, after := listFlags(fs)
	if _, code, ok := e.parse(fs, args, 0); !ok {
		return code
	}
	return e.list(0, "/users", nil, *limit, *after)
}

func cmdUserShow(e *cliEnv, args []string) int {
	fs := e.flags("user show")
	pos, code, ok := e.parse(fs, args, 1)
	if !ok {
		return code
	}
	return e.call(0, request{method: "GET", path: "/users/" + pathSegment(pos[0])})
}

// listFlags adds --limit and --after to a listing command.
func listFlags(fs *flag.FlagSet) (*int, *string) {
	limit := fs.Int("limit", 0, "print at most this many (0: all); the output's nextCursor continues")
	after := fs.String("after", "", "continue after this cursor (the nextCursor of an earlier page)")
	return limit, after
}

// ifMatchHeader is the If-Match header for --if-version, none for 0.
func ifMatchHeader(v int64) map[string]string {
	if v == 0 {
		return nil
	}
	return map[string]string{"If-Match": `"` + strconv.FormatInt(v, 10) + `"`}
}

func pathSegment(s string) string { return strings.ReplaceAll(url.PathEscape(s), "+", "%2B") }

// timeFlag parses --expires: a date (2027-01-31, the start of that day in UTC), an RFC 3339 time
// (2027-01-31T12:00:00Z) or a duration from now (90d, 12h); "never" (when never is allowed) clears
// it (the zero time).
func timeFlag(dst **time.Time, never bool) func(string) error {
	return func(v string) error {
		if never && v == "never" {
			t := time.Time{}
			*dst = &t
			return nil
		}
		if t, err := time.Parse(time.RFC3339, v); err == nil {
			*dst = &t
			return nil
		}
		if t, err := time.Parse(time.DateOnly, v); err == nil {
			*dst = &t
			return nil
		}
		if d, err := parseDuration(v); err == nil && d > 0 {
			t := time.Now().Add(d)
			*dst = &t
			return nil
		}
		msg := "want a date like 2027-01-31, a time like 2027-01-31T12:00:00Z or a duration like 90d"
		if never {
			msg += ", or never"
		}
		return errors.New(msg)
	}
}

// pastExpiry is the usage error for an --expires in the past without --allow-past, or "".
func pastExpiry(expires *time.Time, allowPast bool, what string) string {
	if expires == nil || expires.IsZero() || expires.After(time.Now()) || allowPast {
		return ""
	}
	return fmt.Sprintf("--expires %s lies in the past; add --allow-past to %s", expires.UTC().Format(admin.TimeLayout), what)
}

// seatsFlag parses a seat count.
func seatsFlag(dst *int) func(string) error {
	return func(v string) error {
		n, err := strconv.Atoi(v)
		if err != nil || n < 1 || n > openconsole.MaxSeats {
			return fmt.Errorf("want a number of seats from 1 to %d", openconsole.MaxSeats)
		}
		*dst = n
		return nil
	}
}

func cmdLicenseCreate(e *cliEnv, args []string) int {
	fs := e.flags("license create")
	owner := fs.String("owner", "", "username of the owner (bearer activations draw from it)")
	seats := 1
	fs.Func("seats", "how many devices may be active at once (default 1)", seatsFlag(&seats))
	fs.Func("activations", "the same as --seats", seatsFlag(&seats))
	var expires *time.Time
	fs.Func("expires", "expiry: a date (2027-01-31), a time (2027-01-31T12:00:00Z) or a duration from now (90d, 12h); default: never", timeFlag(&expires, false))
	allowPast := fs.Bool("allow-past", false, "allow an --expires in the past (the license is created expired)")
	key := fs.String("key", "", "the key (default: a fresh random XXXX-XXXX-XXXX-XXXX-XXXX)")
	note := fs.String("note", "", "a note for operators")
	metadata := fs.String("metadata", "", "a JSON object kept with the license")
	idem := fs.String("idempotency-key", "", "create at most one license for this key (retries are safe)")
	if _, code, ok := e.parse(fs, args, 0); !ok {
		return code
	}
	if msg := pastExpiry(expires, *allowPast, "create an expired license"); msg != "" {
		return e.usageErr("%s", msg)
	}
	body := map[string]any{"seats": seats}
	if *owner != "" {
		body["owner"] = *owner
	}
	if expires != nil {
		body["expiresAt"] = expires.UTC().Format(time.RFC3339Nano)
	}
	if *key != "" {
		body["key"] = *key
	}
	if *note != "" {
		body["note"] = *note
	}
	if *metadata != "" {
		if !json.Valid([]byte(*metadata)) {
			return e.usageErr("--metadata must be a JSON object such as '{\"order\":\"4711\"}'")
		}
		body["metadata"] = json.RawMessage(*metadata)
	}
	var h map[string]string
	if *idem != "" {
		h = map[string]string{"Idempotency-Key": *idem}
	}
	return e.call(0, request{method: "POST", path: "/licenses", body: bodyOf(body), header: h})
}

func cmdLicenseList(e *cliEnv, args []string) int {
	fs := e.flags("license list")
	status := fs.String("status", "", "only licenses that are active, suspended, revoked or expired")
	owner := fs.String("owner", "", "only the licenses of this user")
	search := fs.String("search", "", "only licenses whose key, note or owner contains this")
	limit, after := listFlags(fs)
	if _, code, ok := e.parse(fs, args, 0); !ok {
		return code
	}
	q := url.Values{}
	for k, v := range map[string]string{"status": *status, "owner": *owner, "q": *search} {
		if v != "" {
			q.Set(k, v)
		}
	}
	return e.list(0, "/licenses", q, *limit, *after)
}

func cmdLicenseShow(e *cliEnv, args []string) int {
	fs := e.flags("license show")
	pos, code, ok := e.parse(fs, args, 1)
	if !ok {
		return code
	}
	return e.call(0, request{method: "GET", path: "/licenses/" + pathSegment(pos[0])})
}

func cmdLicenseUpdate(e *cliEnv, args []string) int {
	fs := e.flags("license update")
	seats := 0
	fs.Func("seats", "the number of seats (lowering it below the seats taken lets live devices keep working)", seatsFlag(&seats))
	var expires *time.Time
	fs.Func("expires", "expiry: a date (2027-01-31), a time (2027-01-31T12:00:00Z), a duration from now (90d, 12h), or never", timeFlag(&expires, true))
	allowPast := fs.Bool("allow-past", false, "allow an --expires in the past (the license expires at once)")
	owner := fs.String("owner", "", "username of the owner; none: no owner")
	note := fs.String("note", "", "a note for operators")
	metadata := fs.String("metadata", "", "a JSON object kept with the license (replaces the one kept)")
	ifVersion := fs.Int64("if-version", 0, "change only if the license is still at this version (its ETag)")
	pos, code, ok := e.parse(fs, args, 1)
	if !ok {
		return code
	}
	if msg := pastExpiry(expires, *allowPast, "expire the license at once"); msg != "" {
		return e.usageErr("%s", msg)
	}
	body := map[string]any{}
	if visited(fs, "seats") {
		body["seats"] = seats
	}
	if expires != nil {
		if expires.IsZero() {
			body["expiresAt"] = json.RawMessage("null")
		} else {
			body["expiresAt"] = expires.UTC().Format(time.RFC3339Nano)
		}
	}
	if visited(fs, "owner") {
		if *owner == "none" || *owner == "" {
			body["owner"] = json.RawMessage("null")
		} else {
			body["owner"] = *owner
		}
	}
	if visited(fs, "note") {
		body["note"] = *note
	}
	if visited(fs, "metadata") {
		if !json.Valid([]byte(*metadata)) {
			return e.usageErr("--metadata must be a JSON object such as '{\"order\":\"4711\"}'")
		}
		body["metadata"] = json.RawMessage(*metadata)
	}
	if len(body) == 0 {
		return e.usageErr("license update needs something to change")
	}
	return e.call(0, request{method: "PATCH", path: "/licenses/" + pathSegment(pos[0]), body: bodyOf(body), header: ifMatchHeader(*ifVersion)})
}

// cmdLicenseAction is license suspend, resume and revoke.
func cmdLicenseAction(action string) func(*cliEnv, []string) int {
	return func(e *cliEnv, args []string) int {
		fs := e.flags("license " + action)
		ifVersion := fs.Int64("if-version", 0, "only if the license is still at this version (its ETag)")
		pos, code, ok := e.parse(fs, args, 1)
		if !ok {
			return code
		}
		return e.call(0, request{method: "POST", path: "/licenses/" + pathSegment(pos[0]) + "/" + action, header: ifMatchHeader(*ifVersion)})
	}
}

func cmdSerialRegister(e *cliEnv, args []string) int {
	fs := e.flags("serial register")
	serial := fs.String("serial", "", "the device serial number (required)")
	model := fs.String("model", "", "device model (required)")
	manufacturer := fs.String("manufacturer", "", "manufacturer name (required)")
	manufacturerID := fs.Int64("manufacturer-id", 0, "manufacturer id (its store id)")
	date := fs.String("date", "", "manufacture date, YYYY-MM-DD (required)")
	if _, code, ok := e.parse(fs, args, 0); !ok {
		return code
	}
	if *serial == "" || *model == "" || *manufacturer == "" || *date == "" {
		return e.usageErr("serial register needs --serial, --model, --manufacturer and --date")
	}
	return e.call(0, request{method: "POST", path: "/serials", body: bodyOf(map[string]any{"serialNumber": *serial, "model": *model,
		"manufacturer": map[string]any{"name": *manufacturer, "id": *manufacturerID}, "manufactureDate": *date})})
}

func cmdSerialList(e *cliEnv, args []string) int {
	fs := e.flags("serial list")
	limit, after := listFlags(fs)
	if _, code, ok := e.parse(fs, args, 0); !ok {
		return code
	}
	return e.list(0, "/serials", nil, *limit, *after)
}

func cmdSessionList(e *cliEnv, args []string) int {
	fs := e.flags("session list")
	key := fs.String("license", "", "only the sessions of this license key or serial")
	live := fs.String("live", "", "true: only live sessions; false: only the others")
	ttl := fs.Duration("session-ttl", 0, "without a server: count sessions idle for longer than this as not live, as serve does")
	limit, after := listFlags(fs)
	if _, code, ok := e.parse(fs, args, 0); !ok {
		return code
	}
	q := url.Values{}
	if *key != "" {
		q.Set("license", *key)
	}
	if *live != "" {
		if *live != "true" && *live != "false" {
			return e.usageErr("--live must be true or false")
		}
		q.Set("live", *live)
	}
	return e.list(*ttl, "/sessions", q, *limit, *after)
}

func cmdSessionShow(e *cliEnv, args []string) int {
	fs := e.flags("session show")
	ttl := fs.Duration("session-ttl", 0, "without a server: the idle timeout, as serve has it")
	pos, code, ok := e.parse(fs, args, 1)
	if !ok {
		return code
	}
	return e.call(*ttl, request{method: "GET", path: "/sessions/" + pathSegment(pos[0])})
}

func cmdSessionRevoke(e *cliEnv, args []string) int {
	fs := e.flags("session revoke")
	pos, code, ok := e.parse(fs, args, 1)
	if !ok {
		return code
	}
	return e.call(0, request{method: "DELETE", path: "/sessions/" + pathSegment(pos[0])})
}

// parseDuration is time.ParseDuration that also takes days (90d).
func parseDuration(v string) (time.Duration, error) {
	if n, ok := strings.CutSuffix(v, "d"); ok {
		days, err := strconv.Atoi(n)
		if err != nil || days < 0 || days > 36500 {
			return 0, errors.New("bad days")
		}
		return time.Duration(days) * 24 * time.Hour, nil
	}
	return time.ParseDuration(v)
}

func cmdTokenCreate(e *cliEnv, args []string) int {
	fs := e.flags("token create")
	name := fs.String("name", "", "what the token is for, such as shop or erp (required)")
	role := fs.String("role", "", "admin, operator or reader (required)")
	var expires *time.Time
	fs.Func("expires", "expiry: a duration from now (90d, 12h), a date (2027-01-31) or a time (2027-01-31T12:00:00Z); default: until revoked", timeFlag(&expires, false))
	if _, code, ok := e.parse(fs, args, 0); !ok {
		return code
	}
	if *name == "" || *role == "" {
		return e.usageErr("token create needs --name and --role")
	}
	if msg := pastExpiry(expires, false, ""); msg != "" {
		return e.usageErr("--expires %s lies in the past: the token would never work", expires.UTC().Format(admin.TimeLayout))
	}
	body := map[string]any{"name": *name, "role": *role}
	if expires != nil {
		body["expiresAt"] = expires.UTC().Format(time.RFC3339Nano)
	}
	return e.call(0, request{method: "POST", path: "/tokens", body: bodyOf(body)})
}

func cmdTokenList(e *cliEnv, args []string) int {
	fs := e.flags("token list")
	if _, code, ok := e.parse(fs, args, 0); !ok {
		return code
	}
	return e.call(0, request{method: "GET", path: "/tokens"})
}

func cmdTokenRevoke(e *cliEnv, args []string) int {
	fs := e.flags("token revoke")
	pos, code, ok := e.parse(fs, args, 1)
	if !ok {
		return code
	}
	return e.call(0, request{method: "DELETE", path: "/tokens/" + pathSegment(pos[0])})
}

func cmdStats(e *cliEnv, args []string) int {
	fs := e.flags("stats")
	if _, code, ok := e.parse(fs, args, 0); !ok {
		return code
	}
	return e.call(0, request{method: "GET", path: "/stats"})
}

// cmdCheck verifies the seat bookkeeping of every license against its sessions. It exits 1 when it
// finds a mismatch, unless --repair fixed them (in one transaction).
func cmdCheck(e *cliEnv, args []string) int {
	fs := e.flags("check")
	repair := fs.Bool("repair", false, "set every mismatching license's seat bookkeeping to the recount, in one transaction")
	if _, code, ok := e.parse(fs, args, 0); !ok {
		return code
	}
	req := request{method: "GET", path: "/seats/check"}
	e.readOnly = !*repair
	if *repair {
		req = request{method: "POST", path: "/seats/repair"}
	}
	c, err := e.client(0)
	if err != nil {
		return e.fail(err)
	}
	defer c.close()
	b, _, err := c.do(e.ctx, req)
	if err != nil {
		return e.fail(err)
	}
	if code := e.printRaw(b); code != 0 {
		return code
	}
	var out struct {
		OK bool `json:"ok"`
	}
	if json.Unmarshal(b, &out) == nil && !out.OK && !*repair {
		fmt.Fprintln(e.stderr, "openconsole: seat bookkeeping disagrees with the sessions; openconsole check --repair fixes it")
		return 1
	}
	return 0
}

// cmdJWTRotate adds a new JWT signing key. Servers sign with it from their next key refresh (within
// a minute); tokens signed before keep verifying until they expire, unless --drop-old deletes the
// old keys (after a leak: every token issued before stops verifying, within a minute everywhere).
func cmdJWTRotate(e *cliEnv, args []string) int {
	fs := e.flags("jwt rotate")
	dropOld := fs.Bool("drop-old", false, "delete every older key: all tokens issued so far stop verifying")
	if _, code, ok := e.parse(fs, args, 0); !ok {
		return code
	}
	return e.call(0, request{method: "POST", path: "/signing-keys/rotate", body: bodyOf(map[string]any{"dropOld": *dropOld})})
}
