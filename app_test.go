package openconsole

import (
	"encoding/json"
	"strings"
	"testing"
	"time"
)

func TestParseManifest(t *testing.T) {
	base := map[string]any{
		"_schemaVersion": "3.0.0-beta.1", "app": "io.anyviz.cloudadapter", "version": "v3.14.159-alpha.2",
		"image": "flecs.azurecr.io/io.anyviz.cloudadapter:1.0", "unknown": map[string]any{"kept": true},
		"ports": []string{"8001:8001", "5000", "5001-5008:6001-6008", "6001-6008"},
		"conffiles": []string{"default.conf:/etc/my-app/default.conf", "default.conf:/etc/my-app/default.conf:rw",
			"a.conf:/etc/a.conf:ro,no_init"},
		"devices": []string{"/dev/net/tun"}, "env": []string{"MY_ENV=value", "tech.flecs.some-app_value=any"},
		"volumes": []string{"my-app-etc:/etc/my-app", "/etc/my-app:/etc/my-app"},
		"labels":  []string{"tech.flecs", "tech.flecs.some-label=Some custom label value"},
		"editors": []any{map[string]any{"name": "UI", "port": 5678, "supportsReverseProxy": false}},
		"args":    []string{"--x"}, "capabilities": []string{"DOCKER", "NET_RAW"}, "multiInstance": true, "revision": "2",
	}
	doc := func(changes map[string]any) []byte {
		m := map[string]any{}
		for k, v := range base {
			m[k] = v
		}
		for k, v := range changes {
			if v == nil {
				delete(m, k)
			} else {
				m[k] = v
			}
		}
		b, _ := json.Marshal(m)
		return b
	}
	m, err := ParseManifest(doc(nil))
	if err != nil {
		t.Fatalf("valid manifest refused: %v", err)
	}
	if m.App != "io.anyviz.cloudadapter" || m.Version != "v3.14.159-alpha.2" || m.SchemaVersion != "3.0.0-beta.1" ||
		!strings.Contains(string(m.Document), `"unknown":{"kept":true}`) {
		t.Errorf("parsed %+v", m)
	}
	for name, tc := range map[string]struct {
		changes map[string]any
		field   string
	}{
		"no_app":           {map[string]any{"app": nil}, `"app": is required`},
		"no_image":         {map[string]any{"image": nil}, `"image": is required`},
		"app_digit_first":  {map[string]any{"app": "1tech.flecs"}, `"app"`},
		"app_dash_last":    {map[string]any{"app": "tech.flecs-"}, `"app"`},
		"schema_v":         {map[string]any{"_schemaVersion": "v3.0.0"}, `"_schemaVersion"`},
		"version_empty":    {map[string]any{"version": ""}, `"version"`},
		"image_uppercase":  {map[string]any{"image": "Flecs/App"}, `"image"`},
		"port_zero":        {map[string]any{"ports": []string{"0:80"}}, `"ports": item 0`},
		"port_leading_0":   {map[string]any{"ports": []string{"080"}}, `"ports": item 0`},
		"port_text":        {map[string]any{"ports": []string{"http"}}, `"ports": item 0`},
		"device":           {map[string]any{"devices": []string{"/tmp/x"}}, `"devices": item 0`},
		"volume":           {map[string]any{"volumes": []string{"novolume"}}, `"volumes": item 0`},
		"label":            {map[string]any{"labels": []string{"Upper"}}, `"labels": item 0`},
		"conffile":         {map[string]any{"conffiles": []string{"/abs:/etc/x"}}, `"conffiles": item 0`},
		"capability_twice": {map[string]any{"capabilities": []string{"DOCKER", "DOCKER"}}, `"capabilities": item 1`},
		"editor_no_name":   {map[string]any{"editors": []any{map[string]any{"port": 80}}}, `"editors": item 0: name`},
		"args_not_strings": {map[string]any{"args": []any{1}}, `"args": must be an array of strings`},
		"revision_number":  {map[string]any{"revision": 2}, `"revision": must be a string`},
	} {
		_, err := ParseManifest(doc(tc.changes))
		if err == nil || ErrorCode(err) != EINVALID || !strings.Contains(err.Error(), tc.field) {
			t.Errorf("%s: err %v; want EINVALID naming %s", name, err, tc.field)
		}
	}
}

