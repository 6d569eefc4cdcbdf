package openconsole

import (
	"bytes"
	"encoding/json"
	"fmt"
	"regexp"
	"time"
	"unicode/utf8"
)

// Manifest is one variant of an app manifest: the FLECS app-sdk manifest document of an app at a
// version, written for one manifest schema version (_schemaVersion). An app version may have
// several variants, so that devices of different ages each get one they understand (wire contract
// §2.6).
type Manifest struct {
	App           string
	Version       string
	SchemaVersion string
	Document      json.RawMessage // the manifest as stored and served, compact JSON
	CreatedAt     time.Time
}

// MaxManifestBytes bounds a manifest document.
const MaxManifestBytes = 1 << 20

// The patterns of the manifest schema (app-sdk manifest.schema.json). The ports pattern needs
// look-around, which Go's regexp lacks; ports are checked by checkPort instead.
var (
	appNameRE   = regexp.MustCompile(`^((?:[a-z])+[a-z0-9.\-_]+[a-z0-9])$`)
	imageRE     = regexp.MustCompile(`^((?:(?:(?:[a-zA-Z0-9]|[a-zA-Z0-9][a-zA-Z0-9-]*[a-zA-Z0-9])(?:\.(?:[a-zA-Z0-9]|[a-zA-Z0-9][a-zA-Z0-9-]*[a-zA-Z0-9]))*|\[(?:[a-fA-F0-9:]+)\])(?::[0-9]+)?/)?[a-z0-9]+(?:(?:[._]|__|[-]+)[a-z0-9]+)*(?:/[a-z0-9]+(?:(?:[._]|__|[-]+)[a-z0-9]+)*)*)(?::([\w][\w.-]{0,127}))?(?:@([A-Za-z][A-Za-z0-9]*(?:[-_+.][A-Za-z][A-Za-z0-9]*)*[:][A-Fa-f0-9]{32,}))?$`)
	conffileRE  = regexp.MustCompile(`(^[^/:]+):([^:]+)(?:$|:(r[ow](?:,(?:no_)?init$|)$|(?:no_)?init)$)`)
	deviceRE    = regexp.MustCompile(`^(/dev/.+)$`)
	envRE       = regexp.MustCompile(`^[a-zA-Z]+(?:[a-zA-Z0-9_\-\.])*=.+$`)
	volumeRE    = regexp.MustCompile(`(?:^([a-zA-Z0-9\-_.]+)|^/[a-zA-Z0-9\-_./]+):([a-zA-Z0-9\-_./]+)$`)
	labelRE     = regexp.MustCompile(`^[a-z](?:(?:[\-\.]?[a-zA-Z0-9])*[\-\.]?[a-z])?(?:=.*)?$`)
	portRangeRE = regexp.MustCompile(`^(?:(\d+)(?:-(\d+))?)?(?::(\d+)(?:-(\d+))?)?$`)
)

var capabilities = map[string]bool{"DOCKER": true, "NET_ADMIN": true, "SYS_NICE": true, "IPC_LOCK": true, "NET_RAW": true}

// ValidAppName reports whether s is an app identifier as the manifest schema defines it (reverse
// domain name notation, such as tech.flecs.flunder).
func ValidAppName(s string) bool {
	return len(s) <= 255 && appNameRE.MatchString(s)
}

