package admin

import (
	"encoding/json"
	"strconv"
	"time"

	"golang.org/x/mod/sumdb/tlog"

	"openconsole"
)

// The resources of the operator API as JSON: camelCase fields, times in RFC 3339 UTC with
// milliseconds, absent times as null. The CLI prints the same JSON.

// Time is a time as the operator API writes it: "2026-01-02T03:04:05.006Z", or null when zero.
type Time time.Time

// TimeLayout is the one form of every time the operator API writes.
const TimeLayout = "2006-01-02T15:04:05.000Z"

// MarshalJSON implements json.Marshaler.
func (t Time) MarshalJSON() ([]byte, error) {
	if time.Time(t).IsZero() {
		return []byte("null"), nil
	}
	return []byte(`"` + time.Time(t).UTC().Format(TimeLayout) + `"`), nil
}

// UnmarshalJSON implements json.Unmarshaler: RFC 3339 (any offset), or null.
func (t *Time) UnmarshalJSON(b []byte) error {
	if string(b) == "null" {
		*t = Time{}
		return nil
	}
	var s string
	if err := json.Unmarshal(b, &s); err != nil {
		return err
	}
	v, err := time.Parse(time.RFC3339Nano, s)
	if err != nil {
		return err
	}
	*t = Time(v)
	return nil
}

// Seats is a license's seats: how many it has and how many its sessions hold.
type Seats struct {
	Total int `json:"total"`
	Taken int `json:"taken"`
}

// LicenseJSON is a license.
type LicenseJSON struct {
	ID          int64           `json:"id"`
	Key         string          `json:"key"`
	Kind        string          `json:"kind"`
	Status      string          `json:"status"`
	Owner       *string         `json:"owner"`
	Seats       Seats           `json:"seats"`
	ExpiresAt   Time            `json:"expiresAt"`
	SuspendedAt Time            `json:"suspendedAt"`
	RevokedAt   Time            `json:"revokedAt"`
	Note        string          `json:"note"`
	Metadata    json.RawMessage `json:"metadata"`
	CreatedAt   Time            `json:"createdAt"`
	UpdatedAt   Time            `json:"updatedAt"`
	Version     int64           `json:"version"`
	// Warning says what a change the caller made means when it is not what one might expect
	// (seats lowered below the seats taken).
	Warning string `json:"warning,omitempty"`
}

// License renders a license as of now.
func License(l openconsole.License, now time.Time) LicenseJSON {
	meta := json.RawMessage(l.Metadata)
	if len(meta) == 0 {
		meta = json.RawMessage("{}")
	}
	var owner *string
	if l.Owner != "" {
		o := l.Owner
		owner = &o
	}
	out := LicenseJSON{ID: l.ID, Key: l.Key, Kind: string(l.Kind), Status: string(l.Status(now)), Owner: owner,
		Seats: Seats{Total: l.Seats, Taken: l.Taken}, ExpiresAt: Time(l.ExpiresAt), SuspendedAt: Time(l.SuspendedAt),
		RevokedAt: Time(l.RevokedAt), Note: l.Note, Metadata: meta, CreatedAt: Time(l.CreatedAt), UpdatedAt: Time(l.UpdatedAt),
		Version: l.Version}
	if l.Taken > l.Seats && l.RevokedAt.IsZero() {
		out.Warning = "the license has fewer seats (" + strconv.Itoa(l.Seats) + ") than its sessions hold (" +
			strconv.Itoa(l.Taken) + "): live devices keep working; new activations are refused until fewer than " +
			strconv.Itoa(l.Seats) + " seats are taken"
	}
	return out
}

// SessionJSON is a session.
type SessionJSON struct {
	ID            string `json:"id"`
	License       string `json:"license"`
	Timestamp     int64  `json:"timestamp"`
	Live          bool   `json:"live"`
	CreatedAt     Time   `json:"createdAt"`
	LastSeenAt    Time   `json:"lastSeenAt"`
	RevokedAt     Time   `json:"revokedAt"`
	EndedAt       Time   `json:"endedAt"`
	ActivatedFrom string `json:"activatedFrom"` // "offline" for an offline certificate's session
	// ExpiresAt is the hard expiry of an offline certificate's session (its not-after); null for
	// online sessions, which end after the idle timeout instead.
	ExpiresAt Time `json:"expiresAt"`
}

// Session renders a session; live says whether it is live now.
func Session(st openconsole.SessionState, live bool) SessionJSON {
	s := st.Session
	return SessionJSON{ID: s.ID, License: st.License.Key, Timestamp: s.Timestamp, Live: live, CreatedAt: Time(s.CreatedAt),
		LastSeenAt: Time(s.LastSeenAt), RevokedAt: Time(s.RevokedAt), EndedAt: Time(s.EndedAt), ActivatedFrom: s.Addr,
		ExpiresAt: Time(s.ExpiresAt)}
}

