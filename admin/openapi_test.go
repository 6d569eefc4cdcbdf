package admin_test

import (
	"bytes"
	"encoding/json"
	"fmt"
	"mime"
	"os"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"sync"
	"testing"

	"github.com/santhosh-tekuri/jsonschema/v6"

	"openconsole/admin"
)

// apiDoc checks requests and answers against the OpenAPI document, so that the document cannot
// drift from what the server does: every request the tests send and every answer they get passes
// through it.
type apiDoc struct {
	doc      map[string]any
	compiler *jsonschema.Compiler
	paths    []docPath

	mu     sync.Mutex
	cache  map[string]*jsonschema.Schema
	seen   map[string]bool // "METHOD /path STATUS" checked
	errors []string
}

type docPath struct {
	template string
	re       *regexp.Regexp
}

const docURL = "file:///openconsole/openapi.json"

var (
	docOnce sync.Once
	theDoc  *apiDoc
	docErr  error
)

// loadDoc parses the OpenAPI document once for all tests.
func loadDoc(t *testing.T) *apiDoc {
	t.Helper()
	docOnce.Do(func() { theDoc, docErr = parseDoc(admin.OpenAPI()) })
	if docErr != nil {
		t.Fatalf("OpenAPI document: %v", docErr)
	}
	return theDoc
}

func parseDoc(b []byte) (*apiDoc, error) {
	inst, err := jsonschema.UnmarshalJSON(bytes.NewReader(b))
	if err != nil {
		return nil, err
	}
	c := jsonschema.NewCompiler()
	c.DefaultDraft(jsonschema.Draft2020)
	c.AssertFormat()
	if err := c.AddResource(docURL, inst); err != nil {
		return nil, err
	}
	d := &apiDoc{compiler: c, cache: map[string]*jsonschema.Schema{}, seen: map[string]bool{}}
	if err := json.Unmarshal(b, &d.doc); err != nil {
		return nil, err
	}
	for tmpl := range d.doc["paths"].(map[string]any) {
		re := "^" + regexp.MustCompile(`\\\{[^}]+\\\}`).ReplaceAllString(regexp.QuoteMeta(tmpl), `[^/]+`) + "$"
		d.paths = append(d.paths, docPath{tmpl, regexp.MustCompile(re)})
	}
	// Literal paths before templated ones.
	sort.Slice(d.paths, func(i, j int) bool {
		return strings.Count(d.paths[i].template, "{") < strings.Count(d.paths[j].template, "{")
	})
	return d, nil
}

// pointer escapes a JSON pointer token.
func pointer(s string) string { return strings.ReplaceAll(strings.ReplaceAll(s, "~", "~0"), "/", "~1") }

func (d *apiDoc) schema(ptr string) (*jsonschema.Schema, error) {
	d.mu.Lock()
	defer d.mu.Unlock()
	if s, ok := d.cache[ptr]; ok {
		return s, nil
	}
	s, err := d.compiler.Compile(docURL + "#" + ptr)
	if err != nil {
		return nil, err
	}
	d.cache[ptr] = s
	return s, nil
}

// operation finds the documented operation of a request path (under the prefix).
func (d *apiDoc) operation(method, path string) (tmpl string, op map[string]any) {
	path = strings.TrimPrefix(path, admin.Prefix)
	for _, p := range d.paths {
		if p.re.MatchString(path) {
			ops := d.doc["paths"].(map[string]any)[p.template].(map[string]any)
			if o, ok := ops[strings.ToLower(method)].(map[string]any); ok {
				return p.template, o
			}
			return p.template, nil
		}
	}
	return "", nil
}

func (d *apiDoc) fail(format string, args ...any) {
	d.mu.Lock()
	d.errors = append(d.errors, fmt.Sprintf(format, args...))
	d.mu.Unlock()
}

// checkRequest reports whether a request body fits the operation's request body schema (true when
// the operation takes none or the body is empty). A test may send bodies that do not fit, on
// purpose: the server must then refuse them (see env.call).
func (d *apiDoc) checkRequest(method, path, contentType string, body []byte) bool {
	tmpl, op := d.operation(method, path)
	if op == nil || len(bytes.TrimSpace(body)) == 0 {
		return true
	}
	rb, ok := op["requestBody"].(map[string]any)
	if !ok {
		return true
	}
	// A text body (a signed note) fits when the operation documents text.
	if ct, _, _ := mime.ParseMediaType(contentType); strings.HasPrefix(ct, "text/") {
		_, documented := rb["content"].(map[string]any)[ct]
		return documented
	}
	s, err := d.schema("/paths/" + pointer(tmpl) + "/" + strings.ToLower(method) + "/requestBody/content/application~1json/schema")
	if err != nil {
		d.fail("%s %s: request schema: %v", method, tmpl, err)
		return true
	}
	inst, err := jsonschema.UnmarshalJSON(bytes.NewReader(body))
	if err != nil {
		return false // not JSON at all
	}
	return s.Validate(inst) == nil
}

