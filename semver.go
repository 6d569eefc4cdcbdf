package openconsole

import (
	"errors"
	"strings"
)

// Semver is a version in Semantic Versioning 2.0.0 form, MAJOR.MINOR.PATCH[-PRERELEASE][+BUILD], as
// manifests carry it in _schemaVersion and clients send it in max_manifest_version. Numbers are kept
// as their decimal digits, so that no value is too large to compare.
type Semver struct {
	Major, Minor, Patch string   // decimal, no leading zero
	Pre                 []string // pre-release identifiers; none for a release
	Build               string   // build metadata; ignored by comparison
}

// errSemver is what ParseSemver returns for anything that is not a semantic version.
var errSemver = errors.New("not a semantic version (MAJOR.MINOR.PATCH[-PRERELEASE][+BUILD])")

// ParseSemver parses s strictly by Semantic Versioning 2.0.0 (the grammar of the manifest schema's
// _schemaVersion pattern): no "v" prefix, no leading zeros in numbers, no empty identifiers.
func ParseSemver(s string) (Semver, error) {
	var v Semver
	rest, build, hasBuild := strings.Cut(s, "+")
	if hasBuild {
		if !validIdents(build, false) {
			return Semver{}, errSemver
		}
		v.Build = build
	}
	core, pre, hasPre := strings.Cut(rest, "-")
	if hasPre {
		if !validIdents(pre, true) {
			return Semver{}, errSemver
		}
		v.Pre = strings.Split(pre, ".")
	}
	nums := strings.Split(core, ".")
	if len(nums) != 3 {
		return Semver{}, errSemver
	}
	for _, n := range nums {
		if !isNumeric(n) || len(n) > 1 && n[0] == '0' {
			return Semver{}, errSemver
		}
	}
	v.Major, v.Minor, v.Patch = nums[0], nums[1], nums[2]
	return v, nil
}

// validIdents reports whether s is a dot-separated list of non-empty [0-9A-Za-z-] identifiers; for
// a pre-release, numeric identifiers must not have leading zeros.
func validIdents(s string, pre bool) bool {
	for _, id := range strings.Split(s, ".") {
		if id == "" {
			return false
		}
		for i := 0; i < len(id); i++ {
			c := id[i]
			if !(c >= '0' && c <= '9' || c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c == '-') {
				return false
			}
		}
		if pre && isNumeric(id) && len(id) > 1 && id[0] == '0' {
			return false
		}
	}
	return true
}

func isNumeric(s string) bool {
	if s == "" {
		return false
	}
	for i := 0; i < len(s); i++ {
		if s[i] < '0' || s[i] > '9' {
			return false
		}
	}
	return true
}

// String returns the version as it was written.
func (v Semver) String() string {
	s := v.Major + "." + v.Minor + "." + v.Patch
	if len(v.Pre) > 0 {
		s += "-" + strings.Join(v.Pre, ".")
	}
	if v.Build != "" {
		s += "+" + v.Build
	}
	return s
}

// Compare returns -1, 0 or +1 as v has lower, equal or higher precedence than w (Semantic
// Versioning 2.0.0 §11): numbers compare numerically, a pre-release is lower than its release,
// pre-release identifiers compare one by one (numeric ones numerically and below alphanumeric ones,
// which compare in ASCII order), a shorter list of equal identifiers is lower, and build metadata
// does not count.
func (v Semver) Compare(w Semver) int {
	for _, p := range [][2]string{{v.Major, w.Major}, {v.Minor, w.Minor}, {v.Patch, w.Patch}} {
		if c := compareDigits(p[0], p[1]); c != 0 {
			return c
		}
	}
	switch {
	case len(v.Pre) == 0 && len(w.Pre) == 0:
		return 0
	case len(v.Pre) == 0:
		return 1
	case len(w.Pre) == 0:
		return -1
	}
	for i := 0; i < len(v.Pre) && i < len(w.Pre); i++ {
		a, b := v.Pre[i], w.Pre[i]
		an, bn := isNumeric(a), isNumeric(b)
		var c int
		switch {
		case an && bn:
			c = compareDigits(a, b)
		case an:
			c = -1
		case bn:
			c = 1
		default:
			c = strings.Compare(a, b)
		}
		if c != 0 {
			return c
		}
	}
	switch {
	case len(v.Pre) < len(w.Pre):
		return -1
	case len(v.Pre) > len(w.Pre):
		return 1
	}
	return 0
}

// compareDigits compares two decimal numbers without leading zeros, of any length.
func compareDigits(a, b string) int {
	switch {
	case len(a) < len(b):
		return -1
	case len(a) > len(b):
		return 1
	}
	return strings.Compare(a, b)
}