// UserJSON is a user: never its password or hash.
type UserJSON struct {
	ID           int64   `json:"id"`
	Username     string  `json:"username"`
	Email        string  `json:"email"`
	DisplayName  string  `json:"displayName"`
	Vendor       bool    `json:"vendor"`
	Whitelabeled bool    `json:"whitelabeled"`
	Disabled     bool    `json:"disabled"`
	Role         *string `json:"role"`
	CreatedAt    Time    `json:"createdAt"`
	UpdatedAt    Time    `json:"updatedAt"`
	Version      int64   `json:"version"`
}

// User renders a user.
func User(u openconsole.User) UserJSON {
	var role *string
	if u.Role != "" {
		r := string(u.Role)
		role = &r
	}
	return UserJSON{ID: u.ID, Username: u.Username, Email: u.Email, DisplayName: u.DisplayName, Vendor: u.Vendor,
		Whitelabeled: u.Whitelabeled, Disabled: u.Disabled, Role: role, CreatedAt: Time(u.CreatedAt), UpdatedAt: Time(u.UpdatedAt),
		Version: u.Version}
}

// TokenJSON is an API token; Token (the secret) only in the answer that created it.
type TokenJSON struct {
	ID         string  `json:"id"`
	Name       string  `json:"name"`
	Role       string  `json:"role"`
	Token      *string `json:"token,omitempty"`
	CreatedAt  Time    `json:"createdAt"`
	ExpiresAt  Time    `json:"expiresAt"`
	RevokedAt  Time    `json:"revokedAt"`
	LastUsedAt Time    `json:"lastUsedAt"`
}

// Token renders an API token without its secret.
func Token(t openconsole.APIToken) TokenJSON {
	return TokenJSON{ID: t.ID, Name: t.Name, Role: string(t.Role), CreatedAt: Time(t.CreatedAt), ExpiresAt: Time(t.ExpiresAt),
		RevokedAt: Time(t.RevokedAt), LastUsedAt: Time(t.LastUsedAt)}
}

// ManufacturerJSON is a serial's manufacturer.
type ManufacturerJSON struct {
	Name string `json:"name"`
	ID   int64  `json:"id"`
}

// SerialJSON is a registered device serial number.
type SerialJSON struct {
	SerialNumber    string           `json:"serialNumber"`
	Model           string           `json:"model"`
	Manufacturer    ManufacturerJSON `json:"manufacturer"`
	ManufactureDate string           `json:"manufactureDate"`
	Status          string           `json:"status"`
	CreatedAt       Time             `json:"createdAt"`
}

// Serial renders a serial registration.
func Serial(sr openconsole.Serial) SerialJSON {
	status := "registered"
	if sr.Status == openconsole.SerialActivated {
		status = "activated"
	}
	return SerialJSON{SerialNumber: sr.SerialNumber, Model: sr.Model, Manufacturer: ManufacturerJSON{sr.ManufacturerName, sr.ManufacturerID},
		ManufactureDate: sr.ManufactureDate, Status: status, CreatedAt: Time(sr.CreatedAt)}
}

// StatsJSON is the overview of GET /stats.
type StatsJSON struct {
	Licenses         map[string]int `json:"licenses"`
	LiveSessions     int            `json:"liveSessions"`
	Activations24h   int            `json:"activations24h"`
	Activations7d    int            `json:"activations7d"`
	ActivationsByDay []DayJSON      `json:"activationsByDay"`
}

// DayJSON is a count on one day.
type DayJSON struct {
	Day   string `json:"day"` // YYYY-MM-DD (UTC)
	Count int    `json:"count"`
}

// Stats renders the overview.
func Stats(st openconsole.Stats) StatsJSON {
	out := StatsJSON{Licenses: map[string]int{}, LiveSessions: st.HeldSeats, Activations24h: st.Activations24h,
		Activations7d: st.Activations7d, ActivationsByDay: []DayJSON{}}
	for k, v := range st.Licenses {
		out.Licenses[string(k)] = v
	}
	for _, d := range st.ActivationsByDay {
		out.ActivationsByDay = append(out.ActivationsByDay, DayJSON{d.Day.Format(time.DateOnly), d.Count})
	}
	return out
}

// AuditJSON is an entry of the audit log.
type AuditJSON struct {
	Seq    int64           `json:"seq"`
	At     Time            `json:"at"`
	Actor  ActorJSON       `json:"actor"`
	Action string          `json:"action"`
	Target string          `json:"target"`
	Before json.RawMessage `json:"before"`
	After  json.RawMessage `json:"after"`
	// LeafHash is the hash of the entry's leaf that the tree stored when the entry was appended.
	LeafHash *string `json:"leafHash"`
}

// ActorJSON is who made a change.
type ActorJSON struct {
	Kind string `json:"kind"`
	Name string `json:"name"`
	Addr string `json:"addr"`
}

