package client

import (
	"go/parser"
	"go/token"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
)

// TestImportsNothingOfTheServer keeps the package importable alone: the standard library, note,
// and its own offline package only.
func TestImportsNothingOfTheServer(t *testing.T) {
	files, _ := filepath.Glob("*.go")
	more, _ := filepath.Glob("offline/*.go")
	files = append(files, more...)
	for _, f := range files {
		if strings.HasSuffix(f, "_test.go") {
			continue
		}
		af, err := parser.ParseFile(token.NewFileSet(), f, nil, parser.ImportsOnly)
		if err != nil {
			t.Fatal(err)
		}
		for _, imp := range af.Imports {
			p, _ := strconv.Unquote(imp.Path.Value)
			first, _, _ := strings.Cut(p, "/")
			if strings.Contains(first, ".") && p != "golang.org/x/mod/sumdb/note" {
				t.Errorf("%s imports %s", f, p)
			}
			if first == "openconsole" && p != "openconsole/client/offline" {
				t.Errorf("%s imports the server's %s", f, p)
			}
		}
	}
	if len(files) < 5 {
		t.Fatalf("found only %d files", len(files))
	}
}