// ParseManifest checks a manifest document against the rules of the FLECS app manifest schema:
// a JSON object with the required _schemaVersion, app, version and image; the patterns of
// _schemaVersion, _minimumFlecsVersion, app and image and of the items of conffiles, devices, env,
// volumes, labels and ports; and the types of every property the schema knows. Unknown properties
// are kept. Errors are EINVALID and name the failing field, as in `manifest field "app": ...`.
func ParseManifest(doc []byte) (Manifest, error) {
	if len(doc) > MaxManifestBytes {
		return Manifest{}, Errorf(EINVALID, "manifest is larger than %d bytes", MaxManifestBytes)
	}
	if !utf8.Valid(doc) {
		return Manifest{}, Errorf(EINVALID, "manifest is not valid UTF-8")
	}
	var fields map[string]json.RawMessage
	if err := json.Unmarshal(doc, &fields); err != nil || fields == nil {
		return Manifest{}, Errorf(EINVALID, "manifest is not a JSON object")
	}
	bad := func(field, format string, args ...any) error {
		return Errorf(EINVALID, "manifest field %q: %s", field, fmt.Sprintf(format, args...))
	}
	for _, f := range []string{"_schemaVersion", "app", "version", "image"} {
		if _, ok := fields[f]; !ok {
			return Manifest{}, bad(f, "is required")
		}
	}
	str := func(f string) (string, error) {
		var s string
		if json.Unmarshal(fields[f], &s) != nil {
			return "", bad(f, "must be a string")
		}
		return s, nil
	}
	var m Manifest
	var err error
	if m.SchemaVersion, err = str("_schemaVersion"); err != nil {
		return Manifest{}, err
	}
	if _, err := ParseSemver(m.SchemaVersion); err != nil {
		return Manifest{}, bad("_schemaVersion", "%q is %v", m.SchemaVersion, err)
	}
	if m.App, err = str("app"); err != nil {
		return Manifest{}, err
	}
	if !ValidAppName(m.App) {
		return Manifest{}, bad("app", "%q does not match the pattern of a reverse domain name such as tech.flecs.flunder", m.App)
	}
	if m.Version, err = str("version"); err != nil {
		return Manifest{}, err
	}
	if m.Version == "" || len(m.Version) > 128 || !printable(m.Version) {
		return Manifest{}, bad("version", "must be 1 to 128 printable characters")
	}
	image, err := str("image")
	if err != nil {
		return Manifest{}, err
	}
	if !imageRE.MatchString(image) {
		return Manifest{}, bad("image", "%q is not a Docker image reference", image)
	}
	for f, check := range manifestChecks {
		raw, ok := fields[f]
		if !ok {
			continue
		}
		if msg := check(raw); msg != "" {
			return Manifest{}, bad(f, "%s", msg)
		}
	}
	var buf bytes.Buffer
	if err := json.Compact(&buf, doc); err != nil {
		return Manifest{}, Errorf(EINVALID, "manifest is not a JSON object")
	}
	m.Document = buf.Bytes()
	return m, nil
}

// manifestChecks check the optional properties of the schema; each returns "" or what is wrong.
var manifestChecks = map[string]func(json.RawMessage) string{
	"_minimumFlecsVersion": func(raw json.RawMessage) string {
		var s string
		if json.Unmarshal(raw, &s) != nil {
			return "must be a string"
		}
		if _, err := ParseSemver(s); err != nil {
			return fmt.Sprintf("%q is %v", s, err)
		}
		return ""
	},
	"revision":      isType[string]("a string"),
	"multiInstance": isType[bool]("a boolean"),
	"interactive":   isType[bool]("a boolean"),
	"args":          stringItems(nil, ""),
	"conffiles":     stringItems(conffileRE.MatchString, "a config file such as default.conf:/etc/app/default.conf[:ro|rw][,init|no_init]"),
	"devices":       stringItems(deviceRE.MatchString, "a device path under /dev/"),
	"env":           stringItems(envRE.MatchString, "an environment variable NAME=value"),
	"volumes":       stringItems(volumeRE.MatchString, "a volume or bind mount such as my-app-etc:/etc/my-app"),
	"labels":        stringItems(labelRE.MatchString, "a label such as tech.flecs or tech.flecs.some-label=value"),
	"ports":         stringItems(checkPort, "a port mapping such as 8001:8001, 5000 or 5001-5008:6001-6008"),
	"capabilities": func(raw json.RawMessage) string {
		var caps []string
		if json.Unmarshal(raw, &caps) != nil || caps == nil {
			return "must be an array of strings"
		}
		seen := map[string]bool{}
		for i, c := range caps {
			if !capabilities[c] {
				return fmt.Sprintf("item %d: %q is not one of DOCKER, NET_ADMIN, SYS_NICE, IPC_LOCK, NET_RAW", i, c)
			}
			if seen[c] {
				return fmt.Sprintf("item %d: %q appears twice", i, c)
			}
			seen[c] = true
		}
		return ""
	},
	"editors": func(raw json.RawMessage) string {
		var eds []map[string]json.RawMessage
		if json.Unmarshal(raw, &eds) != nil || eds == nil {
			return "must be an array of objects"
		}
		for i, ed := range eds {
			var name string
			if json.Unmarshal(ed["name"], &name) != nil {
				return fmt.Sprintf("item %d: name is required and must be a string", i)
			}
			var port float64
			if json.Unmarshal(ed["port"], &port) != nil || port != float64(int(port)) || port < 1 || port > 65535 {
				return fmt.Sprintf("item %d: port is required and must be an integer from 1 to 65535", i)
			}
			if rp, ok := ed["supportsReverseProxy"]; ok {
				var b bool
				if json.Unmarshal(rp, &b) != nil {
					return fmt.Sprintf("item %d: supportsReverseProxy must be a boolean", i)
				}
			}
		}
		return ""
	},
}

