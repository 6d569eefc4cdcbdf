package openconsole

import "testing"

func TestParseSemver(t *testing.T) {
	for _, tc := range []struct {
		in string
		ok bool
	}{
		{"0.0.0", true},
		{"1.2.3", true},
		{"3.0.0-beta.1", true},
		{"1.0.0-alpha-1.x-y.0", true},
		{"1.0.0+build.7", true},
		{"1.0.0-rc.1+sha.5114f85", true},
		{"1.0.0-0A.is.legal", true},
		{"99999999999999999999999.0.0", true},
		{"", false},
		{"abc", false},
		{"1", false},
		{"1.0", false},
		{"1.0.0.0", false},
		{"v1.0.0", false},
		{"01.0.0", false},
		{"1.00.0", false},
		{"1.0.0-", false},
		{"1.0.0-01", false},
		{"1.0.0-a..b", false},
		{"1.0.0+", false},
		{"1.0.0+a+b", false},
		{"1.0.0-a_b", false},
		{" 1.0.0", false},
		{"1.0.0 ", false},
		{"-1.0.0", false},
	} {
		v, err := ParseSemver(tc.in)
		if (err == nil) != tc.ok {
			t.Errorf("ParseSemver(%q) error = %v; want ok = %v", tc.in, err, tc.ok)
			continue
		}
		if tc.ok && v.String() != tc.in {
			t.Errorf("ParseSemver(%q).String() = %q; want the input", tc.in, v.String())
		}
	}
}

func TestSemverCompare(t *testing.T) {
	// Ascending precedence, from Semantic Versioning 2.0.0 §11 plus numeric edge cases.
	order := []string{
		"0.9.9",
		"1.0.0-0",
		"1.0.0-2",
		"1.0.0-11",
		"1.0.0-alpha",
		"1.0.0-alpha.1",
		"1.0.0-alpha.beta",
		"1.0.0-beta",
		"1.0.0-beta.2",
		"1.0.0-beta.11",
		"1.0.0-rc.1",
		"1.0.0",
		"1.0.1",
		"1.2.0",
		"1.10.0",
		"2.0.0",
		"2.5.0",
		"3.0.0-beta.1",
		"3.0.0",
		"10.0.0",
		"99999999999999999999999.0.0",
	}
	parse := func(s string) Semver {
		t.Helper()
		v, err := ParseSemver(s)
		if err != nil {
			t.Fatalf("ParseSemver(%q): %v", s, err)
		}
		return v
	}
	for i, a := range order {
		for j, b := range order {
			want := 0
			if i < j {
				want = -1
			} else if i > j {
				want = 1
			}
			if got := parse(a).Compare(parse(b)); got != want {
				t.Errorf("Compare(%s, %s) = %d; want %d", a, b, got, want)
			}
		}
	}
	// Build metadata does not count.
	if got := parse("1.0.0+a").Compare(parse("1.0.0+b")); got != 0 {
		t.Errorf("Compare(1.0.0+a, 1.0.0+b) = %d; want 0", got)
	}
	if got := parse("1.0.0-rc.1+x").Compare(parse("1.0.0-rc.1")); got != 0 {
		t.Errorf("Compare(1.0.0-rc.1+x, 1.0.0-rc.1) = %d; want 0", got)
	}
}

// Wire contract §2.6: a request that names no schema version (the old C++ daemon, which parses
// only 2.x manifests) gets the newest variant below schema 3, and the newest variant only when
// the version has none below 3.
func TestSelectWithoutParameterPrefersLegacySchema(t *testing.T) {
	variants := func(vs ...string) []Manifest {
		out := make([]Manifest, len(vs))
		for i, v := range vs {
			out[i] = Manifest{SchemaVersion: v}
		}
		return out
	}
	for _, tc := range []struct {
		name     string
		variants []Manifest
		want     string
	}{
		{"2.x and 3.x", variants("3.0.0", "2.0.0"), "2.0.0"},
		{"newest 2.x", variants("2.0.0", "3.1.0", "2.5.1", "3.0.0"), "2.5.1"},
		{"a 3.0.0 pre-release is 3.x", variants("2.0.0", "3.0.0-rc.1"), "2.0.0"},
		{"a 2.x pre-release is 2.x", variants("3.0.0", "2.9.0-beta"), "2.9.0-beta"},
		{"only 3.x", variants("3.0.0", "3.2.0"), "3.2.0"},
		{"only 1.x", variants("1.0.0"), "1.0.0"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			m, ok := ManifestSelector{}.Select(tc.variants)
			if !ok || m.SchemaVersion != tc.want {
				t.Errorf("Select = %q, %v; want %q", m.SchemaVersion, ok, tc.want)
			}
		})
	}
	// Naming a schema version still gets the newest that fits.
	max := Semver{Major: "3", Minor: "0", Patch: "0"}
	if m, _ := (ManifestSelector{Max: &max}).Select(variants("2.0.0", "3.0.0")); m.SchemaVersion != "3.0.0" {
		t.Errorf("Select with max 3.0.0 = %q, want 3.0.0", m.SchemaVersion)
	}
}
