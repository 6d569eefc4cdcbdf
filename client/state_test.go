package client

import (
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
)

// coreSession is FLECS Core's model of a stored session: both parts optional.
type coreSession struct {
	id *string
	ts *uint64
}

// coreReadSession reads .session_id as FLECS Core's secret pouch does (Rust str::lines; the
// first line is the id; the second, parsed as u64, the timestamp). Written from the behaviour
// described in the wire contract §3.4, independently of parseSessionFile.
func coreReadSession(content string) coreSession {
	var s coreSession
	var lines []string
	for rest := content; rest != ""; {
		i := strings.IndexByte(rest, '\n')
		var l string
		if i < 0 {
			l, rest = rest, ""
		} else {
			l, rest = rest[:i], rest[i+1:]
		}
		lines = append(lines, strings.TrimSuffix(l, "\r"))
	}
	if len(lines) > 0 {
		s.id = &lines[0]
	}
	if len(lines) > 1 {
		if v, err := strconv.ParseUint(lines[1], 10, 64); err == nil {
			s.ts = &v
		}
	}
	return s
}

// coreWriteSession is Core's format: "{id}\n{timestamp}", the id alone, or nothing.
func coreWriteSession(s coreSession) string {
	switch {
	case s.id != nil && s.ts != nil:
		return *s.id + "\n" + strconv.FormatUint(*s.ts, 10)
	case s.id != nil:
		return *s.id
	}
	return ""
}

const sid = "510292de-e745-4dd0-bf04-75630ba52187"

func TestStateReadsCoreFiles(t *testing.T) {
	st, err := OpenState(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	ts := uint64(1723534992)
	for name, tc := range map[string]struct {
		session string
		want    Session
	}{
		"id and timestamp": {coreWriteSession(coreSession{id: ptr(sid), ts: &ts}), Session{ID: sid, HasID: true, Timestamp: ts, HasTimestamp: true}},
		"id only":          {coreWriteSession(coreSession{id: ptr(sid)}), Session{ID: sid, HasID: true}},
		"empty":            {coreWriteSession(coreSession{}), Session{}},
		"final newline":    {sid + "\n1723534992\n", Session{ID: sid, HasID: true, Timestamp: ts, HasTimestamp: true}},
		"CRLF":             {sid + "\r\n1723534992\r\n", Session{ID: sid, HasID: true, Timestamp: ts, HasTimestamp: true}},
		"bad timestamp":    {sid + "\nsoon", Session{ID: sid, HasID: true}},
	} {
		if err := os.WriteFile(filepath.Join(st.Dir, ".session_id"), []byte(tc.session), 0o600); err != nil {
			t.Fatal(err)
		}
		got, err := st.Session()
		if err != nil || got != tc.want {
			t.Errorf("%s: Session() = %+v, %v; want %+v", name, got, err, tc.want)
		}
	}
	for content, want := range map[string]string{"1234-ABCD-EFGH-5678-IJKL": "1234-ABCD-EFGH-5678-IJKL", "KEY\n": "KEY", "": ""} {
		os.WriteFile(filepath.Join(st.Dir, ".license"), []byte(content), 0o600)
		if got, err := st.License(); err != nil || got != want {
			t.Errorf("License() of %q = %q, %v; want %q", content, got, err, want)
		}
	}
}

func TestStateFilesAreCores(t *testing.T) {
	dir := t.TempDir()
	st, err := OpenState(dir)
	if err != nil {
		t.Fatal(err)
	}
	ts := uint64(1724671774876)
	for _, s := range []Session{{ID: sid, HasID: true, Timestamp: ts, HasTimestamp: true}, {ID: sid, HasID: true}, {}} {
		if err := st.SetSession(s); err != nil {
			t.Fatal(err)
		}
		b, _ := os.ReadFile(filepath.Join(dir, ".session_id"))
		core := coreReadSession(string(b))
		var want coreSession
		if s.HasID {
			want.id = &s.ID
		}
		if s.HasTimestamp {
			want.ts = &s.Timestamp
		}
		if coreWriteSession(core) != coreWriteSession(want) || string(b) != coreWriteSession(want) {
			t.Errorf("SetSession(%+v) wrote %q; Core writes %q", s, b, coreWriteSession(want))
		}
	}
	if err := st.SetLicense("1234-ABCD-EFGH-5678-IJKL"); err != nil {
		t.Fatal(err)
	}
	b, _ := os.ReadFile(filepath.Join(dir, ".license"))
	if string(b) != "1234-ABCD-EFGH-5678-IJKL" {
		t.Errorf(".license = %q, want the key alone, as Core writes it", b)
	}
	fi, _ := os.Stat(filepath.Join(dir, ".license"))
	if fi.Mode().Perm() != 0o600 {
		t.Errorf(".license mode %v, want 0600", fi.Mode().Perm())
	}
	if err := st.SetLicense("a\nb"); err == nil {
		t.Error("a license key with a line break was stored")
	}
	ents, _ := os.ReadDir(dir)
	for _, e := range ents {
		if strings.Contains(e.Name(), ".tmp-") {
			t.Errorf("temporary file left behind: %s", e.Name())
		}
	}
}

func ptr[T any](v T) *T { return &v }

// TestAdopt follows FLECS Core's set_session_id cases.
func TestAdopt(t *testing.T) {
	cur := Session{ID: "51ff9015-1d6e-4b3a-a3e0-a51ee7d5b4f3", HasID: true, Timestamp: 1724671774876, HasTimestamp: true}
	next := func(ts uint64) Session {
		return Session{ID: "d22cdf2b-abc4-4cc1-bc01-7cbd70b5b10f", HasID: true, Timestamp: ts, HasTimestamp: true}
	}
	for name, tc := range map[string]struct {
		stored, incoming, want Session
		older                  bool
	}{
		"newer":                 {cur, next(1724671774900), next(1724671774900), false},
		"older":                 {cur, next(1724671774000), cur, true},
		"same age":              {cur, next(1724671774876), next(1724671774876), false},
		"stored without id":     {Session{Timestamp: 1724671774900, HasTimestamp: true}, next(1724671774876), next(1724671774876), false},
		"stored without time":   {Session{ID: cur.ID, HasID: true}, next(1724671774876), next(1724671774876), false},
		"incoming without time": {cur, Session{ID: "x", HasID: true}, cur, false},
		"incoming empty":        {cur, Session{}, cur, false},
		"nothing stored":        {Session{}, Session{ID: "x", HasID: true}, Session{ID: "x", HasID: true}, false},
	} {
		got, _, older := Adopt(tc.stored, tc.incoming)
		if got != tc.want || older != tc.older {
			t.Errorf("%s: Adopt = %+v (older %v), want %+v (older %v)", name, got, older, tc.want, tc.older)
		}
	}
}