func isType[T any](what string) func(json.RawMessage) string {
	return func(raw json.RawMessage) string {
		var v T
		if bytes.Equal(bytes.TrimSpace(raw), []byte("null")) || json.Unmarshal(raw, &v) != nil {
			return "must be " + what
		}
		return ""
	}
}

// stringItems checks an array of strings, each matching match when it is not nil.
func stringItems(match func(string) bool, what string) func(json.RawMessage) string {
	return func(raw json.RawMessage) string {
		var items []string
		if json.Unmarshal(raw, &items) != nil || items == nil {
			return "must be an array of strings"
		}
		for i, s := range items {
			if match != nil && !match(s) {
				return fmt.Sprintf("item %d: %q is not %s", i, s, what)
			}
		}
		return ""
	}
}

// checkPort accepts what the schema's ports pattern accepts: HOST[-HOST_END][:CONTAINER[-CONTAINER_END]]
// or :CONTAINER, every port from 1 to 65535 without a leading zero, and ranges of equal length.
func checkPort(s string) bool {
	m := portRangeRE.FindStringSubmatch(s)
	if m == nil || s == "" || s == ":" {
		return false
	}
	for _, p := range m[1:] {
		if p == "" {
			continue
		}
		if p[0] == '0' || len(p) > 5 {
			return false
		}
		n := 0
		for _, c := range p {
			n = n*10 + int(c-'0')
		}
		if n < 1 || n > 65535 {
			return false
		}
	}
	// A range end needs a start (5001-5008), and a container range needs a host range or none.
	if m[2] != "" && m[1] == "" || m[4] != "" && m[3] == "" {
		return false
	}
	return true
}

// ManifestSelector says which variant of an app version a device wants (wire contract §2.6). Exact
// wins over Max; with neither the newest variant is chosen.
type ManifestSelector struct {
	Exact *Semver // manifest_version: the variant with exactly this _schemaVersion
	Max   *Semver // max_manifest_version: the newest variant whose _schemaVersion is at most this
}

// legacySchemaLimit is the lowest version of manifest schema 3 (3.0.0-0 precedes every other 3.x
// version, pre-releases included): a client that names no schema version gets a variant below it
// when there is one.
var legacySchemaLimit = Semver{Major: "3", Minor: "0", Patch: "0", Pre: []string{"0"}}

// Select returns the variant sel picks from the variants of one app version, and false when none
// fits. Variants of equal precedence (differing only in build metadata) go to the one added last.
// With neither Exact nor Max, it picks the newest variant of a schema below 3 (wire contract §2.6:
// the old C++ daemon names no schema version and parses only 2.x manifests), and only when there
// is none the newest variant.
func (sel ManifestSelector) Select(variants []Manifest) (Manifest, bool) {
	if sel.Exact == nil && sel.Max == nil {
		if m, ok := sel.pick(variants, func(v Semver) bool { return v.Compare(legacySchemaLimit) < 0 }); ok {
			return m, true
		}
	}
	return sel.pick(variants, func(Semver) bool { return true })
}

// pick is Select among the variants whose schema version also satisfies keep.
func (sel ManifestSelector) pick(variants []Manifest, keep func(Semver) bool) (Manifest, bool) {
	var best Manifest
	var bestV Semver
	found := false
	for _, m := range variants {
		v, err := ParseSemver(m.SchemaVersion)
		if err != nil {
			continue // stored through ParseManifest, so this does not happen
		}
		switch {
		case sel.Exact != nil:
			if v.Compare(*sel.Exact) != 0 {
				continue
			}
		case sel.Max != nil:
			if v.Compare(*sel.Max) > 0 {
				continue
			}
		}
		if !keep(v) {
			continue
		}
		if !found || v.Compare(bestV) > 0 || v.Compare(bestV) == 0 && !m.CreatedAt.Before(best.CreatedAt) {
			best, bestV, found = m, v, true
		}
	}
	return best, found
}

// String describes sel for messages.
func (sel ManifestSelector) String() string {
	switch {
	case sel.Exact != nil:
		return "_schemaVersion " + sel.Exact.String()
	case sel.Max != nil:
		return "_schemaVersion <= " + sel.Max.String()
	}
	return "any _schemaVersion"
}
