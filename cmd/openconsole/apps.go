package main

import (
	"errors"
	"fmt"
	"io"
	"net/url"
	"os"
	"strconv"
	"strings"

	"openconsole"
)

// The admin commands of apps (manifests, registry credentials, download tokens), products and
// subscriptions (wire contract §2.6 to §2.11).

// readInput reads a file named on the command line, or standard input for "-", at most limit bytes.
func (e *cliEnv) readInput(name string, limit int64) ([]byte, error) {
	var r io.Reader
	if name == "-" {
		if e.stdin == nil {
			return nil, errors.New("no standard input")
		}
		r = e.stdin
	} else {
		f, err := os.Open(name)
		if err != nil {
			return nil, err
		}
		defer f.Close()
		r = f
	}
	b, err := io.ReadAll(io.LimitReader(r, limit+1))
	if err != nil {
		return nil, err
	}
	if int64(len(b)) > limit {
		return nil, fmt.Errorf("%s: larger than %d bytes", name, limit)
	}
	return b, nil
}

func cmdAppManifestAdd(e *cliEnv, args []string) int {
	fs := e.flags("app manifest add")
	official := fs.Bool("official", false, "mark the app official: devices get registry credentials for it (--official=false unmarks it; default: a new app is unofficial, a known one keeps its flag)")
	pos, code, ok := e.parse(fs, args, 1)
	if !ok {
		return code
	}
	doc, err := e.readInput(pos[0], openconsole.MaxManifestBytes)
	if err != nil {
		return e.fail(err)
	}
	// Check before anything else: an invalid manifest never reaches the database.
	if _, err := openconsole.ParseManifest(doc); err != nil {
		return e.fail(fmt.Errorf("%s: %w", pos[0], err))
	}
	q := url.Values{}
	if visited(fs, "official") {
		q.Set("official", strconv.FormatBool(*official))
	}
	return e.call(0, request{method: "POST", path: "/manifests", query: q, body: doc})
}

func cmdAppManifestList(e *cliEnv, args []string) int {
	fs := e.flags("app manifest list")
	app := fs.String("app", "", "only the manifests of this app")
	if _, code, ok := e.parse(fs, args, 0); !ok {
		return code
	}
	q := url.Values{}
	if *app != "" {
		q.Set("app", *app)
	}
	return e.call(0, request{method: "GET", path: "/manifests", query: q})
}

func cmdAppManifestRemove(e *cliEnv, args []string) int {
	fs := e.flags("app manifest remove")
	schema := fs.String("schema-version", "", "remove only the variant with this _schemaVersion (default: every variant)")
	pos, code, ok := e.parse(fs, args, 2)
	if !ok {
		return code
	}
	q := url.Values{}
	if *schema != "" {
		q.Set("schemaVersion", *schema)
	}
	return e.call(0, request{method: "DELETE", path: "/manifests/" + pathSegment(pos[0]) + "/" + pathSegment(pos[1]), query: q})
}

func cmdAppCredentialsSet(e *cliEnv, args []string) int {
	fs := e.flags("app credentials set")
	user := fs.String("username", "", "registry username (required)")
	pwFile := fs.String("password-file", "", "file holding the registry password (default, or -: standard input)")
	pos, code, ok := e.parse(fs, args, 1)
	if !ok {
		return code
	}
	if *user == "" {
		return e.usageErr("app credentials set needs --username")
	}
	if *pwFile == "" {
		*pwFile = "-"
	}
	raw, err := e.readInput(*pwFile, 8192)
	if err != nil {
		return e.fail(fmt.Errorf("--password-file: %w", err))
	}
	password := strings.TrimRight(string(raw), "\r\n")
	if password == "" {
		return e.fail(errors.New("no registry password given"))
	}
	// The answer never holds the password.
	return e.call(0, request{method: "PUT", path: "/apps/" + pathSegment(pos[0]) + "/credentials",
		body: bodyOf(map[string]any{"username": *user, "password": password})})
}

func cmdAppTokensList(e *cliEnv, args []string) int {
	fs := e.flags("app tokens list")
	session := fs.String("session", "", "only the tokens of this session")
	if _, code, ok := e.parse(fs, args, 0); !ok {
		return code
	}
	q := url.Values{}
	if *session != "" {
		q.Set("session", *session)
	}
	return e.call(0, request{method: "GET", path: "/token-issuances", query: q})
}

func cmdProductImport(e *cliEnv, args []string) int {
	fs := e.flags("product import")
	pos, code, ok := e.parse(fs, args, 1)
	if !ok {
		return code
	}
	doc, err := e.readInput(pos[0], 16<<20)
	if err != nil {
		return e.fail(err)
	}
	return e.call(0, request{method: "POST", path: "/products", body: doc})
}

func cmdProductList(e *cliEnv, args []string) int {
	fs := e.flags("product list")
	store := fs.String("store", "", "only the products of this store id")
	if _, code, ok := e.parse(fs, args, 0); !ok {
		return code
	}
	q := url.Values{}
	if *store != "" {
		if n, err := strconv.ParseInt(*store, 10, 64); err != nil || n < 0 {
			return e.usageErr("--store: want a store id, a non-negative integer")
		}
		q.Set("store", *store)
	}
	return e.call(0, request{method: "GET", path: "/products", query: q})
}

func cmdSubscriptionAdd(e *cliEnv, args []string) int {
	fs := e.flags("subscription add")
	user := fs.String("user", "", "username of the subscriber (required)")
	product := fs.Int64("product", 0, "product id (required)")
	status := fs.String("status", "active", "status: "+strings.Join(openconsole.SubscriptionStatuses, ", "))
	if _, code, ok := e.parse(fs, args, 0); !ok {
		return code
	}
	if *user == "" || *product <= 0 {
		return e.usageErr("subscription add needs --user and --product")
	}
	return e.call(0, request{method: "POST", path: "/subscriptions", body: bodyOf(map[string]any{"user": *user, "productId": *product, "status": *status})})
}

func cmdSubscriptionList(e *cliEnv, args []string) int {
	fs := e.flags("subscription list")
	user := fs.String("user", "", "only the subscriptions of this user")
	if _, code, ok := e.parse(fs, args, 0); !ok {
		return code
	}
	q := url.Values{}
	if *user != "" {
		q.Set("user", *user)
	}
	return e.call(0, request{method: "GET", path: "/subscriptions", query: q})
}