func TestManifestSelect(t *testing.T) {
	at := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	variants := []Manifest{
		{SchemaVersion: "2.0.0", CreatedAt: at},
		{SchemaVersion: "3.0.0-beta.1", CreatedAt: at},
		{SchemaVersion: "3.0.0", CreatedAt: at},
		{SchemaVersion: "3.0.0+b2", CreatedAt: at.Add(time.Second)}, // equal precedence, added later
		{SchemaVersion: "10.0.0", CreatedAt: at},
	}
	sv := func(s string) *Semver {
		v, err := ParseSemver(s)
		if err != nil {
			t.Fatal(err)
		}
		return &v
	}
	for _, tc := range []struct {
		sel  ManifestSelector
		want string // "" for none
	}{
		{ManifestSelector{}, "2.0.0"}, // no parameter: the newest below 3.0.0 (wire contract §2.6)
		{ManifestSelector{Max: sv("3.0.0")}, "3.0.0+b2"},
		{ManifestSelector{Max: sv("3.0.0-rc.1")}, "3.0.0-beta.1"},
		{ManifestSelector{Max: sv("2.9.9")}, "2.0.0"},
		{ManifestSelector{Max: sv("9.0.0")}, "3.0.0+b2"},
		{ManifestSelector{Max: sv("1.9.9")}, ""},
		{ManifestSelector{Exact: sv("3.0.0-beta.1")}, "3.0.0-beta.1"},
		{ManifestSelector{Exact: sv("2.0.0"), Max: sv("10.0.0")}, "2.0.0"},
		{ManifestSelector{Exact: sv("2.0.1")}, ""},
	} {
		m, ok := tc.sel.Select(variants)
		if got := map[bool]string{true: m.SchemaVersion}[ok]; got != tc.want {
			t.Errorf("Select(%s) = %q; want %q", tc.sel, got, tc.want)
		}
	}
}

func TestSealCredentials(t *testing.T) {
	k1, k2 := NewDataKey(time.Now()), NewDataKey(time.Now())
	c := RegistryCredentials{Username: "pull", Password: "p@ss word\u00e9"}
	sealed, err := SealCredentials(k1, "tech.flecs.a", c)
	if err != nil {
		t.Fatal(err)
	}
	if strings.Contains(sealed, "pull") || strings.Contains(sealed, "p@ss") || !strings.HasPrefix(sealed, "v1."+k1.ID+".") {
		t.Errorf("sealed %q shows the credentials or lacks its key id", sealed)
	}
	again, _ := SealCredentials(k1, "tech.flecs.a", c)
	if again == sealed {
		t.Error("two seals of the same credentials are equal; want a fresh nonce each time")
	}
	got, err := OpenCredentials([]DataKey{k2, k1}, "tech.flecs.a", sealed)
	if err != nil || got != c {
		t.Errorf("open: %+v, %v; want %+v", got, err, c)
	}
	tampered := []byte(sealed)
	tampered[len(tampered)-3] ^= 1
	for name, tc := range map[string]struct {
		keys   []DataKey
		app    string
		sealed string
	}{
		"other_app":   {[]DataKey{k1}, "tech.flecs.b", sealed},
		"missing_key": {[]DataKey{k2}, "tech.flecs.a", sealed},
		"wrong_key":   {[]DataKey{{ID: k1.ID, Secret: k2.Secret}}, "tech.flecs.a", sealed},
		"tampered":    {[]DataKey{k1}, "tech.flecs.a", string(tampered)},
		"garbage":     {[]DataKey{k1}, "tech.flecs.a", "plain:text"},
	} {
		if _, err := OpenCredentials(tc.keys, tc.app, tc.sealed); err == nil {
			t.Errorf("%s: opened; want an error", name)
		}
	}
}