// checkResponse validates an answer: its status must be documented for the operation, and its
// body must fit the schema of that status and content type. Answers to paths or methods the
// document does not have must be 404 or 405 problems.
func (d *apiDoc) checkResponse(method, path string, status int, contentType string, body []byte) {
	tmpl, op := d.operation(method, path)
	ct, _, _ := mime.ParseMediaType(contentType)
	var ptr string
	if op == nil {
		if status != 404 && status != 405 {
			d.fail("%s %s: %d for an operation the document does not have", method, path, status)
			return
		}
		ptr = "/components/schemas/Problem"
	} else {
		resp, ok := op["responses"].(map[string]any)[strconv.Itoa(status)].(map[string]any)
		if !ok {
			d.fail("%s %s: status %d is not documented (body %s)", method, tmpl, status, truncate(body))
			return
		}
		base := "/paths/" + pointer(tmpl) + "/" + strings.ToLower(method) + "/responses/" + strconv.Itoa(status)
		if ref, ok := resp["$ref"].(string); ok {
			base = strings.TrimPrefix(ref, "#")
			resp = d.resolve(base)
		}
		content, _ := resp["content"].(map[string]any)
		if _, ok := content[ct]; !ok {
			d.fail("%s %s: %d with content type %q, documented %v", method, tmpl, status, ct, keys(content))
			return
		}
		ptr = base + "/content/" + pointer(ct) + "/schema"
	}
	d.record(method + " " + tmpl + " " + strconv.Itoa(status))
	if strings.HasPrefix(ct, "text/") {
		return // a signed note: its form is the artefact parsers' to check
	}
	s, err := d.schema(ptr)
	if err != nil {
		d.fail("%s %s: schema %s: %v", method, tmpl, ptr, err)
		return
	}
	inst, err := jsonschema.UnmarshalJSON(bytes.NewReader(body))
	if err != nil {
		d.fail("%s %s: %d answer is not JSON: %v: %s", method, tmpl, status, err, truncate(body))
		return
	}
	if err := s.Validate(inst); err != nil {
		d.fail("%s %s: %d answer does not fit the document: %v\n%s", method, tmpl, status, err, truncate(body))
	}
}

func (d *apiDoc) resolve(ptr string) map[string]any {
	var cur any = d.doc
	for _, tok := range strings.Split(strings.TrimPrefix(ptr, "/"), "/") {
		tok = strings.ReplaceAll(strings.ReplaceAll(tok, "~1", "/"), "~0", "~")
		m, _ := cur.(map[string]any)
		cur = m[tok]
	}
	m, _ := cur.(map[string]any)
	return m
}

func (d *apiDoc) record(what string) {
	d.mu.Lock()
	d.seen[what] = true
	d.mu.Unlock()
}

// report fails t with every mismatch found so far, and forgets them.
func (d *apiDoc) report(t *testing.T) {
	t.Helper()
	d.mu.Lock()
	errs := d.errors
	d.errors = nil
	d.mu.Unlock()
	for _, e := range errs {
		t.Error("OpenAPI: " + e)
	}
}

func keys(m map[string]any) []string {
	var out []string
	for k := range m {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}

func truncate(b []byte) string {
	if len(b) > 500 {
		return string(b[:500]) + "…"
	}
	return string(b)
}

// TestOpenAPIDocumentIsOpenAPI31: the document validates against the OpenAPI 3.1 schema, and it
// describes exactly the routes the server serves.
func TestOpenAPIDocumentIsOpenAPI31(t *testing.T) {
	metaBytes, err := os.ReadFile("testdata/oas-3.1-schema.json")
	if err != nil {
		t.Fatal(err)
	}
	meta, err := jsonschema.UnmarshalJSON(bytes.NewReader(metaBytes))
	if err != nil {
		t.Fatal(err)
	}
	c := jsonschema.NewCompiler()
	const metaURL = "https://spec.openapis.org/oas/3.1/schema/2022-10-07"
	if err := c.AddResource(metaURL, meta); err != nil {
		t.Fatal(err)
	}
	s, err := c.Compile(metaURL)
	if err != nil {
		t.Fatal(err)
	}
	doc, err := jsonschema.UnmarshalJSON(bytes.NewReader(admin.OpenAPI()))
	if err != nil {
		t.Fatalf("admin/openapi.json is not JSON: %v", err)
	}
	if err := s.Validate(doc); err != nil {
		t.Errorf("admin/openapi.json is not a valid OpenAPI 3.1 document: %v", err)
	}
	// Every schema in it compiles (a broken $ref would pass the document check).
	d := loadDoc(t)
	for name := range d.doc["components"].(map[string]any)["schemas"].(map[string]any) {
		if _, err := d.schema("/components/schemas/" + pointer(name)); err != nil {
			t.Errorf("schema %s: %v", name, err)
		}
	}

	documented := map[string]bool{}
	for tmpl, ops := range d.doc["paths"].(map[string]any) {
		for m, op := range ops.(map[string]any) {
			if m == "parameters" {
				continue
			}
			if tmpl != "/openapi.json" {
				documented[strings.ToUpper(m)+" "+tmpl] = true
			}
			// Every request and answer schema compiles, its $refs included.
			base := "/paths/" + pointer(tmpl) + "/" + m
			if _, ok := op.(map[string]any)["requestBody"]; ok {
				if _, err := d.schema(base + "/requestBody/content/application~1json/schema"); err != nil {
					t.Errorf("%s %s request: %v", m, tmpl, err)
				}
			}
			for status, r := range op.(map[string]any)["responses"].(map[string]any) {
				if _, ok := r.(map[string]any)["$ref"]; ok {
					continue
				}
				for ct := range r.(map[string]any)["content"].(map[string]any) {
					if _, err := d.schema(base + "/responses/" + status + "/content/" + pointer(ct) + "/schema"); err != nil {
						t.Errorf("%s %s %s: %v", m, tmpl, status, err)
					}
				}
			}
		}
	}
	served := map[string]bool{}
	for _, r := range admin.New(nil, nil).Routes() {
		served[r] = true
		if !documented[r] {
			t.Errorf("route %s is served but not documented", r)
		}
	}
	for r := range documented {
		if !served[r] {
			t.Errorf("operation %s is documented but not served", r)
		}
	}
}