// Audit renders an audit entry.
func Audit(e openconsole.AuditEntry) AuditJSON {
	j := AuditJSON{Seq: e.Seq, At: Time(e.At), Actor: ActorJSON{e.Actor.Kind, e.Actor.Name, e.Actor.Addr}, Action: e.Action,
		Target: e.Target, Before: openconsole.JSONOrString(e.Before), After: openconsole.JSONOrString(e.After)}
	if e.LeafHash != (tlog.Hash{}) {
		h := openconsole.HashString(e.LeafHash)
		j.LeafHash = &h
	}
	return j
}

// AuditEntryFrom is the entry an AuditJSON shows (without its stored leaf hash), from which a
// verifier recomputes the leaf.
func AuditEntryFrom(j AuditJSON) openconsole.AuditEntry {
	return openconsole.AuditEntry{Seq: j.Seq, At: time.Time(j.At), Actor: openconsole.Actor{Kind: j.Actor.Kind,
		Name: j.Actor.Name, Addr: j.Actor.Addr}, Action: j.Action, Target: j.Target, Before: j.Before, After: j.After}
}

// AuditKeyJSON describes the audit log's keys.
type AuditKeyJSON struct {
	Origin    string   `json:"origin"`
	Verifier  string   `json:"verifier"`
	Held      string   `json:"held"`
	Verifiers []string `json:"verifiers"`
}

// AuditKey renders the audit key description.
func AuditKey(k openconsole.AuditKeyInfo) AuditKeyJSON {
	j := AuditKeyJSON{Origin: k.Origin, Verifier: k.Verifier, Held: k.Held, Verifiers: k.Verifiers}
	if j.Verifiers == nil {
		j.Verifiers = []string{}
	}
	return j
}

// CheckpointJSON is a signed checkpoint of the audit tree.
type CheckpointJSON struct {
	Size     int64  `json:"size"`
	RootHash string `json:"rootHash"`
	SignedAt Time   `json:"signedAt"`
	// Note is the signed note: origin, size and root hash on three lines, a blank line, and the
	// signature line. Verify it before relying on Size and RootHash.
	Note string `json:"note"`
}

// Checkpoint renders a checkpoint.
func Checkpoint(c openconsole.AuditCheckpoint) CheckpointJSON {
	return CheckpointJSON{Size: c.Size, RootHash: openconsole.HashString(c.Root), SignedAt: Time(c.SignedAt), Note: string(c.Note)}
}

// InclusionJSON proves that an entry is in a tree.
type InclusionJSON struct {
	Seq      int64     `json:"seq"`
	Size     int64     `json:"size"`
	Entry    AuditJSON `json:"entry"`
	Leaf     string    `json:"leaf"` // the bytes the leaf hashes (the entry's canonical JSON)
	LeafHash string    `json:"leafHash"`
	RootHash string    `json:"rootHash"`
	// Proof is the audit path from the leaf up, as RFC 6962 defines it.
	Proof      []string `json:"proof"`
	Checkpoint *string  `json:"checkpoint"` // the signed checkpoint of Size, if one was signed
}

// Inclusion renders an inclusion proof.
func Inclusion(in openconsole.AuditInclusion) InclusionJSON {
	return InclusionJSON{Seq: in.Entry.Seq, Size: in.Size, Entry: Audit(in.Entry), Leaf: string(in.Leaf),
		LeafHash: openconsole.HashString(tlog.RecordHash(in.Leaf)), RootHash: openconsole.HashString(in.Root),
		Proof: hashStrings(in.Proof), Checkpoint: noteOrNil(in.Checkpoint)}
}

// ConsistencyJSON proves that a tree extends a smaller one.
type ConsistencyJSON struct {
	From           int64    `json:"from"`
	To             int64    `json:"to"`
	FromRootHash   string   `json:"fromRootHash"`
	ToRootHash     string   `json:"toRootHash"`
	Proof          []string `json:"proof"` // as RFC 6962 defines it
	FromCheckpoint *string  `json:"fromCheckpoint"`
	ToCheckpoint   *string  `json:"toCheckpoint"`
}

// Consistency renders a consistency proof.
func Consistency(c openconsole.AuditConsistency) ConsistencyJSON {
	return ConsistencyJSON{From: c.From, To: c.To, FromRootHash: openconsole.HashString(c.FromRoot),
		ToRootHash: openconsole.HashString(c.ToRoot), Proof: hashStrings(c.Proof),
		FromCheckpoint: noteOrNil(c.FromCheckpoint), ToCheckpoint: noteOrNil(c.ToCheckpoint)}
}

func hashStrings(hs []tlog.Hash) []string {
	out := make([]string, len(hs))
	for i, h := range hs {
		out[i] = openconsole.HashString(h)
	}
	return out
}

func noteOrNil(b []byte) *string {
	if len(b) == 0 {
		return nil
	}
	s := string(b)
	return &s
}

// Page is a page of a listing.
type Page[T any] struct {
	Items      []T     `json:"items"`
	NextCursor *string `json:"nextCursor"`
}