func TestParseProduct(t *testing.T) {
	p, err := ParseProduct([]byte(`{"id":5,"name":"A","extra":[1],"average_rating":4.5,"rating_count":2,
		"attributes":[{"id":1,"name":"reverse-domain-name","options":["tech.flecs.a"]}],
		"meta_data":[{"id":1,"key":"app-icon","value":"x"},{"id":2,"name":"port-version","value":{"a":1}}],
		"store":{"id":791,"address":{"city":"S"}}}`))
	if err != nil {
		t.Fatal(err)
	}
	if p.ID != 5 || p.StoreID != 791 || p.App != "tech.flecs.a" || p.RatingCount != 2 || p.RatingSum != 9 {
		t.Errorf("parsed %+v", p)
	}
	var doc map[string]any
	if err := json.Unmarshal(p.Document, &doc); err != nil {
		t.Fatal(err)
	}
	for _, f := range []string{"id", "name", "status", "description", "short_description", "average_rating", "rating_count",
		"categories", "attributes", "meta_data", "stock_status", "store", "permalink", "price", "purchasable", "extra"} {
		if _, ok := doc[f]; !ok {
			t.Errorf("document lacks %s: %s", f, p.Document)
		}
	}
	if doc["average_rating"] != "4.50" {
		t.Errorf("average_rating %v; want \"4.50\"", doc["average_rating"])
	}
	for _, m := range doc["meta_data"].([]any) {
		item := m.(map[string]any)
		if item["key"] != item["name"] || item["key"] == nil {
			t.Errorf("meta_data item %v; want key == name", item)
		}
	}
	addr := doc["store"].(map[string]any)["address"].(map[string]any)
	if addr["city"] != "S" || addr["street_1"] != "" || addr["state"] != "" {
		t.Errorf("store address %v; want city kept and the rest empty", addr)
	}
	p, _ = p.withRating(3, 14)
	if !strings.Contains(string(p.Document), `"average_rating":"4.67"`) || !strings.Contains(string(p.Document), `"rating_count":3`) {
		t.Errorf("after withRating: %s", p.Document)
	}

	for name, tc := range map[string]struct{ doc, field string }{
		"no_id":          {`{"name":"A"}`, `"id"`},
		"zero_id":        {`{"id":0,"name":"A"}`, `"id"`},
		"no_name":        {`{"id":1}`, `"name"`},
		"rating_text":    {`{"id":1,"name":"A","average_rating":"good"}`, `"average_rating"`},
		"store_id":       {`{"id":1,"name":"A","store":{"id":"791"}}`, `"store.id"`},
		"options":        {`{"id":1,"name":"A","attributes":[{"id":1,"name":"archs","options":[1]}]}`, `"attributes[0].options"`},
		"meta_differ":    {`{"id":1,"name":"A","meta_data":[{"id":1,"key":"a","name":"b"}]}`, `"meta_data[0]"`},
		"meta_no_key":    {`{"id":1,"name":"A","meta_data":[{"id":1,"value":"x"}]}`, `"meta_data[0].key"`},
		"categories":     {`{"id":1,"name":"A","categories":{}}`, `"categories"`},
		"purchasable":    {`{"id":1,"name":"A","purchasable":"yes"}`, `"purchasable"`},
		"not_an_object":  {`[1]`, `not a JSON object`},
		"category_no_id": {`{"id":1,"name":"A","categories":[{"name":"x"}]}`, `"categories[0].id"`},
	} {
		if _, err := ParseProduct([]byte(tc.doc)); err == nil || ErrorCode(err) != EINVALID || !strings.Contains(err.Error(), tc.field) {
			t.Errorf("%s: err %v; want EINVALID naming %s", name, err, tc.field)
		}
	}
}
